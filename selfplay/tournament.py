"""`selfplay eval`: a round-robin tournament between trained agents and baselines.

Every participant plays every other one a match of ``games`` games with the seats alternated
(`selfplay.arena.play_match`); the pairwise results are rated by one Bradley–Terry fit
(`selfplay.ratings.fit_elo`, anchored at ``random`` when it takes part, else centred on mean
zero)::

    result = run_tournament([load_player("runs/ttt"), "random", "solver"], games=100)
    print(result.table())                       # Elo with CIs, then the pairwise score matrix
    plot_payoff(result, "payoff.png")

`main` is the command: it loads the agents, runs the tournament, prints the tables and writes
``tournament.json``, ``payoff.png`` (the row player's score against each column player) and
``elo_over_training.png`` (each run's Elo over its training, from the checkpoint's ratings
history or the ``eval/elo`` lines of ``metrics.jsonl``) into the output directory, and logs the
images and the Elo table to W&B through a `selfplay.tracking.Tracker`.

The tracker lives in ``<out>/eval/``, not in ``<out>`` itself: the default output directory is a
training run's directory, and a tracker there would append to the run's ``metrics.jsonl`` and
overwrite its ``summary.json``.

matplotlib is imported inside the plotting functions only (Agg backend, no display needed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfplay.arena import (
    OPENING_PLIES,
    MatchResult,
    Player,
    game_factory,
    opening_plies_for,
    play_match,
)
from selfplay.ratings import MatchResults, Ratings, fit_elo

__all__ = [
    "EloHistory",
    "TournamentResult",
    "add_arguments",
    "load_elo_history",
    "main",
    "plot_elo_over_training",
    "plot_payoff",
    "run_tournament",
    "unique_names",
]

TOURNAMENT_FILE = "tournament.json"
PAYOFF_FILE = "payoff.png"
ELO_FILE = "elo_over_training.png"
TRACKING_DIR = "eval"


# ---- the tournament ---------------------------------------------------------------------------


@dataclass
class TournamentResult:
    """The outcome of a round robin: every match, the pooled results and one Elo fit."""

    game: str
    games_per_pair: int
    players: list[str]
    """Participants in the order they were given."""
    matches: list[MatchResult]
    """One match per unordered pair, from the earlier-listed player's side."""
    results: MatchResults
    ratings: Ratings
    seconds: float

    @property
    def ranking(self) -> list[str]:
        """Participants by rating, best first."""
        return self.ratings.names

    def score(self, a: str, b: str) -> float:
        """a's points per game against b (a win 1, a draw 1/2); NaN for a against itself."""
        wins, draws, losses = self.results.record(a, b)
        games = wins + draws + losses
        return (wins + 0.5 * draws) / games if games else float("nan")

    def score_matrix(self, order: Sequence[str] | None = None) -> np.ndarray:
        """(n, n) score of the row player against the column player; NaN on the diagonal."""
        names = list(self.ranking if order is None else order)
        return np.array([[self.score(a, b) for b in names] for a in names])  # (n, n)

    def table(self) -> str:
        """The Elo table (with confidence intervals), then the pairwise score matrix."""
        names = self.ranking
        scores = self.score_matrix(names)
        label_width = max(len(f"{k + 1} {name}") for k, name in enumerate(names))
        lines = [
            self.ratings.table(),
            "",
            f"row player's score against column player ({self.games_per_pair} games per pair, "
            "win 1, draw 1/2)",
            " " * label_width + "".join(f"{k + 1:>7}" for k in range(len(names))),
        ]
        for k, name in enumerate(names):
            cells = "".join(
                f"{'-':>7}" if math.isnan(s) else f"{100 * s:>6.0f}%" for s in scores[k]
            )
            lines.append(f"{k + 1} {name}".ljust(label_width) + cells)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: participants, each pair's record, the pooled results and the ratings."""
        names = self.ranking
        pairs = []
        for match in self.matches:
            total = match.record()
            first = match.record(seat=0)
            pairs.append(
                {
                    "a": match.a,
                    "b": match.b,
                    "games": total.games,
                    "wins": total.wins,
                    "draws": total.draws,
                    "losses": total.losses,
                    "score_a": total.score,
                    "a_first": {"wins": first.wins, "draws": first.draws, "losses": first.losses},
                }
            )
        matrix = self.score_matrix(names)
        return {
            "game": self.game,
            "games_per_pair": self.games_per_pair,
            "seconds": self.seconds,
            "players": list(self.players),
            "pairs": pairs,
            "results": self.results.to_dict(),
            "ratings": self.ratings.to_dict(),
            "score_matrix": {
                "players": names,
                "scores": [[None if math.isnan(s) else float(s) for s in row] for row in matrix],
            },
        }


