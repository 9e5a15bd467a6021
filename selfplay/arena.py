"""Matches between two players: N games with seats alternated, played as one batch.

All games of a match live in one batched core. At each ply the games are split by whose turn it
is; each player gets its games as one sub-batch (``game.take``), so a batched player (rollout
MCTS, a network) makes one call per ply for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

import envs
from selfplay.ratings import MatchResults, fit_elo


class Player(Protocol):
    name: str

    def act(self, game: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class SeatRecord:
    """Results of one player in one seat: wins, draws, losses."""

    wins: int = 0
    draws: int = 0
    losses: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.draws + self.losses

    @property
    def score(self) -> float:
        """Points per game: a win 1, a draw 1/2."""
        return (self.wins + 0.5 * self.draws) / self.games if self.games else float("nan")


@dataclass
class MatchResult:
    """The outcome of a match, from player ``a``'s side."""

    game: str
    a: str
    b: str
    outcomes: np.ndarray  # (games,) +1 a won, 0 draw, -1 a lost
    a_seat: np.ndarray  # (games,) the seat (player index) a played in each game
    moves: list[str] = field(default_factory=list)  # each game in the game's notation

    def record(self, seat: int | None = None) -> SeatRecord:
        """a's record, over all games or over those where a sat in ``seat``."""
        chosen = self.outcomes if seat is None else self.outcomes[self.a_seat == seat]
        return SeatRecord(
            wins=int((chosen > 0).sum()),
            draws=int((chosen == 0).sum()),
            losses=int((chosen < 0).sum()),
        )

    def to_results(self) -> MatchResults:
        """The match as pairwise results for ``selfplay.ratings.fit_elo``."""
        results = MatchResults()
        total = self.record()
        if self.a != self.b:
            results.add(self.a, self.b, total.wins, total.draws, total.losses)
        return results

    def table(self) -> str:
        """A text table: each player's wins/draws/losses per seat and overall."""
        header = f"{'player':<18} {'seat':<7} {'games':>5} {'wins':>5} {'draws':>5} {'losses':>6}"
        lines = [header + f" {'score':>6}"]
        for name, sign in ((self.a, 1), (self.b, -1)):
            for seat_label, seat in (("first", 0), ("second", 1), ("all", None)):
                if sign > 0:
                    rec = self.record(seat)
                else:  # b's view: flip a's results, and b sat in the other seat
                    mine = self.record(None if seat is None else 1 - seat)
                    rec = SeatRecord(mine.losses, mine.draws, mine.wins)
                lines.append(
                    f"{name:<18} {seat_label:<7} {rec.games:>5} {rec.wins:>5} {rec.draws:>5} "
                    f"{rec.losses:>6} {100 * rec.score:>5.1f}%"
                )
        return "\n".join(lines)


def play_match(
    make_game: Callable[[int], Any],
    player_a: Player,
    player_b: Player,
    num_games: int,
    *,
    batch_size: int | None = None,
    opening_plies: int = 0,
    seed: int = 0,
) -> MatchResult:
    """Play ``num_games`` games of a against b; a moves first in the even-numbered games.

    ``make_game(n)`` returns a fresh core of n games (``lambda n: envs.make("connect_four", n)``).
    Games are played ``batch_size`` at a time (all at once by default). ``opening_plies``
    random moves start each pair of games (the same opening with seats swapped), so that two
    deterministic players do not replay one game over and over.
    """
    if isinstance(opening_plies, bool) or not isinstance(opening_plies, int) or opening_plies < 0:
        raise ValueError(f"opening_plies must be an integer >= 0, got {opening_plies!r}")
    rng = np.random.default_rng(seed)
    if isinstance(num_games, bool) or not isinstance(num_games, int) or num_games < 1:
        raise ValueError(f"num_games must be an integer >= 1, got {num_games!r}")
    batch_size = num_games if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    outcomes, seats, moves = [], [], []
    game_name = ""
    for start in range(0, num_games, batch_size):
        n = min(batch_size, num_games - start)
        a_seat = (np.arange(start, start + n) % 2).astype(np.int64)  # (n,)
        game = make_game(n)
        game_name = game.name
        _play_opening(game, opening_plies, rng)
        outcomes.append(_play_batch(game, (player_a, player_b), a_seat))
        seats.append(a_seat)
        moves.extend(_moves(game))
    return MatchResult(
        game=game_name,
        a=player_a.name,
        b=player_b.name,
        outcomes=np.concatenate(outcomes),
        a_seat=np.concatenate(seats),
        moves=moves,
    )


