"""The batched two-player board game: rules shared by every game core, written once.

A core holds ``num_envs`` games as flat numpy arrays. Each position is two bitboards packed in
``uint64``: ``position`` (the stones of the player to move) and ``mask`` (all stones). Keeping the
mover's stones rather than a fixed colour makes every view "from the mover's side" free, and a
move is three integer operations on the whole batch. A game subclass says only where a move lands,
what a win is and how cells map to bits; legality checks, rewards, auto-reset, the move history,
copies, notation and text boards live here.

Shared rules (as in PGX): an illegal move is an error, never silently fixed; a finished game does
not move (stepping it is an error unless it is left out with ``where``); the winner gets +1 and the
loser -1 on the step that ends the game, a draw 0 for both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

NUM_PLAYERS = 2
STONE_CHARS = ("X", "O")  # player 0 (moves first), player 1
EMPTY_CHAR = "."


def _check_num_envs(num_envs: Any) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    return int(num_envs)


class BatchedGame:
    """N two-player, alternating-move board games as arrays.

    Subclasses set ``name``, ``rows``, ``cols``, ``win_length``, ``num_actions``,
    ``max_moves``, the bit layout ``_cell_bits`` (rows, cols) and implement ``_move_bits`` and
    ``_is_win``.
    """

    name: ClassVar[str]
    notation_chars: str  # one character per action, in action order
    num_players: ClassVar[int] = NUM_PLAYERS
    gravity: ClassVar[bool] = False  # a stone falls to the lowest empty cell of its column
    rows: int
    cols: int
    win_length: int  # stones in a straight line that win
    num_actions: int
    max_moves: int
    _cell_bits: np.ndarray  # (rows, cols) uint64: the bit of each cell, row 0 at the top
    _state_fields: ClassVar[tuple[str, ...]] = (
        "position",
        "mask",
        "moves",
        "terminated",
        "winner",
        "history",
        "history_known",
    )

    def __init__(self, num_envs: int = 1, *, auto_reset: bool = False) -> None:
        self.num_envs = _check_num_envs(num_envs)
        self.auto_reset = bool(auto_reset)
        self._arange = np.arange(self.num_envs)
        self._allocate(self.num_envs)

    # ----------------------------------------------------------------------------------------
    # the per-game hooks

    def _move_bits(self, mask: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The bit each action sets on boards ``mask`` (uint64); 0 where the action is illegal."""
        raise NotImplementedError

    def _is_win(self, stones: np.ndarray) -> np.ndarray:
        """bool per board: do these stones (uint64) contain a winning line?"""
        raise NotImplementedError

    def legal_mask(self) -> np.ndarray:
        """bool (N, A): the legal actions of each game (all False for a finished game)."""
        raise NotImplementedError

    def _options(self) -> dict[str, Any]:
        """The keyword options that rebuild a core of the same shape (for clone/take)."""
        return {}

    # ----------------------------------------------------------------------------------------
    # state

    def _allocate(self, n: int) -> None:
        self.position = np.zeros(n, np.uint64)  # (N,) stones of the player to move
        self.mask = np.zeros(n, np.uint64)  # (N,) all stones
        self.moves = np.zeros(n, np.int16)  # (N,) plies played
        self.terminated = np.zeros(n, bool)  # (N,) game over
        self.winner = np.full(n, -1, np.int8)  # (N,) 0, 1, or -1 (none / draw)
        self.history = np.zeros((n, self.max_moves), np.int8)  # (N, max_moves) actions played
        self.history_known = np.ones(n, bool)  # False for positions built from a text board

    def reset(self, where: np.ndarray | None = None) -> None:
        """Start new games: all of them, or those selected by a bool mask / index array."""
        if where is None:
            where = slice(None)
        else:
            where = self._as_index(where)
        self.position[where] = 0
        self.mask[where] = 0
        self.moves[where] = 0
        self.terminated[where] = False
        self.winner[where] = -1
        self.history_known[where] = True

    def _as_index(self, where: Any) -> np.ndarray:
        where = np.asarray(where)
        if where.dtype == bool:
            if where.shape != (self.num_envs,):
                raise ValueError(
                    f"a bool selection must have shape ({self.num_envs},), got {where.shape}"
                )
            return where
        if where.ndim != 1 or not np.issubdtype(where.dtype, np.integer):
            raise ValueError(
                f"a selection must be a bool mask or a 1-D integer index array, got "
                f"dtype {where.dtype} and shape {where.shape}"
            )
        if where.size and (where.min() < -self.num_envs or where.max() >= self.num_envs):
            raise ValueError(
                f"game indices must lie in [0, {self.num_envs}), got {where.min()}..{where.max()}"
            )
        return where

    def current_player(self) -> np.ndarray:
        """int (N,): the player to move, 0 (moves first, ``X``) or 1 (``O``)."""
        return (self.moves & 1).astype(np.int64)

    def player_stones(self, player: int) -> np.ndarray:
        """uint64 (N,): the stones of ``player`` (0 or 1) in each game."""
        to_move = (self.moves & 1) == player
        return np.where(to_move, self.position, self.position ^ self.mask)

    # ----------------------------------------------------------------------------------------
    # stepping

    def step(self, actions: Any, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Play one move in each game (or in the games selected by the bool mask ``where``).

        Returns ``rewards`` float32 (N, 2), indexed by player, and ``terminated`` bool (N,), both
        for this step. With ``auto_reset`` the finished games start again at once, so the state
        after the call is a fresh game where ``terminated`` is True.
        """
        if self.num_envs == 1 and where is None and np.ndim(actions) == 1 and len(actions) == 1:
            return self._step_single(actions[0])
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) (one per game), got {actions.shape}"
            )
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        if where is not None:
            where = np.asarray(where, bool)
            if where.shape != (self.num_envs,):
                raise ValueError(f"where must have shape ({self.num_envs},), got {where.shape}")
            # games left out play a harmless placeholder that is discarded below
            actions = np.where(where, actions, 0)
        low, high = actions.min(), actions.max()
        if low < 0 or high >= self.num_actions:
            bad = int(low) if low < 0 else int(high)
            raise ValueError(
                f"illegal action {bad} for {self.name}: actions are 0..{self.num_actions - 1}"
            )
        stale = self.terminated if where is None else where & self.terminated
        if stale.any():
            game = int(np.flatnonzero(stale)[0])
            raise ValueError(
                f"game {game} is over; reset it, leave it out with `where`, or use auto_reset=True"
            )

        move = self._move_bits(self.mask, actions)  # (N,) uint64, 0 where illegal
        illegal = move == 0
        if where is not None:
            illegal &= where
        if illegal.any():
            game = int(np.flatnonzero(illegal)[0])
            legal = np.flatnonzero(self.legal_mask()[game]).tolist()
            raise ValueError(
                f"illegal move {int(actions[game])} in game {game} of {self.name}: "
                f"legal actions are {legal}"
            )

        mover_stones = self.position | move
        new_mask = self.mask | move
        won = self._is_win(mover_stones)  # (N,) bool
        plies = self.moves.astype(np.int64)
        if where is None:
            self.history[self._arange, plies] = actions
            self.position = mover_stones ^ new_mask  # the opponent moves next
            self.mask = new_mask
            self.moves += 1
        else:
            won &= where
            rows = np.flatnonzero(where)
            self.history[rows, plies[rows]] = actions[rows]
            self.position = np.where(where, mover_stones ^ new_mask, self.position)
            self.mask = np.where(where, new_mask, self.mask)
            self.moves += where
        full = self.moves >= self.max_moves
        done = won | (full if where is None else full & where)
        rewards = np.zeros((self.num_envs, self.num_players), np.float32)
        if won.any():
            games = np.flatnonzero(won)
            self._score_wins(rewards, games, (plies[games] & 1).astype(np.int64))
        if done.any():
            self._finish(done)
        return rewards, done

    def _step_single(self, action: Any) -> tuple[np.ndarray, np.ndarray]:
        """``step`` for a one-game core on numpy scalars: the same hooks and rules, without the
        per-call overhead of dozens of 1-element array operations (the PettingZoo views and
        tree search over single positions live on this path)."""
        if isinstance(action, (bool, np.bool_)) or not isinstance(action, (int, np.integer)):
            raise ValueError(f"actions must be integers, got {action!r}")
        if not 0 <= action < self.num_actions:
            raise ValueError(
                f"illegal action {int(action)} for {self.name}: actions are "
                f"0..{self.num_actions - 1}"
            )
        if self.terminated[0]:
            raise ValueError(
                "game 0 is over; reset it, leave it out with `where`, or use auto_reset=True"
            )
        mask, plies = self.mask[0], int(self.moves[0])
        move = self._move_bits(mask, action)
        if not move:
            legal = np.flatnonzero(self.legal_mask()[0]).tolist()
            raise ValueError(
                f"illegal move {int(action)} in game 0 of {self.name}: legal actions are {legal}"
            )
        mover_stones = self.position[0] | move
        mask = mask | move
        won = bool(self._is_win(mover_stones))
        self.history[0, plies] = action
        self.position[0] = mover_stones ^ mask
        self.mask[0] = mask
        self.moves[0] = plies + 1
        rewards = np.zeros((1, self.num_players), np.float32)
        done = np.array([won or plies + 1 >= self.max_moves])
        if won:
            self._score_wins(rewards, np.zeros(1, np.int64), np.array([plies & 1]))
        if done[0]:
            self._finish(done)
        return rewards, done

    def _score_wins(self, rewards: np.ndarray, games: np.ndarray, mover: np.ndarray) -> None:
        """The winner of each game in ``games`` (who just moved) gets +1, the other -1."""
        rewards[games, mover] = 1.0
        rewards[games, 1 - mover] = -1.0
        self.winner[games] = mover

    def _finish(self, done: np.ndarray) -> None:
        if self.auto_reset:
            self.reset(done)
        else:
            self.terminated |= done

    def random_legal_actions(self, rng: np.random.Generator) -> np.ndarray:
        """int64 (N,): a uniformly random legal action per game (0 for finished games)."""
        legal = self.legal_mask()  # (N, A)
        scores = rng.random(legal.shape, dtype=np.float32)
        scores[~legal] = -1.0
        return scores.argmax(axis=1)

    # ----------------------------------------------------------------------------------------
    # views for networks

    def planes(self) -> np.ndarray:
        """bool (N, 2, rows, cols): the mover's stones, then the opponent's."""
        cells = self._cell_bits  # (rows, cols)
        mine = (self.position[:, None, None] & cells) != 0
        theirs = ((self.position ^ self.mask)[:, None, None] & cells) != 0
        return np.stack([mine, theirs], axis=1)

    def observation(self) -> np.ndarray:
        """float32 (N, 2, rows, cols): plane 0 the mover's stones, plane 1 the opponent's."""
        return self.planes().astype(np.float32)

    def tokens(self) -> np.ndarray:
        """int64 (N, rows*cols), row-major: 0 empty, 1 the mover's stone, 2 the opponent's."""
        planes = self.planes()
        tokens = planes[:, 0].astype(np.int64) + 2 * planes[:, 1]
        return tokens.reshape(self.num_envs, -1)

    def position_keys(self) -> list[tuple[int, int]]:
        """One exact, hashable key per game: equal keys mean equal positions (same stones,
        same side to move), whatever the move order — what an evaluation cache needs."""
        return list(zip(self.position.tolist(), self.mask.tolist(), strict=True))

    def symmetries(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The board symmetries under which the rules are unchanged, identity first.

        Each is ``(cell_perm, action_perm)``: the transformed board's cell ``i`` (row-major) is
        the original's ``cell_perm[i]`` and the transformed policy's action ``a`` is the
        original's ``action_perm[a]``. Replay buffers use them to augment training data.
        """
        cells = np.arange(self.rows * self.cols)
        return [(cells, np.arange(self.num_actions))]

    # ----------------------------------------------------------------------------------------
    # copies

    def take(self, indices: Any) -> BatchedGame:
        """A new core holding copies of the selected games (bool mask or index array)."""
        index = self._as_index(indices)
        n = int(index.sum()) if index.dtype == bool else len(index)
        if n == 0:
            raise ValueError("take() needs at least one game, got an empty selection")
        other = type(self)(n, auto_reset=self.auto_reset, **self._options())
        for field in self._state_fields:
            setattr(other, field, getattr(self, field)[index].copy())
        return other

    def clone(self) -> BatchedGame:
        """A deep copy of all games."""
        other = type(self)(self.num_envs, auto_reset=self.auto_reset, **self._options())
        for field in self._state_fields:
            setattr(other, field, getattr(self, field).copy())
        return other

    # ----------------------------------------------------------------------------------------
    # notation and text boards

    @classmethod
    def from_moves(cls, moves: str | list[str], **options: Any) -> BatchedGame:
        """Games replayed from move strings in the game's notation (one string per game)."""
        batch = [moves] if isinstance(moves, str) else list(moves)
        if not batch:
            raise ValueError("from_moves() needs at least one move string")
        game = cls(len(batch), **options)
        lookup = {char: action for action, char in enumerate(game.notation_chars)}
        lookup.update({char.upper(): action for char, action in list(lookup.items())})
        actions = np.zeros((len(batch), max(len(m) for m in batch)), np.int64)
        for g, text in enumerate(batch):
            if not isinstance(text, str):
                raise ValueError(f"a move string must be a str, got {text!r}")
            if len(text) > game.max_moves:
                raise ValueError(
                    f"move string {text!r} has {len(text)} moves; {game.name} has at most "
                    f"{game.max_moves}"
                )
            for ply, char in enumerate(text):
                if char not in lookup:
                    raise ValueError(
                        f"malformed move {char!r} at position {ply + 1} of {text!r}: "
                        f"{game.name} moves are {' '.join(game.notation_chars)}"
                    )
                actions[g, ply] = lookup[char]
        lengths = np.array([len(m) for m in batch])
        for ply in range(actions.shape[1]):
            playing = lengths > ply
            over = playing & game.terminated
            if over.any():
                g = int(np.flatnonzero(over)[0])
                raise ValueError(f"move {ply + 1} of {batch[g]!r} comes after the game ended")
            legal = game.legal_mask()[np.arange(len(batch)), actions[:, ply]]
            bad = playing & ~legal
            if bad.any():
                g = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"illegal move {batch[g][ply]!r} at position {ply + 1} of {batch[g]!r}"
                )
            game.step(actions[:, ply], where=playing)
        return game

    def to_moves(self, game: int = 0) -> str:
        """The moves of one game in the game's notation."""
        if not self.history_known[game]:
            raise ValueError(f"game {game} was built from a text board: its move order is unknown")
        plies = int(self.moves[game])
        return "".join(self.notation_chars[a] for a in self.history[game, :plies])

    def render(self, game: int = 0) -> str:
        """A text board: X moves first, O second, '.' empty; row 0 at the top."""
        x_stones = int(self.player_stones(0)[game])
        o_stones = int(self.player_stones(1)[game])
        lines = []
        for r in range(self.rows):
            cells = []
            for c in range(self.cols):
                bit = int(self._cell_bits[r, c])
                cells.append("X" if x_stones & bit else "O" if o_stones & bit else EMPTY_CHAR)
            lines.append(" ".join(cells))
        return "\n".join(lines)

    @classmethod
    def from_text(cls, boards: str | list[str], **options: Any) -> BatchedGame:
        """Games set up from text boards (``X``, ``O``, ``.``; spaces ignored; row 0 on top).

        X moves first, so X has as many stones as O or one more, and the side with fewer
        stones moves next. A board where the side that just moved has a line is a finished game.
        """
        batch = [boards] if isinstance(boards, str) else list(boards)
        game = cls(len(batch), **options)
        for g, text in enumerate(batch):
            lines = [line.replace(" ", "") for line in text.strip().splitlines()]
            lines = [line for line in lines if line and not line.isdigit()]  # drop label rows
            if len(lines) != game.rows or any(len(line) != game.cols for line in lines):
                shape = [len(line) for line in lines]
                raise ValueError(
                    f"a {game.name} board is {game.rows} rows of {game.cols} cells, got "
                    f"{len(lines)} rows of lengths {shape}"
                )
            stones = [0, 0]
            for r, line in enumerate(lines):
                for c, char in enumerate(line):
                    if char.upper() in STONE_CHARS:
                        stones[STONE_CHARS.index(char.upper())] |= int(game._cell_bits[r, c])
                    elif char not in (EMPTY_CHAR, "-", "_"):
                        raise ValueError(
                            f"unknown cell {char!r} in board row {r}: cells are X, O or ."
                        )
            counts = [bin(s).count("1") for s in stones]
            if counts[0] - counts[1] not in (0, 1):
                raise ValueError(
                    f"X moves first, so X has as many stones as O or one more; got "
                    f"{counts[0]} X and {counts[1]} O"
                )
            game._set_position(g, stones[0], stones[1], counts[0] + counts[1])
        return game

    def _set_position(self, g: int, x_stones: int, o_stones: int, plies: int) -> None:
        all_stones = x_stones | o_stones
        self._check_reachable(all_stones)
        mover, waiter = (x_stones, o_stones) if plies % 2 == 0 else (o_stones, x_stones)
        wins = self._is_win(np.array([mover, waiter], np.uint64))
        if wins[0]:
            raise ValueError("the side to move already has a line: that position is unreachable")
        self.position[g] = mover
        self.mask[g] = all_stones
        self.moves[g] = plies
        self.history_known[g] = False
        if wins[1]:
            self.terminated[g] = True
            self.winner[g] = 1 - (plies % 2)
        elif plies >= self.max_moves:
            self.terminated[g] = True

    def _check_reachable(self, all_stones: int) -> None:
        """Raise if stones sit where no game could put them (e.g. floating in Connect Four)."""

    def __len__(self) -> int:
        return self.num_envs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, {self._options()})"
