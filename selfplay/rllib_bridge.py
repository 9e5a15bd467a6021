"""The RLlib bridge: our networks as RLModules, our games in RLlib's multi-agent API, PPO self-play.

A thin adapter (RLlib's new API stack: RLModule / Learner / EnvRunner); nothing of RLlib's
configuration enters `TrainConfig` beyond what `PPOSettings` names::

    PolicyValueRLModule      our `build_network(config)` as a TorchRLModule + ValueFunctionAPI;
                             the action mask is applied inside the module (by our net)
    register_envs()          "selfplay_<game>" -> RLlib's PettingZooEnv over `envs.aec_env(game)`
                             (turn-based: only the agent to move gets an observation and acts;
                             optionally after a few random opening plies)
    BatchedSelfPlayEnvRunner (selfplay.rllib_sampler) the EnvRunner that plays those games as
                             one batch on our core and records what the env would report
    EpisodeMapping           the policy_mapping_fn: per episode, the learner "main" takes a seat
                             and the opponent is drawn from a frozen copy of the league's
                             distribution; a pure function of the episode id
    LeagueCallback           snapshots "main" every N iterations into a frozen module (never
                             trained), drops what the league evicts, records results per opponent
    SelfPlayLeague           the league: `selfplay.league.League` with the live learner as
                             "latest" (past snapshots uniform, PFSP)
    train_ppo(...)           PPOConfig -> algo.train() loop for a time budget, checkpoints
                             (`save_to_path` + league.json), resume, final evaluation in our arena

Another league plugs in through the small `BridgeLeague` protocol (`opponent_distribution`,
`add_snapshot`, `record`, `snapshot_names`, `state_dict`/`load_state_dict`). The EnvRunners see
only the distribution, copied into each new mapping (shipped whenever the league changes).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import shutil
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import ray
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv
from ray.tune.registry import register_env

import envs
from agents.evaluator import pick_device
from agents.networks import (
    NETWORK_CONFIGS,
    NetworkConfig,
    PolicyValueNet,
    SymmetryIndex,
    build_network,
    network_config_for_game,
    symmetric_forward,
)
from agents.players import make_player
from selfplay.arena import play_match
from selfplay.config import PRECISIONS, actor_device, learner_placement
from selfplay.league import LEAGUE_PREFIX, League, LeagueConfig
from selfplay.rllib_sampler import BatchedSelfPlayEnvRunner, IllegalActionError, to_pettingzoo
from selfplay.tracking import write_json_atomic

logger = logging.getLogger(__name__)

LEARNER = "main"
"""Module id of the one module that trains."""
ENV_PREFIX = "selfplay_"
"""RLlib env names are ``selfplay_<game>`` (``selfplay_connect_four``, ``selfplay_tictactoe``)."""
MASKED_LOGIT = -1e9
"""What illegal actions' logits become in RLlib's hands. Our nets put -inf there, which RLlib's
Categorical survives for sampling but not for every loss term (a KL of two -inf logits is
-inf - -inf = NaN); a large finite value gives the same probabilities (exp underflows to 0) and
keeps every term finite, also for terminal observations whose mask is all zeros."""
GREEDY_KEY = "selfplay_greedy"
"""Key of a module's greedy flag in its model_config: it plays its most likely legal move
(ties drawn at random) also when RLlib samples (frozen league snapshots with league_greedy)."""
SYMMETRIES_KEY = "selfplay_symmetries"
"""Key of the board symmetries ``[(cell_perm, action_perm), ...]`` the module averages over."""
PRECISION_KEY = "selfplay_precision"
"""Key of the module's matmul number format: "float32" (default) or "bfloat16" (autocast)."""
NETWORK_KEY = "selfplay_network"
"""Key of our network's config inside an RLModuleSpec's model_config."""
LEAGUE_FILE = "league.json"
CHECKPOINT_DIR = "rllib_checkpoint"


# --------------------------------------------------------------------------------------------
# Network configs <-> RLlib model_config (plain, picklable, JSON-able dicts)
# --------------------------------------------------------------------------------------------

_NET_KINDS = NETWORK_CONFIGS


def model_config_for(network: NetworkConfig) -> dict[str, Any]:
    """``network`` as the plain dict an `RLModuleSpec`'s ``model_config`` carries."""
    for kind, cls in _NET_KINDS.items():
        if isinstance(network, cls):
            fields = dataclasses.asdict(network)
            if "hidden" in fields:
                fields["hidden"] = list(fields["hidden"])  # JSON has no tuples
            return {"net": kind, **fields}
    raise ValueError(
        f"unknown network config {type(network).__name__}; expected one of "
        f"{', '.join(c.__name__ for c in _NET_KINDS.values())}"
    )


def network_config_from(model_config: Mapping[str, Any]) -> NetworkConfig:
    """The inverse of `model_config_for`."""
    fields = dict(model_config)
    kind = fields.pop("net", None)
    if kind not in _NET_KINDS:
        raise ValueError(
            f"model_config['net'] must be one of {', '.join(_NET_KINDS)}, got {kind!r}"
        )
    if "hidden" in fields:
        fields["hidden"] = tuple(fields["hidden"])
    return _NET_KINDS[kind](**fields)


# --------------------------------------------------------------------------------------------
# The RLModule
# --------------------------------------------------------------------------------------------


def observation_to_net_inputs(
    net: PolicyValueNet, obs: Mapping[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A PettingZoo observation dict (batched by RLlib) -> ``(x, legal_mask)`` for ``net``.

    ``obs["observation"]``: (B, rows, cols, 2) planes, the observer's stones first (int8 from
    the env; RLlib keeps the dtype); ``obs["action_mask"]``: (B, A), 1 = legal.
    """
    planes = obs["observation"]  # (B, rows, cols, 2)
    legal_mask = obs["action_mask"] > 0  # (B, A) bool
    if net.input_kind == "tokens":
        stones = planes.long()  # (B, rows, cols, 2)
        x = (stones[..., 0] + 2 * stones[..., 1]).flatten(1)  # (B, rows*cols): 0/1/2
    else:
        # our nets read channels first: (B, rows, cols, 2) -> (B, 2, rows, cols)
        x = planes.permute(0, 3, 1, 2).float()
    return x, legal_mask


class PolicyValueRLModule(TorchRLModule, ValueFunctionAPI):
    """One of our policy-value nets as an RLlib RLModule (PPO-ready: it has a value function).

    ``model_config`` is ``{NETWORK_KEY: model_config_for(network_config)}`` (see
    `module_spec`). The observation space must be the
    PettingZoo dict (``observation`` planes + ``action_mask``); masking happens here, through
    our net's head, so no RLlib connector or wrapper has to know about masks.
    """

    def setup(self) -> None:
        if not isinstance(self.observation_space, gym.spaces.Dict) or set(
            self.observation_space.spaces
        ) != {"observation", "action_mask"}:
            raise ValueError(
                "PolicyValueRLModule needs a Dict observation space with keys observation and "
                f"action_mask (our PettingZoo views), got {self.observation_space}"
            )
        # RLlib merges its own defaults (vf_share_layers, fcnet_hiddens, ...) into
        # model_config, so our net's config travels under one key of its own.
        model_config = self.model_config or {}
        if NETWORK_KEY not in model_config:
            raise ValueError(
                f"model_config needs {NETWORK_KEY!r} (see module_spec), "
                f"got keys {sorted(model_config)}"
            )
        self.network_config = network_config_from(model_config[NETWORK_KEY])
        self.net = build_network(self.network_config)
        # the board symmetries to average over (`agents.networks.symmetric_forward`); none:
        # the net as it is
        self.symmetries = [
            (np.asarray(cells), np.asarray(actions))
            for cells, actions in model_config.get(SYMMETRIES_KEY, ())
        ]
        self._symmetry_index: dict[torch.device, SymmetryIndex] = {}  # built once per device
        # bfloat16: the net's matrix products run under autocast (float32 weights, optimizer
        # and loss); outputs come back float32 for RLlib's distributions and PPO's ratios
        precision = model_config.get(PRECISION_KEY, "float32")
        self.bfloat16 = resolve_precision(precision) == "bfloat16"
        self.greedy = bool(model_config.get(GREEDY_KEY, False))

    @contextlib.contextmanager
    def float32(self) -> Iterator[PolicyValueRLModule]:
        """Inside the block the net computes in float32 whatever the module's precision (greedy
        play and evaluation: the agent as `export_policy` saves it, which plays in float32)."""
        saved, self.bfloat16 = self.bfloat16, False
        try:
            yield self
        finally:
            self.bfloat16 = saved

    def _net(self, x: torch.Tensor, legal_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bfloat16):
            if self.symmetries:
                index = self._symmetry_index.get(x.device)
                if index is None:
                    index = SymmetryIndex(self.symmetries, x.device)
                    self._symmetry_index[x.device] = index
                logits, value = symmetric_forward(self.net.forward_unchecked, x, legal_mask, index)
            else:
                logits, value = self.net.forward_unchecked(x, legal_mask)
        return logits.float(), value.float()

    def _policy_value(self, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        x, legal_mask = observation_to_net_inputs(self.net, batch[Columns.OBS])
        self.net.check_inputs(x, legal_mask)
        logits, value = self._net(x, legal_mask)  # (B, A) with -inf on illegal, (B,)
        return logits.masked_fill(~legal_mask, MASKED_LOGIT), value

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, _ = self._policy_value(batch)
        if self.greedy:  # only the best legal moves keep their logit: sampling takes one of them
            best = logits.max(dim=-1, keepdim=True).values
            logits = logits.masked_fill(logits < best, MASKED_LOGIT)
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, value = self._policy_value(batch)
        # PPO's loss calls compute_values(batch, embeddings=fwd_out[EMBEDDINGS]); handing the
        # value over as the "embedding" saves a second forward pass of the whole net.
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: value}

    def compute_values(
        self, batch: dict[str, Any], embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Values (B,) in [-1, 1] from the observer's (the mover's) point of view."""
        if embeddings is not None:
            return embeddings
        # Called by the GAE connector for every module, frozen snapshots included, while the
        # module may be in train mode: eval mode keeps BatchNorm's running statistics intact.
        was_training = self.training
        self.eval()
        try:
            x, legal_mask = observation_to_net_inputs(self.net, batch[Columns.OBS])
            _, value = self._net(x, legal_mask)  # all-zero masks are fine
        finally:
            self.train(was_training)
        return value


