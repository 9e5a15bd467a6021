"""Benchmark our Triton attention against every PyTorch SDPA backend and a naive torch version.

Shapes are the board-game regime: short sequences (T = 9, 42, 81, 361 tokens), large batches.
For each (B, H, T, D) it times forward and forward+backward (dq, dk, dv) in bf16 with CUDA
events, prints a table (GPU name in the header, speedup against the fastest SDPA backend), then
one JSON line per configuration. A backend that refuses a shape, runs out of memory, or would
need more memory than the GPU has, is reported as "n/a". A first row at B = H = 1 shows the
per-call overhead (launches, Python) that no kernel work hides.

    python scripts/bench_attention.py                 # full grid
    python scripts/bench_attention.py --quick         # reduced grid, shorter timing
    python scripts/bench_attention.py --grid compact  # H = 8 only
    python scripts/bench_attention.py --sweep         # first time every launch configuration
                                                      # of kernels.attention.op.candidate_configs
                                                      # and compare with the fastest
    python scripts/bench_attention.py --sweep --grid compact --t 361  # one sequence length
    python scripts/bench_attention.py --sweep --sweep-backward ...     # backward variants only
    python scripts/bench_attention.py --sweep --sweep-tma ...          # the TMA candidates only
    python scripts/bench_attention.py --grid compact --cuda-graphs    # CUDA-graph replays

--sweep times, for each (T, D) at H = 8 and B = 4,096 (T <= 64) or 1,024, the forward and the
backward of every candidate configuration separately (their launch settings are independent),
checks each candidate's output and gradients against an fp32 reference, and prints the winners
as a table for ``pick_config``. The comparison that follows then runs with the winners (the
JSON lines say which configuration ran). Every comparison row checks our output and gradients
against fp32 too, and reports no speed-up for a kernel outside the bound. ``--sweep-seconds``
bounds the sweep: candidates are visited round-robin over the shapes, so a short budget still
covers every shape.

Eager calls (the default) include each call's CPU cost: Python, dispatch, autograd's node and
its hand-off of the backward to its GPU thread; at small batches that cost, not the kernels,
sets the time. ``--cuda-graphs`` captures each implementation's forward, and its
forward+backward, in a CUDA graph and times the replays, so the table compares the kernels
themselves, as a captured training step (``torch.cuda.graph``, or ``torch.compile`` with
``mode="reduce-overhead"``) runs them. Every implementation is timed the same way in a run,
and the JSON lines say which (``"timing": "eager" | "cuda_graph"``).

Needs a CUDA GPU; without one it prints a line saying so and exits 0. ``--dry-run`` runs the
same code on tiny CPU shapes (with TRITON_INTERPRET=1 for our kernel) to test the script itself.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# Runs as `python scripts/bench_attention.py` from anywhere: make the repo importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.graphs import capture

GRIDS = {
    "full": {"B": [256, 1024, 4096], "H": [4, 8], "T": [9, 42, 81, 361], "D": [32, 64]},
    "compact": {"B": [256, 1024, 4096], "H": [8], "T": [9, 42, 81, 361], "D": [32, 64]},
    "quick": {"B": [1024], "H": [8], "T": [9, 81, 361], "D": [64]},
    "dry-run": {"B": [2], "H": [2], "T": [9, 42], "D": [16]},
}
SDPA_BACKENDS = ("flash", "efficient", "cudnn", "math")
SWEEP_SHAPES = [(T, D) for D in (64, 32) for T in (9, 42, 81, 361)]  # (T, D), at B=1024, H=8


class Timer:
    """Mean time per call (ms) of a callable: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device: str, target_ms: float, repeats: int = 5) -> None:
        self.device, self.target_ms, self.repeats = device, target_ms, repeats

    def _sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def _elapsed_ms(self, fn: Callable[[], object], iters: int) -> float:
        if self.device == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return (time.perf_counter() - t0) * 1e3

    def __call__(self, fn: Callable[[], object]) -> float:
        """Median over `repeats` of the mean time per call, each repeat about target_ms long."""
        fn()  # compile / allocate outside the timing
        self._sync()
        per_call = max(self._elapsed_ms(fn, 3) / 3, 1e-3)
        iters = max(1, min(1000, int(self.target_ms / per_call)))
        return statistics.median(self._elapsed_ms(fn, iters) / iters for _ in range(self.repeats))


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


