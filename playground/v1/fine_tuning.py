"""OpenAI's fine-tuning jobs API over console jobs: `/v1/fine_tuning/jobs` create, list (with a
`metadata[k]=v` filter), retrieve, cancel, pause, resume, events and checkpoints.

Every console job of the key's owner is listed here (`ftjob-<pk>`), not only those made through
this API, and a job made here is an ordinary console job (its page, charts and rollouts). Views
parse and answer; `ft_create` makes jobs, `jobs.actions` changes their state. Like files and
graders, this needs a key with the `api` scope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from jobs.actions import JobActionError, request_pause, request_stop, resume
from jobs.models import Checkpoint, Job, MetricPoint
from playground.v1.ft_create import create_fine_tuning_job
from playground.v1.ft_events import UnknownEvent, list_events
from playground.v1.ft_objects import (
    CHECKPOINT_ID,
    JOB_ID,
    checkpoint_object,
    job_object,
    pk_of,
)
from playground.v1.params import ApiError, bad, page_limit, parse_body, require_api_scope
from playground.v1.views import v1_view
from rftconsole.models import ApiKey
from rftconsole.ownership import owned

MAX_PAGE = 100
WHAT = "manage fine-tuning jobs"


def _jobs(api_key: ApiKey) -> Any:
    related = ("owner", "base_model", "reward_version__reward")
    return owned(Job, api_key.owner).select_related(*related)


def _owned_job(api_key: ApiKey, given: str) -> Job:
    # Malformed, missing and another owner's ids get one answer: ids reveal nothing.
    pk = pk_of(JOB_ID, given)
    job = _jobs(api_key).filter(pk=pk).first() if pk else None
    if job is None:
        raise ApiError(404, f"No such fine-tuning job: {given[:100]}", param="fine_tuning_job_id")
    return job


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": has_more}


def _metadata_filter(query: QueryDict) -> dict[str, str] | None:
    """`metadata[k]=v` pairs (as the openai client sends a dict), `{}` for `metadata=null`."""
    wanted = {}
    for name, value in query.items():
        if name.startswith("metadata[") and name.endswith("]"):
            wanted[name[len("metadata[") : -1]] = value
    if query.get("metadata") == "null":
        if wanted:
            raise bad("Give either metadata=null or metadata[key]=value filters.", "metadata")
        return {}
    return wanted or None


def _listed(api_key: ApiKey, query: QueryDict) -> dict[str, Any]:
    limit = page_limit(query.get("limit"), 20, MAX_PAGE)
    jobs = _jobs(api_key).order_by("-pk")
    if after := query.get("after"):
        pk = pk_of(JOB_ID, after)
        if pk is None:
            raise bad(f"Invalid value for 'after': {after[:100]!r} is not a job id.", "after")
        jobs = jobs.filter(pk__lt=pk)
    wanted = _metadata_filter(query)
    found = []
    for job in jobs.iterator(chunk_size=200):  # metadata is matched here: keys are data
        metadata = job.metadata or {}
        matches = (
            wanted is None
            or (wanted == {} and not metadata)
            or (wanted and all(metadata.get(k) == v for k, v in wanted.items()))
        )
        if matches:
            found.append(job)
            if len(found) > limit:
                break
    return _page([job_object(job) for job in found[:limit]], len(found) > limit)


def _created(api_key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
    job = create_fine_tuning_job(api_key.owner, body)
    return job_object(_owned_job(api_key, f"ftjob-{job.pk}"))


def _acted(api_key: ApiKey, given: str, action: Callable[[Job], None]) -> dict[str, Any]:
    job = _owned_job(api_key, given)
    try:
        action(job)
    except JobActionError as error:
        raise bad(str(error), "fine_tuning_job_id") from None
    return job_object(_owned_job(api_key, given))


def _events(api_key: ApiKey, given: str, query: QueryDict) -> dict[str, Any]:
    job = _owned_job(api_key, given)
    limit = page_limit(query.get("limit"), 20, MAX_PAGE)
    try:
        data, has_more = list_events(job, query.get("after") or None, limit)
    except UnknownEvent:
        raise bad(
            f"Invalid value for 'after': no event {query['after'][:100]!r}.", "after"
        ) from None
    return _page(data, has_more)


def _checkpoints(api_key: ApiKey, given: str, query: QueryDict) -> dict[str, Any]:
    job = _owned_job(api_key, given)
    limit = page_limit(query.get("limit"), 10, MAX_PAGE)
    checkpoints = Checkpoint.objects.filter(job=job).select_related("job__owner").order_by("-step")
    if after := query.get("after"):
        anchor = checkpoints.filter(pk=pk_of(CHECKPOINT_ID, after) or 0).first()
        if anchor is None:
            raise bad(f"Invalid value for 'after': no checkpoint {after[:100]!r}.", "after")
        checkpoints = checkpoints.filter(step__lt=anchor.step)
    page = list(checkpoints[: limit + 1])
    points = {
        point.step: point
        for point in MetricPoint.objects.filter(
            job=job, kind="train", step__in=[c.step for c in page]
        )
    }
    data = [checkpoint_object(c, points.get(c.step)) for c in page[:limit]]
    return {
        **_page(data, len(page) > limit),
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@v1_view(("GET", "POST"))
async def jobs(request: HttpRequest, api_key: ApiKey) -> HttpResponse:
    require_api_scope(api_key, WHAT)
    if request.method == "POST":
        body = parse_body(request.body)
        return JsonResponse(await sync_to_async(_created)(api_key, body))
    return JsonResponse(await sync_to_async(_listed)(api_key, request.GET))


@v1_view(("GET",))
async def job(request: HttpRequest, api_key: ApiKey, job_id: str) -> HttpResponse:
    require_api_scope(api_key, WHAT)
    found = await sync_to_async(_owned_job)(api_key, job_id)
    return JsonResponse(await sync_to_async(job_object)(found))


def _action_view(action: Callable[[Job], None]) -> Any:
    @v1_view(("POST",))
    async def view(request: HttpRequest, api_key: ApiKey, job_id: str) -> HttpResponse:
        require_api_scope(api_key, WHAT)
        return JsonResponse(await sync_to_async(_acted)(api_key, job_id, action))

    return view


cancel = _action_view(request_stop)
pause = _action_view(request_pause)
resume_job = _action_view(resume)


@v1_view(("GET",))
async def events(request: HttpRequest, api_key: ApiKey, job_id: str) -> HttpResponse:
    require_api_scope(api_key, WHAT)
    return JsonResponse(await sync_to_async(_events)(api_key, job_id, request.GET))


@v1_view(("GET",))
async def checkpoints(request: HttpRequest, api_key: ApiKey, job_id: str) -> HttpResponse:
    require_api_scope(api_key, WHAT)
    return JsonResponse(await sync_to_async(_checkpoints)(api_key, job_id, request.GET))
