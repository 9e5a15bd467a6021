"""Play any external PettingZoo AEC env with action masks through the batched-core interface.

``PettingZooGame`` holds N copies of the env and offers what generic players and the arena use
(``legal_mask``, ``current_player``, ``step(actions, where)``, ``terminated``, ``clone``, ``take``,
``observation``, ``random_legal_actions``). It is a Python loop over envs — far slower than our own
cores — but it lets our agents play ``connect_four_v3``, ``tictactoe_v3``, ``go_v5`` and the like
without code changes.

``envs.make("pettingzoo:connect_four_v3", num_envs=8)`` builds one from a module of
``pettingzoo.classic`` (or ``pettingzoo:<dotted.module>`` for any module with an ``env()``).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from envs.base import _check_num_envs

PREFIX = "pettingzoo:"


def load_env_fn(spec: str) -> Callable[[], Any]:
    """``connect_four_v3`` (a ``pettingzoo.classic`` module) or a dotted module path -> env()."""
    module_name = spec if "." in spec else f"pettingzoo.classic.{spec}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(
            f"cannot import PettingZoo env module {module_name!r} ({error}); use a module of "
            "pettingzoo.classic such as connect_four_v3 or tictactoe_v3, or a dotted path"
        ) from None
    if not hasattr(module, "env"):
        raise ValueError(f"module {module_name!r} has no env() constructor")
    return module.env


class PettingZooGame:
    """N games of an external two-player PettingZoo AEC env whose observations carry an
    ``action_mask``. Agents are players in ``possible_agents`` order."""

    def __init__(
        self, env_fn: Callable[[], Any], num_envs: int = 1, *, seed: int | None = None
    ) -> None:
        self.num_envs = _check_num_envs(num_envs)
        self._env_fn = env_fn
        self._seed = seed
        self.envs = [env_fn() for _ in range(self.num_envs)]
        probe = self.envs[0]
        probe.reset(seed=seed)
        self.agents = list(probe.possible_agents)
        self.num_players = len(self.agents)
        first = self.agents[0]
        observation = probe.observe(first)
        if not isinstance(observation, dict) or "action_mask" not in observation:
            raise ValueError(
                f"{probe.metadata.get('name', probe)} observations have no 'action_mask': the "
                "adapter needs action-masked envs like pettingzoo.classic"
            )
        self.num_actions = int(probe.action_space(first).n)
        self.name = str(probe.metadata.get("name", type(probe).__name__))
        self._index = {agent: i for i, agent in enumerate(self.agents)}
        self.reset()

    def reset(self, where: Any = None) -> None:
        games = range(self.num_envs) if where is None else self._indices(where)
        if where is None:
            self.terminated = np.zeros(self.num_envs, bool)
            self.winner = np.full(self.num_envs, -1, np.int8)
            self.history: list[list[int]] = [[] for _ in range(self.num_envs)]
        for g in games:
            self.envs[g].reset(seed=self._seed)
            self.terminated[g] = False
            self.winner[g] = -1
            self.history[g] = []

    def _indices(self, where: Any) -> np.ndarray:
        where = np.asarray(where)
        return np.flatnonzero(where) if where.dtype == bool else where.astype(np.int64)

    def current_player(self) -> np.ndarray:
        return np.array([self._index[env.agent_selection] for env in self.envs], np.int64)

    def legal_mask(self) -> np.ndarray:
        legal = np.zeros((self.num_envs, self.num_actions), bool)  # (N, A)
        for g, env in enumerate(self.envs):
            if not self.terminated[g]:
                legal[g] = np.asarray(env.observe(env.agent_selection)["action_mask"], bool)
        return legal

    def observation(self) -> np.ndarray:
        """float32 (N, ...): each env's observation for its agent to move (HWC planes -> CHW)."""
        planes = [
            np.asarray(env.observe(env.agent_selection)["observation"], np.float32)
            for env in self.envs
        ]
        batch = np.stack(planes)
        return batch.transpose(0, 3, 1, 2) if batch.ndim == 4 else batch

    def random_legal_actions(self, rng: np.random.Generator) -> np.ndarray:
        legal = self.legal_mask()
        scores = rng.random(legal.shape)
        scores[~legal] = -1.0
        return scores.argmax(axis=1)

    def step(self, actions: Any, where: Any = None) -> tuple[np.ndarray, np.ndarray]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(
                f"actions must have shape ({self.num_envs},) (one per game), got {actions.shape}"
            )
        moving = np.ones(self.num_envs, bool) if where is None else np.asarray(where, bool)
        rewards = np.zeros((self.num_envs, self.num_players), np.float32)
        done = np.zeros(self.num_envs, bool)
        legal = self.legal_mask()
        games = np.flatnonzero(moving)
        for g in games:  # refuse a bad batch before any env moves
            if self.terminated[g]:
                raise ValueError(f"game {g} is over; reset it or leave it out with `where`")
            action = int(actions[g])
            if not 0 <= action < self.num_actions or not legal[g, action]:
                raise ValueError(
                    f"illegal move {action} in game {g} of {self.name}: legal actions are "
                    f"{np.flatnonzero(legal[g]).tolist()}"
                )
        for g in games:
            action = int(actions[g])
            env = self.envs[g]
            env.step(action)
            self.history[g].append(action)
            for agent, reward in env.rewards.items():
                rewards[g, self._index[agent]] = reward
            if any(env.terminations.values()) or any(env.truncations.values()):
                done[g] = True
                scores = rewards[g]
                if scores.max() > scores.min():
                    self.winner[g] = int(scores.argmax())
        self.terminated |= done
        return rewards, done

    def take(self, indices: Any) -> PettingZooGame:
        index = self._indices(indices)
        if index.size == 0:
            raise ValueError("take() needs at least one game, got an empty selection")
        other = copy.copy(self)
        other.num_envs = len(index)
        # PettingZoo's wrappers do not survive deepcopy, so a copy is a fresh env (same seed)
        # with the game's actions replayed: slow, but right for any deterministic env.
        other.envs = [self._replay(self.history[g]) for g in index]
        other.terminated = self.terminated[index].copy()
        other.winner = self.winner[index].copy()
        other.history = [list(self.history[g]) for g in index]
        return other

    def _replay(self, actions: list[int]) -> Any:
        env = self._env_fn()
        env.reset(seed=self._seed)
        for action in actions:
            env.step(action)
        return env

    def clone(self) -> PettingZooGame:
        return self.take(np.arange(self.num_envs))

    def to_moves(self, game: int = 0) -> str:
        """The actions played, comma-separated (external envs have no notation of ours)."""
        return ",".join(map(str, self.history[game]))

    def render(self, game: int = 0) -> str:
        return f"{self.name} after actions [{self.to_moves(game)}]"

    def __len__(self) -> int:
        return self.num_envs
