"""The league: frozen opponents, prioritized fictitious self-play, exploiters, payoff, gating.

A `League` holds immutable `Snapshot` s of networks (weights frozen at the moment they were
added), a payoff table of game results between named players (snapshots, the live learners and
fixed baselines such as "random"), and the promotion history of SPRT-gated snapshots.

Opponent sampling follows AlphaStar's league in a reduced form. Three roles:

- ``"main"``: the main agent. Its opponent is drawn from a mix (`LeagueConfig`): the *latest*
  main snapshot (plain self-play), a *past* snapshot drawn uniformly (fictitious self-play), or
  any snapshot weighted by prioritized fictitious self-play (*PFSP*).
- ``"main_exploiter"``: plays only the latest main snapshot(s), to find the main agent's
  weaknesses; its own snapshots then join the main agent's pool.
- ``"league_exploiter"``: PFSP against the whole league, to find strategies no one handles.

PFSP weights each candidate opponent ``j`` by ``f(p_j)``, with ``p_j`` the estimated probability
that the learner beats ``j`` (a Beta(a, a) prior on the payoff table:
``p = (wins + draws / 2 + a) / (games + 2a)``):

    hard:      f(p) = (1 - p) ** k      focus on the opponents the learner loses to
    variance:  f(p) = p (1 - p)         focus on opponents of about equal strength
    linear:    f(p) = 1 - p

Gating: `sprt` runs a sequential probability ratio test on a candidate's results against the
incumbent (H0: Elo difference ``elo0`` against H1: ``elo1``); `League.promote_if_stronger`
promotes the candidate (new `League.best`, never dropped from the league) only when it accepts.

Usage::

    league = League(LeagueConfig(latest=0.5, past=0.2, pfsp=0.3))
    league.add_snapshot("main_0001", net.state_dict(), role="main", step=1000)
    opponent = league.sample_opponent("main", rng)           # name of a snapshot
    net_opponent.load_state_dict(league.snapshot(opponent).weights)
    league.record("main", opponent, wins=30, draws=5, losses=15)
    league.ratings().table()
    meta, tensors = league.state_dict()                      # JSON-able dict + tensors
    league = League.from_state_dict(meta, tensors)

Numpy and the standard library only; torch just to hold the weights.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch

from selfplay.ratings import MatchResults, Ratings, expected_score, fit_elo

__all__ = [
    "PFSP_WEIGHTINGS",
    "ROLES",
    "League",
    "LeagueConfig",
    "Snapshot",
    "sprt",
    "sprt_bounds",
    "sprt_llr",
]

ROLES = ("main", "main_exploiter", "league_exploiter")
PFSP_WEIGHTINGS = ("hard", "variance", "linear")
SPRTDecision = Literal["accept", "reject", "continue"]

_FORMAT_VERSION = 1
LEAGUE_PREFIX = "league/"
"""Key prefix of snapshot tensors in `League.state_dict` (and so in a checkpoint's model)."""


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_name(what: str, name: object) -> str:
    # "/" separates snapshot from parameter in the flattened tensor keys of `state_dict`.
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"{what} must be a non-empty string without '/', got {name!r}")
    return name


