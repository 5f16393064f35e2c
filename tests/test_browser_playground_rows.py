"""The playground's validation rows in a real browser: loading a row starts a fresh conversation
(the prompt does not grow from one load to the next), Clear chat empties every column, and at
phone width the side-by-side stays aligned turn by turn. No training: the starter model and a
copy of it are compared, with the starter's arithmetic reward and validation rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import (
    Console,
    launch_chromium,
    log_in,
    new_context,
    running_console,
    screenshot,
    watch_csp,
)

pytestmark = [pytest.mark.stack, pytest.mark.browser, pytest.mark.usefixtures("starter_artifacts")]

PASSWORD = "correct horse battery staple"
ANSWER_SECONDS = 120


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console") / "var", "alice", PASSWORD) as running:
        copy = (
            "from django.contrib.auth.models import User; "
            "from jobs.models import ModelEntry; "
            "from jobs.registry.services import register_model; "
            "alice = User.objects.get(username='alice'); "
            "starter = ModelEntry.objects.get(owner=alice, name='starter'); "
            "register_model(alice, starter.path, 'starter-copy')"
        )
        running.manage("shell", "-c", copy)
        yield running


@pytest.fixture(scope="module")
def page(console: Console) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser: Browser = launch_chromium(playwright)
        context = new_context(browser, console.url)
        refusals = watch_csp(context)
        page = context.new_page()
        log_in(page, "alice", PASSWORD)
        yield page
        assert not refusals, "\n".join(refusals)
        context.close()
        browser.close()


def answers_done(page: Page, count: int) -> None:
    """Wait until `count` answers per column are finished (their stats are shown)."""
    for column in page.locator(".pg-column").all():
        stats = column.locator(".pg-answer .pg-stats", has_text="TTFT")
        expect(stats).to_have_count(count, timeout=ANSWER_SECONDS * 1000)
    expect(page.locator("#pg-send-button")).to_be_enabled()


def prompt_tokens(page: Page) -> list[int]:
    """The prompt tokens of each column's latest answer."""
    texts = page.locator(".pg-column").evaluate_all(
        "cols => cols.map(c => [...c.querySelectorAll('.pg-stats')].pop().textContent)"
    )
    return [int(re.search(r"(\d+) prompt", text).group(1)) for text in texts]  # type: ignore[union-attr]


def load_row_and_send(page: Page) -> None:
    page.fill("#pg-row-index", "3")
    page.click("#pg-load-row")
    expect(page.locator("#pg-reference")).to_be_visible()
    expect(page.locator("#pg-input")).not_to_have_value("")
    page.click("#pg-send-button")


def choose(page: Page, select: str, pattern: str) -> None:
    option = page.locator(f"{select} option").filter(has_text=re.compile(pattern)).first
    page.select_option(select, value=option.get_attribute("value"))


def test_the_starter_model_deploys(page: Page) -> None:
    page.goto("/models/")
    page.get_by_role("link", name="starter", exact=True).click()
    page.get_by_role("button", name="Deploy").click()
    page.wait_for_url(re.compile(r"/deployments/$"))
    active = page.locator("#deployment-rows .badge.ok", has_text=re.compile("^active$"))
    expect(active).to_be_visible(timeout=120_000)


def test_loading_a_row_twice_does_not_grow_the_prompt_and_clear_chat_empties(page: Page) -> None:
    page.goto("/playground/")
    page.select_option("#pg-model-1", label="starter")
    page.select_option("#pg-model-2", label="starter-copy")
    choose(page, "#pg-reward", r"^arithmetic v\d+$")
    choose(page, "#pg-dataset", r"^arithmetic-validation ")
    page.fill("#pg-max-tokens", "24")
    page.get_by_role("button", name="Start session").click()
    page.wait_for_url(re.compile(r"/playground/\d+/$"))
    expect(page.locator("#pg-state")).to_have_text("connected")

    load_row_and_send(page)
    answers_done(page, 1)
    first = prompt_tokens(page)
    page.fill("#pg-input", "Are you sure? Check it again.")  # a follow-up grows the chat
    page.click("#pg-send-button")
    answers_done(page, 2)
    follow_up = prompt_tokens(page)
    assert all(f > p for f, p in zip(follow_up, first, strict=True)), (first, follow_up)

    load_row_and_send(page)  # the same row again: a fresh conversation, the same prompt
    answers_done(page, 1)
    assert prompt_tokens(page) == first
    for column in page.locator(".pg-column").all():
        expect(column.locator(".pg-user")).to_have_count(1)
    expect(page.locator(".pg-answer .pg-score strong")).to_have_count(2)
    page.reload()  # what the server kept is the fresh conversation too
    for column in page.locator(".pg-column").all():
        expect(column.locator(".pg-user")).to_have_count(1)

    page.get_by_role("button", name="Clear chat").click()
    expect(page.locator(".flash")).to_contain_text("Chat cleared")
    expect(page.locator(".pg-column .pg-turns > li")).to_have_count(0)


def test_at_phone_width_the_side_by_side_stays_aligned_per_turn(page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    expect(page.locator("#pg-state")).to_have_text("connected")
    load_row_and_send(page)
    answers_done(page, 1)
    page.fill("#pg-input", "Explain your answer step by step, please, in detail.")
    page.click("#pg-send-button")
    answers_done(page, 2)
    columns = page.locator(".pg-column").all()
    boxes = [c.bounding_box() for c in columns]
    assert boxes[0] and boxes[1] and boxes[0]["y"] == boxes[1]["y"]  # side by side, not stacked
    assert boxes[0]["x"] + boxes[0]["width"] <= boxes[1]["x"]
    tops = [
        column.locator(".pg-turns > li").evaluate_all(
            "items => items.map(i => Math.round(i.getBoundingClientRect().top))"
        )
        for column in columns
    ]
    assert len(tops[0]) == len(tops[1]) >= 4 and tops[0] == tops[1], tops  # turn n beside turn n
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width  # no sideways scrolling
    screenshot(page, "18-playground-phone")


def test_each_answer_opens_as_a_full_invocation_log(page: Page) -> None:
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto("/deployments/logs/")
    options = page.locator("select[name=deployment] option").all_text_contents()
    assert len(options) == len(set(options)) and options.count("starter-copy") == 1, options
    page.get_by_role("link", name="Full log →").first.click()
    page.wait_for_url(re.compile(r"/deployments/logs/\d+/$"))
    expect(page.get_by_role("heading", name=re.compile(r"^Invocation log #\d+$"))).to_be_visible()
    expect(page.locator(".log-chat .bubble-user")).not_to_have_count(0)
    expect(page.get_by_role("row", name=re.compile("Tokens"))).to_contain_text("completion")
