"""Tests for selfplay.ratings: Bradley–Terry Elo fit, priors, intervals, bad input, JSON."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from selfplay.ratings import (
    ELO_PER_NAT,
    MatchResults,
    Ratings,
    expected_score,
    fit_elo,
)

TRUE_ELO = {"random": 0.0, "A": 200.0, "B": 400.0, "C": 800.0}


def sample_round_robin(
    rng: np.random.Generator,
    games_per_pair: int,
    true_elo: dict[str, float] = TRUE_ELO,
    draw_share: float = 0.0,
) -> MatchResults:
    """Play every pair ``games_per_pair`` times under the Bradley–Terry model.

    Draws take ``draw_share * min(p, 1 - p)`` of the probability, split evenly between the win
    and loss sides, so the expected score stays exactly ``p`` (what the model predicts).
    """
    results = MatchResults()
    for a, b in itertools.combinations(true_elo, 2):
        p = expected_score(true_elo[a], true_elo[b])
        p_draw = draw_share * min(p, 1.0 - p)
        probs = [p - p_draw / 2, p_draw, 1.0 - p - p_draw / 2]
        wins, draws, losses = rng.multinomial(games_per_pair, probs)
        results.add(a, b, int(wins), int(draws), int(losses))
    return results


# ---- expected_score ----------------------------------------------------------------------


def test_expected_score_matches_elo_formula():
    assert expected_score(0.0, 0.0) == 0.5
    assert expected_score(400.0, 0.0) == pytest.approx(10 / 11)
    assert expected_score(0.0, 400.0) == pytest.approx(1 / 11)
    ra = np.array([0.0, 200.0, 5000.0])
    p = expected_score(ra, 0.0)
    assert isinstance(p, np.ndarray)
    np.testing.assert_allclose(p, 1 / (1 + 10 ** (-ra / 400)))
    # no overflow for absurd gaps
    assert expected_score(-1e6, 1e6) == 0.0


# ---- recovering known strengths ----------------------------------------------------------


def test_recovers_known_elos_with_draws():
    rng = np.random.default_rng(1234)
    results = sample_round_robin(rng, games_per_pair=400, draw_share=0.4)
    ratings = fit_elo(results)
    assert ratings.names == ["C", "B", "A", "random"]
    for name, truth in TRUE_ELO.items():
        r = ratings[name]
        assert r.ci_low <= r.ci_high
        assert abs(r.rating - truth) <= 3 * r.stderr + 1e-9, (name, r, truth)
        if name != "random":
            assert 5 < r.stderr < 100  # a real, finite uncertainty
    assert ratings["random"].rating == 0.0
    assert ratings["random"].stderr == 0.0
    assert ratings["random"].games == 3 * 400
    assert ratings.iterations < 30


def test_interval_coverage_is_close_to_nominal():
    # Over many synthetic tournaments the 90 % intervals must contain the truth about 90 % of
    # the time: this checks the Fisher-information variances, not just the point estimates.
    rng = np.random.default_rng(7)
    hits = total = 0
    for _ in range(150):
        ratings = fit_elo(sample_round_robin(rng, 200), confidence=0.9, prior_draws=0.5)
        for name in ("A", "B", "C"):
            r = ratings[name]
            hits += r.ci_low <= TRUE_ELO[name] <= r.ci_high
            total += 1
    coverage = hits / total
    assert 0.84 <= coverage <= 0.96, coverage


def test_interval_width_shrinks_like_one_over_sqrt_games():
    rng = np.random.default_rng(99)
    small = fit_elo(sample_round_robin(rng, 250, draw_share=0.3))
    large = fit_elo(sample_round_robin(rng, 1000, draw_share=0.3))
    for name in ("A", "B", "C"):
        w_small = small[name].ci_high - small[name].ci_low
        w_large = large[name].ci_high - large[name].ci_low
        assert 0.4 < w_large / w_small < 0.6, (name, w_small, w_large)


def test_confidence_level_sets_z():
    rng = np.random.default_rng(3)
    results = sample_round_robin(rng, 100)
    r95 = fit_elo(results, confidence=0.95)["B"]
    r68 = fit_elo(results, confidence=0.6827)["B"]
    assert r95.rating == r68.rating
    assert (r95.ci_high - r95.rating) / r95.stderr == pytest.approx(1.959964, abs=1e-5)
    assert (r68.ci_high - r68.rating) / r68.stderr == pytest.approx(1.0, abs=1e-3)


# ---- exact small cases -------------------------------------------------------------------


def test_two_players_plain_mle_is_the_logit_of_the_score():
    results = MatchResults()
    results.add("A", "random", wins=30, draws=20, losses=10)  # score 40 / 60
    r = fit_elo(results, prior_draws=0)["A"]
    assert r.rating == pytest.approx(400 * math.log10(40 / 20), abs=1e-6)
    # Fisher information of n games at score p: n p (1 - p) per squared natural unit.
    assert r.stderr == pytest.approx(ELO_PER_NAT / math.sqrt(60 * (2 / 3) * (1 / 3)), rel=1e-6)
    assert r.score == pytest.approx(40 / 60)
    assert r.games == 60


def test_perfect_record_stays_finite_with_prior():
    results = MatchResults()
    results.add("A", "random", wins=10)
    ratings = fit_elo(results)  # default: 0.1 virtual draws per pair
    a = ratings["A"]
    assert math.isfinite(a.rating) and math.isfinite(a.stderr)
    assert a.rating == pytest.approx(400 * math.log10(10.05 / 0.05), abs=1e-6)
    assert a.ci_high - a.ci_low > 1000  # ten games say little about how much stronger A is
    stronger_prior = fit_elo(results, prior_draws=1.0)["A"]
    assert stronger_prior.rating == pytest.approx(400 * math.log10(10.5 / 0.5), abs=1e-6)
    assert a.score == 1.0  # virtual draws are not reported as games
    assert a.games == 10


def test_perfect_record_without_prior_raises_naming_the_player():
    results = MatchResults()
    results.add("A", "random", wins=10, losses=5)
    results.add("C", "A", wins=10)
    results.add("C", "random", wins=10)
    with pytest.raises(ValueError, match=r"prior_draws=0.*\['C'\]"):
        fit_elo(results, prior_draws=0)
    assert math.isfinite(fit_elo(results, prior_draws=1.0)["C"].rating)


def test_anchor_is_exact_and_shifts_everything():
    rng = np.random.default_rng(5)
    results = sample_round_robin(rng, 100, draw_share=0.2)
    base = fit_elo(results)
    assert base["random"].rating == 0.0
    shifted = fit_elo(results, anchor_rating=1000.0)
    assert shifted["random"].rating == 1000.0
    for name in TRUE_ELO:
        assert shifted[name].rating == pytest.approx(base[name].rating + 1000.0, abs=1e-6)
        assert shifted[name].stderr == pytest.approx(base[name].stderr, rel=1e-9)
    # Another anchor: differences are unchanged.
    by_a = fit_elo(results, anchor="A")
    assert by_a["A"].rating == 0.0 and by_a["A"].stderr == 0.0
    assert by_a["C"].rating - by_a["B"].rating == pytest.approx(
        base["C"].rating - base["B"].rating, abs=1e-6
    )


def test_anchor_none_centres_on_mean():
    rng = np.random.default_rng(6)
    results = sample_round_robin(rng, 100)
    centred = fit_elo(results, anchor=None)
    base = fit_elo(results)
    ratings = [p.rating for p in centred.players]
    assert np.mean(ratings) == pytest.approx(0.0, abs=1e-9)
    mean_base = np.mean([p.rating for p in base.players])
    for name in TRUE_ELO:
        assert centred[name].rating == pytest.approx(base[name].rating - mean_base, abs=1e-6)
        assert centred[name].stderr > 0  # nobody is pinned
    # Differences and their errors do not depend on the choice of anchor.
    d_c, se_c = centred.difference("C", "A")
    d_b, se_b = base.difference("C", "A")
    assert d_c == pytest.approx(d_b, abs=1e-6)
    assert se_c == pytest.approx(se_b, rel=1e-6)


def test_symmetric_results_give_equal_ratings():
    results = MatchResults()
    results.add("A", "random", wins=30, draws=5, losses=10)
    results.add("B", "random", wins=30, draws=5, losses=10)
    results.add("A", "B", wins=7, draws=6, losses=7)
    ratings = fit_elo(results)
    assert ratings["A"].rating == pytest.approx(ratings["B"].rating, abs=1e-9)
    assert ratings["A"].stderr == pytest.approx(ratings["B"].stderr, rel=1e-9)
    assert ratings["A"].rating > 100


def test_draws_only_give_equal_ratings():
    results = MatchResults()
    results.add("A", "random", draws=20)
    results.add("B", "A", draws=40)
    ratings = fit_elo(results, prior_draws=0)
    for name in ("A", "B", "random"):
        assert ratings[name].rating == pytest.approx(0.0, abs=1e-9)
        assert ratings[name].score == 0.5
    assert ratings["B"].stderr > ratings["A"].stderr > 0  # B is one link further from random


def test_difference_uses_correlation():
    results = MatchResults()
    results.add("A", "random", wins=60, losses=40)
    results.add("B", "random", wins=60, losses=40)
    results.add("A", "B", wins=500, losses=500)
    ratings = fit_elo(results, prior_draws=0)
    diff, se = ratings.difference("A", "B")
    assert diff == pytest.approx(0.0, abs=1e-9)
    # A and B are tied mostly by their own 1000 games, far more precise than each vs random.
    independent = math.hypot(ratings["A"].stderr, ratings["B"].stderr)
    assert se < 0.5 * independent


# ---- structural errors -------------------------------------------------------------------


def test_missing_anchor_names_anchor_and_players():
    results = MatchResults()
    results.add("A", "B", wins=3, losses=2)
    with pytest.raises(ValueError, match=r"'random'.*\['A', 'B'\]"):
        fit_elo(results)
    assert fit_elo(results, anchor="B")["B"].rating == 0.0


def test_disconnected_players_are_named():
    results = MatchResults()
    results.add("A", "random", wins=3, losses=2)
    results.add("X", "Y", wins=3, losses=2)
    with pytest.raises(ValueError, match=r"\['X', 'Y'\].*not connected"):
        fit_elo(results)


def test_empty_results_raise():
    with pytest.raises(ValueError, match="empty"):
        fit_elo(MatchResults())


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wins", "draws", "losses", "pattern"),
    [
        (-1, 0, 0, "wins.*>= 0.*-1"),
        (0, -2.5, 0, "draws.*>= 0.*-2.5"),
        (0, 0, float("nan"), "losses.*finite.*nan"),
        (float("inf"), 0, 0, "wins.*finite.*inf"),
        ("3", 0, 0, "wins.*number.*'3'"),
    ],
)
def test_bad_counts_raise(wins, draws, losses, pattern):
    results = MatchResults()
    with pytest.raises(ValueError, match=pattern):
        results.add("A", "B", wins, draws, losses)
    assert len(results) == 0  # nothing half-recorded


def test_self_play_pair_and_bad_names_raise():
    results = MatchResults()
    with pytest.raises(ValueError, match=r"itself.*'A'"):
        results.add("A", "A", wins=1)
    with pytest.raises(ValueError, match="non-empty string"):
        results.add("", "B", wins=1)
    with pytest.raises(ValueError, match="non-empty string"):
        results.add("A", 3, wins=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("confidence", [0.0, 1.0, -0.5, 1.5, float("nan"), True])
def test_bad_confidence_raises(confidence):
    results = MatchResults()
    results.add("A", "random", wins=3, losses=2)
    with pytest.raises(ValueError, match=r"confidence.*between 0 and 1"):
        fit_elo(results, confidence=confidence)


def test_bad_prior_and_anchor_rating_raise():
    results = MatchResults()
    results.add("A", "random", wins=3, losses=2)
    with pytest.raises(ValueError, match=r"prior_draws.*>= 0.*-1"):
        fit_elo(results, prior_draws=-1)
    with pytest.raises(ValueError, match=r"anchor_rating.*finite.*inf"):
        fit_elo(results, anchor_rating=float("inf"))


# ---- accumulator -------------------------------------------------------------------------


def test_add_is_order_independent_and_accumulates():
    one, two = MatchResults(), MatchResults()
    one.add("A", "B", wins=3, draws=1, losses=2)
    one.add("A", "B", wins=1)
    two.add("B", "A", wins=2, draws=1, losses=4)
    assert one == two
    assert one.record("A", "B") == (4.0, 1.0, 2.0)
    assert one.record("B", "A") == (2.0, 1.0, 4.0)
    assert one.record("A", "Z") == (0.0, 0.0, 0.0)
    assert one.games("A") == 7 and one.points("A") == 4.5 and one.points("B") == 2.5
    one.add("A", "C", 0, 0, 0)  # zero games: nothing recorded
    assert one.players == ["A", "B"]


def test_add_outcomes_counts_rewards():
    results = MatchResults()
    results.add_outcomes("A", "B", np.array([1, 1, 0, -1, 1]))
    assert results.record("A", "B") == (3.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"\+1.*0.*-1.*0\.5"):
        results.add_outcomes("A", "B", [1, 0.5])


def test_merge_equals_adding_everything():
    rng = np.random.default_rng(11)
    first, second = sample_round_robin(rng, 50), sample_round_robin(rng, 70)
    together = MatchResults()
    for part in (first, second):
        for a, b, w, d, l in part.pairs():
            together.add(a, b, w, d, l)
    before = first.to_dict()
    merged = first.merge(second)
    assert merged == together
    assert first.to_dict() == before  # merge does not modify its inputs
    assert first.update(second) is first
    assert first == together
    assert merged.total_games == 6 * 120


def test_to_dict_from_dict_round_trip_through_json():
    rng = np.random.default_rng(12)
    results = sample_round_robin(rng, 30, draw_share=0.5)
    results.add("A", "D", wins=1.5, draws=0.25)  # fractional (weighted) counts survive too
    text = json.dumps(results.to_dict())
    back = MatchResults.from_dict(json.loads(text))
    assert back == results
    assert back is not results
    assert fit_elo(back).as_mapping() == fit_elo(results).as_mapping()


def test_from_dict_rejects_bad_data():
    with pytest.raises(ValueError, match="pairs"):
        MatchResults.from_dict({"games": []})
    with pytest.raises(ValueError, match="version 99"):
        MatchResults.from_dict({"version": 99, "pairs": []})
    with pytest.raises(ValueError, match=r"pairs\[0\].*keys"):
        MatchResults.from_dict({"version": 1, "pairs": [{"a": "A", "b": "B", "wins": 1}]})
    with pytest.raises(ValueError, match=r"losses.*-3"):
        MatchResults.from_dict(
            {"pairs": [{"a": "A", "b": "B", "wins": 1, "draws": 0, "losses": -3}]}
        )


# ---- Ratings output ----------------------------------------------------------------------


def test_table_lists_every_player_sorted_by_rating():
    rng = np.random.default_rng(13)
    ratings = fit_elo(sample_round_robin(rng, 100))
    text = ratings.table()
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["player", "Elo"]
    assert "games" in lines[0] and "score%" in lines[0] and "±CI95" in lines[0]
    body = lines[2:]
    assert [line.split()[0] for line in body] == ["C", "B", "A", "random"]
    assert "(anchor)" in body[-1]
    c = ratings["C"]
    assert f"{c.rating:.1f}" in body[0]
    assert f"{(c.ci_high - c.ci_low) / 2:.1f}" in body[0]
    assert f"{100 * c.score:.1f}" in body[0]


def test_ratings_to_dict_is_json_ready():
    rng = np.random.default_rng(14)
    ratings = fit_elo(sample_round_robin(rng, 60))
    assert isinstance(ratings, Ratings)
    data = json.loads(json.dumps(ratings.to_dict()))
    assert data["anchor"] == "random" and data["confidence"] == 0.95
    assert [p["player"] for p in data["players"]] == ratings.names
    c = data["players"][0]
    assert c["player"] == "C"
    assert c["rating"] == ratings["C"].rating
    assert c["ci_low"] < c["rating"] < c["ci_high"]
    assert c["games"] == 180


def test_unknown_player_lookup_names_the_rated_players():
    results = MatchResults()
    results.add("A", "random", wins=3, losses=2)
    ratings = fit_elo(results)
    assert "A" in ratings and "Z" not in ratings
    with pytest.raises(KeyError, match="'Z'"):
        ratings["Z"]


def test_default_prior_barely_moves_an_informative_lopsided_record():
    # A strong snapshot against random: 99 % over 300 games. The default prior must not pull it
    # in by more than a small fraction of its standard error (1.0 virtual draw per pair would).
    results = MatchResults()
    results.add("A", "random", wins=297, losses=3)
    mle = fit_elo(results, prior_draws=0)["A"]
    default = fit_elo(results)["A"]
    assert mle.rating == pytest.approx(400 * math.log10(99), abs=1e-6)
    assert 0 < mle.rating - default.rating < 0.1 * mle.stderr
    assert mle.rating - fit_elo(results, prior_draws=1.0)["A"].rating > 0.25 * mle.stderr
