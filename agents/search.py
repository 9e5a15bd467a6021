"""Batched Monte-Carlo tree search: AlphaZero's PUCT and Gumbel AlphaZero, trees as arrays.

The trees of all G games live in ``[G, nodes, actions]`` arrays — no Python object per node — and
one simulation advances every game at once: descend (vectorized over games), evaluate all new
leaves with ONE evaluator call, back the values up along the stored paths. Positions are not
stored per node: a simulation replays its path from a clone of the root core, which costs a few
batched ``step`` calls (microseconds) next to the network call (milliseconds).

Search depends only on the ``Evaluator`` protocol (as in OpenSpiel): anything with
``evaluate(game) -> (logits (N, A) with -inf on illegal actions, value (N,) in [-1, 1] from the
mover's view)``. Values in the tree are stored from the view of the player who chooses the
edge's action, so backing up a value flips its sign at every ply (two-player, alternating).

Gumbel AlphaZero (Danihelka et al., 2022): Gumbel-top-k sampling of m root actions, sequential
halving over the budget, a deterministic non-root rule, and the completed-Q improved policy as
the training target; it stays sound with as few as 2-16 simulations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

ALGORITHMS = ("puct", "gumbel")


class Evaluator(Protocol):
    def evaluate(self, game: Any) -> tuple[np.ndarray, np.ndarray]:
        """(logits (N, A) float32, -inf on illegal actions; value (N,) float32 in [-1, 1])."""
        ...


@dataclass(frozen=True)
class SearchConfig:
    """How a search spends its simulations."""

    num_simulations: int = 32
    """Simulations per move (each adds one node per game and one batched evaluation)."""
    algorithm: str = "gumbel"
    """``puct`` (AlphaZero) or ``gumbel`` (Gumbel AlphaZero: sound at small budgets)."""
    c_puct: float = 1.25
    """PUCT exploration constant."""
    dirichlet_alpha: float = 0.5
    """Root Dirichlet noise concentration (PUCT self-play)."""
    dirichlet_fraction: float = 0.25
    """Share of the root prior replaced by Dirichlet noise (PUCT self-play)."""
    num_considered: int = 16
    """Gumbel: root actions sampled without replacement for sequential halving."""
    c_visit: float = 50.0
    """Gumbel: sigma(q) = (c_visit + max visits) * c_scale * q."""
    c_scale: float = 0.1
    """Gumbel: see c_visit (0.1 as in DeepMind's mctx: sharper targets overfit noisy Q)."""

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"unknown search algorithm {self.algorithm!r}: choose one of "
                f"{', '.join(ALGORITHMS)}"
            )
        if isinstance(self.num_simulations, bool) or not isinstance(self.num_simulations, int):
            raise ValueError(f"num_simulations must be an integer, got {self.num_simulations!r}")
        if self.num_simulations < 1:
            raise ValueError(f"num_simulations must be >= 1, got {self.num_simulations}")
        for name in ("c_puct", "dirichlet_alpha", "c_visit", "c_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.dirichlet_fraction <= 1:
            raise ValueError(f"dirichlet_fraction must be in [0, 1], got {self.dirichlet_fraction}")
        if self.num_considered < 1:
            raise ValueError(f"num_considered must be >= 1, got {self.num_considered}")


@dataclass
class SearchResult:
    """What a search returns for each of its G root positions."""

    action: np.ndarray  # (G,) int64, the move to play
    policy: np.ndarray  # (G, A) float32, the training target (visits or completed-Q policy)
    visits: np.ndarray  # (G, A) float32, root visit counts
    q: np.ndarray  # (G, A) float32, root action values from the mover's view (0 unvisited)
    value: np.ndarray  # (G,) float32, the root value estimate from the mover's view
    prior: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))  # (G, A)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; -inf logits get exactly 0."""
    top = logits.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(logits - top)
    return e / e.sum(axis=-1, keepdims=True)