BFLOAT16_CPU_FLAGS = frozenset(("avx512_bf16", "amx_bf16", "bf16"))
"""/proc/cpuinfo flags of CPUs that multiply bfloat16 natively (x86 AVX-512 BF16 and AMX, ARM
BF16); elsewhere oneDNN emulates it, slower than float32."""


def cpu_has_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this machine's CPU multiplies bfloat16 natively, from ``cpuinfo`` (the text of
    /proc/cpuinfo; read when None). False where there is no /proc/cpuinfo."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return not BFLOAT16_CPU_FLAGS.isdisjoint(value.split())
    return False


def resolve_precision(precision: str) -> str:
    """``precision`` (auto, float32, bfloat16) as the module takes it: auto is bfloat16 when
    the CPU multiplies it natively (`cpu_has_bfloat16`), else float32."""
    if precision == "auto":
        return "bfloat16" if cpu_has_bfloat16() else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def module_spec(
    network: NetworkConfig,
    game: str,
    *,
    symmetric: bool = False,
    precision: str = "float32",
    **game_options: Any,
) -> RLModuleSpec:
    """The RLModuleSpec of ``network`` for ``game``'s spaces; ``symmetric``: the module
    averages the net over the game's board symmetries (`symmetric_forward`); ``precision``:
    float32, or bfloat16 for the net's matrix products (autocast)."""
    view = envs.aec_env(game, **game_options)
    agent = view.possible_agents[0]
    model_config: dict[str, Any] = {NETWORK_KEY: model_config_for(network)}
    if precision != "float32":
        model_config[PRECISION_KEY] = precision
    if symmetric:
        model_config[SYMMETRIES_KEY] = [
            (cells.tolist(), actions.tolist())
            for cells, actions in envs.make(game, 1, **game_options).symmetries()
        ]
    return RLModuleSpec(
        module_class=PolicyValueRLModule,
        observation_space=view.observation_space(agent),
        action_space=view.action_space(agent),
        model_config=model_config,
    )


def greedy_actions(
    module: PolicyValueRLModule, planes: np.ndarray, legal: np.ndarray
) -> np.ndarray:
    """int64 (N,): the module's greedy legal action per position, through `forward_inference`
    in float32 (as the exported agent plays, also when the module trains in bfloat16).

    ``planes``: (N, 2, rows, cols) from the mover's view (our cores' ``observation()``);
    ``legal``: bool (N, A).
    """
    pettingzoo_planes, action_mask = to_pettingzoo(planes, legal)  # the layout the module reads
    obs = {
        "observation": torch.from_numpy(pettingzoo_planes),  # (N, rows, cols, 2)
        "action_mask": torch.from_numpy(action_mask),  # (N, A)
    }
    with torch.no_grad(), module.float32():
        out = module.forward_inference({Columns.OBS: obs})
    return out[Columns.ACTION_DIST_INPUTS].argmax(dim=1).cpu().numpy().astype(np.int64)


class RLModulePlayer:
    """Our player protocol over an RLModule's greedy masked policy (for `play_match`)."""

    def __init__(self, module: PolicyValueRLModule, name: str = "ppo") -> None:
        self.module = module
        self.name = name

    def act(self, game: Any) -> np.ndarray:
        """int64 (N,): the greedy legal action in each game of the batch ``game``."""
        return greedy_actions(self.module, game.observation(), game.legal_mask())


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------


