#!/usr/bin/env bash
# One-shot check on a GPU machine. Run from anywhere:
#
#   bash scripts/gpu_check.sh [--quick] [PART ...]
#
# PARTs, run in this order (default: all of them):
#   tests      the `gpu`-marked tests (Triton kernels against the float64 reference on CUDA);
#              GPU_TESTS_K="tma or graph": only the tests pytest's -k selects
#   train      the default Connect Four training command with the learner on the GPU
#              (TRAIN_MINUTES, default 5; TRAIN_WORKERS, default: the preset's); it runs in the
#              background while `tests` runs (tests are compile-bound, training CPU-bound)
#   net        `selfplay bench net --device cuda` (evals/s, share of the GPU's matmul peak)
#   overhead   scripts/bench_attention_overhead.py (per-call cost of one small attention call,
#              Triton's launch path against the cached launchers)
#   attention  scripts/bench_attention.py (our kernel vs every SDPA backend); --quick: reduced grid
#   graphs     scripts/bench_attention.py --grid compact --cuda-graphs: the same comparison with
#              every implementation captured in CUDA graphs and timed by replays (the kernels
#              without per-call CPU cost); GRAPHS_B="256": only those batch sizes
#   sweep      (not in the default) scripts/bench_attention.py --sweep --grid compact: time every
#              candidate launch configuration, then compare with the winners; for retuning the
#              table in kernels/attention/op.py on a new GPU (SWEEP_T="361": only those
#              sequence lengths; SWEEP_SECONDS: the sweep's time budget, default 600;
#              SWEEP_BACKWARD=1: only the backward variants, the table's forward kept; on a
#              GPU with a TMA unit the candidates past T = 64 include TMA loads, SWEEP_TMA=1:
#              only those and the table's configuration)
# The timed parts (net, overhead, attention, graphs) run alone, after the others have finished.
#
# Every output is also written under $OUT when it is set (at most 9 files, flat). Exit status:
# that of the tests when they ran, else 0 (every part runs even when an earlier one fails).
set -uo pipefail
cd "$(dirname "$0")/.."
unset TRITON_INTERPRET # real kernels here, never the CPU interpreter

QUICK=()
PARTS=()
for arg in "$@"; do
    case "$arg" in
    --quick) QUICK=(--quick) ;;
    tests | train | net | overhead | attention | graphs | sweep) PARTS+=("$arg") ;;
    *)
        echo "gpu_check: unknown argument '$arg' (allowed: --quick, tests, train, net, overhead, attention, graphs, sweep)" >&2
        exit 2
        ;;
    esac
done
[ ${#PARTS[@]} -eq 0 ] && PARTS=(tests train net overhead attention graphs)
want() { [[ " ${PARTS[*]} " == *" $1 "* ]]; }

out() { # out FILE: copy stdin to the terminal and to $OUT/FILE when $OUT is set
    if [ -n "${OUT:-}" ]; then mkdir -p "$OUT" && tee -a "$OUT/$1"; else cat; fi
}

has_cuda_stack() { # has_cuda_stack PYTHON: torch sees a GPU and triton imports
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
{
    echo "python: $PY ($("$PY" -c 'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda, "triton", triton.__version__)' 2>&1))"
    echo "parts: ${PARTS[*]}"
    nvidia-smi 2>&1
} | out env.txt

train_pid=""
if want train; then
    WANDB_MODE_ARG=offline
    "$PY" -c 'import wandb' >/dev/null 2>&1 || WANDB_MODE_ARG=disabled # not installed here
    RUNS=$(mktemp -d)
    workers=()
    [ -n "${TRAIN_WORKERS:-}" ] && workers=(--workers "$TRAIN_WORKERS")
    echo "train: selfplay train --preset connect_four --minutes ${TRAIN_MINUTES:-5} ${workers[*]}" \
        "--eval-every-minutes 1 --eval-games 40 --wandb $WANDB_MODE_ARG (learner device: auto)" |
        out train_gpu.txt
    (
        WANDB_SILENT=true PYTHONUNBUFFERED=1 timeout $((${TRAIN_MINUTES:-5} * 60 + 120)) \
            "$PY" -m selfplay.cli train --preset connect_four --minutes "${TRAIN_MINUTES:-5}" \
            "${workers[@]}" --eval-every-minutes 1 --eval-games 40 --wandb "$WANDB_MODE_ARG" \
            --runs-dir "$RUNS" --run-name c4-gpu >"$RUNS/train.log" 2>&1
        echo "train exit code $?" >>"$RUNS/train.log"
    ) &
    train_pid=$!
fi

tests_rc=0
if want tests; then
    # pytest-xdist, when present, compiles the kernels' variants in parallel.
    xdist=()
    "$PY" -c 'import xdist' >/dev/null 2>&1 && xdist=(-n 4)
    # Only the test files that use the marker: the others import ray, gymnasium and the rest,
    # which a lent machine's system Python may lack (their import errors failed the part).
    mapfile -t gpu_files < <(grep -rl --include='test_*.py' -e 'mark\.gpu' tests | sort)
    k_filter=()
    [ -n "${GPU_TESTS_K:-}" ] && k_filter=(-k "$GPU_TESTS_K")
    "$PY" -m pytest -m gpu -q "${xdist[@]}" "${k_filter[@]}" "${gpu_files[@]}" 2>&1 | out gpu_tests.txt
    tests_rc=${PIPESTATUS[0]}
fi

if [ -n "$train_pid" ]; then
    wait "$train_pid"
    grep -v '^train [0-9]' "$RUNS/train.log" | tail -40 | out train_gpu.txt
    # the learner's device, positions/s and the Elo curve are in metrics.jsonl
    [ -n "${OUT:-}" ] && cp "$RUNS/c4-gpu/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null
fi

if want net; then
    "$PY" -m selfplay.cli bench net --device cuda 2>&1 | out bench_net.txt
fi

if want overhead; then
    "$PY" scripts/bench_attention_overhead.py 2>&1 | out bench_attention_overhead.txt
fi

if want attention; then
    "$PY" scripts/bench_attention.py "${QUICK[@]}" 2>&1 | out bench_attention.txt
fi

if want graphs; then
    graphs_b=()
    [ -n "${GRAPHS_B:-}" ] && read -ra graphs_b <<<"--b $GRAPHS_B"
    "$PY" scripts/bench_attention.py --grid compact --cuda-graphs "${graphs_b[@]}" 2>&1 |
        out bench_attention_graphs.txt
fi

if want sweep; then
    sweep_t=()
    [ -n "${SWEEP_T:-}" ] && read -ra sweep_t <<<"--t $SWEEP_T"
    [ "${SWEEP_BACKWARD:-0}" = 1 ] && sweep_t+=(--sweep-backward)
    [ "${SWEEP_TMA:-0}" = 1 ] && sweep_t+=(--sweep-tma)
    "$PY" scripts/bench_attention.py --sweep --grid compact --sweep-seconds "${SWEEP_SECONDS:-600}" \
        "${sweep_t[@]}" 2>&1 | out bench_attention_sweep.txt
fi

echo "gpu_check: tests exit code $tests_rc"
exit "$tests_rc"