def _inputs(B: int, H: int, T: int, D: int, device: str, dtype: torch.dtype) -> list[torch.Tensor]:
    """q, k, v (requiring grad) and dO, each (B, H, T, D), seeded."""
    gen = torch.Generator(device=device).manual_seed(0)
    q, k, v, do = (
        torch.randn(B, H, T, D, device=device, dtype=dtype, generator=gen) for _ in range(4)
    )
    for t in (q, k, v):
        t.requires_grad_(True)
    return [q, k, v, do]


def measure(
    attn: Callable[..., torch.Tensor], q, k, v, do, timer: Timer, cuda_graphs: bool = False
) -> tuple[float, float, torch.Tensor] | None:
    """(forward ms, forward+backward ms, output) or None when the implementation refuses/OOMs.
    ``cuda_graphs``: time replays of each captured in a CUDA graph (``kernels.graphs``)."""

    def fwd() -> torch.Tensor:
        with torch.no_grad():
            return attn(q, k, v)

    def fwd_bwd() -> None:
        # autograd.grad, not .backward(): no .grad accumulation inside the timed loop.
        torch.autograd.grad(attn(q, k, v), (q, k, v), do)

    try:
        out = fwd()
        if cuda_graphs:  # the replays: kernels without the per-call CPU cost
            return timer(capture(fwd).replay), timer(capture(fwd_bwd).replay), out
        return timer(fwd), timer(fwd_bwd), out
    except (RuntimeError, torch.cuda.OutOfMemoryError):  # "No available kernel", OOM, ...
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return None


# --------------------------------------------------------------------------------------------
# --sweep: time every candidate launch configuration of our kernel.
# --------------------------------------------------------------------------------------------


def _fwd_key(cfg) -> tuple:
    return (cfg.block_m, cfg.block_n, cfg.num_warps, cfg.num_stages, cfg.fwd_tma)


def _bwd_key(cfg, T: int) -> tuple:
    if cfg.uses_fused_bwd(T):
        return ("fused", cfg.fused_warps)
    return ("split", cfg.bwd_owned, cfg.bwd_inner, cfg.bwd_warps, cfg.bwd_stages, cfg.bwd_tma)


def _max_err(got: list[torch.Tensor], want: list[torch.Tensor]) -> float:
    return max(
        float((g.detach().float() - w.detach().float()).abs().max())
        for g, w in zip(got, want, strict=True)
    )


class Checker:
    """Output and dq, dk, dv of an implementation against an fp32 reference, on the first 64
    batch rows (the reference's (T, T) tensors stay small). ``ok`` when the largest error is
    within twice torch's own error at the input dtype, plus 0.01."""

    def __init__(self, q, k, v, do) -> None:
        from kernels.attention.ref import attention_ref

        rows = min(q.shape[0], 64)
        self.inputs = [t[:rows].detach().clone().requires_grad_(True) for t in (q, k, v)]
        self.do = do[:rows]
        self.exact = self._run(lambda *a: attention_ref(*a, None, upcast=True))
        low = self._run(lambda *a: attention_ref(*a, None, upcast=False))
        self.torch_err = _max_err(low, self.exact)  # torch's own error at this dtype

    def _run(self, attn: Callable[..., torch.Tensor]) -> list[torch.Tensor]:
        out = attn(*self.inputs)
        return [out, *torch.autograd.grad(out, self.inputs, self.do)]

    def error(self, attn: Callable[..., torch.Tensor]) -> tuple[float, bool]:
        """(largest error of out, dq, dk, dv; whether it is within the bound)."""
        err = _max_err(self._run(attn), self.exact)
        return err, err <= 2 * self.torch_err + 1e-2


