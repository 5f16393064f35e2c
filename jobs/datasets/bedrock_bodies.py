"""InvokeModel bodies of Meta Llama and Mistral, as Bedrock logs them: a raw `prompt` string that
carries the conversation in the model's chat markers, and a completion as the output.

Read prompts:
- Llama 3 and later: `<|begin_of_text|><|start_header_id|>ROLE<|end_header_id|>\\n\\nTEXT<|eot_id|>`
  turns (system, user, assistant), ending with an empty assistant header for the model to fill;
- Llama 2 and Mistral: `<s>[INST] USER [/INST] ANSWER </s><s>[INST] USER [/INST]`, with an
  optional `<<SYS>>\\nSYSTEM\\n<</SYS>>\\n\\n` at the start of the first user turn (Llama 2).
Outputs: Llama `{"generation": …}` and Mistral `{"outputs": [{"text": …}]}`, whole or as a list of
streamed chunks of the same shapes. A prompt without these markers is refused, saying so.
"""

from __future__ import annotations

import re
from typing import Any

from jobs.datasets.formats import RowError

READ_FORMATS = (
    "Llama 3 (<|start_header_id|>role<|end_header_id|> … <|eot_id|>) and Llama 2 / Mistral "
    "([INST] … [/INST], with an optional <<SYS>> block)"
)
LLAMA3_HEADER = "<|start_header_id|>"
LLAMA3_TURN = re.compile(
    r"<\|start_header_id\|>(.*?)<\|end_header_id\|>(.*?)(?=<\|start_header_id\|>|$)", re.S
)
LLAMA3_ROLES = ("system", "user", "assistant")
INST = re.compile(r"\[/?INST\]")
SYS = re.compile(r"^\s*<<SYS>>(.*?)<</SYS>>(.*)$", re.S)


def prompt_messages(prompt: str) -> list[dict[str, str]]:
    """The conversation in a Llama or Mistral raw prompt; raises RowError saying what is wrong."""
    if LLAMA3_HEADER in prompt:
        messages = _llama3(prompt)
    elif "[INST]" in prompt:
        messages = _inst(prompt)
    else:
        raise RowError(
            "the input body is a raw `prompt` string with no chat markers this console reads: "
            f"only {READ_FORMATS} prompts become a conversation"
        )
    _check_last_turn(messages)
    return messages


def _llama3(prompt: str) -> list[dict[str, str]]:
    text = prompt.strip().removeprefix("<|begin_of_text|>")
    before = text[: text.find(LLAMA3_HEADER)]
    if before.strip():
        raise RowError(f"Llama 3 prompt: text before the first turn header ({_clip(before)})")
    messages = []
    for number, (role, body) in enumerate(LLAMA3_TURN.findall(text), start=1):
        role = role.strip()
        if role not in LLAMA3_ROLES:
            kind = "a tool turn" if role == "ipython" else "an unknown role"
            raise RowError(
                f"Llama 3 prompt: turn {number} is {kind} ({role!r}); only system, user and "
                "assistant turns are read"
            )
        ended = body.rstrip().endswith("<|eot_id|>")
        content = body.rstrip().removesuffix("<|eot_id|>").strip()
        if "<|" in content:
            raise RowError(
                f"Llama 3 prompt: turn {number} ({role}) holds another special token "
                f"({_clip(content[content.find('<|') :])}); only text turns are read"
            )
        if not ended and not content and role == "assistant":
            continue  # the header left open for the model's answer
        messages.append({"role": role, "content": content})
    return messages


def _inst(prompt: str) -> list[dict[str, str]]:
    text = prompt.replace("<s>", "").replace("</s>", "").strip()
    parts = INST.split(text)
    markers = INST.findall(text)
    if parts[0].strip():
        raise RowError(f"[INST] prompt: text before the first [INST] ({_clip(parts[0])})")
    expected = ["[INST]", "[/INST]"] * (len(markers) // 2)
    if markers != expected or len(markers) % 2:
        raise RowError(
            "[INST] prompt: the [INST] and [/INST] markers do not alternate; each user turn is "
            "[INST] … [/INST], followed by the answer"
        )
    messages: list[dict[str, str]] = []
    for turn in range(len(markers) // 2):
        user, answer = parts[2 * turn + 1].strip(), parts[2 * turn + 2].strip()
        if turn == 0 and (system := SYS.match(user)):
            messages.append({"role": "system", "content": system.group(1).strip()})
            user = system.group(2).strip()
        messages.append({"role": "user", "content": user})
        last = turn == len(markers) // 2 - 1
        if not last and not answer:
            raise RowError(
                f"[INST] prompt: user turn {turn + 1} has no answer before the next [INST]"
            )
        if answer:
            messages.append({"role": "assistant", "content": answer})
    return messages


def _check_last_turn(messages: list[dict[str, str]]) -> None:
    if not messages:
        raise RowError("the raw `prompt` has no turns")
    last = messages[-1]
    if last["role"] != "user":
        raise RowError(
            f"the raw `prompt` ends with {_a(last['role'])} turn: it must end with the user's turn "
            "(and an empty assistant header or [/INST]), since the model answers it"
        )
    if not last["content"]:
        raise RowError("the last user turn of the raw `prompt` is empty")


def completion_text(body: Any) -> str | None:
    """The answer of a Llama or Mistral output body, or of a list of their streamed chunks; None
    when the body is neither."""
    chunks = body if isinstance(body, list) else [body]
    texts, known = [], False
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue
        if isinstance(chunk.get("generation"), str):  # Llama
            known = True
            texts.append(chunk["generation"])
        elif isinstance(chunk.get("outputs"), list):  # Mistral
            known = True
            first = chunk["outputs"][0] if chunk["outputs"] else None
            if isinstance(first, dict) and isinstance(first.get("text"), str):
                texts.append(first["text"])
    return "".join(texts).strip() if known else None


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _clip(text: str, size: int = 40) -> str:
    text = text.strip()
    return repr(text if len(text) <= size else text[:size] + "…")
