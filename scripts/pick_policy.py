"""Apply the end-of-run pick (`--policy-select k`) to a finished PPO run, after the fact.

Restores the run's RLlib checkpoint (learner and kept snapshots), lets the learner and its newest
k snapshots play the run's evaluation opponents with `selfplay.rllib_bridge.select_policy` (the
code a run with ``--policy-select k`` runs at its end, with the same seed: the run's + 1), and
exports the picked policy as a selfplay checkpoint into ``--out`` (never over the run's own
``checkpoint.pt``), for `selfplay arena`, `eval` and `play`. The README's table of picks on
earlier runs was made this way. Prints one line per candidate, then one JSON line.

    python scripts/pick_policy.py runs/<run> --candidates 20 --out runs/<run>-picked
    python scripts/pick_policy.py runs/<run> --opponents random,alphabeta:1 --out /tmp/p
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import ray

from selfplay import rllib_bridge as rb
from selfplay.alphazero import network_config
from selfplay.config import config_from_dict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished `selfplay train --algo ppo` run dir")
    parser.add_argument("--out", type=Path, required=True, help="dir for the picked checkpoint")
    parser.add_argument("--candidates", type=int, default=20, help="newest snapshots (k)")
    parser.add_argument("--opponents", default="", help="player specs (default: the run's)")
    args = parser.parse_args(argv)
    state_file = args.run / "ppo_run.json"
    if not state_file.is_file():
        parser.error(f"{args.run} is not a PPO run directory: no ppo_run.json in it")
    if args.out.resolve() == args.run.resolve():
        parser.error(f"--out must not be the run itself ({args.run}): its export stays as is")
    saved = json.loads(state_file.read_text(encoding="utf-8"))["config"]
    # the pick plays games on this machine: RLlib's learner stays in this process
    cfg = config_from_dict({**saved, "learner": "driver"})
    settings = rb.ppo_settings(cfg)
    opponents = tuple(s.strip() for s in args.opponents.split(",") if s.strip())
    opponents = opponents or settings.eval_opponents
    game, network = cfg.game, network_config(cfg)
    if not ray.is_initialized():
        ray.init(
            num_cpus=max(1, settings.num_env_runners), include_dashboard=False, log_to_driver=False
        )
    algo = rb.build_ppo(game, network, settings)
    try:
        rb.restore(algo, args.run)
        start = time.perf_counter()
        picked, scores = rb.select_policy(
            algo, game, opponents, settings.eval_games, args.candidates, seed=settings.seed + 1
        )
        seconds = time.perf_counter() - start
        path = rb.export_policy(algo, args.out, cfg)
    finally:
        algo.stop()
    for name, score in scores.items():
        mark = "  <- picked" if name == picked else ""
        print(f"{name:>16}  mean score {100 * score:5.1f} %{mark}")
    print(f"picked {picked}, exported to {path} ({seconds:.1f} s)")
    print(json.dumps({"pick": str(args.run), "picked": picked, "opponents": list(opponents),
                      "games": settings.eval_games, "seconds": round(seconds, 1),
                      "scores": scores, "checkpoint": str(path)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
