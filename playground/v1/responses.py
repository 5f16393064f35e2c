"""The bodies of OpenAI chat responses: a whole completion, or the chunks of a stream.

Field for field what OpenAI sends (`chat.completion` / `chat.completion.chunk`, `logprobs` null
unless asked for, `system_fingerprint`), so strict clients and SDK models parse them unchanged.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.http import StreamingHttpResponse

from playground.inference.types import Delta, Finish, TokenLogprob
from playground.models import Deployment, InvocationLog
from playground.v1.params import ChatRequest
from playground.v1.tools import answer_fields


@dataclass
class Call:
    """One chat request in flight: what the response and its log are made of."""

    chat: ChatRequest
    body: dict[str, Any]
    deployment: Deployment
    owner: AbstractBaseUser
    prompt_tokens: int
    started: float
    id: str = field(default_factory=lambda: f"chatcmpl-{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))
    texts: list[str] = field(default_factory=list)
    finishes: dict[int, Finish] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)  # per choice, as far as generated
    logprobs: dict[int, list[TokenLogprob]] = field(default_factory=dict)  # per choice, if asked

    def usage(self) -> dict[str, int]:
        completion = sum(self.tokens.values())
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }

    def record(self, event: Delta | Finish) -> None:
        if isinstance(event, Delta):
            self.texts[event.index] += event.text
            self.tokens[event.index] = event.tokens
            self.logprobs.setdefault(event.index, []).extend(event.logprobs)
        else:
            self.finishes[event.index] = event
            self.tokens[event.index] = event.completion_tokens

    def log_fields(self) -> dict[str, Any]:
        usage = self.usage()
        return {
            "response_text": self.texts[0] if self.texts else "",
            "prompt_tokens": usage["prompt_tokens"],
            "completion_tokens": usage["completion_tokens"],
            "latency_ms": round((time.monotonic() - self.started) * 1000, 1),
        }

    async def create_log(self, **fields: Any) -> InvocationLog | None:
        if not self.deployment.log_requests:
            return None
        return await create_invocation_log(
            self.owner, self.deployment.name, self.body, self.chat.metadata, **fields
        )


async def create_invocation_log(
    owner: AbstractBaseUser,
    deployment: str,
    request: dict[str, Any],
    metadata: dict[str, str],
    **fields: Any,
) -> InvocationLog:
    """One invocation log, as the endpoint and the playground write it."""
    return await InvocationLog.objects.acreate(
        owner=owner, deployment=deployment, request=request, request_metadata=metadata, **fields
    )


def completion_body(call: Call) -> dict[str, Any]:
    choices = []
    for index, text in enumerate(call.texts):
        reason = call.finishes[index].reason if index in call.finishes else "stop"
        fields, reason = answer_fields(call.chat.tools, text, reason)  # tool calls read back
        choices.append(
            {
                "index": index,
                "message": {"role": "assistant", "content": text, "refusal": None, **fields},
                "logprobs": logprobs_body(call, call.logprobs.get(index, [])),
                "finish_reason": reason,
            }
        )
    return {
        "id": call.id, "object": "chat.completion", "created": call.created,
        "model": call.deployment.name, "choices": choices, "usage": call.usage(),
        "system_fingerprint": None,
    }  # fmt: skip


def chunk(call: Call, choices: list[dict[str, Any]], usage: Any = None) -> bytes:
    body = {
        "id": call.id, "object": "chat.completion.chunk", "created": call.created,
        "model": call.deployment.name, "system_fingerprint": None, "choices": choices,
    }  # fmt: skip
    if call.chat.include_usage:
        body["usage"] = usage  # null on every chunk but the last, as OpenAI sends it
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def choice(
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}


def logprobs_body(call: Call, entries: Sequence[TokenLogprob]) -> dict[str, Any] | None:
    """A choice's (or a chunk's) `logprobs` in OpenAI's shape; null unless the request asked."""
    if not call.chat.sampling.logprobs:
        return None
    return {"content": [_logprob(entry, top=True) for entry in entries], "refusal": None}


def _logprob(entry: TokenLogprob, top: bool = False) -> dict[str, Any]:
    body = {"token": entry.token, "logprob": entry.logprob, "bytes": list(entry.bytes)}
    if top:
        body["top_logprobs"] = [_logprob(alternative) for alternative in entry.top]
    return body


def event_stream_response(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """Server-sent events as every /v1 route streams them: never cached, never buffered."""
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # tell reverse proxies not to buffer the stream
    return response
