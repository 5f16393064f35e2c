"""`tools`, `tool_choice` and `parallel_tool_calls` on chat completions.

Tools are rendered through the model's own chat template (`apply_chat_template(tools=…)`), as
the model was trained to see them; a template that ignores `tools` is a 400 naming `tools`, never
an answer from a model that was not told about them. What the model writes is read back into
`message.tool_calls` (finish_reason "tool_calls") in the call format its template teaches:

- Qwen / Hermes: `<tool_call>\\n{"name": …, "arguments": {…}}\\n</tool_call>`, one block per call;
- Llama 3: a JSON object `{"name": …, "parameters": {…}}` as the whole answer.

`tool_choice`: "auto" (the default with tools) lets the model answer or call; "none" neither
renders the tools nor reads calls back; "required" and `{"type": "function", "function": {"name"}}`
are enforced by a grammar (playground.inference.constraints), so even a random model makes a call
of an offered tool whose arguments validate against its `parameters`. `parallel_tool_calls: false`
allows one call (the first is kept under "auto"). Streamed with tools read back, an answer is sent
whole when its choice finishes (content, then `tool_calls` deltas in OpenAI's chunk shape), since
a call cannot be told from text before it is complete. The legacy `functions` / `function_call`
are refused: send `tools` / `tool_choice`.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import weakref
from dataclasses import dataclass, field, replace
from typing import Any

from playground.inference.constraints import json_rule, lark_grammar
from playground.v1.params import ChatRequest, bad
from playground.v1.structured import schema_grammar

HERMES, LLAMA3 = "hermes", "llama3"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names
MAX_TOOLS = 128  # OpenAI's limit
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass
class ToolSpec:
    """The request's tools, as checked; `style` is set once the model's template is known."""

    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI's shape, checked
    choice: str = "none"  # "none", "auto", "required" or "function" (then `name`)
    name: str | None = None
    parallel: bool = True
    style: str | None = None

    @property
    def reads_calls(self) -> bool:
        return bool(self.tools) and self.choice != "none"

    def parameters(self, name: str) -> dict[str, Any]:
        for tool in self.tools:
            if tool["function"]["name"] == name:
                return tool["function"]["parameters"]
        raise KeyError(name)


# --- reading the request ------------------------------------------------------------------------


def apply_tools(body: dict[str, Any], chat: ChatRequest) -> None:
    """Read tools, tool_choice, parallel_tool_calls and the tool parts of `messages` into `chat`."""
    for legacy in ("functions", "function_call"):
        if body.get(legacy) is not None:
            raise bad(
                f"'{legacy}' is deprecated and not supported: send 'tools' and 'tool_choice'.",
                legacy,
            )
    tools = _tools(body.get("tools"))
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise bad(
            "Invalid type for 'parallel_tool_calls': expected a boolean.", "parallel_tool_calls"
        )
    choice, name = _tool_choice(body.get("tool_choice"), tools)
    _history(body.get("messages"), chat.messages)
    if tools or _has_tool_history(chat.messages):
        chat.tools = ToolSpec(tools, choice, name, parallel)
    if choice == "auto" and tools and chat.sampling.grammar is not None:
        raise bad(
            "'response_format' with tools under tool_choice 'auto' is not supported: the format "
            "would leave the model no way to call a tool. Use tool_choice 'required' or 'none'.",
            "response_format",
        )


def _tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise bad(f"'tools' must be an array of at most {MAX_TOOLS} tools.", "tools")
    checked, names = [], set()
    for number, tool in enumerate(value):
        function = _tool(tool, f"tools[{number}]")
        if function["name"] in names:
            raise bad(f"Duplicate tool name {function['name']!r} in 'tools'.", "tools")
        names.add(function["name"])
        checked.append({"type": "function", "function": function})
    return checked


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise bad(f"Invalid '{where}': expected an object with type 'function'.", "tools")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise bad(f"Missing or invalid '{where}.function': expected an object.", "tools")
    name = function.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise bad(
            f"Invalid '{where}.function.name': {name!r}; use 1 to 64 letters, digits, '_' or '-'.",
            "tools",
        )
    description = function.get("description", "")
    if not isinstance(description, str):
        raise bad(f"Invalid type for '{where}.function.description': expected a string.", "tools")
    if not isinstance(function.get("strict", False), bool):
        raise bad(f"Invalid type for '{where}.function.strict': expected a boolean.", "tools")
    parameters = function.get("parameters")
    parameters = EMPTY_PARAMETERS if parameters is None else parameters
    schema_grammar(parameters, f"{where}.function.parameters", "tools")  # enforceable, or a 400
    # As sent, in the client's key order (the template renders it as JSON), known keys only.
    known = ("name", "description", "parameters", "strict")
    checked = {key: function[key] for key in function if key in known}
    checked["parameters"] = parameters  # in place when given (null: the empty object schema)
    return checked


def _tool_choice(value: Any, tools: list[dict[str, Any]]) -> tuple[str, str | None]:
    if value is None:
        return ("auto" if tools else "none"), None
    if value in ("none", "auto", "required"):
        if value != "none" and not tools:
            raise bad(
                f"Invalid value for 'tool_choice': {value!r} needs 'tools' to choose from.",
                "tool_choice",
            )
        return value, None
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(value, dict) or value.get("type") != "function" or not isinstance(name, str):
        raise bad(
            "Invalid value for 'tool_choice': use 'none', 'auto', 'required' or "
            '{"type": "function", "function": {"name": …}}.',
            "tool_choice",
        )
    if name not in {tool["function"]["name"] for tool in tools}:
        raise bad(
            f"Invalid value for 'tool_choice': no tool named {name!r} in 'tools'.", "tool_choice"
        )
    return "function", name


def _history(raw: Any, messages: list[dict[str, Any]]) -> None:
    """Carry assistant `tool_calls` and tool results' `tool_call_id` into the parsed messages, in
    the form chat templates expect (arguments as an object, the called function's name)."""
    if not isinstance(raw, list):
        return
    called: dict[str, str] = {}
    for number, (given, message) in enumerate(zip(raw, messages, strict=False)):
        where = f"messages[{number}]"
        if message["role"] == "assistant" and given.get("tool_calls") is not None:
            message["tool_calls"] = [
                _past_call(c, f"{where}.tool_calls[{i}]", called)
                for i, c in enumerate(_list(given["tool_calls"], f"{where}.tool_calls"))
            ]
        elif message["role"] == "tool":
            call_id = given.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad(
                    f"Missing 'tool_call_id' in '{where}': a tool message answers a call.",
                    "messages",
                )
            message["tool_call_id"] = call_id
            if call_id in called:
                message["name"] = called[call_id]


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise bad(f"Invalid type for '{where}': expected an array.", "messages")
    return value


def _past_call(value: Any, where: str, called: dict[str, str]) -> dict[str, Any]:
    function = value.get("function") if isinstance(value, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise bad(
            f"Invalid '{where}': expected an id, type 'function' and a function with a name.",
            "messages",
        )
    arguments = function.get("arguments", "{}")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except ValueError:
            message = f"Invalid '{where}.function.arguments': not a JSON string."
            raise bad(message, "messages") from None
    call_id = value.get("id")
    if isinstance(call_id, str):
        called[call_id] = function["name"]
    return {
        "id": call_id, "type": "function",
        "function": {"name": function["name"], "arguments": arguments},
    }  # fmt: skip


def _has_tool_history(messages: list[dict[str, Any]]) -> bool:
    return any("tool_calls" in m or m["role"] == "tool" for m in messages)


# --- the model's template -----------------------------------------------------------------------

PROBE_NAME = "rft_probe_tool_4c1e"
PROBE = {"type": "function", "function": {"name": PROBE_NAME, "parameters": EMPTY_PARAMETERS}}
_styles: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()
_styles_lock = threading.Lock()


def template_style(tokenizer: Any) -> str | None:
    """HERMES or LLAMA3 by what the template teaches, "" for a template that renders tools in a
    call format we cannot read back, None for one that ignores `tools` (or no template)."""
    with _styles_lock:
        if tokenizer in _styles:
            return _styles[tokenizer]
    template = getattr(tokenizer, "chat_template", None)
    text = " ".join(template.values()) if isinstance(template, dict) else str(template or "")
    style: str | None = None
    if text:
        try:
            probe = [{"role": "user", "content": "hi"}]
            rendered = tokenizer.apply_chat_template(
                probe, tools=[PROBE], add_generation_prompt=True, tokenize=False
            )
        except Exception:  # noqa: BLE001 - a template that cannot render tools has no tool format
            rendered = ""
        if PROBE_NAME in rendered:
            style = _call_format(text)
    with _styles_lock:
        _styles[tokenizer] = style
    return style


def _call_format(template: str) -> str:
    if "<tool_call>" in template:
        return HERMES
    if "[TOOL_CALLS]" in template:  # Mistral's: not read back (yet)
        return ""
    if "<|python_tag|>" in template or '"parameters"' in template:
        return LLAMA3
    return ""


def prepare_tools(tokenizer: Any, chat: ChatRequest) -> list[dict[str, Any]] | None:
    """The tools to render for this model, after checking its template can take them; sets the
    call grammar for a required or named tool_choice. A 400 naming `tools` otherwise."""
    spec = chat.tools
    if spec is None or not (spec.reads_calls or _has_tool_history(chat.messages)):
        return None  # tool_choice "none": the tools are not rendered, any template will do
    param = "tools" if spec.tools else "messages"
    spec.style = template_style(tokenizer)
    if spec.style is None:
        raise bad(
            f"The model `{chat.model}`'s chat template has no tool format (it ignores `tools`), "
            "so it cannot be given tools or tool calls. Use a model whose template supports "
            "tools (Qwen/Hermes or Llama 3 style), or send the request without them.",
            param,
        )
    if spec.style == "" and spec.reads_calls:
        raise bad(
            f"The model `{chat.model}`'s chat template renders tools, but its call format is "
            "neither Qwen/Hermes (<tool_call>) nor Llama 3 (a JSON object with name and "
            "parameters), so its tool calls could not be read back.",
            param,
        )
    if spec.choice in ("required", "function"):
        chat.sampling = replace(chat.sampling, grammar=call_grammar(spec))
    return spec.tools if spec.reads_calls else None


def call_grammar(spec: ToolSpec) -> str:
    """A grammar for one call (several with parallel_tool_calls, Hermes style) of the named tool
    or of any offered one, with arguments that validate against its parameters."""
    names = [spec.name] if spec.name else [t["function"]["name"] for t in spec.tools]
    key = "arguments" if spec.style == HERMES else "parameters"
    options = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, key: spec.parameters(name)},
            "required": ["name", key],
            "additionalProperties": False,
        }
        for name in names
    ]
    call = json_rule(options[0] if len(options) == 1 else {"anyOf": options})
    if spec.style != HERMES:
        return lark_grammar(f"start: call\ncall: {call}\n")
    more = ' ("\\n" block)*' if spec.parallel else ""
    block = 'block: "<tool_call>\\n" call "\\n</tool_call>"'
    return lark_grammar(f"start: block{more}\n{block}\ncall: {call}\n")


