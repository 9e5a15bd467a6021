"""scripts/bench_attention.py end to end on tiny CPU shapes (--dry-run), under the interpreter."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from kernels.attention import op

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_attention.py"

pytestmark = pytest.mark.skipif(
    op._kernel is None or not op._INTERPRETED,
    reason="the dry run needs Triton's CPU interpreter (TRITON_INTERPRET=1)",
)


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_attention", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sweep_then_comparison_prints_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load_script()
    assert bench.main(["--dry-run", "--sweep"]) == 0
    out = capsys.readouterr().out
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    sweep = [r for r in records if r["bench"] == "attention_sweep"]
    winners = [r for r in records if r["bench"] == "attention_sweep_winner"]
    compared = [r for r in records if r["bench"] == "attention"]
    # every candidate of the swept shape was tried and checked against the reference
    assert len(sweep) == len(op.candidate_configs(9, 16))
    assert all(not r.get("rejected") and r["max_err"] < 1e-4 for r in sweep)
    # the winner combines the fastest forward settings with the fastest backward settings
    assert len(winners) == 1
    assert winners[0]["fwd_ms"] == pytest.approx(min(r["fwd_ms"] for r in sweep if "fwd_ms" in r))
    assert winners[0]["bwd_ms"] == pytest.approx(min(r["bwd_ms"] for r in sweep if "bwd_ms" in r))
    # the comparison: the per-call-overhead row, then the dry-run grid; the swept shape ran
    # with the sweep's winner, and our output matched SDPA's
    assert [(r["B"], r["T"]) for r in compared] == [(1, 9), (2, 9), (2, 42)]
    assert compared[1]["config"] == winners[0]["config"]
    for r in compared:
        assert r["correct"] and r["max_err"] < 1e-4
        assert r["ours_fwd_ms"] > 0 and r["ours_fwdbwd_ms"] > 0
        assert r["max_abs_diff_vs_sdpa"] < 1e-4
        assert r["speedup_fwdbwd"] > 0
    assert "speedup f+b" in out  # the table's header


def test_only_the_named_sequence_lengths(capsys: pytest.CaptureFixture[str]) -> None:
    """--t narrows the comparison grid (and the sweep) to those T; an unknown T is refused."""
    bench = _load_script()
    assert bench.main(["--dry-run", "--t", "42"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(r["B"], r["T"]) for r in records] == [(1, 9), (2, 42)]  # overhead row, then T = 42
    with pytest.raises(SystemExit):
        bench.main(["--dry-run", "--t", "361"])
    assert "--t [361] not in the dry-run grid's T [9, 42]" in capsys.readouterr().err


def test_sweep_backward_keeps_the_forward(capsys: pytest.CaptureFixture[str]) -> None:
    """--sweep-backward times one forward and every backward variant (fused and split)."""
    bench = _load_script()
    assert bench.main(["--dry-run", "--sweep", "--sweep-backward", "--t", "9"]) == 0
    records = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    sweep = [r for r in records if r["bench"] == "attention_sweep"]
    first = op.pick_config(9, 16)
    forward = ("block_m", "block_n", "num_warps", "num_stages")
    assert all(all(r["config"][f] == getattr(first, f) for f in forward) for r in sweep)
    assert sum("fwd_ms" in r for r in sweep) == 1
    assert len(sweep) == sum(
        all(getattr(c, f) == getattr(first, f) for f in forward)
        for c in op.candidate_configs(9, 16)
    )


def test_long_sequences_get_more_candidates() -> None:
    """Past the fused backward's reach the sweep also tries bigger tiles and deeper pipelines."""
    short, long = op.candidate_configs(81, 64), op.candidate_configs(361, 64)
    assert any(c.block_n == 128 and c.num_warps == 8 for c in long)
    assert not any(c.block_n == 128 for c in short)
    assert any((c.bwd_owned, c.bwd_inner, c.bwd_stages) == (128, 32, 5) for c in long)
    assert len(set(long)) == len(long) and long[0] == op.pick_config(361, 64)
    # TMA loads: forward candidates once the key loop has several steps, backward ones past
    # the fused backward (whose one tile needs no streamed loads)
    assert any(c.fwd_tma for c in short) and not any(c.bwd_tma for c in short)
    assert any(c.fwd_tma for c in long) and any(c.bwd_tma for c in long)
    assert not any(c.fwd_tma or c.bwd_tma for c in op.candidate_configs(42, 64))


