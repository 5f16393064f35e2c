"""The OpenAI-compatible endpoint: `GET /v1/models` and `POST /v1/chat/completions`.

Plain async Django views, so that a request waiting for tokens holds no thread: generation runs
in the inference pool's threads, database work in Django's sync thread for short moments. They
authenticate with the console's API keys (`Authorization: Bearer`), never with the session, and
answer every failure (including unknown `/v1/` URLs) as OpenAI JSON, never a login redirect.
Streams are server-sent events exactly as OpenAI sends them, ending with `data: [DONE]`.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobs.registry.loading import ModelLoadError
from playground.deployments import mark_failed
from playground.inference.pool import Served, get_pool
from playground.inference.streaming import chat_prompt_ids, stream_choices
from playground.inference.types import Delta, Finish, GenerationError
from playground.models import Deployment, InvocationLog
from playground.v1.ft_models import ft_deployment, ft_models
from playground.v1.params import (
    ApiError,
    ChatRequest,
    check_vocabulary,
    parse_body,
    parse_chat_request,
)
from playground.v1.ratelimit import take
from playground.v1.responses import (
    Call,
    choice,
    chunk,
    completion_body,
    event_stream_response,
    logprobs_body,
)
from playground.v1.route_logs import StreamLog, with_log_id
from playground.v1.structured import apply_response_format
from playground.v1.tools import apply_tools, prepare_tools, stream_deltas
from rftconsole.models import ApiKey
from rftconsole.ownership import owned
from rftconsole.services import authenticate_api_key

View = Callable[..., Awaitable[HttpResponse]]


def v1_view(methods: tuple[str, ...], authenticate: bool = True) -> Callable[[View], View]:
    """Method check, then API key and rate limit; any ApiError becomes OpenAI's error JSON."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                if request.method not in methods:
                    message = f"Method {request.method} is not allowed on {request.path}."
                    raise ApiError(405, message)
                if not authenticate:
                    return await view(request, *args, **kwargs)
                authorization = request.headers.get("Authorization", "")
                api_key = await sync_to_async(_admit)(authorization)
                return await view(request, api_key, *args, **kwargs)
            except ApiError as error:
                return error.response()
            except SuspiciousOperation as error:  # e.g. more query fields than Django parses
                return ApiError(400, f"Bad request: {error}").response()

        return csrf_exempt(login_not_required(wrapper))

    return decorate


def _admit(authorization: str) -> ApiKey:
    """The caller's key, counted against its rate limit. Sync, and called in one trip to the
    request's sync thread: every hop between the event loop and that thread adds to the time to
    first token."""
    api_key = _authenticate(authorization)
    _rate_limit(api_key)
    return api_key


def _authenticate(authorization: str) -> ApiKey:
    scheme, _, raw_key = authorization.partition(" ")
    raw_key = raw_key.strip()
    if scheme.lower() != "bearer" or not raw_key:
        raise ApiError(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            code="invalid_api_key",
        )
    api_key = authenticate_api_key(raw_key)
    if api_key is None:
        masked = f"{raw_key[:8]}{'*' * 8}{raw_key[-4:]}" if len(raw_key) > 16 else "*" * 8
        raise ApiError(
            401,
            f"Incorrect API key provided: {masked}. Create a key on the console's API keys page.",
            code="invalid_api_key",
        )
    return api_key


def _rate_limit(api_key: ApiKey) -> None:
    limit = settings.RFT_RATE_LIMIT_PER_MINUTE
    retry_after = take(api_key.lookup, limit)
    if retry_after is not None:
        raise ApiError(
            429,
            f"Rate limit reached for API key {api_key.display_prefix}… on requests per minute: "
            f"Limit {limit}. Please try again in {retry_after}s.",
            type_="requests",
            code="rate_limit_exceeded",
            headers={
                "Retry-After": str(retry_after),
                "x-ratelimit-limit-requests": str(limit),
                "x-ratelimit-remaining-requests": "0",
            },
        )


def _model_object(deployment: Deployment) -> dict[str, Any]:
    return {
        "id": deployment.name,
        "object": "model",
        "created": int(deployment.created_at.timestamp()),
        "owned_by": deployment.owner.get_username(),
    }


