"""Elo ratings fitted by Bradley–Terry maximum likelihood, with confidence intervals.

The model: player ``i`` has a rating ``r_i`` on the Elo scale and scores against ``j`` with
expected value

    P(i beats j) = 1 / (1 + 10 ** ((r_j - r_i) / 400)) = sigmoid(theta_i - theta_j),

where ``theta = r * ln(10) / 400`` is the same rating in natural (logit) units. A draw counts as
half a win and half a loss for each side, so a pair's data is just the points each side scored.
Ratings are only defined up to a common shift, so one player (the *anchor*, the random player by
default) is held fixed, or the ratings are centred on mean zero.

Usage::

    results = MatchResults()
    results.add("net_0040", "random", wins=95, draws=3, losses=2)
    results.add("net_0040", "mcts_200", wins=40, draws=10, losses=50)
    results.add("mcts_200", "random", wins=99, draws=0, losses=1)
    ratings = fit_elo(results)          # random anchored at 0
    print(ratings.table())
    ratings["net_0040"].ci_low, ratings["net_0040"].ci_high

`MatchResults` is a plain accumulator (``add``, ``add_outcomes``, ``update``, ``merge``) that
round-trips through JSON via ``to_dict`` / ``from_dict``; `fit_elo` returns a frozen `Ratings`.
Numpy only: the fit is a few Newton steps on a dense ``players x players`` system, which is
instantaneous for the few hundred players a league holds.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = [
    "ELO_PER_NAT",
    "MatchResults",
    "PlayerRating",
    "Ratings",
    "expected_score",
    "fit_elo",
]

# One natural-log unit of the logistic model, in Elo points: 400 / ln(10) ~ 173.7.
ELO_PER_NAT = 400.0 / math.log(10.0)

_FORMAT_VERSION = 1


def expected_score(ra: float | np.ndarray, rb: float | np.ndarray) -> float | np.ndarray:
    """Expected score of a player rated ``ra`` against one rated ``rb`` (Elo scale).

    ``1 / (1 + 10 ** ((rb - ra) / 400))``: 0.5 for equal ratings, ~0.76 for a 200-point edge,
    ~0.91 for 400 points. Works elementwise on arrays; returns a float for scalar inputs.
    """
    diff = (np.asarray(ra, dtype=np.float64) - np.asarray(rb, dtype=np.float64)) / ELO_PER_NAT
    # The tanh form of the logistic never overflows, unlike 1 / (1 + exp(-x)) for large |x|.
    p = 0.5 * (1.0 + np.tanh(0.5 * diff))
    return float(p) if p.ndim == 0 else p


def _check_player(role: str, name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{role} must be a non-empty string naming a player, got {name!r}")
    return name


def _check_count(role: str, value: object) -> float:
    """A game count: a finite real number >= 0 (fractions allowed, e.g. weighted games)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{role} must be a finite number >= 0, got {value!r}")
    x = float(value)
    if not math.isfinite(x) or x < 0:
        raise ValueError(f"{role} must be a finite number >= 0, got {value!r}")
    return x


def _json_number(x: float) -> int | float:
    # Whole counts go to JSON as integers, so checkpoints read "12", not "12.0".
    return int(x) if x.is_integer() else x


