"""The whole console in a real browser: data, reward, wizard, live training, deploy, playground.

One console is started like `make up` for the module, and each test is one step a user takes, in
order: later steps use what earlier ones made (kept in `flow`). Screenshots of every step land in
docs/screenshots/. Waits are on what the page shows (chart data, badges), never on sleeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.support.browser import (
    Console,
    chart_points,
    log_in,
    new_context,
    running_console,
    screenshot,
    wait_for_chart_points,
    watch_csp,
)

pytestmark = [pytest.mark.stack, pytest.mark.browser, pytest.mark.usefixtures("starter_artifacts")]

PASSWORD = "correct horse battery staple"
GSM8K = Path(__file__).resolve().parent / "data" / "bedrock-rft-gsm8k" / "train.jsonl"
TRAINING_SECONDS = 420
# Small enough for 2 cores, long enough to watch the charts grow and the accuracy move.
HYPERPARAMETERS = {"maxSteps": "40", "evalInterval": "10", "batchSize": "32"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console") / "var", "alice", PASSWORD) as running:
        create_bob = (
            "from django.contrib.auth.models import User; "
            f"User.objects.create_user('bob', password='{PASSWORD}')"
        )
        running.manage("shell", "-c", create_bob)
        yield running


@pytest.fixture(scope="module")
def alice_page(browser: Browser, console: Console, flow: SimpleNamespace) -> Iterator[Page]:
    context = new_context(browser, console.url)
    flow.csp_refusals = watch_csp(context)  # test 8: no step may break the CSP
    page = context.new_page()
    log_in(page, "alice", PASSWORD)
    yield page
    context.close()


@pytest.fixture(scope="module")
def flow() -> SimpleNamespace:
    """What the steps made, by name: the URLs of alice's objects."""
    return SimpleNamespace()


def needs(flow: SimpleNamespace, *names: str) -> None:
    missing = [name for name in names if not hasattr(flow, name)]
    if missing:
        pytest.fail(f"an earlier step failed to make {', '.join(missing)}", pytrace=False)


def test_1_alice_uploads_the_gsm8k_sample_and_sees_its_preview(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    page = alice_page
    page.goto("/datasets/upload/")
    page.fill("#id_name", "gsm8k-sample")
    page.set_input_files("#id_file", str(GSM8K))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r"/datasets/\d+/$"), timeout=120_000)  # checked, then stored
    expect(page.locator("h1")).to_contain_text("gsm8k-sample")
    expect(page.locator("body")).to_contain_text("300")
    flow.dataset_url = page.url
    expect(page.locator(".bubble-user").first).to_contain_text("Natalia sold clips")
    expect(page.locator("body")).to_contain_text("#### 72")
    screenshot(page, "01-dataset-preview")


