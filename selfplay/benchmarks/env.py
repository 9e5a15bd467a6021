"""Game-core speed: steps/s of the batched core, of our AEC view and of PettingZoo's own env."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import envs
from selfplay.benchmarks.common import cpu_model, emit_json, print_table

PETTINGZOO_ENVS = {"connect_four": "connect_four_v3", "tictactoe": "tictactoe_v3"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--game", default="connect_four", choices=sorted(PETTINGZOO_ENVS))
    parser.add_argument(
        "--batches", default="1,64,1024,4096", help="comma-separated batch sizes of the core"
    )
    parser.add_argument(
        "--seconds", type=float, default=1.5, help="time per measurement (default 1.5)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def parse_batches(text: str) -> list[int]:
    try:
        batches = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--batches must be comma-separated integers >= 1, got {text!r}") from None
    if not batches or min(batches) < 1:
        raise ValueError(f"--batches must be comma-separated integers >= 1, got {text!r}")
    return batches


@contextmanager
def one_core() -> Iterator[None]:
    """Pin this process to one CPU while measuring (where the OS allows it)."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def batched_steps_per_s(game: str, batch: int, seconds: float, seed: int) -> float:
    """The hot loop of self-play without a network: sample a legal move per game, step all
    games, finished games reset automatically."""
    core = envs.make(game, batch, auto_reset=True)
    rng = np.random.default_rng(seed)
    for _ in range(20):  # warm-up
        core.step(core.random_legal_actions(rng))
    iterations, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(10):
            core.step(core.random_legal_actions(rng))
        iterations += 10
        now = time.perf_counter()
        if now >= deadline:
            return batch * iterations / (now - start)


def aec_steps_per_s(env: Any, seconds: float, seed: int) -> float:
    """Random legal play through the standard AEC loop (``agent_iter``/``last``/``step``),
    counting moves (the ``None`` steps that retire finished agents are not counted)."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    moves, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _agent in env.agent_iter():
            _obs, _reward, terminated, truncated, _info = env.last()
            if terminated or truncated:
                action = None
            else:
                legal = np.flatnonzero(_obs["action_mask"])
                action = int(legal[rng.integers(len(legal))])
                moves += 1
            env.step(action)
        env.reset()
        now = time.perf_counter()
        if now >= deadline:
            return moves / (now - start)


def run(args: argparse.Namespace) -> int:
    from envs.adapter import load_env_fn

    batches = parse_batches(args.batches)
    if args.seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    pettingzoo_name = PETTINGZOO_ENVS[args.game]
    with one_core():
        batched = {
            str(b): batched_steps_per_s(args.game, b, args.seconds, args.seed) for b in batches
        }
        ours_aec = aec_steps_per_s(envs.aec_env(args.game), args.seconds, args.seed)
        theirs = aec_steps_per_s(load_env_fn(pettingzoo_name)(), args.seconds, args.seed)

    rows = [
        {
            "what": f"batched core, batch {b}",
            "steps/s": f"{rate:,.0f}",
            "vs PettingZoo": f"{rate / theirs:,.1f}x",
        }
        for b, rate in batched.items()
    ]
    rows.append(
        {
            "what": "our AEC view",
            "steps/s": f"{ours_aec:,.0f}",
            "vs PettingZoo": f"{ours_aec / theirs:.2f}x",
        }
    )
    rows.append(
        {
            "what": f"PettingZoo {pettingzoo_name}",
            "steps/s": f"{theirs:,.0f}",
            "vs PettingZoo": "1.00x",
        }
    )
    cpu = cpu_model()
    print(f"selfplay bench env: {args.game}, random legal moves, one core of {cpu}")
    print_table(rows, ["what", "steps/s", "vs PettingZoo"])
    emit_json(
        {
            "bench": "env",
            "game": args.game,
            "batched_steps_per_s": {b: round(rate) for b, rate in batched.items()},
            "aec_steps_per_s": round(ours_aec),
            "pettingzoo_steps_per_s": round(theirs),
            "cpu": cpu,
        }
    )
    return 0
