"""Evaluate in a real browser: from the starter model's page, alice compares it with a second
model on the first rows of the demo extraction validation set, scored by the starter reward; a
`default` worker of the console runs it while the page shows progress, then the page shows
mean and accuracy with their intervals, wins and losses, sorts rows by score difference and
downloads the CSV.

One console for the module (like `make up`); no training: the second model is a tiny random one
registered from a directory, so the starter should win most rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    Console,
    log_in,
    new_context,
    running_console,
    screenshot,
    watch_csp,
)
from tests.support.tiny_models import save_tiny_model

pytestmark = [pytest.mark.stack, pytest.mark.browser, pytest.mark.usefixtures("starter_artifacts")]

PASSWORD = "correct horse battery staple"
ROWS = 10
RUN_SECONDS = 150


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    root = tmp_path_factory.mktemp("evaluate")
    with running_console(root / "var", "alice", PASSWORD) as running:
        tiny = save_tiny_model(root / "tiny-random")
        running.manage("register_model", str(tiny), "--name", "tiny-random", "--user", "alice")
        yield running


@pytest.fixture(scope="module")
def page(browser: Browser, console: Console) -> Iterator[Page]:
    context = new_context(browser, console.url)
    refusals = watch_csp(context)
    page = context.new_page()
    log_in(page, "alice", PASSWORD)
    yield page
    assert not refusals, refusals  # no inline script or style on these pages
    context.close()


def test_alice_evaluates_the_starter_against_another_model_and_downloads_the_rows(
    page: Page, tmp_path: Path
) -> None:
    page.goto("/playground/")
    expect(page.get_by_role("link", name="Evaluate on a whole dataset")).to_be_visible()

    page.goto("/models/")
    page.get_by_role("link", name="starter", exact=True).click()
    page.get_by_role("link", name="Evaluate", exact=True).click()
    expect(page.get_by_role("heading", name="New evaluation")).to_be_visible()
    expect(page.locator("#id_model_a option:checked")).to_have_text("starter (base)")
    page.select_option("#id_model_b", label="tiny-random (base)")
    page.select_option("#id_dataset", label="extraction-validation")
    page.fill("#id_rows", str(ROWS))
    page.select_option("#id_reward_version", index=_option_index(page, "extraction v1"))
    page.fill("#id_max_tokens", "48")
    page.get_by_role("button", name="Run evaluation").click()

    # The worker runs it; the page polls, then reloads itself with the results.
    expect(page.get_by_role("heading", name="Per model")).to_be_visible(timeout=RUN_SECONDS * 1000)
    summary = page.get_by_role("table", name="Per-model results")
    expect(summary.locator("tbody tr")).to_have_count(2)
    first, second = summary.locator("tbody tr").all()
    expect(first).to_contain_text("starter")
    expect(first).to_contain_text("reference")
    expect(first).to_contain_text(f"/{ROWS}")  # passed / rows, beside accuracy and its interval
    expect(second).to_contain_text("tiny-random")
    expect(second).to_contain_text("won")
    lost = re.search(r"(\d+) lost", second.inner_text())
    assert lost and int(lost.group(1)) > 0, second.inner_text()  # random weights lose rows
    for row in (first, second):
        expect(row.locator("td").nth(1)).to_contain_text("[")  # mean [low, high]
        expect(row.locator("td").nth(2)).to_contain_text("%")
    rows = page.get_by_role("table", name="Answers row by row")
    expect(rows.locator("tbody tr")).to_have_count(ROWS)

    page.get_by_role("link", name="biggest loss first").click()
    expect(page).to_have_url(re.compile(r"\?sort=-diff$"))
    expect(page.locator("[aria-current=true]")).to_have_text("biggest loss first")
    diffs = [_diff(text) for text in rows.locator("tbody tr td:last-child").all_inner_texts()]
    known = [d for d in diffs if d is not None]
    assert known == sorted(known), diffs  # tiny-random minus starter: the worst first
    screenshot(page, "15-evaluation")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "evaluation.csv"
    download.value.save_as(saved)
    table = list(csv.reader(io.StringIO(saved.read_text())))
    assert table[0][:2] == ["row", "prompt"] and "starter score" in table[0]
    assert "tiny-random answer" in table[0] and len(table) == ROWS + 1


def _option_index(page: Page, starts: str) -> int:
    options = page.locator("#id_reward_version option").all_inner_texts()
    return next(i for i, text in enumerate(options) if text.startswith(starts))


def _diff(text: str) -> float | None:
    text = text.strip()
    return None if text == "—" else float(text)


def test_bob_cannot_open_alices_evaluation(browser: Browser, console: Console, page: Page) -> None:
    page.goto("/playground/evaluations/")
    link = page.locator("table a").first
    address = link.get_attribute("href")
    assert address and address.startswith("/playground/evaluations/")
    create_bob = (
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user('bob', password='{PASSWORD}')"
    )
    console.manage("shell", "-c", create_bob)
    context = new_context(browser, console.url)
    bob = context.new_page()
    log_in(bob, "bob", PASSWORD)
    assert bob.goto(address).status == 404  # type: ignore[union-attr]
    bob.goto("/playground/evaluations/")
    expect(bob.get_by_text("No evaluations yet")).to_be_visible()
    context.close()
