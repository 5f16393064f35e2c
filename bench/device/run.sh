#!/usr/bin/env bash
# On the GPU machine, from the repository root: install the carried wheels (bench/device/bundle.sh)
# into the image's python3, make .venv/bin/python run it, print the versions, run
# bench/gpu_check.sh. As root on a throw-away machine: it installs into the image's environment.
set -uo pipefail
export PYTHONUNBUFFERED=1
python="$(command -v python3)"
nvidia-smi -L
python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    .gpu/whl/*.whl || exit 1
mkdir -p .venv/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$python" >.venv/bin/python
chmod +x .venv/bin/python
.venv/bin/python -c 'import django, torch, transformers, trl
print("python", __import__("sys").version.split()[0], "torch", torch.__version__, "transformers",
      transformers.__version__, "trl", trl.__version__, "django", django.__version__)' || exit 1
GPU_CHECK_STEPS="${GPU_CHECK_STEPS:-60}" bash bench/gpu_check.sh
