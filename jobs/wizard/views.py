"""The job creation wizard: one step per screen, checked on the server, kept as a draft.

/jobs/new/ lists drafts and starts one (or clones a job with ?clone=<id>); each step lives at
/jobs/drafts/<id>/<step>/. The logic is in `jobs.wizard.steps`; these views route and render.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from jobs.datasets.tools import page_of_rows
from jobs.models import Dataset, Job, JobDraft, ready_models
from jobs.training import hyperparameters
from jobs.training.preflight import default_profile
from jobs.wizard.steps import (
    FIELD_STEP,
    SLUGS,
    STEPS,
    check_step,
    draft_from_job,
    launch,
    plan,
)
from rewards.library import TEMPLATES
from rewards.models import RewardFunction
from rewards.testbench import TestBenchError, start_test
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int
from rftconsole.security.crypto import at_rest_enabled


@require_http_methods(["GET", "POST"])
def wizard_start(request: HttpRequest) -> HttpResponse:
    clone = request.GET.get("clone")
    if clone:
        job = get_owned_or_404(Job, request.user, pk=parse_int(clone, 0))
        draft = draft_from_job(request.user, job)
        messages.success(request, f"Copied “{job.name}”: check each step, then create.")
        return redirect("jobs:step", draft_id=draft.pk, step="review")
    if request.method == "POST":
        draft = JobDraft.objects.create(owner=request.user)
        return redirect("jobs:step", draft_id=draft.pk, step=SLUGS[0])
    # Counted against the real step list (a stale "of 5" once outlived a sixth step).
    drafts = [
        (draft, sum(slug in draft.completed for slug in SLUGS))
        for draft in owned(JobDraft, request.user)
    ]
    return render(request, "jobs/wizard/start.html", {"drafts": drafts, "steps": STEPS})


@require_http_methods(["GET", "POST"])
def wizard_step(request: HttpRequest, draft_id: int, step: str) -> HttpResponse:
    draft = get_owned_or_404(JobDraft, request.user, pk=draft_id)
    if step not in SLUGS:
        raise Http404("No such step.")
    errors: dict[str, str] = {}
    if request.method == "POST":
        if step == "review":
            job, errors = launch(draft)
            if job is not None:
                messages.success(request, f"“{job.name}” is queued for a gpu worker.")
                return redirect("jobs:detail", job_id=job.pk)
        else:
            errors = check_step(draft, step, request.POST)
            if not errors:
                return redirect("jobs:step", draft_id=draft.pk, step=SLUGS[SLUGS.index(step) + 1])
    return render(request, "jobs/wizard/step.html", _context(request, draft, step, errors))


def _context(request: HttpRequest, draft: JobDraft, step: str, errors: dict) -> dict:
    index = SLUGS.index(step)
    context = {
        "draft": draft,
        "data": {**draft.data, **request.POST.dict()} if request.method == "POST" else draft.data,
        "step": STEPS[index],
        "steps": STEPS,
        "number": index + 1,
        "previous": SLUGS[index - 1] if index else None,
        "errors": errors,
    }
    owner = request.user
    if step == "basics":
        context["models"] = ready_models(owner).select_related("base")
    elif step == "data":
        context["datasets"] = owned(Dataset, owner)
    elif step == "reward":
        context["rewards"] = owned(RewardFunction, owner).prefetch_related("versions")
        context["templates"] = TEMPLATES
    elif step == "hyperparameters":
        typed = request.POST if request.method == "POST" else None
        context["basic"], context["advanced"] = _params(draft, typed, errors)
        context["advanced_open"] = any(
            item["error"] or item["changed"] for item in context["advanced"]
        )
    elif step == "security":
        context["encryption"] = at_rest_enabled()
    elif step == "review":
        context["plan"] = plan(draft)
        context["field_steps"] = {
            field: FIELD_STEP.get(field, "hyperparameters") for field in errors
        }
    return context


def _params(
    draft: JobDraft, typed: QueryDict | None, errors: dict[str, str]
) -> tuple[list[dict], list[dict]]:
    """(basic, advanced) fields. After a refused POST every typed value comes back as typed,
    valid or not, so one mistake never costs the others."""
    given = typed if typed is not None else draft.data.get("hyperparameters") or {}
    profile = default_profile()
    basic: list[dict] = []
    advanced: list[dict] = []
    for param in hyperparameters.PARAMS:
        value = str(given.get(param.name, "")).strip()
        default = param.default(profile)
        item = {
            "param": param,
            "value": value,
            "default": default,
            "error": errors.get(param.name, ""),
            "changed": value != "" and not _same(param, value, default),
        }
        (basic if param.basic else advanced).append(item)
    return basic, advanced


def _same(param: hyperparameters.Param, value: str, default: object) -> bool:
    """Whether a typed value means the default ("0.0010" is 1e-3); a bad value never does."""
    values, errors = hyperparameters.resolve({param.name: value}, "cpu")
    return param.name not in errors and values[param.name] == default


@require_POST
def wizard_discard(request: HttpRequest, draft_id: int) -> HttpResponse:
    get_owned_or_404(JobDraft, request.user, pk=draft_id).delete()
    messages.success(request, "Draft discarded.")
    return redirect("jobs:new")


def wizard_preview(request: HttpRequest, draft_id: int) -> HttpResponse:
    """The chosen dataset's first rows, inline in the data step (htmx)."""
    get_owned_or_404(JobDraft, request.user, pk=draft_id)
    value = request.GET.get("train_dataset", "").strip()
    if not value:  # nothing chosen yet (the select's "—"): a hint, not a 404
        return render(request, "jobs/wizard/_choose_dataset.html")
    dataset = get_owned_or_404(Dataset, request.user, pk=parse_int(value, 0))
    rows = [(i + 1, row) for i, row in enumerate(page_of_rows(dataset, 0, 3))]
    context = {"dataset": dataset, "rows": rows, "offset": 0, "last_shown": len(rows)}
    return render(request, "datasets/_rows.html", context)


@require_POST
def wizard_test_reward(request: HttpRequest, draft_id: int) -> HttpResponse:
    """Test the chosen reward on 3 training rows, answers sampled from the chosen base model."""
    draft = get_owned_or_404(JobDraft, request.user, pk=draft_id)
    value = request.POST.get("reward", "")
    reward = get_owned_or_404(RewardFunction, request.user, pk=parse_int(value, 0))
    base = ready_models(request.user).filter(pk=draft.data.get("base_model")).first()
    dataset = owned(Dataset, request.user).filter(pk=draft.data.get("train_dataset")).first()
    if base is None or dataset is None:
        error = "Choose the base model and the training data first (steps 1 and 2)."
        return render(request, "rewards/_bench_error.html", {"error": error})
    try:
        test = start_test(
            request.user, reward.latest_version(), dataset=dataset, rows=3, model=base
        )
    except TestBenchError as error:
        return render(request, "rewards/_bench_error.html", {"error": str(error)})
    return render(request, "rewards/_test.html", {"test": test})
