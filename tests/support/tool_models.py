"""A tiny random model whose chat template takes tools the way Qwen2.5's does (written here, no
download): tools listed in the system turn inside <tools></tools>, calls written as
`<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>`, tool results sent back in a user turn
inside <tool_response></tool_response>."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.tiny_models import save_tiny_model

QWEN_TOOL_TEMPLATE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}"
    "{{- '\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n"
    "You are provided with function signatures within <tools></tools> XML tags:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nFor each function call, return a json object with function name and "
    'arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{"name": '
    '<function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n\' }}'
    "{%- elif messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant' }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}"
    "{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}"
    '{{- \'\\n<tool_call>\\n{"name": "\' + tool_call.name + \'", "arguments": \' }}'
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if loop.index0 == 0 or messages[loop.index0 - 1].role != 'tool' %}"
    "{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def save_tool_model(directory: Path) -> Path:
    """A tiny random Qwen2 with the tool template above and room for a tool list in its context
    (its rotary positions work past the tiny model's usual 256)."""
    save_tiny_model(directory, "qwen2")
    (directory / "chat_template.jinja").write_text(QWEN_TOOL_TEMPLATE)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["max_position_embeddings"] = 4096
    config_path.write_text(json.dumps(config, indent=2))
    return directory


# Llama 3.1's JSON tool calling, written here the same way: the tools go in the first user turn
# as JSON with the instruction to answer `{"name": …, "parameters": …}`; a call comes back as that
# object, a tool's result in an `ipython` turn.
LLAMA3_TOOL_TEMPLATE = (
    "{%- set turn = '<|start_header_id|>' %}{%- set end = '<|eot_id|>' %}"
    "{%- for message in messages %}"
    "{%- if loop.first and tools and message.role == 'user' %}"
    "{{- turn + 'user<|end_header_id|>\\n\\nGiven the following functions, please respond with a "
    "JSON for a function call with its proper arguments that best answers the given prompt.\\n\\n"
    'Respond in the format {"name": function name, "parameters": dictionary of argument name and '
    "its value}. Do not use variables.\\n\\n' }}"
    "{%- for tool in tools %}{{- tool | tojson + '\\n\\n' }}{%- endfor %}"
    "{{- message.content + end }}"
    "{%- elif message.role == 'assistant' and message.tool_calls %}"
    "{%- set call = message.tool_calls[0].function %}"
    '{{- turn + \'assistant<|end_header_id|>\\n\\n{"name": "\' + call.name + \'", "parameters": \' }}'
    "{{- call.arguments | tojson + '}' + end }}"
    "{%- elif message.role == 'tool' %}"
    "{{- turn + 'ipython<|end_header_id|>\\n\\n' + message.content + end }}"
    "{%- else %}"
    "{{- turn + message.role + '<|end_header_id|>\\n\\n' + message.content + end }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- turn + 'assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def save_llama3_tool_model(directory: Path) -> Path:
    """A tiny random Llama with the Llama 3-style tool template above."""
    save_tiny_model(directory, "llama")
    (directory / "chat_template.jinja").write_text(LLAMA3_TOOL_TEMPLATE)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["max_position_embeddings"] = 4096
    config_path.write_text(json.dumps(config, indent=2))
    return directory
