"""Arena: seats alternate, results are per seat, openings are shared by each pair of games."""

from __future__ import annotations

import numpy as np
import pytest

import envs
from agents.players import make_player
from selfplay.arena import OPENING_PLIES, match_ratings, opening_plies_for, play_match


def make_connect_four(n: int):
    return envs.make("connect_four", n)


def test_seats_alternate_and_records_add_up() -> None:
    a = make_player("alphabeta:2", "connect_four", seed=0)
    b = make_player("random", "connect_four", seed=1)
    result = play_match(make_connect_four, a, b, 20)
    assert result.a_seat.tolist() == [0, 1] * 10
    first, second, total = result.record(0), result.record(1), result.record()
    assert first.games == second.games == 10
    assert total.wins == first.wins + second.wins and total.wins >= 18
    assert len(result.moves) == 20 and all(m for m in result.moves)
    # the stored move strings replay to the recorded outcomes
    replay = envs.ConnectFour.from_moves(result.moves)
    winners = replay.winner
    a_won = winners == result.a_seat
    assert (a_won == (result.outcomes > 0)).all()
    assert "alphabeta:2" in result.table() and "random" in match_ratings(result).table()


def test_openings_are_shared_by_each_pair_and_vary() -> None:
    a = make_player("alphabeta:2", "connect_four", seed=0)
    b = make_player("alphabeta:2", "connect_four", seed=0)
    result = play_match(make_connect_four, a, b, 40, opening_plies=2, seed=3)
    openings = [m[:2] for m in result.moves]
    assert all(openings[i] == openings[i + 1] for i in range(0, 40, 2))
    assert len(set(openings)) > 5


def test_two_deterministic_players_get_openings_and_others_do_not() -> None:
    from selfplay.api import TrainedPlayer

    class Fixed:
        deterministic = True

    assert TrainedPlayer.deterministic
    random_player = make_player("random", "connect_four")
    assert opening_plies_for(Fixed(), Fixed()) == OPENING_PLIES > 0
    assert opening_plies_for(Fixed(), random_player) == 0
    assert opening_plies_for(random_player, random_player) == 0


def test_bad_arguments() -> None:
    a = make_player("random", "connect_four")
    with pytest.raises(ValueError, match="num_games must be an integer >= 1, got 0"):
        play_match(make_connect_four, a, a, 0)
    with pytest.raises(ValueError, match="opening_plies must be an integer >= 0"):
        play_match(make_connect_four, a, a, 2, opening_plies=-1)

    class Cheater:
        name = "cheater"

        def act(self, game):
            return np.full(game.num_envs, 99)

    with pytest.raises(ValueError, match="player 'cheater' returned illegal action"):
        play_match(make_connect_four, Cheater(), a, 2)
