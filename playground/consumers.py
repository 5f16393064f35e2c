"""The playground's websocket (`ws/playground/<session id>/`): one user turn in, every model of
the session answering side by side, token by token, each answer logged and scored.

Only the signed-in owner may connect; anyone else is closed with 4404, exactly as for a session
that does not exist (an anonymous visitor gets 4401), as on the job page's websocket.

Client → server:
- `{"type": "send", "text": str, "row": {...}?, "settings": {...}?}` starts a turn: every model
  generates at once in the inference pool's threads (as many at a time as RFT_INFERENCE_THREADS).
  `row` (a loaded dataset row) gives the reward its reference answer and extra fields; `settings`
  (system prompt, sampling, reward version) are checked and saved on the session first.
  With `"fresh": true` the turn starts a new conversation: every chat is emptied first, and with
  a `row` the models are sent exactly the row's prompt as validation sends it (its turns up to
  the last user turn, that turn's text being `text`), not the chat so far nor the session's
  system prompt, so scores match validation's. `response_format` (as on /v1/chat/completions:
  json_object, or json_schema with a schema) holds every model's answer to it, for that turn.
- `{"type": "feedback", "log_id": int, "value": "up" | "down" | ""}` rates an answer.

Server → client: `start`, then per model `token` events, one `done` (text, stats, log id) and one
`score` (when the session has a reward), and `finished` once every model is through; `error`
(with `model` when it concerns one model only) for anything that went wrong, `feedback` to confirm.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.auth.models import AnonymousUser

from jobs.models import ModelEntry
from jobs.registry.loading import ModelLoadError
from playground import sessions
from playground.inference.pool import Served, get_pool
from playground.inference.streaming import chat_prompt_ids, stream_choices
from playground.inference.types import Delta, GenerationError, Sampling
from playground.models import PlaygroundSession
from playground.v1.params import ApiError
from playground.v1.responses import create_invocation_log
from playground.v1.structured import response_format_grammar
from rftconsole.ownership import owned
from rftconsole.parsers import json_safe, strict_loads
from rftconsole.websockets import CLOSE_NOT_FOUND, CLOSE_UNAUTHENTICATED


def owned_session(user: Any, session_id: int) -> PlaygroundSession | None:
    return (
        owned(PlaygroundSession, user)
        .select_related("owner", "reward_version__reward")
        .filter(pk=session_id)
        .first()
    )


@dataclass
class Turn:
    """One model's part of a turn, ready to generate."""

    entry: ModelEntry
    served: Served
    messages: list[dict[str, str]]
    prompt_ids: list[int]
    sampling: Sampling
    response_format: dict[str, Any] | None = None  # as sent, for the log; enforced by sampling


