"""UCT with random rollouts, batched over games, for any core with the generic interface.

The trees of all N games are arrays, no Python object per node (nodes are numbered in the order
they are created, the root is node 0):

- ``children[G, nodes, A]``: the child reached by each action, -1 where not yet expanded;
- ``visits[G, nodes]`` and ``value_sum[G, nodes]``: visit counts and summed results, from the
  view of ``node_player[G, nodes]``, the player who moved *into* the node (so a parent picks the
  child with the best value for the player choosing there).

One simulation advances every game's tree at once: clone the root core, descend by UCT (vectorised
over games, untried legal moves first) stepping the clone with ``where=`` for the games still
descending, add one node, finish the game with random legal moves, then add the final rewards to
every node on the path (stored as an array [G, depth]). A game that ends inside the tree backs up
its true result. Only the generic interface is used (``clone``, ``step(where=)``, ``legal_mask``,
``current_player``, ``random_legal_actions``), so the player also runs on the adapter over
external PettingZoo envs; auto-resetting cores work too, since game ends are read from ``step``'s
return value rather than from ``terminated``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from agents.players.base import (
    check_positive_int,
    check_seed,
    check_unfinished,
    random_true_index,
)

TIE_NOISE = 1e-9  # breaks exact UCT ties at random, far below any real difference in score


class RolloutMCTSPlayer:
    """UCT with random rollouts, ``num_simulations`` per move; see the module doc."""

    def __init__(self, num_simulations: int, seed: int = 0, c_uct: float = math.sqrt(2)) -> None:
        self.num_simulations = check_positive_int("num_simulations", num_simulations)
        self.seed = check_seed(seed)
        if not isinstance(c_uct, (int, float)) or isinstance(c_uct, bool) or not c_uct >= 0:
            raise ValueError(f"c_uct must be a number >= 0, got {c_uct!r}")
        self.c_uct = float(c_uct)
        self.rng = np.random.default_rng(self.seed)
        self.name = f"mcts:{self.num_simulations}"

    def act(self, game: Any) -> np.ndarray:
        """int64 (N,): the most visited root move per game (random among equal counts)."""
        check_unfinished(game, self.name)
        num_games, num_actions = game.num_envs, game.num_actions
        num_nodes = self.num_simulations + 1  # each simulation adds at most one node
        games = np.arange(num_games)  # (G,)
        tree = _Tree(
            children=np.full((num_games, num_nodes, num_actions), -1, np.int32),  # (G, M, A)
            visits=np.zeros((num_games, num_nodes)),  # (G, M)
            value_sum=np.zeros((num_games, num_nodes)),  # (G, M)
            node_player=np.zeros((num_games, num_nodes), np.int64),  # (G, M)
            size=np.ones(num_games, np.int64),  # (G,) nodes in use
        )
        for _ in range(self.num_simulations):
            self._simulate(game, tree, games)

        root_children = tree.children[:, 0]  # (G, A)
        counts = tree.visits[games[:, None], np.maximum(root_children, 0)]  # (G, A)
        counts = np.where(root_children >= 0, counts, 0.0)
        counts[~game.legal_mask()] = -1.0  # never pick an illegal move, even with no visits
        most = counts == counts.max(axis=1, keepdims=True)  # (G, A)
        return random_true_index(most, self.rng)

    def _simulate(self, root: Any, tree: _Tree, games: np.ndarray) -> None:
        """One simulation in every game's tree: select, expand, roll out, back up."""
        rng = self.rng
        num_games = root.num_envs
        sim = root.clone()
        node = np.zeros(num_games, np.int64)  # (G,) current node, the root
        path = np.full((num_games, self.num_simulations + 2), -1, np.int64)  # (G, depth)
        path[:, 0] = 0
        total = np.zeros((num_games, root.num_players))  # (G, players) summed step rewards
        finished = np.zeros(num_games, bool)  # (G,) the simulated game has ended
        descending = np.ones(num_games, bool)  # (G,)
        depth = 0
        while descending.any():
            legal = sim.legal_mask()  # (G, A)
            kids = tree.children[games, node]  # (G, A)
            untried = legal & (kids < 0)  # (G, A)
            expand = descending & untried.any(axis=1)  # (G,)

            # UCT over the children of fully expanded nodes, from the chooser's view
            known = np.maximum(kids, 0)  # (G, A)
            n_child = np.maximum(tree.visits[games[:, None], known], 1.0)  # (G, A)
            q = tree.value_sum[games[:, None], known] / n_child  # (G, A)
            n_parent = np.maximum(tree.visits[games, node], 1.0)  # (G,)
            explore = self.c_uct * np.sqrt(np.log(n_parent)[:, None] / n_child)  # (G, A)
            score = q + explore + TIE_NOISE * rng.random(legal.shape)  # (G, A)
            score[~legal] = -np.inf
            by_uct = score.argmax(axis=1)  # (G,)
            by_untried = random_true_index(untried | ~expand[:, None], rng)  # (G,)
            action = np.where(expand, by_untried, by_uct)  # (G,)
            action[~descending] = 0  # placeholder, left out by `where`

            mover = sim.current_player()  # (G,)
            rewards, done = sim.step(action, where=descending)
            total += rewards
            finished |= done

            nxt = kids[games, action]  # (G,) -1 where expanded now
            new = np.flatnonzero(expand)
            new_ids = tree.size[new]
            tree.children[new, node[new], action[new]] = new_ids
            tree.node_player[new, new_ids] = mover[new]
            tree.size[new] += 1
            nxt[new] = new_ids
            node = np.where(descending, nxt, node)
            depth += 1
            path[descending, depth] = node[descending]
            descending &= ~expand & ~finished

        while not finished.all():  # random rollouts to the end
            action = np.asarray(sim.random_legal_actions(rng), np.int64)  # (G,)
            rewards, done = sim.step(action, where=~finished)
            total += rewards
            finished |= done

        on_path = path >= 0  # (G, depth)
        g, t = np.nonzero(on_path)
        nodes = path[g, t]  # each (game, node) pair appears once: a path never revisits a node
        tree.visits[g, nodes] += 1.0
        tree.value_sum[g, nodes] += total[g, tree.node_player[g, nodes]]

    def __repr__(self) -> str:
        return (
            f"RolloutMCTSPlayer(num_simulations={self.num_simulations}, seed={self.seed}, "
            f"c_uct={self.c_uct})"
        )


class _Tree:
    """The arrays of a batch of search trees (see the module doc)."""

    __slots__ = ("children", "node_player", "size", "value_sum", "visits")

    def __init__(
        self,
        children: np.ndarray,
        visits: np.ndarray,
        value_sum: np.ndarray,
        node_player: np.ndarray,
        size: np.ndarray,
    ) -> None:
        self.children = children
        self.visits = visits
        self.value_sum = value_sum
        self.node_player = node_player
        self.size = size
