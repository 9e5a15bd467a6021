"""The `selfplay` command line: train, play, arena, eval and bench."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfplay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    arena = sub.add_parser(
        "arena",
        help="play two players against each other, seats alternated; print the results",
        description="Play N games between two players (seats alternated) and print the table.",
    )
    _add_arena_arguments(arena)

    train = sub.add_parser(
        "train",
        help="train an agent by self-play (Ray embedded or --ray-address auto; W&B offline)",
        description="Train by self-play. Every config field is a flag; a preset gives the rest.",
    )
    from selfplay import config as config_module

    config_module.add_arguments(train)
    train.set_defaults(func=_run_train)

    evaluate = sub.add_parser(
        "eval",
        help="round robin of trained agents and baselines: Elo table, heat map, Elo over training",
        description="Every participant plays every other (seats alternated); prints the Elo "
        "table and score matrix, writes tournament.json and plots, logs them to W&B.",
    )
    from selfplay import tournament

    tournament.add_arguments(evaluate)
    evaluate.set_defaults(func=_run_eval)

    play = sub.add_parser("play", help="play a trained agent in the terminal")
    play.add_argument("checkpoint", help="a run directory or a checkpoint file")
    play.add_argument("--seat", choices=["first", "second"], default=None, help="your seat")
    play.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="the agent's search budget (default: the run's play_simulations)",
    )
    play.set_defaults(func=_run_play)

    bench = sub.add_parser("bench", help="run a benchmark (prints a table, then one JSON line)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    from selfplay.benchmarks import env as bench_env
    from selfplay.benchmarks import net as bench_net

    bench_env.add_arguments(bench_sub.add_parser("env", help=bench_env.__doc__))
    bench_net.add_arguments(bench_sub.add_parser("net", help=bench_net.__doc__))
    from selfplay.benchmarks import selfplay as bench_selfplay

    bench_selfplay.add_arguments(bench_sub.add_parser("selfplay", help=bench_selfplay.__doc__))
    return parser


def _run_train(args: argparse.Namespace) -> int:
    from selfplay.config import config_from_args, make_run_name, upgrade_saved_config

    if args.resume:
        from pathlib import Path

        from selfplay.checkpoint import find_checkpoint, load_checkpoint

        ppo_state = Path(args.resume) / "ppo_run.json"
        if ppo_state.is_file():  # a PPO run: RLlib's checkpoint, our config beside it
            import json

            base = json.loads(ppo_state.read_text())["config"]
        else:
            base = load_checkpoint(find_checkpoint(args.resume)).config
        cfg = config_from_args(args, base=upgrade_saved_config(base))  # checks before Ray
    else:
        cfg = config_from_args(args)
        if not cfg.run_name:
            from dataclasses import replace

            cfg = replace(cfg, run_name=make_run_name(args.preset))
    if cfg.algo == "ppo":
        return _run_ppo(cfg, args)
    from selfplay.alphazero import train

    summary = train(cfg, resume=args.resume)
    print(
        f"run {summary['run_dir']}: {int(summary['step'])} learner steps, "
        f"{int(summary['games'])} games, {int(summary['positions'])} positions in "
        f"{summary['seconds'] / 60:.1f} min"
    )
    for entry in summary["elo_history"][-1:]:
        scores = ", ".join(
            f"{k.removeprefix('eval/score_vs_')} {100 * v:.0f}%"
            for k, v in entry.items()
            if k.startswith("eval/score_vs_")
        )
        elo = entry.get("eval/elo")
        print(f"last evaluation: score {scores}" + (f"; Elo {elo:.0f}" if elo is not None else ""))
    return 0


def _run_eval(args: argparse.Namespace) -> int:
    from selfplay.tournament import main as eval_main

    return eval_main(args)


def _run_ppo(cfg: Any, args: argparse.Namespace) -> int:
    from pathlib import Path

    from selfplay.rllib_bridge import train

    if args.resume:
        run_dir = Path(args.resume)
        if run_dir.is_file():
            run_dir = run_dir.parent
    else:
        run_dir = Path(cfg.runs_dir) / cfg.run_name
    summary = train(cfg, run_dir, resume=bool(args.resume))
    print(
        f"run {summary['run_dir']}: {summary['iterations']} PPO iterations (learner on "
        f"{summary['device']}, {summary['precision']})"
    )
    scores = ", ".join(
        f"{k.removeprefix('eval/score_vs_')} {100 * v:.0f}%"
        for k, v in summary["metrics"].items()
        if k.startswith("eval/score_vs_")
    )
    if summary["selection"]:
        picked = summary["policy"]
        print(
            f"policy: {picked} (best of {len(summary['selection'])} by mean score "
            f"{100 * summary['selection'][picked]:.1f}% against the evaluation opponents)"
        )
    if scores:
        print(f"evaluation: score {scores}")
    return 0


def _run_play(args: argparse.Namespace) -> int:
    from selfplay.play import run

    return run(args)


def _add_arena_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.players import PLAYER_SPECS

    parser.add_argument("--game", default="connect_four", help="connect_four, tictactoe, ...")
    specs = f"{PLAYER_SPECS}, or a run directory / checkpoint of a trained agent"
    parser.add_argument("--a", required=True, help=f"player A: {specs}")
    parser.add_argument("--b", required=True, help=f"player B: {specs}")
    parser.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="search budget of trained agents (default: each run's play_simulations)",
    )
    parser.add_argument("--games", type=int, default=100, help="number of games (default 100)")
    parser.add_argument("--batch-size", type=int, default=None, help="games played at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tactics",
        action="store_true",
        help="connect_four: also count each player's wins in one taken, forced blocks made and "
        "gifts (moves under the opponent's winning cell)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="game option, e.g. --option rows=7 (repeatable)",
    )
    parser.set_defaults(func=_run_arena)


def parse_options(pairs: list[str]) -> dict[str, object]:
    """``["rows=7", "auto_reset=false"]`` -> ``{"rows": 7, "auto_reset": False}``."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"game options are KEY=VALUE, got {pair!r}")
        lowered = text.lower()
        if lowered in ("true", "false"):
            options[key] = lowered == "true"
        else:
            try:
                options[key] = int(text)
            except ValueError:
                options[key] = text
    return options


