"""`POST /v1/completions`: OpenAI's legacy completions, prompt in, text out.

What evaluation harnesses use to score log-likelihoods (lm-eval's `local-completions` sends
token ids with `echo: true, max_tokens: 1, logprobs: 1` and sums the prompt's token logprobs):
`echo` puts the prompt before the answer, `logprobs` (0 to 5) gives OpenAI's legacy shape
`{tokens, token_logprobs, top_logprobs, text_offset}` and `max_tokens: 0` scores the prompt
without generating. Logprobs come from one forward pass over the prompt and the answer's tokens
(playground.inference.scoring): the model's own distribution, whatever the sampling settings.
Each prompt gets `n` choices, indexed prompt by prompt as OpenAI does.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from playground.inference.pool import Served, get_pool
from playground.inference.scoring import score_ids
from playground.inference.streaming import ChoiceStream, stream_choices
from playground.inference.types import Delta, Finish, GenerationError
from playground.models import Deployment, InvocationLog
from playground.v1.completion_params import CompletionRequest, Prompt, parse_completion_request
from playground.v1.params import ApiError, bad, check_vocabulary, parse_body
from playground.v1.responses import event_stream_response
from playground.v1.route_logs import COMPLETIONS, StreamLog, open_log, usage_fields, with_log_id
from playground.v1.views import deployment_named, served_model, v1_view
from rftconsole.models import ApiKey


@dataclass
class Prepared:
    ids: list[int]
    text: str  # what `echo` puts before the answer


@dataclass
class Choice:
    prompt: int
    text: str = ""
    reason: str = "length"
    tokens: int = 0
    ids: tuple[int, ...] = ()
    logprobs: dict[str, Any] | None = None


@dataclass
class Run:
    """One completions request in flight."""

    request: CompletionRequest
    body: dict[str, Any]
    deployment: Deployment
    served: Served
    prompts: list[Prepared]
    started: float
    id: str = field(default_factory=lambda: f"cmpl-{secrets.token_hex(12)}")
    created: int = field(default_factory=lambda: int(time.time()))
    choices: list[Choice] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.request.n
        self.choices = [Choice(index // n) for index in range(len(self.prompts) * n)]

    def record(self, prompt: int, event: Delta | Finish) -> int:
        """Record one event of a prompt's generation; the choice's index in the response."""
        index = prompt * self.request.n + event.index
        choice = self.choices[index]
        if isinstance(event, Delta):
            choice.text += event.text
            choice.tokens = event.tokens
        else:
            choice.reason, choice.tokens, choice.ids = (
                event.reason,
                event.completion_tokens,
                event.ids,
            )
        return index

    def usage(self) -> dict[str, int]:
        prompt = sum(len(p.ids) for p in self.prompts)
        completion = sum(c.tokens for c in self.choices)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def log_fields(self) -> dict[str, Any]:
        usage = self.usage()
        text = self.choices[0].text if self.choices else ""
        return {
            "response_text": text,
            **usage_fields(usage["prompt_tokens"], usage["completion_tokens"], self.started),
        }

    def shown_text(self, choice: Choice) -> str:
        echoed = self.prompts[choice.prompt].text if self.request.echo else ""
        return echoed + choice.text

    def body_json(self) -> dict[str, Any]:
        choices = [
            {
                "text": self.shown_text(c),
                "index": i,
                "logprobs": c.logprobs,
                "finish_reason": c.reason,
            }
            for i, c in enumerate(self.choices)
        ]
        return {
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.deployment.name, "choices": choices, "usage": self.usage(),
            "system_fingerprint": None,
        }  # fmt: skip

    def chunk(self, index: int, text: str, reason: str | None = None, usage: Any = None) -> bytes:
        choices = (
            []
            if index < 0
            else [{"text": text, "index": index, "logprobs": None, "finish_reason": reason}]
        )
        body = {
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.deployment.name, "choices": choices, "system_fingerprint": None,
        }  # fmt: skip
        if self.request.include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def prepare_completion(
    api_key: ApiKey, request: CompletionRequest
) -> tuple[Deployment, Served, list[Prepared]]:
    """The deployment, its model in memory and each prompt's token ids, in one sync trip."""
    deployment = deployment_named(api_key, request.model)
    served = served_model(deployment)
    if request.sampling.logit_bias:
        check_vocabulary(request.sampling, len(served.tokenizer))
    prompts = [_tokenize(served, prompt, number) for number, prompt in enumerate(request.prompts)]
    _fit_context(request, served, max(len(p.ids) for p in prompts))
    return deployment, served, prompts