class ShapeSweep:
    """The candidates of one (T, D) and what has been measured of them."""

    def __init__(
        self,
        T: int,
        D: int,
        B: int,
        H: int,
        device: str,
        dtype: torch.dtype,
        backward_only: bool = False,
        tma_only: bool = False,
    ) -> None:
        from kernels.attention import op

        self.op, self.T, self.D, self.B, self.H = op, T, D, B, H
        self.candidates = op.candidate_configs(T, D)
        if backward_only:  # the table's forward settings with every backward variant
            first = _fwd_key(self.candidates[0])
            self.candidates = [c for c in self.candidates if _fwd_key(c) == first]
        if tma_only:  # the table's configuration against the TMA variants
            first, *rest = self.candidates
            self.candidates = [first, *(c for c in rest if c.fwd_tma or c.bwd_tma)]
        self.q, self.k, self.v, self.do = _inputs(B, H, T, D, device, dtype)
        if not op._tma_ok(self.q, self.k, self.v, self.do):
            # no TMA unit here: those candidates would time the ordinary loads a second time
            self.candidates = [c for c in self.candidates if not (c.fwd_tma or c.bwd_tma)]
        self.checker = Checker(self.q, self.k, self.v, self.do)
        self.torch_err = self.checker.torch_err
        self.fwd: dict[tuple, tuple[float, object]] = {}  # key -> (ms, config)
        self.bwd: dict[tuple, tuple[float, object]] = {}
        self.rejected: list[tuple[object, float]] = []
        self.next = 0

    def done(self) -> bool:
        return self.next >= len(self.candidates)

    def step(self, timer: Timer) -> dict[str, object]:
        """Measure the next candidate (what it adds: its forward, its backward, or both)."""
        cfg = self.candidates[self.next]
        self.next += 1
        op = self.op
        record: dict[str, object] = {
            "bench": "attention_sweep", "T": self.T, "D": self.D, "B": self.B, "H": self.H,
            "config": dataclasses.asdict(cfg),
        }  # fmt: skip
        with op.override_config(self.T, self.D, cfg):
            try:
                err, ok = self.checker.error(lambda *a: op.attention(*a, backend="triton"))
            except Exception as error:  # e.g. Triton's OutOfResources: this candidate only
                err, ok = math.inf, False
                record["error"] = f"{type(error).__name__}: {error}"[:300]
            record["max_err"], record["torch_err"] = err, self.torch_err
            if not ok:
                self.rejected.append((cfg, err))
                record["rejected"] = True
                return record
            fk, bk = _fwd_key(cfg), _bwd_key(cfg, self.T)
            q, k, v, do = self.q, self.k, self.v, self.do
            if fk not in self.fwd:
                with torch.no_grad():
                    ms = timer(lambda: op.triton_forward(q, k, v, None, cfg))
                self.fwd[fk] = (ms, cfg)
                record["fwd_ms"] = round(ms, 5)
            if bk not in self.bwd:
                with torch.no_grad():
                    o, lse = op.triton_forward(q, k, v, None, cfg)
                    ms = timer(lambda: op.triton_backward(do, q, k, v, o, lse, None, cfg))
                self.bwd[bk] = (ms, cfg)
                record["bwd_ms"] = round(ms, 5)
        return record

    def winner(self):
        """Fastest forward settings combined with the fastest backward settings."""
        if not self.fwd or not self.bwd:
            return None
        f = min(self.fwd.values(), key=lambda x: x[0])[1]
        b = min(self.bwd.values(), key=lambda x: x[0])[1]
        return f.with_backward_of(b)