def test_2_alice_makes_a_math_reward_from_the_template_and_tests_it(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    needs(flow, "dataset_url")
    page = alice_page
    page.goto("/rewards/new/")
    page.locator("a.template-card", has_text="Math").first.click()
    page.fill("#id_name", "gsm8k-math")
    page.get_by_role("button", name="Create reward").click()
    page.wait_for_url(re.compile(r"/rewards/\d+/$"))
    flow.reward_url = page.url
    choose(page, "#bench-dataset", "gsm8k-sample")
    page.get_by_role("button", name="Test", exact=True).click()
    summary = page.locator("#bench-result .summary-line")
    expect(summary).to_contain_text("Mean score", timeout=180_000)
    expect(page.locator("#bench-result .result-row")).to_have_count(3)
    expect(summary).to_contain_text("Errors 0")
    screenshot(page, "02-reward-test-bench")


def test_3_alice_walks_the_wizard_and_creates_a_starter_job(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    page = alice_page
    page.goto("/jobs/new/")
    page.get_by_role("button", name="Start a new job").click()
    page.fill("#id_name", "arithmetic-e2e")
    choose(page, "#id_base_model", "starter ·")
    continue_to(page, "data")
    choose(page, "#id_train_dataset", "arithmetic-train (")
    expect(page.locator("#data-preview")).to_contain_text("####")
    page.check("input[name=validation_mode][value=dataset]")
    choose(page, "select[name=validation_dataset]", "arithmetic-validation (")
    continue_to(page, "reward")
    choose(page, "#id_reward", "arithmetic ·")
    continue_to(page, "hyperparameters")
    for name, value in HYPERPARAMETERS.items():
        page.fill(f"#id_{name}", value)
    continue_to(page, "security")
    continue_to(page, "review")
    expect(page.locator("body")).to_contain_text("40")
    screenshot(page, "03-wizard-review")
    page.get_by_role("button", name="Create job").click()
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    flow.job_url = page.url


def choose(page: Page, select: str, label_start: str) -> None:
    """Pick the option whose label starts with `label_start` (labels also show sizes)."""
    labels = page.locator(f"{select} option").all_inner_texts()
    matching = [label for label in labels if label.startswith(label_start)]
    assert len(matching) == 1, (label_start, labels)
    page.select_option(select, label=matching[0])


def continue_to(page: Page, step: str) -> None:
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(rf"/{step}/$"))


def test_4_the_charts_grow_live_and_a_reload_shows_the_whole_history(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    needs(flow, "job_url")
    page = alice_page
    first = wait_for_chart_points(page, "chart-reward", 0, TRAINING_SECONDS)
    later = wait_for_chart_points(page, "chart-reward", first, TRAINING_SECONDS)
    assert later > first  # new points arrived over the websocket, without a reload
    wait_for_chart_points(page, "chart-reward", 15, TRAINING_SECONDS)  # a chart worth showing
    screenshot(page, "04-job-training-live")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=TRAINING_SECONDS * 1000)
    live_points = wait_for_chart_points(page, "chart-reward", 39, 60)
    page.reload()
    assert wait_for_chart_points(page, "chart-reward", 0, 60) == live_points == 40
    assert chart_points(page, "chart-validation") >= 5  # step 0 (the base), 10, 20, 30, 40
    screenshot(page, "05-job-completed")
    page.get_by_role("link", name="Inspect sampled groups and their rewards").click()
    page.wait_for_url(re.compile(r"/rollouts/"))
    flow.rollouts_url = page.url
    expect(page.locator("article.group").first).to_contain_text("answers · mean")
    expect(page.locator("article.group .bubble-user").first).to_be_visible()
    screenshot(page, "06-rollout-inspector")


def test_5_the_model_page_shows_base_vs_tuned_and_deploys_in_one_click(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    needs(flow, "job_url")
    page = alice_page
    page.goto(flow.job_url)
    page.locator("dd", has_text="checkpoint of step").get_by_role("link").click()
    page.wait_for_url(re.compile(r"/models/\d+/$"))
    flow.model_url = page.url
    accuracy = page.locator("dt:has-text('Validation accuracy') + dd")
    expect(accuracy).to_have_text(re.compile(r"base \d+% → tuned \d+%"))
    screenshot(page, "07-tuned-model")
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/deployments/$"))
    expect(page.locator("body")).to_contain_text("Deploying")
    active = page.locator("#deployment-rows .badge.ok", has_text=re.compile("^active$"))
    expect(active).to_be_visible(timeout=120_000)
    screenshot(page, "08-deployments")


def test_6_the_playground_streams_base_and_tuned_side_by_side_with_scores(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    needs(flow, "job_url")
    page = alice_page
    page.goto(flow.job_url)
    page.get_by_role("link", name="Test in playground").click()
    page.get_by_role("button", name="Start session").click()
    page.wait_for_url(re.compile(r"/playground/\d+/$"))
    flow.session_url = page.url
    expect(page.locator(".pg-column")).to_have_count(2)
    expect(page.locator("#pg-state")).to_have_text("connected")
    count_streamed_pieces(page)
    page.click("#pg-load-row")
    expect(page.locator("#pg-reference")).to_be_visible()
    page.click("#pg-send-button")
    scores = page.locator(".pg-column .pg-answer .pg-score strong")
    expect(scores).to_have_count(2, timeout=120_000)
    for column in page.locator(".pg-column").all():
        expect(column.locator(".pg-stats")).to_contain_text("TTFT")
    pieces = page.evaluate("Object.values(window.streamedPieces)")
    assert len(pieces) == 2 and min(pieces) >= 2, pieces  # both answers arrived token by token
    screenshot(page, "09-playground-side-by-side")


def count_streamed_pieces(page: Page) -> None:
    """Count, per model column, the text pieces added to an answer while it streams."""
    page.evaluate(
        """() => {
        window.streamedPieces = {};
        new MutationObserver((records) => {
          for (const record of records) {
            const answer = record.target.closest?.("li.pg-answer.streaming");
            if (!answer || !record.target.classList.contains("pg-text")) continue;
            const model = answer.closest(".pg-column").dataset.model;
            window.streamedPieces[model] = (window.streamedPieces[model] || 0) + 1;
          }
        }).observe(document.querySelector(".pg-columns"), {subtree: true, childList: true});
        }"""
    )


def test_7_alices_pages_are_not_found_for_bob_and_closed_to_strangers(
    browser: Browser, console: Console, flow: SimpleNamespace
) -> None:
    names = ("dataset_url", "reward_url", "job_url", "rollouts_url", "model_url", "session_url")
    needs(flow, *names)
    urls = [getattr(flow, name) for name in names]
    stranger = new_context(browser, console.url)
    page = stranger.new_page()
    for url in urls:
        page.goto(url)
        assert "/login/" in page.url, url
    log_in(page, "bob", PASSWORD)
    for url in urls:
        response = page.goto(url)
        assert response is not None and response.status == 404, url
        expect(page.locator("body")).not_to_contain_text("gsm8k")
        expect(page.locator("body")).not_to_contain_text("arithmetic-e2e")
    stranger.close()


# Pages of the console the steps above do not open (alice is this console's administrator).
OTHER_PAGES = [
    "/",
    "/datasets/",
    "/datasets/upload/",
    "/rewards/",
    "/rewards/new/",
    "/rewards/new/math-sympy/",
    "/rewards/new/format-constraints/",
    "/jobs/",
    "/jobs/new/",
    "/models/",
    "/models/register/",
    "/deployments/",
    "/deployments/logs/",
    "/playground/",
    "/keys/",
    "/api/docs/",
    "/admin/",
    "/admin/auth/user/",
    "/admin/auth/user/1/change/",
]


def test_8_no_page_alice_saw_broke_the_content_security_policy(
    alice_page: Page, flow: SimpleNamespace
) -> None:
    names = ("dataset_url", "reward_url", "job_url", "rollouts_url", "model_url", "session_url")
    needs(flow, "csp_refusals", *names)
    page = alice_page
    for url in OTHER_PAGES + [getattr(flow, name) for name in names]:
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        assert "script-src 'self'" in response.headers["content-security-policy"], url
        page.wait_for_load_state("networkidle")
    assert not flow.csp_refusals, "\n".join(flow.csp_refusals)


def test_the_csp_watch_sees_an_inline_script_the_console_policy_refuses(
    browser: Browser, console: Console
) -> None:
    """The control for test 8: the same probe page runs its inline script without the policy,
    and is refused (and reported) with the console's own header."""
    context = new_context(browser, console.url)
    refusals = watch_csp(context)
    page = context.new_page()
    policy = page.goto("/login/").headers["content-security-policy"]
    probe = "<!doctype html><title>probe</title><script>document.title = 'ran'</script>"
    for headers in ({}, {"Content-Security-Policy": policy}):
        page.route("**/csp-probe/", serve(probe, headers))
        page.goto("/csp-probe/")
        page.unroute("**/csp-probe/")
        ran = page.title() == "ran"
        assert ran is (not headers), headers
    assert len(refusals) == 1 and "inline script" in refusals[0], refusals
    context.close()


def serve(body: str, headers: dict[str, str]) -> Callable[[Route], None]:
    return lambda route: route.fulfill(body=body, content_type="text/html", headers=headers)
