"""The program that runs user reward code, inside the sandbox. Standard library only.

bwrap starts it as `python -I -S -c <this file's text> <config JSON>` in its allowlist root (see
bwrap.py). Before any user code runs it closes every inherited file but the protocol pipe, gives
up uid 0 and every capability where the console runs as root, applies resource limits and says
it is ready. Then it serves batches: one length-prefixed marshalled request on stdin (marshal
only flows from the trusted parent to here, never back), one JSON reply line on the protocol pipe.
User code's prints go to a capped buffer, never to the protocol pipe. What it returns is checked
and capped here (a clear per-row error); the parent checks the reply again, since code running in
this process could bypass anything done here.
"""

import ctypes
import io
import json
import marshal
import math
import os
import resource
import select
import sys
import time
import traceback

NOBODY = 65534
LIBS_INSIDE = "/opt/reward-libs"
MAX_OUTPUT = 64 * 1024  # characters of captured prints per batch
MAX_COMPONENTS = 32  # metrics per row
MAX_NAME = 64  # characters in a metric's name or type
MAX_ERROR = 2000  # characters in one row's error
PR_CAPBSET_DROP = 24
# After a reply, poll this long before blocking: batches often come back to back (a split batch,
# the test bench, the next step's rewards on an idle machine), and a wake-up costs more.
SPIN_SECONDS = 0.001

# Imported while the interpreter's files are certainly readable (before the uid switch), so
# reward code finds the same modules on every installation.
PRELOADED = [
    "ast", "bisect", "collections", "copy", "dataclasses", "datetime", "decimal", "difflib",
    "enum", "fractions", "functools", "hashlib", "heapq", "itertools", "math", "operator",
    "random", "re", "socket", "statistics", "string", "textwrap", "typing", "unicodedata",
    "signal", "encodings.idna",
]  # fmt: skip


def _preload() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)


def _close_inherited(keep: int) -> None:
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)


def _drop_privileges() -> None:
    """Root inside the namespace only until here: no capabilities, uid and gid 65534."""
    if os.getuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            break  # past the last capability this kernel knows
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)  # clears the permitted and effective capabilities
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
    libc.capset(header, (ctypes.c_uint32 * 6)())  # and the inheritable set: nothing at all


def _limit(limits: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes or threads at all


class CappedOutput(io.TextIOBase):
    def __init__(self) -> None:
        self.parts = []
        self.size = 0
        self.truncated = False

    def write(self, text: str) -> int:
        room = MAX_OUTPUT - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        if len(text) > room:
            self.truncated = True
        return len(text)

    def value(self) -> str:
        note = "\n[output truncated at 64 KB]" if self.truncated else ""
        return "".join(self.parts) + note


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"the score must be a number, got {type(value).__name__}: {value!r:.80}")
    if not math.isfinite(value):
        raise ValueError(f"the score must be finite, got {value}")
    return float(value)


def _label(value: object, what: str) -> str:
    text = str(value)
    if len(text) > MAX_NAME:
        raise ValueError(f"a metric's {what} is {len(text):,} characters; at most {MAX_NAME}")
    return text


def _components(entry: dict) -> list:
    metrics = entry.get("metrics_list")
    raw = entry.get("reward_components") or {}
    count = len(metrics) if metrics is not None else len(raw)
    if count > MAX_COMPONENTS:
        raise ValueError(f"{count:,} metrics for one row; at most {MAX_COMPONENTS}")
    if metrics is not None:
        return [
            {
                "name": _label(m["name"], "name"),
                "value": _number(m["value"]),
                "type": _label(m.get("type", "Metric"), "type"),
            }
            for m in metrics
        ]
    return [
        {"name": _label(k, "name"), "value": _number(v), "type": "Reward"} for k, v in raw.items()
    ]


def _capped(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR] + " […]"


def _run_lambda(namespace: dict, batch: dict) -> tuple:
    """Build Bedrock's event (each distinct row's prompt and metadata prepared once), call the
    handler, and check what it returns."""
    rows, ids = batch["rows"], batch["ids"]
    metadata = [{k: v for k, v in r["row"].items() if k != "messages"} for r in rows]
    event = [
        {
            "id": item_id,
            "messages": [*rows[r]["prompt"], {"role": "assistant", "content": text}],
            "metadata": dict(metadata[r]),  # a copy each: one item's edits stay its own
            "reference_answer": rows[r]["row"].get("reference_answer"),
        }
        for item_id, text, r in zip(ids, batch["texts"], batch["row_of"], strict=True)
    ]
    return lambda_results(namespace["lambda_handler"](event, None), ids)


