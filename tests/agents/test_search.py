"""Batched search: exact evaluators find wins and blocks; trees stay consistent; batching is
invisible."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

import envs
from agents.search import BatchedMCTS, SearchConfig, SearchPlayer, sequential_halving_schedule
from envs.tictactoe import WIN_TABLE


@cache
def tictactoe_value(mover: int, opponent: int) -> int:
    """Exact minimax value for the player to move (+1 win, 0 draw, -1 loss)."""
    if WIN_TABLE[opponent]:
        return -1
    empty = [c for c in range(9) if not (mover | opponent) >> c & 1]
    if not empty:
        return 0
    return max(-tictactoe_value(opponent, mover | 1 << c) for c in empty)


class ExactTicTacToe:
    """Uniform priors, exact values: the search has to find the moves, the values are true."""

    def evaluate(self, game):
        legal = game.legal_mask()
        mover = game.position.astype(np.int64)
        opponent = (game.position ^ game.mask).astype(np.int64)
        value = [tictactoe_value(int(m), int(o)) for m, o in zip(mover, opponent, strict=True)]
        return np.where(legal, 0.0, -np.inf).astype(np.float32), np.array(value, np.float32)


class Uniform:
    """No knowledge at all: uniform priors and value 0."""

    def evaluate(self, game):
        legal = game.legal_mask()
        zeros = np.zeros(game.num_envs, np.float32)
        return np.where(legal, 0.0, -np.inf).astype(np.float32), zeros


ALGORITHMS = ["puct", "gumbel"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_exact_evaluator_takes_the_win_and_blocks(algorithm: str) -> None:
    # game 0: X (to move) wins at cell 3; game 1: X must block O's column at cell 8
    game = envs.TicTacToe.from_text(["X X .\nO O .\n. . .", "X O X\n. O .\n. . ."])
    # Gumbel's non-root rule explores uniform priors in a fixed order, so the opponent's reply
    # to a non-blocking move is found later than with PUCT: it needs a larger budget here.
    sims = {"puct": 16, "gumbel": 64}[algorithm]
    mcts = BatchedMCTS(ExactTicTacToe(), SearchConfig(num_simulations=sims, algorithm=algorithm))
    result = mcts.search(game)
    assert result.action.tolist() == [2, 7]
    assert result.value[0] > 0.5  # a won position
    assert result.policy[1, 7] == result.policy[1].max()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_terminal_values_alone_find_a_win_in_one(algorithm: str) -> None:
    # with no knowledge in the evaluator, the terminal state in the tree is what finds the win
    game = envs.ConnectFour.from_text(". . . . . . .\n" * 4 + "O O O . . . .\nX X X . . . .")
    result = BatchedMCTS(Uniform(), SearchConfig(num_simulations=32, algorithm=algorithm)).search(
        game
    )
    assert result.action[0] == 3
    assert result.q[0, 3] == 1.0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_visit_counts_and_policy_targets_are_consistent(algorithm: str) -> None:
    rng = np.random.default_rng(0)
    game = envs.make("connect_four", 12)
    for _ in range(5):
        game.step(game.random_legal_actions(rng))
    sims = 24
    result = BatchedMCTS(
        Uniform(), SearchConfig(num_simulations=sims, algorithm=algorithm), 1
    ).search(game, add_noise=True, temperature=1.0)
    legal = game.legal_mask()
    np.testing.assert_array_equal(result.visits.sum(axis=1), sims)  # one root edge per simulation
    assert not result.visits[~legal].any() and not result.policy[~legal].any()
    np.testing.assert_allclose(result.policy.sum(axis=1), 1.0, rtol=1e-5)
    assert legal[np.arange(12), result.action].all()
    if algorithm == "puct":
        np.testing.assert_allclose(result.policy, result.visits / sims, rtol=1e-6)
    assert np.all(np.abs(result.value) <= 1.0)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_batch_gives_the_same_result_as_its_games_one_by_one(algorithm: str) -> None:
    rng = np.random.default_rng(2)
    game = envs.make("tictactoe", 6)
    for _ in range(3):
        game.step(game.random_legal_actions(rng))
    config = SearchConfig(num_simulations=20, algorithm=algorithm)
    batch = BatchedMCTS(ExactTicTacToe(), config).search(game)
    for g in range(6):
        single = BatchedMCTS(ExactTicTacToe(), config).search(game.take(np.array([g])))
        np.testing.assert_array_equal(single.visits[0], batch.visits[g])
        np.testing.assert_allclose(single.policy[0], batch.policy[g], rtol=1e-6)
        np.testing.assert_allclose(single.q[0], batch.q[g], rtol=1e-6)


def test_search_does_not_change_the_game() -> None:
    game = envs.ConnectFour.from_moves(["44", "1234"])
    before = (game.position.copy(), game.mask.copy(), game.moves.copy())
    BatchedMCTS(Uniform(), SearchConfig(num_simulations=8)).search(game)
    for a, b in zip(before, (game.position, game.mask, game.moves), strict=True):
        np.testing.assert_array_equal(a, b)


def test_exact_search_player_never_loses_tictactoe_to_random() -> None:
    from agents.players import RandomPlayer
    from selfplay.arena import play_match

    player = SearchPlayer(ExactTicTacToe(), SearchConfig(num_simulations=16), name="exact")
    result = play_match(lambda n: envs.make("tictactoe", n), player, RandomPlayer(seed=0), 60)
    assert result.record().losses == 0


def test_sequential_halving_schedule() -> None:
    schedule = sequential_halving_schedule(4, 16)
    # two phases: 4 actions x 2 visits, then 2 actions x 4 visits
    assert schedule.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert len(sequential_halving_schedule(16, 7)) == 7
    assert sequential_halving_schedule(1, 3).tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_simulations": 0}, "num_simulations must be >= 1, got 0"),
        ({"algorithm": "alphabeta"}, "unknown search algorithm 'alphabeta'"),
        ({"dirichlet_fraction": 1.5}, "dirichlet_fraction must be in"),
    ],
)
def test_bad_search_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SearchConfig(**kwargs)


def test_finished_games_are_refused() -> None:
    game = envs.TicTacToe.from_moves(["14253", "1"])
    with pytest.raises(ValueError, match="game 0 is over"):
        BatchedMCTS(Uniform()).search(game)


def test_search_on_an_auto_reset_core_sees_the_game_end() -> None:
    # self-play cores restart finished games; the search's copies must not
    game = envs.ConnectFour.from_text(
        ". . . . . . .\n" * 4 + "O O O . . . .\nX X X . . . .", auto_reset=True
    )
    result = BatchedMCTS(Uniform(), SearchConfig(num_simulations=32, algorithm="puct")).search(game)
    assert result.action[0] == 3 and result.q[0, 3] == 1.0
    assert game.auto_reset