def _tokenize(served: Served, prompt: Prompt, number: int) -> Prepared:
    tokenizer = served.tokenizer
    if isinstance(prompt, str):
        ids = list(tokenizer(prompt)["input_ids"])  # special tokens as the tokenizer adds them
        if not ids:
            raise bad(f"Prompt {number} is empty: give at least one token.", "prompt")
        return Prepared(ids, prompt)
    vocabulary = len(tokenizer)
    if any(not 0 <= token < vocabulary for token in prompt):
        raise bad(
            f"Prompt {number} has token ids outside this model's vocabulary "
            f"(0 to {vocabulary - 1}).",
            "prompt",
        )
    return Prepared(prompt, tokenizer.decode(prompt))


def _fit_context(request: CompletionRequest, served: Served, longest: int) -> None:
    """Refuse what cannot fit the model's context; shorten the default max_tokens to fit."""
    context = served.context_length
    if not context:
        return
    room = context - longest
    if room < 0 or (request.max_tokens_given and request.max_tokens > room):
        raise ApiError(
            400,
            f"This model's maximum context length is {context} tokens, however you requested "
            f"{longest + request.max_tokens} tokens ({longest} in your prompt; "
            f"{request.max_tokens} for the completion). Please reduce your prompt; or completion "
            "length.",
            param="prompt",
            code="context_length_exceeded",
        )
    if request.max_tokens > room:  # the default 16, shortened to what fits (0: score only)
        request.max_tokens = room
        request.sampling = replace(request.sampling, max_tokens=max(room, 1))


def _events(run: Run, prompt: int) -> ChoiceStream | None:
    if run.request.max_tokens == 0:
        return None
    return stream_choices(get_pool(), run.served, run.prompts[prompt].ids, run.request.sampling)