class PlaygroundConsumer(AsyncJsonWebsocketConsumer):
    session_id: int | None = None
    turn: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user") or AnonymousUser()
        session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        await self.accept()
        if not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if await database_sync_to_async(owned_session)(user, session_id) is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user, self.session_id = user, session_id
        await self.send_json({"type": "ready", "session": session_id})

    async def disconnect(self, code: int) -> None:
        if self.turn is not None and not self.turn.done():
            self.turn.cancel()  # closes the token streams, which stops their generations

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Garbage frames get an error event, never a closed socket."""
        if self.session_id is None:
            return
        try:
            # strict: 100k nested [ raised RecursionError, past this except, closing the socket
            content = strict_loads(text_data if text_data is not None else bytes_data or b"")
        except (ValueError, UnicodeDecodeError):
            await self.error("Messages must be JSON objects.")
            return
        if not isinstance(content, dict):
            await self.error("Messages must be JSON objects.")
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type")
        if kind == "send":
            await self.start_turn(content)
        elif kind == "feedback":
            await self.feedback(content)
        else:
            await self.error(f"Unknown message type {kind!r}: send 'send' or 'feedback'.")

    async def error(self, message: str, model: int | None = None) -> None:
        event: dict[str, Any] = {"type": "error", "message": message}
        if model is not None:
            event["model"] = model
        await self.send_json(event)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(json_safe(content), allow_nan=False, ensure_ascii=False)

    # --- feedback -------------------------------------------------------------------------------
    async def feedback(self, content: dict[str, Any]) -> None:
        session = await database_sync_to_async(owned_session)(self.user, self.session_id)
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        try:
            value = await database_sync_to_async(sessions.set_feedback)(
                self.user, session, content.get("log_id"), content.get("value")
            )
        except sessions.SessionError as error:
            await self.error(str(error))
            return
        await self.send_json({"type": "feedback", "log_id": content["log_id"], "value": value})

    # --- a turn ---------------------------------------------------------------------------------
    async def start_turn(self, content: dict[str, Any]) -> None:
        if self.turn is not None and not self.turn.done():
            await self.error("Wait for the answers to this turn to finish.")
            return
        text, row = content.get("text"), content.get("row")
        if not isinstance(text, str) or not text.strip():
            await self.error("Type a message to send.")
            return
        if len(text) > sessions.MAX_PROMPT_CHARS:
            await self.error(
                f"The message is too long: {len(text):,} characters; at most "
                f"{sessions.MAX_PROMPT_CHARS:,} are allowed."
            )
            return
        if row is not None and not isinstance(row, dict):
            await self.error("The row must be a JSON object.")
            return
        settings = content.get("settings")
        if settings is not None and not isinstance(settings, dict):
            await self.error("Settings must be a JSON object.")
            return
        fresh = content.get("fresh", False)
        if not isinstance(fresh, bool):
            await self.error("'fresh' must be true or false.")
            return
        try:  # the "JSON schema" option: a grammar every model's answer is held to
            grammar = response_format_grammar(content.get("response_format"))
        except ApiError as error:
            await self.error(error.message)
            return
        try:
            session = await database_sync_to_async(self.prepare)(settings, text, row, fresh)
        except sessions.SessionError as error:
            await self.error(str(error))
            return
        if session is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        turns = await self.prepare_models(session, text, grammar)
        if turns is None:
            return
        for turn in turns:
            turn.response_format = content.get("response_format") if grammar else None
        self.turn = asyncio.create_task(self.run_turn(session, text, row, turns))

    def prepare(
        self, settings: dict[str, Any] | None, text: str, row: dict[str, Any] | None, fresh: bool
    ) -> PlaygroundSession | None:
        session = owned_session(self.user, self.session_id)
        if session is None:
            return None
        prompt = sessions.row_prompt(row, text) if fresh and row is not None else None
        if settings:
            sessions.update_settings(session, settings)
        if fresh:
            sessions.start_fresh(session, prompt)
        return session

    async def prepare_models(
        self, session: PlaygroundSession, text: str, grammar: str | None = None
    ) -> list[Turn] | None:
        """Load each model and fit its prompt, or send why the turn cannot start (then None)."""
        entries = await database_sync_to_async(sessions.session_models)(session)
        if len(entries) < sessions.MIN_MODELS:
            await self.error("Some of this session's models were removed: start a new session.")
            return None
        turns: list[Turn] = []
        for entry in entries:
            try:
                served = await asyncio.to_thread(get_pool().get, entry)
            except ModelLoadError as error:
                await self.error(str(error), entry.pk)
                return None
            messages = sessions.chat_messages(session, entry.pk, text)
            try:
                ids = await asyncio.to_thread(chat_prompt_ids, served.tokenizer, messages)
            except Exception as error:  # noqa: BLE001 - e.g. a template that refuses a role
                await self.error(f"{entry.name}: the chat does not fit its template: {error}")
                return None
            max_tokens = session.max_tokens
            context = served.context_length
            if context:
                room = context - len(ids)
                if room < 1:
                    await self.error(
                        f"The prompt is too long for {entry.name}: {len(ids):,} tokens with the "
                        f"chat so far; the model takes at most {context:,}. Shorten the message, "
                        "the system prompt, or press Clear chat.",
                        entry.pk,
                    )
                    return None
                max_tokens = min(max_tokens, room)
            sampling = Sampling(
                temperature=session.temperature,
                top_p=session.top_p,
                max_tokens=max_tokens,
                seed=session.seed,
                grammar=grammar,
            )
            turns.append(Turn(entry, served, messages, ids, sampling))
        return turns

    async def run_turn(
        self, session: PlaygroundSession, text: str, row: dict[str, Any] | None, turns: list[Turn]
    ) -> None:
        await self.send_json({"type": "start", "models": [t.entry.pk for t in turns]})
        results = await asyncio.gather(
            *(self.answer(session, turn, row) for turn in turns), return_exceptions=True
        )
        answers: dict[int, dict[str, Any]] = {}
        for turn, result in zip(turns, results, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                await self.error(f"{turn.entry.name}: {result}", turn.entry.pk)
            elif result is not None:
                answers[turn.entry.pk] = result
        if answers:
            await database_sync_to_async(sessions.append_turn)(session.pk, text, answers)
        await self.send_json({"type": "finished"})

    async def answer(
        self, session: PlaygroundSession, turn: Turn, row: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        model = turn.entry.pk
        started = time.monotonic()
        first: float | None = None
        text, tokens = "", 0
        events = stream_choices(get_pool(), turn.served, turn.prompt_ids, turn.sampling)
        try:
            async with aclosing(events):
                async for event in events:
                    if isinstance(event, Delta):
                        first = first or time.monotonic()
                        text += event.text
                        tokens = event.tokens
                        await self.send_json({"type": "token", "model": model, "text": event.text})
                    else:
                        tokens = event.completion_tokens
        except GenerationError as error:
            await self.error(str(error), model)
            return None
        ended = time.monotonic()
        stats = answer_stats(started, first, ended, len(turn.prompt_ids), tokens)
        request = {"model": turn.entry.name, "messages": turn.messages}
        request.update(sessions.sampling_body(session))
        if turn.response_format is not None:
            request["response_format"] = turn.response_format
        log = await create_invocation_log(
            self.user,
            turn.entry.name[:100],
            request,
            sessions.log_metadata(session, turn.entry),
            response_text=text,
            prompt_tokens=stats["prompt_tokens"],
            completion_tokens=stats["completion_tokens"],
            latency_ms=round((ended - started) * 1000, 1),
        )
        await self.send_json(
            {"type": "done", "model": model, "text": text, "log_id": log.pk, **stats}
        )
        answer: dict[str, Any] = {"content": text, "log_id": log.pk, "stats": stats, "feedback": ""}
        if session.reward_version is not None:
            reward_row = sessions.reward_row(turn.messages, row)
            result = await database_sync_to_async(sessions.score_answer, thread_sensitive=False)(
                session.reward_version, text, reward_row
            )
            score = {"score": result.score, "components": result.components, "error": result.error}
            answer["score"] = score
            await self.send_json({"type": "score", "model": model, "log_id": log.pk, **score})
        return answer


def answer_stats(
    started: float, first: float | None, ended: float, prompt_tokens: int, tokens: int
) -> dict[str, Any]:
    """Time to first token, and tokens/s after it (over the whole answer for one token)."""
    ttft = (first - started) if first is not None else None
    if first is not None and tokens > 1 and ended > first:
        rate = (tokens - 1) / (ended - first)
    else:
        rate = tokens / (ended - started) if ended > started else None
    return {
        "ttft_ms": round(ttft * 1000, 1) if ttft is not None else None,
        "tokens_per_second": round(rate, 2) if rate is not None else None,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": tokens,
    }
