"""Shared helpers for `selfplay bench`: machine names, matmul peak, timing, table, JSON line."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo), or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def gpu_name() -> str | None:
    """The name of CUDA device 0, or None without a usable GPU."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def synchronize(device: torch.device | str) -> None:
    """Wait for queued GPU work, so timings measure the work and not its launch."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def time_callable(
    fn: Callable[[], object],
    min_seconds: float = 1.0,
    *,
    repeats: int = 3,
    device: torch.device | str = "cpu",
) -> float:
    """Seconds per call of `fn`: the best of `repeats` windows of >= min_seconds / repeats.

    Two untimed calls first (allocations, lazy initialisation, autotuning). The best window,
    not the mean, because on a shared machine the noise only ever adds time.
    """
    fn()
    fn()
    synchronize(device)
    window = min_seconds / repeats
    best = float("inf")
    for _ in range(repeats):
        calls = 0
        start = time.perf_counter()
        while True:
            fn()
            calls += 1
            synchronize(device)  # a CPU-GPU sync point, on purpose: we time finished work
            elapsed = time.perf_counter() - start
            if elapsed >= window:
                break
        best = min(best, elapsed / calls)
    return best


def matmul_peaks(
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    seconds: float = 1.0,
    size: int | None = None,
) -> dict[str, float]:
    """GFLOP/s of large square matrix products, per GEMM library torch can reach here.

    "torch.matmul" is the BLAS path (MKL on x86 builds). On the CPU we also time the same
    product through oneDNN with the weight pre-packed (the op torch's inductor uses for frozen
    linear layers; a channels-last 1x1 convolution, exactly a GEMM, where that op is missing):
    oneDNN is the library our convolutions run on, and on some CPUs it is twice as fast as MKL
    (MKL picks slower code on non-Intel chips), so a share of the MKL figure alone could
    exceed 100 %. Each product counts 2 n^3 FLOPs (a multiply-add is 2).
    """
    device = torch.device(device)
    n = size or (2048 if device.type == "cpu" else 8192)
    flops = 2.0 * n**3
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    share = seconds / (2 if device.type == "cpu" else 1)
    with torch.inference_mode():
        peaks = {"torch.matmul": flops / time_callable(lambda: a @ b, share, device=device) / 1e9}
        if device.type == "cpu" and torch.backends.mkldnn.is_available():
            peaks["onednn"] = flops / _onednn_seconds(a, b, share) / 1e9
    return peaks


def _onednn_seconds(a: torch.Tensor, b: torch.Tensor, seconds: float) -> float:
    """Seconds per a @ b.T on oneDNN (CPU), pre-packed weight if the private op exists."""
    n = a.shape[0]
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(b, n)

        def product() -> torch.Tensor:
            return torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")

        product()
    except (AttributeError, RuntimeError):  # op missing or changed in this torch build
        x = a.reshape(1, n, 1, n).contiguous(memory_format=torch.channels_last)
        w = b.reshape(n, n, 1, 1).contiguous(memory_format=torch.channels_last)

        def product() -> torch.Tensor:
            return F.conv2d(x, w)

    return time_callable(product, seconds)


def measure_matmul_peak(
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    seconds: float = 1.0,
    size: int | None = None,
) -> float:
    """The best GFLOP/s of a large square matmul on `device` (see `matmul_peaks`)."""
    return max(matmul_peaks(device, dtype, seconds, size).values())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """Print `rows` as an aligned text table with the given columns (missing cells empty)."""
    cells = [[_cell(row.get(column, "")) for column in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def emit_json(obj: Mapping[str, Any]) -> None:
    """Print `obj` as one compact JSON line (what scripts and CI parse)."""
    print(json.dumps(obj, separators=(",", ":")), flush=True)
