"""Job pages: the list, one job's page (status, timeline, config as launched, live charts fed by
the websocket, actions), the rollout inspector and the comparison of runs.

Views only parse, look up the owner's rows and render; state changes go through `jobs.actions`.
Every page works without JavaScript except for what is live (charts, log).
"""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from jobs import actions
from jobs.models import Job, MetricPoint, Rollout
from jobs.page_cache import list_rows, point_summary
from jobs.summary import (
    FILTERS,
    LIVE,
    ZERO_STD_HINT,
    accuracy_of,
    config_diff,
    config_rows,
    eval_points,
    ft_model_name,
    progress_of,
    rollout_groups,
)
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import json_safe, parse_int

ACTIONS: dict[str, tuple[Callable[[Job], None], str]] = {
    "stop": (actions.request_stop, "Stop requested."),
    "pause": (actions.request_pause, "Pause requested."),
    "resume": (actions.resume, "Resumed: queued to continue from its last checkpoint."),
}
COMPARE_MIN, COMPARE_MAX = 2, 4
# Newest first, a page at a time: the page's cost (mostly rendering rows) must not grow with the
# number of jobs an owner has ever run.
JOBS_PER_PAGE = 25
COMPARE_KEYS = ("reward_mean", "accuracy", "mean_reward", "loss")


def _jobs(request: HttpRequest):  # type: ignore[no-untyped-def]
    return owned(Job, request.user).select_related(
        "base_model", "output_model", "reward_version__reward"
    )


@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(_jobs(request).order_by("-created_at", "-pk"), JOBS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    jobs = list(page.object_list)
    rows = list_rows(jobs)
    context = {"rows": rows, "page": page, "polling": any(job.status in LIVE for job in jobs)}
    if request.htmx and request.GET.get("partial") == "rows":
        return render(request, "jobs/_list_rows.html", context)
    return render(request, "jobs/list.html", context)


def _detail_context(job: Job) -> dict[str, object]:
    return {
        "job": job,
        **point_summary(job),
        "zero_std_threshold": ZERO_STD_HINT,
        "events": job.events.all(),
        "config_rows": config_rows(job),
        "live": job.status in LIVE,
        "can_stop": job.status not in Job.FINISHED,
        "can_pause": job.status in (Job.Status.QUEUED, *Job.ACTIVE)
        and job.status != Job.Status.STOPPING,
        "can_resume": job.status == Job.Status.PAUSED,
        "has_rollouts": Rollout.objects.filter(job=job).exists(),
        "ft_model": (
            ft_model_name(job)
            if job.status == Job.Status.COMPLETED and job.output_model_id
            else None
        ),
    }


@require_GET
def job_detail(request: HttpRequest, job_id: int) -> HttpResponse:
    # With the rows the page names (model, reward, data) in the same query, not one query each.
    job = _jobs(request).select_related("train_dataset").filter(pk=job_id).first()
    if job is None:
        raise Http404("No job matches the given query.")
    context = _detail_context(job)
    if request.htmx and request.GET.get("partial") == "summary":
        return render(request, "jobs/_summary.html", {**context, "oob": True})
    if request.htmx and request.GET.get("partial") == "health":
        return render(request, "jobs/_health.html", context)
    return render(request, "jobs/detail.html", context)


@require_POST
def job_action(request: HttpRequest, job_id: int, action: str) -> HttpResponse:
    job = get_owned_or_404(Job, request.user, pk=job_id)
    if action not in ACTIONS:
        raise Http404("No such action.")
    perform, done = ACTIONS[action]
    try:
        perform(job)
    except actions.JobActionError as error:
        level, text = messages.ERROR, str(error)
    else:
        level, text = messages.SUCCESS, done
    if request.htmx:
        job.refresh_from_db()
        flash = {"level": "error" if level == messages.ERROR else "success", "text": text}
        context = {**_detail_context(job), "oob": True, "flash": flash}
        return render(request, "jobs/_summary.html", context)
    messages.add_message(request, level, text)
    return redirect("jobs:detail", job_id=job.pk)


@require_GET
def job_rollouts(request: HttpRequest, job_id: int) -> HttpResponse:
    job = get_owned_or_404(Job, request.user, pk=job_id)
    steps = list(
        Rollout.objects.filter(job=job).order_by("step").values_list("step", flat=True).distinct()
    )
    show = request.GET.get("show", "all")
    show = show if show in FILTERS else "all"
    step = parse_int(request.GET.get("step"))
    if step not in steps:
        step = steps[-1] if steps else None
    groups = rollout_groups(Rollout.objects.filter(job=job, step=step), show) if steps else []
    at = steps.index(step) if steps else 0
    context = {
        "job": job,
        "steps": steps,
        "step": step,
        "previous_step": steps[at - 1] if steps and at > 0 else None,
        "next_step": steps[at + 1] if steps and at + 1 < len(steps) else None,
        "show": show,
        "filters": FILTERS,
        "groups": groups,
        "reward_output": next((g["rollout"].reward_output for g in groups), ""),
        "point": MetricPoint.objects.filter(job=job, kind="train", step=step).first(),
    }
    return render(request, "jobs/rollouts.html", context)


@require_GET
def job_compare(request: HttpRequest) -> HttpResponse:
    ids = list(dict.fromkeys(parse_int(value) for value in request.GET.getlist("ids")))
    if None in ids or not COMPARE_MIN <= len(ids) <= COMPARE_MAX:
        messages.error(request, f"Choose {COMPARE_MIN} to {COMPARE_MAX} jobs to compare.")
        return redirect("jobs:list")
    jobs = [get_owned_or_404(Job, request.user, pk=job_id) for job_id in ids]
    evals = eval_points(jobs)
    series = []
    points = MetricPoint.objects.filter(job__in=jobs).order_by("step")
    for job in jobs:
        rows = points.filter(job=job).values_list("kind", "step", "epoch", "values")
        series.append(
            {
                "id": job.pk,
                "name": job.name,
                "points": [
                    {"kind": kind, "step": step, "epoch": epoch, "values": _pick(values)}
                    for kind, step, epoch, values in rows
                ],
            }
        )
    only_differences = request.GET.get("only") == "differences"
    diff = config_diff(jobs)
    context = {
        "jobs": [
            {
                "job": job,
                "progress": progress_of(job),
                "accuracy": accuracy_of(evals.get(job.pk, [])),
            }
            for job in jobs
        ],
        "rows": [row for row in diff if row["differs"]] if only_differences else diff,
        "differences": sum(row["differs"] for row in diff),
        "only_differences": only_differences,
        "series": series,
        "ids": ids,
    }
    return render(request, "jobs/compare.html", context)


def _pick(values: dict[str, object]) -> dict[str, object]:
    return json_safe({key: values[key] for key in COMPARE_KEYS if key in values})
