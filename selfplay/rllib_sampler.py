"""An RLlib EnvRunner that steps all its self-play games on one batched core.

RLlib's `MultiAgentEnvRunner` steps each of its games through the PettingZoo wrapper one at a
time and runs its connector pipelines on every vector step; on this project's 2-core machine
that bookkeeping is most of PPO's sampling time (about 200 us per Connect Four ply, against a
few us for the move itself). `BatchedSelfPlayEnvRunner` keeps RLlib's EnvRunner (modules,
weights, league snapshots added and removed, the policy_mapping_fn, callbacks, metrics) and
replaces only the sampling loop:

- the games of one EnvRunner are one `envs` core (`envs.make(game, n)`), stepped in a single
  array operation; observations and legal masks come from the core for all games at once;
- each vector step groups the games by the module that moves in them (the learner, or the
  league snapshot its episode drew) and runs one forward pass per module; actions are drawn
  from the module's own action distribution, exactly as RLlib's connectors would;
- every step is recorded through `MultiAgentEpisode.add_env_step` with the observations,
  rewards and flags RLlib's `PettingZooEnv` returns for the same move (tested move by move
  against it), so the episodes the learner receives are the ones RLlib would have built;
- `sample(num_timesteps=n)` returns finished games only, at least n environment steps of them;
  games still running stay on the core for the next call (as RLlib's episode chunks do),
  except those whose opponent module the league removed in between: they start over.

Anything else (no game core of ours, random actions, sampling without exploration, a number
of episodes) goes through RLlib's own loop. Callbacks: ``on_episode_start``, ``on_episode_step``
(after each move is recorded) and ``on_episode_end`` get RLlib's arguments, the episode first;
``on_episode_step`` only when a callback class overrides it or
``config.callbacks(on_episode_step=...)`` set a function (nothing of ours does: a dispatch per
game per move would cost more than the move). Their ``env`` is RLlib's env object, which this
loop does not step: read the game from the episode, not from ``env``. A game started over
(below) gets no ``on_episode_end``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.metrics import (
    NUM_AGENT_STEPS_SAMPLED,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    NUM_EPISODES,
    NUM_EPISODES_LIFETIME,
    NUM_MODULE_STEPS_SAMPLED,
    NUM_MODULE_STEPS_SAMPLED_LIFETIME,
    WEIGHTS_SEQ_NO,
)
from ray.rllib.utils.numpy import convert_to_numpy

import envs
from envs.base import BatchedGame


class IllegalActionError(ValueError):
    """An agent sent an action its observation's action_mask forbade."""


def opening_positions(
    core: BatchedGame, games: np.ndarray, max_plies: int, rng: np.random.Generator
) -> None:
    """Reset ``games`` (indices) and play n uniformly random legal plies in each, n uniform in
    0..max_plies; games the opening already ends are drawn again."""
    pending = np.asarray(games, np.int64)
    while pending.size:
        where = np.zeros(core.num_envs, bool)
        where[pending] = True
        core.reset(where)
        plies = rng.integers(max_plies + 1, size=pending.size) if max_plies else None
        for ply in range(int(plies.max()) if plies is not None and plies.size else 0):
            step = np.zeros(core.num_envs, bool)
            step[pending[plies > ply]] = True
            step &= ~core.terminated
            if not step.any():
                break
            core.step(core.random_legal_actions(rng), where=step)
        pending = pending[core.terminated[pending]]


