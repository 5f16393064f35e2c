"""Job pages: the list with progress and accuracy, the job page, actions, rollouts, compare."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from jobs.models import Job, JobEvent, ModelEntry
from tests.support.job_rows import add_points, add_rollout, make_job

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def in_memory_layer(settings) -> None:  # type: ignore[no-untyped-def]
    """Actions announce on the channel layer; these tests need no Redis for that."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}


@pytest.fixture
def training(alice: User) -> Job:
    job = make_job(
        alice,
        "arith-lr",
        status=Job.Status.TRAINING,
        sub_status="Training",
        current_step=12,
        total_steps=48,
        training_seconds=120.0,
        started_at=timezone.now() - timedelta(minutes=3),
    )
    add_points(job, range(1, 13), evals={0: 0.17, 10: 0.55})
    return job


def test_the_list_shows_only_my_jobs_with_progress_eta_and_accuracy(
    alice_client: Client, bob: User, training: Job
) -> None:
    make_job(bob, "bobs-secret-job")
    html = alice_client.get("/jobs/").content.decode()
    assert "arith-lr" in html and "bobs-secret-job" not in html
    assert '<progress value="12" max="48"' in html
    assert "12/48 steps · ETA 6 min" in html  # 10 s a step, 36 steps to go
    assert "17% → 55%" in html and "+38 pp" in html
    assert 'href="/jobs/new/"' in html and 'action="/jobs/compare/"' in html


def test_the_list_shows_25_jobs_a_page_newest_first(
    alice: User, alice_client: Client, bob: User
) -> None:
    jobs = [make_job(alice, f"run-{n:02d}") for n in range(30)]
    for n, job in enumerate(jobs):  # run-29 is the newest
        Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=60 - n))
    make_job(bob, "bobs-job")

    first = alice_client.get("/jobs/").content.decode()
    second = alice_client.get("/jobs/?page=2").content.decode()

    assert "run-29" in first and "run-05" in first and "run-04" not in first
    assert "Jobs 1–25 of 30 · page 1 of 2" in first and 'href="?page=2"' in first
    assert "run-04" in second and "run-00" in second and "run-05" not in second
    assert "Jobs 26–30 of 30 · page 2 of 2" in second and 'href="?page=1"' in second
    assert "bobs-job" not in first + second
    polled = alice_client.get("/jobs/?partial=rows&page=2", headers=HTMX).content.decode()
    assert "run-04" in polled and "run-05" not in polled


def test_the_list_polls_while_a_job_is_active_and_stops_when_none_is(
    alice_client: Client, training: Job
) -> None:
    html = alice_client.get("/jobs/").content.decode()
    assert 'hx-get="/jobs/?partial=rows&amp;page=1" hx-trigger="every 3s"' in html
    Job.objects.filter(pk=training.pk).update(status=Job.Status.COMPLETED)
    partial = alice_client.get("/jobs/?partial=rows", headers=HTMX).content.decode()
    assert partial.startswith('<div id="job-rows">') and "hx-trigger" not in partial
    assert "<html" not in partial and "Completed" in partial


def test_the_job_page_shows_status_timeline_config_and_the_live_chart_container(
    alice_client: Client, training: Job
) -> None:
    JobEvent.objects.create(job=training, status="training", sub_status="Training")
    html = alice_client.get(f"/jobs/{training.pk}/").content.decode()
    assert 'id="job-status">Training</span>' in html and "badge live" in html
    assert 'class="timeline"' in html and "Queued for a gpu worker." in html
    assert '<th scope="row">learningRate</th>' in html and "<code>0.001</code>" in html
    assert "Optimizer step size." in html and ">set</span>" in html  # given, not a default
    assert "arithmetic v1 (builtin, passes at ≥ 1.0)" in html
    assert f'data-ws-path="/ws/jobs/{training.pk}/"' in html
    for chart in ("reward", "validation", "loss", "kl", "entropy", "length", "zero-std"):
        assert f'id="chart-{chart}"' in html
    assert 'id="chart-throughput"' in html and "/static/js/job-live.js" in html
    assert "base 17% → 55% at step 10" in html
    assert "Step 12 of 48 · ETA 6 min" in html


@pytest.mark.parametrize(
    ("status", "shown", "hidden"),
    [
        ("training", ["Pause", "Stop"], ["Resume"]),
        ("queued", ["Pause", "Stop"], ["Resume"]),
        ("paused", ["Resume", "Stop"], ["Pause"]),
        ("stopping", ["Stop"], ["Pause", "Resume"]),
        ("completed", [], ["Pause", "Resume", "Stop"]),
    ],
)
def test_the_buttons_follow_the_status(
    alice: User, alice_client: Client, status: str, shown: list[str], hidden: list[str]
) -> None:
    job = make_job(alice, status=status)
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    for label in shown:
        assert f">{label}</button>" in html
    for label in hidden:
        assert f">{label}</button>" not in html
    assert f'href="/jobs/new/?clone={job.pk}">Clone</a>' in html


