"""Tic-Tac-Toe scenarios from text boards and move strings."""

from __future__ import annotations

import numpy as np
import pytest

from envs import TicTacToe


@pytest.mark.parametrize(
    ("board", "cell"),
    [
        ("X X .\nO O .\n. . .", 3),  # row
        ("X O .\nX O .\n. . .", 7),  # column
        ("X O .\nO X .\n. . .", 9),  # diagonal
        ("O O X\n. X .\n. . .", 7),  # anti-diagonal
    ],
)
def test_x_completes_a_line(board: str, cell: int) -> None:
    game = TicTacToe.from_text(board)
    assert game.current_player()[0] == 0 and not game.terminated[0]
    rewards, terminated = game.step(np.array([cell - 1]))
    assert terminated[0] and rewards[0].tolist() == [1.0, -1.0] and game.winner[0] == 0


def test_draw_on_a_full_board() -> None:
    game = TicTacToe.from_moves("15297384")  # X: 1 2 7 8, O: 5 9 3 4, no line yet
    assert not game.terminated[0]
    rewards, terminated = game.step(np.array([5]))  # X takes cell 6: board full
    assert terminated[0] and rewards[0].tolist() == [0.0, 0.0] and game.winner[0] == -1
    assert game.render() == "X X O\nO O X\nX X O"


def test_occupied_cell_is_refused() -> None:
    game = TicTacToe.from_moves("5")
    with pytest.raises(
        ValueError,
        match=r"illegal move 4 in game 0 of tictactoe: legal actions are \[0, 1, 2, 3, 5",
    ):
        game.step(np.array([4]))
    with pytest.raises(ValueError, match="illegal move '5' at position 2 of '55'"):
        TicTacToe.from_moves("55")


def test_notation_and_observation() -> None:
    game = TicTacToe.from_moves("519")
    assert game.to_moves() == "519"
    planes = game.observation()[0]  # O to move: O's stone first
    assert planes[0].tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert planes[1].tolist() == [[0, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert game.tokens()[0].tolist() == [1, 0, 0, 0, 2, 0, 0, 0, 2]
    with pytest.raises(ValueError, match="malformed move '0'"):
        TicTacToe.from_moves("50")