def run_sweep(
    device: str,
    dtype: torch.dtype,
    seconds: float,
    dry_run: bool,
    only_t: list[int] | None = None,
    backward_only: bool = False,
    tma_only: bool = False,
) -> dict:
    """Round-robin over the shapes until every candidate is timed or `seconds` are spent.
    ``only_t``: sweep only these sequence lengths; ``backward_only``: only the candidates with
    the table's forward settings; ``tma_only``: the table's configuration and the TMA
    candidates."""
    shapes = [(9, 16)] if dry_run else SWEEP_SHAPES
    shapes = [(T, D) for T, D in shapes if only_t is None or T in only_t]
    timer = Timer(device, target_ms=1.0 if dry_run else 10.0, repeats=1 if dry_run else 3)
    # Short sequences at B = 1024 finish in about the time a launch takes: time them at 4096.
    sweeps = [
        ShapeSweep(T, D, 2 if dry_run else (4096 if T <= 64 else 1024), 2 if dry_run else 8,
                   device, dtype, backward_only, tma_only)
        for T, D in shapes
    ]  # fmt: skip
    deadline = time.monotonic() + seconds
    print(f"# sweep: H=8 {dtype}, B=4096 for T <= 64, else 1024; up to {seconds:.0f} s; "
          "ms per call", flush=True)  # fmt: skip
    while time.monotonic() < deadline and not all(s.done() for s in sweeps):
        for sweep in sweeps:
            if sweep.done() or time.monotonic() >= deadline:
                continue
            rec = sweep.step(timer)
            cfg = rec["config"]
            print(
                f"T={sweep.T:>3} D={sweep.D:>3} fwd {cfg['block_m']}x{cfg['block_n']} "
                f"w{cfg['num_warps']} s{cfg['num_stages']}{' tma' if cfg['fwd_tma'] else ''} "
                f"bwd {_bwd_key(sweep.candidates[sweep.next - 1], sweep.T)}: "
                f"fwd {rec.get('fwd_ms', '-')} bwd {rec.get('bwd_ms', '-')} "
                f"err {rec['max_err']:.3g} (torch {rec['torch_err']:.3g})"
                + (" REJECTED" if rec.get("rejected") else ""),
                flush=True,
            )
            print(json.dumps(rec), flush=True)
    winners = {}
    for sweep in sweeps:
        win = sweep.winner()
        tried = f"{sweep.next}/{len(sweep.candidates)} candidates"
        if win is None:
            print(f"# T={sweep.T} D={sweep.D}: no candidate measured ({tried})")
            continue
        winners[(sweep.T, sweep.D)] = win
        default = sweep.candidates[0]
        f_def = sweep.fwd.get(_fwd_key(default), (math.nan,))[0]
        b_def = sweep.bwd.get(_bwd_key(default, sweep.T), (math.nan,))[0]
        f_win = sweep.fwd[_fwd_key(win)][0]
        b_win = sweep.bwd[_bwd_key(win, sweep.T)][0]
        print(
            f"# winner T={sweep.T} D={sweep.D} ({tried}): fwd {f_win:.4f} ms (default "
            f"{f_def:.4f}), bwd {b_win:.4f} ms (default {b_def:.4f}): {win}",
            flush=True,
        )
        print(json.dumps({"bench": "attention_sweep_winner", "T": sweep.T, "D": sweep.D,
                          "fwd_ms": f_win, "bwd_ms": b_win, "default_fwd_ms": f_def,
                          "default_bwd_ms": b_def, "rejected": len(sweep.rejected),
                          "config": dataclasses.asdict(win)}), flush=True)  # fmt: skip
    return winners


# --------------------------------------------------------------------------------------------
# The comparison against SDPA.
# --------------------------------------------------------------------------------------------