class MatchResults:
    """Pairwise game results between named players: wins, draws and losses of A against B.

    Each unordered pair is stored once under a canonical order (names sorted), so
    ``add("a", "b", 3, 1, 2)`` and ``add("b", "a", 2, 1, 3)`` record the same thing. Counts may
    be fractional (weighted games) but must be finite and non-negative. Adding a record with zero
    games changes nothing: only pairs that actually played are part of the comparison graph.
    """

    def __init__(self) -> None:
        # (a, b) with a < b  ->  [wins of a, draws, wins of b]
        self._pairs: dict[tuple[str, str], np.ndarray] = {}

    # ---- building -------------------------------------------------------------------------

    def add(self, a: str, b: str, wins: float = 0, draws: float = 0, losses: float = 0) -> None:
        """Record ``wins``, ``draws`` and ``losses`` of player ``a`` against player ``b``."""
        a = _check_player("player a", a)
        b = _check_player("player b", b)
        if a == b:
            raise ValueError(f"a player cannot play against itself: got a = b = {a!r}")
        w = _check_count(f"wins of {a!r} against {b!r}", wins)
        d = _check_count(f"draws of {a!r} against {b!r}", draws)
        l = _check_count(f"losses of {a!r} against {b!r}", losses)
        if w + d + l == 0:
            return
        key, record = ((a, b), (w, d, l)) if a < b else ((b, a), (l, d, w))
        if key not in self._pairs:
            self._pairs[key] = np.zeros(3, dtype=np.float64)
        self._pairs[key] += record

    def add_outcomes(self, a: str, b: str, outcomes: Iterable[float] | np.ndarray) -> None:
        """Record a batch of games from ``a``'s side: +1 a win, 0 a draw, -1 a loss.

        This is the reward convention of the game cores, so an evaluator can pass the reward
        column of a finished batch straight in.
        """
        x = np.asarray(outcomes, dtype=np.float64).ravel()
        bad = x[(x != 1.0) & (x != 0.0) & (x != -1.0)]
        if bad.size:
            raise ValueError(
                f"outcomes must be +1 (win), 0 (draw) or -1 (loss) from {a!r}'s side, "
                f"got {bad[0]!r}"
            )
        self.add(a, b, int(np.sum(x == 1.0)), int(np.sum(x == 0.0)), int(np.sum(x == -1.0)))

    def update(self, other: MatchResults) -> MatchResults:
        """Add every result of ``other`` into this accumulator (in place); returns ``self``."""
        if not isinstance(other, MatchResults):
            raise ValueError(f"can only merge MatchResults, got {type(other).__name__}")
        for (a, b), record in other._pairs.items():
            self.add(a, b, *record.tolist())
        return self

    def merge(self, *others: MatchResults) -> MatchResults:
        """A new accumulator holding this one's results plus all of ``others``' (summed)."""
        merged = self.copy()
        for other in others:
            merged.update(other)
        return merged

    def copy(self) -> MatchResults:
        clone = MatchResults()
        clone._pairs = {key: record.copy() for key, record in self._pairs.items()}
        return clone

    # ---- reading --------------------------------------------------------------------------

    @property
    def players(self) -> list[str]:
        """Every player that took part in at least one game, sorted by name."""
        return sorted({name for pair in self._pairs for name in pair})

    def pairs(self) -> Iterator[tuple[str, str, float, float, float]]:
        """``(a, b, wins_a, draws, losses_a)`` for each pair that played, in canonical order."""
        for (a, b), (w, d, l) in sorted(self._pairs.items()):
            yield a, b, float(w), float(d), float(l)

    def record(self, a: str, b: str) -> tuple[float, float, float]:
        """``(wins, draws, losses)`` of ``a`` against ``b``; zeros if they never met."""
        if a <= b:
            w, d, l = self._pairs.get((a, b), np.zeros(3))
            return float(w), float(d), float(l)
        l, d, w = self._pairs.get((b, a), np.zeros(3))
        return float(w), float(d), float(l)

    def games(self, player: str) -> float:
        """Total games ``player`` played."""
        return sum(float(r.sum()) for pair, r in self._pairs.items() if player in pair)

    def points(self, player: str) -> float:
        """Points ``player`` scored: a win is 1, a draw 1/2."""
        total = 0.0
        for (a, b), (w, d, l) in self._pairs.items():
            if player == a:
                total += w + 0.5 * d
            elif player == b:
                total += l + 0.5 * d
        return total

    @property
    def total_games(self) -> float:
        return sum(float(r.sum()) for r in self._pairs.values())

    def __len__(self) -> int:
        """Number of pairs that played."""
        return len(self._pairs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MatchResults):
            return NotImplemented
        return self._pairs.keys() == other._pairs.keys() and all(
            np.array_equal(r, other._pairs[k]) for k, r in self._pairs.items()
        )

    def __repr__(self) -> str:
        return (
            f"MatchResults({len(self.players)} players, {len(self)} pairs, "
            f"{_json_number(self.total_games)} games)"
        )

    # ---- JSON -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``{"version": 1, "pairs": [{"a", "b", "wins", "draws", "losses"}]}``.

        Each pair appears once, in canonical order (``a < b``), with ``a``'s wins and losses.
        """
        return {
            "version": _FORMAT_VERSION,
            "pairs": [
                {
                    "a": a,
                    "b": b,
                    "wins": _json_number(w),
                    "draws": _json_number(d),
                    "losses": _json_number(l),
                }
                for a, b, w, d, l in self.pairs()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchResults:
        """Inverse of `to_dict`; every record is validated as in `add`."""
        if not isinstance(data, Mapping) or "pairs" not in data:
            raise ValueError(f"expected a dict with a 'pairs' list (from to_dict), got {data!r}")
        version = data.get("version", _FORMAT_VERSION)
        if version != _FORMAT_VERSION:
            raise ValueError(
                f"unsupported MatchResults format version {version!r}; "
                f"this code reads {_FORMAT_VERSION}"
            )
        results = cls()
        for i, row in enumerate(data["pairs"]):
            keys = {"a", "b", "wins", "draws", "losses"}
            if not isinstance(row, Mapping) or set(row) != keys:
                raise ValueError(
                    f"pairs[{i}] must have exactly the keys {sorted(keys)}, got {row!r}"
                )
            results.add(row["a"], row["b"], row["wins"], row["draws"], row["losses"])
        return results


@dataclass(frozen=True)
class PlayerRating:
    """One player's fitted rating (Elo points) and the data behind it."""

    player: str
    rating: float
    """Maximum-likelihood (or, with a prior, maximum a posteriori) Elo rating."""
    stderr: float
    """Standard error of ``rating`` relative to the anchor (0 for the anchor itself)."""
    ci_low: float
    """Lower end of the confidence interval, ``rating - z * stderr``."""
    ci_high: float
    """Upper end of the confidence interval, ``rating + z * stderr``."""
    games: float
    """Games actually played (the prior's virtual draws are not counted)."""
    score: float
    """Fraction of the available points scored in those games (win 1, draw 1/2), in [0, 1]."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "player": self.player,
            "rating": self.rating,
            "stderr": self.stderr,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "games": _json_number(self.games),
            "score": self.score,
        }


@dataclass(frozen=True)
class Ratings:
    """The result of `fit_elo`: one `PlayerRating` per player, sorted by rating (best first)."""

    players: tuple[PlayerRating, ...]
    anchor: str | None
    """The player held fixed, or None when the ratings are centred on mean zero."""
    anchor_rating: float
    confidence: float
    """Coverage of each ``[ci_low, ci_high]`` interval, e.g. 0.95."""
    prior_draws: float
    iterations: int
    """Newton iterations the fit took."""
    covariance: np.ndarray = field(repr=False)
    """Covariance of the ratings (Elo points squared), rows/columns in the order of `names`."""

    @property
    def names(self) -> list[str]:
        return [p.player for p in self.players]

    def __getitem__(self, player: str) -> PlayerRating:
        for p in self.players:
            if p.player == player:
                return p
        raise KeyError(f"no rating for {player!r}; rated players: {self.names}")

    def __contains__(self, player: object) -> bool:
        return any(p.player == player for p in self.players)

    def __len__(self) -> int:
        return len(self.players)

    def rating(self, player: str) -> float:
        return self[player].rating

    def as_mapping(self) -> dict[str, float]:
        """``{player: rating}``."""
        return {p.player: p.rating for p in self.players}

    def difference(self, a: str, b: str) -> tuple[float, float]:
        """``(r_a - r_b, standard error of that difference)``, using the full covariance.

        Two snapshots' intervals can overlap while their difference is still clearly non-zero
        (their errors are correlated through shared opponents), so compare with this.
        """
        names = self.names
        i, j = names.index(self[a].player), names.index(self[b].player)
        c = self.covariance
        var = c[i, i] + c[j, j] - 2.0 * c[i, j]
        return self[a].rating - self[b].rating, math.sqrt(max(var, 0.0))

    def table(self) -> str:
        """A text table sorted by rating: player, Elo, ±CI (half width), games, score%."""
        header = ("player", "Elo", f"±CI{round(self.confidence * 100):d}", "games", "score%")
        rows = []
        for p in self.players:
            name = f"{p.player} (anchor)" if p.player == self.anchor else p.player
            rows.append(
                (
                    name,
                    f"{p.rating:.1f}",
                    f"{0.5 * (p.ci_high - p.ci_low):.1f}",
                    f"{_json_number(p.games)}",
                    f"{100.0 * p.score:.1f}",
                )
            )
        width = [max(len(r[k]) for r in [header, *rows]) for k in range(len(header))]
        lines = []
        for r in [header, *rows]:
            cells = [r[0].ljust(width[0])] + [
                c.rjust(w) for c, w in zip(r[1:], width[1:], strict=True)
            ]
            lines.append("  ".join(cells))
        lines.insert(1, "-" * len(lines[0]))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the covariance matrix is left out; it is re-fittable)."""
        return {
            "anchor": self.anchor,
            "anchor_rating": self.anchor_rating,
            "confidence": self.confidence,
            "prior_draws": self.prior_draws,
            "players": [p.to_dict() for p in self.players],
        }


