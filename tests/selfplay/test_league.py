"""Tests for selfplay.league: snapshots, opponent sampling, PFSP, roles, payoff, SPRT, state."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from selfplay.league import League, LeagueConfig, Snapshot, sprt, sprt_bounds, sprt_llr
from selfplay.ratings import expected_score


def tiny_weights(seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"w": torch.randn(3, 2, generator=g), "b": torch.randn(3, generator=g)}


def league_with(names_roles: list[tuple[str, str]], **config) -> League:
    league = League(LeagueConfig(**config))
    for k, (name, role) in enumerate(names_roles):
        league.add_snapshot(name, tiny_weights(k), role=role, step=100 * k)
    return league


def sample_games(rng: np.random.Generator, n: int, elo: float, draw: float = 0.2) -> np.ndarray:
    """``[wins, draws, losses]`` of ``n`` games by a player ``elo`` points stronger.

    Draws take ``draw`` of the probability, half from each side, so the score stays the model's.
    """
    s = expected_score(elo, 0.0)
    return rng.multinomial(n, [s - draw / 2, draw, 1.0 - s - draw / 2])


# ---- snapshots ----------------------------------------------------------------------------


def test_snapshot_is_unchanged_by_further_training():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    league = League()
    snap = league.add_snapshot("main_0001", net.state_dict(), step=1)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        net(torch.randn(16, 4)).pow(2).mean().backward()
        opt.step()
    # the network did change (in place), the snapshot did not
    assert not torch.equal(net.state_dict()["0.weight"], before["0.weight"])
    for key, value in before.items():
        assert torch.equal(snap.weights[key], value)
        assert not snap.weights[key].requires_grad
        assert snap.weights[key].data_ptr() != net.state_dict()[key].data_ptr()
    # a module can be given directly; the mapping itself is read-only
    snap2 = league.add_snapshot("main_0002", net, step=2)
    assert torch.equal(snap2.weights["0.weight"], net.state_dict()["0.weight"])
    with pytest.raises(TypeError):
        snap2.weights["0.weight"] = torch.zeros(1)  # type: ignore[index]
    with pytest.raises(AttributeError):
        snap2.step = 7  # type: ignore[misc]
    # the frozen weights load back into a network
    net.load_state_dict(snap.weights)
    assert torch.equal(net.state_dict()["2.bias"], before["2.bias"])


def test_add_snapshot_refuses_duplicates_and_bad_input():
    league = League()
    league.add_snapshot("a", tiny_weights(0))
    with pytest.raises(ValueError, match="'a'"):
        league.add_snapshot("a", tiny_weights(1))
    with pytest.raises(ValueError, match="role"):
        league.add_snapshot("b", tiny_weights(1), role="coach")
    with pytest.raises(ValueError, match="'/'"):
        league.add_snapshot("x/y", tiny_weights(1))
    with pytest.raises(ValueError, match="tensors"):
        league.add_snapshot("c", {"w": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="non-empty"):
        Snapshot(name="d", role="main", step=0, weights={})
    assert league.names == ["a"]


def test_max_snapshots_drops_oldest_non_gated():
    league = league_with([("m0", "main"), ("m1", "main")], max_snapshots=3)
    league.promote("m0")
    for k in range(2, 6):
        league.add_snapshot(f"m{k}", tiny_weights(k), step=k)
    # m0 is gated and stays; the rest keep the newest
    assert league.names == ["m0", "m4", "m5"]
    # results of dropped snapshots stay in the payoff table
    league.record("m1", "m0", 1, 0, 0)
    assert league.payoff("m1", "m0") == pytest.approx(2 / 3)


# ---- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latest": 0.8, "past": 0.3}, "sum to 1"),
        ({"latest": 1.2, "past": -0.2}, ">= 0"),
        ({"latest": float("nan"), "past": 0.2}, ">= 0"),
        ({"pfsp_weighting": "soft"}, "hard"),
        ({"pfsp_exponent": 0}, "pfsp_exponent"),
        ({"max_snapshots": 0}, "max_snapshots"),
        ({"max_snapshots": True}, "max_snapshots"),
        ({"main_exploiter_targets": 0}, "main_exploiter_targets"),
        ({"payoff_prior": -1}, "payoff_prior"),
    ],
)
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LeagueConfig(**kwargs)


def test_bad_shares_message_names_values():
    with pytest.raises(ValueError) as info:
        LeagueConfig(latest=0.5, past=0.2, pfsp=0.2)
    assert "0.5" in str(info.value) and "0.2" in str(info.value)


# ---- sampling -----------------------------------------------------------------------------


def test_sampling_frequencies_match_the_mix():
    league = league_with([("m0", "main"), ("m1", "main"), ("m2", "main"), ("m3", "main")])
    rng = np.random.default_rng(1)
    n = 20_000
    draws = [league.sample_opponent("live", rng) for _ in range(n)]
    counts = {name: draws.count(name) for name in league.names}
    # 80 % latest, 20 % uniform over the 3 past snapshots
    for name, p in {"m3": 0.8, "m0": 0.2 / 3, "m1": 0.2 / 3, "m2": 0.2 / 3}.items():
        se = math.sqrt(p * (1 - p) / n)
        assert abs(counts[name] / n - p) < 4 * se, (name, counts[name] / n, p)


def test_latest_is_the_newest_main_and_learner_is_excluded():
    league = league_with([("m0", "main"), ("m1", "main"), ("x0", "main_exploiter")])
    names, probs = league.opponent_distribution("live")
    assert names == ["m0", "m1", "x0"]
    np.testing.assert_allclose(probs, [0.1, 0.8, 0.1])
    # a learner recorded under a snapshot's name never plays itself
    names, probs = league.opponent_distribution("m1")
    assert names == ["m0", "x0"]
    np.testing.assert_allclose(probs, [0.8, 0.2])
    # one candidate only: it gets everything
    solo = league_with([("m0", "main")])
    assert solo.opponent_distribution("live")[1].tolist() == [1.0]
    with pytest.raises(ValueError, match="no opponents"):
        solo.sample_opponent("m0", np.random.default_rng(0))
    with pytest.raises(ValueError, match="Generator"):
        league.sample_opponent("live", 3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("weighting", "formula"),
    [
        ("hard", lambda p: (1 - p) ** 3),
        ("variance", lambda p: p * (1 - p)),
        ("linear", lambda p: 1 - p),
    ],
)
def test_pfsp_weights_follow_the_formulas(weighting, formula):
    league = league_with(
        [("m0", "main"), ("m1", "main"), ("m2", "main")],
        latest=0.0,
        past=0.0,
        pfsp=1.0,
        pfsp_weighting=weighting,
        pfsp_exponent=3.0,
    )
    league.record("live", "m0", wins=8, draws=2, losses=0)  # p = (8 + 1 + 1) / 12
    league.record("live", "m1", wins=1, draws=0, losses=5)  # p = (1 + 1) / 8
    p = np.array([10 / 12, 2 / 8, 0.5])  # m2 never played: prior mean 1/2
    expected = formula(p) / formula(p).sum()
    weights = league.pfsp_weights("live", ["m0", "m1", "m2"])
    np.testing.assert_allclose(weights, expected, rtol=1e-12)
    # with pfsp = 1 the sampling distribution is exactly these weights
    np.testing.assert_allclose(league.opponent_distribution("live")[1], expected, rtol=1e-12)
    # and the draws follow them
    rng = np.random.default_rng(2)
    n = 6000
    draws = [league.sample_opponent("live", rng) for _ in range(n)]
    for name, q in zip(["m0", "m1", "m2"], expected, strict=True):
        assert abs(draws.count(name) / n - q) < 4 * math.sqrt(q * (1 - q) / n)


def test_hard_pfsp_prefers_opponents_the_learner_loses_to():
    league = league_with([("m0", "main"), ("m1", "main")], pfsp_weighting="hard")
    league.record("live", "m0", wins=20)
    league.record("live", "m1", losses=20)
    w = league.pfsp_weights("live", ["m0", "m1"])
    assert w[1] > 0.99
    assert w[0] == pytest.approx((1 / 22) ** 2 / ((1 / 22) ** 2 + (21 / 22) ** 2))


def test_mix_with_pfsp_share_adds_up():
    league = league_with(
        [("m0", "main"), ("m1", "main"), ("m2", "main")], latest=0.5, past=0.2, pfsp=0.3
    )
    league.record("live", "m0", losses=10)
    names, probs = league.opponent_distribution("live")
    pf = league.pfsp_weights("live", names)
    np.testing.assert_allclose(probs, [0.1 + 0.3 * pf[0], 0.1 + 0.3 * pf[1], 0.5 + 0.3 * pf[2]])
    assert probs.sum() == pytest.approx(1.0)


# ---- roles --------------------------------------------------------------------------------


def test_role_pools():
    league = league_with(
        [("m0", "main"), ("x0", "main_exploiter"), ("m1", "main"), ("L0", "league_exploiter")],
        main_exploiter_targets=1,
    )
    everyone = ["m0", "x0", "m1", "L0"]
    assert league.opponents_for("main") == everyone
    assert league.opponents_for("league_exploiter") == everyone
    assert league.opponents_for("league_exploiter", learner="L0") == ["m0", "x0", "m1"]
    assert league.opponents_for("main_exploiter") == ["m1"]
    league.add_snapshot("m2", tiny_weights(9))
    assert league.opponents_for("main_exploiter") == ["m2"]
    wide = league_with([("m0", "main"), ("x0", "main_exploiter"), ("m1", "main")],
                       main_exploiter_targets=2)  # fmt: skip
    assert wide.opponents_for("main_exploiter") == ["m0", "m1"]
    with pytest.raises(ValueError, match="role"):
        league.opponents_for("coach")


def test_exploiters_sample_from_their_pools():
    league = league_with(
        [("m0", "main"), ("m1", "main"), ("x0", "main_exploiter")], pfsp_weighting="linear"
    )
    rng = np.random.default_rng(3)
    seen = {league.sample_opponent("x_live", rng, role="main_exploiter") for _ in range(200)}
    assert seen == {"m1"}
    league.record("L_live", "m0", wins=9, losses=1)  # easy: rarely picked by PFSP
    names, probs = league.opponent_distribution("L_live", role="league_exploiter")
    np.testing.assert_allclose(probs, league.pfsp_weights("L_live", names))
    assert probs[0] < probs[1] == probs[2]


# ---- payoff and Elo -----------------------------------------------------------------------


def test_payoff_table_and_matrix():
    league = league_with([("m0", "main"), ("m1", "main")])
    league.record("m1", "m0", wins=6, draws=2, losses=2)
    league.record("m0", "m1", wins=1, draws=0, losses=1)  # accumulates, seen from m0's side
    league.record("m1", "random", wins=9, draws=0, losses=1)
    assert league.results.record("m1", "m0") == (7.0, 2.0, 3.0)
    assert league.payoff("m1", "m0") == pytest.approx((7 + 1 + 1) / 14)
    assert league.payoff("m0", "m1") == pytest.approx(1 - (7 + 1 + 1) / 14)
    assert league.payoff("m0", "random") == 0.5  # never met
    names, m = league.payoff_matrix()
    assert names == ["m0", "m1", "random"]
    np.testing.assert_allclose(m + m.T, np.ones((3, 3)))
    assert m[1, 2] == pytest.approx(10 / 12)
    assert np.all(np.diag(m) == 0.5)


def test_ratings_are_fitted_from_the_payoff_table():
    league = league_with([("a", "main"), ("b", "main")])
    rng = np.random.default_rng(4)
    truth = {"random": 0.0, "a": 200.0, "b": 400.0}
    for x, y in [("a", "random"), ("b", "random"), ("b", "a")]:
        league.record(x, y, *sample_games(rng, 2000, truth[x] - truth[y], draw=0.0).tolist())
    ratings = league.ratings()
    assert ratings.anchor == "random" and ratings.rating("random") == 0.0
    for name in ("a", "b"):
        r = ratings[name]
        assert r.ci_low < truth[name] < r.ci_high, (name, r)
    # without "random" the ratings are centred on mean zero
    other = league_with([("a", "main"), ("b", "main")])
    other.record("b", "a", wins=76, losses=24)
    centred = other.ratings()
    assert centred.anchor is None
    assert centred.rating("a") + centred.rating("b") == pytest.approx(0.0, abs=1e-9)
    assert centred.rating("b") - centred.rating("a") == pytest.approx(200.0, abs=5.0)


# ---- SPRT ---------------------------------------------------------------------------------


def test_sprt_llr_normal_approximation_hand_computed():
    # 60 W, 20 D, 20 L: mean 0.7, variance (60*.09 + 20*.04 + 20*.49)/100 = 0.16.
    # elo1 = 400 log10(3) gives s1 = 0.75; s0 = 0.5.
    # LLR = 100 * 0.25 * (1.4 - 1.25) / (2 * 0.16) = 11.71875
    elo1 = 400 * math.log10(3)
    llr = sprt_llr(60, 20, 20, 0.0, elo1, method="normal")
    assert llr == pytest.approx(11.71875, rel=1e-12)


def test_sprt_llr_gsprt_is_walds_coin_test_without_draws():
    elo1 = 400 * math.log10(3)  # s1 = 3/4
    expected = 60 * math.log(0.75 / 0.5) + 40 * math.log(0.25 / 0.5)
    assert sprt_llr(60, 0, 40, 0.0, elo1) == pytest.approx(expected, rel=1e-9)


def test_gsprt_matches_the_normal_approximation_over_many_games():
    for w, d, l in [(520, 300, 480), (3000, 2500, 2900), (400, 100, 420)]:
        exact = sprt_llr(w, d, l, 0.0, 10.0)
        approx = sprt_llr(w, d, l, 0.0, 10.0, method="normal")
        assert exact == pytest.approx(approx, rel=0.02, abs=0.02), (w, d, l)


def test_sprt_bounds_and_continue_on_few_games():
    lower, upper = sprt_bounds(0.05, 0.05)
    assert lower == pytest.approx(math.log(0.05 / 0.95))
    assert upper == pytest.approx(math.log(0.95 / 0.05))
    assert sprt(0, 0, 0) == "continue"
    assert sprt(5, 1, 0) == "continue"
    assert sprt(3, 0, 0) == "continue"
    assert sprt(2, 3, 4) == "continue"
    # a perfect record is finite and eventually convincing (Wald: 10 log(s1 / s0) > 2.94)
    assert math.isfinite(sprt_llr(10, 0, 0, 0.0, 35.0))
    assert sprt(10, 0, 0, elo1=400 * math.log10(3)) == "accept"


def run_sprt(rng: np.random.Generator, elo: float, chunk: int = 10, cap: int = 20_000) -> str:
    total = np.zeros(3)
    while total.sum() < cap:
        total += sample_games(rng, chunk, elo)
        decision = sprt(*total.tolist(), elo0=0.0, elo1=35.0)
        if decision != "continue":
            return decision
    return "continue"


def test_sprt_accepts_stronger_and_rejects_equal_players():
    rng = np.random.default_rng(5)
    strong = [run_sprt(rng, 200.0) for _ in range(20)]
    equal = [run_sprt(rng, 0.0) for _ in range(20)]
    assert strong.count("accept") == 20
    # alpha = 5 %: more than 4 false accepts in 20 would have probability < 0.3 %
    assert equal.count("reject") >= 16 and "continue" not in equal


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"elo0": 10.0, "elo1": 5.0}, "elo1"),
        ({"alpha": 0.0}, "alpha"),
        ({"beta": 1.5}, "beta"),
        ({"alpha": 0.6, "beta": 0.5}, "alpha \\+ beta"),
    ],
)
def test_sprt_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sprt(10, 0, 5, **kwargs)
    with pytest.raises(ValueError, match="wins"):
        sprt(-1, 0, 5)


def test_promote_if_stronger_gates_on_sprt():
    league = league_with([("m0", "main"), ("m1", "main"), ("m2", "main")], max_snapshots=3)
    with pytest.raises(ValueError, match="incumbent"):
        league.promote_if_stronger("m1")
    league.promote("m0")
    assert league.best == "m0"
    league.record("m1", "m0", wins=3, draws=1, losses=2)
    assert league.promote_if_stronger("m1") == "continue"
    assert league.best == "m0"
    league.record("m1", "m0", wins=300, draws=100, losses=100)
    assert league.promote_if_stronger("m1") == "accept"
    assert league.best == "m1" and league.gated == ["m0", "m1"]
    league.record("m2", "m1", wins=200, draws=100, losses=200)
    assert league.promote_if_stronger("m2") == "reject"
    assert league.best == "m1"
    history = league.promotions
    assert [h["decision"] for h in history] == ["promoted", "accept", "reject"]
    assert history[1]["wins"] == 303 and history[1]["llr"] > math.log(19)
    # gated snapshots survive trimming; the non-gated m2 goes first
    league.add_snapshot("m3", tiny_weights(7))
    assert league.names == ["m0", "m1", "m3"]


def test_gated_only_league_samples_promoted_snapshots_only():
    league = league_with([("m0", "main"), ("m1", "main"), ("m2", "main")], gated_only=True)
    with pytest.raises(ValueError, match="no opponents"):
        league.sample_opponent("main", np.random.default_rng(0))  # nothing promoted yet
    league.promote("m0")
    league.record("m1", "m0", wins=300, draws=100, losses=100)
    assert league.promote_if_stronger("m1") == "accept"
    assert league.opponents_for("main", "main") == ["m0", "m1"]
    rng = np.random.default_rng(1)
    drawn = {league.sample_opponent("main", rng) for _ in range(200)}
    assert drawn == {"m0", "m1"}  # m2, never promoted, is never met
    # the flag survives the checkpoint round trip; exploiters keep their own pools
    meta, tensors = league.state_dict()
    again = League.from_state_dict(json.loads(json.dumps(meta)), tensors)
    assert again.config.gated_only and again.opponents_for("main", "main") == ["m0", "m1"]
    assert "m2" in league.opponents_for("league_exploiter", "x")
    # the AlphaZero engine's mix (the live network is "latest"): the best is drawn too
    az = league_with([("m0", "main"), ("m1", "main"), ("m2", "main")], latest=0.0, past=1.0,
                     gated_only=True)  # fmt: skip
    az.promote("m0")
    az.promote("m1")
    assert az.opponent_distribution("main")[0] == ["m0", "m1"]
    assert np.allclose(az.opponent_distribution("main")[1], [0.5, 0.5])
    with pytest.raises(ValueError, match="gated_only must be True or False, got 1"):
        LeagueConfig(gated_only=1)


# ---- persistence --------------------------------------------------------------------------


def test_state_round_trip_gives_identical_sampling_and_tensors():
    league = league_with(
        [("m0", "main"), ("x0", "main_exploiter"), ("m1", "main"), ("L0", "league_exploiter")],
        latest=0.4,
        past=0.2,
        pfsp=0.4,
        pfsp_weighting="variance",
    )
    league.record("live", "m0", wins=5, draws=1, losses=2)
    league.record("live", "x0", wins=1, draws=0, losses=7)
    league.record("m1", "m0", wins=30, draws=5, losses=10)
    league.promote("m0")
    league.promote_if_stronger("m1")
    meta, tensors = league.state_dict()
    assert set(tensors) == {f"league/{n}/{p}" for n in league.names for p in ("w", "b")}
    meta = json.loads(json.dumps(meta))  # must be JSON-able
    restored = League.from_state_dict(meta, {k: v.clone() for k, v in tensors.items()})

    assert restored.config == league.config
    assert restored.names == league.names and restored.gated == league.gated
    assert restored.best == league.best and restored.promotions == league.promotions
    assert restored.results == league.results
    for name in league.names:
        a, b = league.snapshot(name), restored.snapshot(name)
        assert (a.role, a.step) == (b.role, b.step)
        assert list(a.weights) == list(b.weights)
        assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    for role in ("main", "main_exploiter", "league_exploiter"):
        r1, r2 = np.random.default_rng(11), np.random.default_rng(11)
        seq1 = [league.sample_opponent("live", r1, role=role) for _ in range(300)]
        seq2 = [restored.sample_opponent("live", r2, role=role) for _ in range(300)]
        assert seq1 == seq2
    assert len(set(seq1)) > 1 or role == "main_exploiter"


def test_from_state_dict_refuses_inconsistent_input():
    league = league_with([("m0", "main"), ("m1", "main")])
    meta, tensors = league.state_dict()
    missing = {k: v for k, v in tensors.items() if not k.startswith("league/m1/")}
    with pytest.raises(ValueError, match="'m1'.*missing"):
        League.from_state_dict(meta, missing)
    with pytest.raises(ValueError, match="belong to no snapshot"):
        League.from_state_dict(meta, {**tensors, "league/ghost/w": torch.zeros(1)})
    with pytest.raises(ValueError, match="version"):
        League.from_state_dict({**meta, "version": 99}, tensors)
    with pytest.raises(ValueError, match="unknown league config keys"):
        League.from_state_dict({**meta, "config": {**meta["config"], "lates": 1.0}}, tensors)
    with pytest.raises(ValueError, match="gated"):
        League.from_state_dict({**meta, "gated": ["nobody"]}, tensors)
    bad_entry = {**meta, "snapshots": [{"name": "m0"}]}
    with pytest.raises(ValueError, match="snapshots\\[0\\]"):
        League.from_state_dict(bad_entry, tensors)
    with pytest.raises(ValueError, match="lacks"):
        League.from_state_dict({"version": 1}, tensors)
