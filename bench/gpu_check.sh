#!/usr/bin/env bash
# The GPU figures of the multi-process bench: the arithmetic demo on CUDA, unattended, < 10 min.
#
#   bench/gpu_check.sh            (from anywhere; the repository is this script's parent)
#
# Runs bench/multi_process.py --device cuda: the demo (bench settings, GPU_CHECK_STEPS steps,
# default 60) with 1 process, and with 2 processes where torch sees ≥ 2 GPUs; each with
# transformers' generate (RFT_VLLM=0) and, where the vllm package imports, with vLLM (colocate
# mode). Per run it prints s/step and tokens/s (medians of steps 2..N), the peak GPU memory of rank
# 0 (torch.cuda.max_memory_allocated, GiB) and tuned/base validation accuracy, then one verdict
# line with the goals. Then bench/gpu_serve_check.py: a console with RFT_INFERENCE_DEVICE=cuda:0
# serves the deployed starter over /v1 (structured outputs, logprobs, completions, responses).
# A fresh data dir under a temporary directory (migrate, admin, the starter from the shared cache:
# bench/common.py prepare_data_dir, as `make up` does); the job runs as that admin. Builds
# nothing: it needs the .venv and the starter cache that `make up`/`make test` make.
#
# Where torch sees no CUDA GPU it prints one line saying so and exits 0: nothing to measure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
STEPS="${GPU_CHECK_STEPS:-60}"
BUDGET=420 # seconds for every job together: with the serving check the whole stays under 10 minutes

if [[ ! -x "$PY" ]]; then
    echo "gpu_check: no virtual environment at $ROOT/.venv: run \`make up\` or \`make test\` first" >&2
    exit 1
fi

# GPUs as the driver lists them, and as this environment's torch sees them (it runs the jobs).
listed=0
if command -v nvidia-smi >/dev/null 2>&1; then
    listed="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)"
fi
seen="$("$PY" -c 'import torch; print(torch.__version__, torch.cuda.device_count())')" || {
    echo "gpu_check: torch does not import in $ROOT/.venv: run \`make up\` or \`make test\` first" >&2
    exit 1
}
read -r torch_version devices <<<"$seen"

if [[ "$devices" -eq 0 ]]; then
    if [[ "$listed" -gt 0 ]]; then
        echo "no CUDA GPU found (nvidia-smi lists $listed but torch $torch_version sees none: a CPU-only torch build, or CUDA_VISIBLE_DEVICES hides them): nothing measured"
    else
        echo "no CUDA GPU found (nvidia-smi/torch see none): nothing measured"
    fi
    exit 0
fi

cache="${RFT_STARTER_CACHE:-$ROOT/.cache/starter}"
if ! key="$(cd "$ROOT" && "$PY" -c 'from jobs.starter.artifacts import Recipe; print(Recipe().key())')" ||
    [[ ! -d "$cache/$key" ]]; then
    echo "gpu_check: no starter model in the cache ($cache/${key:-?}): run \`make test\` (or \`make up\`) first" >&2
    exit 1
fi

processes=(1)
if [[ "$devices" -ge 2 ]]; then
    processes=(1 2)
else
    echo "1 CUDA GPU: 2 processes not measured (numProcesses 2 needs one GPU per process)"
fi
engines=(off)
if ! "$PY" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("vllm") is None)'; then
    echo "vLLM not measured: the vllm package is not installed (\`make gpu-extras\` installs it on a GPU host, outside the lock: vLLM 0.33 pins torch 2.14 and transformers < 5.21, the lock has torch 2.13 and transformers 5.23)"
elif ! error="$("$PY" -c 'import vllm' 2>&1)"; then
    echo "vLLM not measured: vllm is installed in .venv but does not import: ${error##*$'\n'}"
else
    engines=(off on)
fi

echo "gpu_check: $devices CUDA GPU(s), torch $torch_version, $STEPS steps per run, ${BUDGET} s for all"
cd "$ROOT"
status=0
"$PY" bench/multi_process.py --device cuda --steps "$STEPS" --processes "${processes[@]}" \
    --vllm "${engines[@]}" --budget "$BUDGET" --job-timeout 300 || status=$?
# Serving: /v1 with the deployment's weights on GPU 0 (about a minute; bench/gpu_serve_check.py).
DEVICE=cuda:0 "$PY" bench/gpu_serve_check.py || status=$?
exit "$status"
