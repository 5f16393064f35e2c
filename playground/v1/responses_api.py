"""`POST /v1/responses`: OpenAI's Responses API for text, over the same generation as chat.

The request becomes a chat (responses_params.py); the answer is one `message` output item with
one `output_text` part, and `usage` counts `input_tokens` / `output_tokens` as the SDK expects. A
stream sends the Responses API's typed events (`event: <type>` and its JSON, each with a
`sequence_number`): created, in_progress, output_item.added, content_part.added, the
output_text deltas, output_text.done, content_part.done, output_item.done, then completed (or
incomplete, when `max_output_tokens` cut the answer). No response is stored: `GET
/v1/responses/{id}` answers 404 saying so; the deployment's invocation log keeps the call.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from playground.inference.pool import get_pool
from playground.inference.streaming import stream_choices
from playground.inference.types import Delta, Finish, GenerationError
from playground.models import Deployment, InvocationLog
from playground.v1.params import ApiError, ChatRequest, parse_body
from playground.v1.responses import event_stream_response
from playground.v1.responses_params import parse_responses_request
from playground.v1.route_logs import RESPONSES, StreamLog, open_log, usage_fields, with_log_id
from playground.v1.views import prepare_chat, v1_view
from rftconsole.models import ApiKey


@dataclass
class Answer:
    """One response in flight: what its object, its events and its log are made of."""

    chat: ChatRequest
    body: dict[str, Any]
    deployment: Deployment
    prompt_tokens: int
    started: float
    id: str = field(default_factory=lambda: f"resp_{secrets.token_hex(24)}")
    item_id: str = field(default_factory=lambda: f"msg_{secrets.token_hex(24)}")
    created: int = field(default_factory=lambda: int(time.time()))
    text: str = ""
    tokens: int = 0
    finish: str | None = None
    sequence: int = 0

    def record(self, event: Delta | Finish) -> None:
        if isinstance(event, Delta):
            self.text += event.text
            self.tokens = event.tokens
        else:
            self.finish, self.tokens = event.reason, event.completion_tokens

    @property
    def status(self) -> str:
        if self.finish is None:
            return "in_progress"
        return "incomplete" if self.finish == "length" else "completed"

    def part(self) -> dict[str, Any]:
        return {"type": "output_text", "text": self.text, "annotations": [], "logprobs": []}

    def item(self, content: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "type": "message", "id": self.item_id, "status": self.status, "role": "assistant",
            "content": content,
        }  # fmt: skip

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": self.tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt_tokens + self.tokens,
        }

    def response(self) -> dict[str, Any]:
        """The response object; while in progress without output or usage, as OpenAI sends it."""
        done = self.finish is not None
        incomplete = {"reason": "max_output_tokens"} if self.status == "incomplete" else None
        return {
            "id": self.id, "object": "response", "created_at": self.created,
            "status": self.status, "error": None, "incomplete_details": incomplete,
            "instructions": self.body.get("instructions"),
            "max_output_tokens": self.body.get("max_output_tokens"),
            "model": self.deployment.name,
            "output": [self.item([self.part()])] if done else [],
            "parallel_tool_calls": self.body.get("parallel_tool_calls", True),
            "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
            "store": False,  # nothing is kept beyond the invocation log
            "temperature": self.chat.sampling.temperature, "top_p": self.chat.sampling.top_p,
            "text": self.text_config(), "tool_choice": "auto", "tools": [],
            "truncation": "disabled", "usage": self.usage() if done else None,
            "user": self.body.get("user"), "metadata": self.chat.metadata,
        }  # fmt: skip

    def text_config(self) -> dict[str, Any]:
        """The `text` object as asked for (the format the answer was held to), else plain text."""
        given = self.body.get("text") or {}
        return {"format": {"type": "text"}, **given}

    def event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    def log_fields(self) -> dict[str, Any]:
        return {
            "response_text": self.text,
            **usage_fields(self.prompt_tokens, self.tokens, self.started),
        }


@v1_view(("POST",))
async def create(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    started = time.monotonic()
    body = parse_body(request.body)
    chat = parse_responses_request(body, settings.RFT_INFERENCE_MAX_TOKENS)
    try:
        deployment, served, prompt_ids = await sync_to_async(prepare_chat)(api_key, chat)
    except ApiError as error:  # chat's own checks name `messages`: here they are the input
        if error.param == "messages":
            error.param = "input"
        raise
    answer = Answer(chat, body, deployment, len(prompt_ids), started)
    events = stream_choices(get_pool(), served, prompt_ids, chat.sampling)
    owner = api_key.owner
    if chat.stream:
        try:
            log = await open_log(deployment, owner, body, chat.metadata, RESPONSES)
        except BaseException:
            await events.aclose()
            raise
        response: HttpResponse = event_stream_response(_event_stream(answer, events, log))
        return with_log_id(response, log)
    try:
        async with aclosing(events):  # a cancelled request stops its generation
            async for event in events:
                answer.record(event)
    except GenerationError as error:
        raise ApiError(500, str(error), type_="server_error") from None
    log = await open_log(deployment, owner, body, chat.metadata, RESPONSES, **answer.log_fields())
    return with_log_id(JsonResponse(answer.response()), log)


async def _event_stream(
    answer: Answer, events: AsyncIterator[Delta | Finish], log: InvocationLog | None
) -> AsyncIterator[bytes]:
    stream_log = StreamLog(log, answer.log_fields)
    where = {"item_id": answer.item_id, "output_index": 0, "content_index": 0}
    try:
        yield answer.event("response.created", response=answer.response())
        yield answer.event("response.in_progress", response=answer.response())
        yield answer.event("response.output_item.added", output_index=0, item=answer.item([]))
        yield answer.event("response.content_part.added", **where, part=answer.part())
        async with aclosing(events):  # a client that goes away stops its generation
            async for event in events:
                answer.record(event)
                if isinstance(event, Delta):
                    yield answer.event(
                        "response.output_text.delta", **where, delta=event.text, logprobs=[]
                    )
        answer.finish = answer.finish or "stop"
        await stream_log.complete()
        yield answer.event("response.output_text.done", **where, text=answer.text, logprobs=[])
        yield answer.event("response.content_part.done", **where, part=answer.part())
        item = answer.item([answer.part()])
        yield answer.event("response.output_item.done", output_index=0, item=item)
        final = "response.incomplete" if answer.status == "incomplete" else "response.completed"
        yield answer.event(final, response=answer.response())
    except GenerationError as error:
        answer.finish = "failed"
        failed = {**answer.response(), "status": "failed"}
        failed["error"] = {"code": "server_error", "message": str(error)}
        yield answer.event("response.failed", response=failed)
    finally:
        await stream_log.complete()


@v1_view(("GET", "DELETE"))
async def stored(request: HttpRequest, api_key: ApiKey, response_id: str) -> HttpResponse:
    """Stored responses are not kept, so there is none to retrieve, list items of or delete."""
    raise ApiError(
        404,
        f"Response with id '{response_id[:100]}' not found: this server does not store "
        "responses (only the deployment's invocation log keeps the call). Keep the response "
        "you received, and send the whole conversation as `input`.",
        param="response_id",
    )