def _reachable(start: int, neighbours: list[list[int]]) -> set[int]:
    seen = {start}
    stack = [start]
    while stack:
        for j in neighbours[stack.pop()]:
            if j not in seen:
                seen.add(j)
                stack.append(j)
    return seen


def fit_elo(
    results: MatchResults,
    anchor: str | None = "random",
    anchor_rating: float = 0.0,
    prior_draws: float = 0.1,
    confidence: float = 0.95,
    *,
    max_iter: int = 100,
    tol: float = 1e-9,
) -> Ratings:
    """Fit Elo ratings to pairwise results by Bradley–Terry maximum likelihood.

    The log-likelihood, with ``s_ij`` the points ``i`` scored against ``j`` (draws = 1/2) and
    ``n_ij = s_ij + s_ji`` their games, is ``L = sum_{i<j} s_ij log p_ij + s_ji log(1 - p_ij)``
    with ``p_ij = sigmoid(theta_i - theta_j)``. It is concave; its gradient is
    ``g_i = sum_j (s_ij - n_ij p_ij)`` (points scored minus points expected) and its Hessian is
    minus a weighted graph Laplacian with weights ``n_ij p_ij (1 - p_ij)``. Newton's method with
    step halving therefore converges, usually in under ten steps.

    Prior: a perfect record (say 20-0) makes the MLE infinite. So every pair that actually played
    gets ``prior_draws`` extra *virtual draws* (default 0.1, shared between the pair's two
    sides), which pulls each pair's observed score a little towards 1/2 and keeps every rating
    finite (10-0 gives 400 * log10(10.05 / 0.05) ~ 921 Elo, with a CI hundreds of points wide).
    It is a prior on rating *differences* only, so it does not fight the anchor. It costs a
    bias towards equal ratings that grows with how lopsided a pair is: 0.1 virtual draws move a
    76 % score over 100 games by ~0.25 Elo, but a 99 % score over 40 games by ~20 Elo (1.0
    would make that ~140 Elo, which is why the default is small). The virtual draws are not
    counted in ``games`` or ``score``. With ``prior_draws=0`` the plain MLE is fitted, and if it
    does not exist (some group of players never lost, counting draws as half losses, to
    everyone outside it) a ValueError names the players whose ratings would diverge.

    Limitation: when a player wins nearly every game against all its opponents (scores above
    ~97 %), the data barely bound its rating from above; the estimate is then pulled down by the
    prior and the normal-approximation interval is too narrow. Rate strong snapshots through a
    ladder of baselines (random, weak search, stronger search, ...) so that each pair plays
    games it can lose.

    Confidence intervals: the covariance of the ratings is the inverse of the observed Fisher
    information (minus the Hessian of the penalized log-likelihood at the optimum) over the free
    ratings, with the anchor held fixed; ``ci = rating ± z * stderr`` with ``z`` the two-sided
    normal quantile for ``confidence``. So an interval measures a player's uncertainty
    *relative to the anchor*; the anchor's own interval has zero width.

    Args:
        results: the games; every player in it is rated.
        anchor: the player whose rating is fixed at ``anchor_rating`` ("random" by default). If it
            is not among the players a ValueError names it and the players present. ``None``
            centres the ratings on mean ``anchor_rating`` instead; the covariance is then that of
            the centred ratings.
        anchor_rating: the anchor's rating (or the mean rating when ``anchor`` is None).
        prior_draws: virtual draws added to each pair that played (finite, >= 0).
        confidence: coverage of the intervals, strictly between 0 and 1.
        max_iter: Newton iterations before giving up with a RuntimeError.
        tol: convergence threshold on the largest Newton step, in Elo points.

    Raises:
        ValueError: no games, anchor absent, players not connected to the anchor by games (named),
            a non-existent MLE with ``prior_draws=0``, or a bad argument value.
    """
    if not isinstance(results, MatchResults):
        raise ValueError(f"results must be a MatchResults, got {type(results).__name__}")
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not 0.0 < confidence < 1.0
    ):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence!r}")
    prior = _check_count("prior_draws", prior_draws)
    if not isinstance(anchor_rating, numbers.Real) or not math.isfinite(anchor_rating):
        raise ValueError(f"anchor_rating must be a finite number, got {anchor_rating!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter!r}")

    names = results.players
    if not names:
        raise ValueError("no games to rate: the MatchResults is empty")
    if anchor is not None and anchor not in names:
        raise ValueError(
            f"anchor player {anchor!r} has no games in the results; players present: {names} "
            f"(play some games against {anchor!r}, pick one of these as anchor, or pass "
            f"anchor=None to centre the ratings on their mean)"
        )
    n = len(names)
    index = {name: k for k, name in enumerate(names)}
    # With anchor=None we solve with player 0 fixed, then shift to the mean afterwards.
    ref = index[anchor] if anchor is not None else 0

    pairs = list(results.pairs())
    I = np.array([index[a] for a, *_ in pairs], dtype=np.intp)  # (P,)
    J = np.array([index[b] for _, b, *_ in pairs], dtype=np.intp)  # (P,)
    rec = np.array([r[2:] for r in pairs], dtype=np.float64)  # (P, 3) wins_i, draws, wins_j
    s_ij = rec[:, 0] + 0.5 * rec[:, 1]  # (P,) points of i against j
    s_ji = rec[:, 2] + 0.5 * rec[:, 1]
    games_per_player = np.bincount(I, rec.sum(1), n) + np.bincount(J, rec.sum(1), n)
    points_per_player = np.bincount(I, s_ij, n) + np.bincount(J, s_ji, n)

    # Every player must be linked to the anchor by a chain of games, or its rating is unknowable.
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in zip(I.tolist(), J.tolist(), strict=True):
        neighbours[i].append(j)
        neighbours[j].append(i)
    cut_off = sorted(names[k] for k in set(range(n)) - _reachable(ref, neighbours))
    if cut_off:
        root = f"anchor {anchor!r}" if anchor is not None else f"player {names[ref]!r}"
        raise ValueError(
            f"players {cut_off} are not connected to {root} by any chain of games, so their "
            f"ratings cannot be compared; play games linking them to the rest"
        )

    s_ij = s_ij + 0.5 * prior
    s_ji = s_ji + 0.5 * prior
    if prior == 0.0:
        # The MLE exists iff the "scored a point against" digraph is strongly connected (a draw
        # scores both ways). Otherwise some group never lost to the rest and runs off to +inf.
        beats: list[list[int]] = [[] for _ in range(n)]
        beaten_by: list[list[int]] = [[] for _ in range(n)]
        edges = zip(I.tolist(), J.tolist(), s_ij.tolist(), s_ji.tolist(), strict=True)
        for i, j, a_pts, b_pts in edges:
            if a_pts > 0:
                beats[j].append(i)  # edge j -> i: "j lost points to i"
                beaten_by[i].append(j)
            if b_pts > 0:
                beats[i].append(j)
                beaten_by[j].append(i)
        core = _reachable(ref, beats) & _reachable(ref, beaten_by)
        diverging = sorted(names[k] for k in set(range(n)) - core)
        if diverging:
            raise ValueError(
                f"with prior_draws=0 the maximum-likelihood ratings are infinite: players "
                f"{diverging} have a perfect (or all-lost) record against the rest; pass "
                f"prior_draws > 0 (e.g. 0.1) to keep ratings finite"
            )
    n_ij = s_ij + s_ji
    free = np.array([k for k in range(n) if k != ref], dtype=np.intp)

    def log_likelihood(theta: np.ndarray) -> float:
        d = theta[I] - theta[J]
        # log sigmoid(x) = -logaddexp(0, -x), stable for large |x|.
        return float(-(s_ij @ np.logaddexp(0.0, -d)) - s_ji @ np.logaddexp(0.0, d))

    def grad_and_info(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = theta[I] - theta[J]
        p = 0.5 * (1.0 + np.tanh(0.5 * d))  # (P,) P(i beats j)
        resid = s_ij - n_ij * p  # (P,) points scored minus expected, from i's side
        grad = np.bincount(I, resid, n) - np.bincount(J, resid, n)  # (n,)
        w = n_ij * p * (1.0 - p)  # (P,) Fisher information of each pair's difference
        info = np.zeros((n, n))  # (n, n) weighted Laplacian = -Hessian
        np.add.at(info, (I, I), w)
        np.add.at(info, (J, J), w)
        np.add.at(info, (I, J), -w)
        np.add.at(info, (J, I), -w)
        return grad, info

    theta = np.zeros(n)  # natural units; theta[ref] stays 0 throughout
    ll = log_likelihood(theta)
    converged = False
    iterations = 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        grad, info = grad_and_info(theta)
        step = np.zeros(n)
        step[free] = np.linalg.solve(info[np.ix_(free, free)], grad[free])
        # Step halving: a full Newton step can overshoot when ratings are far apart; the
        # log-likelihood is concave, so some fraction of the step always increases it.
        t = 1.0
        while True:
            candidate = theta + t * step
            ll_new = log_likelihood(candidate)
            if ll_new >= ll - 1e-12 * abs(ll) or t < 1e-10:
                break
            t *= 0.5
        theta, ll = candidate, ll_new
        # Judge convergence by the full Newton step, which shrinks to zero at the optimum.
        if np.max(np.abs(step)) * ELO_PER_NAT < tol:
            converged = True
            break
    if not converged:
        raise RuntimeError(
            f"Elo fit did not converge in {max_iter} Newton iterations "
            f"(last Newton step {np.max(np.abs(step)) * ELO_PER_NAT:.3g} Elo); "
            f"try a larger prior_draws or max_iter"
        )

    _, info = grad_and_info(theta)
    cov = np.zeros((n, n))  # (n, n) in natural units; the anchor's row and column stay zero
    cov[np.ix_(free, free)] = np.linalg.inv(info[np.ix_(free, free)])
    ratings = theta * ELO_PER_NAT
    if anchor is None:
        # Centred ratings are P @ r with P = I - 11^T / n, the same whichever player was held.
        centre = np.eye(n) - 1.0 / n
        ratings = centre @ ratings
        cov = centre @ cov @ centre
    ratings = ratings + float(anchor_rating)
    if anchor is not None:
        ratings[ref] = float(anchor_rating)  # exactly, not up to round-off
    cov = cov * ELO_PER_NAT**2
    stderr = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    z = NormalDist().inv_cdf(0.5 + 0.5 * confidence)

    order = sorted(range(n), key=lambda k: (-ratings[k], names[k]))
    players = tuple(
        PlayerRating(
            player=names[k],
            rating=float(ratings[k]),
            stderr=float(stderr[k]),
            ci_low=float(ratings[k] - z * stderr[k]),
            ci_high=float(ratings[k] + z * stderr[k]),
            games=float(games_per_player[k]),
            score=float(points_per_player[k] / games_per_player[k]),
        )
        for k in order
    )
    return Ratings(
        players=players,
        anchor=anchor,
        anchor_rating=float(anchor_rating),
        confidence=float(confidence),
        prior_draws=prior,
        iterations=iterations,
        covariance=cov[np.ix_(order, order)],
    )
