"""Connect Four (and its m×n, k-in-a-row variants) as a batched bitboard core.

Bit layout (John Tromp's): column ``c`` owns bits ``c*(rows+1) .. c*(rows+1)+rows``; the lowest is
the bottom cell and the top bit of each column is a sentinel that stays empty. The sentinel stops
lines from wrapping from one column into the next, so a win test is a few shifts and ANDs per
direction, and a drop is ``(mask + bottom[c]) & column[c]``: the carry finds the lowest empty cell,
and a full column carries into its sentinel, giving 0 — the legality test for free.

Notation: 1-based column digits, e.g. ``"4453"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from envs.base import BatchedGame

NOTATION = "123456789"


def line_shifts(rows: int) -> tuple[int, ...]:
    """Bit distance between neighbours along each line: vertical, horizontal, both diagonals."""
    height = rows + 1
    return (1, height, height - 1, height + 1)


def has_line(stones: Any, shifts: tuple[int, ...], win_length: int) -> Any:
    """Non-zero where ``stones`` holds ``win_length`` in a row along any direction.

    Works on numpy ``uint64`` arrays and on Python ints alike (the players' scalar search uses it).
    A run of ``n`` stones ANDed with itself shifted by ``m <= n`` cells is a run of ``n + m``.
    """
    found = stones & 0
    for shift in shifts:
        run, length = stones, 1
        while length < win_length:
            step = min(length, win_length - length)
            run = run & (run >> (step * shift))
            length += step
        found = found | run
    return found


class ConnectFour(BatchedGame):
    """N games of Connect Four: drop a stone in a column; ``win_length`` in a row wins."""

    name: ClassVar[str] = "connect_four"
    gravity: ClassVar[bool] = True
    notation_chars: str = NOTATION

    def __init__(
        self,
        num_envs: int = 1,
        *,
        rows: int = 6,
        cols: int = 7,
        win_length: int = 4,
        auto_reset: bool = False,
    ) -> None:
        for label, value, low in (
            ("rows", rows, 2),
            ("cols", cols, 2),
            ("win_length", win_length, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"connect_four {label} must be an integer >= {low}, got {value!r}")
        if cols > len(NOTATION):
            raise ValueError(f"connect_four cols must be at most {len(NOTATION)}, got {cols}")
        if (rows + 1) * cols > 64:
            raise ValueError(
                f"connect_four needs (rows+1)*cols <= 64 bits, got rows={rows}, cols={cols}"
            )
        if win_length > max(rows, cols):
            raise ValueError(
                f"connect_four win_length must be at most max(rows, cols) = {max(rows, cols)}, "
                f"got {win_length}"
            )
        self.rows, self.cols, self.win_length = int(rows), int(cols), int(win_length)
        self.num_actions = self.cols
        self.max_moves = self.rows * self.cols
        height = self.rows + 1
        self.notation_chars = NOTATION[: self.cols]
        columns = np.arange(self.cols, dtype=np.uint64)
        self._bottom = np.left_shift(np.uint64(1), columns * np.uint64(height))  # (A,)
        self._column = self._bottom * np.uint64((1 << self.rows) - 1)  # (A,) playable cells
        self._top = np.left_shift(self._bottom, np.uint64(self.rows - 1))  # (A,) top cell
        self._all_top = np.bitwise_or.reduce(self._top)
        self._shifts = line_shifts(self.rows)
        # cell (r, c), r = 0 the top row -> bit c*height + (rows-1-r)
        r = np.arange(self.rows)[:, None]
        c = np.arange(self.cols)[None, :]
        self._cell_bits = np.left_shift(
            np.uint64(1), (c * height + (self.rows - 1 - r)).astype(np.uint64)
        )  # (rows, cols)
        super().__init__(num_envs, auto_reset=auto_reset)

    def _options(self) -> dict[str, Any]:
        return {"rows": self.rows, "cols": self.cols, "win_length": self.win_length}

    def _move_bits(self, mask: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return (mask + self._bottom[actions]) & self._column[actions]

    def _is_win(self, stones: np.ndarray) -> np.ndarray:
        return has_line(stones, self._shifts, self.win_length) != 0

    def legal_mask(self) -> np.ndarray:
        open_top = (self.mask[:, None] & self._top[None, :]) == 0  # (N, A)
        return open_top & ~self.terminated[:, None]

    def random_legal_actions(self, rng: np.random.Generator) -> np.ndarray:
        # Rejection sampling is exactly uniform over the legal columns and, since most columns
        # are open, costs about one draw per game: far cheaper than scoring all N*A cells.
        actions = rng.integers(0, self.cols, self.num_envs)
        can_move = ((self.mask & self._all_top) != self._all_top) & ~self.terminated
        redo = np.flatnonzero(can_move & ((self.mask & self._top[actions]) != 0))
        while redo.size:
            actions[redo] = rng.integers(0, self.cols, redo.size)
            redo = redo[(self.mask[redo] & self._top[actions[redo]]) != 0]
        actions[~can_move] = 0
        return actions

    def symmetries(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Identity and the left-right mirror (gravity rules out the others)."""
        grid = np.arange(self.rows * self.cols).reshape(self.rows, self.cols)
        columns = np.arange(self.cols)
        return [(grid.ravel(), columns), (grid[:, ::-1].ravel(), columns[::-1].copy())]

    def _check_reachable(self, all_stones: int) -> None:
        height = self.rows + 1
        for c in range(self.cols):
            column = (all_stones >> (c * height)) & ((1 << self.rows) - 1)
            if column & (column + 1):  # a stone-filled column is 0b0..01..1
                raise ValueError(
                    f"column {c + 1} has a stone floating above an empty cell: stones fall to "
                    "the lowest empty cell"
                )