def sequential_halving_schedule(num_considered: int, num_simulations: int) -> np.ndarray:
    """For each simulation, how many visits the root action it picks must already have.

    Sequential halving gives each of the k actions still in play an equal share of a phase's
    budget, then keeps the better half. Encoded as "visit the best-scored action among those
    with exactly v visits", one rule picks every root action, vectorized over games.
    """
    if num_considered <= 1:
        return np.arange(num_simulations)
    phases = math.ceil(math.log2(num_considered))
    schedule: list[int] = []
    visits = 0
    k = num_considered
    while len(schedule) < num_simulations:
        per_action = max(1, num_simulations // (phases * k))
        for extra in range(per_action):
            schedule.extend([visits + extra] * k)
        visits += per_action
        k = max(2, math.ceil(k / 2))
    return np.array(schedule[:num_simulations], np.int64)


class BatchedMCTS:
    """PUCT or Gumbel search over a batch of game cores."""

    def __init__(self, evaluator: Evaluator, config: SearchConfig | None = None, seed: int = 0):
        self.evaluator = evaluator
        self.config = config or SearchConfig()
        self.rng = np.random.default_rng(seed)
        self._schedules: dict[int, np.ndarray] = {}

    # ---------------------------------------------------------------------------------------

    def search(
        self, game: Any, *, add_noise: bool = False, temperature: float | np.ndarray = 0.0
    ) -> SearchResult:
        """Search every (unfinished) game of ``game``; the core itself is not changed.

        ``add_noise``: root exploration for self-play (Dirichlet for PUCT, Gumbel for Gumbel);
        ``temperature`` (PUCT, per game or scalar): 0 plays the most visited action, 1 samples in
        proportion to visits. Gumbel picks its action by sequential halving.
        """
        if game.terminated.any():
            raise ValueError(
                f"search needs unfinished games; game {int(np.flatnonzero(game.terminated)[0])} "
                "is over"
            )
        cfg = self.config
        G, A = game.num_envs, game.num_actions
        M = cfg.num_simulations + 1  # one node per simulation, plus the root
        tree = _Tree(G, M, A)
        root_legal = game.legal_mask()  # (G, A)
        logits, value = self._evaluate(game)
        tree.expand(np.arange(G), np.zeros(G, np.int64), logits, value)

        gumbel = np.zeros((G, A), np.float32)
        if cfg.algorithm == "puct" and add_noise:
            noise = self.rng.gamma(cfg.dirichlet_alpha, size=(G, A)) * root_legal  # (G, A)
            noise /= noise.sum(axis=1, keepdims=True)
            eps = cfg.dirichlet_fraction
            tree.prior[:, 0] = (1 - eps) * tree.prior[:, 0] + eps * noise
        if cfg.algorithm == "gumbel":
            if add_noise:
                gumbel = self.rng.gumbel(size=(G, A)).astype(np.float32)
            num_legal = root_legal.sum(axis=1)  # (G,)
            considered = np.minimum(cfg.num_considered, num_legal)
            schedule = np.stack(
                [self._schedule(int(m)) for m in considered]
            )  # (G, S) required root visits per simulation

        for sim in range(cfg.num_simulations):
            forced = None
            if cfg.algorithm == "gumbel":
                forced = self._gumbel_root_action(tree, root_legal, gumbel, schedule[:, sim])
            self._simulate(game, tree, forced)

        visits = tree.N[:, 0]  # (G, A)
        q = np.divide(tree.W[:, 0], visits, out=np.zeros_like(visits), where=visits > 0)
        if cfg.algorithm == "puct":
            policy = visits / visits.sum(axis=1, keepdims=True)
            action = self._pick_by_visits(visits, temperature)
        else:
            completed = self._completed_q(tree, np.arange(G), np.zeros(G, np.int64))
            improved = tree.logits[:, 0] + self._sigma(completed, visits, root_legal)
            improved = np.where(root_legal, improved, -np.inf)
            policy = softmax(improved)
            # the final choice: best score among the most visited considered actions
            score = np.where(
                root_legal,
                gumbel + tree.logits[:, 0] + self._sigma(completed, visits, root_legal),
                -np.inf,
            )
            most = visits.max(axis=1, keepdims=True)
            score = np.where(visits == most, score, -np.inf)
            action = score.argmax(axis=1)
        if cfg.algorithm == "puct":  # visits concentrate on the best move: their mean value
            total = visits.sum(axis=1)
            root_value = (tree.node_value[:, 0] + tree.W[:, 0].sum(axis=1)) / (1 + total)
        else:  # halving spreads visits over weak moves: value under the improved policy
            root_value = (policy * np.where(root_legal, completed, 0.0)).sum(axis=1)
        return SearchResult(
            action=action.astype(np.int64),
            policy=policy.astype(np.float32),
            visits=visits.astype(np.float32),
            q=q.astype(np.float32),
            value=root_value.astype(np.float32),
            prior=tree.prior[:, 0].copy(),
        )

    # ---------------------------------------------------------------------------------------

    def _evaluate(self, game: Any) -> tuple[np.ndarray, np.ndarray]:
        logits, value = self.evaluator.evaluate(game)
        logits = np.asarray(logits, np.float32)
        value = np.asarray(value, np.float32)
        if logits.shape != (game.num_envs, game.num_actions) or value.shape != (game.num_envs,):
            raise ValueError(
                f"evaluator returned logits {logits.shape} and value {value.shape}; expected "
                f"({game.num_envs}, {game.num_actions}) and ({game.num_envs},)"
            )
        return logits, value

    def _schedule(self, considered: int) -> np.ndarray:
        if considered not in self._schedules:
            self._schedules[considered] = sequential_halving_schedule(
                considered, self.config.num_simulations
            )
        return self._schedules[considered]

    def _simulate(self, root: Any, tree: _Tree, forced_root: np.ndarray | None) -> None:
        """One simulation for every game: descend, evaluate the new leaves, back up."""
        G = root.num_envs
        game = root.clone()
        # a self-play core restarts finished games by itself; inside the tree a finished game
        # must stay finished, or the search would walk on into a fresh game
        game.auto_reset = False
        node = np.zeros(G, np.int64)
        depth = np.zeros(G, np.int64)
        path_nodes = np.zeros((G, game.max_moves + 1), np.int64)  # (G, D)
        path_actions = np.zeros((G, game.max_moves + 1), np.int64)
        leaf_value = np.zeros(G, np.float32)  # from the view of the player to move at the leaf
        descending = np.ones(G, bool)
        needs_eval = np.zeros(G, bool)
        first = True
        while descending.any():
            idx = np.flatnonzero(descending)
            legal = game.legal_mask()[idx]  # (k, A)
            if first and forced_root is not None:
                action = forced_root[idx]
            else:
                action = self._select(tree, idx, node[idx], legal)
            first = False
            path_nodes[idx, depth[idx]] = node[idx]
            path_actions[idx, depth[idx]] = action
            depth[idx] += 1
            actions = np.zeros(G, np.int64)
            actions[idx] = action
            game.step(actions, where=descending)
            child = tree.children[idx, node[idx], action]  # (k,)
            new = child < 0
            if new.any():
                fresh = idx[new]
                child[new] = tree.allocate(fresh)
                tree.children[fresh, node[fresh], action[new]] = child[new]
            node[idx] = child
            over = game.terminated[idx]
            if over.any():
                ended = idx[over]
                # the player to move at a finished position lost if anyone won, else drew
                leaf_value[ended] = np.where(game.winner[ended] >= 0, -1.0, 0.0)
                tree.terminal[ended, node[ended]] = True
            stop = over | new
            needs_eval[idx[new & ~over]] = True
            descending[idx[stop]] = False
        leaves = np.flatnonzero(needs_eval)
        if leaves.size:
            logits, value = self._evaluate(game.take(leaves))
            tree.expand(leaves, node[leaves], logits, value)
            leaf_value[leaves] = value
        tree.backup(path_nodes, path_actions, depth, leaf_value)

    def _select(
        self, tree: _Tree, games: np.ndarray, nodes: np.ndarray, legal: np.ndarray
    ) -> np.ndarray:
        n = tree.N[games, nodes]  # (k, A)
        w = tree.W[games, nodes]
        if self.config.algorithm == "puct":
            q = np.divide(w, n, out=np.zeros_like(w), where=n > 0)
            prior = tree.prior[games, nodes]
            total = n.sum(axis=1, keepdims=True)
            score = q + self.config.c_puct * prior * np.sqrt(total + 1) / (1 + n)
        else:
            completed = self._completed_q(tree, games, nodes)
            improved = softmax(
                np.where(
                    legal, tree.logits[games, nodes] + self._sigma(completed, n, legal), -np.inf
                )
            )
            score = improved - n / (1 + n.sum(axis=1, keepdims=True))
        score = np.where(legal, score, -np.inf)
        return score.argmax(axis=1)

    def _completed_q(self, tree: _Tree, games: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        """Q of visited actions; the mixed value v_mix for the unvisited (Gumbel AZ, app. D)."""
        n = tree.N[games, nodes]  # (k, A)
        w = tree.W[games, nodes]
        q = np.divide(w, n, out=np.zeros_like(w), where=n > 0)
        prior = softmax(tree.logits[games, nodes])
        visited = n > 0
        total = n.sum(axis=1)
        weight = (prior * visited).sum(axis=1)
        weighted_q = np.divide(
            (prior * q * visited).sum(axis=1), weight, out=np.zeros_like(weight), where=weight > 0
        )
        v_mix = (tree.node_value[games, nodes] + total * weighted_q) / (1 + total)
        return np.where(visited, q, v_mix[:, None])

    def _sigma(self, q: np.ndarray, n: np.ndarray, legal: np.ndarray) -> np.ndarray:
        """The monotone transform of completed Q added to logits: Q min-max rescaled to [0, 1]
        over the legal actions, times (c_visit + max visits) * c_scale."""
        low = np.where(legal, q, np.inf).min(axis=1, keepdims=True)
        high = np.where(legal, q, -np.inf).max(axis=1, keepdims=True)
        span = np.maximum(high - low, 1e-8)
        rescaled = np.where(legal, (q - low) / span, 0.0)
        scale = (self.config.c_visit + n.max(axis=1, keepdims=True)) * self.config.c_scale
        return scale * rescaled

    def _gumbel_root_action(
        self, tree: _Tree, legal: np.ndarray, gumbel: np.ndarray, required: np.ndarray
    ) -> np.ndarray:
        n = tree.N[:, 0]  # (G, A)
        completed = self._completed_q(tree, np.arange(len(n)), np.zeros(len(n), np.int64))
        score = gumbel + tree.logits[:, 0] + self._sigma(completed, n, legal)
        score = np.where(legal & (n == required[:, None]), score, -np.inf)
        fallback = np.where(legal, gumbel + tree.logits[:, 0], -np.inf)
        # a game whose considered actions all passed the required count (fewer legal moves
        # than the schedule assumed) falls back to its best-scored legal action
        empty = ~np.isfinite(score).any(axis=1)
        score[empty] = fallback[empty]
        return score.argmax(axis=1)

    def _pick_by_visits(self, visits: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
        G = len(visits)
        temperature = np.broadcast_to(np.asarray(temperature, np.float64), (G,))
        # greedy: most visited, ties broken at random
        noise = self.rng.random(visits.shape) * 1e-3
        action = (visits + noise * (visits == visits.max(axis=1, keepdims=True))).argmax(axis=1)
        hot = np.flatnonzero(temperature > 0)
        if hot.size:
            powered = visits[hot] ** (1.0 / temperature[hot, None])  # (k, A)
            probs = powered / powered.sum(axis=1, keepdims=True)
            cumulative = probs.cumsum(axis=1)
            u = self.rng.random((hot.size, 1)) * cumulative[:, -1:]
            action[hot] = (cumulative < u).sum(axis=1)
        return action


class _Tree:
    """The arrays of G search trees with M node slots and A actions each."""

    def __init__(self, G: int, M: int, A: int) -> None:
        self.children = np.full((G, M, A), -1, np.int64)  # (G, M, A) child node or -1
        self.N = np.zeros((G, M, A), np.float32)  # edge visit counts
        self.W = np.zeros((G, M, A), np.float32)  # edge value sums, chooser's view
        self.prior = np.zeros((G, M, A), np.float32)
        self.logits = np.full((G, M, A), -np.inf, np.float32)
        self.node_value = np.zeros((G, M), np.float32)  # the evaluator's value at expansion
        self.terminal = np.zeros((G, M), bool)
        self.next_free = np.ones(G, np.int64)  # slot 0 is the root

    def allocate(self, games: np.ndarray) -> np.ndarray:
        slots = self.next_free[games].copy()
        self.next_free[games] += 1
        return slots

    def expand(
        self, games: np.ndarray, nodes: np.ndarray, logits: np.ndarray, value: np.ndarray
    ) -> None:
        self.logits[games, nodes] = logits
        self.prior[games, nodes] = softmax(logits)
        self.node_value[games, nodes] = value

    def backup(
        self,
        path_nodes: np.ndarray,
        path_actions: np.ndarray,
        depth: np.ndarray,
        leaf_value: np.ndarray,
    ) -> None:
        """Add the leaf value to every edge on each game's path, sign-flipped per ply."""
        G = len(depth)
        rows = np.arange(G)
        for d in range(int(depth.max())):
            on = d < depth  # (G,)
            g = rows[on]
            # the edge at path position d was chosen by the player to move there, who is
            # (depth - d) plies before the leaf: the same player iff that distance is even
            sign = np.where((depth[on] - d) % 2 == 0, 1.0, -1.0)
            nodes, actions = path_nodes[g, d], path_actions[g, d]
            self.N[g, nodes, actions] += 1
            self.W[g, nodes, actions] += sign * leaf_value[on]


class SearchPlayer:
    """A player (``act(game) -> actions``) that searches with an evaluator, without noise."""

    def __init__(
        self,
        evaluator: Evaluator,
        config: SearchConfig | None = None,
        *,
        name: str = "search",
        seed: int = 0,
    ) -> None:
        self.name = name
        self.mcts = BatchedMCTS(evaluator, config, seed)

    def act(self, game: Any) -> np.ndarray:
        return self.mcts.search(game).action