def _check_games(games: object) -> int:
    if isinstance(games, bool) or not isinstance(games, (int, np.integer)) or games < 1:
        raise ValueError(f"games per pair must be an integer >= 1, got {games!r}")
    return int(games)


def _trained_game(player: Any) -> str | None:
    cfg = getattr(player, "cfg", None)
    return getattr(cfg, "game", None)


def check_same_game(players: Sequence[Any], game: str | None = None) -> str | None:
    """The one game the trained players (and ``game``, when given) agree on; else ValueError."""
    games = {p.name: g for p in players if (g := _trained_game(p)) is not None}
    distinct = sorted(set(games.values()) | ({game} if game else set()))
    if len(distinct) > 1:
        named = ", ".join(f"{name} ({g})" for name, g in games.items())
        wanted = f"; --game is {game}" if game else ""
        raise ValueError(
            f"participants play different games: {named}{wanted}; a tournament needs one game"
        )
    return distinct[0] if distinct else None


def run_tournament(
    players: Sequence[Player | str],
    games: int = 100,
    seed: int = 0,
    *,
    game: str | None = None,
    log: Callable[[str], None] | None = None,
) -> TournamentResult:
    """Play a round robin: every pair a match of ``games`` games, seats alternated.

    ``players``: player objects (``name`` and ``act(game)``; trained agents from
    `selfplay.api.load_player`) or baseline specs (``"random"``, ``"mcts:200"``, ...) that are
    built here with ``agents.players.make_player(spec, game, seed + index)``. The game is
    ``game`` or, when None, the trained agents' ``cfg.game``. Names must be unique. Ratings are
    anchored at ``random`` (Elo 0) when it plays, else centred on mean zero. ``log`` gets one
    line per finished match.
    """
    from agents.players import make_player

    games = _check_games(games)
    game = check_same_game([p for p in players if not isinstance(p, str)], game)
    if game is None:
        raise ValueError(
            "no game to play: no participant is a trained agent, so name the game "
            "(game='tictactoe', or --game)"
        )
    make_game = game_factory(game)
    built: list[Any] = [
        make_player(p, game, seed=seed + k) if isinstance(p, str) else p
        for k, p in enumerate(players)
    ]
    names = [p.name for p in built]
    if len(built) < 2:
        raise ValueError(f"a tournament needs at least two participants, got {len(built)}: {names}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"participant names must be unique; given more than once: {duplicates}")

    start = time.perf_counter()
    matches: list[MatchResult] = []
    results = MatchResults()
    for i in range(len(built)):
        for j in range(i + 1, len(built)):
            t0 = time.perf_counter()
            match = play_match(
                make_game, built[i], built[j], games,
                opening_plies=opening_plies_for(built[i], built[j]), seed=seed + len(matches),
            )  # fmt: skip
            matches.append(match)
            results.update(match.to_results())
            if log is not None:
                rec = match.record()
                log(
                    f"{match.a} vs {match.b}: {match.a} won {rec.wins}, drew {rec.draws}, "
                    f"lost {rec.losses} ({time.perf_counter() - t0:.1f} s)"
                )
    anchor = "random" if "random" in names else None
    return TournamentResult(
        game=game,
        games_per_pair=games,
        players=names,
        matches=matches,
        results=results,
        ratings=fit_elo(results, anchor=anchor),
        seconds=time.perf_counter() - start,
    )


def unique_names(names: Sequence[str], taken: Sequence[str] = ()) -> list[str]:
    """``names`` made unique (and distinct from ``taken``) by suffixes: a, a -> a, a-2."""
    used = set(taken)
    out = []
    for name in names:
        candidate, k = name, 2
        while candidate in used:
            candidate, k = f"{name}-{k}", k + 1
        used.add(candidate)
        out.append(candidate)
    return out


# ---- Elo over training ------------------------------------------------------------------------


@dataclass(frozen=True)
class EloHistory:
    """One run's Elo at each evaluation during training, with the CI half width."""

    name: str
    steps: np.ndarray  # (E,)
    elo: np.ndarray  # (E,)
    ci: np.ndarray  # (E,) half width of the confidence interval (NaN when unknown)
    source: str
    """"checkpoint" (steps are learner steps) or "metrics.jsonl" (steps as logged there)."""


def load_elo_history(
    path: str | os.PathLike[str],
    name: str | None = None,
    ratings: Mapping[str, Any] | None = None,
) -> EloHistory | None:
    """A run's Elo over training from its checkpoint's ratings history (``ratings`` when the
    caller already loaded them), else from the ``eval/elo`` lines of its ``metrics.jsonl``;
    None when neither has any."""
    from selfplay.checkpoint import CheckpointError, find_checkpoint, load_checkpoint

    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    name = name or run_dir.name
    rows: list[Mapping[str, Any]] = []
    source = "checkpoint"
    try:
        if ratings is None:
            ratings = load_checkpoint(find_checkpoint(path)).ratings
        rows = [e for e in (ratings or {}).get("history", []) if "eval/elo" in e and "step" in e]
    except CheckpointError:
        rows = []
    if not rows:
        source = "metrics.jsonl"
        metrics = run_dir / "metrics.jsonl"
        if metrics.is_file():
            for line in metrics.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a half-written last line of a killed run
                if isinstance(entry, dict) and "eval/elo" in entry and "step" in entry:
                    rows.append(entry)
    if not rows:
        return None
    rows = sorted(rows, key=lambda e: e["step"])
    return EloHistory(
        name=name,
        steps=np.array([float(e["step"]) for e in rows]),
        elo=np.array([float(e["eval/elo"]) for e in rows]),
        ci=np.array([float(e.get("eval/elo_ci", float("nan"))) for e in rows]),
        source=source,
    )


# ---- plots --------------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def plot_payoff(result: TournamentResult, path: str | os.PathLike[str]) -> Path:
    """A heat map of the row player's score against each column player, best rated first,
    each cell annotated with the score and the row player's wins-draws-losses."""
    plt = _pyplot()
    names = result.ranking
    n = len(names)
    scores = result.score_matrix(names)  # (n, n)
    labels = [f"{name}\n({result.ratings[name].rating:+.0f} Elo)" for name in names]
    size = max(5.0, 1.1 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#d9d9d9")  # bad: the diagonal
    image = ax.imshow(np.ma.masked_invalid(scores), cmap=cmap, vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            if i == j:
                ax.text(j, i, "—", ha="center", va="center", color="#555555")
                continue
            w, d, l = result.results.record(names[i], names[j])
            ax.text(
                j,
                i,
                f"{100 * scores[i, j]:.0f}%\n{w:.0f}-{d:.0f}-{l:.0f}",
                ha="center",
                va="center",
                fontsize=9 if n <= 6 else 7,
                # dark text on the light middle of the colour map, white on its dark ends
                color="black" if 0.2 <= scores[i, j] <= 0.8 else "white",
            )
    ax.set_xticks(range(n), labels=names, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(n), labels=labels)
    ax.set_xlabel("column player (opponent)")
    ax.set_ylabel("row player")
    ax.set_title(
        f"{result.game}: row player's score against column player\n"
        f"{result.games_per_pair} games per pair, seats alternated; cells: score, W-D-L"
    )
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("score of the row player (win 1, draw 1/2)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_elo_over_training(
    histories: Sequence[EloHistory],
    path: str | os.PathLike[str],
    *,
    tournament: TournamentResult | None = None,
    title: str = "Elo over training",
) -> Path:
    """One line per run: its Elo at each evaluation during training with the CI as a band.

    With ``tournament`` (anchored at random, like the training evaluations), each run's rating
    in the tournament is drawn as a star with its CI at the run's last step. Without histories
    the figure says so, so that the file always exists.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 5.0))
    colours = plt.get_cmap("tab10")
    same_scale = tournament is not None and tournament.ratings.anchor == "random"
    for k, history in enumerate(histories):
        colour = colours(k % 10)
        suffix = "" if history.source == "checkpoint" else " (x: metrics.jsonl step)"
        ax.plot(history.steps, history.elo, "o-", color=colour, ms=4, label=history.name + suffix)
        if np.isfinite(history.ci).any():
            ax.fill_between(
                history.steps,
                history.elo - history.ci,
                history.elo + history.ci,
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
        if same_scale and tournament is not None and history.name in tournament.ratings:
            rating = tournament.ratings[history.name]
            ax.errorbar(
                [history.steps[-1]],
                [rating.rating],
                yerr=[[rating.rating - rating.ci_low], [rating.ci_high - rating.rating]],
                fmt="*",
                ms=12,
                color=colour,
                capsize=4,
                label=f"{history.name} in this tournament",
            )
    if histories:
        ax.axhline(0.0, color="grey", linestyle="--", linewidth=1, label="random (Elo 0)")
        ax.legend(loc="best", fontsize=9)
    else:
        ax.text(
            0.5,
            0.5,
            "no Elo history to plot:\nno run given has evaluations with eval/elo",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=12,
        )
        ax.set_xticks([])
        ax.set_yticks([])
    sources = {h.source for h in histories}
    ax.set_xlabel("learner step" if sources <= {"checkpoint"} else "training step")
    ax.set_ylabel("Elo (random = 0), band: confidence interval")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---- the command ------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``selfplay eval``."""
    from selfplay.tracking import WANDB_MODES

    parser.add_argument(
        "paths", nargs="*", metavar="RUN", help="run directories or checkpoint files of agents"
    )
    parser.add_argument(
        "--baselines",
        default=None,
        help="comma-separated baseline specs, e.g. random,alphabeta:2,mcts:200 (default: the "
        "first run's eval_opponents, or random without runs; '' for none)",
    )
    parser.add_argument("--games", type=int, default=100, help="games per pair (default 100)")
    parser.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="search budget of the trained agents (default: each run's play_simulations)",
    )
    parser.add_argument("--game", default=None, help="the game (default: the trained agents' game)")
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default: the first run directory given, else runs/eval-<time>)",
    )
    parser.add_argument(
        "--wandb", choices=WANDB_MODES, default="offline", help="W&B mode (default offline)"
    )
    parser.add_argument("--seed", type=int, default=0)