def bench_config(
    B: int,
    H: int,
    T: int,
    D: int,
    gpu: str,
    timer: Timer,
    device: str,
    dtype: torch.dtype,
    cuda_graphs: bool = False,
) -> dict[str, object]:
    """Time every implementation on one (B, H, T, D) shape; returns the JSON record."""
    from kernels.attention import attention, op

    q, k, v, do = _inputs(B, H, T, D, device, dtype)
    # Score-matrix implementations keep ~4 (B, H, T, T) fp32-sized tensors alive in fwd+bwd.
    free_bytes = torch.cuda.mem_get_info()[0] if device == "cuda" else 8 << 30
    tt_fits = B * H * T * T * 4 * 4 < 0.6 * free_bytes

    record: dict[str, object] = {"bench": "attention", "gpu": gpu, "B": B, "H": H, "T": T,
                                 "D": D, "dtype": str(dtype).removeprefix("torch."),
                                 "timing": "cuda_graph" if cuda_graphs else "eager"}  # fmt: skip
    record["config"] = dataclasses.asdict(op.pick_config(T, D, q.element_size()))
    ours = measure(lambda *a: attention(*a, backend="triton"), q, k, v, do, timer, cuda_graphs)
    if ours is None:
        raise RuntimeError(f"our triton kernel failed on B={B} H={H} T={T} D={D}")
    record["ours_fwd_ms"], record["ours_fwdbwd_ms"] = round(ours[0], 5), round(ours[1], 5)
    # A wrong kernel must not report a speed-up: output and gradients against fp32.
    checker = Checker(q, k, v, do)
    err, correct = checker.error(lambda *a: attention(*a, backend="triton"))
    record["max_err"], record["torch_err"], record["correct"] = err, checker.torch_err, correct

    sdpa: dict[str, object] = {}
    best_fwd: tuple[float, str] | None = None
    best_fb: tuple[float, str] | None = None
    for name in SDPA_BACKENDS:
        skip = name == "math" and not tt_fits
        result = None if skip else measure(sdpa_with(name), q, k, v, do, timer, cuda_graphs)
        if result is None:
            sdpa[name] = "n/a"
            continue
        fwd_ms, fb_ms, out = result
        sdpa[name] = {"fwd_ms": round(fwd_ms, 5), "fwdbwd_ms": round(fb_ms, 5)}
        if "max_abs_diff_vs_sdpa" not in record:
            record["max_abs_diff_vs_sdpa"] = float((ours[2].float() - out.float()).abs().max())
        best_fwd = min(best_fwd or (math.inf, ""), (fwd_ms, name))
        best_fb = min(best_fb or (math.inf, ""), (fb_ms, name))
    record["sdpa"] = sdpa
    if best_fb is not None and best_fwd is not None and correct:
        record["best_sdpa_fwd_ms"] = round(best_fwd[0], 5)
        record["best_sdpa_fwd_backend"] = best_fwd[1]
        record["best_sdpa_fwdbwd_ms"] = round(best_fb[0], 5)
        record["best_sdpa_backend"] = best_fb[1]
        record["speedup_fwd"] = round(best_fwd[0] / ours[0], 3)
        record["speedup_fwdbwd"] = round(best_fb[0] / ours[1], 3)

    naive = measure(naive_attention, q, k, v, do, timer, cuda_graphs) if tt_fits else None
    record["naive_fwd_ms"] = round(naive[0], 5) if naive else "n/a"
    record["naive_fwdbwd_ms"] = round(naive[1], 5) if naive else "n/a"
    del q, k, v, do
    if device == "cuda":
        torch.cuda.empty_cache()
    return record


