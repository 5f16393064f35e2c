"""Training health and the job pages that explain themselves: each warning rule (a case that warns
and a control that does not), a reward that fails everywhere failing the job with its documented
reason, validation rows that were reward errors, the published checkpoint in the summary, the ETA,
the live log's history, the reward percentiles and the jobs list's columns."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from transformers import TrainerControl

from jobs import health
from jobs.consumers import backlog
from jobs.models import Job, MetricPoint
from jobs.summary import eta_seconds, progress_of
from jobs.training.callback import JobCallback, RewardErrorsExceeded
from jobs.training.evaluation import summarize
from jobs.training.reward_bridge import RewardBridge, StepRewards
from rewards.types import RewardResult
from tests.support.job_rows import add_points, make_job

HTMX = {"HTTP_HX_REQUEST": "true"}


def train(steps: int, **series: Any) -> list[dict[str, Any]]:
    """`steps` train points; each keyword is a constant or a function of the step."""
    return [
        {
            "kind": "train",
            "step": step,
            "values": {k: v(step) if callable(v) else v for k, v in series.items()},
        }
        for step in range(1, steps + 1)
    ]


def evals(**by_step: float) -> list[dict[str, Any]]:
    """evals(s0=0.3, s20=0.5): eval points with that accuracy (and mean reward)."""
    return [
        {"kind": "eval", "step": int(name[1:]), "values": {"accuracy": a, "mean_reward": a}}
        for name, a in by_step.items()
    ]


def codes(points: list[dict[str, Any]], max_tokens: int | None = None) -> set[str]:
    return {warning.code for warning in health.check(points, max_tokens)}


# --- the rules -----------------------------------------------------------------------------------


def test_reward_errors_warn_above_the_threshold_of_recent_samples() -> None:
    failing = train(6, reward_errors=5, reward_samples=16)  # 31%
    assert "reward-errors" in codes(failing)
    assert "5 of 16" not in health.reward_errors(failing).detail  # summed over the window
    assert "25 of 80" in health.reward_errors(failing).detail
    assert "reward-errors" not in codes(train(6, reward_errors=0, reward_samples=16))


def test_validation_rows_that_were_reward_errors_warn() -> None:
    point = {
        "kind": "eval",
        "step": 0,
        "values": {"accuracy": 0.0, "rows": 100, "reward_errors": 100},
    }
    warning = health.reward_errors([point])
    assert warning and "100 of 100 validation rows at step 0 were reward errors" in warning.detail
    control = {**point, "values": {"accuracy": 0.4, "rows": 100, "reward_errors": 0}}
    assert health.reward_errors([control]) is None


def test_identical_reward_groups_warn_when_most_groups_are_flat() -> None:
    assert "identical-rewards" in codes(train(5, frac_reward_zero_std=0.8))
    assert "identical-rewards" not in codes(train(5, frac_reward_zero_std=0.3))


def test_entropy_collapse_warns_when_entropy_falls_to_a_fraction_of_its_start() -> None:
    assert "entropy-collapse" in codes(train(12, entropy=lambda s: 1.2 if s <= 5 else 0.1))
    assert "entropy-collapse" not in codes(train(12, entropy=lambda s: 1.2 if s <= 5 else 0.9))
    assert "entropy-collapse" not in codes(train(4, entropy=lambda s: 1.2 if s <= 2 else 0.01))


def test_completions_hitting_the_token_limit_warn() -> None:
    assert "length-clipped" in codes(train(5, clipped_ratio=0.6))
    assert "length-clipped" not in codes(train(5, clipped_ratio=0.05))
    # an older run without the ratio: the max length at inferenceMaxTokens says it
    assert "length-clipped" in codes(train(5, completion_length_max=48), max_tokens=48)
    assert "length-clipped" not in codes(train(5, completion_length_max=30), max_tokens=48)


def test_completion_length_blowing_up_warns() -> None:
    growing = train(12, completion_length_mean=lambda s: 20 if s <= 5 else 90)
    assert "length-growth" in codes(growing)
    steady = train(12, completion_length_mean=lambda s: 20 if s <= 5 else 30)
    assert "length-growth" not in codes(steady)


def test_a_kl_spike_warns_and_steady_kl_does_not() -> None:
    assert "kl-spike" in codes(train(8, kl=lambda s: 0.9 if s == 7 else 0.02))
    assert "kl-spike" not in codes(train(8, kl=lambda s: 0.02 + s / 1000))
    # tiny values that multiply are noise, not a spike (under KL_SPIKE_FLOOR)
    assert "kl-spike" not in codes(train(8, kl=lambda s: 0.04 if s == 7 else 0.001))


def test_training_reward_rising_while_validation_falls_warns_of_reward_hacking() -> None:
    rising = train(12, reward_mean=lambda s: 0.2 if s <= 5 else 0.8)
    assert "reward-hacking" in codes(rising + evals(s0=0.3, s5=0.5, s10=0.3))
    assert "reward-hacking" not in codes(rising + evals(s0=0.3, s5=0.5, s10=0.55))
    flat = train(12, reward_mean=0.3)
    assert "reward-hacking" not in codes(flat + evals(s0=0.3, s5=0.5, s10=0.3))


def test_no_progress_after_several_validations_warns() -> None:
    assert "no-progress" in codes(evals(s0=0.3, s5=0.3, s10=0.29, s15=0.3))
    assert "no-progress" not in codes(evals(s0=0.3, s5=0.3, s10=0.35, s15=0.3))
    assert "no-progress" not in codes(evals(s0=0.3, s5=0.3, s10=0.3))  # too early to tell


def test_a_healthy_run_has_no_warnings() -> None:
    points = train(
        12,
        reward_mean=lambda s: 0.2 + s / 50,
        reward_errors=0,
        reward_samples=16,
        frac_reward_zero_std=0.2,
        entropy=1.0,
        clipped_ratio=0.0,
        completion_length_mean=30,
        kl=0.01,
    ) + evals(s0=0.3, s5=0.4, s10=0.5)
    assert health.check(points, max_tokens=48) == []


# --- item 1: a reward that fails everywhere ------------------------------------------------------


@pytest.fixture
def job(alice: User) -> Job:
    return make_job(alice, status=Job.Status.TRAINING, total_steps=10)


def test_every_reward_failing_fails_the_job_with_the_documented_reason_not_a_type_error(
    job: Job,
) -> None:
    callback = JobCallback(job, RewardBridge(job.reward_version, 8), lambda model, step: {}, 0.0)
    callback.bridge.current.samples, callback.bridge.current.errors = 8, 8
    state = SimpleNamespace(global_step=1, epoch=0.1)
    logs = {"reward": None, "reward_std": float("nan"), "loss": 0.0}  # what TRL logs then

    with pytest.raises(RewardErrorsExceeded, match="more than half the rewards failed"):
        callback.on_log(None, state, TrainerControl(), logs=logs)  # type: ignore[arg-type]
    values = MetricPoint.objects.get(job=job, kind="train", step=1).values
    assert values["reward_mean"] is None and values["reward_std"] is None
    assert values["reward_errors"] == 8 and values["loss"] == 0.0


def test_a_step_with_few_reward_errors_and_a_none_in_the_logs_goes_on(job: Job) -> None:
    callback = JobCallback(job, RewardBridge(job.reward_version, 8), lambda model, step: {}, 0.0)
    callback.bridge.current.samples, callback.bridge.current.errors = 8, 2
    state = SimpleNamespace(global_step=2, epoch=0.2)
    callback.on_log(None, state, TrainerControl(), logs={"reward": 0.5, "kl": None})  # type: ignore[arg-type]
    values = MetricPoint.objects.get(job=job, kind="train", step=2).values
    assert values["reward_mean"] == 0.5 and values["kl"] is None


def test_validation_counts_the_rows_whose_reward_failed() -> None:
    results = [RewardResult("1", 0.0, error="TypeError: boom"), RewardResult("2", 1.0)]
    summary = summarize(results, threshold=1.0, seconds=1.0).summary()
    assert summary["reward_errors"] == 1 and summary["rows"] == 2 and summary["accuracy"] == 0.5


def test_the_job_page_says_the_base_rows_were_reward_errors_instead_of_a_bare_zero(
    alice_client: Client, job: Job
) -> None:
    values = {"accuracy": 0.0, "mean_reward": 0.0, "rows": 100, "reward_errors": 100}
    MetricPoint.objects.create(job=job, kind="eval", step=0, values=values)
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "base: 100 of 100 validation rows were reward errors" in html
    assert 'data-code="reward-errors"' in html
    MetricPoint.objects.filter(job=job).update(values={**values, "reward_errors": 0})
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "validation rows were reward errors" not in html  # the control: a plain 0%


# --- item 5: the published checkpoint --------------------------------------------------------


def test_the_summary_speaks_of_the_published_checkpoint_and_shows_the_last_eval_apart(
    alice_client: Client, job: Job
) -> None:
    add_points(job, range(1, 3), evals={0: 0.12, 80: 0.46, 186: 0.44})
    Job.objects.filter(pk=job.pk).update(status=Job.Status.COMPLETED, output_step=80)
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "base 12% → 46% at step 80" in html and "(the published checkpoint)" in html
    assert "last validation: 44% at step 186" in html
    assert "→ 44% at step 186" not in html
    Job.objects.filter(pk=job.pk).update(status=Job.Status.TRAINING, output_step=None)
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "base 12% → 44% at step 186" in html and "last validation:" not in html


# --- item 8: ETA --------------------------------------------------------------------------------


def test_the_eta_is_recent_step_times_times_the_steps_left_plus_the_validations_left() -> None:
    points = [
        {"kind": "train", "step": s, "values": {"step_seconds": 40.0 if s == 20 else 2.0}}
        for s in range(16, 21)
    ] + [{"kind": "eval", "step": 20, "values": {"seconds": 30.0}}]
    # the median step (2 s, the 40 s validation step aside) × 80 left + validations at 40..100 × 30 s
    assert eta_seconds(20, 100, points, interval=20) == pytest.approx(2.0 * 80 + 4 * 30.0)
    assert eta_seconds(20, 100, [], interval=20) is None


def test_the_page_eta_changes_with_the_step(job: Job) -> None:
    points = [{"kind": "train", "step": s, "values": {"step_seconds": 6.0}} for s in range(50, 58)]
    job.total_steps, job.current_step = 186, 57
    early = progress_of(job, points=points).eta_seconds
    job.current_step = 121
    late = progress_of(job, points=points).eta_seconds
    assert early == pytest.approx(6.0 * 129) and late == pytest.approx(6.0 * 65)


# --- item 9: the live log's history -------------------------------------------------------------


def test_the_backlog_carries_when_each_point_was_logged(job: Job) -> None:
    add_points(job, range(1, 4), evals={0: 0.2})
    message = backlog(job.pk, None)
    assert len(message["times"]) == len(message["metrics"]) == 4
    created = {
        (p.kind, p.step): p.created_at.isoformat() for p in MetricPoint.objects.filter(job=job)
    }
    assert message["times"] == [created[(p["kind"], p["step"])] for p in message["metrics"]]


# --- item 12: the reward distribution -----------------------------------------------------------


def test_each_step_records_reward_percentiles_besides_min_and_max() -> None:
    step = StepRewards(scores=[float(n) for n in range(11)], errors=1, samples=12)
    summary = step.summary()
    assert (summary["reward_min"], summary["reward_max"]) == (0.0, 10.0)
    assert [summary[f"reward_{p}"] for p in ("p10", "p25", "median", "p75", "p90")] == [
        1.0,
        2.5,
        5.0,
        7.5,
        9.0,
    ]
    assert (summary["reward_errors"], summary["reward_samples"]) == (1.0, 12.0)
    assert "reward_p10" not in StepRewards(errors=4, samples=4).summary()


def test_the_job_page_has_a_smoothing_control(alice_client: Client, job: Job) -> None:
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'id="smoothing" min="0" max="0.95"' in html


# --- item 13/14: the page's health block and the jobs list --------------------------------------


def test_the_health_block_refreshes_alone_and_only_for_the_owner(
    alice_client: Client, bob_client: Client, job: Job
) -> None:
    MetricPoint.objects.create(
        job=job, kind="train", step=1, values={"clipped_ratio": 0.9, "reward_mean": 0.1}
    )
    response = alice_client.get(f"/jobs/{job.pk}/?partial=health", **HTMX)
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="job-health"') and 'data-code="length-clipped"' in html
    assert "What it means" in html and "What to try" in html
    assert bob_client.get(f"/jobs/{job.pk}/?partial=health", **HTMX).status_code == 404


def test_the_jobs_list_shows_duration_failure_reason_and_a_warning_marker(
    alice: User, alice_client: Client
) -> None:
    now = timezone.now()
    failed = make_job(
        alice,
        name="broken",
        status=Job.Status.FAILED,
        status_reason="RewardErrorsExceeded: 8 of 8 rewards failed at step 1",
        started_at=now - timedelta(minutes=12),
        finished_at=now,
    )
    MetricPoint.objects.create(
        job=failed, kind="train", step=1, values={"reward_errors": 8, "reward_samples": 8}
    )
    make_job(alice, name="fine", status=Job.Status.COMPLETED)
    html = alice_client.get("/jobs/").content.decode()
    assert '<th scope="col">Duration</th>' in html and '<th scope="col">Failure reason</th>' in html
    assert "12 min" in html and "8 of 8 rewards failed at step 1" in html
    assert html.count('class="health-marker"') == 1  # the broken job only
    assert "1 warning<span" in html and "Reward errors" in html


def test_the_list_sees_a_trend_from_a_long_run_first_and_last_steps(
    alice: User, alice_client: Client
) -> None:
    job = make_job(alice, name="collapsing", status=Job.Status.TRAINING, total_steps=100)
    for step in range(1, 41):
        values = {"entropy": 1.2 if step <= 20 else 0.05, "reward_mean": 0.3}
        MetricPoint.objects.create(job=job, kind="train", step=step, values=values)
    Job.objects.filter(pk=job.pk).update(current_step=40)
    html = alice_client.get("/jobs/").content.decode()
    assert "Entropy collapse" in html
    MetricPoint.objects.filter(job=job, step__gt=20).update(values={"entropy": 1.1})
    assert "Entropy collapse" not in alice_client.get("/jobs/").content.decode()


def test_the_job_page_and_the_list_show_the_eta_from_the_recent_steps(
    alice_client: Client, job: Job
) -> None:
    Job.objects.filter(pk=job.pk).update(total_steps=100, current_step=50)
    for step in range(46, 51):
        MetricPoint.objects.create(job=job, kind="train", step=step, values={"step_seconds": 6.0})
    assert "Step 50 of 100 · ETA 5 min" in alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert "50/100 steps · ETA 5 min" in alice_client.get("/jobs/").content.decode()
    MetricPoint.objects.filter(job=job).delete()  # the control: no step times, no training time
    assert "ETA" not in alice_client.get(f"/jobs/{job.pk}/").content.decode()
