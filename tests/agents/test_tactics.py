"""Connect Four tactics counting: wins in one, forced blocks, gifts."""

from __future__ import annotations

import numpy as np
import pytest

from agents.players import AlphaBetaPlayer, RandomPlayer, Tactics, TacticsRecorder
from envs import ConnectFour, TicTacToe
from selfplay.cli import main

WIN = "112233"  # X on columns 1-3 of the bottom row, X to move: column 4 wins
BLOCK = "17273"  # the same threat, O to move: column 4 must be blocked
GIFT = "211327376"  # X on columns 1-3 of row 2, column 4 empty: O playing 4 hands X the line


def test_counts_each_situation_once_and_only_the_wrong_moves() -> None:
    game = ConnectFour.from_moves([WIN, WIN, BLOCK, BLOCK, GIFT, GIFT])
    tactics = Tactics()
    tactics.record(game, np.array([3, 6, 3, 4, 3, 4]))  # right, wrong, right, wrong, gift, safe
    assert tactics == Tactics(
        moves=6, wins_available=2, wins_missed=1, blocks_needed=2, blocks_missed=1, gifts=1
    )
    assert "wins in one taken 1/2, forced blocks made 1/2" in tactics.summary()


def test_alpha_beta_makes_no_tactical_mistake_and_random_does() -> None:
    from selfplay.arena import play_match

    searcher = TacticsRecorder(AlphaBetaPlayer(1, seed=0))
    random = TacticsRecorder(RandomPlayer(seed=1))
    play_match(lambda n: ConnectFour(n), searcher, random, 40)
    s, r = searcher.tactics, random.tactics
    assert s.wins_available > 0 and s.blocks_needed > 0
    assert (s.wins_missed, s.blocks_missed, s.gifts) == (0, 0, 0)
    assert r.blocks_missed > 0 and r.moves > 100


def test_refuses_other_games_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="connect_four only, got 'tictactoe'"):
        Tactics().record(TicTacToe(2), np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"actions must have shape \(2,\), got \(3,\)"):
        Tactics().record(ConnectFour(2), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"columns in \[0, 7\), got \[3, -1\]"):
        Tactics().record(ConnectFour(2), np.array([3, -1]))


def test_arena_prints_tactics(capsys) -> None:
    args = ["arena", "--game", "connect_four", "--a", "alphabeta:1", "--b", "random"]
    assert main([*args, "--games", "6", "--tactics"]) == 0
    out = capsys.readouterr().out
    assert "tactics of a (alphabeta:1)" in out and "tactics of b (random)" in out
    tictactoe = ["arena", "--game", "tictactoe", "--a", "random", "--b", "random"]
    assert main([*tictactoe, "--tactics"]) == 2
    assert "--tactics counts connect_four tactics only" in capsys.readouterr().err
