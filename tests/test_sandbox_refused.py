"""Fail closed, say why: where the kernel refuses user namespaces, reward code does not run.

A console started where Linux refuses them (tests/support/refused_userns.py: a real ENOSPC from the
kernel) prints one clear line with the fix at start (the line `manage.py up` prints), shows the
reason and the fix on the Overview page, and a code reward's test gives that reason; built-in
graders keep working. The control: the same console without the refusal runs the same code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_hostile_code import ACCOUNT, make_account, unavailable

BASE_DIR = Path(__file__).resolve().parents[1]

# What the console does at start, on the Overview page, and for a code reward's test.
PROBE = r"""
import json, os
import django
django.setup()
from django.template.loader import render_to_string
from rewards.graders.registry import run_grader
from rewards.sandbox.status import check_sandbox, sandbox_status
from rewards.scoring import RewardConfigError, Sample, _run_code
from rftconsole.system import SystemStatus

row = {"messages": [{"role": "user", "content": "3 + 4?"}], "reference_answer": {"final_answer": "7"}}
code = "def grade(sample, item):\n    return 1.0 if '#### 7' in sample['output_text'] else 0.0\n"
try:
    result = _run_code(code, [Sample("a", "#### 7", row)])[0]
    reward_test = {"score": result.score, "error": result.error}
except RewardConfigError as error:
    reward_test = {"refused": str(error)}
panel = render_to_string("console/_system_panel.html",
                         {"status": SystemStatus(True, "", {}, [], sandbox_status())})
print(json.dumps({
    "up": check_sandbox().line(),
    "reward_test": reward_test,
    "builtin": run_grader({"grader": "final_answer_match"}, "#### 7", row).score,
    "panel": panel,
}))
"""


def console(mode: str, refused: bool) -> dict:
    if os.getuid() != 0:
        unavailable("making a namespace that refuses user namespaces needs root")
    account = None
    if mode == "user":
        make_account()
        account = ACCOUNT
    options = {"account": account, "argv": [sys.executable, "-c", PROBE], "allow": not refused}
    argv = [sys.executable, "-m", "tests.support.refused_userns", json.dumps(options)]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    env.pop("RFT_DATA_DIR", None)  # a data dir of its own (the account can write it)
    done = subprocess.run(argv, capture_output=True, text=True, cwd=BASE_DIR, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["root", "user"])
def test_where_user_namespaces_are_refused_code_rewards_fail_closed_and_say_why(mode: str) -> None:
    seen = console(mode, refused=True)

    assert seen["up"].startswith("reward code will NOT run: ")
    assert "user.max_user_namespaces" in seen["up"]  # the fix
    refusal = seen["reward_test"]["refused"]
    assert "Reward code never runs without it" in refusal and "sysctl" in refusal
    assert "refused" in seen["panel"] and "user.max_user_namespaces" in seen["panel"]
    assert seen["builtin"] == 1.0  # built-in graders keep working


@pytest.mark.parametrize("mode", ["root", "user"])
def test_the_same_console_runs_code_rewards_where_namespaces_are_allowed(mode: str) -> None:
    seen = console(mode, refused=False)

    assert seen["up"].startswith("reward code runs in bubblewrap ")
    assert seen["reward_test"] == {"score": 1.0, "error": None}
    assert "ready" in seen["panel"] and "bubblewrap" in seen["panel"]
    assert "/bwrap" not in seen["panel"] and "/bwrap" in seen["up"]  # the path: operators only