class MaskCheckedPettingZooEnv(PettingZooEnv):
    """RLlib's AEC wrapper, refusing any action the mover's ``action_mask`` forbids.

    Our cores treat an illegal move as a loss rather than an error; under RLlib a masked
    policy must never send one, so here it is an error that stops training, and
    ``illegal_actions`` counts them out of ``checked_actions`` (for tests that prefer counting).
    """

    def __init__(
        self, env: Any, *, strict: bool = True, opening_plies: int = 0, stream: int = 0
    ) -> None:
        super().__init__(env)
        plies_ok = isinstance(opening_plies, int) and not isinstance(opening_plies, bool)
        if not plies_ok or opening_plies < 0:
            raise ValueError(f"opening_plies must be an integer >= 0, got {opening_plies!r}")
        self.strict = strict
        self.opening_plies = opening_plies
        # RLlib seeds env k of EnvRunner w with seed + w + k, so equal seeds recur across
        # EnvRunners: the stream (the EnvRunner's index) keeps their openings apart
        self.stream = stream
        self.illegal_actions = 0
        self.checked_actions = 0
        self._rng = np.random.default_rng()

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A new game; with ``opening_plies`` k > 0 it starts after n uniformly random legal
        plies, n drawn uniformly from 0..k (openings that already end the game are redrawn),
        so self-play sees many positions instead of replaying its favourite lines."""
        if seed is not None:
            self._rng = np.random.default_rng([seed, self.stream])
        while True:
            self.env.reset(seed=seed, options=options)
            plies = int(self._rng.integers(self.opening_plies + 1)) if self.opening_plies else 0
            for _ in range(plies):
                legal = np.flatnonzero(self.env.observe(self.env.agent_selection)["action_mask"])
                self.env.step(int(self._rng.choice(legal)))
                if not self.env.agents or any(self.env.terminations.values()):
                    break
            else:
                break  # the opening left a game to play
        agent = self.env.agent_selection
        return {agent: self.env.observe(agent)}, {}

    def step(self, action: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        agent = self.env.agent_selection
        if agent not in action:
            raise IllegalActionError(f"no action for {agent}, whose turn it is: got {list(action)}")
        mask = self.env.observe(agent)["action_mask"]
        a = int(action[agent])
        self.checked_actions += 1
        if not (0 <= a < mask.shape[0] and mask[a]):
            self.illegal_actions += 1
            if self.strict:
                raise IllegalActionError(
                    f"{agent} played {a}, illegal here: legal are {np.flatnonzero(mask).tolist()}"
                )
        return super().step(action)


def make_env(env_config: Mapping[str, Any]) -> MaskCheckedPettingZooEnv:
    """The env creator: ``{"game": name, "options": {...}, "strict": bool, "opening_plies": k}``."""
    game = env_config.get("game", "connect_four")
    options = dict(env_config.get("options", {}))
    return MaskCheckedPettingZooEnv(
        envs.aec_env(game, **options),
        strict=bool(env_config.get("strict", True)),
        opening_plies=env_config.get("opening_plies", 0),
        stream=int(getattr(env_config, "worker_index", 0)),
    )


def register_envs(games: Iterable[str] | None = None) -> list[str]:
    """Register ``selfplay_<game>`` with Ray Tune's registry for each game; returns the names.

    The env_config's ``game`` key defaults to the registered game, so
    ``PPOConfig().environment("selfplay_tictactoe")`` needs no env_config.
    """
    names = []
    for game in games if games is not None else sorted(envs.GAMES):

        def creator(env_config: Mapping[str, Any], _game: str = game) -> MaskCheckedPettingZooEnv:
            return make_env({"game": _game, **dict(env_config)})

        register_env(ENV_PREFIX + game, creator)
        names.append(ENV_PREFIX + game)
    return names


# --------------------------------------------------------------------------------------------
# League: protocol, default mix, per-episode mapping
# --------------------------------------------------------------------------------------------


@runtime_checkable
class BridgeLeague(Protocol):
    """What the bridge needs from a league (`SelfPlayLeague` is the one it ships)."""

    def opponent_distribution(self, learner: str) -> tuple[list[str], np.ndarray]:
        """``(module ids, probabilities)`` of the learner's opponent in one episode (the
        learner's own id = self-play against the live module). The EnvRunners draw from a
        frozen copy of it per episode (see `EpisodeMapping`)."""
        ...

    def add_snapshot(self, name: str, weights: Mapping[str, Any], step: int) -> list[str]:
        """Take a frozen snapshot of the learner (``weights``: its module state, taken at
        training iteration ``step``); returns the names of the snapshots to drop (the bridge
        removes their modules)."""
        ...

    def record(self, learner: str, opponent: str, outcome: int) -> None:
        """One finished episode: +1 the learner won, 0 draw, -1 lost."""
        ...

    def snapshot_names(self) -> list[str]:
        """The live snapshots, oldest first."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state (what league.json holds; the weights are in RLlib's checkpoint)."""
        ...

    def load_state_dict(
        self, state: Mapping[str, Any], weights: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Restore what `state_dict` gave, with the snapshots' weights by name."""
        ...


class SelfPlayLeague:
    """The bridge's league: `selfplay.league.League` (immutable snapshots, payoff table, PFSP)
    with RLlib's live learner module as "latest".

    ``config`` reads as for the AlphaZero engine: ``latest`` is the share of episodes against
    the learner itself, ``past`` uniform over the frozen snapshots before the newest (the newest
    one is close to the live learner), ``pfsp`` weighted over all of them. The snapshots'
    weights are kept here too (the RLlib modules of the same names play them).
    """

    def __init__(self, config: LeagueConfig | None = None) -> None:
        self.config = config if config is not None else LeagueConfig(latest=0.5, past=0.5)
        self.league = League(self._frozen_config(self.config))

    @staticmethod
    def _frozen_config(config: LeagueConfig) -> LeagueConfig:
        # the frozen part of the mix, renormalised; "latest" goes to the live module instead
        rest = config.past + config.pfsp
        if rest <= 0:
            return dataclasses.replace(config, latest=0.0, past=1.0, pfsp=0.0)
        return dataclasses.replace(
            config, latest=0.0, past=config.past / rest, pfsp=1.0 - config.past / rest
        )

    def opponent_distribution(self, learner: str) -> tuple[list[str], np.ndarray]:
        share = self.config.latest
        if not len(self.league) or share >= 1.0:
            return [learner], np.ones(1)
        names, probs = self.league.opponent_distribution(learner)
        return [learner, *names], np.concatenate([[share], (1.0 - share) * probs])

    def add_snapshot(self, name: str, weights: Mapping[str, Any], step: int) -> list[str]:
        before = self.league.names
        tensors = {key: torch.as_tensor(np.asarray(value)) for key, value in weights.items()}
        self.league.add_snapshot(name, tensors, step=step)
        return [old for old in before if old not in self.league]

    def record(self, learner: str, opponent: str, outcome: int) -> None:
        if opponent == learner:
            return  # self-play: no entry in a payoff table (the callback still counts it)
        wins, draws, losses = float(outcome > 0), float(outcome == 0), float(outcome < 0)
        self.league.record(learner, opponent, wins, draws, losses)

    def snapshot_names(self) -> list[str]:
        return self.league.names

    def state_dict(self) -> dict[str, Any]:
        meta, _ = self.league.state_dict()  # the frozen part's config: ours instead
        return {**meta, "config": dataclasses.asdict(self.config)}

    def load_state_dict(
        self, state: Mapping[str, Any], weights: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """What was played (snapshots, payoff, gating) comes back; the settings stay this
        league's own, as a resume may change them (the AlphaZero engine does the same).

        Also reads the league.json of runs saved before this class (names and
        ``{opponent: [wins, draws, losses]}`` of the learner, no version)."""
        if "version" not in state:
            self.league = League(self._frozen_config(self.config))
            for step, name in enumerate(state["snapshots"]):
                self.add_snapshot(name, weights[name], step=step)
            for opponent, (wins, draws, losses) in state.get("results", {}).items():
                if opponent != LEARNER:
                    self.league.record(LEARNER, opponent, wins, draws, losses)
            return
        meta = dict(state)
        meta["config"] = dataclasses.asdict(self._frozen_config(self.config))
        tensors = {
            f"{LEAGUE_PREFIX}{entry['name']}/{param}": torch.as_tensor(np.asarray(value))
            for entry in meta["snapshots"]
            for param, value in weights[entry["name"]].items()
        }
        meta["snapshots"] = [
            {**entry, "params": list(weights[entry["name"]])} for entry in meta["snapshots"]
        ]
        self.league = League.from_state_dict(meta, tensors)
        self.league.trim()  # this run may keep fewer snapshots than the saved one


def _episode_key(episode_id: str) -> int:
    # A stable hash: Python's str hash differs between processes (PYTHONHASHSEED).
    return zlib.crc32(str(episode_id).encode())


class EpisodeMapping:
    """The policy_mapping_fn: agent -> module id, a pure function of the episode id.

    It holds a frozen copy of the league's opponent distribution (``names``, ``probs``). Per
    episode the learner takes seat ``0`` or ``1`` and the opponent is drawn from that
    distribution, both from an rng seeded by (seed, episode id), so both agents of an episode
    (and any repeated call) get one consistent assignment, and a league that moves on (a new
    snapshot, new results) changes the draw only through a new mapping, between episodes.
    """

    def __init__(
        self,
        distribution: tuple[list[str], np.ndarray],
        agents: tuple[str, ...],
        learner: str = LEARNER,
        seed: int = 0,
    ) -> None:
        names, probs = distribution
        self.names = tuple(names)
        self.probs = np.array(probs, dtype=np.float64)  # a copy: nothing can change it later
        if len(self.names) != len(self.probs) or not len(self.names):
            raise ValueError(
                f"an opponent distribution needs one probability per name, got {len(self.names)} "
                f"names and {len(self.probs)} probabilities"
            )
        self.probs /= self.probs.sum()
        self.agents = agents
        self.learner = learner
        self.seed = seed

    def assignment(self, episode_id: str) -> tuple[int, str]:
        """(the learner's seat, the opponent's module id) for this episode."""
        rng = np.random.default_rng([self.seed, _episode_key(episode_id)])
        seat = int(rng.integers(len(self.agents)))
        return seat, self.names[int(rng.choice(len(self.names), p=self.probs))]

    def __call__(self, agent_id: str, episode: Any, **kwargs: Any) -> str:
        seat, opponent = self.assignment(episode.id_)
        return self.learner if self.agents.index(agent_id) == seat else opponent


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeagueSettings:
    """How the league grows; carried on the callback class (RLlib builds callbacks with no
    arguments, on the driver and on every EnvRunner)."""

    snapshot_every: int = 10
    """training iterations between frozen snapshots of the learner"""
    seed: int = 0
    """seed of the per-episode seat and opponent draw"""
    greedy_snapshots: bool = False
    """frozen snapshots play their most likely move (`GREEDY_KEY`)"""
    keep_assignments: int = 10_000
    """(episode id -> opponent) records kept on the driver, for inspection and tests"""


class LeagueCallback(RLlibCallback):
    """Self-play bookkeeping on both sides of RLlib.

    EnvRunner side (``on_episode_end``): report (episode id, opponent, learner seat, outcome,
    modules used) as one item per episode. Driver side (``on_train_result``): record results in
    the league, log win rates under ``result["league"]``, and every ``snapshot_every``
    iterations add a frozen snapshot of "main" and refresh the mapping on the EnvRunners.
    """

    settings = LeagueSettings()
    EPISODES_KEY = "league_episodes"

    def __init__(self) -> None:
        super().__init__()
        self.league: BridgeLeague = SelfPlayLeague()
        self.agents: tuple[str, ...] = ()
        # driver: episode id -> the opponents reported for it (one, if swaps wait for ends)
        self.assignments: dict[str, set[str]] = {}
        # driver: episodes whose modules differed from the mapping, or whose opponent changed
        # between its start and its end
        self.mapping_mismatches = 0
        self.total_episodes = 0
        # driver: opponent -> [wins, draws, losses] of the learner (whatever league is plugged)
        self.results: dict[str, list[int]] = {}
        # driver: the module the run plays as its policy (`policy_state`): the learner, or the
        # snapshot `select_policy` picked at the end of a run (a resume starts from the learner)
        self.policy = LEARNER
        # EnvRunner: episode id -> the (seat, opponent) its mapping gave when it started
        self._started: dict[str, tuple[int, str]] = {}

    # --- EnvRunner side ---------------------------------------------------------------------

    def on_episode_start(self, *, episode: Any, **kwargs: Any) -> None:
        mapping = episode.agent_to_module_mapping_fn
        if isinstance(mapping, EpisodeMapping):
            if len(self._started) > 100_000:  # episodes dropped by a reset never end: forget
                self._started.clear()
            self._started[str(episode.id_)] = mapping.assignment(episode.id_)

    def on_episode_end(
        self,
        *,
        episode: Any,
        prev_episode_chunks: list[Any] | None = None,
        metrics_logger: Any = None,
        **kwargs: Any,
    ) -> None:
        mapping = episode.agent_to_module_mapping_fn
        if not isinstance(mapping, EpisodeMapping):
            return
        seat, opponent = mapping.assignment(episode.id_)
        start = self._started.pop(str(episode.id_), None)
        learner_agent = mapping.agents[seat]
        used = {agent: episode.module_for(agent) for agent in mapping.agents}
        # an episode may span several sample() calls: its return is over all of its chunks
        learner_return = sum(
            float(chunk.agent_episodes[learner_agent].get_return())
            for chunk in [*(prev_episode_chunks or []), episode]
            if learner_agent in chunk.agent_episodes
        )
        metrics_logger.log_value(
            self.EPISODES_KEY,
            {
                "episode": str(episode.id_),
                "opponent": opponent,
                "seat": seat,
                "outcome": int(np.sign(learner_return)),
                "modules": used,
                "same_as_at_start": start is None or start == (seat, opponent),
            },
            reduce="item_series",
        )

    def on_sample_end(self, *, samples: list[Any], **kwargs: Any) -> None:
        # RLlib 2.60's MultiAgentEnvRunner numpy'izes *every* episode finished so far in a
        # sample() call again after each vector step (validating each in full every time): a
        # cost quadratic in the episodes one call finishes, about 30 % of our sampling time
        # (Connect Four's 32 games per EnvRunner end ~450 episodes per 4,000 steps, ~14,000
        # conversions). `build_ppo` turns RLlib's conversion off; each episode is numpy'ized
        # once, here, before the samples leave the EnvRunner.
        for episode in samples:
            episode.to_numpy()

    # --- driver side ------------------------------------------------------------------------

    def on_train_result(self, *, algorithm: Algorithm, result: dict, **kwargs: Any) -> None:
        items = result.get("env_runners", {}).pop(self.EPISODES_KEY, None) or []
        for item in items:
            self._record(item)
        result["league"] = self.summary()
        every = self.settings.snapshot_every
        if every > 0 and algorithm.iteration % every == 0:
            add_snapshot(algorithm, self)  # (pushes the new mapping too)
        else:
            # the league saw new results (a PFSP league's odds move with them): ship it again;
            # a small pickle per EnvRunner per iteration
            push_mapping(algorithm, self)
        result["league"]["snapshots"] = self.league.snapshot_names()

    def _record(self, item: Mapping[str, Any]) -> None:
        opponent = item["opponent"]
        seat = item["seat"]
        modules = item["modules"]
        agents = list(modules)
        # what the episode really ran with must be what the mapping says, seat by seat
        expected = {a: (LEARNER if i == seat else opponent) for i, a in enumerate(agents)}
        if expected != modules or not item["same_as_at_start"]:
            self.mapping_mismatches += 1
        self.league.record(LEARNER, opponent, item["outcome"])
        row = self.results.setdefault(opponent, [0, 0, 0])
        row[1 - item["outcome"]] += 1  # +1 -> wins, 0 -> draws, -1 -> losses
        self.total_episodes += 1
        if len(self.assignments) < self.settings.keep_assignments:
            self.assignments.setdefault(item["episode"], set()).add(opponent)

    def summary(self) -> dict[str, Any]:
        """The learner's record per opponent: games, win/draw/loss rates, score."""
        table: dict[str, Any] = {}
        for opponent, (w, d, l) in self.results.items():
            games = w + d + l
            if games:
                table[opponent] = {
                    "games": games,
                    "win_rate": w / games,
                    "draw_rate": d / games,
                    "loss_rate": l / games,
                    "score": (w + 0.5 * d) / games,
                }
        return {"opponents": table, "episodes": self.total_episodes}


def league_callback_class(settings: LeagueSettings) -> type[LeagueCallback]:
    """A LeagueCallback subclass carrying ``settings`` (RLlib instantiates it without args)."""
    return type("ConfiguredLeagueCallback", (LeagueCallback,), {"settings": settings})


def driver_callback(algo: Algorithm) -> LeagueCallback:
    """The LeagueCallback instance living on the driver (where the league state is)."""
    callbacks = algo.callbacks if isinstance(algo.callbacks, list) else [algo.callbacks]
    for callback in callbacks:
        if isinstance(callback, LeagueCallback):
            return callback
    raise ValueError("this Algorithm was not built with a LeagueCallback (see build_ppo)")


def push_mapping(algo: Algorithm, callback: LeagueCallback) -> EpisodeMapping:
    """Ship the league's current state, as a new policy_mapping_fn, to every EnvRunner.

    Episodes already running keep the mapping they started with (RLlib binds the function
    to an episode when it is created), so opponents change only between episodes.
    """
    mapping = EpisodeMapping(
        callback.league.opponent_distribution(LEARNER), callback.agents, LEARNER,
        callback.settings.seed,
    )  # fmt: skip

    def install(env_runner: Any) -> None:
        env_runner.config.multi_agent(policy_mapping_fn=mapping)  # EnvRunner configs are unfrozen

    algo.env_runner_group.foreach_env_runner(install)
    # the driver's config too, so a checkpoint and later add_module calls see the same
    algo.config._is_frozen = False  # RLlib's own add_module does the same
    algo.config.multi_agent(policy_mapping_fn=mapping)
    algo.config.freeze()
    return mapping


def module_state(algo: Algorithm, module_id: str) -> dict[str, Any]:
    """The learner-side state (weights and buffers, numpy) of one module."""
    return algo.learner_group.get_weights(module_ids=[module_id])[module_id]


def add_snapshot(algo: Algorithm, callback: LeagueCallback, name: str | None = None) -> str:
    """Freeze a copy of "main" as a new module (never trained); drop what the league evicts."""
    name = name or f"{LEARNER}_it{algo.iteration:05d}"
    weights = module_state(algo, LEARNER)
    evicted = callback.league.add_snapshot(name, weights, step=algo.iteration)
    _add_module(algo, name, weights, greedy=callback.settings.greedy_snapshots)
    for old in evicted:
        if old in algo.config.policies:
            algo.remove_module(old)
    push_mapping(algo, callback)
    return name


def _add_module(
    algo: Algorithm, name: str, weights: Mapping[str, Any] | None, *, greedy: bool = False
) -> None:
    spec = algo.config.rl_module_spec.rl_module_specs[LEARNER]
    if greedy:
        spec = dataclasses.replace(spec, model_config={**spec.model_config, GREEDY_KEY: True})
    # new_should_module_be_updated keeps the learner alone in training (the added module would
    # otherwise be trained if policies_to_train were None).
    algo.add_module(name, spec, new_should_module_be_updated=[LEARNER])
    if weights is not None:
        # add_module builds fresh random weights: copy main's in, on the learner and on
        # every EnvRunner
        algo.learner_group.set_weights({name: weights})
        set_env_runner_weights(algo, {name: weights})


def set_env_runner_weights(algo: Algorithm, weights: Mapping[str, Mapping[str, Any]]) -> None:
    """Set module weights ({module id: state}) on every EnvRunner, local and remote, now.

    Not `env_runner_group.sync_weights`: EnvRunners skip a sync whose weights_seq_no is not
    newer than the one they hold, and the learner's number only moves on an update, so weights
    set on the learner between two updates (a new snapshot, a restore) would never arrive.
    """
    weights = {module_id: dict(state) for module_id, state in weights.items()}

    def install(env_runner: Any) -> None:
        for module_id, state in weights.items():
            env_runner.module[module_id].set_state(state)

    algo.env_runner_group.foreach_env_runner(install)


# --------------------------------------------------------------------------------------------
# Building, checkpointing, training
# --------------------------------------------------------------------------------------------


SAMPLERS: dict[str, type] = {
    "batched": BatchedSelfPlayEnvRunner,
    "rllib": MultiAgentEnvRunner,
}
"""EnvRunner classes by `PPOSettings.sampler` name."""


@dataclass(frozen=True)
class PPOSettings:
    """The RLlib-PPO knobs of `train_ppo` (kept out of TrainConfig until the CLI wires them)."""

    train_batch_size: int = 4000
    """environment steps (both seats) per training iteration"""
    minibatch_size: int = 256
    """steps per SGD minibatch"""
    num_epochs: int = 4
    """passes over each iteration's batch"""
    lr: float = 3e-4
    """Adam learning rate"""
    lr_decay_steps: int = 0
    """environment steps over which the rate falls linearly from lr to lr_final (0: constant)"""
    lr_final: float = 0.0
    """the rate at the end of lr_decay_steps and after"""
    lr_decay_start: int = 0
    """environment steps at the constant lr before the decay begins"""
    gamma: float = 0.99
    """discount per ply (below 1: quicker wins are worth more)"""
    lambda_: float = 0.95
    """GAE lambda"""
    entropy_coeff: float = 0.01
    """entropy bonus"""
    clip_param: float = 0.3
    """clip range of the policy ratio"""
    kl_coeff: float = 0.2
    """starting weight of RLlib's adaptive KL penalty; 0 turns it off (use_kl_loss=False)"""
    opening_plies: int = 0
    """self-play games start after 0..k uniformly random plies (0: from the empty board)"""
    symmetric: bool = False
    """the module averages the net over the board's symmetries (an exactly symmetric policy)"""
    greedy_snapshots: bool = False
    """frozen league snapshots play their most likely move instead of sampling"""
    policy_average: int = 0
    """the policy evaluated (and exported by `train`): the mean of the weights of the newest k
    frozen snapshots (`policy_state`); 0: the learner's own weights"""
    policy_select: int = 0
    """at the end, the best of the learner and its newest k snapshots against the evaluation
    opponents becomes the policy evaluated and exported (`select_policy`); 0: no pick"""
    sampler: str = "batched"
    """EnvRunner: batched (`BatchedSelfPlayEnvRunner`, all games on one core) or rllib
    (RLlib's MultiAgentEnvRunner through the PettingZoo wrapper)"""
    precision: str = "float32"
    """number format of the net's matrix products: float32, bfloat16 (autocast), or auto
    (`resolve_precision`: bfloat16 where the driver's CPU multiplies it natively)"""
    device: str = "cpu"
    """the learner's device: cpu, cuda, cuda:N (learner driver only; `num_gpus_per_learner` 1)
    or auto (cuda when torch, or with learner actor the Ray cluster, has a GPU); the
    EnvRunners sample on the CPU either way"""
    learner: str = "driver"
    """where RLlib's learner runs: driver (its local learner, `num_learners` 0), actor (one
    remote learner, `num_learners` 1, given a GPU of the cluster for device cuda or auto), or
    auto (`selfplay.config.learner_placement`, with ``build_ppo``'s ``ray_address``)"""
    num_env_runners: int = 1
    """EnvRunner actors (0 samples in the driver process)"""
    num_envs_per_env_runner: int = 8
    """games each EnvRunner steps together (RLlib vectorises them)"""
    snapshot_every: int = 10
    """iterations between frozen snapshots of the learner"""
    max_snapshots: int = 5
    """frozen snapshots kept (oldest dropped first)"""
    self_play: float = 0.5
    """share of episodes against the live learner; the rest go to frozen snapshots"""
    pfsp: float = 0.0
    """share of episodes against snapshots drawn by PFSP weights (the rest of the frozen share
    is uniform over the snapshots before the newest)"""
    pfsp_weighting: str = "hard"
    """PFSP weighting: hard, variance or linear (see `selfplay.league.pfsp_weights`)"""
    checkpoint_every_minutes: float = 5.0
    """minutes between checkpoints (one more at the end)"""
    eval_opponents: tuple[str, ...] = ("random", "alphabeta:2")
    """player specs to evaluate against at the end (alphabeta needs connect_four)"""
    eval_games: int = 20
    """games per evaluation opponent (seats alternated)"""
    eval_every_minutes: float = 0.0
    """minutes between evaluations during training (0: only at the end)"""
    seed: int = 0
    """seed of RLlib (torch, env runners) and of the episode mapping"""

    def lr_schedule(self) -> float | list[list[float]]:
        """RLlib's ``lr``: the constant rate, or the points of its piecewise-linear schedule
        over environment steps sampled (flat after the last)."""
        if self.lr_decay_steps == 0:
            return self.lr
        end = [self.lr_decay_start + self.lr_decay_steps, self.lr_final]
        if self.lr_decay_start == 0:
            return [[0, self.lr], end]
        return [[0, self.lr], [self.lr_decay_start, self.lr], end]

    def league_config(self) -> LeagueConfig:
        """The `SelfPlayLeague` config these settings describe."""
        return LeagueConfig(
            latest=self.self_play,
            past=max(0.0, 1.0 - self.self_play - self.pfsp),
            pfsp=self.pfsp,
            pfsp_weighting=self.pfsp_weighting,
            max_snapshots=self.max_snapshots,
        )


def _learner_resources(settings: PPOSettings, ray_address: str) -> dict[str, Any]:
    """RLlib's ``learners()`` settings for where ``settings`` put the learner: the driver
    (RLlib's local learner, on its CPU or one of its GPUs) or one remote learner actor (no CPU
    slot reserved, like our AlphaZero learner actor; one GPU for device cuda)."""
    local_gpus = torch.cuda.device_count()
    running = ray.is_initialized()
    # before Ray starts: the Ray that building the algorithm starts, on this machine
    cluster_gpus = ray.cluster_resources().get("GPU", 0.0) if running else local_gpus
    placement = learner_placement(
        settings.learner, settings.device, ray_address=ray_address, local_gpus=local_gpus,
        cluster_gpus=cluster_gpus,
    )  # fmt: skip
    if placement == "driver":
        device = pick_device(settings.device)  # refuses cuda without a GPU
        return {
            "num_learners": 0,
            "num_gpus_per_learner": 1 if device.type == "cuda" else 0,
            "local_gpu_idx": device.index or 0,
        }
    free = ray.available_resources().get("GPU", 0.0) if running else None
    device = actor_device(settings.device, cluster_gpus, free)
    return {
        "num_learners": 1,
        "num_cpus_per_learner": 0,
        "num_gpus_per_learner": 1 if device == "cuda" else 0,
    }


def build_ppo(
    game: str,
    network: NetworkConfig,
    settings: PPOSettings = PPOSettings(),
    *,
    league: BridgeLeague | None = None,
    game_options: Mapping[str, Any] | None = None,
    ray_address: str = "",
) -> Algorithm:
    """A ready PPO Algorithm: "main" = our net, self-play through the league's mapping.
    ``ray_address``: the cluster the run joined ("" for Ray embedded), for learner auto."""
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {settings.sampler!r}")
    learners = _learner_resources(settings, ray_address)  # refusals before anything starts
    register_envs([game])
    options = dict(game_options or {})
    precision = resolve_precision(settings.precision)
    spec = module_spec(network, game, symmetric=settings.symmetric, precision=precision, **options)
    agents = tuple(envs.aec_env(game, **options).possible_agents)
    league_settings = LeagueSettings(
        snapshot_every=settings.snapshot_every,
        seed=settings.seed,
        greedy_snapshots=settings.greedy_snapshots,
    )
    league = league if league is not None else SelfPlayLeague(settings.league_config())
    initial_mapping = EpisodeMapping(
        league.opponent_distribution(LEARNER), agents, LEARNER, settings.seed
    )
    config = (
        PPOConfig()
        .environment(
            ENV_PREFIX + game,
            env_config={
                "game": game,
                "options": options,
                "strict": True,
                "opening_plies": settings.opening_plies,
            },
            # RLlib's env checker steps with action_space.sample(), which ignores the mask
            # and so trips our illegal-action check.
            disable_env_checking=True,
        )
        .framework("torch")
        .env_runners(
            num_env_runners=settings.num_env_runners,
            num_envs_per_env_runner=settings.num_envs_per_env_runner,
            num_cpus_per_env_runner=1,
            episodes_to_numpy=False,  # done once per episode in LeagueCallback.on_sample_end
            env_runner_cls=SAMPLERS[settings.sampler],
        )
        .learners(**learners)
        .training(
            lr=settings.lr_schedule(),
            gamma=settings.gamma,
            lambda_=settings.lambda_,
            entropy_coeff=settings.entropy_coeff,
            clip_param=settings.clip_param,
            use_kl_loss=settings.kl_coeff > 0,
            kl_coeff=settings.kl_coeff,
            train_batch_size_per_learner=settings.train_batch_size,
            minibatch_size=settings.minibatch_size,
            num_epochs=settings.num_epochs,
        )
        .multi_agent(
            policies={LEARNER},
            policy_mapping_fn=initial_mapping,
            policies_to_train=[LEARNER],
        )
        .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={LEARNER: spec}))
        .callbacks(league_callback_class(league_settings))
        .debugging(seed=settings.seed, log_level="ERROR")
    )
    algo = config.build_algo()
    callback = driver_callback(algo)
    callback.league = league
    callback.agents = agents
    push_mapping(algo, callback)
    return algo


