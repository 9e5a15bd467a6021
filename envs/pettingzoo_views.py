"""PettingZoo faces over a one-game core: an ``AECEnv`` and a ``ParallelEnv``.

Both present observations like ``pettingzoo.classic``: a dict with ``observation`` (int8 planes
``(rows, cols, 2)``, the observing agent's stones first) and ``action_mask`` (int8, all zeros when
it is not that agent's turn). The rules are the core's; these classes only translate.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from pettingzoo import AECEnv, ParallelEnv

import envs as registry
from envs.base import BatchedGame


def _spaces(core: BatchedGame) -> tuple[spaces.Dict, spaces.Discrete]:
    observation_space = spaces.Dict(
        {
            "observation": spaces.Box(0, 1, (core.rows, core.cols, 2), np.int8),
            "action_mask": spaces.Box(0, 1, (core.num_actions,), np.int8),
        }
    )
    return observation_space, spaces.Discrete(core.num_actions)


class _CoreView:
    """What both views share: one game, its agents, spaces, observations and text rendering."""

    metadata: dict[str, Any]

    def _init_view(self, game: str, render_mode: str | None, options: dict[str, Any]) -> None:
        if render_mode not in (None, "ansi", "human"):
            raise ValueError(f"unknown render_mode {render_mode!r}: allowed are None, ansi, human")
        self.core = registry.make(game, 1, **options)
        self.render_mode = render_mode
        self.possible_agents = [f"player_{i}" for i in range(self.core.num_players)]
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        observation_space, action_space = _spaces(self.core)
        self.observation_spaces = dict.fromkeys(self.possible_agents, observation_space)
        self.action_spaces = dict.fromkeys(self.possible_agents, action_space)
        self._cells = self.core._cell_bits  # (rows, cols) uint64
        self._no_moves = np.zeros(self.core.num_actions, np.int8)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def _observe(self, player: int) -> dict[str, np.ndarray]:
        core = self.core
        mover = int(core.moves[0]) & 1
        mine = core.position[0] if player == mover else core.position[0] ^ core.mask[0]
        theirs = mine ^ core.mask[0]
        planes = np.empty((core.rows, core.cols, 2), np.int8)  # (rows, cols, 2)
        planes[..., 0] = (self._cells & mine) != 0
        planes[..., 1] = (self._cells & theirs) != 0
        if player == mover and not core.terminated[0]:
            action_mask = core.legal_mask()[0].astype(np.int8)
        else:
            action_mask = self._no_moves.copy()
        return {"observation": planes, "action_mask": action_mask}

    def render(self) -> str | None:
        text = self.core.render(0)
        if self.render_mode == "human":
            print(text + "\n")
            return None
        return text

    def close(self) -> None:
        pass


class GameAECEnv(_CoreView, AECEnv):
    """Agent-environment-cycle view of one game of a selfplay core."""

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "name": "selfplay_game",
        "is_parallelizable": True,
    }

    def __init__(self, game: str = "connect_four", render_mode: str | None = None, **options: Any):
        super().__init__()
        self._init_view(game, render_mode, options)
        self.metadata = {**self.metadata, "name": f"selfplay_{game}"}
        self.agents: list[str] = []

    def reset(self, seed: int | None = None, options: dict | None = None) -> None:
        # The rules have no randomness; ``seed`` is accepted for the PettingZoo API.
        self.core.reset()
        self.agents = self.possible_agents[:]
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos: dict[str, dict] = {agent: {} for agent in self.agents}
        self.agent_selection = self.possible_agents[0]

    def observe(self, agent: str) -> dict[str, np.ndarray]:
        return self._observe(self._index[agent])

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        if action is None or not 0 <= int(action) < self.core.num_actions:
            raise ValueError(
                f"illegal action {action!r} for {agent}: actions are 0..{self.core.num_actions - 1}"
            )
        self._cumulative_rewards[agent] = 0.0
        rewards, terminated = self.core.step(np.array([int(action)]))
        for i, name in enumerate(self.possible_agents):
            self.rewards[name] = float(rewards[0, i])
        if terminated[0]:
            self.terminations = dict.fromkeys(self.agents, True)
        self.agent_selection = self.possible_agents[int(self.core.moves[0]) & 1]
        self._accumulate_rewards()
        if self.render_mode == "human":
            self.render()


class GameParallelEnv(_CoreView, ParallelEnv):
    """Simultaneous-action view: every live agent sends an action; only the mover's is played.

    The agent who is not on turn sees an all-zero ``action_mask`` and its action is ignored.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "render_modes": ["ansi", "human"],
        "name": "selfplay_game_parallel",
    }

    def __init__(self, game: str = "connect_four", render_mode: str | None = None, **options: Any):
        self._init_view(game, render_mode, options)
        self.metadata = {**self.metadata, "name": f"selfplay_{game}_parallel"}
        self.agents: list[str] = []

    def reset(
        self, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, dict]]:
        self.core.reset()
        self.agents = self.possible_agents[:]
        return self._observations(), {agent: {} for agent in self.agents}

    def _observations(self) -> dict[str, dict[str, np.ndarray]]:
        return {agent: self._observe(self._index[agent]) for agent in self.agents}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        mover = self.possible_agents[int(self.core.moves[0]) & 1]
        if mover not in actions:
            raise ValueError(
                f"no action for {mover}, whose turn it is: got actions for {list(actions)}"
            )
        action = actions[mover]
        if not 0 <= int(action) < self.core.num_actions:
            raise ValueError(
                f"illegal action {action!r} for {mover}: actions are 0..{self.core.num_actions - 1}"
            )
        rewards_array, terminated = self.core.step(np.array([int(action)]))
        rewards = {a: float(rewards_array[0, self._index[a]]) for a in self.agents}
        done = bool(terminated[0])
        terminations = dict.fromkeys(self.agents, done)
        truncations = dict.fromkeys(self.agents, False)
        observations = self._observations()
        infos: dict[str, dict] = {agent: {} for agent in self.agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos


def aec_env(
    game: str = "connect_four", render_mode: str | None = None, **options: Any
) -> GameAECEnv:
    """An AEC view of one game of ``game`` (options as for ``envs.make``)."""
    return GameAECEnv(game, render_mode, **options)


def parallel_env(
    game: str = "connect_four", render_mode: str | None = None, **options: Any
) -> GameParallelEnv:
    """A Parallel view of one game of ``game`` (options as for ``envs.make``)."""
    return GameParallelEnv(game, render_mode, **options)