@dataclass(frozen=True)
class LeagueConfig:
    """How a league samples opponents and keeps snapshots."""

    latest: float = 0.8
    """Share of the main agent's games against the latest main snapshot (plain self-play)."""
    past: float = 0.2
    """Share against a past snapshot drawn uniformly (every snapshot but the latest main one)."""
    pfsp: float = 0.0
    """Share against a snapshot drawn by PFSP weights over the whole league."""
    pfsp_weighting: str = "hard"
    """PFSP weighting of ``p = P(learner wins)``: "hard" (1-p)^k, "variance" p(1-p), "linear"."""
    pfsp_exponent: float = 2.0
    """The exponent ``k`` of the "hard" weighting (> 0); larger focuses on the hardest foes."""
    max_snapshots: int | None = 50
    """Most snapshots kept; beyond it the oldest non-gated ones are dropped (None: keep all)."""
    main_exploiter_targets: int = 1
    """How many of the latest main snapshots a main exploiter plays against (>= 1)."""
    payoff_prior: float = 1.0
    """Beta(a, a) prior of the win-rate estimate: ``(wins + draws/2 + a) / (games + 2a)``."""
    gated_only: bool = False
    """The main agent meets only promoted (`gated`) snapshots: a snapshot joins its opponent
    pool once `promote` or an SPRT (`promote_if_stronger`) has promoted it."""

    def __post_init__(self) -> None:
        shares = {"latest": self.latest, "past": self.past, "pfsp": self.pfsp}
        if not all(_is_real(v) and math.isfinite(v) and v >= 0 for v in shares.values()):
            raise ValueError(f"league shares must be finite numbers >= 0, got {shares}")
        if abs(sum(shares.values()) - 1.0) > 1e-9:
            raise ValueError(
                f"league shares latest + past + pfsp must sum to 1, got {shares} "
                f"(sum {sum(shares.values())!r})"
            )
        if self.pfsp_weighting not in PFSP_WEIGHTINGS:
            raise ValueError(
                f"pfsp_weighting must be one of {list(PFSP_WEIGHTINGS)}, "
                f"got {self.pfsp_weighting!r}"
            )
        k = self.pfsp_exponent
        if not _is_real(k) or not math.isfinite(k) or k <= 0:
            raise ValueError(f"pfsp_exponent must be a finite number > 0, got {k!r}")
        m = self.max_snapshots
        if m is not None and (not isinstance(m, int) or isinstance(m, bool) or m < 1):
            raise ValueError(f"max_snapshots must be an integer >= 1 or None, got {m!r}")
        t = self.main_exploiter_targets
        if not isinstance(t, int) or isinstance(t, bool) or t < 1:
            raise ValueError(f"main_exploiter_targets must be an integer >= 1, got {t!r}")
        a = self.payoff_prior
        if not _is_real(a) or not math.isfinite(a) or a < 0:
            raise ValueError(f"payoff_prior must be a finite number >= 0, got {a!r}")
        if not isinstance(self.gated_only, bool):
            raise ValueError(f"gated_only must be True or False, got {self.gated_only!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LeagueConfig:
        """Inverse of `dataclasses.asdict`; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown league config keys {unknown}; valid keys: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A network frozen at one moment: its weights can no longer change.

    ``weights`` are detached CPU clones of the tensors given, behind a read-only mapping, so
    training the source network further (in-place optimizer updates) never reaches them. Treat
    the tensors as read-only: ``module.load_state_dict(snapshot.weights)`` copies out of them.
    (``eq=False``: comparing dicts of tensors with ``==`` is ambiguous; snapshots compare by
    identity.)
    """

    name: str
    """Unique name in the league, e.g. "main_0004"."""
    role: str
    """One of `ROLES`: "main", "main_exploiter" or "league_exploiter"."""
    step: int
    """Learner step at which the weights were taken."""
    weights: Mapping[str, torch.Tensor] = field(repr=False)
    """Parameter name -> tensor (a state dict), read-only."""

    def __post_init__(self) -> None:
        _check_name("snapshot name", self.name)
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {self.role!r}")
        if not isinstance(self.step, int) or isinstance(self.step, bool) or self.step < 0:
            raise ValueError(f"step must be an integer >= 0, got {self.step!r}")
        if not isinstance(self.weights, Mapping) or not self.weights:
            raise ValueError(f"snapshot {self.name!r} needs a non-empty dict of tensors")
        frozen = {}
        for key, value in self.weights.items():
            if not isinstance(key, str) or not key or not isinstance(value, torch.Tensor):
                raise ValueError(
                    f"snapshot {self.name!r} weights must map names to tensors, got "
                    f"{key!r}: {type(value).__name__}"
                )
            # clone() after detach(): a new storage, so no later in-place update can alias it.
            frozen[key] = value.detach().to("cpu").clone()
        # frozen dataclass: __post_init__ is the one place allowed to set fields.
        object.__setattr__(self, "weights", MappingProxyType(frozen))

    @property
    def num_parameters(self) -> int:
        return sum(t.numel() for t in self.weights.values())


# ---- SPRT ---------------------------------------------------------------------------------


def pfsp_weights(p: np.ndarray, weighting: str = "hard", exponent: float = 2.0) -> np.ndarray:
    """Normalized PFSP weights from win probabilities ``p`` of the learner against each
    opponent: hard ``(1 - p)^k``, variance ``p (1 - p)``, linear ``1 - p``; uniform when every
    weight is zero."""
    p = np.asarray(p, np.float64)
    if weighting == "hard":
        f = (1.0 - p) ** exponent
    elif weighting == "variance":
        f = p * (1.0 - p)
    elif weighting == "linear":
        f = 1.0 - p
    else:
        raise ValueError(
            f"unknown pfsp weighting {weighting!r}: choose one of {', '.join(PFSP_WEIGHTINGS)}"
        )
    total = f.sum()
    if total <= 0:
        return np.full(len(p), 1.0 / len(p))
    return f / total


def sprt_bounds(alpha: float = 0.05, beta: float = 0.05) -> tuple[float, float]:
    """Wald's stopping bounds ``(log(beta / (1 - alpha)), log((1 - beta) / alpha))`` on the LLR."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if not _is_real(value) or not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    if alpha + beta >= 1.0:
        raise ValueError(f"alpha + beta must be < 1, got alpha={alpha!r}, beta={beta!r}")
    return math.log(beta / (1.0 - alpha)), math.log((1.0 - beta) / alpha)


def _check_games(wins: float, draws: float, losses: float) -> tuple[float, float, float]:
    counts = (wins, draws, losses)
    if not all(_is_real(c) and math.isfinite(c) and c >= 0 for c in counts):
        raise ValueError(f"wins, draws, losses must be finite numbers >= 0, got {counts}")
    return float(wins), float(draws), float(losses)


def _constrained_mle(freq: Sequence[float], score: float) -> list[float]:
    """Outcome probabilities (win, draw, loss) closest to ``freq`` with expected score ``score``.

    Maximizes ``sum_i f_i log q_i`` subject to ``sum q_i = 1`` and ``sum q_i x_i = score``
    (``x = 1, 1/2, 0``). The Lagrange conditions give ``q_i = f_i / (1 + lam (x_i - score))``
    with ``g(lam) = sum_i f_i (x_i - score) / (1 + lam (x_i - score)) = 0``; ``g`` decreases
    strictly on the interval where every ``q_i > 0``, so bisection finds the root. Needs the
    observed outcomes to straddle ``score`` (callers regularize the counts so they do).
    """
    a = [1.0 - score, 0.5 - score, -score]
    # 1 + lam * a_i > 0 for the observed outcomes bounds lam on both sides.
    lo = max((-1.0 / ai for f, ai in zip(freq, a, strict=True) if f > 0 and ai > 0), default=-1e9)
    hi = min((-1.0 / ai for f, ai in zip(freq, a, strict=True) if f > 0 and ai < 0), default=1e9)
    for _ in range(200):
        lam = 0.5 * (lo + hi)
        g = sum(f * ai / (1.0 + lam * ai) for f, ai in zip(freq, a, strict=True) if f > 0)
        if g > 0:
            lo = lam
        else:
            hi = lam
        if hi - lo < 1e-15:
            break
    lam = 0.5 * (lo + hi)
    return [f / (1.0 + lam * ai) if f > 0 else 0.0 for f, ai in zip(freq, a, strict=True)]


def sprt_llr(
    wins: float,
    draws: float,
    losses: float,
    elo0: float = 0.0,
    elo1: float = 35.0,
    *,
    method: Literal["gsprt", "normal"] = "gsprt",
) -> float:
    """Log-likelihood ratio of H1 (Elo difference ``elo1``) over H0 (``elo0``) given the games.

    Each hypothesis fixes the expected score per game, ``s = 1 / (1 + 10 ** (-elo / 400))``.

    ``method="gsprt"`` (default), the generalized SPRT on the trinomial: under each hypothesis
    the outcome probabilities are the maximum-likelihood ones with that expected score (see
    `_constrained_mle`), and ``LLR = sum_i n_i log(q1_i / q0_i)``. Without draws this is Wald's
    test for a coin, ``W log(s1 / s0) + L log((1 - s1) / (1 - s0))``.

    ``method="normal"``, the approximation chess-engine testing uses: with ``N`` games, score
    mean ``m`` and per-game score variance ``v``,
    ``LLR = N (s1 - s0) (2m - s0 - s1) / (2v)``, the log ratio of two normal likelihoods for
    ``m``. It is the GSPRT's second-order expansion, good over hundreds of games, but with few
    games ``v`` is underestimated (5 wins and a draw already "accept" at 5 %); that is why it is
    not the default. With ``v = 0`` (every game alike) it falls back to the GSPRT.

    Outcomes never observed get 1e-3 virtual games when needed to reach a hypothesis' score
    (e.g. 10 wins out of 10 against ``s0 = 0.5``), which keeps the LLR finite.
    """
    w, d, l = _check_games(wins, draws, losses)
    for name, value in (("elo0", elo0), ("elo1", elo1)):
        if not _is_real(value) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not elo1 > elo0:
        raise ValueError(f"elo1 must be greater than elo0, got elo0={elo0!r}, elo1={elo1!r}")
    if method not in ("gsprt", "normal"):
        raise ValueError(f"method must be 'gsprt' or 'normal', got {method!r}")
    n = w + d + l
    if n == 0:
        return 0.0
    s0, s1 = float(expected_score(elo0, 0.0)), float(expected_score(elo1, 0.0))
    mean = (w + 0.5 * d) / n
    var = (w * (1.0 - mean) ** 2 + d * (0.5 - mean) ** 2 + l * mean**2) / n
    if method == "normal" and var > 0:
        return n * (s1 - s0) * (2.0 * mean - s0 - s1) / (2.0 * var)

    counts = [w, d, l]
    scores = [1.0, 0.5, 0.0]
    seen = [x for x, c in zip(scores, counts, strict=True) if c > 0]
    if not (min(seen) < min(s0, s1) and max(seen) > max(s0, s1)):
        # The observed outcomes cannot average to s0 or s1: give unseen outcomes a trace.
        counts = [c if c > 0 else 1e-3 for c in counts]
    total = sum(counts)
    freq = [c / total for c in counts]
    q0 = _constrained_mle(freq, s0)
    q1 = _constrained_mle(freq, s1)
    return sum(c * math.log(p1 / p0) for c, p0, p1 in zip((w, d, l), q0, q1, strict=True) if c > 0)


def sprt(
    wins: float,
    draws: float,
    losses: float,
    elo0: float = 0.0,
    elo1: float = 35.0,
    alpha: float = 0.05,
    beta: float = 0.05,
    *,
    method: Literal["gsprt", "normal"] = "gsprt",
) -> SPRTDecision:
    """Sequential test of H0: Elo difference ``elo0`` against H1: ``elo1`` (> ``elo0``).

    "accept" (H1: the player is stronger by about ``elo1``) when the LLR (`sprt_llr`) reaches
    ``log((1 - beta) / alpha)``, "reject" when it falls to ``log(beta / (1 - alpha))``,
    "continue" (play more games) in between. ``alpha`` bounds the chance of accepting a player
    only ``elo0`` stronger, ``beta`` the chance of rejecting one ``elo1`` stronger. The default
    ``elo1 = 35`` is about the 55 % score AlphaGo Zero gated new networks at.
    """
    return _decide(sprt_llr(wins, draws, losses, elo0, elo1, method=method), alpha, beta)


def _decide(llr: float, alpha: float, beta: float) -> SPRTDecision:
    """The SPRT's decision for a log-likelihood ratio ``llr`` (see `sprt`)."""
    lower, upper = sprt_bounds(alpha, beta)
    if llr >= upper:
        return "accept"
    if llr <= lower:
        return "reject"
    return "continue"


def min_games_to_accept(
    elo0: float = 0.0, elo1: float = 35.0, alpha: float = 0.05, beta: float = 0.05
) -> int:
    """Fewest games after which `sprt` can accept at all (every one of them won): a test on
    fewer games never decides for the stronger player."""
    games = 1
    while sprt(games, 0, 0, elo0, elo1, alpha, beta) != "accept":
        games += 1
    return games


# ---- the league ---------------------------------------------------------------------------


class League:
    """Snapshots, opponent sampling, a payoff table and SPRT gating.

    Snapshots keep the order they were added in (`names`). The payoff table may also hold
    players that are not snapshots (live learners, baselines such as "random"); only snapshots
    can be sampled as opponents, since only they have weights.
    """

    def __init__(self, config: LeagueConfig | None = None) -> None:
        self.config = config if config is not None else LeagueConfig()
        if not isinstance(self.config, LeagueConfig):
            raise ValueError(f"config must be a LeagueConfig, got {type(self.config).__name__}")
        self._snapshots: dict[str, Snapshot] = {}  # insertion order = age
        self._results = MatchResults()
        self._gated: list[str] = []  # promoted snapshots, in promotion order; never dropped
        self._promotions: list[dict[str, Any]] = []

    # ---- snapshots ------------------------------------------------------------------------

    def add_snapshot(
        self,
        name: str,
        weights: Mapping[str, torch.Tensor] | torch.nn.Module,
        role: str = "main",
        step: int = 0,
    ) -> Snapshot:
        """Freeze ``weights`` (a state dict or a module) as a new snapshot named ``name``.

        Beyond ``config.max_snapshots`` the oldest snapshots are dropped, except gated ones, the
        latest main snapshot and the one just added (their payoff results stay in the table).
        """
        _check_name("snapshot name", name)
        if name in self._snapshots:
            raise ValueError(f"the league already has a snapshot named {name!r}")
        if isinstance(weights, torch.nn.Module):
            weights = weights.state_dict()
        snapshot = Snapshot(name=name, role=role, step=step, weights=weights)
        self._snapshots[name] = snapshot
        self._drop_oldest()
        return snapshot

    def trim(self) -> list[str]:
        """Drop the oldest snapshots beyond ``config.max_snapshots`` as `add_snapshot` does (for
        a league loaded under a smaller limit); returns the names dropped."""
        before = self.names
        self._drop_oldest()
        return [name for name in before if name not in self._snapshots]

    def _drop_oldest(self) -> None:
        limit = self.config.max_snapshots
        if limit is None or not self._snapshots:
            return
        newest = next(reversed(self._snapshots))
        keep = {*self._gated, newest, self.latest("main")}
        for name in list(self._snapshots):
            if len(self._snapshots) <= limit:
                break
            if name not in keep:
                del self._snapshots[name]

    def snapshot(self, name: str) -> Snapshot:
        if name not in self._snapshots:
            raise KeyError(f"no snapshot {name!r} in the league; snapshots: {self.names}")
        return self._snapshots[name]

    @property
    def names(self) -> list[str]:
        """Snapshot names, oldest first."""
        return list(self._snapshots)

    def __len__(self) -> int:
        return len(self._snapshots)

    def __contains__(self, name: object) -> bool:
        return name in self._snapshots

    def latest(self, role: str = "main") -> str | None:
        """The newest snapshot of ``role``, or None."""
        for name in reversed(self._snapshots):
            if self._snapshots[name].role == role:
                return name
        return None

    @property
    def best(self) -> str | None:
        """The last snapshot promoted by `promote_if_stronger` (or `promote`), or None."""
        return self._gated[-1] if self._gated else None

    @property
    def gated(self) -> list[str]:
        """Every promoted snapshot, in promotion order."""
        return list(self._gated)

    @property
    def promotions(self) -> list[dict[str, Any]]:
        """History of SPRT decisions (accept and reject) and manual promotions."""
        return [dict(p) for p in self._promotions]

    # ---- opponent sampling ----------------------------------------------------------------

    def opponents_for(self, role: str = "main", learner: str | None = None) -> list[str]:
        """Candidate opponents of a learner of ``role``, oldest first (``learner`` excluded).

        main and league_exploiter: every snapshot (main with ``config.gated_only``: the promoted
        ones only); main_exploiter: the latest ``config.main_exploiter_targets`` main snapshots.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")
        pool = [name for name in self._snapshots if name != learner]
        if role == "main" and self.config.gated_only:
            pool = [name for name in pool if name in self._gated]
        if role == "main_exploiter":
            mains = [name for name in pool if self._snapshots[name].role == "main"]
            pool = mains[-self.config.main_exploiter_targets :]
        return pool

    def opponent_distribution(
        self, learner: str, role: str = "main"
    ) -> tuple[list[str], np.ndarray]:
        """``(opponents, probabilities)``: exactly what `sample_opponent` draws from.

        main: ``latest * [the latest main snapshot] + past * uniform(the others)
        + pfsp * pfsp_weights(all)``; an empty part's share goes to the latest snapshot (with no
        main snapshot, the newest of any role stands in for it). With ``gated_only`` the pool is
        the promoted snapshots: the latest share goes to the best, the past share uniformly to
        all of them, the best too. main_exploiter: uniform over its pool. league_exploiter:
        PFSP weights over the whole league.
        """
        pool = self.opponents_for(role, learner)
        if not pool:
            raise ValueError(
                f"no opponents for learner {learner!r} as {role!r}: the league has snapshots "
                f"{self.names}; add a snapshot first"
            )
        n = len(pool)
        if role == "main_exploiter":
            return pool, np.full(n, 1.0 / n)
        if role == "league_exploiter":
            return pool, self.pfsp_weights(learner, pool)
        cfg = self.config
        mains = [k for k, name in enumerate(pool) if self._snapshots[name].role == "main"]
        latest = mains[-1] if mains else n - 1
        if cfg.gated_only and self.best in pool:
            latest = pool.index(self.best)  # the last promoted, whatever its age
        probs = np.zeros(n)  # (n,)
        probs[latest] += cfg.latest
        if cfg.gated_only:
            # every promoted snapshot is a past opponent, the best (newest promoted) included:
            # the newest snapshot of the whole league, which "latest" stands for, is a candidate
            probs += cfg.past / n
        elif n > 1:
            past = np.arange(n) != latest
            probs[past] += cfg.past / (n - 1)
        else:
            probs[latest] += cfg.past
        if cfg.pfsp > 0:
            probs += cfg.pfsp * self.pfsp_weights(learner, pool)
        return pool, probs / probs.sum()  # renormalize away round-off only

    def sample_opponent(self, learner: str, rng: np.random.Generator, role: str = "main") -> str:
        """Draw an opponent snapshot name for ``learner`` (see `opponent_distribution`).

        ``learner`` is the name its results are recorded under in the payoff table (the live
        agent, e.g. "main"); it is never its own opponent.
        """
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        pool, probs = self.opponent_distribution(learner, role)
        return pool[int(rng.choice(len(pool), p=probs))]

    def pfsp_weights(self, learner: str, opponents: Sequence[str]) -> np.ndarray:
        """Normalized PFSP weights of ``opponents`` for ``learner``, from `payoff`.

        With ``p_j = payoff(learner, j)``: hard ``(1 - p)^k``, variance ``p (1 - p)``, linear
        ``1 - p``. If every weight is zero (e.g. ``payoff_prior=0`` and all games won) the
        weights are uniform rather than undefined.
        """
        if not opponents:
            raise ValueError("pfsp_weights needs at least one opponent")
        p = np.array([self.payoff(learner, name) for name in opponents])  # (n,)
        return pfsp_weights(p, self.config.pfsp_weighting, self.config.pfsp_exponent)

    # ---- payoff ---------------------------------------------------------------------------

    def record(self, a: str, b: str, wins: float = 0, draws: float = 0, losses: float = 0) -> None:
        """Add ``a``'s wins, draws and losses against ``b`` to the payoff table."""
        self._results.add(a, b, wins, draws, losses)

    @property
    def results(self) -> MatchResults:
        """A copy of the payoff table's results."""
        return self._results.copy()

    def payoff(self, a: str, b: str) -> float:
        """Estimated ``P(a beats b)`` (draws half): ``(w + d/2 + a0) / (games + 2 a0)``.

        ``a0 = config.payoff_prior``; players that never met get 1/2.
        """
        if a == b:
            return 0.5
        w, d, l = self._results.record(a, b)
        prior = self.config.payoff_prior
        games = w + d + l + 2.0 * prior
        return 0.5 if games == 0 else (w + 0.5 * d + prior) / games

    def payoff_matrix(self, names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
        """``(names, M)`` with ``M[i, j] = payoff(names[i], names[j])`` (1/2 on the diagonal).

        Defaults to the snapshots plus every other player in the payoff table.
        """
        if names is None:
            names = self.names + [p for p in self._results.players if p not in self._snapshots]
        names = list(names)
        matrix = np.array([[self.payoff(a, b) for b in names] for a in names])  # (n, n)
        return names, matrix.reshape(len(names), len(names))

    def ratings(self, **kwargs: Any) -> Ratings:
        """Elo fitted on the payoff table (`fit_elo`), anchored at "random" when it played.

        Without "random" the ratings are centred on mean zero; ``kwargs`` go to `fit_elo`.
        """
        anchor = "random" if "random" in self._results.players else None
        kwargs.setdefault("anchor", anchor)
        return fit_elo(self._results, **kwargs)

    # ---- gating ---------------------------------------------------------------------------

    def promote(self, name: str) -> None:
        """Make snapshot ``name`` gated and the new `best` without a test (e.g. the first net)."""
        self.snapshot(name)  # KeyError naming it if absent
        if name in self._gated:
            self._gated.remove(name)
        self._gated.append(name)
        self._promotions.append({"candidate": name, "incumbent": None, "decision": "promoted"})

    def promote_if_stronger(
        self,
        candidate: str,
        incumbent: str | None = None,
        *,
        elo0: float = 0.0,
        elo1: float = 35.0,
        alpha: float = 0.05,
        beta: float = 0.05,
    ) -> SPRTDecision:
        """SPRT on the recorded games of ``candidate`` against ``incumbent`` (default: `best`).

        "accept": the candidate is gated and becomes `best`. "reject" / "continue": nothing
        changes. Accept and reject are appended to `promotions` with the counts and the LLR.
        """
        self.snapshot(candidate)
        if incumbent is None:
            incumbent = self.best
            if incumbent is None:
                raise ValueError(
                    "no incumbent: nothing was promoted yet; pass incumbent= or call promote()"
                )
        if candidate == incumbent:
            raise ValueError(f"candidate and incumbent are the same player {candidate!r}")
        w, d, l = self._results.record(candidate, incumbent)
        llr = sprt_llr(w, d, l, elo0, elo1)
        decision = _decide(llr, alpha, beta)
        if decision != "continue":
            self._promotions.append(
                {
                    "candidate": candidate,
                    "incumbent": incumbent,
                    "decision": decision,
                    "wins": w,
                    "draws": d,
                    "losses": l,
                    "llr": llr,
                    "elo0": elo0,
                    "elo1": elo1,
                }
            )
        if decision == "accept":
            if candidate in self._gated:
                self._gated.remove(candidate)
            self._gated.append(candidate)
        return decision

    # ---- persistence ----------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(meta, tensors)``: a JSON-able dict and the snapshot weights.

        Tensors are keyed ``league/<snapshot>/<parameter>``; ``meta["snapshots"]`` lists each
        snapshot's name, role, step and parameter names in order, so loading can check that
        every tensor is there. The tensors are the snapshots' own (read-only by convention).
        """
        meta = {
            "version": _FORMAT_VERSION,
            "config": asdict(self.config),
            "snapshots": [
                {"name": s.name, "role": s.role, "step": s.step, "params": list(s.weights)}
                for s in self._snapshots.values()
            ],
            "results": self._results.to_dict(),
            "gated": list(self._gated),
            "promotions": [dict(p) for p in self._promotions],
        }
        tensors = {
            f"{LEAGUE_PREFIX}{s.name}/{param}": t
            for s in self._snapshots.values()
            for param, t in s.weights.items()
        }
        return meta, tensors

    @classmethod
    def from_state_dict(
        cls, meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]
    ) -> League:
        """Inverse of `state_dict`; inconsistent input raises a ValueError saying what is off."""
        if not isinstance(meta, Mapping) or meta.get("version") != _FORMAT_VERSION:
            version = meta.get("version") if isinstance(meta, Mapping) else None
            raise ValueError(
                f"league state has version {version!r}; this code reads {_FORMAT_VERSION}"
            )
        missing = sorted({"config", "snapshots", "results", "gated", "promotions"} - set(meta))
        if missing:
            raise ValueError(f"league state lacks the keys {missing}")
        league = cls(LeagueConfig.from_dict(meta["config"]))
        used: set[str] = set()
        for i, entry in enumerate(meta["snapshots"]):
            keys = {"name", "role", "step", "params"}
            if not isinstance(entry, Mapping) or set(entry) != keys:
                raise ValueError(
                    f"league state snapshots[{i}] must have exactly the keys {sorted(keys)}, "
                    f"got {entry!r}"
                )
            name = entry["name"]
            weights = {}
            for param in entry["params"]:
                key = f"{LEAGUE_PREFIX}{name}/{param}"
                if key not in tensors:
                    raise ValueError(
                        f"league state names snapshot {name!r} but its tensor {key!r} is missing"
                    )
                weights[param] = tensors[key]
                used.add(key)
            if not weights:
                raise ValueError(f"league state has snapshot {name!r} without any tensors")
            if name in league._snapshots:
                raise ValueError(f"league state lists snapshot {name!r} twice")
            # Bypass add_snapshot: the saved set was already trimmed to max_snapshots.
            league._snapshots[name] = Snapshot(
                name=name, role=entry["role"], step=entry["step"], weights=weights
            )
        extra = sorted(k for k in tensors if k.startswith(LEAGUE_PREFIX) and k not in used)
        if extra:
            raise ValueError(f"league tensors {extra[:5]} belong to no snapshot in the state")
        unknown = [name for name in meta["gated"] if name not in league._snapshots]
        if unknown:
            raise ValueError(f"gated snapshots {unknown} are not among the league's snapshots")
        league._results = MatchResults.from_dict(meta["results"])
        league._gated = list(meta["gated"])
        league._promotions = [dict(p) for p in meta["promotions"]]
        return league