class _Forms(HTMLParser):
    """The page's forms: their attributes, inputs and button texts."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._in_form = self._in_button = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "form":
            self.forms.append({"attrs": dict(attrs), "inputs": [], "buttons": []})
            self._in_form = True
        elif tag == "input" and self._in_form:
            self.forms[-1]["inputs"].append(dict(attrs))
        elif tag == "button" and self._in_form:
            self.forms[-1]["buttons"].append({"attrs": dict(attrs), "text": ""})
            self._in_button = True

    def handle_endtag(self, tag: str) -> None:
        self._in_form = self._in_form and tag != "form"
        self._in_button = self._in_button and tag != "button"

    def handle_data(self, data: str) -> None:
        if self._in_button:
            self.forms[-1]["buttons"][-1]["text"] += data


@pytest.mark.parametrize(
    ("status", "offered"),
    [
        ("training", {"pause": ("Pause", None), "stop": ("Stop", "danger")}),
        ("paused", {"resume": ("Resume", "primary"), "stop": ("Stop", "danger")}),
    ],
)
def test_the_job_page_offers_the_actions_its_status_allows(
    alice: User, alice_client: Client, status: str, offered: dict[str, tuple[str, str | None]]
) -> None:
    job = make_job(alice, 'arith "lr" <b>', status=status)
    parser = _Forms()
    parser.feed(alice_client.get(f"/jobs/{job.pk}/").content.decode())
    prefix = f"/jobs/{job.pk}/actions/"
    forms = {
        f["attrs"]["action"].removeprefix(prefix).rstrip("/"): f
        for f in parser.forms
        if f["attrs"].get("action", "").startswith(prefix)
    }
    assert set(forms) == set(offered)
    for action, (label, button_class) in offered.items():
        form = forms[action]
        url = f"{prefix}{action}/"
        attrs = {k: v for k, v in form["attrs"].items() if k != "data-confirm"}
        assert attrs == {  # a plain POST without JavaScript; with htmx, in place
            "method": "post",
            "action": url,
            "hx-post": url,
            "hx-target": "#job-summary",
            "hx-swap": "outerHTML",
            "hx-sync": "closest .job-summary:replace",
        }
        [token] = form["inputs"]
        assert token["type"] == "hidden" and token["name"] == "csrfmiddlewaretoken"
        assert token["value"]
        [button] = form["buttons"]
        assert button["text"] == label and button["attrs"].get("class") == button_class
        assert button["attrs"]["type"] == "submit"
    # Stop asks first, through static/js/confirm.js (no inline handler: the CSP refuses them);
    # the others do not.
    assert forms["stop"]["attrs"]["data-confirm"] == (
        'Stop arith "lr" <b>? It ends at the next step boundary and keeps its best checkpoint.'
    )
    assert all("data-confirm" not in f["attrs"] for a, f in forms.items() if a != "stop")


def test_a_finished_job_links_its_output_model_and_rollouts(
    alice: User, alice_client: Client
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED, output_step=40)
    job.output_model = ModelEntry.objects.create(
        owner=alice, name="arith-tuned", source="/t", path="/t", kind="tuned", status="ready"
    )
    job.save()
    add_rollout(job, 40, [1.0, 0.0])
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/models/{job.output_model.pk}/">arith-tuned</a>' in html
    assert "(checkpoint of step 40)" in html
    assert f'href="/jobs/{job.pk}/rollouts/"' in html


def test_a_high_fraction_of_identical_reward_groups_shows_the_hint(
    alice: User, alice_client: Client
) -> None:
    job = make_job(alice, status=Job.Status.TRAINING)
    add_points(job, range(1, 3))
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert '<p id="zero-std-hint" class="hint" role="status" hidden>' in html
    job.metrics.filter(step=2).update(values={"reward_mean": 0.0, "frac_reward_zero_std": 0.9})
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert '<p id="zero-std-hint" class="hint" role="status">' in html
    assert "Most groups got identical rewards: nothing to learn from" in html


def test_pause_stop_and_resume_go_through_the_job_actions(
    alice_client: Client, training: Job
) -> None:
    response = alice_client.post(f"/jobs/{training.pk}/actions/pause/")
    assert response.status_code == 302 and response.url == f"/jobs/{training.pk}/"
    training.refresh_from_db()
    assert training.requested == Job.Request.PAUSE and training.status == Job.Status.TRAINING
    assert training.events.filter(message="Pause requested: at the next step.").exists()

    response = alice_client.post(f"/jobs/{training.pk}/actions/stop/", headers=HTMX)
    training.refresh_from_db()
    assert training.status == Job.Status.STOPPING
    html = response.content.decode()
    assert 'id="job-status">Stopping</span>' in html and "Stop requested." in html
    assert 'id="job-timeline" aria-labelledby="timeline-title" hx-swap-oob="true"' in html

    Job.objects.filter(pk=training.pk).update(status=Job.Status.PAUSED)
    alice_client.post(f"/jobs/{training.pk}/actions/resume/", headers=HTMX)
    training.refresh_from_db()
    assert training.status == Job.Status.QUEUED and training.requested == ""


def test_an_action_that_does_not_apply_says_why_and_changes_nothing(
    alice: User, alice_client: Client
) -> None:
    job = make_job(alice, status=Job.Status.COMPLETED)
    html = alice_client.post(f"/jobs/{job.pk}/actions/resume/", headers=HTMX).content.decode()
    assert 'class="flash flash-error"' in html and "Only a paused job can be resumed." in html
    job.refresh_from_db()
    assert job.status == Job.Status.COMPLETED
    assert alice_client.post(f"/jobs/{job.pk}/actions/delete/").status_code == 404
    assert alice_client.get(f"/jobs/{job.pk}/actions/stop/").status_code == 405


def test_bob_gets_404_for_alices_job_pages_and_actions(bob_client: Client, training: Job) -> None:
    for url in ("", "rollouts/", "?partial=summary"):
        assert bob_client.get(f"/jobs/{training.pk}/{url}").status_code == 404
    assert bob_client.post(f"/jobs/{training.pk}/actions/stop/").status_code == 404
    training.refresh_from_db()
    assert training.status == Job.Status.TRAINING and training.requested == ""


def test_the_rollout_inspector_shows_groups_and_filters_them(
    alice: User, alice_client: Client
) -> None:
    job = make_job(alice, status=Job.Status.TRAINING)
    add_points(job, range(1, 3))
    add_rollout(job, 1, [1.0, 1.0])
    add_rollout(job, 2, [0.5, None, 1.0, 0.0], errors=2)
    html = alice_client.get(f"/jobs/{job.pk}/rollouts/").content.decode()  # the latest step
    assert '<option value="2" selected>' in html and "← step 1" in html
    assert "What is 2 + 1?" in html and "{&quot;final_answer&quot;: &quot;3&quot;}" in html
    assert "ZeroDivisionError: division by zero" in html and "graded step 2" in html
    assert "2 errors" in html

    def order(show: str) -> list[str]:
        page = alice_client.get(f"/jobs/{job.pk}/rollouts/?step=2&show={show}").content.decode()
        return [line.split("#### ")[1][0] for line in page.split("<pre>answer ")[1:]]

    assert order("all") == ["0", "1", "2", "3"]
    assert order("lowest") == ["0", "1", "3", "2"]  # errors first, then 0.0 < 1.0
    assert order("highest") == ["2", "3", "0", "1"]
    assert order("errors") == ["0", "1"]
    step_one = alice_client.get(f"/jobs/{job.pk}/rollouts/?step=1").content.decode()
    assert "identical rewards" in step_one
    none = alice_client.get(f"/jobs/{job.pk}/rollouts/?step=1&show=errors").content.decode()
    assert "No reward errors at step 1." in none


def test_compare_overlays_the_jobs_and_highlights_what_differs(
    alice: User, alice_client: Client
) -> None:
    first = make_job(alice, "lr-high", hp={"learningRate": 0.001})
    second = make_job(alice, "lr-low", hp={"learningRate": 0.0001}, reward="arithmetic-graded")
    add_points(first, range(1, 4), evals={0: 0.2})
    html = alice_client.get(f"/jobs/compare/?ids={first.pk}&ids={second.pk}").content.decode()
    assert '<tr class="differs">\n        <th scope="row">learningRate' in html
    assert '<td class="differs">0.0001</td>' in html
    assert '<tr>\n        <th scope="row">batchSize' in html  # the same in both: not highlighted
    assert "arithmetic-graded v1" in html and "2 settings differ" in html
    assert 'id="compare-series"' in html and '"reward_mean": 0.21' in html
    only = alice_client.get(
        f"/jobs/compare/?ids={first.pk}&ids={second.pk}&only=differences"
    ).content.decode()
    assert 'scope="row">learningRate' in only and 'scope="row">batchSize' not in only


def test_compare_refuses_others_jobs_and_wrong_counts(
    alice: User, bob: User, alice_client: Client
) -> None:
    mine, theirs = make_job(alice, "mine"), make_job(bob, "theirs")
    assert alice_client.get(f"/jobs/compare/?ids={mine.pk}&ids={theirs.pk}").status_code == 404
    response = alice_client.get(f"/jobs/compare/?ids={mine.pk}")
    assert response.status_code == 302 and response.url == "/jobs/"
    assert alice_client.get(f"/jobs/compare/?ids={mine.pk}&ids=x").status_code == 302
