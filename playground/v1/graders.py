"""OpenAI's grader endpoints: `POST /v1/fine_tuning/alpha/graders/validate` and `/run`.

Views only parse and answer; the graders live in rewards.openai_graders (python graders run in
the sandbox, never here). Both need a key with the `api` scope: running a grader runs user code
in the sandbox and calls judge models, which is what the REST API's reward endpoints (scope
`api`) do, and more than an `inference` key — one meant to be shipped inside an app that only
chats — should be able to start.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse

from playground.v1.params import bad, parse_body, require_api_scope
from playground.v1.views import v1_view
from rewards.openai_graders.running import run_openai_grader
from rewards.openai_graders.validation import (
    Checking,
    GraderProblem,
    validate_grader,
    without_secrets,
)
from rftconsole.models import ApiKey


def _grader(body: dict[str, Any], how: Checking) -> dict[str, Any]:
    if "grader" not in body:
        raise bad("You must provide a grader parameter.", "grader")
    try:
        return validate_grader(body["grader"], how)
    except GraderProblem as problem:
        raise bad(str(problem), problem.param) from None


def _validate(api_key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
    return {"grader": without_secrets(_grader(body, Checking(api_key.owner)))}


def _run(api_key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
    # Lenient: a template variable or formula that fails is an error flag of the run, as OpenAI
    # reports it; only a grader that is malformed (or names another user's model) is a 400.
    grader = _grader(body, Checking(api_key.owner, strict=False))
    sample = body.get("model_sample")
    if not isinstance(sample, str):
        raise bad("'model_sample' must be a string: the sampled text to grade.", "model_sample")
    item = body.get("item") or {}
    if not isinstance(item, dict):
        raise bad("'item' must be a JSON object: the dataset row.", "item")
    return run_openai_grader(grader, sample, item, api_key.owner)


@v1_view(("POST",))
async def validate(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    require_api_scope(api_key, "use graders: they run code and call judge models")
    body = parse_body(request.body)
    return JsonResponse(await sync_to_async(_validate)(api_key, body))


@v1_view(("POST",))
async def run(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    require_api_scope(api_key, "use graders: they run code and call judge models")
    body = parse_body(request.body)
    return JsonResponse(await sync_to_async(_run)(api_key, body))
