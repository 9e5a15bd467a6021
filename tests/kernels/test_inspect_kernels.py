"""scripts/inspect_kernels.py: our kernels compiled for a Hopper GPU (sm_90) on this CPU-only
machine. The interpreter the other kernel tests use compiles nothing, so this is where a
compile error in a GPU-only path (TMA descriptors, tiles past the shared memory) shows up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels.attention import op

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "inspect_kernels.py"

pytestmark = pytest.mark.skipif(op._kernel is None, reason="triton is not importable")


def _inspect(*args: str) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("tma", [False, True], ids=["loads", "tma"])
@pytest.mark.parametrize(("T", "D"), [(81, 64), (361, 64), (361, 32)])
def test_kernels_compile_for_hopper(T: int, D: int, tma: bool) -> None:
    """The launch table's configurations at the benchmark's shapes (and with TMA loads) compile
    for sm_90, run on Hopper's warpgroup tensor cores (wgmma, not Ampere's mma.sync), fit the
    registers, and use TMA exactly where asked."""
    records = _inspect("--t", str(T), "--d", str(D), *(["--tma"] if tma else []))
    config = op.pick_config(T, D)
    want = ["fwd", "bwd_fused"] if config.uses_fused_bwd(T) else ["fwd", "bwd_dkdv", "bwd_dq"]
    assert [r["kernel"] for r in records] == want
    for r in records:
        assert (r["T"], r["D"], r["arch"], r["dtype"]) == (T, D, 90, "bf16")
        assert r["wgmma"] > 0 and r["mma_sync"] == 0, r
        assert 0 < r["registers"] <= 255 and r["shared_bytes"] <= 232448, r  # H100's limits
        streams = r["kernel"] != "bwd_fused"  # the fused backward's one tile streams nothing
        assert r["tma"] == (tma and streams) and (r["tma_loads"] > 0) == (tma and streams), r


def test_refuses_the_interpreter() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--t", "9"],
        env={**os.environ, "TRITON_INTERPRET": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "unset TRITON_INTERPRET" in result.stderr
