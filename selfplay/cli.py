"""The `selfplay` command line: `arena`, `bench` (and later `train`, `eval`, `play`)."""

from __future__ import annotations

import argparse
import sys


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfplay", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    arena = sub.add_parser(
        "arena",
        help="play two players against each other, seats alternated; print the results",
        description="Play N games between two players (seats alternated) and print the table.",
    )
    _add_arena_arguments(arena)

    bench = sub.add_parser("bench", help="run a benchmark (prints a table, then one JSON line)")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    from selfplay.benchmarks import env as bench_env
    from selfplay.benchmarks import net as bench_net

    bench_env.add_arguments(bench_sub.add_parser("env", help=bench_env.__doc__))
    bench_net.add_arguments(bench_sub.add_parser("net", help=bench_net.__doc__))
    return parser


def _add_arena_arguments(parser: argparse.ArgumentParser) -> None:
    from agents.players import PLAYER_SPECS

    parser.add_argument("--game", default="connect_four", help="connect_four, tictactoe, ...")
    parser.add_argument("--a", required=True, help=f"player A: {PLAYER_SPECS}")
    parser.add_argument("--b", required=True, help=f"player B: {PLAYER_SPECS}")
    parser.add_argument("--games", type=int, default=100, help="number of games (default 100)")
    parser.add_argument("--batch-size", type=int, default=None, help="games played at once")
    parser.add_argument("--seed", type=int, default=0)
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


def _run_arena(args: argparse.Namespace) -> int:
    import time

    from agents.players import make_player
    from selfplay.arena import game_factory, match_ratings, play_match

    make_game = game_factory(args.game, **parse_options(args.option))
    player_a = make_player(args.a, args.game, seed=args.seed)
    player_b = make_player(args.b, args.game, seed=args.seed + 1)
    start = time.perf_counter()
    result = play_match(make_game, player_a, player_b, args.games, batch_size=args.batch_size)
    elapsed = time.perf_counter() - start
    print(
        f"{args.game}: {args.a} vs {args.b}, {args.games} games, seats alternated ({elapsed:.1f} s)"
    )
    print(result.table())
    if result.a != result.b:
        print()
        print(match_ratings(result).table())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as error:  # bad input: one clear line, non-zero exit
        print(f"selfplay: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
