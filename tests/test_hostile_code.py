"""Hostile reward code is contained, for the specific reason expected, whoever runs the console.

The suite runs twice: with the console process as root, and as an ordinary account (made here
when the tests run as root, as CI does; tests/support/sandbox_driver.py is that console process). Each
case runs a probe twice in that console:
- in the real sandbox pool, which must stop it with the specific error named in the case, leave
  every file it aimed at unchanged and still score a good reward afterwards;
- as the control, the same probe run the way a console without a sandbox would (a plain process
  of the console's user, with its environment, modules and files), which must do the harm. So a
  probe that could never work is caught: the test then fails on the control.
Results go to the report table (tests/support/reports.py; RELIABILITY.md shows the latest).
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.support.hostile_cases import CASES, Case
from tests.support.reports import record

pytestmark = pytest.mark.reliability

BASE_DIR = Path(__file__).resolve().parents[1]
ACCOUNT = "rft-sandbox-test"
REPORT = (
    "hostile-reward-code",
    ("Console runs as", "Case", "Contained", "In the sandbox", "Control"),
)
GOOD = "def grade(sample, item):\n    return 1.0 if item['ground_truth'] in sample['output_text'] else 0.0\n"


@dataclass
class Console:
    """The driver process: one JSON request, one JSON answer."""

    process: subprocess.Popen[str]
    hello: dict[str, Any]

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the console process died (exit {self.process.poll()})"
        return json.loads(line)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None


def make_account() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(ACCOUNT)
    except KeyError:
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/usr/sbin/nologin", ACCOUNT], check=True
        )
        return pwd.getpwnam(ACCOUNT)


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI runs the hostile suite in both modes)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module", params=["root", "an ordinary user"])
def console(request: pytest.FixtureRequest) -> Iterator[Console]:
    options: dict[str, Any] = {"account": None}
    if request.param == "root":
        if os.getuid() != 0:
            unavailable("running the console as root needs the tests to run as root")
        options["data_dir"] = str(BASE_DIR / ".test-data" / "hostile-root" / "data")
        cleanup = BASE_DIR / ".test-data" / "hostile-root"
    elif os.getuid() == 0:
        account = make_account()
        options.update(account=ACCOUNT, data_dir=f"{account.pw_dir}/rft-data")
        cleanup = Path(account.pw_dir) / "rft-data"
    else:  # already an ordinary user: the console runs as this user
        cleanup = BASE_DIR / ".test-data" / f"hostile-{os.getuid()}"
        options["data_dir"] = str(cleanup / "data")
    shutil.rmtree(cleanup, ignore_errors=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.sandbox_driver", json.dumps(options)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=BASE_DIR,
        env={
            **{k: v for k, v in os.environ.items() if k != "RFT_DATA_DIR"},
            "RFT_PROBE_SECRET": secrets.token_hex(8),  # in the console's initial environment
        },
    )
    assert process.stdout is not None
    hello = json.loads(process.stdout.readline())
    assert not Path(hello["data_dir"]).is_relative_to("/tmp")  # hiding it is really tested
    yield Console(process, {**hello, "mode": request.param})
    process.kill()
    process.wait()
    shutil.rmtree(cleanup, ignore_errors=True)


def context(console: Console) -> SimpleNamespace:
    hello = console.hello
    return SimpleNamespace(**hello, base_dir=str(BASE_DIR), marker=f"{hello['pid']}")


def module(case: Case, c: SimpleNamespace) -> str:
    """The probe as a reward file: a whole module (lambda_handler) or the body of grade()."""
    text = case.probe(c)
    if "def lambda_handler" in text:
        return "import json, os, sys\n" + text
    lines = "\n".join(f"    {line}" for line in text.strip().splitlines())
    return f"import os, socket, signal, sys, time\n\ndef grade(sample, item):\n{lines}\n    return 1.0\n"


def describe(answer: dict[str, Any]) -> str:
    text = answer.get("message") or answer.get("stdout", "")[-120:] or "(no error)"
    return text.strip().splitlines()[-1][:160] if text.strip() else "(no error)"


def test_the_suite_covers_what_the_issue_lists() -> None:
    names = " ".join(CASES)
    for needed in (
        "unix socket server", "TCP", "abstract unix socket", "home dotfile", "shadow",
        "data dir", "source tree", "environment", "outlive", "stack overflow", "metrics",
        "metric name", "error message", "prints", "protocol pipe", "project's own modules",
    ):  # fmt: skip
        assert needed in names, needed
    assert len(CASES) >= 40


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_code_is_contained_for_the_specific_reason(console: Console, name: str) -> None:
    case, c = CASES[name], context(console)
    code = module(case, c)
    before = console.ask(op="reset")
    boxed = console.ask(op="sandbox", code=code)
    harmed = {k: v for k, v in boxed["fingerprint"].items() if before.get(k) != v}
    still_works = console.ask(op="sandbox", code=GOOD).get("score") == 1.0
    control = console.ask(op="control", code=code, timeout=case.control_timeout)
    console.ask(op="reset")  # the control did the harm: put everything back
    seen = f"{boxed['message']} {boxed.get('stdout', '')[-200:]}"
    reasons = (case.contained,) if isinstance(case.contained, str) else case.contained
    contained = any(r in seen for r in reasons) and not harmed and still_works
    record(
        *REPORT,
        console.hello["mode"],
        name,
        "yes" if contained and case.harm(control) else "NO",
        describe(boxed),
        control_summary(control),
    )
    assert any(r in seen for r in reasons), (reasons, boxed)
    assert len(boxed["message"]) <= 8000  # the error itself is bounded
    assert harmed == {}, harmed
    assert still_works  # the pool still scores a good reward afterwards
    assert console.alive  # and the console process is unharmed
    assert case.harm(control), f"the control did no harm, so the probe proves nothing: {control}"


def control_summary(control: dict[str, Any]) -> str:
    outcome = control["outcome"]
    detail = {
        "returned": f"did it ({control.get('size', 0):,} bytes back)",
        "raised": f"raised {control.get('detail', '')[:60]} ({control.get('size', 0):,} chars)",
        "signal": f"killed by signal {control.get('detail')}",
        "running": "still running at its time limit",
        "exited": f"exited with code {control.get('detail')}",
    }[outcome]
    pipe = control.get("pipe_bytes", 0)
    return detail + (f"; wrote {pipe:,} bytes to the pipe" if pipe else "")
