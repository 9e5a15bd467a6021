"""One conformance suite that every game passes: our cores and wrapped external PettingZoo envs."""

from __future__ import annotations

import numpy as np
import pytest

import envs

GAMES = {
    "connect_four": lambda n: envs.make("connect_four", n),
    "connect_four_5x4_k3": lambda n: envs.make("connect_four", n, rows=5, cols=4, win_length=3),
    "tictactoe": lambda n: envs.make("tictactoe", n),
    "pettingzoo:connect_four_v3": lambda n: envs.make("pettingzoo:connect_four_v3", n),
    "pettingzoo:tictactoe_v3": lambda n: envs.make("pettingzoo:tictactoe_v3", n),
}


def snapshot(game) -> tuple:
    return (game.legal_mask().copy(), game.current_player().copy(), game.terminated.copy())


@pytest.mark.parametrize("name", sorted(GAMES))
def test_random_games_follow_the_shared_rules(name: str) -> None:
    rng = np.random.default_rng(0)
    game = GAMES[name](24)
    previous_player = game.current_player().copy()
    assert (previous_player == 0).all(), "player 0 moves first"
    totals = np.zeros((24, 2))
    plies = 0
    while not game.terminated.all():
        live = ~game.terminated
        legal = game.legal_mask()
        assert legal[live].any(axis=1).all(), "a live game has a legal move"
        assert not legal[~live].any(), "a finished game has no legal move"
        actions = game.random_legal_actions(rng)
        assert legal[live, actions[live]].all()
        rewards, done = game.step(actions, where=live)
        plies += 1
        assert not done[~live].any()
        np.testing.assert_array_equal(rewards.sum(axis=1), 0.0)  # zero-sum
        assert not rewards[~done].any(), "rewards only on the step that ends a game"
        assert set(np.unique(rewards[done])) <= {-1.0, 0.0, 1.0}
        totals += rewards
        player = game.current_player()
        assert (player[live & ~done] == 1 - previous_player[live & ~done]).all(), "turns alternate"
        previous_player = player.copy()
    assert set(np.unique(totals)) <= {-1.0, 0.0, 1.0}
    winners = game.winner
    for g in range(24):
        if winners[g] >= 0:
            assert totals[g, winners[g]] == 1.0
        else:
            assert not totals[g].any()


@pytest.mark.parametrize("name", sorted(GAMES))
def test_bad_steps_are_refused_and_change_nothing(name: str) -> None:
    rng = np.random.default_rng(1)
    game = GAMES[name](4)
    for _ in range(3):
        game.step(game.random_legal_actions(rng))
    before = snapshot(game)
    illegal = game.random_legal_actions(rng)
    free = game.legal_mask()[1]
    if (~free).any():
        illegal[1] = int(np.flatnonzero(~free)[0])
        with pytest.raises(ValueError, match="illegal move"):
            game.step(illegal)
    with pytest.raises(ValueError, match="illegal (move|action)"):
        game.step(np.array([game.num_actions, 0, 0, 0]))
    with pytest.raises(ValueError, match="shape"):
        game.step(np.zeros(5, np.int64))
    after = snapshot(game)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    # finish game 0, then stepping it is refused
    while not game.terminated[0]:
        only = np.zeros(4, bool)
        only[0] = True
        game.step(game.random_legal_actions(rng), where=only)
    with pytest.raises(ValueError, match="game 0 is over"):
        game.step(game.random_legal_actions(rng))


@pytest.mark.parametrize("name", sorted(GAMES))
def test_clone_and_take_are_independent_copies(name: str) -> None:
    rng = np.random.default_rng(2)
    game = GAMES[name](6)
    for _ in range(2):
        game.step(game.random_legal_actions(rng))
    before = snapshot(game)
    copy = game.clone()
    copy.step(copy.random_legal_actions(rng))
    for a, b in zip(before, snapshot(game), strict=True):
        np.testing.assert_array_equal(a, b)
    subset = game.take(np.array([4, 1]))
    np.testing.assert_array_equal(subset.legal_mask(), game.legal_mask()[[4, 1]])
    np.testing.assert_array_equal(subset.observation(), game.observation()[[4, 1]])
    subset.step(subset.random_legal_actions(rng))
    for a, b in zip(before, snapshot(game), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [("connect_four", "pettingzoo:connect_four_v3"), ("tictactoe", "pettingzoo:tictactoe_v3")],
)
def test_same_results_as_pettingzoo_on_the_same_moves(ours: str, theirs: str) -> None:
    # Tic-Tac-Toe in PettingZoo numbers cells column by column; a transpose keeps every line a
    # line, so the same action numbers give the same results.
    rng = np.random.default_rng(3)
    a, b = envs.make(ours, 60), envs.make(theirs, 60)
    while not a.terminated.all():
        np.testing.assert_array_equal(a.terminated, b.terminated)
        if ours == "connect_four":
            np.testing.assert_array_equal(a.legal_mask(), b.legal_mask())
        live = ~a.terminated
        actions = a.random_legal_actions(rng)
        ra, _ = a.step(actions, where=live)
        rb, _ = b.step(actions, where=live)
        np.testing.assert_array_equal(ra, rb)
    assert b.terminated.all()
    np.testing.assert_array_equal(a.winner, b.winner)
    assert (a.winner >= 0).any() and (a.winner == 1).any()