def save(algo: Algorithm, run_dir: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
    """Checkpoint into ``run_dir``: RLlib's ``save_to_path`` plus league.json.

    Both are written next to the old ones first and swapped in by rename, so a crash mid-save
    leaves the previous checkpoint whole.
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    callback = driver_callback(algo)
    final = run_dir / CHECKPOINT_DIR
    staging = run_dir / (CHECKPOINT_DIR + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    algo.save_to_path(str(staging))
    old = run_dir / (CHECKPOINT_DIR + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    state = {
        "iteration": algo.iteration,
        "policy": callback.policy,
        "league": callback.league.state_dict(),
        "snapshots": callback.league.snapshot_names(),
        "results": callback.results,
        "summary": callback.summary(),
        **dict(extra or {}),
    }
    write_json_atomic(run_dir / LEAGUE_FILE, state, default=str)
    return final


def restore(algo: Algorithm, run_dir: str | Path) -> dict[str, Any]:
    """Load a `save` of ``run_dir`` into ``algo`` (built by `build_ppo` with the same net).

    The snapshot modules are re-created first (RLlib restores module states into existing
    modules), then RLlib restores weights, optimizer and counters; then the league.
    """
    run_dir = Path(run_dir).resolve()
    state = json.loads((run_dir / LEAGUE_FILE).read_text(encoding="utf-8"))
    callback = driver_callback(algo)
    for name in state["snapshots"]:
        if name not in algo.config.policies:
            _add_module(algo, name, weights=None, greedy=callback.settings.greedy_snapshots)
    algo.restore_from_path(str(run_dir / CHECKPOINT_DIR))
    # what was played (snapshots, results) comes back, with the weights RLlib restored; the
    # settings are this run's, as a resume may change them (the AlphaZero engine does the same)
    weights = {name: module_state(algo, name) for name in state["snapshots"]}
    callback.league.load_state_dict(state["league"], weights)
    for name in state["snapshots"]:  # what a smaller league of this run no longer keeps
        if name not in callback.league.snapshot_names():
            algo.remove_module(name)
    callback.results = {k: list(v) for k, v in state.get("results", {}).items()}
    callback.total_episodes = sum(sum(row) for row in callback.results.values())
    set_env_runner_weights(algo, algo.learner_group.get_weights())
    push_mapping(algo, callback)
    return state


def average_states(states: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The mean of module states of one architecture (weight averaging): floating entries
    averaged in float64 and cast back, any others (counters) taken from the last state.
    BatchNorm running statistics (convnet) are averaged like weights, not re-estimated on
    data as SWA recommends."""
    if not states:
        raise ValueError("average_states needs at least one state, got none")
    keys = set(states[0])
    for state in states[1:]:
        if set(state) != keys:
            raise ValueError(
                f"states to average must hold the same entries, got {sorted(keys)} and "
                f"{sorted(state)}"
            )
    averaged: dict[str, np.ndarray] = {}
    for key in states[0]:
        values = [np.asarray(state[key]) for state in states]
        if np.issubdtype(values[0].dtype, np.floating):
            mean = np.mean(np.stack(values).astype(np.float64), axis=0)
            averaged[key] = mean.astype(values[0].dtype)
        else:
            averaged[key] = values[-1]
    return averaged


def averaged_snapshots(algo: Algorithm, average: int) -> list[str]:
    """The frozen snapshots whose mean weights are the run's policy: the newest ``average``
    (fewer while the league holds fewer); none for ``average`` 0 or an empty league (the
    learner's own weights, `policy_state`)."""
    if isinstance(average, bool) or not isinstance(average, int) or average < 0:
        raise ValueError(f"average must be an integer >= 0, got {average!r}")
    return driver_callback(algo).league.snapshot_names()[-average:] if average else []


def policy_state(algo: Algorithm, average: int = 0) -> dict[str, Any]:
    """The weights a run plays as its policy: the mean of `averaged_snapshots` (weight
    averaging, as in SWA: at a constant rate the greedy policy's strength moves by tens of
    points between snapshots 10 iterations apart; their mean is steadier, though a long
    stretch of weak snapshots drags it down too), or when that is empty the weights of the
    driver callback's ``policy``: the learner's own, or the snapshot `select_policy` picked."""
    names = averaged_snapshots(algo, average)
    if not names:
        return dict(module_state(algo, driver_callback(algo).policy))
    return average_states([module_state(algo, name) for name in names])


def learner_device(algo: Algorithm) -> torch.device:
    """The device "main" trains on (RLlib's learner: the local one in the driver, or its actor)."""
    results = algo.learner_group.foreach_learner(
        lambda learner: next(learner.module[LEARNER].parameters()).device
    )
    return next(iter(results)).get()  # RLlib's RemoteCallResults: one per learner


def learner_module(algo: Algorithm, average: int = 0) -> PolicyValueRLModule:
    """A local copy of "main" with the learner's current weights (the EnvRunners' copies may
    lag an update behind, and with remote EnvRunners the driver may hold none), or with the
    mean of the newest ``average`` snapshots' weights, or the picked snapshot's
    (`policy_state`)."""
    return _local_module(algo, policy_state(algo, average))


def _local_module(algo: Algorithm, state: Mapping[str, Any]) -> PolicyValueRLModule:
    """A fresh local "main" module (the spec's, not greedy-marked) holding ``state``."""
    module = algo.config.rl_module_spec.rl_module_specs[LEARNER].build()
    module.set_state(dict(state))
    return module.eval()


def select_policy(
    algo: Algorithm,
    game: str,
    opponents: Iterable[str],
    num_games: int,
    candidates: int,
    seed: int = 0,
    **game_options: Any,
) -> tuple[str, dict[str, float]]:
    """Pick the run's policy: the learner and its newest ``candidates`` frozen snapshots each
    play ``num_games`` games against every opponent (`evaluate`'s games, with ``seed``), and
    the best mean score wins (a tie goes to the newer: the learner is newest). Sets the driver
    callback's ``policy`` to it, so `policy_state`, `evaluate` and the export play it; returns
    (module id, {module id: mean score}) oldest first. Training is untouched: the learner
    keeps its own weights. Call it when training is over (`train_ppo` does, at the end): a
    snapshot the league evicts later can no longer be played."""
    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 0:
        raise ValueError(f"candidates must be an integer >= 0, got {candidates!r}")
    opponents = tuple(opponents)
    if not opponents:
        raise ValueError("select_policy needs at least one evaluation opponent, got none")
    callback = driver_callback(algo)
    snapshots = callback.league.snapshot_names()
    names = [*(snapshots[-candidates:] if candidates else []), LEARNER]
    scores: dict[str, float] = {}
    for name in names:
        player = RLModulePlayer(_local_module(algo, module_state(algo, name)), LEARNER)
        report = _play_opponents(player, game, opponents, num_games, seed, game_options)
        scores[name] = float(np.mean([row["score"] for row in report.values()]))
    best = max(reversed(names), key=lambda name: scores[name])  # ties: the newer
    callback.policy = best
    return best, scores


def evaluate(
    algo: Algorithm,
    game: str,
    opponents: Iterable[str],
    num_games: int,
    seed: int = 0,
    average: int = 0,
    **game_options: Any,
) -> dict[str, dict[str, float]]:
    """The learner's greedy policy (or the weight average of its newest ``average`` snapshots,
    or the picked snapshot: `policy_state`) against baseline players in our arena (seats
    alternated)."""
    player = RLModulePlayer(learner_module(algo, average), LEARNER)
    return _play_opponents(player, game, opponents, num_games, seed, game_options)


def _play_opponents(
    player: Any,
    game: str,
    opponents: Iterable[str],
    num_games: int,
    seed: int,
    game_options: Mapping[str, Any],
) -> dict[str, dict[str, float]]:
    """``player``'s record against each opponent spec over ``num_games`` arena games."""
    report: dict[str, dict[str, float]] = {}
    for spec in opponents:
        opponent = make_player(spec, game, seed=seed)
        result = play_match(
            lambda n: envs.make(game, n, **game_options), player, opponent, num_games
        )
        record = result.record()
        report[spec] = {
            "games": record.games,
            "wins": record.wins,
            "draws": record.draws,
            "losses": record.losses,
            "score": record.score,
        }
    return report


def _cfg_value(cfg_like: Any, key: str, default: Any) -> Any:
    if isinstance(cfg_like, Mapping):
        return cfg_like.get(key, default)
    return getattr(cfg_like, key, default)


# the learner results a run logs and summarises (RLlib's names)
LEARNER_STATS = (
    "total_loss",
    "policy_loss",
    "vf_loss",
    "entropy",
    "mean_kl_loss",
    "curr_kl_coeff",
    "default_optimizer_learning_rate",
)

_CFG_OVERRIDES = ("lr", "seed", "eval_games", "checkpoint_every_minutes")


def _from_cfg(cfg_like: Any) -> tuple[str, NetworkConfig, dict[str, Any]]:
    """(game, network config, PPOSettings overrides) from a TrainConfig or a plain mapping of
    TrainConfig fields (those a mapping leaves out take TrainConfig's defaults)."""
    from selfplay.alphazero import network_config
    from selfplay.config import FIELD_NAMES, TrainConfig

    if isinstance(cfg_like, TrainConfig):
        cfg, given = cfg_like, set(FIELD_NAMES)
    else:
        given = {key for key in cfg_like if key in FIELD_NAMES}
        cfg = TrainConfig(**{key: cfg_like[key] for key in given})
    overrides = {key: getattr(cfg, key) for key in _CFG_OVERRIDES if key in given}
    if "eval_opponents" in given and cfg.eval_opponents.strip():
        overrides["eval_opponents"] = tuple(s.strip() for s in cfg.eval_opponents.split(","))
    return cfg.game, network_config(cfg), overrides


def ppo_settings(cfg: Any) -> PPOSettings:
    """The `PPOSettings` of a `TrainConfig` (``selfplay train --algo ppo``): workers are the
    EnvRunners, games_per_worker the games each steps at once, batch_size the minibatch."""
    from selfplay.config import parse_league_mix

    mix = parse_league_mix(cfg.league_mix)
    _, _, overrides = _from_cfg(cfg)
    # where the learner runs, when that is known before Ray starts: a device torch cannot
    # reach in this process is refused here, before W&B
    placement = learner_placement(
        cfg.learner, cfg.device, ray_address=cfg.ray_address,
        local_gpus=torch.cuda.device_count(), cluster_gpus=None,
    )  # fmt: skip
    return PPOSettings(
        train_batch_size=cfg.ppo_rollout,
        minibatch_size=cfg.batch_size,
        num_epochs=cfg.ppo_epochs,
        entropy_coeff=cfg.entropy_coeff,
        clip_param=cfg.ppo_clip,
        lr_decay_steps=cfg.ppo_lr_decay_steps,
        lr_final=cfg.ppo_lr_final,
        lr_decay_start=cfg.ppo_lr_decay_start,
        kl_coeff=cfg.ppo_kl_coeff,
        opening_plies=cfg.opening_plies,
        symmetric=cfg.symmetric,
        greedy_snapshots=cfg.league_greedy,
        policy_average=cfg.policy_average,
        policy_select=cfg.policy_select,
        sampler=cfg.ppo_sampler,
        precision=cfg.precision,
        device=str(pick_device(cfg.device)) if placement == "driver" else cfg.device,
        learner=placement or "auto",  # auto: build_ppo settles it by the cluster's GPUs
        num_env_runners=cfg.workers,
        num_envs_per_env_runner=cfg.games_per_worker,
        snapshot_every=cfg.snapshot_every,
        eval_every_minutes=cfg.eval_every_minutes,
        max_snapshots=cfg.league_snapshots,
        self_play=mix["latest"],
        pfsp=mix["pfsp"],
        pfsp_weighting=cfg.league_pfsp_weighting,
        **overrides,
    )


def _init_ray(address: str) -> None:
    """Join the cluster at ``address``, or start Ray embedded (""), unless Ray is running."""
    if not ray.is_initialized():
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False)


