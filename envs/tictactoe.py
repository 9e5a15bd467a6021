"""Tic-Tac-Toe as a batched bitboard core.

Cell ``r*3 + c`` (row 0 on top) is bit ``r*3 + c`` and also the action that plays there. A win is
a lookup in a 512-entry table indexed by a player's stones.

Notation: the cells as digits 1-9, row by row from the top left (``"5193"``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from envs.base import BatchedGame

LINES = (
    (0, 1, 2), (3, 4, 5), (6, 7, 8),  # rows
    (0, 3, 6), (1, 4, 7), (2, 5, 8),  # columns
    (0, 4, 8), (2, 4, 6),  # diagonals
)  # fmt: skip


def _win_table() -> np.ndarray:
    line_masks = [sum(1 << cell for cell in line) for line in LINES]
    stones = np.arange(512)
    return np.any([(stones & m) == m for m in line_masks], axis=0)  # (512,) bool


WIN_TABLE = _win_table()
CELL_BITS = np.left_shift(np.uint64(1), np.arange(9, dtype=np.uint64))  # (9,)


class TicTacToe(BatchedGame):
    """N games of Tic-Tac-Toe: three in a row on a 3×3 board wins."""

    name: ClassVar[str] = "tictactoe"
    notation_chars: ClassVar[str] = "123456789"
    rows = 3
    cols = 3
    win_length = 3
    num_actions = 9
    max_moves = 9
    _cell_bits = CELL_BITS.reshape(3, 3)

    def _move_bits(self, mask: np.ndarray, actions: np.ndarray) -> np.ndarray:
        bits = CELL_BITS[actions]
        return np.where(mask & bits, np.uint64(0), bits)

    def _is_win(self, stones: np.ndarray) -> np.ndarray:
        return WIN_TABLE[stones.astype(np.intp)]

    def legal_mask(self) -> np.ndarray:
        empty = (self.mask[:, None] & CELL_BITS[None, :]) == 0  # (N, 9)
        return empty & ~self.terminated[:, None]

    def symmetries(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The 8 symmetries of the square (actions are cells, so both permutations agree)."""
        grid = np.arange(9).reshape(3, 3)
        result = []
        for flipped in (grid, grid.T):
            for turns in range(4):
                perm = np.rot90(flipped, turns).ravel().copy()
                result.append((perm, perm))
        return result
