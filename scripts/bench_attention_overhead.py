"""Per-call cost of our attention at a shape too small to give the GPU work: launches and Python.

For a small board-game batch the time of one attention call is set on the CPU: argument checks,
buffer allocation, Triton's launch path and autograd's bookkeeping, not the kernel. This script
times each layer of that on its own, with Triton's own launch path (``kernel[grid](...)`` on
every call) and with the cached compiled launchers of ``kernels.attention.op._launch``
(``FAST_LAUNCH``), next to SDPA and to a do-nothing ``autograd.Function`` (the floor of any
operation whose backward is written in Python). Prints a table, then one JSON line.

    python scripts/bench_attention_overhead.py              # B = H = 1, T = 9, D = 64, bf16
    python scripts/bench_attention_overhead.py --dry-run    # CPU, TRITON_INTERPRET=1 (tests)

Method: after a warm-up, ``n`` back-to-back calls between two ``torch.cuda.synchronize()``,
wall-clock time divided by ``n``; the least of ``--repeats`` such measures (the least disturbed
one: these are CPU timings on a shared machine, and the rows of one run are what to compare),
with the two launch paths taking turns repeat by repeat.
Needs a CUDA GPU; without one (and without --dry-run) it prints a line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

# Runs as `python scripts/bench_attention_overhead.py` from anywhere: make the repo importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class _Floor(torch.autograd.Function):
    """A Python autograd op that only allocates its outputs: the cost of the machinery."""

    @staticmethod
    def forward(ctx, q, k, v):  # type: ignore[override]
        ctx.save_for_backward(q, k, v)
        return torch.empty_like(q)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ctx.saved_tensors  # noqa: B018 (unpacking the saved tensors is part of the cost)
        return torch.empty_like(grad), torch.empty_like(grad), torch.empty_like(grad)


def per_call_us(fn: Callable[[], object], n: int, repeats: int, device: str) -> float:
    """Least over `repeats` of the mean wall-clock time per call (microseconds)."""

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(min(n, 30)):
        fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) / n * 1e6)
    return best


def rows(q, k, v, do, dev: str) -> list[tuple[str, Callable[[], object]]]:
    """(name, call) of each measured layer; names say which path they take."""
    from kernels.attention import op

    qd, kd, vd = q.detach(), k.detach(), v.detach()
    with torch.no_grad():
        o, lse = op.triton_forward(qd, kd, vd, None)

    def no_grad(fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad():
                return fn()

        return run

    return [
        ("triton_forward (launch + 2 buffers)",
         no_grad(lambda: op.triton_forward(qd, kd, vd, None))),
        ("triton_backward (launch + 3 buffers)",
         lambda: op.triton_backward(do, qd, kd, vd, o, lse, None)),
        ("attention(), no grad", no_grad(lambda: op.attention(q, k, v, backend="triton"))),
        ("attention() fwd+bwd (autograd.grad)",
         lambda: torch.autograd.grad(op.attention(q, k, v, backend="triton"), (q, k, v), do)),
        ("sdpa, no grad", no_grad(lambda: F.scaled_dot_product_attention(q, k, v))),
        ("sdpa fwd+bwd (autograd.grad)",
         lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v), (q, k, v), do)),
        ("empty autograd.Function fwd+bwd",
         lambda: torch.autograd.grad(_Floor.apply(q, k, v), (q, k, v), do)),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=9)
    parser.add_argument("--D", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000, help="calls per measure")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="CPU under TRITON_INTERPRET=1")
    args = parser.parse_args(argv)

    from kernels.attention import op

    if args.dry_run:
        if not op._INTERPRETED:
            print("bench_attention_overhead: --dry-run needs TRITON_INTERPRET=1")
            return 2
        device, dtype, calls, repeats = "cpu", torch.float32, 3, 1
    elif torch.cuda.is_available() and op._kernel is not None:
        device, dtype, calls, repeats = "cuda", torch.bfloat16, args.calls, args.repeats
    else:
        print("bench_attention_overhead: no CUDA GPU (or no triton): nothing to measure")
        return 0

    gen = torch.Generator(device=device).manual_seed(0)
    shape = (1, 1, args.T, args.D)
    q, k, v, do = (torch.randn(shape, device=device, dtype=dtype, generator=gen) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_(True)

    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)"
    triton_version = getattr(op.triton, "__version__", "none")
    print(f"# per-call cost (us), B = H = 1, T = {args.T}, D = {args.D}, {dtype} on {gpu} | "
          f"torch {torch.__version__} | triton {triton_version} | least of {repeats} x {calls} "
          "calls")  # fmt: skip
    print("# (sdpa and the empty Function launch nothing of ours: their two columns show the "
          "run-to-run noise)")  # fmt: skip
    print(f"{'':40s} {'triton launch':>14s} {'cached launch':>14s}")
    measured: dict[str, dict[str, float]] = {}
    previous = op.FAST_LAUNCH
    try:
        # the two paths take turns, repeat by repeat, so a drift of the machine's speed during
        # the run falls on both (a first version that ran one path after the other saw SDPA,
        # which launches nothing of ours, change by 60 % between its two columns)
        for _ in range(repeats):
            for fast in (False, True):
                op.FAST_LAUNCH = fast
                for name, fn in rows(q, k, v, do, device):
                    us = per_call_us(fn, calls, 1, device)
                    times = measured.setdefault(name, {})
                    path = "cached" if fast else "triton"
                    times[path] = round(min(us, times.get(path, float("inf"))), 2)
    finally:
        op.FAST_LAUNCH = previous
    for name, times in measured.items():
        print(f"{name:40s} {times['triton']:14.1f} {times['cached']:14.1f}")
    print(json.dumps({"bench": "attention_overhead", "gpu": gpu, "T": args.T, "D": args.D,
                      "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
                      "triton": triton_version, "us_per_call": measured}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
