"""Using a trained agent from any script.

    player = selfplay.load_player("runs/my-run", simulations=64)
    analysis = player.analyse("4453")        # a position in the game's move notation
    analysis.action, analysis.value, analysis.policy

``player.act(game)`` also makes it a player for ``selfplay.arena.play_match``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

import envs
from agents.evaluator import NetworkEvaluator
from agents.networks import build_network
from agents.search import BatchedMCTS, SearchConfig, SearchResult, softmax
from selfplay.config import default_play_simulations


@dataclass(frozen=True)
class Analysis:
    """A trained agent's view of one position."""

    moves: str
    """The position, in the game's move notation."""
    action: int
    """The move the agent chooses (0-based action index)."""
    move: str
    """The same move in the game's notation."""
    value: float
    """The value estimate from the view of the player to move, in [-1, 1]."""
    policy: np.ndarray
    """The search policy over actions (A,), zero on illegal moves."""


class TrainedPlayer:
    """A network from a checkpoint, with search: ``act(game)`` and ``analyse(moves)``.

    ``simulations=0`` plays the network's own policy greedily, without search (the default for
    PPO runs, whose policy is the trained artefact).
    """

    deterministic = True
    """The same position gets the same move (search without noise, or the greedy policy)."""

    def __init__(self, cfg: Any, weights: dict[str, torch.Tensor], *, simulations: int | None,
                 device: str = "cpu", name: str = "trained", seed: int = 0) -> None:  # fmt: skip
        from selfplay.alphazero import network_config, search_config

        self.cfg = cfg
        self.name = name
        self.ratings: dict[str, Any] | None = None
        """The checkpoint's ratings (Elo history), when `load_player` read one."""
        net = build_network(network_config(cfg))
        # a checkpoint's model dict also holds the league's snapshots: take the net's own keys
        own = net.state_dict().keys()
        net.load_state_dict({k: v for k, v in weights.items() if k in own})
        # a PPO policy trained symmetric (averaged over the board's symmetries) plays so too
        symmetries = None
        if cfg.algo == "ppo" and cfg.symmetric:
            symmetries = envs.make(cfg.game, 1).symmetries()
        self.evaluator = NetworkEvaluator(
            net, device=device, example_batch=1, symmetries=symmetries
        )
        if simulations is None:
            simulations = 0 if cfg.algo == "ppo" else default_play_simulations(cfg)
        self.simulations = simulations
        self.search_config: SearchConfig | None = None  # None: the greedy policy, no search
        self.mcts: BatchedMCTS | None = None
        if simulations:
            config = search_config(cfg, evaluation=True)
            self.search_config = replace(config, num_simulations=simulations)
            self.mcts = BatchedMCTS(self.evaluator, self.search_config, seed=seed)

    def _search(self, game: Any) -> SearchResult:
        if self.mcts is not None:
            return self.mcts.search(game)
        logits, value = self.evaluator.evaluate(game)  # greedy: the policy's top move
        policy = softmax(logits)
        return SearchResult(
            action=logits.argmax(axis=1), policy=policy, visits=np.zeros_like(policy),
            q=np.zeros_like(policy), value=value, prior=policy,
        )  # fmt: skip

    @property
    def game_class(self) -> type[envs.BatchedGame]:
        return envs.game_class(self.cfg.game)

    def act(self, game: Any) -> np.ndarray:
        return self._search(game).action

    def analyse(self, moves: str) -> Analysis:
        """Search the position reached by ``moves`` (e.g. ``"4453"`` in Connect Four)."""
        game = self.game_class.from_moves(moves)
        if game.terminated[0]:
            raise ValueError(f"the game {moves!r} is over: there is nothing to analyse")
        result = self._search(game)
        action = int(result.action[0])
        return Analysis(
            moves=moves,
            action=action,
            move=game.notation_chars[action],
            value=float(np.clip(result.value[0], -1.0, 1.0)),
            policy=result.policy[0],
        )


def load_player(
    checkpoint: str | os.PathLike[str],
    *,
    simulations: int | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> TrainedPlayer:
    """The agent saved in ``checkpoint`` (a checkpoint file or a run directory).

    ``simulations``: the search budget per move (default: the run's ``play_simulations``, or
    its ``eval_simulations`` when that is 0; for a PPO run 0, the policy played greedily).
    """
    from selfplay.checkpoint import find_checkpoint, load_checkpoint
    from selfplay.config import config_from_dict, upgrade_saved_config

    if simulations is not None and (isinstance(simulations, bool) or simulations < 0):
        raise ValueError(f"simulations must be an integer >= 0, got {simulations!r}")
    path = find_checkpoint(checkpoint)
    ckpt = load_checkpoint(path)
    cfg = config_from_dict(upgrade_saved_config(ckpt.config))
    player = TrainedPlayer(
        cfg, ckpt.model, simulations=simulations, device=device, name=path.parent.name, seed=seed
    )
    player.ratings = ckpt.ratings  # the run's rating history, for plots (no second load)
    return player
