"""Training health in a real browser: a deliberately bad job and a broken reward, on the starter.

One console for the module. Two tiny jobs go to its gpu worker, queued from a management shell
(the wizard has its own browser test): one whose reward raises on every answer, which must fail
with the documented "more than half the rewards failed" reason and say that the base validation
rows were reward errors; and one whose reward raises on about a fifth of the answers, rewards
length and samples at most 6 tokens, whose page and list row must warn of reward errors and of
completions hitting inferenceMaxTokens, and whose live log survives a reload. A clone of it,
created in the wizard, checks that the "queued for a gpu worker" banner goes once a worker takes
the job, without a reload. Waits are on what the page shows, never on sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    SCREENSHOTS,
    Console,
    log_in,
    new_context,
    running_console,
    watch_csp,
)

pytestmark = [pytest.mark.stack, pytest.mark.browser, pytest.mark.usefixtures("starter_artifacts")]

PASSWORD = "correct horse battery staple"
JOB_SECONDS = 240
TINY = {
    "maxSteps": 4,
    "batchSize": 16,
    "trainingSamplePerPrompt": 4,
    "evalInterval": 2,
    "evalSamples": 12,
    "inferenceMaxTokens": 6,
}
# Both pass the job's dry run (each row's reference answer given as the answer) and misbehave on
# what the model writes, as a reward that was only tested on the references does.
REFERENCE = """
import json


def is_reference(sample, item):
    reference = item.get("reference_answer")
    text = reference if isinstance(reference, str) else json.dumps(reference)
    return sample["output_text"] == text
"""
ALWAYS_RAISES = (
    REFERENCE
    + """

def grade(sample, item):
    if is_reference(sample, item):
        return 1.0
    raise ValueError("no parser for this answer format")
"""
)
# Raises on about 20% of the answers (so no step crosses the 50% that fails a job) and rewards
# length: with 6 tokens at most, nearly every completion is cut at the limit.
FLAKY_LENGTH = (
    REFERENCE
    + """
import random


def grade(sample, item):
    if is_reference(sample, item):
        return 1.0
    if random.random() < 0.2:
        raise KeyError("final_answer")
    return min(len(sample["output_text"]) / 40, 1.0)
"""
)
LAUNCH = """
import json
from django.contrib.auth.models import User
from jobs.actions import create_job
from jobs.models import Dataset, ModelEntry
from rewards.services import create_reward

alice = User.objects.get(username="alice")
ids = {}
for name, code in json.loads(%(rewards)r).items():
    version = create_reward(alice, name, "code", code=code, pass_threshold=0.5)
    job = create_job(
        alice, name + "-job",
        ModelEntry.objects.get(owner=alice, name="starter"),
        Dataset.objects.get(owner=alice, name="arithmetic-train"),
        version,
        Dataset.objects.get(owner=alice, name="arithmetic-validation"),
        given=json.loads(%(given)r), profile="cpu",
    )
    ids[name] = job.pk
print(json.dumps(ids))
"""


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console") / "var", "alice", PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def jobs(console: Console) -> SimpleNamespace:
    """The broken reward's job first: it fails fast and frees the worker for the other."""
    rewards = json.dumps({"always-raises": ALWAYS_RAISES, "flaky-length": FLAKY_LENGTH})
    output = console.manage("shell", "-c", LAUNCH % {"rewards": rewards, "given": json.dumps(TINY)})
    ids = json.loads(output.strip().splitlines()[-1])
    return SimpleNamespace(broken=ids["always-raises"], flaky=ids["flaky-length"])


@pytest.fixture(scope="module")
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = new_context(browser, console.url)
    refusals = watch_csp(context)
    page = context.new_page()
    log_in(page, "alice", PASSWORD)
    yield page
    context.close()
    assert refusals == []