def to_pettingzoo(planes: np.ndarray, legal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Our cores' (N, 2, rows, cols) planes (``planes()`` or ``observation()``) and bool (N, A)
    legal mask in the layout of our PettingZoo observations, which the RLModule reads: planes
    int8 (N, rows, cols, 2), the mover's stones first, and the action mask int8 (N, A)."""
    return (
        np.ascontiguousarray(planes.transpose(0, 2, 3, 1), dtype=np.int8),
        legal.astype(np.int8),
    )


def observations(core: BatchedGame) -> tuple[np.ndarray, np.ndarray]:
    """The PettingZoo observation of the player to move in every game (`to_pettingzoo`), as
    `envs.pettingzoo_views` builds them one game at a time."""
    return to_pettingzoo(core.planes(), core.legal_mask())


def transition(
    agents: list[str],
    planes: np.ndarray,
    legal: np.ndarray,
    rewards: np.ndarray,
    done: bool,
    next_player: int,
) -> tuple[dict, dict, dict, dict]:
    """What RLlib's `PettingZooEnv.step` returns after one move of a game over our AEC view:
    (observations, rewards, terminateds, truncateds) dicts by agent name (infos: ``{}`` for each
    observed agent).

    ``planes`` (rows, cols, 2) and ``legal`` (A,): the core's view after the move (the player
    to move next, ``next_player``, first); ``rewards`` (2,): this move's rewards by player.
    Mid-game only the next mover is reported; at the end both agents are, the one whose turn
    it would be first, each with its own view and no legal move.
    """
    next_agent = agents[next_player]
    if not done:
        return (
            {next_agent: {"observation": planes, "action_mask": legal}},
            {next_agent: float(rewards[next_player])},
            {next_agent: False, "__all__": False},
            {next_agent: False, "__all__": False},
        )
    other = agents[1 - next_player]
    no_moves = np.zeros_like(legal)
    theirs = planes[..., ::-1].copy()  # the other side's view: the two planes swapped
    return (
        {
            next_agent: {"observation": planes, "action_mask": no_moves},
            other: {"observation": theirs, "action_mask": no_moves},
        },
        {next_agent: float(rewards[next_player]), other: float(rewards[1 - next_player])},
        {next_agent: True, other: True, "__all__": True},
        {next_agent: False, other: False, "__all__": False},
    )


class BatchedSelfPlayEnvRunner(MultiAgentEnvRunner):
    """`MultiAgentEnvRunner` whose ``sample(num_timesteps=...)`` steps its games as one batch
    (see the module docstring). Configured by `selfplay.rllib_bridge.build_ppo` through
    ``config.env_runners(env_runner_cls=...)``; reads the env_config of `register_envs`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        env_config = dict(self.config.env_config or {})
        game = env_config.get("game", "connect_four")
        self._core: BatchedGame | None = None
        if self.env is not None and self.num_envs > 0:  # the driver's holds none beside remotes
            core = envs.make(game, self.num_envs, **dict(env_config.get("options", {})))
            # our own cores only (a pettingzoo:<env> adapter samples through RLlib's loop)
            self._core = core if isinstance(core, BatchedGame) else None
        self._opening_plies = int(env_config.get("opening_plies", 0))
        self._agents = [f"player_{i}" for i in range(BatchedGame.num_players)]
        seed = self.config.seed
        self._rng = np.random.default_rng(None if seed is None else [seed, self.worker_index])
        self._games: list[MultiAgentEpisode] = []  # the episode of each game on the core
        # moves checked against the mover's legal mask (an illegal one raises)
        self.checked_actions = 0
        # games started over because a module they played was removed (see _sample)
        self.dropped_games = 0

    @property
    def step_callbacks(self) -> bool:
        """Whether anyone asked for ``on_episode_step`` (see the module docstring)."""
        if getattr(self.config, "callbacks_on_episode_step", None):
            return True
        return any(
            type(callback).on_episode_step is not RLlibCallback.on_episode_step
            for callback in self._callbacks
        )

    # --- RLlib's entry point ----------------------------------------------------------------

    def _sample(
        self,
        *,
        num_timesteps: int | None = None,
        num_episodes: int | None = None,
        explore: bool,
        random_actions: bool = False,
        force_reset: bool = False,
    ) -> list[MultiAgentEpisode]:
        if self._core is None or num_timesteps is None or random_actions or not explore:
            return super()._sample(
                num_timesteps=num_timesteps,
                num_episodes=num_episodes,
                explore=explore,
                random_actions=random_actions,
                force_reset=force_reset,
            )
        if force_reset or not self._games:
            self._start(np.arange(self.num_envs), new=True)
        else:
            self._drop_games_of_removed_modules()
        return self._play(num_timesteps)

    # --- the batched loop -------------------------------------------------------------------

    def _drop_games_of_removed_modules(self) -> None:
        """Start over the games that play a module removed since the last call (a league
        snapshot evicted after the last update): finished later, such a game would reach the
        learner with steps of a module it no longer has. Its steps so far are dropped."""
        present = set(self.module.keys())
        stale = [
            i
            for i, episode in enumerate(self._games)
            if any(episode.module_for(agent) not in present for agent in self._agents)
        ]
        if stale:
            self.dropped_games += len(stale)
            self._start(np.asarray(stale))

    def _start(self, games: np.ndarray, new: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """New episodes in ``games``: the opening on the core, RLlib's reset step, callbacks.
        Returns the observations of every game afterwards (`observations`)."""
        if new:
            self._games = [None] * self.num_envs  # type: ignore[list-item]
        opening_positions(self._core, games, self._opening_plies, self._rng)
        planes, legal = observations(self._core)
        mover = self._core.current_player()
        for i in games.tolist():
            self._new_episode(i, self._games)
            agent = self._agents[mover[i]]
            self._games[i].add_env_reset(
                observations={agent: {"observation": planes[i], "action_mask": legal[i]}},
                infos={},  # what PettingZooEnv.reset returns for our AEC views
            )
            self._make_on_episode_callback("on_episode_start", i, self._games)
        return planes, legal

    def _act(self, planes: np.ndarray, legal: np.ndarray, mover: np.ndarray) -> tuple:
        """One forward pass per module that moves somewhere: actions (N,) (int32, as RLlib
        stores them), their log-probabilities float32 (N,), the distribution inputs float32
        (N, A)."""
        n, num_actions = legal.shape
        modules = [self._games[i].module_for(self._agents[mover[i]]) for i in range(n)]
        actions: np.ndarray | None = None  # the dtype the module's distribution samples in
        logp = np.zeros(n, np.float32)
        dist_inputs = np.zeros((n, num_actions), np.float32)
        by_module: dict[str, list[int]] = {}
        for i, module_id in enumerate(modules):
            by_module.setdefault(module_id, []).append(i)
        with torch.no_grad():
            for module_id, rows in by_module.items():
                module = self.module[module_id]
                index = np.asarray(rows)
                obs = {
                    "observation": torch.from_numpy(planes[index]),
                    "action_mask": torch.from_numpy(legal[index]),
                }
                out = module.forward_exploration({Columns.OBS: obs})
                logits = out[Columns.ACTION_DIST_INPUTS]
                dist = module.get_exploration_action_dist_cls().from_logits(logits)
                # to numpy as RLlib's TensorToNumpy connector does (int64 becomes int32)
                sample = dist.sample()
                chosen = convert_to_numpy(sample)
                if actions is None:
                    actions = np.zeros(n, chosen.dtype)
                actions[index] = chosen
                logp[index] = dist.logp(sample).float().numpy()
                dist_inputs[index] = logits.float().numpy()
        played = legal[np.arange(n), actions]
        self.checked_actions += n
        if not played.all():
            i = int(np.flatnonzero(played == 0)[0])
            raise IllegalActionError(
                f"{self._agents[mover[i]]} played {int(actions[i])} in game {i}, illegal "
                f"there: legal are {np.flatnonzero(legal[i]).tolist()}"
            )
        return actions, logp, dist_inputs

    def _play(self, num_timesteps: int) -> list[MultiAgentEpisode]:
        core, agents = self._core, self._agents
        done_episodes: list[MultiAgentEpisode] = []
        returned_steps = 0
        planes, legal = observations(core)
        step_callbacks = self.step_callbacks
        while returned_steps < num_timesteps:
            mover = core.current_player()  # (N,)
            actions, logp, dist_inputs = self._act(planes, legal, mover)
            rewards, done = core.step(actions)  # (N, 2), (N,)
            planes, legal = observations(core)  # after the move: the next mover's view
            nxt = core.current_player()
            for i in range(core.num_envs):
                agent = agents[mover[i]]
                obs, reward, terminated, truncated = transition(
                    agents, planes[i], legal[i], rewards[i], bool(done[i]), int(nxt[i])
                )
                self._games[i].add_env_step(
                    observations=obs,
                    actions={agent: actions[i]},
                    rewards=reward,
                    infos={a: {} for a in obs},
                    terminateds=terminated,
                    truncateds=truncated,
                    extra_model_outputs={
                        agent: {
                            Columns.ACTION_DIST_INPUTS: dist_inputs[i],
                            Columns.ACTION_LOGP: logp[i],
                            WEIGHTS_SEQ_NO: self._weights_seq_no,
                        }
                    },
                )
                if step_callbacks:  # after the step is recorded, as RLlib's loop does
                    self._make_on_episode_callback("on_episode_step", i, self._games)
            finished = np.flatnonzero(done)
            for i in finished.tolist():
                episode = self._games[i]
                self._make_on_episode_callback("on_episode_end", i, self._games)
                self._prune_zero_len_sa_episodes(episode)
                done_episodes.append(episode)
                returned_steps += episode.env_steps()
            if finished.size:
                planes, legal = self._start(finished)
        self._log_sampled(done_episodes)
        self._done_episodes_for_metrics.extend(done_episodes)
        return done_episodes

    def _log_sampled(self, episodes: list[MultiAgentEpisode]) -> None:
        """RLlib's step counters (its `_increase_sampled_metrics`), for the steps of the
        episodes returned: RLlib's sampling loop (`synchronous_parallel_sample`) reads
        NUM_ENV_STEPS_SAMPLED to decide whether a training batch is complete, so it must count
        what the batch holds. Each step is counted once, when its finished game is returned."""
        env_steps = sum(episode.env_steps() for episode in episodes)
        agent_steps: Counter[str] = Counter()
        module_steps: Counter[str] = Counter()
        for episode in episodes:
            for agent, single in episode.agent_episodes.items():
                agent_steps[agent] += len(single)
                module_steps[episode.module_for(agent)] += len(single)
        metrics = self.metrics
        self._log_env_steps(metric=self._metrics_num_env_steps_sampled, num_steps=env_steps)
        metrics.log_value(NUM_ENV_STEPS_SAMPLED, env_steps, reduce="sum")
        metrics.log_value(
            NUM_ENV_STEPS_SAMPLED_LIFETIME, env_steps, reduce="lifetime_sum", with_throughput=True
        )
        if episodes:
            metrics.log_value(NUM_EPISODES, len(episodes), reduce="sum")
            metrics.log_value(NUM_EPISODES_LIFETIME, len(episodes), reduce="lifetime_sum")
        for agent, count in agent_steps.items():
            metrics.log_value((NUM_AGENT_STEPS_SAMPLED, str(agent)), count, reduce="sum")
            metrics.log_value(
                (NUM_AGENT_STEPS_SAMPLED_LIFETIME, str(agent)), count, reduce="lifetime_sum"
            )
        for module_id, count in module_steps.items():
            metrics.log_value((NUM_MODULE_STEPS_SAMPLED, module_id), count, reduce="sum")
            metrics.log_value(
                (NUM_MODULE_STEPS_SAMPLED_LIFETIME, module_id), count, reduce="lifetime_sum"
            )