def _arena_player(spec: str, game: str, seed: int, simulations: int | None) -> Any:
    """A baseline player spec, or a trained agent given as a run directory / checkpoint."""
    from pathlib import Path

    from agents.players import make_player

    if not Path(spec).exists():
        return make_player(spec, game, seed=seed)
    from selfplay.api import load_player

    player = load_player(spec, simulations=simulations, seed=seed)
    if player.cfg.game != game:
        raise ValueError(f"{spec} was trained on {player.cfg.game}, not {game}")
    return player


def _run_arena(args: argparse.Namespace) -> int:
    import time

    from selfplay.arena import game_factory, match_ratings, opening_plies_for, play_match

    make_game = game_factory(args.game, **parse_options(args.option))
    player_a = _arena_player(args.a, args.game, args.seed, args.simulations)
    player_b = _arena_player(args.b, args.game, args.seed + 1, args.simulations)
    if args.tactics:
        from agents.players import TacticsRecorder

        if args.game != "connect_four":
            raise ValueError(f"--tactics counts connect_four tactics only, got game {args.game}")
        player_a, player_b = TacticsRecorder(player_a), TacticsRecorder(player_b)
    start = time.perf_counter()
    opening = opening_plies_for(player_a, player_b)
    result = play_match(
        make_game, player_a, player_b, args.games, batch_size=args.batch_size,
        opening_plies=opening, seed=args.seed,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    print(
        f"{args.game}: {args.a} vs {args.b}, {args.games} games, seats alternated"
        + (f", from random {opening}-ply openings" if opening else "")
        + f" ({elapsed:.1f} s)"
    )
    print(result.table())
    if result.a != result.b:
        print()
        print(match_ratings(result).table())
    if args.tactics:
        print()
        for label, player in (("a", player_a), ("b", player_b)):
            print(f"tactics of {label} ({player.name}): {player.tactics.summary()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:  # bad input: one clear line, non-zero exit
        print(f"selfplay: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # a learner actor that died: the run cannot go on, its checkpoint resumes it (the
        # class is looked up where it lives, imported by then, to keep this module light)
        died = getattr(sys.modules.get("selfplay.alphazero"), "LearnerActorDied", ())
        if not isinstance(error, died):
            raise
        print(f"selfplay: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
