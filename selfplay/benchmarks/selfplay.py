"""Self-play speed: positions/s of one actor's hot loop (batched search + network), with and
without the evaluation cache."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import torch

from selfplay.benchmarks.common import cpu_model, emit_json, measure_matmul_peak, print_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="connect_four", help="preset the actor is built from")
    parser.add_argument("--simulations", type=int, default=32)
    parser.add_argument("--games", type=int, default=256, help="games per actor")
    parser.add_argument("--search", default="gumbel", choices=["gumbel", "puct"])
    parser.add_argument("--moves", type=int, default=16, help="moves timed per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="moves played before timing")
    parser.add_argument("--cache-size", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.set_defaults(func=run)


def _measure(cfg: dict, cache_size: int, warmup: int, moves: int, threads: int) -> dict:
    from selfplay.alphazero import SelfPlayWorker

    torch.manual_seed(0)  # the same random network for both measurements
    worker = SelfPlayWorker(cfg, 0, threads=threads, cache_size=cache_size)
    worker.play_moves(warmup)  # builds the inference path, fills the first tree levels
    cache = worker.evaluator.cache
    if cache is not None:
        cache.hits = cache.misses = 0
    evaluations = worker.evaluator.evaluations
    start = time.perf_counter()
    stats = worker.play_moves(moves)["stats"]
    seconds = time.perf_counter() - start
    return {
        "positions_per_s": stats["positions"] / seconds,
        "evals_per_s": (worker.evaluator.evaluations - evaluations) / seconds,
        "cache_hit_rate": cache.hit_rate() if cache is not None else 0.0,
        "seconds": seconds,
        "flops_per_eval": _flops(worker),
    }


def _flops(worker) -> int:
    from selfplay.benchmarks.net import flops_per_eval

    return flops_per_eval(worker.evaluator.net, torch.device("cpu"))


def run(args: argparse.Namespace) -> int:
    from selfplay.config import load_preset, to_dict

    for name in ("simulations", "games", "moves"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    threads = args.threads or (os.cpu_count() or 1)
    cfg = replace(
        load_preset(args.preset),
        simulations=args.simulations,
        games_per_worker=args.games,
        search=args.search,
    )
    config = to_dict(cfg)
    plain = _measure(config, 0, args.warmup, args.moves, threads)
    cached = _measure(config, args.cache_size, args.warmup, args.moves, threads)
    peak = measure_matmul_peak("cpu")
    flops = plain["flops_per_eval"]
    share = plain["evals_per_s"] * flops / 1e9 / peak
    cpu = cpu_model()
    print(
        f"selfplay bench selfplay: {cfg.game}, {cfg.net} {cfg.channels}x{cfg.blocks}, "
        f"{cfg.search} {cfg.simulations} simulations, {cfg.games_per_worker} games per actor, "
        f"{args.moves} moves timed after {args.warmup}, {threads} threads, {cpu}"
    )
    rows = [
        {
            "cache": label,
            "positions/s": m["positions_per_s"],
            "evals/s": m["evals_per_s"],
            "cache hits": f"{100 * m['cache_hit_rate']:.0f}%",
            "GFLOP/s": m["evals_per_s"] * flops / 1e9,
            "share of peak": m["evals_per_s"] * flops / 1e9 / peak,
        }
        for label, m in (("off", plain), ("on", cached))
    ]
    print_table(rows, ["cache", "positions/s", "evals/s", "cache hits", "GFLOP/s", "share of peak"])
    print(f"matmul peak measured in this run: {peak:.0f} GFLOP/s; {flops / 1e6:.1f} MFLOP/eval")
    emit_json(
        {
            "bench": "selfplay",
            "game": cfg.game,
            "simulations": cfg.simulations,
            "games_per_actor": cfg.games_per_worker,
            "positions_per_s": round(plain["positions_per_s"], 1),
            "positions_per_s_cached": round(cached["positions_per_s"], 1),
            "evals_per_s": round(plain["evals_per_s"]),
            "peak_share": round(share, 3),
            "cache_hit_rate": round(cached["cache_hit_rate"], 3),
            "peak_gflops": round(peak, 1),
            "cpu": cpu,
        }
    )
    return 0
