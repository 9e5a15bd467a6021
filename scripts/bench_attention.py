"""Benchmark our Triton attention against every PyTorch SDPA backend and a naive torch version.

Shapes are the board-game regime: short sequences (T = 9, 42, 81, 361 tokens), large batches.
For each (B, H, T, D) it times forward and forward+backward (dq, dk, dv) in bf16 with CUDA
events, prints a table (GPU name in the header, speedup against the fastest SDPA backend), then
one JSON line per configuration. A backend that refuses a shape, runs out of memory, or would
need more memory than the GPU has, is reported as "n/a".

    python scripts/bench_attention.py            # full grid
    python scripts/bench_attention.py --quick    # reduced grid, shorter timing

Needs a CUDA GPU; without one it prints a line saying so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

FULL_GRID = {"B": [256, 1024, 4096], "H": [4, 8], "T": [9, 42, 81, 361], "D": [32, 64]}
QUICK_GRID = {"B": [1024], "H": [8], "T": [9, 81, 361], "D": [64]}
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")


def time_ms(fn: Callable[[], object], target_ms: float, repeats: int = 5) -> float:
    """Median over `repeats` of the mean time per call (ms), each repeat about target_ms long."""
    fn()  # compile / autotune / allocate outside the timing
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(3):
        fn()
    end.record()
    torch.cuda.synchronize()
    per_call = max(start.elapsed_time(end) / 3, 1e-3)
    iters = max(1, min(1000, int(target_ms / per_call)))
    samples = []
    for _ in range(repeats):
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    return statistics.median(samples)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(D)) v in plain torch; materialises the (B, H, T, T) scores."""
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))  # (B, H, T, T)
    return torch.softmax(scores, dim=-1) @ v  # (B, H, T, D)