def train_ppo(
    cfg_like: Any,
    minutes: float,
    run_dir: str | Path,
    *,
    settings: PPOSettings | None = None,
    resume: bool = False,
    league: BridgeLeague | None = None,
    max_iterations: int | None = None,
    evaluate_at_end: bool = True,
    on_iteration: Callable[[int, dict[str, Any]], None] | None = None,
    on_save: Callable[[Algorithm], None] | None = None,
    on_evaluation: Callable[[int, dict[str, dict[str, float]]], None] | None = None,
) -> dict[str, Any]:
    """PPO self-play through RLlib for ``minutes`` (or ``max_iterations``), checkpointed in
    ``run_dir``; ``resume=True`` continues from the checkpoint there. Every
    ``settings.eval_every_minutes`` (and at the end) the learner plays the evaluation
    opponents; ``on_evaluation(iteration, report)`` hears each report.

    ``cfg_like``: a TrainConfig or a mapping of TrainConfig fields (``game``, ``net``, the
    net's sizes; the rest take TrainConfig's defaults), whose ``lr``, ``seed``, ``eval_games``,
    ``eval_opponents``, ``checkpoint_every_minutes`` override ``settings`` (for a mapping: when
    present); ``settings`` gives the rest. Starts Ray embedded
    when it is not running. Returns iteration counts, the league summary, the evaluation and
    the checkpoint path.
    """
    if not (isinstance(minutes, (int, float)) and minutes > 0 and math.isfinite(minutes)):
        raise ValueError(f"minutes must be a number > 0, got {minutes!r}")
    game, network, overrides = _from_cfg(cfg_like)
    settings = dataclasses.replace(settings or PPOSettings(), **overrides)
    if any(s.startswith("alphabeta") for s in settings.eval_opponents) and game != "connect_four":
        settings = dataclasses.replace(
            settings,
            eval_opponents=tuple(
                s for s in settings.eval_opponents if not s.startswith("alphabeta")
            ),
        )
    run_dir = Path(run_dir)
    if resume and not (run_dir / LEAGUE_FILE).exists():
        raise ValueError(f"cannot resume: no {LEAGUE_FILE} in {run_dir}")
    if settings.policy_select and settings.policy_average:
        raise ValueError(
            f"policy_select and policy_average each choose the run's policy; set one, got "
            f"policy_select {settings.policy_select} and policy_average "
            f"{settings.policy_average}"
        )
    if settings.policy_select and not settings.eval_opponents:
        raise ValueError(
            f"policy_select {settings.policy_select} picks by games against the evaluation "
            f"opponents, got none"
        )
    _init_ray(_cfg_value(cfg_like, "ray_address", ""))
    cpus = ray.cluster_resources().get("CPU", 0.0)
    if settings.num_env_runners > cpus:
        raise ValueError(
            f"{settings.num_env_runners} EnvRunners (workers) need one CPU each, the Ray cluster "
            f"has {cpus:g}: lower --workers or join a bigger cluster (--ray-address)"
        )
    algo = build_ppo(
        game, network, settings, league=league,
        ray_address=_cfg_value(cfg_like, "ray_address", ""),
    )  # fmt: skip
    try:
        if resume:
            restore(algo, run_dir)

        def checkpoint() -> Path:
            saved = save(algo, run_dir)
            if on_save is not None:
                on_save(algo)
            return saved

        last_evaluation: dict[str, Any] = {}

        def evaluation_now() -> dict[str, dict[str, float]]:
            if last_evaluation.get("iteration") == algo.iteration:
                return last_evaluation["report"]  # these weights were just evaluated
            report = evaluate(
                algo, game, settings.eval_opponents, settings.eval_games, seed=settings.seed,
                average=settings.policy_average,
            )  # fmt: skip
            last_evaluation.update(iteration=algo.iteration, report=report)
            if on_evaluation is not None:
                on_evaluation(algo.iteration, report)
            return report

        deadline = time.monotonic() + 60.0 * minutes
        next_checkpoint = time.monotonic() + 60.0 * settings.checkpoint_every_minutes
        every = settings.eval_every_minutes
        next_evaluation = time.monotonic() + 60.0 * every if every > 0 else math.inf
        start_iteration = algo.iteration
        result: dict[str, Any] = {}
        try:
            while time.monotonic() < deadline:
                done = algo.iteration - start_iteration
                if max_iterations is not None and done >= max_iterations:
                    break
                result = algo.train()
                if on_iteration is not None:
                    on_iteration(algo.iteration, result)
                if settings.eval_opponents and time.monotonic() >= next_evaluation:
                    evaluation_now()
                    next_evaluation = time.monotonic() + 60.0 * every
                if time.monotonic() >= next_checkpoint:
                    checkpoint()
                    next_checkpoint = time.monotonic() + 60.0 * settings.checkpoint_every_minutes
        except KeyboardInterrupt:
            checkpoint()  # Ctrl-C: keep what was learned, then stop as asked
            raise
        selection: dict[str, float] = {}
        if settings.policy_select:
            _, selection = select_policy(
                algo, game, settings.eval_opponents, settings.eval_games,
                settings.policy_select, seed=settings.seed + 1,  # not the final evaluation's games
            )  # fmt: skip
            last_evaluation.clear()  # an evaluation of the learner is not one of the pick
        path = checkpoint()
        evaluation = evaluation_now() if evaluate_at_end and settings.eval_opponents else {}
        if evaluation or selection:  # beside the checkpoint just written (weights unmoved)
            league_file = run_dir / LEAGUE_FILE
            state = json.loads(league_file.read_text(encoding="utf-8"))
            state.update(evaluation=evaluation, selection=selection)
            write_json_atomic(league_file, state, default=str)
        return {
            "run_dir": str(run_dir),
            "checkpoint": str(path),
            "iterations": algo.iteration,
            "iterations_this_run": algo.iteration - start_iteration,
            "precision": "bfloat16" if learner_module(algo).bfloat16 else "float32",
            "device": str(learner_device(algo)),
            "league": driver_callback(algo).summary(),
            "snapshots": driver_callback(algo).league.snapshot_names(),
            "averaged": averaged_snapshots(algo, settings.policy_average),
            "policy": driver_callback(algo).policy,
            "selection": selection,
            "evaluation": evaluation,
            "learner": {
                key: float(value)
                for key, value in result.get("learners", {}).get(LEARNER, {}).items()
                if key in LEARNER_STATS
            },
        }
    finally:
        algo.stop()