OPENING_PLIES = 2
"""Random opening plies of a match between two deterministic players (see `opening_plies_for`)."""


def opening_plies_for(a: Any, b: Any) -> int:
    """Random plies to start each pair of games with: `OPENING_PLIES` when both players are
    deterministic (a ``deterministic`` attribute, e.g. trained agents, which search without
    noise), since their games would otherwise repeat one per seat; 0 when either brings its own
    randomness (random, rollout MCTS, ...)."""
    both = getattr(a, "deterministic", False) and getattr(b, "deterministic", False)
    return OPENING_PLIES if both else 0


def _play_opening(game: Any, plies: int, rng: np.random.Generator) -> None:
    """Random legal moves, the same in games 2k and 2k+1 (whose seats are swapped)."""
    for _ in range(plies):
        live = ~game.terminated
        if not live.any():
            return
        actions = game.random_legal_actions(rng)
        actions[1::2] = actions[0::2][: len(actions[1::2])]  # the pair's twin plays the same
        game.step(actions, where=live)


def _play_batch(game: Any, players: tuple[Player, Player], a_seat: np.ndarray) -> np.ndarray:
    """Play every game of ``game`` to the end; returns a's outcome per game."""
    n = game.num_envs
    outcome = np.zeros(n, np.int64)  # (n,)
    while not game.terminated.all():
        live = ~game.terminated  # (n,)
        a_to_move = live & (game.current_player() == a_seat)
        actions = np.zeros(n, np.int64)
        for player, turn in ((players[0], a_to_move), (players[1], live & ~a_to_move)):
            if not turn.any():
                continue
            index = np.flatnonzero(turn)
            chosen = np.asarray(player.act(game.take(index)))
            if chosen.shape != index.shape:
                raise ValueError(
                    f"player {player.name!r} returned {chosen.shape} actions for {len(index)} games"
                )
            in_range = (chosen >= 0) & (chosen < game.num_actions)
            legal = in_range.copy()
            legal[in_range] = game.legal_mask()[index[in_range], chosen[in_range]]
            if not legal.all():
                bad = int(np.flatnonzero(~legal)[0])
                raise ValueError(
                    f"player {player.name!r} returned illegal action {int(chosen[bad])} in game "
                    f"{int(index[bad])}"
                )
            actions[index] = chosen
        rewards, done = game.step(actions, where=live)
        finished = np.flatnonzero(done)
        outcome[finished] = np.sign(rewards[finished, a_seat[finished]]).astype(np.int64)
    return outcome


def _moves(game: Any) -> list[str]:
    try:
        return [game.to_moves(g) for g in range(game.num_envs)]
    except (AttributeError, ValueError):
        return []


def match_ratings(result: MatchResult, anchor: str | None = None) -> Any:
    """Elo of the two players from one match (anchored at ``random`` when it played)."""
    if anchor is None:
        anchor = "random" if "random" in (result.a, result.b) else result.b
    return fit_elo(result.to_results(), anchor=anchor)


def game_factory(game: str, **options: Any) -> Callable[[int], Any]:
    """``make_game(n)`` for ``play_match``, with the game name and options checked now."""
    envs.make(game, 1, **options)  # fail fast on a bad name or option
    return lambda n: envs.make(game, n, **options)
