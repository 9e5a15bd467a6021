"""Connect Four tactics a player gets right or wrong: wins in one, forced blocks, gifts.

A diagnostic for trained agents (``selfplay arena --tactics``): a model-free policy that loses
to a shallow search mostly loses to one-move tactics, and these counts say how often. Each move
of the watched player falls in at most one of three situations, checked in this order (the
alpha-beta player's exact shortcuts, `agents.players.alphabeta`):

- **win available**: the mover can complete a line now; *missed* when it plays elsewhere;
- **block needed**: no win of its own and exactly one opponent winning cell is playable (two
  cannot both be blocked); *missed* when it plays elsewhere (the opponent wins next move);
- **gift**: neither of the above, some move is safe, and the mover plays right under a cell
  where the opponent would complete a line (handing it that cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.players.alphabeta import bit_board
from envs.connect_four import ConnectFour


@dataclass
class Tactics:
    """Counts over the moves one player made (`record` adds a batch of moves)."""

    moves: int = 0
    wins_available: int = 0
    wins_missed: int = 0
    blocks_needed: int = 0
    blocks_missed: int = 0
    gifts: int = 0

    def record(self, game: ConnectFour, actions: np.ndarray) -> None:
        """Count ``actions`` (N,), one column per game, chosen in ``game``'s positions (before
        they are played; every game unfinished)."""
        if not isinstance(game, ConnectFour):
            raise ValueError(
                f"tactics are counted for connect_four only, got "
                f"{getattr(game, 'name', type(game).__name__)!r}"
            )
        actions = np.asarray(actions)
        if actions.shape != (game.num_envs,):
            raise ValueError(f"actions must have shape ({game.num_envs},), got {actions.shape}")
        if actions.size and (actions.min() < 0 or actions.max() >= game.cols):
            raise ValueError(f"actions must be columns in [0, {game.cols}), got {actions.tolist()}")
        b = bit_board(game.rows, game.cols, game.win_length)
        for g in range(game.num_envs):
            position, mask = int(game.position[g]), int(game.mask[g])  # mover's stones, all
            possible = (mask + b.bottom) & b.board  # the playable cell of each open column
            move = possible & b.columns[int(actions[g])]
            mine = b.winning_cells(position) & possible
            theirs = b.winning_cells(position ^ mask)
            threats = theirs & possible
            self.moves += 1
            if mine:
                self.wins_available += 1
                self.wins_missed += not move & mine
            elif threats and not threats & (threats - 1):
                self.blocks_needed += 1
                self.blocks_missed += not move & threats
            elif not threats and possible & ~(theirs >> 1) and move & (theirs >> 1):
                self.gifts += 1

    def summary(self) -> str:
        """One line: wins taken, blocks made, gifts."""
        return (
            f"{self.moves} moves: wins in one taken {self.wins_available - self.wins_missed}/"
            f"{self.wins_available}, forced blocks made {self.blocks_needed - self.blocks_missed}/"
            f"{self.blocks_needed}, gifts (a move under the opponent's winning cell) {self.gifts}"
        )


class TacticsRecorder:
    """A player that plays as ``player`` and counts its tactics into ``self.tactics``."""

    def __init__(self, player: Any) -> None:
        self.player = player
        self.name = player.name
        self.deterministic = getattr(player, "deterministic", False)  # (arena openings)
        self.tactics = Tactics()

    def act(self, game: Any) -> np.ndarray:
        actions = self.player.act(game)
        if np.all((actions >= 0) & (actions < game.cols)):  # else the arena refuses the move
            self.tactics.record(game, actions)
        return actions