def export_policy(algo: Algorithm, run_dir: str | Path, cfg: Any) -> Path:
    """Write the run's policy net as a selfplay checkpoint (``run_dir/checkpoint.pt``), so
    ``load_player``, ``selfplay play``, arena and eval use PPO runs like AlphaZero runs: the
    learner's weights, or with ``cfg.policy_average`` the mean of its newest snapshots'
    (`policy_state`; the counter ``averaged`` says how many, 0 for the learner's own), or the
    snapshot `select_policy` picked (``extra["policy"]`` names the module played).
    `train` calls it at every checkpoint, so a killed run has one too; a resume restores the
    learner from RLlib's checkpoint, never from this one."""
    from selfplay.checkpoint import checkpoint_path, save_checkpoint
    from selfplay.config import to_dict

    average = _cfg_value(cfg, "policy_average", 0)
    averaged = len(averaged_snapshots(algo, average))
    return save_checkpoint(
        checkpoint_path(run_dir),
        model=learner_module(algo, average).net.state_dict(),
        optimizer={},
        counters={"iterations": algo.iteration, "averaged": averaged},
        config=to_dict(cfg),
        extra={"policy": driver_callback(algo).policy},
    )


def train(cfg: Any, run_dir: str | Path, *, resume: bool = False) -> dict[str, Any]:
    """``selfplay train --algo ppo``: PPO self-play through RLlib with the run's league mix,
    tracked like the AlphaZero engine (W&B + metrics.jsonl: ``learner/``, ``league/``,
    ``eval/``) and rated at the end against the evaluation opponents (Elo, random = 0)."""
    from selfplay.config import check_resume, to_dict
    from selfplay.ratings import MatchResults, fit_elo
    from selfplay.tracking import Tracker

    run_dir = Path(run_dir)
    state_file = run_dir / "ppo_run.json"
    state = json.loads(state_file.read_text()) if resume and state_file.exists() else {}
    if "config" in state:
        check_resume(state["config"], cfg)  # before W&B, Ray or RLlib's checkpoint
    settings = ppo_settings(cfg)  # a device torch cannot reach here is refused, before W&B
    if settings.learner != "driver":  # a learner actor's device is settled by the cluster:
        started = not ray.is_initialized()  # refused here too, before W&B or the run's files
        _init_ray(cfg.ray_address)
        try:
            _learner_resources(settings, cfg.ray_address)
        except ValueError:
            if started:
                ray.shutdown()
            raise
    run_dir.mkdir(parents=True, exist_ok=True)
    tracker = Tracker(
        run_dir, to_dict(cfg), mode=cfg.wandb, project=cfg.wandb_project,
        run_name=run_dir.name, resume_id=state.get("wandb_run_id"),
    )  # fmt: skip
    # what `selfplay train --resume` needs: the config and the W&B run to continue
    write_json_atomic(state_file, {"wandb_run_id": tracker.run_id, "config": to_dict(cfg)})

    last = {"time": time.monotonic(), "steps": None}

    def log(iteration: int, result: dict[str, Any]) -> None:
        learner = result.get("learners", {}).get(LEARNER, {})
        metrics = {
            f"learner/{key}": float(value) for key, value in learner.items() if key in LEARNER_STATS
        }
        runners = result.get("env_runners", {})
        for key in ("episode_return_mean", "episode_len_mean", "num_env_steps_sampled_lifetime"):
            if isinstance(runners.get(key), (int, float)):
                metrics[f"selfplay/{key}"] = float(runners[key])
        for opponent, row in result.get("league", {}).get("opponents", {}).items():
            metrics[f"league/win_rate_vs_{opponent}"] = row["win_rate"]
            metrics[f"league/score_vs_{opponent}"] = row["score"]
        steps, now = metrics.get("selfplay/num_env_steps_sampled_lifetime"), time.monotonic()
        if steps is not None and last["steps"] is not None and now > last["time"]:
            metrics["selfplay/env_steps_per_s"] = (steps - last["steps"]) / (now - last["time"])
        last.update(time=now, steps=steps)
        metrics["learner/iteration"] = float(iteration)
        tracker.log(metrics, step=iteration)

    def evaluation_metrics(report: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        results = MatchResults()
        metrics: dict[str, float] = {}
        for spec, row in report.items():
            results.add(LEARNER, spec, row["wins"], row["draws"], row["losses"])
            label = spec.replace(":", "")
            metrics[f"eval/score_vs_{label}"] = row["score"]
            metrics[f"eval/win_rate_vs_{label}"] = row["wins"] / row["games"]
        if "random" in report:
            rating = fit_elo(results, anchor="random")[LEARNER]
            metrics["eval/elo"] = rating.rating
            metrics["eval/elo_ci"] = (rating.ci_high - rating.ci_low) / 2
        return metrics

    final: dict[str, float] = {}

    def log_evaluation(iteration: int, report: Mapping[str, Mapping[str, float]]) -> None:
        final.clear()
        final.update(evaluation_metrics(report))
        if final:
            tracker.log(final, step=iteration)

    try:
        summary = train_ppo(
            cfg, cfg.minutes, run_dir, settings=settings, resume=resume,
            on_iteration=log, on_save=lambda algo: export_policy(algo, run_dir, cfg),
            on_evaluation=log_evaluation,
        )  # fmt: skip
        tracker.log_summary(
            {
                "iterations": summary["iterations"],
                "precision": summary["precision"],
                "device": summary["device"],
                "averaged": len(summary["averaged"]),
                "policy": summary["policy"],
                **{f"select/score_{name}": score for name, score in summary["selection"].items()},
                **final,
            }
        )
        summary["metrics"] = dict(final)
        return summary
    finally:
        tracker.finish()


__all__ = [
    "CHECKPOINT_DIR",
    "ENV_PREFIX",
    "LEAGUE_FILE",
    "LEARNER",
    "MASKED_LOGIT",
    "NETWORK_KEY",
    "BridgeLeague",
    "EpisodeMapping",
    "IllegalActionError",
    "LeagueCallback",
    "LeagueSettings",
    "MaskCheckedPettingZooEnv",
    "PPOSettings",
    "PolicyValueRLModule",
    "RLModulePlayer",
    "SelfPlayLeague",
    "add_snapshot",
    "average_states",
    "averaged_snapshots",
    "build_ppo",
    "cpu_has_bfloat16",
    "driver_callback",
    "evaluate",
    "export_policy",
    "greedy_actions",
    "learner_module",
    "make_env",
    "model_config_for",
    "module_spec",
    "module_state",
    "network_config_for_game",
    "network_config_from",
    "policy_state",
    "ppo_settings",
    "push_mapping",
    "register_envs",
    "resolve_precision",
    "restore",
    "save",
    "select_policy",
    "set_env_runner_weights",
    "train",
    "train_ppo",
]