def _fmt(x: object) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _row(rec: dict[str, object]) -> str:
    sdpa = rec["sdpa"]
    cells = " ".join(
        f"{_fmt(sdpa[n]['fwdbwd_ms'] if isinstance(sdpa[n], dict) else 'n/a'):>14}"
        for n in SDPA_BACKENDS
    )
    return (
        f"{rec['B']:>5} {rec['H']:>2} {rec['T']:>4} {rec['D']:>3} | {_fmt(rec['ours_fwd_ms']):>9} "
        f"{_fmt(rec['ours_fwdbwd_ms']):>9} | {cells} | {_fmt(rec['naive_fwdbwd_ms']):>10} | "
        f"{rec.get('best_sdpa_backend', 'n/a'):>9} {_fmt(rec.get('speedup_fwdbwd', 'n/a')):>11} "
        f"{_fmt(rec.get('speedup_fwd', 'n/a')):>11}"
        + ("" if rec["correct"] else f"  WRONG: error {rec['max_err']:.3g}, no speed-up reported")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced grid, shorter timing")
    parser.add_argument("--grid", choices=["full", "compact", "quick"], default=None)
    parser.add_argument("--sweep", action="store_true", help="time launch configurations first")
    parser.add_argument("--sweep-seconds", type=float, default=600.0)
    parser.add_argument(
        "--sweep-backward",
        action="store_true",
        help="sweep only the backward variants (the table's forward settings kept)",
    )
    parser.add_argument(
        "--sweep-tma",
        action="store_true",
        help="sweep only the table's configuration and the TMA candidates",
    )
    parser.add_argument(
        "--cuda-graphs",
        action="store_true",
        help="time replays of CUDA graphs (every implementation captured the same way): the "
        "kernels without the per-call CPU cost",
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny CPU shapes (tests)")
    parser.add_argument(
        "--t", type=int, nargs="+", metavar="T", help="only these sequence lengths (grid, sweep)"
    )
    parser.add_argument("--b", type=int, nargs="+", metavar="B", help="only these batch sizes")
    args = parser.parse_args(argv)

    if args.dry_run and args.cuda_graphs:
        parser.error("--cuda-graphs needs a CUDA GPU; --dry-run runs on the CPU")
    if args.dry_run:
        device, dtype, gpu, grid_name = "cpu", torch.float32, "cpu (dry run)", "dry-run"
    elif not torch.cuda.is_available():
        print("bench_attention: a CUDA GPU is needed to benchmark the Triton kernel; skipping.")
        return 0
    else:
        device, dtype, gpu = "cuda", torch.bfloat16, torch.cuda.get_device_name()
        grid_name = args.grid or ("quick" if args.quick else "full")
    import triton

    from kernels.attention import op

    print(
        f"# attention benchmark on {gpu} | torch {torch.__version__} (CUDA {torch.version.cuda})"
        f" | triton {triton.__version__} | {dtype}, non-causal, no mask | times in ms"
        + (", CUDA-graph replays" if args.cuda_graphs else ", eager calls"),
        flush=True,
    )
    grid = dict(GRIDS[grid_name])
    if args.t:
        missing = sorted(set(args.t) - set(grid["T"]))
        if missing:
            parser.error(f"--t {missing} not in the {grid_name} grid's T {grid['T']}")
        grid["T"] = [T for T in grid["T"] if T in args.t]
    if args.b:
        missing = sorted(set(args.b) - set(grid["B"]))
        if missing:
            parser.error(f"--b {missing} not in the {grid_name} grid's B {grid['B']}")
        grid["B"] = [B for B in grid["B"] if B in args.b]
    winners = (
        run_sweep(
            device,
            dtype,
            args.sweep_seconds,
            args.dry_run,
            grid["T"],
            args.sweep_backward,
            args.sweep_tma,
        )
        if args.sweep
        else {}
    )

    timer = Timer(
        device,
        target_ms={"dry-run": 1.0, "quick": 15.0, "compact": 20.0}.get(grid_name, 40.0),
        repeats=1 if args.dry_run else 5,
    )
    header = (
        f"{'B':>5} {'H':>2} {'T':>4} {'D':>3} | {'ours fwd':>9} {'ours f+b':>9} | "
        + " ".join(f"{n + ' f+b':>14}" for n in SDPA_BACKENDS)
        + f" | {'naive f+b':>10} | {'best sdpa':>9} {'speedup f+b':>11} {'speedup fwd':>11}"
    )
    print(("# with the sweep's winners\n" if winners else "") + header)
    print("-" * len(header))
    shapes = [(1, 1, 9, grid["D"][-1])]  # the per-call overhead row
    shapes += [(B, H, T, D) for B in grid["B"] for H in grid["H"] for T in grid["T"]
               for D in grid["D"]]  # fmt: skip
    records = []
    for B, H, T, D in shapes:
        if (T, D) in winners:
            with op.override_config(T, D, winners[(T, D)]):
                rec = bench_config(B, H, T, D, gpu, timer, device, dtype, args.cuda_graphs)
        else:
            rec = bench_config(B, H, T, D, gpu, timer, device, dtype, args.cuda_graphs)
        records.append(rec)
        print(_row(rec), flush=True)
    for rec in records:
        print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