@pytest.mark.parametrize("name", ["connect_four", "tictactoe"])
def test_a_batch_equals_its_games_one_by_one(name: str) -> None:
    rng = np.random.default_rng(4)
    batch = envs.make(name, 16)
    singles = [envs.make(name, 1) for _ in range(16)]
    while not batch.terminated.all():
        live = ~batch.terminated
        actions = batch.random_legal_actions(rng)
        rewards, done = batch.step(actions, where=live)
        for g in np.flatnonzero(live):
            r, d = singles[g].step(actions[g : g + 1])
            np.testing.assert_array_equal(r[0], rewards[g])
            assert d[0] == done[g]
    for g, single in enumerate(singles):
        assert single.position[0] == batch.position[g] and single.mask[0] == batch.mask[g]
        assert single.winner[0] == batch.winner[g]
        np.testing.assert_array_equal(single.observation()[0], batch.observation()[g])
        np.testing.assert_array_equal(single.tokens()[0], batch.tokens()[g])


def test_auto_reset_restarts_finished_games() -> None:
    rng = np.random.default_rng(5)
    game = envs.make("tictactoe", 32, auto_reset=True)
    finished = 0
    for _ in range(40):
        _rewards, done = game.step(game.random_legal_actions(rng))
        finished += int(done.sum())
        assert not game.terminated.any()
        assert (game.moves[done] == 0).all() and (game.mask[done] == 0).all()
    assert finished >= 32 * 40 // 9  # every game lasts at most 9 plies


def test_random_legal_actions_are_uniform() -> None:
    game = envs.ConnectFour.from_moves(["444444" + "111111"] * 7000)  # columns 1 and 4 full
    actions = game.random_legal_actions(np.random.default_rng(6))
    counts = np.bincount(actions, minlength=7)
    assert counts[0] == 0 and counts[3] == 0
    expected = 7000 / 5
    assert np.all(np.abs(counts[[1, 2, 4, 5, 6]] - expected) < 5 * np.sqrt(expected))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: envs.make("chess"), "unknown game 'chess': choose one of connect_four, tictactoe"),
        (lambda: envs.make("connect_four", 0), "num_envs must be an integer >= 1, got 0"),
        (lambda: envs.make("tictactoe", 2, rows=4), "unknown option"),
        (lambda: envs.make("pettingzoo:no_such_env_v0"), "cannot import PettingZoo env module"),
        (lambda: envs.make("connect_four", 2).reset(np.array([5])), "game indices must lie in"),
    ],
)
def test_bad_arguments(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("name", ["connect_four", "tictactoe"])
def test_symmetries_map_games_to_games(name: str) -> None:
    # Play random games; the same games played with every action permuted must end in the
    # same results, and their boards must be the permuted boards.
    rng = np.random.default_rng(7)
    game = envs.make(name, 32)
    symmetries = game.symmetries()
    assert len(symmetries) == {"connect_four": 2, "tictactoe": 8}[name]
    assert all((c == np.arange(len(c))).all() for c in symmetries[0]), "identity first"
    mirrored = [envs.make(name, 32) for _ in symmetries]
    inverse = [np.argsort(action_perm) for _, action_perm in symmetries]
    while not game.terminated.all():
        live = ~game.terminated
        actions = game.random_legal_actions(rng)
        game.step(actions, where=live)
        for other, inv in zip(mirrored, inverse, strict=True):
            other.step(np.where(live, inv[actions], 0), where=live)
    planes = game.observation().reshape(32, 2, -1)
    for other, (cell_perm, _) in zip(mirrored, symmetries, strict=True):
        np.testing.assert_array_equal(other.winner, game.winner)
        np.testing.assert_array_equal(
            other.observation().reshape(32, 2, -1), planes[:, :, cell_perm]
        )


def test_position_keys_identify_transpositions() -> None:
    a = envs.ConnectFour.from_moves(["1234", "3214", "1243"])
    keys = a.position_keys()
    assert keys[0] == keys[1] and keys[0] != keys[2]