def sdpa_with(backend: str) -> Callable[..., torch.Tensor]:
    """SDPA restricted to one backend; raises RuntimeError if it refuses the inputs."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    which = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "math": SDPBackend.MATH,
    }[backend]

    def run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        with sdpa_kernel(which):
            return torch.nn.functional.scaled_dot_product_attention(q, k, v)

    return run


def measure(
    attn: Callable[..., torch.Tensor],
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    do: torch.Tensor,
    target_ms: float,
) -> tuple[float, float, torch.Tensor] | None:
    """(forward ms, forward+backward ms, output) or None when the implementation refuses/OOMs."""

    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return attn(q, k, v)

    def fwd_bwd() -> None:
        # autograd.grad, not .backward(): no .grad accumulation inside the timed loop.
        torch.autograd.grad(attn(q, k, v), (q, k, v), do)

    try:
        out = fwd()
        return time_ms(fwd, target_ms), time_ms(fwd_bwd, target_ms), out
    except (RuntimeError, torch.cuda.OutOfMemoryError):  # "No available kernel", OOM, ...
        torch.cuda.empty_cache()
        return None


def bench_config(
    B: int, H: int, T: int, D: int, gpu: str, target_ms: float, attention: Callable
) -> dict[str, object]:
    """Time every implementation on one (B, H, T, D) bf16 shape; returns the JSON record."""
    dtype = torch.bfloat16
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v, do = (
        torch.randn(B, H, T, D, device="cuda", dtype=dtype, generator=gen) for _ in range(4)
    )
    for t in (q, k, v):
        t.requires_grad_(True)
    # Score-matrix implementations keep ~4 (B, H, T, T) fp32-sized tensors alive in fwd+bwd.
    free_bytes, _ = torch.cuda.mem_get_info()
    tt_fits = B * H * T * T * 4 * 4 < 0.6 * free_bytes

    record: dict[str, object] = {
        "bench": "attention",
        "gpu": gpu,
        "B": B,
        "H": H,
        "T": T,
        "D": D,
        "dtype": "bf16",
    }
    ours = measure(lambda *a: attention(*a, backend="triton"), q, k, v, do, target_ms)
    if ours is None:
        raise RuntimeError(f"our triton kernel failed on B={B} H={H} T={T} D={D}")
    record["ours_fwd_ms"], record["ours_fwdbwd_ms"] = round(ours[0], 5), round(ours[1], 5)

    sdpa: dict[str, object] = {}
    best_fwd: tuple[float, str] | None = None
    best_fb: tuple[float, str] | None = None
    for name in SDPA_BACKENDS:
        skip = name == "math" and not tt_fits
        result = None if skip else measure(sdpa_with(name), q, k, v, do, target_ms)
        if result is None:
            sdpa[name] = "n/a"
            continue
        fwd_ms, fb_ms, out = result
        sdpa[name] = {"fwd_ms": round(fwd_ms, 5), "fwdbwd_ms": round(fb_ms, 5)}
        if "max_abs_diff_vs_sdpa" not in record:
            # A wrong kernel must not report a speedup: record how far our output is from SDPA's.
            record["max_abs_diff_vs_sdpa"] = float((ours[2].float() - out.float()).abs().max())
        best_fwd = min(best_fwd or (math.inf, ""), (fwd_ms, name))
        best_fb = min(best_fb or (math.inf, ""), (fb_ms, name))
    record["sdpa"] = sdpa
    if best_fb is not None and best_fwd is not None:
        record["best_sdpa_fwd_ms"] = round(best_fwd[0], 5)
        record["best_sdpa_fwd_backend"] = best_fwd[1]
        record["best_sdpa_fwdbwd_ms"] = round(best_fb[0], 5)
        record["best_sdpa_backend"] = best_fb[1]
        record["speedup_fwd"] = round(best_fwd[0] / ours[0], 3)
        record["speedup_fwdbwd"] = round(best_fb[0] / ours[1], 3)

    naive = measure(naive_attention, q, k, v, do, target_ms) if tt_fits else None
    record["naive_fwd_ms"] = round(naive[0], 5) if naive else "n/a"
    record["naive_fwdbwd_ms"] = round(naive[1], 5) if naive else "n/a"
    del q, k, v, do
    torch.cuda.empty_cache()
    return record


def _fmt(x: object) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced grid, shorter timing")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        print("bench_attention: a CUDA GPU is needed to benchmark the Triton kernel; skipping.")
        return 0

    # Runs as `python scripts/bench_attention.py` from anywhere: make the repo importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import triton

    from kernels.attention import attention

    gpu = torch.cuda.get_device_name()
    grid = QUICK_GRID if args.quick else FULL_GRID
    target_ms = 15.0 if args.quick else 40.0
    print(
        f"# attention benchmark on {gpu} | torch {torch.__version__} (CUDA {torch.version.cuda})"
        f" | triton {triton.__version__} | bf16, non-causal, no mask | times in ms"
    )
    header = (
        f"{'B':>5} {'H':>2} {'T':>4} {'D':>3} | {'ours fwd':>9} {'ours f+b':>9} | "
        + " ".join(f"{n + ' f+b':>14}" for n in SDPA_BACKENDS)
        + f" | {'naive f+b':>10} | {'best sdpa':>9} {'speedup f+b':>11} {'speedup fwd':>11}"
    )
    print(header)
    print("-" * len(header))
    records = []
    for B in grid["B"]:
        for H in grid["H"]:
            for T in grid["T"]:
                for D in grid["D"]:
                    rec = bench_config(B, H, T, D, gpu, target_ms, attention)
                    records.append(rec)
                    sdpa = rec["sdpa"]
                    cells = " ".join(
                        f"{_fmt(sdpa[n]['fwdbwd_ms'] if isinstance(sdpa[n], dict) else 'n/a'):>14}"
                        for n in SDPA_BACKENDS
                    )
                    print(
                        f"{B:>5} {H:>2} {T:>4} {D:>3} | {_fmt(rec['ours_fwd_ms']):>9} "
                        f"{_fmt(rec['ours_fwdbwd_ms']):>9} | {cells} | "
                        f"{_fmt(rec['naive_fwdbwd_ms']):>10} | "
                        f"{rec.get('best_sdpa_backend', 'n/a'):>9} "
                        f"{_fmt(rec.get('speedup_fwdbwd', 'n/a')):>11} "
                        f"{_fmt(rec.get('speedup_fwd', 'n/a')):>11}",
                        flush=True,
                    )
    for rec in records:
        print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
