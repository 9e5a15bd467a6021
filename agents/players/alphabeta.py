"""Depth-limited negamax with alpha-beta for Connect Four (any rows, cols, win_length of our core).

The search runs on Python ints in the core's Tromp bit layout (see ``envs/connect_four.py``):
``position`` holds the mover's stones, ``mask`` all stones, a move is ``mask + bottom`` carried
into a column. Python ints beat numpy here: one position at a time, a few dozen bit operations.

Scores, from the mover's view:

- a win is ``WIN - stones on the board after the winning move`` (prefers faster wins), a loss its
  negation (prefers slower losses), a full board 0;
- at the depth limit, ``THREAT_WEIGHT * (my winning cells - their winning cells)`` plus
  ``CENTER_WEIGHT * (my centre stones - theirs)``, where a *winning cell* is an empty cell that
  would complete a line. Heuristic scores stay far below ``WIN - 64``.

Exact shortcuts at every node, including the leaves (they are game-theoretic facts, not guesses,
so they never change a minimax value, only make it cheaper and sharper):

- the mover can complete a line now: the node is a win in one;
- the opponent threatens to complete a line in a playable cell: the mover must block (two such
  threats: lost in two);
- a move right under an opponent's winning cell hands the opponent that cell: skip it (if every
  move does so, lost in two).

Because the leaves apply them too, depth 1 already takes a win in one and blocks a loss in one
(the root applies them before any search); deeper searches see deeper tactics.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from agents.players.base import check_positive_int, check_seed, check_unfinished
from envs.connect_four import ConnectFour, line_shifts

WIN = 1_000_000
INFINITY = 10 * WIN
THREAT_WEIGHT = 16
CENTER_WEIGHT = 3
MAX_TABLE_ENTRIES = 1 << 20  # the transposition table is cleared when it grows past this
EXACT, LOWER, UPPER = 0, 1, 2  # transposition-table bounds


class BitBoard:
    """Bit masks of one board shape (rows, cols, win_length), built once per shape (`bit_board`).

    Public because the search and the tactics counter (`agents.players.tactics`) read the same
    geometry: playable cells, columns, winning cells.
    """

    def __init__(self, rows: int, cols: int, win_length: int) -> None:
        height = rows + 1
        self.cols, self.win_length = cols, win_length
        self.max_moves = rows * cols
        self.bottom = sum(1 << (c * height) for c in range(cols))  # lowest cell of each column
        self.board = self.bottom * ((1 << rows) - 1)  # every playable cell, no sentinels
        self.columns = [((1 << rows) - 1) << (c * height) for c in range(cols)]
        # centre-first order: central columns take part in the most lines
        self.order = sorted(range(cols), key=lambda c: (abs(2 * c - (cols - 1)), c))
        centre = [c for c in range(cols) if abs(2 * c - (cols - 1)) <= 1]
        self.centre = sum(self.columns[c] for c in centre)
        self.shifts = line_shifts(rows)

    def winning_cells(self, stones: int) -> int:
        """Cells (anywhere on the board, empty or not) that would complete a line of ``stones``.

        Along each direction ``s``, ``ahead[m]`` marks cells with ``m`` stones right after them
        (at +s .. +m*s) and ``behind[m]`` with ``m`` stones right before them; a cell with ``a``
        ahead and ``win_length - 1 - a`` behind completes a line. Lines cannot wrap between
        columns: every wrapping run passes a sentinel bit, which never holds a stone.
        """
        k = self.win_length
        cells = 0
        for s in self.shifts:
            ahead, behind = [-1], [-1]  # -1: all bits set, the empty run
            run_ahead = run_behind = -1
            for m in range(1, k):
                run_ahead &= stones >> (m * s)
                run_behind &= stones << (m * s)
                ahead.append(run_ahead)
                behind.append(run_behind)
            for a in range(k):
                cells |= ahead[a] & behind[k - 1 - a]
        return cells & self.board


@functools.cache
def bit_board(rows: int, cols: int, win_length: int) -> BitBoard:
    """The (cached) `BitBoard` of a board shape."""
    return BitBoard(rows, cols, win_length)


class _Search:
    """One root search: the board masks, the transposition table and a node counter."""

    def __init__(self, board: BitBoard) -> None:
        self.b = board
        self.table: dict[int, tuple[int, int, int, int]] = {}  # key -> value, bound, depth, move
        self.nodes = 0

    def negamax(
        self, position: int, mask: int, moves: int, depth: int, alpha: int, beta: int
    ) -> int:
        """The value of the node for its mover (fail-soft: a bound outside (alpha, beta))."""
        b = self.b
        self.nodes += 1
        if moves == b.max_moves:
            return 0  # the last stone filled the board without a line
        possible = (mask + b.bottom) & b.board  # (one cell per open column)
        my_win = b.winning_cells(position)
        if my_win & possible:
            return WIN - moves - 1
        opponent = position ^ mask
        their_win = b.winning_cells(opponent)
        candidates = their_win & possible
        if candidates:
            if candidates & (candidates - 1):
                return -(WIN - moves - 2)  # two threats: one block is not enough
        else:
            candidates = possible
        candidates &= ~(their_win >> 1)  # never play right under their winning cell
        if not candidates:
            return -(WIN - moves - 2)
        if depth == 0:
            empty = b.board & ~mask
            threats = (my_win & empty).bit_count() - (their_win & empty).bit_count()
            centre = (position & b.centre).bit_count() - (opponent & b.centre).bit_count()
            return THREAT_WEIGHT * threats + CENTER_WEIGHT * centre

        # No immediate win, so the mover's earliest win is its stone after next.
        best_possible = WIN - moves - 3
        if beta > best_possible:
            beta = best_possible
            if alpha >= beta:
                return beta
        key = position + mask  # unique per position in the Tromp layout
        entry = self.table.get(key)
        first = -1
        if entry is not None:
            value, bound, entry_depth, first = entry
            if entry_depth >= depth:
                if bound == EXACT:
                    return value
                if bound == LOWER and value > alpha:
                    alpha = value
                elif bound == UPPER and value < beta:
                    beta = value
                if alpha >= beta:
                    return value

        alpha_start = alpha
        best_value, best_move = -INFINITY, -1
        order = b.order if first < 0 else [first, *(c for c in b.order if c != first)]
        for col in order:
            move = candidates & b.columns[col]
            if not move:
                continue
            value = -self.negamax(opponent, mask | move, moves + 1, depth - 1, -beta, -alpha)
            if value > best_value:
                best_value, best_move = value, col
                if value > alpha:
                    alpha = value
                    if alpha >= beta:
                        break
        if best_value <= alpha_start:
            bound = UPPER
        elif best_value >= beta:
            bound = LOWER
        else:
            bound = EXACT
        if len(self.table) >= MAX_TABLE_ENTRIES:
            self.table.clear()
        self.table[key] = (best_value, bound, depth, best_move)
        return best_value

    def root_values(self, position: int, mask: int, moves: int, depth: int) -> dict[int, int]:
        """Exact values of the root moves worth considering (equal ones tie for best).

        Iterative deepening: each pass fills the transposition table, so the next, deeper pass
        tries the best moves first. Each move is searched with alpha just below the best value so
        far, so moves as good as the best come back exact rather than as bounds.
        """
        b = self.b
        possible = (mask + b.bottom) & b.board
        wins = b.winning_cells(position) & possible
        if wins:
            return {c: WIN - moves - 1 for c in range(b.cols) if wins & b.columns[c]}
        opponent = position ^ mask
        their_win = b.winning_cells(opponent)
        candidates = their_win & possible or possible
        safe = candidates & ~(their_win >> 1)
        if not safe or (their_win & possible and candidates & (candidates - 1)):
            # lost in two whatever we play: every candidate ties
            return {c: -(WIN - moves - 2) for c in range(b.cols) if candidates & b.columns[c]}
        values: dict[int, int] = {}
        order = [c for c in b.order if safe & b.columns[c]]
        for d in range(1, depth + 1):
            best = -INFINITY
            values = {}
            for col in order:
                child_mask = mask | (safe & b.columns[col])
                value = -self.negamax(opponent, child_mask, moves + 1, d - 1, -INFINITY, 1 - best)
                values[col] = value
                best = max(best, value)
            if abs(best) > WIN // 2:
                break  # a proven win or loss: deeper search cannot change it
            order.sort(key=lambda c: -values[c])  # stable: centre-first among equals
        return values


class AlphaBetaPlayer:
    """Connect Four by negamax with alpha-beta to ``depth`` plies; see the module doc."""

    def __init__(self, depth: int, seed: int = 0) -> None:
        self.depth = check_positive_int("alpha-beta depth", depth)
        self.seed = check_seed(seed)
        self.rng = np.random.default_rng(self.seed)
        self.name = f"alphabeta:{self.depth}"
        self.nodes = 0  # nodes searched by the last act() (for benchmarks)

    def act(self, game: Any) -> np.ndarray:
        """int64 (N,): the best move per game, ties among equal root values broken at random."""
        if not isinstance(game, ConnectFour):
            raise ValueError(
                f"the alpha-beta player plays only connect_four (our bitboard core), got "
                f"{getattr(game, 'name', type(game).__name__)!r}"
            )
        check_unfinished(game, self.name)
        board = bit_board(game.rows, game.cols, game.win_length)
        actions = np.zeros(game.num_envs, np.int64)  # (N,)
        self.nodes = 0
        for g in range(game.num_envs):
            search = _Search(board)  # a fresh table per move bounds its size
            values = search.root_values(
                int(game.position[g]), int(game.mask[g]), int(game.moves[g]), self.depth
            )
            self.nodes += search.nodes
            best = max(values.values())
            ties = sorted(c for c, v in values.items() if v == best)
            actions[g] = ties[int(self.rng.integers(len(ties)))] if len(ties) > 1 else ties[0]
        return actions

    def __repr__(self) -> str:
        return f"AlphaBetaPlayer(depth={self.depth}, seed={self.seed})"
