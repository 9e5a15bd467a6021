"""The player protocol and the helpers every baseline player shares.

A player is anything with ``name: str`` and ``act(game) -> actions``:

- ``game`` is a batched game core holding N games, every one of them unfinished (the arena hands
  a player the sub-batch of games where it is to move, built with ``game.take(indices)``);
- ``act`` returns int64 (N,): one *legal* action per game;
- ``act`` never mutates ``game`` (searches work on ``clone()`` / ``take()`` copies);
- a player is deterministic given its seed: it owns one ``np.random.Generator`` and uses no other
  randomness, so the same seed and the same sequence of positions give the same actions.

Generic players (random, rollout MCTS) rely only on ``GameBatch`` below, which the adapter over
external PettingZoo environments also implements. Players that read bitboards (the Tic-Tac-Toe
solver, alpha-beta for Connect Four) accept only our own cores and say so with a ``ValueError``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


class GameBatch(Protocol):
    """The part of a batched core that generic players may use."""

    name: str
    num_envs: int
    num_actions: int
    num_players: int
    terminated: np.ndarray  # (N,) bool

    def legal_mask(self) -> np.ndarray:
        """bool (N, A)."""
        ...

    def current_player(self) -> np.ndarray:
        """int (N,)."""
        ...

    def step(self, actions: Any, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """rewards float32 (N, players), terminated bool (N,) for this step."""
        ...

    def clone(self) -> Any: ...

    def take(self, indices: Any) -> Any: ...

    def random_legal_actions(self, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class Player(Protocol):
    """``act(game)`` -> int64 (N,), one legal action per (unfinished) game; see the module doc."""

    name: str

    def act(self, game: Any) -> np.ndarray: ...


def check_seed(seed: Any) -> int:
    """The seed as an int, or a ValueError naming the bad value."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


def check_positive_int(label: str, value: Any) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``label`` and the bad value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{label} must be an integer >= 1, got {value!r}")
    return int(value)


def check_unfinished(game: Any, player: str) -> None:
    """Refuse a batch holding a finished game: the protocol hands players only live games."""
    terminated = np.asarray(game.terminated)
    if terminated.any():
        g = int(np.flatnonzero(terminated)[0])
        raise ValueError(f"{player}: game {g} of the batch is over; pass only unfinished games")


def random_true_index(choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """int64 (N,): a uniformly random column among the True entries of each row of ``choices``.

    The tie-break of every player: a random score per cell, best score among the allowed cells.
    Each row must hold at least one True.
    """
    scores = rng.random(choices.shape)  # (N, A)
    scores[~choices] = -1.0
    return scores.argmax(axis=1).astype(np.int64)


class RandomPlayer:
    """Uniform over the legal moves, for any game (the rating anchor, Elo 0)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        self.name = "random"

    def act(self, game: Any) -> np.ndarray:
        """int64 (N,): a uniformly random legal action per game."""
        check_unfinished(game, self.name)
        return np.asarray(game.random_legal_actions(self.rng), dtype=np.int64)

    def __repr__(self) -> str:
        return f"RandomPlayer(seed={self.seed})"