def lambda_results(returned: object, ids: list) -> tuple:
    """Scores by position (None where that item failed), errors and components by position."""
    if not isinstance(returned, list):
        raise TypeError(f"lambda_handler must return a list, got {type(returned).__name__}")
    if len(returned) != len(ids):
        raise ValueError(f"lambda_handler returned {len(returned):,} results for {len(ids)} items")
    by_id = {}
    for position, entry in enumerate(returned):
        if not isinstance(entry, dict):
            raise TypeError(f"result {position} is a {type(entry).__name__}, not an object")
        by_id[str(entry.get("id", ids[position]))[: MAX_NAME * 4]] = entry
    scores, errors, components = [], {}, {}
    for position, item_id in enumerate(ids):
        entry = by_id.get(item_id)
        if entry is None:
            scores.append(None)
            errors[position] = "no result with this id"
            continue
        try:
            score = _number(entry.get("aggregate_reward_score"))
            found = _components(entry)
        except (TypeError, ValueError, KeyError) as error:
            scores.append(None)
            errors[position] = _capped(str(error))
            continue
        scores.append(score)
        if found:
            components[position] = found
    return scores, errors, components


def _json_or_none(text: str) -> object:
    """The answer parsed as JSON when it is a JSON object or array, else None. Only text that
    starts like one is parsed, so plain answers cost nothing."""
    if text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _run_grade(namespace: dict, batch: dict) -> tuple:
    rows, grade = batch["rows"], namespace["grade"]
    scores, errors = [], {}
    for position, (text, r) in enumerate(zip(batch["texts"], batch["row_of"], strict=True)):
        sample = {
            "output_text": text,
            "output_json": _json_or_none(text),  # as OpenAI's python graders receive it
            "messages": [*rows[r]["prompt"], {"role": "assistant", "content": text}],
        }
        try:
            scores.append(_number(grade(sample, rows[r]["row"])))
        except Exception as error:  # noqa: BLE001 - one row's failure is that row's error
            scores.append(None)
            errors[position] = _capped(f"{type(error).__name__}: {error}")
    return scores, errors, {}


def _read_exactly(count: int) -> bytes:
    parts, left = [], count
    while left:
        part = os.read(0, min(left, 1 << 16))
        if not part:
            return b""
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _wait_for_request() -> None:
    until = time.perf_counter() + SPIN_SECONDS
    while time.perf_counter() < until and not select.select([0], [], [], 0)[0]:
        os.sched_yield()  # never hold up the parent if the two share a core


def _requests():
    while True:
        _wait_for_request()
        header = _read_exactly(8)
        if len(header) < 8:
            return
        payload = _read_exactly(int.from_bytes(header, "big"))
        yield marshal.loads(payload)  # noqa: S302 - from the trusted parent only


def _score(request: dict, compiled: dict) -> dict:
    key = request["code_hash"]
    if request["code"] is not None:  # the first batch brings the code; later ones only its hash
        compiled["source"] = request["code"]
    if key not in compiled:
        namespace = {"__name__": "reward"}
        exec(compile(compiled["source"], "reward.py", "exec"), namespace)  # noqa: S102
        compiled[key] = namespace  # a worker only ever runs one code
    namespace = compiled[key]
    runner = _run_lambda if "lambda_handler" in namespace else _run_grade
    if runner is _run_grade and "grade" not in namespace:
        raise NameError("define lambda_handler(event, context) or grade(sample, item)")
    started = time.perf_counter()
    scores, errors, components = runner(namespace, request)
    seconds = time.perf_counter() - started  # the reward's own time, for the pool
    return {"scores": scores, "errors": errors, "components": components, "s": seconds}


def _failure(error: BaseException) -> dict:
    if isinstance(error, KeyboardInterrupt | SystemExit):
        return {"error": f"the code raised {type(error).__name__}"}
    if isinstance(error, MemoryError):
        return {"error": "MemoryError: the reward used more memory than allowed"}
    trace = traceback.format_exception(type(error), error, error.__traceback__, limit=-3)
    return {"error": "".join(trace)[-4000:]}


def _reply(fd: int, reply: dict) -> None:
    data = (json.dumps(reply) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _serve(replies: int) -> None:
    compiled = {}
    for request in _requests():
        output = CappedOutput()
        real_out, real_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = output
        try:
            reply = _score(request, compiled)
        except BaseException as error:  # noqa: BLE001 - report anything, then keep serving
            try:
                reply = _failure(error)
            except BaseException:  # noqa: BLE001 - e.g. a message too large to format
                reply = {"error": f"the code raised {type(error).__name__}"}
        finally:
            sys.stdout, sys.stderr = real_out, real_err
        reply["stdout"] = output.value()
        reply["seq"] = request.get("seq")
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["cpu"] = usage.ru_utime + usage.ru_stime
        _reply(replies, reply)


def main() -> None:
    config = json.loads(sys.argv[1])
    _close_inherited(config["reply_fd"])
    _preload()
    _drop_privileges()
    if os.path.isdir(LIBS_INSIDE):
        sys.path.append(LIBS_INSIDE)
    _limit(config["limits"])
    _reply(config["reply_fd"], {"ready": True, "uid": os.getuid()})
    _serve(config["reply_fd"])


if __name__ == "__main__":  # run with `python -c`; importable for the benchmark
    main()
