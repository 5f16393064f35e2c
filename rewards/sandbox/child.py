"""The program that runs user reward code, inside the sandbox. Standard library only.

The parent starts it as `python -I -S -c <this file's text>` in fresh user/mount/network/pid
namespaces (see runner.py), with an empty environment and the data dir and source tree hidden.
Here it forks once so user code runs as PID 1 of the new pid namespace (it cannot see or signal
the console's processes), mounts a private /proc, drops to `nobody` when started as root, applies
resource limits, then serves batches: one length-prefixed pickled request on stdin (pickle only
flows from the trusted parent to here, never back), one JSON reply line on the protocol pipe.
User code's prints go to a capped buffer, never to the protocol pipe.
"""

import io
import json
import math
import os
import pickle
import resource
import sys
import time
import traceback

NOBODY = 65534
MAX_OUTPUT = 64 * 1024


def _mount_proc() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount(b"proc", b"/proc", b"proc", 0, None)


# Imported before privileges drop, so reward code finds the same modules on every installation,
# even where the interpreter's own files are not readable by `nobody`.
PRELOADED = [
    "ast",
    "bisect",
    "collections",
    "copy",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "enum",
    "fractions",
    "functools",
    "hashlib",
    "heapq",
    "itertools",
    "math",
    "operator",
    "random",
    "re",
    "socket",
    "statistics",
    "string",
    "textwrap",
    "typing",
    "unicodedata",
    "signal",
    "encodings.idna",
]


def _preload() -> None:
    import importlib

    for name in PRELOADED:
        importlib.import_module(name)


def _drop_privileges() -> None:
    if os.getuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _limit(limits: dict) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu_seconds"], limits["cpu_seconds"] + 1))
    resource.setrlimit(resource.RLIMIT_AS, (limits["memory_bytes"], limits["memory_bytes"]))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits["file_bytes"], limits["file_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new processes at all


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


def _components(entry: dict) -> list:
    if "metrics_list" in entry:
        return [
            {
                "name": str(m["name"]),
                "value": _number(m["value"]),
                "type": str(m.get("type", "Metric")),
            }
            for m in entry["metrics_list"]
        ]
    raw = entry.get("reward_components") or {}
    return [{"name": str(k), "value": _number(v), "type": "Reward"} for k, v in raw.items()]


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
        raise ValueError(f"lambda_handler returned {len(returned)} results for {len(ids)} items")
    by_id = {}
    for position, entry in enumerate(returned):
        if not isinstance(entry, dict):
            raise TypeError(f"result {position} is a {type(entry).__name__}, not an object")
        by_id[str(entry.get("id", ids[position]))] = entry
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
            errors[position] = str(error)
            continue
        scores.append(score)
        if found:
            components[position] = found
    return scores, errors, components


def _run_grade(namespace: dict, batch: dict) -> tuple:
    rows, grade = batch["rows"], namespace["grade"]
    scores, errors = [], {}
    for position, (text, r) in enumerate(zip(batch["texts"], batch["row_of"], strict=True)):
        sample = {
            "output_text": text,
            "messages": [*rows[r]["prompt"], {"role": "assistant", "content": text}],
        }
        try:
            scores.append(_number(grade(sample, rows[r]["row"])))
        except Exception as error:  # noqa: BLE001 - one row's failure is that row's error
            scores.append(None)
            errors[position] = f"{type(error).__name__}: {error}"
    return scores, errors, {}


def _requests():
    stream = sys.stdin.buffer
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return
        yield pickle.loads(stream.read(int.from_bytes(header, "big")))  # noqa: S301 - from the parent


def _serve(replies) -> None:
    compiled = {}
    for request in _requests():
        output = CappedOutput()
        real_out, real_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = output
        try:
            key = request["code_hash"]
            if key not in compiled:
                namespace = {"__name__": "reward"}
                exec(compile(request["code"], "reward.py", "exec"), namespace)  # noqa: S102
                compiled = {key: namespace}  # keep only the current code
            namespace = compiled[key]
            runner = _run_lambda if "lambda_handler" in namespace else _run_grade
            if runner is _run_grade and "grade" not in namespace:
                raise NameError("define lambda_handler(event, context) or grade(sample, item)")
            started = time.perf_counter()
            scores, errors, components = runner(namespace, request)
            seconds = time.perf_counter() - started  # the reward's own time, for the pool
            reply = {"scores": scores, "errors": errors, "components": components, "s": seconds}
        except BaseException as error:  # noqa: BLE001 - report anything, then keep serving
            if isinstance(error, KeyboardInterrupt | SystemExit):
                reply = {"error": f"the code raised {type(error).__name__}"}
            elif isinstance(error, MemoryError):
                reply = {"error": "MemoryError: the reward used more memory than allowed"}
            else:
                trace = traceback.format_exception(
                    type(error), error, error.__traceback__, limit=-3
                )
                reply = {"error": "".join(trace)[-4000:]}
        finally:
            sys.stdout, sys.stderr = real_out, real_err
        reply["stdout"] = output.value()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        reply["cpu"] = usage.ru_utime + usage.ru_stime
        replies.write(json.dumps(reply) + "\n")
        replies.flush()


def main() -> None:
    config = json.loads(os.environ.pop("RFT_SANDBOX", "{}"))
    child = os.fork()
    if child:  # the first process only waits: its child is PID 1 of the new pid namespace
        os.close(config["reply_fd"])
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    if config.get("new_proc"):
        _mount_proc()
    _preload()
    _drop_privileges()
    _limit(config["limits"])
    os.chdir("/tmp")  # noqa: S108 - a private tmpfs inside the sandbox
    replies = os.fdopen(config["reply_fd"], "w", encoding="utf-8")
    _serve(replies)


if __name__ == "__main__":  # run with `python -c`; importable for the benchmark
    main()
