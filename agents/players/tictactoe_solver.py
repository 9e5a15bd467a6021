"""A perfect Tic-Tac-Toe player: exact minimax, precomputed once, looked up per batch.

The whole game has 5,478 legal positions, so we solve every one of them when the first solver is
built and keep, for each (mover's stones, opponent's stones) pair, the bitmask of the optimal
moves. ``act`` is then one table lookup per game plus a random tie-break among optimal moves.

Values are depth-aware: a win scores ``10 - stones on the board after the winning move`` (a
faster win scores more), a loss the negation (a slower loss is less bad), a draw 0.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from agents.players.base import check_seed, check_unfinished, random_true_index
from envs.tictactoe import WIN_TABLE, TicTacToe

NUM_CELLS = 9
_TABLE_SIZE = 1 << (2 * NUM_CELLS)  # index: mover stones * 512 + opponent stones
_CELL_SHIFTS = np.arange(NUM_CELLS, dtype=np.uint16)  # (9,)


@functools.cache
def optimal_moves_table() -> np.ndarray:
    """uint16 (512*512,): bit ``a`` set where action ``a`` is optimal for the mover.

    Indexed by ``mover * 512 + opponent`` (their stone bitboards). Entries of positions that no
    game reaches (or that are finished) stay 0.
    """
    table = np.zeros(_TABLE_SIZE, np.uint16)
    wins = WIN_TABLE.tolist()  # Python bools: the recursion runs on Python ints
    values: dict[int, int] = {}

    def solve(mover: int, opponent: int) -> int:
        key = mover << NUM_CELLS | opponent
        cached = values.get(key)
        if cached is not None:
            return cached
        occupied = mover | opponent
        stones_after = occupied.bit_count() + 1
        best_value, best_moves = -NUM_CELLS - 2, 0
        for action in range(NUM_CELLS):
            bit = 1 << action
            if occupied & bit:
                continue
            stones = mover | bit
            if wins[stones]:
                value = 10 - stones_after
            elif stones_after == NUM_CELLS:
                value = 0
            else:
                value = -solve(opponent, stones)
            if value > best_value:
                best_value, best_moves = value, bit
            elif value == best_value:
                best_moves |= bit
        values[key] = best_value
        table[key] = best_moves
        return best_value

    solve(0, 0)
    table.flags.writeable = False  # shared by every solver: nobody may edit it
    return table


class PerfectTicTacToePlayer:
    """Plays Tic-Tac-Toe perfectly: fastest win, slowest loss, random among equal moves."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        self.name = "solver"
        self._table = optimal_moves_table()

    def act(self, game: Any) -> np.ndarray:
        """int64 (N,): an optimal move per game, ties broken by this player's rng."""
        if not isinstance(game, TicTacToe):
            raise ValueError(
                f"the Tic-Tac-Toe solver plays only tictactoe, got "
                f"{getattr(game, 'name', type(game).__name__)!r}"
            )
        check_unfinished(game, self.name)
        mover = game.position.astype(np.int64)  # (N,)
        opponent = (game.position ^ game.mask).astype(np.int64)  # (N,)
        optimal = self._table[mover << NUM_CELLS | opponent]  # (N,) uint16 move masks
        if not optimal.all():
            g = int(np.flatnonzero(optimal == 0)[0])
            raise ValueError(f"solver: game {g} holds a position no game of Tic-Tac-Toe reaches")
        choices = ((optimal[:, None] >> _CELL_SHIFTS) & 1).astype(bool)  # (N, 9)
        return random_true_index(choices, self.rng)

    def __repr__(self) -> str:
        return f"PerfectTicTacToePlayer(seed={self.seed})"
