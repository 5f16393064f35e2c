"""Pages of the rewards app: list, templates gallery, editor (each save is a new version), and
the test bench. State changes go through `rewards.services` and `rewards.testbench`."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from jobs.models import Dataset, ModelEntry, ready_models
from rewards.forms import RewardForm, initial_for
from rewards.library import TEMPLATES, get_template
from rewards.models import RewardFunction, RewardTest, RewardVersion
from rewards.services import RewardError, create_reward, new_version
from rewards.testbench import MAX_TEST_ROWS, TestBenchError, first_rows, start_test
from rftconsole.ownership import get_owned_or_404, owned
from rftconsole.parsers import parse_int

BLANK = {
    "code": ("lambda-boilerplate", "Custom code"),
    "judge": ("judge-instruction-following", "Model as judge"),
    "builtin": ("number-match", "Built-in grader"),
}


@require_GET
def reward_list(request: HttpRequest) -> HttpResponse:
    # Every reward's versions in one query, newest first (RewardVersion's ordering), so that the
    # latest is versions[0] and not one query per reward (reward.latest_version()).
    rewards = list(owned(RewardFunction, request.user).prefetch_related("versions"))
    rows = [(reward, next(iter(reward.versions.all()), None)) for reward in rewards]
    return render(request, "rewards/list.html", {"rows": rows})


@require_GET
def reward_gallery(request: HttpRequest) -> HttpResponse:
    return render(request, "rewards/gallery.html", {"templates": TEMPLATES})


@require_http_methods(["GET", "POST"])
def reward_new(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        template = get_template(slug)
    except KeyError:
        raise Http404("No such template.") from None
    draft = RewardVersion(
        config=template.config, code=template.code, pass_threshold=template.pass_threshold
    )
    initial = {**initial_for(None, draft), "name": slug, "description": template.description}
    form = RewardForm(request.POST or None, initial=initial, kind=template.kind, owner=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = create_reward(
                request.user,
                data["name"],
                template.kind,
                data["description"],
                config=form.config(),
                code=data.get("code", ""),
                pass_threshold=data["pass_threshold"],
                api_key=data.get("api_key") or None,
            )
        except RewardError as error:
            _add_problems(form, error)
        else:
            messages.success(request, f"Created “{version.reward.name}” (version 1).")
            return redirect("rewards:detail", reward_id=version.reward.pk)
    context = {"form": form, "template": template, "kind": template.kind}
    return render(request, "rewards/new.html", context)


@require_http_methods(["GET", "POST"])
def reward_detail(request: HttpRequest, reward_id: int) -> HttpResponse:
    reward = get_owned_or_404(RewardFunction, request.user, pk=reward_id)
    shown = _shown_version(request, reward)
    form = RewardForm(
        request.POST or None,
        initial=initial_for(reward, shown),
        kind=reward.kind,
        owner=request.user,
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = new_version(
                reward,
                config=form.config() if reward.kind != RewardFunction.Kind.CODE else {},
                code=data.get("code", ""),
                pass_threshold=data["pass_threshold"],
                api_key=data.get("api_key") or None,
                description=data["description"],
            )
        except RewardError as error:
            _add_problems(form, error)
        else:
            messages.success(request, f"Saved as version {version.number}.")
            return redirect("rewards:detail", reward_id=reward.pk)
    return render(request, "rewards/detail.html", _detail_context(request, reward, shown, form))


def _shown_version(request: HttpRequest, reward: RewardFunction) -> RewardVersion:
    number = request.GET.get("version")
    try:
        return reward.version(int(number) if number else None)
    except (ValueError, RewardVersion.DoesNotExist):
        raise Http404("No such version.") from None


def _detail_context(
    request: HttpRequest, reward: RewardFunction, shown: RewardVersion, form: RewardForm
) -> dict:
    return {
        "reward": reward,
        "shown": shown,
        "latest": reward.latest_version(),
        "versions": reward.versions.all(),
        "form": form,
        "kind": reward.kind,
        "datasets": owned(Dataset, request.user),
        "models": ready_models(request.user),
        "tests": owned(RewardTest, request.user).filter(version__reward=reward)[:5],
        "max_rows": MAX_TEST_ROWS,
    }


def _add_problems(form: RewardForm, error: RewardError) -> None:
    for field, problems in error.problems.items():
        target = field if field in form.fields else None
        for problem in problems:
            form.add_error(target, problem)


@require_POST
def reward_delete(request: HttpRequest, reward_id: int) -> HttpResponse:
    reward = get_owned_or_404(RewardFunction, request.user, pk=reward_id)
    if reward.versions.filter(jobs__isnull=False).exists():
        messages.error(request, "Jobs use this reward, so it stays for their record.")
        return redirect("rewards:detail", reward_id=reward.pk)
    reward.delete()
    messages.success(request, f"Deleted “{reward.name}”.")
    return redirect("rewards:list")


@require_GET
def test_rows(request: HttpRequest, reward_id: int) -> HttpResponse:
    """The chosen rows' prompts, each with a box to type a completion (htmx partial)."""
    get_owned_or_404(RewardFunction, request.user, pk=reward_id)
    dataset = get_owned_or_404(Dataset, request.user, pk=_int(request.GET.get("dataset")))
    count = min(max(_int(request.GET.get("rows"), 3), 1), MAX_TEST_ROWS)
    try:
        rows = first_rows(dataset, count, _int(request.GET.get("start"), 0))
    except TestBenchError as error:
        return render(request, "rewards/_bench_error.html", {"error": str(error)})
    return render(request, "rewards/_typed_rows.html", {"rows": rows})


@require_POST
def test_start(request: HttpRequest, reward_id: int) -> HttpResponse:
    reward = get_owned_or_404(RewardFunction, request.user, pk=reward_id)
    version = _shown_version(request, reward)
    post = request.POST
    dataset = get_owned_or_404(Dataset, request.user, pk=_int(post.get("dataset")))
    model = None
    if post.get("source") == "model":
        model = get_owned_or_404(ModelEntry, request.user, pk=_int(post.get("model")))
    try:
        test = start_test(
            request.user,
            version,
            dataset=dataset,
            rows=_int(post.get("rows"), 3),
            start=_int(post.get("start"), 0),
            model=model,
            completions=post.getlist("completion") if model is None else None,
            temperature=float(post.get("temperature") or 1.0),
        )
    except (TestBenchError, ValueError) as error:
        return render(request, "rewards/_bench_error.html", {"error": str(error)})
    return render(request, "rewards/_test.html", {"test": test})


@require_GET
def test_result(request: HttpRequest, test_id: int) -> HttpResponse:
    test = get_owned_or_404(RewardTest, request.user, pk=test_id)
    return render(request, "rewards/_test.html", {"test": test})


def _int(value: str | None, default: int | None = None) -> int:
    """A typed number, its default, or 404 when there is neither (a made-up link)."""
    number = parse_int(value, default)
    if number is None:
        raise Http404("Missing or invalid number.")
    return number