@v1_view(("GET",))
async def list_models(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    """The caller's Active deployments and succeeded jobs' `ft:` models, as OpenAI lists models."""
    deployments = owned(Deployment, api_key.owner).select_related("owner")
    active = deployments.filter(status=Deployment.Status.ACTIVE).order_by("name")
    data = [_model_object(d) async for d in active]
    owner = api_key.owner.get_username()
    for name, created in await sync_to_async(ft_models)(api_key.owner):
        data.append({"id": name, "object": "model", "created": created, "owned_by": owner})
    return JsonResponse({"object": "list", "data": data})


@v1_view(("GET",))
async def retrieve_model(request: HttpRequest, api_key: ApiKey, model: str) -> HttpResponse:
    return JsonResponse(_model_object(await sync_to_async(deployment_named)(api_key, model)))


@v1_view(("GET", "POST", "PUT", "PATCH", "DELETE"), authenticate=False)
async def unknown_url(request: HttpRequest, rest: str = "") -> HttpResponse:
    raise ApiError(404, f"Invalid URL ({request.method} {request.path})")


def deployment_named(api_key: ApiKey, name: str) -> Deployment:
    if name.startswith("ft:"):  # a job's tuned model or checkpoint: served without a deploy
        return ft_deployment(api_key.owner, name)
    # get(), not first(): a live name is unique per owner, and an unordered lookup compiles in
    # half the time (this query is on every request's way to its first token).
    deployments = owned(Deployment, api_key.owner).select_related("model__base")
    try:
        deployment: Deployment | None = deployments.exclude(status=Deployment.Status.DELETED).get(
            name=name
        )
    except Deployment.DoesNotExist:
        deployment = None
    else:
        deployment.owner = api_key.owner  # owned(): the key's own user, already loaded
    if deployment is not None and deployment.status == Deployment.Status.ACTIVE:
        return deployment
    message = f"The model `{name}` does not exist or you do not have access to it."
    if deployment is not None and deployment.status == Deployment.Status.CREATING:
        message = f"The model `{name}` is still being deployed: try again in a moment."
    elif deployment is not None:
        message = f"The model `{name}` failed to deploy: {deployment.status_reason}"
    raise ApiError(404, message, param="model", code="model_not_found")


def served_model(deployment: Deployment) -> Served:
    try:
        return get_pool().get(deployment.model)  # loads it on the first request after a restart
    except ModelLoadError as error:
        mark_failed(deployment, str(error))
        raise ApiError(500, str(error), type_="server_error", code="model_load_failed") from None


def prepare_chat(api_key: ApiKey, chat: ChatRequest) -> tuple[Deployment, Served, list[int]]:
    """The deployment, its model in memory and the prompt's token ids, in one sync trip."""
    deployment = deployment_named(api_key, chat.model)
    served = served_model(deployment)
    if chat.sampling.logit_bias:
        check_vocabulary(chat.sampling, len(served.tokenizer))
    tools = prepare_tools(served.tokenizer, chat)  # a 400 for a template without a tool format
    try:
        prompt_ids = chat_prompt_ids(served.tokenizer, chat.messages, tools)
    except Exception as error:  # noqa: BLE001 - a template's own check, e.g. roles must alternate
        message = f"The messages do not fit this model's chat template: {error}"
        raise ApiError(400, message, param="messages") from None
    _fit_context(chat, served, len(prompt_ids))
    return deployment, served, prompt_ids


def _fit_context(chat: ChatRequest, served: Served, prompt_tokens: int) -> None:
    """Refuse what cannot fit the model's context; shorten the default max_tokens to fit."""
    context = served.context_length
    if not context:
        return
    room = context - prompt_tokens
    wanted = chat.sampling.max_tokens
    if room < 1 or (chat.max_tokens_given and wanted > room):
        raise ApiError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt_tokens + wanted} tokens ({prompt_tokens} in the messages, {wanted} in the "
            "completion). Please reduce the length of the messages or completion.",
            param="messages",
            code="context_length_exceeded",
        )
    if wanted > room:
        chat.sampling = replace(chat.sampling, max_tokens=room)


@v1_view(("POST",))
async def chat_completions(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    started = time.monotonic()
    body = parse_body(request.body)
    chat = parse_chat_request(body, settings.RFT_INFERENCE_MAX_TOKENS)
    apply_response_format(body, chat)  # structured outputs (playground.v1.structured)
    apply_tools(body, chat)  # tools, tool_choice (playground.v1.tools)
    deployment, served, prompt_ids = await sync_to_async(prepare_chat)(api_key, chat)
    call = Call(chat, body, deployment, api_key.owner, len(prompt_ids), started)
    call.texts = [""] * chat.sampling.n
    # Generation starts here, so the log and the response headers are written while the model
    # works on the first token.
    events = stream_choices(get_pool(), served, prompt_ids, chat.sampling)
    if chat.stream:
        try:
            log = await call.create_log()
        except BaseException:
            await events.aclose()
            raise
        response: HttpResponse = event_stream_response(_event_stream(call, events, log))
    else:
        try:
            async with aclosing(events):  # a cancelled request stops its generation
                async for event in events:
                    call.record(event)
        except GenerationError as error:
            raise ApiError(500, str(error), type_="server_error") from None
        log = await call.create_log(**call.log_fields())
        response = JsonResponse(completion_body(call))
    return with_log_id(response, log)


async def _event_stream(
    call: Call, events: AsyncIterator[Delta | Finish], log: InvocationLog | None
) -> AsyncIterator[bytes]:
    """Role first, then content deltas, a finish chunk per choice, usage if asked, [DONE].

    The log is completed before [DONE], so a client that reads it next finds it complete; a
    client that goes away mid-stream still gets what was generated logged."""
    stream_log = StreamLog(log, call.log_fields)
    try:
        for index in range(call.chat.sampling.n):
            yield chunk(call, [choice(index, {"role": "assistant", "content": ""})])
        async with aclosing(events):  # a client that goes away stops its generation
            async for event in events:
                call.record(event)
                if call.chat.tools is not None and call.chat.tools.reads_calls:
                    # Tool calls are read back from the whole answer: sent when it finishes.
                    reason = event.reason if isinstance(event, Finish) else None
                    text = call.texts[event.index]
                    for delta, end in stream_deltas(call.chat.tools, text, reason):
                        yield chunk(call, [choice(event.index, delta, end)])
                elif isinstance(event, Delta):
                    logprobs = logprobs_body(call, event.logprobs)
                    delta = choice(event.index, {"content": event.text}, logprobs=logprobs)
                    yield chunk(call, [delta])
                else:
                    yield chunk(call, [choice(event.index, {}, event.reason)])
        await stream_log.complete()
        if call.chat.include_usage:
            yield chunk(call, [], call.usage())
        yield b"data: [DONE]\n\n"
    except GenerationError as error:
        failure = ApiError(500, str(error), type_="server_error")
        yield f"data: {json.dumps(failure.body())}\n\n".encode()
    finally:
        await stream_log.complete()
