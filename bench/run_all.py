"""Run every benchmark of the issue, one after the other, and print the nine figures at the end.

Each script runs alone with its defaults (plus the profiles that say where our time goes), its
output shown as it comes; a failing script is reported and the others still run. `make bench`
runs this. The last block holds each script's final line and the total time.

    .venv/bin/python bench/run_all.py [--only memory ttft]
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {  # issue order: name → the script and its arguments
    "effectiveness": ["effectiveness.py"],
    "engine_overhead": ["engine_overhead.py", "--profile"],
    "metric_latency": ["metric_latency.py"],
    "reward_throughput": ["reward_throughput.py", "--profile"],
    "ttft": ["ttft.py", "--profile"],
    "memory": ["memory.py"],
    "web_load": ["web_load.py", "--profile"],
    "v1_load": ["v1_load.py"],
    "multiprocess": ["multi_process.py"],
}


def machine() -> str:
    import psutil
    import torch
    import transformers
    import trl

    memory = psutil.virtual_memory().total / 1024**3
    return (
        f"{psutil.cpu_count()} vCPU, {memory:.0f} GiB RAM, {platform.platform()}; Python "
        f"{platform.python_version()}, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, TRL {trl.__version__}"
    )


def run(name: str, argv: list[str]) -> tuple[str, float]:
    """Run one script, echoing its output; its final line (or why it failed) and seconds."""
    print(f"\n=== {name}: {' '.join(['bench/' + argv[0], *argv[1:]])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(HERE / argv[0]), *argv[1:]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    last = ""
    for line in process.stdout:
        if "Loading weights" in line or "FutureWarning" in line or "warnings.warn" in line:
            continue  # library progress bars and deprecation notices, not results
        print(line, end="", flush=True)
        last = line.strip() or last
    seconds = time.monotonic() - started
    if process.wait() != 0:
        last = f"{name}: FAILED (exit {process.returncode}); see its output above ✗"
    return last, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), help="run only these")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"RFT Console benchmarks, {datetime.now():%Y-%m-%d %H:%M}; {machine()}")
    results = [(name, *run(name, argv)) for name, argv in BENCHES.items()
               if not args.only or name in args.only]  # fmt: skip
    print(f"\n=== summary ({(time.monotonic() - started) / 60:.1f} min in all)")
    for name, final, seconds in results:
        print(f"{final}   [{name}, {seconds / 60:.1f} min]")


if __name__ == "__main__":
    main()
