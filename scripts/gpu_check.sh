#!/usr/bin/env bash
# One-shot check on a lent GPU machine: nvidia-smi, the `gpu`-marked tests, the attention
# benchmark. Run from anywhere: `bash scripts/gpu_check.sh [--quick]` (--quick goes to the
# benchmark). Every output is also written under $OUT when it is set. Exit status: that of the
# tests (the benchmark still runs when they fail, so one call gives both).
set -uo pipefail
cd "$(dirname "$0")/.."
unset TRITON_INTERPRET  # real kernels here, never the CPU interpreter

out() {  # out FILE: copy stdin to the terminal and to $OUT/FILE when $OUT is set
    if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && tee "$OUT/$1"; else cat; fi
}

has_cuda_stack() {  # has_cuda_stack PYTHON: torch sees a GPU and triton imports
    "$1" -c 'import sys, torch, triton; sys.exit(0 if torch.cuda.is_available() else 1)' \
        >/dev/null 2>&1
}

# Prefer an interpreter that already has CUDA torch + triton (a lent machine often has them
# system-wide; it may have no network to install anything).
if has_cuda_stack python3; then
    PY=python3
elif [ -x .venv/bin/python ] && has_cuda_stack .venv/bin/python; then
    PY=.venv/bin/python
else
    if [ ! -x .venv/bin/python ]; then
        # --system-site-packages: a system-wide CUDA torch stays visible inside the venv.
        python3 -m venv --system-site-packages .venv && .venv/bin/pip install -q -e '.[dev]'
    fi
    PY=.venv/bin/python
fi
echo "python: $PY ($("$PY" -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)' 2>&1))" | out env.txt

nvidia-smi 2>&1 | out nvidia-smi.txt

# Other packages' test modules may need libraries this machine lacks; their import errors must
# not hide the gpu tests, hence --continue-on-collection-errors.
"$PY" -m pytest -m gpu -q --continue-on-collection-errors tests 2>&1 | out gpu_tests.txt
tests_rc=${PIPESTATUS[0]}

"$PY" scripts/bench_attention.py "$@" 2>&1 | out bench_attention.txt
if [ -n "${OUT:-}" ]; then grep '^{"bench"' "$OUT/bench_attention.txt" >"$OUT/bench_attention.jsonl"; fi

# the networks on the GPU (evals/s, share of the GPU's matmul peak)
"$PY" -m selfplay.cli bench net --device cuda 2>&1 | out bench_net.txt
# the same training command with the learner on the GPU: positions/s and the Elo curve
WANDB_SILENT=true timeout 420 "$PY" -m selfplay.cli train --preset connect_four --minutes 5 \
    --eval-every-minutes 1 --eval-games 40 --wandb offline --runs-dir "${OUT:-runs}/gpu-runs" \
    --run-name c4-gpu 2>&1 | tail -20 | out train_gpu.txt

echo "gpu_check: tests exit code $tests_rc"
exit "$tests_rc"