def test_a_reward_failing_on_every_answer_fails_the_job_with_the_documented_reason(
    page: Page, jobs: SimpleNamespace
) -> None:
    page.goto(f"/jobs/{jobs.broken}/")
    expect(page.locator("#job-status")).to_have_text("Failed", timeout=JOB_SECONDS * 1000)
    reason = page.locator("#job-reason")
    expect(reason).to_contain_text("more than half the rewards failed")
    expect(reason).not_to_contain_text("TypeError")
    accuracy = page.locator("#job-accuracy")
    expect(accuracy).to_contain_text(
        re.compile(r"base: (\d+) of \1 validation rows were reward errors")
    )
    expect(page.locator("#job-health [data-code=reward-errors]")).to_be_visible()


def test_the_bad_jobs_page_warns_of_reward_errors_and_clipped_completions_live(
    page: Page, jobs: SimpleNamespace
) -> None:
    page.goto(f"/jobs/{jobs.flaky}/")
    # Live: the warnings appear through the page's own refresh while the job runs or once done.
    errors = page.locator("#job-health [data-code=reward-errors]")
    clipped = page.locator("#job-health [data-code=length-clipped]")
    expect(errors).to_be_visible(timeout=JOB_SECONDS * 1000)
    expect(clipped).to_be_visible(timeout=JOB_SECONDS * 1000)
    expect(errors).to_contain_text("What to try")
    expect(clipped).to_contain_text("(6 tokens)")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=JOB_SECONDS * 1000)
    # the summary's own refresh (output model, actions) has landed, not only the live badge
    expect(page.locator("#job-summary[data-status=completed]")).to_be_visible(timeout=30_000)
    expect(page.locator("#job-health [data-code=length-clipped]")).to_be_visible()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    top = page.locator("#job-summary").bounding_box()
    bottom = page.locator("#job-health").bounding_box()
    assert top and bottom
    clip = {"x": top["x"], "y": top["y"], "width": top["width"]}
    clip["height"] = bottom["y"] + bottom["height"] - top["y"]
    page.screenshot(path=str(SCREENSHOTS / "16-health-warnings.png"), clip=clip, full_page=True)


def test_the_live_log_keeps_its_step_lines_after_a_reload(
    page: Page, jobs: SimpleNamespace
) -> None:
    page.goto(f"/jobs/{jobs.flaky}/")
    log = page.locator("#live-log")
    for step in range(1, TINY["maxSteps"] + 1):
        expect(log).to_contain_text(f"step {step}: reward")
    expect(log).to_contain_text("validation at step 0: accuracy")
    page.reload()
    expect(log).to_contain_text(f"step {TINY['maxSteps']}: reward")
    expect(log).to_contain_text("step 1: reward")


def test_the_jobs_list_marks_the_warnings_and_shows_the_failure_reason(
    page: Page, jobs: SimpleNamespace
) -> None:
    page.goto("/jobs/")
    flaky = page.locator("tr", has=page.locator(f"a[href='/jobs/{jobs.flaky}/']"))
    expect(flaky.locator(".health-marker")).to_contain_text("warning")
    expect(flaky.locator("td[data-label=Duration]")).not_to_have_text("—")
    broken = page.locator("tr", has=page.locator(f"a[href='/jobs/{jobs.broken}/']"))
    expect(broken.locator("td[data-label='Failure reason']")).to_contain_text(
        "more than half the rewards failed"
    )


def test_the_queued_banner_goes_once_a_worker_takes_the_job_without_a_reload(
    page: Page, jobs: SimpleNamespace
) -> None:
    page.goto(f"/jobs/new/?clone={jobs.flaky}")
    page.wait_for_url(re.compile(r"/review/$"))
    with page.expect_response(re.compile(r"/jobs/\d+/$")) as landed:
        page.get_by_role("button", name="Create job").click()
    assert "queued for a gpu worker" in landed.value.text()  # the page came with the banner
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#job-status")).not_to_have_text("Queued", timeout=JOB_SECONDS * 1000)
    banner = page.locator(".flash", has_text="queued for a gpu worker")
    expect(banner).to_have_count(0)
    assert page.evaluate("window.sameDocument === true")  # gone live, not by a reload
