"""Browser tests' parts: the whole console started like `make up`, and the Debian Chromium.

Playwright's own browser download cannot work offline, so tests drive the `chromium` package that
`.ci/run` installs. In CI (`CI=true`) a missing browser fails the run: a browser test never skips
there. On a developer machine without it, the tests skip with the command that installs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Playwright

from tests.support.processes import embedded_env, free_port, http_status, manage, wait_until

CHROMIUM = Path(os.environ.get("RFT_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Headless, and quiet: no update checks, sync, or other calls home from the browser.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
]
STARTUP_SECONDS = 300


@dataclass
class Console:
    url: str
    env: dict[str, str]
    log: Path

    def manage(self, *args: str) -> str:
        """Run a management command against this console's data dir; its output."""
        done = subprocess.run(manage(*args), env=self.env, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


@contextmanager
def running_console(data_dir: Path, admin: str, password: str) -> Iterator[Console]:
    """`manage.py up` on a free port with a fresh data dir; stopped with Ctrl-C afterwards."""
    port = free_port()
    env = embedded_env(data_dir, admin_password=password)
    env["RFT_ADMIN_USERNAME"] = admin
    log_path = data_dir.parent / "up.log"
    with log_path.open("w") as log:
        up = subprocess.Popen(
            manage("up", "--port", str(port)), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            ready = lambda: "RFT Console is ready" in log_path.read_text() or up.poll() is not None  # noqa: E731
            wait_until(ready, STARTUP_SECONDS, "`manage.py up` to start")
            assert up.poll() is None, log_path.read_text()
            url = f"http://127.0.0.1:{port}"
            assert http_status(url + "/login/") == 200, log_path.read_text()
            yield Console(url, env, log_path)
        finally:
            up.send_signal(signal.SIGINT)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()


def launch_chromium(playwright: Playwright) -> Browser:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} not found: install it with `apt-get install -y chromium`"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI must run the browser tests)", pytrace=False)
        pytest.skip(message)
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


def new_context(browser: Browser, base_url: str) -> BrowserContext:
    context = browser.new_context(base_url=base_url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(60_000)
    return context


def watch_csp(context: BrowserContext) -> list[str]:
    """Every Content-Security-Policy refusal Chromium reports in this context's pages, as
    "<page url>: <message>" (Chromium logs each refused script, style, frame or connection)."""
    refusals: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            page = message.page
            refusals.append(f"{page.url if page else '?'}: {message.text}")

    context.on("console", note)
    return refusals


def log_in(page: Page, username: str, password: str) -> None:
    page.goto("/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login/" not in url)


def chart_points(page: Page, chart: str) -> int:
    return int(page.evaluate(f"document.getElementById('{chart}').data?.[0]?.x?.length ?? 0"))


def wait_for_chart_points(page: Page, chart: str, more_than: int, timeout_s: float) -> int:
    """Wait on the chart's own data (what Plotly drew), never on a sleep."""
    page.wait_for_function(
        "([id, n]) => (document.getElementById(id).data?.[0]?.x?.length ?? 0) > n",
        arg=[chart, more_than],
        timeout=timeout_s * 1000,
    )
    return chart_points(page, chart)


def screenshot(page: Page, name: str) -> None:
    """Save the page for docs/screenshots/ (the committed set is the latest passing run's)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
