"""Tests for agents.players: strength against random, tactics on text boards, determinism,
legality, no mutation of the game, and ``make_player``'s errors.

Matches run through ``play``, a small local game loop (the arena lives in ``selfplay`` and is
tested there): all games of a match are one batch, each player gets the games where it is to move
as one ``take`` sub-batch, and every call is checked for legal actions and an untouched game.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import envs
from agents.players import (
    PLAYER_SPECS,
    AlphaBetaPlayer,
    PerfectTicTacToePlayer,
    Player,
    RandomPlayer,
    RolloutMCTSPlayer,
    make_player,
)
from agents.players.alphabeta import WIN, _Search, bit_board
from envs import ConnectFour, TicTacToe
from envs.connect_four import has_line, line_shifts

STATE_FIELDS = ("position", "mask", "moves", "terminated", "winner", "history")


# --------------------------------------------------------------------------------------------
# helpers


def checked_act(player: Player, game: Any) -> np.ndarray:
    """``player.act(game)``, failing the test on an illegal action or a mutated game."""
    before = {f: getattr(game, f).copy() for f in STATE_FIELDS if hasattr(game, f)}
    actions = player.act(game)
    assert isinstance(actions, np.ndarray) and actions.dtype == np.int64
    assert actions.shape == (game.num_envs,)
    legal = game.legal_mask()[np.arange(game.num_envs), actions]
    assert legal.all(), f"{player.name} played illegal actions {actions[~legal]}"
    for field, value in before.items():
        np.testing.assert_array_equal(getattr(game, field), value, err_msg=f"{field} mutated")
    return actions


def play(game: Any, players: tuple[Player, Player]) -> np.ndarray:
    """Play every game of ``game`` to the end; ``players[p]`` moves for player p.

    Returns int (N,): the winner of each game (0 or 1), -1 for a draw.
    """
    n = game.num_envs
    winner = np.full(n, -1)  # (N,)
    finished = game.terminated.copy()  # (N,)
    while not finished.all():
        to_move = game.current_player()  # (N,)
        actions = np.zeros(n, np.int64)  # (N,)
        for seat, player in enumerate(players):
            index = np.flatnonzero(~finished & (to_move == seat))
            if index.size:
                actions[index] = checked_act(player, game.take(index))
        rewards, done = game.step(actions, where=~finished)
        won = done & (rewards.max(axis=1) > 0)
        winner[won] = rewards[won].argmax(axis=1)
        finished |= done
    return winner


def match(make_game: Any, player: Player, opponent: Player, games_per_seat: int) -> dict[str, int]:
    """``player`` against ``opponent``, ``games_per_seat`` games in each seat (one batch each)."""
    first = play(make_game(games_per_seat), (player, opponent))
    second = play(make_game(games_per_seat), (opponent, player))
    return {
        "wins": int((first == 0).sum() + (second == 1).sum()),
        "draws": int((first == -1).sum() + (second == -1).sum()),
        "losses": int((first == 1).sum() + (second == 0).sum()),
    }


def random_positions(game: Any, max_plies: int, seed: int, min_plies: int = 0) -> Any:
    """The unfinished games of ``game`` after min_plies..max_plies random moves each."""
    rng = np.random.default_rng(seed)
    plies = rng.integers(min_plies, max_plies + 1, game.num_envs)  # (N,)
    for ply in range(max_plies):
        moving = ~game.terminated & (plies > ply)
        if moving.any():
            game.step(game.random_legal_actions(rng), where=moving)
    return game.take(np.flatnonzero(~game.terminated))


class GenericOnly:
    """A core seen only through the generic interface (as the PettingZoo adapter offers it)."""

    def __init__(self, core: Any) -> None:
        self._core = core
        self.name = core.name
        self.num_envs = core.num_envs
        self.num_actions = core.num_actions
        self.num_players = core.num_players

    @property
    def terminated(self) -> np.ndarray:
        return self._core.terminated

    def legal_mask(self) -> np.ndarray:
        return self._core.legal_mask()

    def current_player(self) -> np.ndarray:
        return self._core.current_player()

    def step(self, actions: Any, where: Any = None) -> tuple[np.ndarray, np.ndarray]:
        return self._core.step(actions, where=where)

    def clone(self) -> GenericOnly:
        return GenericOnly(self._core.clone())

    def take(self, indices: Any) -> GenericOnly:
        return GenericOnly(self._core.take(indices))

    def random_legal_actions(self, rng: np.random.Generator) -> np.ndarray:
        return self._core.random_legal_actions(rng)


# --------------------------------------------------------------------------------------------
# Tic-Tac-Toe solver


def test_solver_never_loses_to_random() -> None:
    result = match(TicTacToe, PerfectTicTacToePlayer(seed=1), RandomPlayer(seed=2), 500)
    assert result["losses"] == 0, result
    # random play blunders constantly: perfect play converts most games into wins
    assert result["wins"] >= 800, result


def test_solver_draws_itself() -> None:
    game = TicTacToe(300)
    winner = play(game, (PerfectTicTacToePlayer(seed=3), PerfectTicTacToePlayer(seed=4)))
    assert (winner == -1).all()
    # the random tie-break plays different draws, not one line over and over
    assert len({game.to_moves(g) for g in range(game.num_envs)}) > 20


@pytest.mark.parametrize(
    ("board", "expected"),
    [
        ("XX. / OO. / ...", 2),  # X wins on the top row
        ("X.. / OO. / X..", 5),  # X must block O's middle row
        ("XO. / XO. / ...", 6),  # X to move: X's win in one beats blocking O's column
        ("X.O / .X. / O..", 8),  # X completes the diagonal
        ("XX. / O.. / ...", 2),  # O to move blocks the top row
    ],
)
def test_solver_wins_and_blocks(board: str, expected: int) -> None:
    game = TicTacToe.from_text([board.replace(" / ", "\n")] * 20)
    actions = checked_act(PerfectTicTacToePlayer(seed=0), game)
    assert (actions == expected).all(), actions


def test_solver_prefers_the_fastest_win() -> None:
    # X wins now at 2; X at 6 would also win (a double threat), but two moves later
    game = TicTacToe.from_text(["XX.\n.O.\n..O"] * 50)
    actions = checked_act(PerfectTicTacToePlayer(seed=0), game)
    assert (actions == 2).all(), actions


def test_solver_refuses_other_games() -> None:
    with pytest.raises(ValueError, match="only tictactoe"):
        PerfectTicTacToePlayer().act(ConnectFour(2))


# --------------------------------------------------------------------------------------------
# alpha-beta

# Connect Four positions (6 x 7, top row first), the expected column (0-based) and what it tests.
# X moves first, so X is to move when the stone counts are equal.
CONNECT_FOUR_TACTICS = [
    pytest.param("......./......./......./......./O....../XXX.OO.", 3, id="win-horizontal"),
    pytest.param("......./......./......./......./..X..../..OOOXX", 1, id="block-horizontal"),
    pytest.param("414243", 3, id="win-vertical"),
    pytest.param("41424", 3, id="block-vertical"),
    pytest.param("......./......./......./..XO.../.XOX.../XOOX..O", 3, id="win-diagonal"),
    pytest.param("......./......./......./..XO.../.XOX.../XOOX...", 3, id="block-diagonal"),
    pytest.param("......./......./..X..../..OX.../..XOX../..OXO..", 5, id="block-antidiagonal"),
    # X wins in col 4 (bottom row); O threatens col 7 (vertical): X's own win comes first
    pytest.param("......./......./......./......O/......O/XXX...O", 3, id="win-before-block"),
]


def connect_four(text_or_moves: str, copies: int = 1) -> ConnectFour:
    if "/" in text_or_moves:
        board = text_or_moves.replace("/", "\n")
        return ConnectFour.from_text([board] * copies)
    return ConnectFour.from_moves([text_or_moves] * copies)


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize(("position", "expected"), CONNECT_FOUR_TACTICS)
def test_alphabeta_wins_and_blocks(depth: int, position: str, expected: int) -> None:
    game = connect_four(position, copies=8)
    actions = checked_act(AlphaBetaPlayer(depth, seed=0), game)
    assert (actions == expected).all(), actions


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_alphabeta_does_not_play_under_the_opponents_win(depth: int) -> None:
    # O's row of three one cell up wins in cols 2 and 6 once their bottom cells are filled:
    # X must fill neither
    board = "......./......./......./......./..OOO../X.XOX.X"
    game = connect_four(board, copies=30)
    actions = checked_act(AlphaBetaPlayer(depth, seed=5), game)
    assert not np.isin(actions, [1, 5]).any(), actions


@functools.cache
def exact_value(rows: int, cols: int, k: int, position: int, mask: int, moves: int) -> int:
    """Exhaustive negamax on a small board, scored like the alpha-beta player."""
    height = rows + 1
    best = -10 * WIN
    for c in range(cols):
        column = ((1 << rows) - 1) << (c * height)
        move = (mask + (1 << (c * height))) & column
        if not move:
            continue
        if has_line(position | move, line_shifts(rows), k):
            value = WIN - moves - 1
        elif moves + 1 == rows * cols:
            value = 0
        else:
            value = -exact_value(rows, cols, k, position ^ mask, mask | move, moves + 1)
        best = max(best, value)
    return best


@pytest.mark.parametrize(
    ("rows", "cols", "k", "min_plies"), [(4, 5, 3, 0), (5, 4, 3, 0), (4, 4, 4, 6)]
)
def test_alphabeta_to_the_end_matches_exhaustive_search(
    rows: int, cols: int, k: int, min_plies: int
) -> None:
    # with depth = the rest of the game, the search is exact: its best root value must be the
    # game-theoretic value (including how fast the win or loss comes) on every position
    game = ConnectFour(150, rows=rows, cols=cols, win_length=k)
    game = random_positions(game, 12, seed=7, min_plies=min_plies)
    board = bit_board(rows, cols, k)
    for g in range(game.num_envs):
        position, mask, moves = int(game.position[g]), int(game.mask[g]), int(game.moves[g])
        values = _Search(board).root_values(position, mask, moves, rows * cols - moves)
        assert max(values.values()) == exact_value(rows, cols, k, position, mask, moves)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_alphabeta_opens_in_the_centre(depth: int) -> None:
    # the centre column takes part in the most lines: the heuristic must see that
    actions = checked_act(AlphaBetaPlayer(depth, seed=0), ConnectFour(10))
    assert (actions == 3).all(), actions


def test_alphabeta_beats_random() -> None:
    result = match(ConnectFour, AlphaBetaPlayer(4, seed=1), RandomPlayer(seed=2), 50)
    assert result["wins"] >= 98, result


def test_deeper_alphabeta_beats_shallower() -> None:
    result = match(ConnectFour, AlphaBetaPlayer(4, seed=1), AlphaBetaPlayer(1, seed=2), 20)
    assert result["wins"] > result["losses"] + 10, result


def test_alphabeta_plays_other_board_shapes() -> None:
    make_game = functools.partial(ConnectFour, rows=5, cols=4, win_length=3)
    result = match(make_game, AlphaBetaPlayer(4, seed=1), RandomPlayer(seed=2), 20)
    assert result["wins"] >= 38, result


@pytest.mark.parametrize("depth", [0, -1, 2.5, True, "3", None])
def test_alphabeta_refuses_bad_depth(depth: Any) -> None:
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        AlphaBetaPlayer(depth)


def test_alphabeta_refuses_other_games() -> None:
    with pytest.raises(ValueError, match="only connect_four"):
        AlphaBetaPlayer(2).act(TicTacToe(2))


# --------------------------------------------------------------------------------------------
# rollout MCTS


def test_mcts_beats_random_at_connect_four() -> None:
    result = match(ConnectFour, RolloutMCTSPlayer(100, seed=1), RandomPlayer(seed=2), 100)
    assert result["wins"] >= 190, result


def test_mcts_never_loses_much_at_tictactoe() -> None:
    result = match(TicTacToe, RolloutMCTSPlayer(200, seed=1), RandomPlayer(seed=2), 100)
    assert result["losses"] <= 4 and result["wins"] >= 150, result


@pytest.mark.parametrize(
    ("position", "expected"),
    [CONNECT_FOUR_TACTICS[0].values, CONNECT_FOUR_TACTICS[2].values],
)
def test_mcts_takes_a_win_in_one(position: str, expected: int) -> None:
    game = connect_four(position, copies=20)
    actions = checked_act(RolloutMCTSPlayer(200, seed=0), game)
    assert (actions == expected).all(), actions


def test_mcts_takes_a_win_in_one_at_tictactoe() -> None:
    game = TicTacToe.from_text(["XX.\nOO.\n..."] * 20)
    actions = checked_act(RolloutMCTSPlayer(100, seed=0), game)
    assert (actions == 2).all(), actions


def test_mcts_uses_only_the_generic_interface() -> None:
    core = random_positions(ConnectFour(40), 20, seed=3)
    generic = GenericOnly(core)
    actions = RolloutMCTSPlayer(30, seed=9).act(generic)
    assert core.legal_mask()[np.arange(core.num_envs), actions].all()
    # the same search through the full core gives the same moves
    np.testing.assert_array_equal(actions, RolloutMCTSPlayer(30, seed=9).act(core))
    random_actions = RandomPlayer(seed=4).act(generic)
    assert core.legal_mask()[np.arange(core.num_envs), random_actions].all()


def test_mcts_handles_auto_reset_cores() -> None:
    # an auto-resetting core never shows `terminated`; the search must read game ends from step
    game = ConnectFour.from_moves(["445566"] * 4, auto_reset=True)  # X wins in col 3 or 7
    actions = checked_act(RolloutMCTSPlayer(100, seed=0), game)
    assert np.isin(actions, [2, 6]).all(), actions


@pytest.mark.parametrize("bad", [0, -3, 1.5, True])
def test_mcts_refuses_bad_simulation_counts(bad: Any) -> None:
    with pytest.raises(ValueError, match="num_simulations must be an integer >= 1"):
        RolloutMCTSPlayer(bad)


# --------------------------------------------------------------------------------------------
# the protocol: legality, no mutation, determinism, finished games


def all_players(game_name: str) -> list[Any]:
    """One constructor per player that plays ``game_name``: seed -> player."""
    makers: list[Any] = [RandomPlayer, functools.partial(RolloutMCTSPlayer, 20)]
    if game_name == "tictactoe":
        makers.append(PerfectTicTacToePlayer)
    else:
        makers += [functools.partial(AlphaBetaPlayer, 1), functools.partial(AlphaBetaPlayer, 3)]
    return makers


@pytest.mark.parametrize("game_name", ["tictactoe", "connect_four"])
def test_players_play_legal_moves_without_mutating(game_name: str) -> None:
    max_plies = 8 if game_name == "tictactoe" else 38  # down to nearly full boards
    game = random_positions(envs.make(game_name, 120), max_plies, seed=11)
    assert game.num_envs > 60
    for maker in all_players(game_name):
        checked_act(maker(seed=0), game)  # checks legality and an untouched game


@pytest.mark.parametrize("game_name", ["tictactoe", "connect_four"])
def test_players_are_deterministic_given_a_seed(game_name: str) -> None:
    game = random_positions(envs.make(game_name, 60), 6, seed=12)
    for maker in all_players(game_name):
        a, b, c = maker(seed=5), maker(seed=5), maker(seed=6)
        first = [a.act(game), a.act(game)]  # two calls: the rng advances the same way
        np.testing.assert_array_equal(first[0], b.act(game))
        np.testing.assert_array_equal(first[1], b.act(game))
        other = c.act(game)
        assert (other != first[0]).any() or (other != first[1]).any(), a.name


def test_players_refuse_finished_games() -> None:
    finished = TicTacToe.from_text("XXX\nOO.\n...")
    for player in (RandomPlayer(), PerfectTicTacToePlayer(), RolloutMCTSPlayer(5)):
        with pytest.raises(ValueError, match="is over"):
            player.act(finished)


@pytest.mark.parametrize("seed", [-1, 1.5, "0", None])
def test_players_refuse_bad_seeds(seed: Any) -> None:
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        RandomPlayer(seed)


# --------------------------------------------------------------------------------------------
# make_player


@pytest.mark.parametrize(
    ("spec", "game", "kind", "name"),
    [
        ("random", "connect_four", RandomPlayer, "random"),
        ("solver", "tictactoe", PerfectTicTacToePlayer, "solver"),
        ("perfect", "tictactoe", PerfectTicTacToePlayer, "solver"),
        ("alphabeta:4", "connect_four", AlphaBetaPlayer, "alphabeta:4"),
        ("mcts:200", "tictactoe", RolloutMCTSPlayer, "mcts:200"),
        ("mcts:50", "pettingzoo:go_v5", RolloutMCTSPlayer, "mcts:50"),
    ],
)
def test_make_player(spec: str, game: str, kind: type, name: str) -> None:
    player = make_player(spec, game, seed=3)
    assert isinstance(player, kind) and isinstance(player, Player)
    assert player.name == name and player.seed == 3


@pytest.mark.parametrize(
    ("spec", "game", "message"),
    [
        ("foo", "connect_four", "unknown player 'foo': choose random, solver, alphabeta"),
        ("random:3", "connect_four", "unknown player 'random:3'"),
        ("", "connect_four", "unknown player ''"),
        ("mcts:abc", "connect_four", "bad player 'mcts:abc': mcts needs an integer"),
        ("mcts", "connect_four", "bad player 'mcts': mcts needs an integer"),
        ("mcts:0", "connect_four", "bad player 'mcts:0'"),
        ("mcts:²", "connect_four", "bad player"),
        ("alphabeta:0", "connect_four", "bad player 'alphabeta:0': alphabeta needs an integer"),
        ("alphabeta:-2", "connect_four", "bad player 'alphabeta:-2'"),
        ("alphabeta", "connect_four", "bad player 'alphabeta'"),
        ("alphabeta:3", "tictactoe", "plays only connect_four, not 'tictactoe'"),
        ("solver", "connect_four", "plays only tictactoe, not 'connect_four'"),
    ],
)
def test_make_player_errors(spec: str, game: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_player(spec, game)


def test_player_specs_name_every_player() -> None:
    for word in ("random", "solver", "perfect", "alphabeta:<depth>", "mcts:<simulations>"):
        assert word in PLAYER_SPECS
