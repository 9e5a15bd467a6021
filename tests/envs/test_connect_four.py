"""Connect Four scenarios from text boards and move strings."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from envs import ConnectFour


def play(game: ConnectFour, column: int) -> tuple[np.ndarray, np.ndarray]:
    """Play a 1-based column in game 0."""
    return game.step(np.array([column - 1]))


@pytest.mark.parametrize(
    ("board", "column", "direction"),
    [
        (
            """
            . . . . . . .
            . . . . . . .
            . . . . . . .
            . . . . . . .
            O O O . . . .
            X X X . . . .
            """,
            4,
            "horizontal",
        ),
        (
            """
            . . . . . . .
            . . . . . . .
            . . . . . . .
            X . . . . . .
            X O . . . . .
            X O . . . . O
            """,
            1,
            "vertical",
        ),
        (
            """
            . . . . . . .
            . . . . . . .
            . . . . . . .
            . . X O . . .
            . X O O . . .
            X O X O X . .
            """,
            4,
            "diagonal /",
        ),
        (
            """
            . . . . . . .
            . . . . . . .
            . . . X . . .
            . . . O X . .
            . . . X O X .
            O . . O O X .
            """,
            7,
            "diagonal \\",
        ),
    ],
)
def test_x_wins_in_every_direction(board: str, column: int, direction: str) -> None:
    game = ConnectFour.from_text(board)
    assert game.current_player()[0] == 0, "X to move"
    assert not game.terminated[0]
    rewards, terminated = play(game, column)
    assert terminated[0], direction
    assert rewards[0].tolist() == [1.0, -1.0]
    assert game.winner[0] == 0
    assert not game.legal_mask()[0].any(), "a finished game has no legal moves"


def test_o_wins_and_rewards_are_for_o() -> None:
    game = ConnectFour.from_moves("1212121")  # X's fourth stone in column 1
    assert game.terminated[0] and game.winner[0] == 0
    game = ConnectFour.from_moves("1212325")
    assert not game.terminated[0] and game.current_player()[0] == 1
    rewards, terminated = game.step(np.array([1]))  # O's fourth stone in column 2
    assert terminated[0] and rewards[0].tolist() == [-1.0, 1.0] and game.winner[0] == 1


def test_no_line_through_the_sentinel_between_columns() -> None:
    # X's top two cells of column 1 and bottom two of column 2 are four consecutive bits but for
    # the sentinel between them; they are no line on the board.
    game = ConnectFour.from_text(
        """
        X . . . . . .
        X . . . . . .
        O . . . . . .
        O . . . . . .
        X X . . . . .
        O X . . . O O
        """
    )
    assert not game.terminated[0] and game.current_player()[0] == 0
    rewards, terminated = play(game, 3)
    assert not terminated[0] and rewards[0].tolist() == [0.0, 0.0]
    assert not game._is_win(game.player_stones(0))[0]


def test_full_board_draw() -> None:
    # a filled board with no four in a row but for the top cell of column 7
    board = """
        X O X O X O .
        X O X O X O X
        O X O X O X O
        O X O X O X O
        X O X O X O X
        X O X O X O X
    """
    game = ConnectFour.from_text(board)  # 21 X, 20 O: O to move
    assert not game.terminated[0] and game.current_player()[0] == 1
    assert game.legal_mask()[0].tolist() == [False] * 6 + [True]
    rewards, terminated = play(game, 7)
    assert terminated[0]
    assert rewards[0].tolist() == [0.0, 0.0]
    assert game.winner[0] == -1


def test_column_full_is_refused() -> None:
    game = ConnectFour.from_moves("444444")
    assert not game.legal_mask()[0, 3]
    assert game.legal_mask()[0].sum() == 6
    with pytest.raises(ValueError, match="illegal move 3 in game 0"):
        play(game, 4)
    batch = ConnectFour.from_moves(["444444", "1"])
    with pytest.raises(
        ValueError, match=r"illegal move 3 in game 0 .*legal actions are \[0, 1, 2, 4, 5, 6\]"
    ):
        batch.step(np.array([3, 3]))


def test_notation_round_trip() -> None:
    rng = np.random.default_rng(1)
    game = envs.make("connect_four", 64)
    while not game.terminated.all():
        game.step(game.random_legal_actions(rng), where=~game.terminated)
    strings = [game.to_moves(g) for g in range(64)]
    replayed = ConnectFour.from_moves(strings)
    assert [replayed.to_moves(g) for g in range(64)] == strings
    np.testing.assert_array_equal(replayed.position, game.position)
    np.testing.assert_array_equal(replayed.mask, game.mask)
    np.testing.assert_array_equal(replayed.winner, game.winner)
    assert ConnectFour.from_moves("4453").to_moves() == "4453"


def test_render_and_text_round_trip() -> None:
    game = ConnectFour.from_moves("4453")
    text = game.render()
    assert text.splitlines()[-1] == ". . O X X . ."
    assert text.splitlines()[-2] == ". . . O . . ."
    again = ConnectFour.from_text(text)
    assert again.position[0] == game.position[0] and again.mask[0] == game.mask[0]
    with pytest.raises(ValueError, match="move order is unknown"):
        again.to_moves()


@pytest.mark.parametrize(
    ("moves", "message"),
    [
        ("4458", "malformed move '8' at position 4 of '4458'"),
        ("44a", "malformed move 'a'"),
        ("0", "malformed move '0'"),
        ("1111111", "illegal move '1' at position 7"),
        ("1212121" + "3", "move 8 of '12121213' comes after the game ended"),
    ],
)
def test_malformed_move_strings(moves: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConnectFour.from_moves(moves)


def test_bad_text_boards() -> None:
    with pytest.raises(ValueError, match="floating"):
        ConnectFour.from_text("\n".join([". . . . . . ."] * 4 + ["X . . . . . .", ". . . . . . O"]))
    with pytest.raises(ValueError, match="X has as many stones as O or one more"):
        ConnectFour.from_text("\n".join([". . . . . . ."] * 5 + ["X X . . . . ."]))
    with pytest.raises(ValueError, match="6 rows of 7 cells"):
        ConnectFour.from_text(". . .")
    with pytest.raises(ValueError, match="unknown cell 'Z'"):
        ConnectFour.from_text("\n".join([". . . . . . ."] * 5 + ["Z . . . . . ."]))


def test_options_rows_cols_win_length() -> None:
    game = envs.make("connect_four", 1, rows=4, cols=5, win_length=3)
    assert game.num_actions == 5 and game.max_moves == 20
    assert game.observation().shape == (1, 2, 4, 5)
    small = ConnectFour.from_moves("1213", rows=4, cols=5, win_length=3)
    _rewards, terminated = small.step(np.array([3]))  # X: columns 1, 3... no line yet
    assert not terminated[0]
    win = ConnectFour.from_moves("11223", rows=4, cols=5, win_length=3)
    assert win.terminated[0] and win.winner[0] == 0
    for bad, message in (
        ({"rows": 0}, "rows must be an integer >= 2, got 0"),
        ({"cols": 10}, "cols must be at most 9, got 10"),
        ({"rows": 9, "cols": 7}, r"\(rows\+1\)\*cols <= 64"),
        ({"win_length": 8}, "win_length must be at most"),
        ({"depth": 3}, "unknown option"),
    ):
        with pytest.raises(ValueError, match=message):
            envs.make("connect_four", 1, **bad)


def test_observation_and_tokens_from_the_movers_view() -> None:
    game = ConnectFour.from_moves("445")  # X: 4, 5 on the bottom row; O on X's 4; O to move
    planes = game.observation()[0]  # (2, 6, 7), row 5 = bottom
    assert planes.dtype == np.float32
    assert planes[0].sum() == 1 and planes[0, 4, 3] == 1  # the mover's (O's) stone
    assert planes[1].sum() == 2 and planes[1, 5, 3] == 1 and planes[1, 5, 4] == 1
    tokens = game.tokens()[0].reshape(6, 7)
    assert tokens[4, 3] == 1 and tokens[5, 3] == 2 and tokens[5, 4] == 2
    assert (tokens == 0).sum() == 39