# --- reading calls back -------------------------------------------------------------------------

HERMES_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.DOTALL)


def parse_calls(text: str, style: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """(the text that is not a call, or None; the calls in OpenAI's shape)."""
    if style == HERMES:
        calls, kept, end = [], [], 0
        for block in HERMES_BLOCK.finditer(text):
            found = _call(block.group(1), "arguments")
            if found is not None:
                kept.append(text[end : block.start()])
                end = block.end()
                calls.append(found)
        content = ("".join(kept) + text[end:]).strip()
        return (content or None), calls
    if style == LLAMA3:
        body = text.strip().removeprefix("<|python_tag|>").strip()
        found = [_call(part, "parameters") for part in body.split(";")] if body else []
        if found and all(c is not None for c in found):
            return None, [c for c in found if c is not None]
    return text, []


def _call(text: str, key: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get(key, value.get("arguments", {}))
    if isinstance(arguments, str):  # some models write the arguments as a JSON string already
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return None
    return {
        "id": f"call_{secrets.token_hex(12)}", "type": "function",
        "function": {"name": value["name"], "arguments": json.dumps(arguments, ensure_ascii=False)},
    }  # fmt: skip


def answer_fields(spec: ToolSpec | None, text: str, reason: str) -> tuple[dict[str, Any], str]:
    """The message fields (content, tool_calls) and finish_reason of one finished choice."""
    if spec is None or not spec.reads_calls:
        return {"content": text}, reason
    content, calls = parse_calls(text, spec.style)
    if not calls:
        return {"content": text}, reason
    if not spec.parallel:
        calls = calls[:1]
    return {"content": content, "tool_calls": calls}, ("tool_calls" if reason == "stop" else reason)


def stream_deltas(
    spec: ToolSpec, text: str, reason: str | None
) -> list[tuple[dict[str, Any], str | None]]:
    """The (delta, finish_reason) pairs to stream for a choice read back for tool calls: nothing
    until it finishes, then its content, its calls (OpenAI's indexed tool_calls deltas), the end."""
    if reason is None:
        return []
    fields, reason = answer_fields(spec, text, reason)
    deltas: list[tuple[dict[str, Any], str | None]] = []
    if fields.get("content"):
        deltas.append(({"content": fields["content"]}, None))
    calls = fields.get("tool_calls") or []
    if calls:
        deltas.append(({"tool_calls": [{"index": i, **c} for i, c in enumerate(calls)]}, None))
    return [*deltas, ({}, reason)]
