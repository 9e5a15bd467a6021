"""Players by name: ``make_player("alphabeta:4", "connect_four", seed=0)``."""

from __future__ import annotations

from agents.players.alphabeta import AlphaBetaPlayer
from agents.players.base import Player, RandomPlayer, check_seed
from agents.players.rollout_mcts import RolloutMCTSPlayer
from agents.players.tictactoe_solver import PerfectTicTacToePlayer

PLAYER_SPECS = (
    "random (any game), solver or perfect (tictactoe), alphabeta:<depth> (connect_four, "
    "depth >= 1), mcts:<simulations> (any game, simulations >= 1)"
)
_CHOICES = "choose random, solver, alphabeta:<depth>, mcts:<simulations>"


def _count(spec: str, kind: str, text: str, what: str, example: str) -> int:
    """The integer >= 1 after ``kind:``, or a ValueError naming the spec."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise ValueError(
            f"bad player {spec!r}: {kind} needs an integer {what} >= 1, e.g. {example}"
        )
    return int(text)


def make_player(spec: str, game: str, seed: int = 0) -> Player:
    """The player described by ``spec`` (see ``PLAYER_SPECS``) for the game named ``game``.

    Generic players (``random``, ``mcts:<n>``) accept any game name, external PettingZoo games
    included; ``solver`` needs ``tictactoe`` and ``alphabeta:<depth>`` needs ``connect_four``.
    """
    if not isinstance(spec, str):
        raise ValueError(f"a player spec must be a str, got {spec!r}: {_CHOICES}")
    seed = check_seed(seed)
    kind, colon, arg = spec.strip().lower().partition(":")
    if kind == "random" and not colon:
        return RandomPlayer(seed)
    if kind in ("solver", "perfect") and not colon:
        if game != "tictactoe":
            raise ValueError(f"player {spec!r} plays only tictactoe, not {game!r}")
        return PerfectTicTacToePlayer(seed)
    if kind == "alphabeta":
        depth = _count(spec, kind, arg, "depth", "alphabeta:4")
        if game != "connect_four":
            raise ValueError(f"player {spec!r} plays only connect_four, not {game!r}")
        return AlphaBetaPlayer(depth, seed)
    if kind == "mcts":
        return RolloutMCTSPlayer(_count(spec, kind, arg, "simulation count", "mcts:200"), seed)
    raise ValueError(f"unknown player {spec!r}: {_CHOICES}")
