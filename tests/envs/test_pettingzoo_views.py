"""Our PettingZoo faces pass PettingZoo's own test suites, and report what the core says."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

import envs

VIEWS = [("connect_four", {}), ("tictactoe", {}), ("connect_four", {"rows": 5, "cols": 5})]


@pytest.mark.parametrize(("game", "options"), VIEWS)
def test_aec_view_passes_pettingzoo_api_test(game: str, options: dict) -> None:
    api_test(envs.aec_env(game, **options), num_cycles=500)


@pytest.mark.parametrize(("game", "options"), VIEWS)
def test_parallel_view_passes_parallel_api_test(game: str, options: dict) -> None:
    parallel_api_test(envs.parallel_env(game, **options), num_cycles=500)


@pytest.mark.parametrize(("game", "options"), VIEWS)
def test_views_pass_seed_tests(game: str, options: dict) -> None:
    seed_test(lambda: envs.aec_env(game, **options), num_cycles=300)
    parallel_seed_test(lambda: envs.parallel_env(game, **options), num_cycles=300)


def test_aec_game_matches_the_core() -> None:
    env = envs.aec_env("connect_four")
    env.reset(seed=0)
    for column in [3, 3, 4, 2, 5, 6]:  # X: 4 5 6 on the bottom row; O: 4 (on X), 3, 7
        obs, *_ = env.last()
        assert obs["action_mask"][column] == 1
        env.step(column)
    assert env.agent_selection == "player_0"
    obs, _reward, terminated, truncated, _ = env.last()
    assert not terminated and not truncated
    assert obs["observation"].shape == (6, 7, 2) and obs["observation"].dtype == np.int8
    # player_0's view: its own stones first
    assert obs["observation"][5, :, 0].tolist() == [0, 0, 0, 1, 1, 1, 0]
    assert obs["observation"][5, :, 1].tolist() == [0, 0, 1, 0, 0, 0, 1]
    other = env.observe("player_1")
    assert other["action_mask"].sum() == 0, "not player_1's turn"
    np.testing.assert_array_equal(other["observation"][..., 0], obs["observation"][..., 1])


def test_aec_rewards_and_termination() -> None:
    env = envs.aec_env("tictactoe")
    env.reset()
    for cell in [0, 3, 1, 4]:
        env.step(cell)
    env.step(2)  # X: 0 1 2
    assert env.terminations == {"player_0": True, "player_1": True}
    assert env.rewards == {"player_0": 1.0, "player_1": -1.0}
    _, reward, terminated, _, _ = env.last()
    assert terminated and reward == -1.0  # player_1 is to act and sees its loss
    env.step(None)
    _, reward, terminated, _, _ = env.last()
    assert reward == 1.0
    env.step(None)
    assert env.agents == []


def test_illegal_actions_are_refused() -> None:
    env = envs.aec_env("connect_four", render_mode="ansi")
    env.reset()
    with pytest.raises(ValueError, match="illegal action 7 for player_0: actions are 0..6"):
        env.step(7)
    for _ in range(6):
        env.step(0)
    with pytest.raises(ValueError, match="illegal move 0 in game 0"):
        env.step(0)
    assert env.render().count("X") == 3
    with pytest.raises(ValueError, match="unknown render_mode 'rgb'"):
        envs.aec_env("connect_four", render_mode="rgb")


def test_parallel_view_plays_only_the_movers_action() -> None:
    env = envs.parallel_env("tictactoe")
    observations, _ = env.reset()
    assert observations["player_1"]["action_mask"].sum() == 0
    _, rewards, terminations, _, _ = env.step({"player_0": 4, "player_1": 0})
    assert env.core.to_moves() == "5"
    assert rewards == {"player_0": 0.0, "player_1": 0.0} and not any(terminations.values())
    with pytest.raises(ValueError, match="no action for player_1"):
        env.step({"player_0": 0})
