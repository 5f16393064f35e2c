"""The wizard's hyperparameters step and the confirmations, in a real browser.

One console for the module, no training. Alice's typed values survive a refused step, each error
sits by its field, the Advanced group opens for its own error; deleting a dataset and revoking a
key ask first (window.confirm from static/js/confirm.js): dismissing keeps the thing, accepting
acts. Waits are on what the page shows, never on sleeps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright

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
ROW = {"messages": [{"role": "user", "content": "What is 2+2?"}], "reference_answer": "4"}


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    with running_console(tmp_path_factory.mktemp("console") / "var", "alice", PASSWORD) as running:
        yield running


@pytest.fixture(scope="module")
def page_and_refusals(console: Console) -> Iterator[tuple[Page, list[str]]]:
    with sync_playwright() as playwright:
        browser: Browser = launch_chromium(playwright)
        context = new_context(browser, console.url)
        refusals = watch_csp(context)
        page = context.new_page()
        log_in(page, "alice", PASSWORD)
        yield page, refusals
        context.close()
        browser.close()


@pytest.fixture(scope="module")
def page(page_and_refusals: tuple[Page, list[str]]) -> Page:
    return page_and_refusals[0]


def choose(page: Page, select: str, label_start: str) -> None:
    labels = page.locator(f"{select} option").all_inner_texts()
    [label] = [label for label in labels if label.startswith(label_start)]
    page.select_option(select, label=label)


def continue_to(page: Page, step: str) -> None:
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url(re.compile(rf"/{step}/$"))


def test_1_a_refused_hyperparameters_step_keeps_every_typed_value(page: Page) -> None:
    page.goto("/jobs/new/")
    page.get_by_role("button", name="Start a new job").click()
    page.fill("#id_name", "typed-values")
    choose(page, "#id_base_model", "starter ·")
    continue_to(page, "data")
    expect(page.locator("#data-preview")).to_contain_text("Choose a dataset")  # not a 404
    choose(page, "#id_train_dataset", "arithmetic-train (")
    expect(page.locator("#data-preview")).to_contain_text("####")
    continue_to(page, "reward")
    page.fill("#id_reward_filter", "arithm")  # the filter narrows the long list
    expect(page.locator("#id_reward_filter-count")).to_contain_text("match")
    choose(page, "#id_reward", "arithmetic ·")
    continue_to(page, "hyperparameters")

    advanced = page.locator("#advanced-params")
    expect(advanced).not_to_have_attribute("open", "")  # collapsed at first
    expect(page.locator("#id_temperature")).to_be_hidden()
    expect(page.locator("#id_epochCount")).to_have_attribute("placeholder", "default: 3")
    typed = {"epochCount": "2", "learningRate": "0.0005", "maxSteps": "5", "batchSize": "7"}
    for name, value in typed.items():
        page.fill(f"#id_{name}", value)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_load_state()
    expect(page.locator("#id_batchSize-error")).to_be_visible()

    assert page.url.endswith("/hyperparameters/")
    for name, value in typed.items():  # valid and invalid alike
        expect(page.locator(f"#id_{name}")).to_have_value(value)
    batch = page.locator("#id_batchSize")
    expect(batch).to_have_attribute("aria-invalid", "true")
    expect(batch).to_have_attribute("aria-describedby", re.compile("id_batchSize-error"))
    field = page.locator(".field", has=batch)
    expect(field.locator(".field-error")).to_contain_text("between 16 and 512")
    expect(page.locator("#id_epochCount")).not_to_have_attribute("aria-invalid", "true")
    expect(advanced).not_to_have_attribute("open", "")  # a Basic error leaves it closed

    advanced.locator("summary").click()
    page.fill("#id_temperature", "9")  # an Advanced mistake
    page.fill("#id_batchSize", "64")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#id_temperature-error")).to_be_visible()  # opened for its error
    expect(advanced).to_have_attribute("open", "")
    expect(page.locator("#id_temperature")).to_have_value("9")
    expect(page.locator("#id_learningRate")).to_have_value("0.0005")
    page.fill("#id_batchSize", "7")  # both errors at once, for the screenshot
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#id_batchSize-error")).to_be_visible()
    expect(page.locator("#id_temperature-error")).to_be_visible()
    screenshot(page, "17-wizard-errors")


def answer_next_dialog(page: Page, accept: bool) -> list[str]:
    """Record the next dialog's message and accept or dismiss it."""
    messages: list[str] = []

    def answer(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return messages


def test_2_deleting_a_dataset_asks_first(page: Page, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("\n".join(json.dumps(ROW) for _ in range(3)) + "\n")
    page.goto("/datasets/upload/")
    page.fill("#id_name", "throwaway")
    page.set_input_files("#id_file", str(rows))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r"/datasets/\d+/$"))
    detail = page.url

    dismissed = answer_next_dialog(page, accept=False)
    page.get_by_role("button", name="Delete dataset").click()
    page.goto("/datasets/")
    assert dismissed and "throwaway" in dismissed[0]  # it asked, naming what would go
    expect(page.get_by_role("link", name="throwaway", exact=True)).to_have_count(1)  # kept

    page.goto(detail)
    accepted = answer_next_dialog(page, accept=True)
    page.get_by_role("button", name="Delete dataset").click()
    page.wait_for_url(re.compile(r"/datasets/$"))
    assert accepted == dismissed
    expect(page.get_by_role("link", name="throwaway", exact=True)).to_have_count(0)


def test_3_revoking_a_key_asks_first(page: Page) -> None:
    page.goto("/keys/")
    page.fill("input[name=name]", "laptop")
    page.get_by_role("button", name="Create key").click()
    row = page.locator("tr", has_text="laptop")
    expect(row).to_contain_text("active")

    dismissed = answer_next_dialog(page, accept=False)
    row.get_by_role("button", name="Revoke").click()
    page.goto("/keys/")  # not a reload: that would post the create form again
    assert dismissed and "laptop" in dismissed[0]
    expect(page.locator("tr", has_text="laptop")).to_contain_text("active")

    accepted = answer_next_dialog(page, accept=True)
    page.locator("tr", has_text="laptop").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr", has_text="laptop")).to_contain_text("revoked")
    assert accepted and "laptop" in accepted[0]


def test_4_no_page_broke_the_content_security_policy(
    page_and_refusals: tuple[Page, list[str]],
) -> None:
    page, refusals = page_and_refusals
    page.goto("/favicon.ico")
    assert page.url.endswith("/static/favicon.svg")
    assert refusals == []