def test_sweep_drops_tma_candidates_without_a_tma_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    """--sweep-tma: the table's configuration and the TMA candidates. Where descriptors cannot be
    used (no TMA unit) those would time the ordinary loads again under another name: the sweep
    leaves them out."""
    bench = _load_script()
    with_tma = bench.ShapeSweep(361, 16, 2, 2, "cpu", torch.float32)
    assert any(c.fwd_tma for c in with_tma.candidates)
    tma_only = bench.ShapeSweep(361, 16, 2, 2, "cpu", torch.float32, tma_only=True)
    assert tma_only.candidates[0] == op.pick_config(361, 16)  # the table's, as the baseline
    assert tma_only.candidates[1:] == [c for c in with_tma.candidates if c.fwd_tma or c.bwd_tma]
    monkeypatch.setattr(op, "_tma_ok", lambda *tensors: False)
    without = bench.ShapeSweep(361, 16, 2, 2, "cpu", torch.float32)
    assert without.candidates == [c for c in with_tma.candidates if not (c.fwd_tma or c.bwd_tma)]


def test_batch_filter_and_timing_label(capsys: pytest.CaptureFixture[str]) -> None:
    """--b narrows the grid's batch sizes; every record says how it was timed; --cuda-graphs
    needs a GPU and is refused with --dry-run."""
    bench = _load_script()
    assert bench.main(["--dry-run", "--b", "2", "--t", "9"]) == 0
    out = capsys.readouterr().out
    records = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [(r["B"], r["T"]) for r in records] == [(1, 9), (2, 9)]
    assert all(r["timing"] == "eager" for r in records) and "eager calls" in out
    with pytest.raises(SystemExit):
        bench.main(["--dry-run", "--b", "4"])
    assert "--b [4] not in the dry-run grid's B [2]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--dry-run", "--cuda-graphs"])
    assert "--cuda-graphs needs a CUDA GPU" in capsys.readouterr().err


def test_a_wrong_kernel_reports_no_speed_up(monkeypatch: pytest.MonkeyPatch) -> None:
    package = importlib.import_module("kernels.attention")  # `kernels.attention` is the function
    bench = _load_script()
    real = package.attention
    monkeypatch.setattr(package, "attention", lambda *a, **kw: 1.5 * real(*a, **kw))
    timer = bench.Timer("cpu", target_ms=1.0, repeats=1)
    record = bench.bench_config(2, 2, 9, 16, "cpu", timer, "cpu", torch.float32)
    assert record["correct"] is False and record["max_err"] > 0.1
    assert "speedup_fwdbwd" not in record and "speedup_fwd" not in record
    assert "WRONG" in bench._row(record)


def test_overhead_script_times_both_launch_paths(capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/bench_attention_overhead.py --dry-run: every layer timed with Triton's launch path
    and with the cached one, and the caller's FAST_LAUNCH setting restored afterwards."""
    spec = importlib.util.spec_from_file_location(
        "bench_attention_overhead", SCRIPT.with_name("bench_attention_overhead.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    before = op.FAST_LAUNCH
    assert module.main(["--dry-run"]) == 0
    assert op.FAST_LAUNCH == before
    out = capsys.readouterr().out
    record = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    assert record["bench"] == "attention_overhead" and (record["T"], record["D"]) == (9, 64)
    names = [name for name, _ in module.rows(*(torch.zeros(1, 1, 9, 16) for _ in range(4)), "cpu")]
    assert list(record["us_per_call"]) == names
    for name in names:
        times = record["us_per_call"][name]
        assert times["triton"] > 0 and times["cached"] > 0, name
        assert name in out