@v1_view(("POST",))
async def completions(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    started = time.monotonic()
    body = parse_body(request.body)
    parsed = parse_completion_request(body)
    deployment, served, prompts = await sync_to_async(prepare_completion)(api_key, parsed)
    run = Run(parsed, body, deployment, served, prompts, started)
    first = _events(run, 0)  # the model works on the first prompt while the log is written
    if parsed.stream:
        try:
            log = await open_log(deployment, api_key.owner, body, parsed.metadata, COMPLETIONS)
        except BaseException:
            if first is not None:
                await first.aclose()
            raise
        response: HttpResponse = event_stream_response(_stream(run, first, log))
        return with_log_id(response, log)
    try:
        for number in range(len(prompts)):
            events = first if number == 0 else _events(run, number)
            if events is not None:
                async with aclosing(events):  # a cancelled request stops its generation
                    async for event in events:
                        run.record(number, event)
        if parsed.logprobs is not None:
            await _add_logprobs(run, parsed.logprobs)
    except GenerationError as error:
        raise ApiError(500, str(error), type_="server_error") from None
    log = await open_log(
        deployment, api_key.owner, body, parsed.metadata, COMPLETIONS, **run.log_fields()
    )
    return with_log_id(JsonResponse(run.body_json()), log)


async def _stream(
    run: Run, first: ChoiceStream | None, log: InvocationLog | None
) -> AsyncIterator[bytes]:
    """Echoed prompts, text deltas and a finish chunk per choice, usage if asked, [DONE]."""
    stream_log = StreamLog(log, run.log_fields)
    n = run.request.n
    try:
        for number, prompt in enumerate(run.prompts):
            if run.request.echo:
                for index in range(number * n, (number + 1) * n):
                    yield run.chunk(index, prompt.text)
            events = first if number == 0 else _events(run, number)
            if events is None:  # max_tokens 0: nothing to generate
                for index in range(number * n, (number + 1) * n):
                    yield run.chunk(index, "", "length")
                continue
            async with aclosing(events):  # a client that goes away stops its generation
                async for event in events:
                    index = run.record(number, event)
                    if isinstance(event, Delta):
                        yield run.chunk(index, event.text)
                    else:
                        yield run.chunk(index, "", event.reason)
        await stream_log.complete()
        if run.request.include_usage:
            yield run.chunk(-1, "", usage=run.usage())
        yield b"data: [DONE]\n\n"
    except GenerationError as error:
        failure = ApiError(500, str(error), type_="server_error")
        yield f"data: {json.dumps(failure.body())}\n\n".encode()
    finally:
        if first is not None:
            await first.aclose()
        await stream_log.complete()


async def _add_logprobs(run: Run, top: int) -> None:
    loop = asyncio.get_running_loop()
    for choice in run.choices:
        prompt = run.prompts[choice.prompt]
        ids = returned_ids(run.served, choice.ids, choice.text)
        choice.logprobs = await loop.run_in_executor(
            get_pool().executor, legacy_logprobs, run.served, prompt, ids, run.request.echo, top
        )


def returned_ids(served: Served, ids: tuple[int, ...], text: str) -> list[int]:
    """The generated ids that make up the returned text: all of them (the end-of-turn token
    too) unless a stop sequence cut the text, then those whose text lies before the cut."""

    def shown(upto: int) -> str:
        text = served.tokenizer.decode(list(ids[:upto]), skip_special_tokens=True)
        return text.replace("\x00", "\ufffd")  # as the generation's text has it

    if shown(len(ids)) == text:
        return list(ids)
    count = len(ids)
    while count > 0 and len(shown(count)) > len(text):
        count -= 1
    return list(ids[:count])


def legacy_logprobs(
    served: Served, prompt: Prepared, ids: list[int], echo: bool, top: int
) -> dict[str, Any]:
    """OpenAI's legacy logprobs of the answer's tokens (and the prompt's, with echo; the first
    prompt token has no logprob). Offsets count characters of the returned text."""
    scores = score_ids(served, prompt.ids + ids, top)
    tokenizer = served.tokenizer

    def piece(token: int) -> str:
        return tokenizer.decode([token]).replace("\x00", "\ufffd")

    offsets: list[int] = []
    if echo:
        offsets = prefix_lengths(tokenizer, prompt.ids)
    else:
        scores = scores[len(prompt.ids) :]
    base = len(prompt.text) if echo else 0
    offsets += [base + length for length in prefix_lengths(tokenizer, ids, skip_special=True)]
    top_logprobs: list[dict[str, float] | None] = []
    for score in scores:
        if score.logprob is None:
            top_logprobs.append(None)
            continue
        best = {piece(token): logprob for token, logprob in score.top}
        best.setdefault(piece(score.id), score.logprob)  # OpenAI always includes the chosen one
        top_logprobs.append(best)
    return {
        "tokens": [piece(score.id) for score in scores],
        "token_logprobs": [score.logprob for score in scores],
        "top_logprobs": top_logprobs,
        "text_offset": offsets,
    }


BLOCK = 128  # prefixes decoded whole: one per block
WINDOW = 8  # tokens of context before a block: a split character, a leading space


def prefix_lengths(tokenizer: Any, ids: list[int], skip_special: bool = False) -> list[int]:
    """`len(decode(ids[:i]))` for every i, in about linear time: decoding every prefix whole is
    quadratic (a 32k-token prompt with echo and logprobs: minutes of CPU). Each block's start is
    decoded whole; within it, the text the block's tokens add is measured on a short window
    before it, and where that disagrees with the next block's whole decode, the block is redone
    prefix by prefix."""

    def length(start: int, stop: int) -> int:
        return len(tokenizer.decode(ids[start:stop], skip_special_tokens=skip_special))

    lengths: list[int] = []
    for block in range(0, len(ids), BLOCK):
        end = min(block + BLOCK, len(ids))
        whole = length(0, block)
        window = max(block - WINDOW, 0)
        before = length(window, block)
        fast = [whole + length(window, i) - before for i in range(block, end)]
        if whole + length(window, end) - before != length(0, end):
            fast = [length(0, i) for i in range(block, end)]  # a tokenizer that is not local
        lengths += fast
    return lengths
