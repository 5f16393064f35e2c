"""Code generation checked by unit tests, run inside the reward sandbox.

The row's "tests" field (metadata) holds Python assert statements, one per line, e.g.
    "tests": ["assert add(2, 3) == 5", "assert add(-1, 1) == 0"]
The model's answer should contain a Python function, bare or in a ```python block. The score is
the share of tests that pass. Each test gets two seconds, so a generated infinite loop fails that
test instead of the whole batch. The sandbox has no network and no files of yours.
"""

import re
import signal

CODE_BLOCK = re.compile(r"```(?:python)?\s*\n(.*?)```", re.DOTALL)


class TestTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise TestTimeout()


def extract_code(answer):
    found = CODE_BLOCK.search(answer)
    return found.group(1) if found else answer


def run_test(namespace, test, seconds=2):
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        exec(test, namespace)  # the sandbox is what makes this acceptable
        return True
    except BaseException:
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def grade(sample, item):
    tests = item.get("tests") or []
    if not tests:
        print("row has no tests")
        return 0.0
    namespace = {}
    if not run_test(namespace, extract_code(sample["output_text"])):
        print("the answer's code does not run")
        return 0.0
    passed = sum(run_test(namespace, test) for test in tests)
    print(f"{passed}/{len(tests)} tests passed")
    return passed / len(tests)