def _log_to_wandb(tracker: Any, result: TournamentResult, images: Mapping[str, Path]) -> None:
    """Images and the Elo table to W&B; the ratings as numbers to W&B and metrics.jsonl."""
    if tracker.wandb_enabled:
        import wandb

        columns = ["rank", "player", "elo", "ci_low", "ci_high", "games", "score"]
        rows = [
            [k + 1, p.player, p.rating, p.ci_low, p.ci_high, p.games, p.score]
            for k, p in enumerate(result.ratings.players)
        ]
        media: dict[str, Any] = {
            f"tournament/{key}": wandb.Image(str(image)) for key, image in images.items()
        }
        media["tournament/elo_table"] = wandb.Table(columns=columns, data=rows)
        tracker.log_media(media, step=0)
    numbers = {f"tournament/elo/{p.player}": p.rating for p in result.ratings.players}
    tracker.log(numbers, step=0)
    tracker.log_summary({**numbers, "tournament/games_per_pair": result.games_per_pair})


def main(args: argparse.Namespace) -> int:
    """``selfplay eval``: load, play, print, write files, log. Bad input raises ValueError."""
    from selfplay.api import load_player
    from selfplay.checkpoint import find_checkpoint
    from selfplay.tracking import Tracker, write_json_atomic

    games = _check_games(args.games)
    paths = [Path(p) for p in args.paths]
    for path in paths:
        find_checkpoint(path)  # a CheckpointError (a ValueError) naming a bad path, before work
    agents = [
        load_player(path, simulations=args.simulations, seed=args.seed + 1000 + k)
        for k, path in enumerate(paths)
    ]
    game = check_same_game(agents, args.game)

    if args.baselines is None:
        default = agents[0].cfg.eval_opponents if agents else "random"
        baselines = [s.strip() for s in default.split(",") if s.strip()]
    else:
        baselines = [s.strip() for s in args.baselines.split(",") if s.strip()]
    if game is None:
        raise ValueError("no game to play: give a run directory or --game (e.g. --game tictactoe)")
    from agents.players import make_player

    baseline_players = [make_player(s, game, seed=args.seed + k) for k, s in enumerate(baselines)]
    baseline_names = [p.name for p in baseline_players]
    repeated = sorted({n for n in baseline_names if baseline_names.count(n) > 1})
    if repeated:
        raise ValueError(f"--baselines names the same player more than once: {repeated}")
    for agent, name in zip(
        agents, unique_names([a.name for a in agents], baseline_names), strict=True
    ):
        agent.name = name
    participants: list[Any] = [*agents, *baseline_players]
    if len(participants) < 2:
        raise ValueError(
            f"a tournament needs at least two participants, got {len(participants)}: "
            f"{[p.name for p in participants]} (add run directories or --baselines)"
        )

    if args.out is not None:
        out = Path(args.out)
    elif any(p.is_dir() for p in paths):
        out = next(p for p in paths if p.is_dir())
    else:
        out = Path("runs") / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)

    print(
        f"{game}: round robin of {len(participants)} players, {games} games per pair, seats "
        f"alternated: {', '.join(p.name for p in participants)}",
        flush=True,
    )
    result = run_tournament(
        participants, games, args.seed, game=game, log=lambda line: print(line, flush=True)
    )
    print(f"\n{result.table()}\n")

    histories = [
        h
        for path, agent in zip(paths, agents, strict=True)
        if (h := load_elo_history(path, agent.name, agent.ratings or {})) is not None
    ]
    payoff = plot_payoff(result, out / PAYOFF_FILE)
    elo_plot = plot_elo_over_training(
        histories, out / ELO_FILE, tournament=result, title=f"{game}: Elo over training"
    )
    record = result.to_dict()
    record["participants"] = [
        {"name": a.name, "kind": "trained", "source": str(p), "simulations": a.simulations}
        for p, a in zip(paths, agents, strict=True)
    ] + [
        {"name": b.name, "kind": "baseline", "source": spec}
        for spec, b in zip(baselines, baseline_players, strict=True)
    ]
    record["seed"] = args.seed
    record["opening_plies_between_trained_agents"] = OPENING_PLIES
    write_json_atomic(out / TOURNAMENT_FILE, record)

    config = {
        "command": "eval",
        "game": game,
        "participants": [p.name for p in participants],
        "paths": [str(p) for p in paths],
        "baselines": baselines,
        "games_per_pair": games,
        "simulations": args.simulations,
        "seed": args.seed,
    }
    run_name = f"eval-{out.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    with Tracker(out / TRACKING_DIR, config, mode=args.wandb, run_name=run_name) as tracker:
        _log_to_wandb(tracker, result, {"payoff": payoff, "elo_over_training": elo_plot})
    print(
        f"wrote {out / TOURNAMENT_FILE}, {payoff}, {elo_plot}; tracking in {out / TRACKING_DIR} "
        f"({result.seconds:.1f} s of games)"
    )
    return 0
