"""AlphaZero self-play on Ray, top to bottom in one file.

Roles (see ../shared/ARCHITECTURE.md):

- ``SelfPlayWorker`` (Ray actor, one CPU): G games in flight as one batched core, one batched
  search per move (one network call per simulation for all G games), finished games turned into
  training positions with the final result as the value target.
- the learner with the replay buffer (``LearnerService``; in this process, or a Ray actor given
  a GPU of the cluster: ``learner_placement``): samples the buffer (with board symmetries),
  trains the network; its weights go to Ray's object store every few steps for the workers.
- ``EvalWorker`` (Ray actor): plays the latest weights against the baseline players and earlier
  snapshots; the results accumulate into one table fitted to Elo (random = 0).

Asynchronous: each worker always has its next call queued, with the newest weights at the time
it was queued, so workers never wait for the learner; the learner waits only when it would train
more than ``max_sample_reuse`` times per generated position. Workers that die are restarted by
Ray (``max_restarts``) and their lost call is resubmitted: the run goes on.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

import envs
from agents.evaluator import NetworkEvaluator, pick_device
from agents.networks import (
    NetworkConfig,
    PolicyValueNet,
    build_network,
    network_config_for_game,
)
from agents.search import BatchedMCTS, SearchConfig, SearchPlayer
from selfplay.config import (
    TrainConfig,
    actor_device,
    check_resume,
    learner_placement,
    parse_league_mix,
    to_dict,
)
from selfplay.league import LEAGUE_PREFIX, League, LeagueConfig
from selfplay.ratings import MatchResults, fit_elo
from selfplay.replay import ReplayBuffer, planes_to_tokens

# League snapshot tensors share the checkpoint's model dict under LEAGUE_PREFIX; checkpoints
# written before the league kept two snapshots under "snapshot/" (read as plain weights no more).
OLD_SNAPSHOT_PREFIX = "snapshot/"
REPLAY_WINDOW = 50_000  # newest positions a checkpoint keeps (a resumed run starts warm)
LEARNER_START_TIMEOUT = 180.0  # seconds a learner actor may take to be placed and built


# ------------------------------------------------------------------------------------------
# building blocks shared by workers, learner, evaluator and `load_player`


def network_config(cfg: TrainConfig) -> NetworkConfig:
    """The network the config names, shaped for the config's game."""
    sizes: dict[str, Any] = {
        "convnet": {"channels": cfg.channels, "blocks": cfg.blocks},
        "transformer": {"width": cfg.width, "heads": cfg.heads, "depth": cfg.depth},
        "mlp": {"hidden": (cfg.hidden,) * cfg.mlp_layers, "line_filters": cfg.line_filters},
    }[cfg.net]
    return network_config_for_game(
        cfg.game, cfg.net, threats=cfg.threat_planes, drop_planes=cfg.drop_planes, **sizes
    )


def search_config(cfg: TrainConfig, *, evaluation: bool = False) -> SearchConfig:
    return SearchConfig(
        num_simulations=cfg.eval_simulations if evaluation else cfg.simulations,
        algorithm=cfg.search,
        c_puct=cfg.c_puct,
        dirichlet_alpha=cfg.dirichlet_alpha,
        dirichlet_fraction=cfg.dirichlet_fraction,
        num_considered=cfg.num_considered,
    )


def net_inputs(net: PolicyValueNet, planes: np.ndarray) -> torch.Tensor:
    """Bool planes (B, 2, rows, cols) -> what ``net`` reads (float planes or int tokens)."""
    if net.input_kind == "tokens":
        return torch.from_numpy(planes_to_tokens(planes))  # (B, T)
    return torch.from_numpy(planes.astype(np.float32))  # (B, 2, rows, cols)


# ------------------------------------------------------------------------------------------
# self-play


class SelfPlayWorker:
    """G games of self-play with batched search (a plain class; Ray wraps it as an actor).

    With a league (``league_mix`` other than ``latest=1.0``) a share of the games is played
    against a frozen snapshot instead of the live network. A game gets its opponent (and the
    learner its seat) when it starts and keeps them to its end; only the learner's moves become
    training positions.
    """

    def __init__(
        self, cfg: Mapping[str, Any], index: int, *, threads: int = 1, cache_size: int = 0
    ) -> None:
        from selfplay.config import config_from_dict, parse_league_mix

        self.cfg = config_from_dict(cfg)
        if threads > 0:
            torch.set_num_threads(threads)
        self.index = index
        G = self.cfg.games_per_worker
        self.game = envs.make(self.cfg.game, G, auto_reset=True)
        self.evaluator = NetworkEvaluator(
            build_network(network_config(self.cfg)), cache_size=cache_size, example_batch=G
        )
        self.seed = self.cfg.seed * 1000 + index
        self.mcts = BatchedMCTS(self.evaluator, search_config(self.cfg), seed=self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.version = -1
        self.league_share = 1.0 - parse_league_mix(self.cfg.league_mix)["latest"]
        self.opponents: dict[str, BatchedMCTS] = {}  # frozen snapshots in play, by name
        self.opponent_of = np.full(G, "", dtype=object)  # (G,) "" = the live network
        self.learner_seat = np.zeros(G, np.int64)  # (G,) in league games
        T, A = self.game.max_moves, self.game.num_actions
        shape = (G, T, 2, self.game.rows, self.game.cols)
        self.hist_planes = np.zeros(shape, bool)  # (G, T, 2, rows, cols)
        self.hist_legal = np.zeros((G, T, A), bool)  # (G, T, A)
        self.hist_policy = np.zeros((G, T, A), np.float32)  # (G, T, A)
        self.hist_mover = np.zeros((G, T), np.int64)  # (G, T)
        self.hist_learner = np.zeros((G, T), bool)  # (G, T) a learner move: a training position

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def set_weights(self, weights: Mapping[str, torch.Tensor], version: int) -> None:
        self.evaluator.set_weights(weights)
        self.version = version

    def play(
        self,
        weights: list[Any],
        version: int,
        num_moves: int,
        opponent: tuple[str, list[Any]] | None = None,
    ) -> dict[str, Any]:
        """Play ``num_moves`` moves in every game; return the finished games' positions.

        ``weights`` is ``[object_ref]`` (a list, so Ray hands over the reference unresolved
        and the worker fetches the weights only when ``version`` is new). ``opponent`` is the
        league snapshot ``(name, [object_ref])`` that games starting during this call meet.
        """
        import ray

        if version != self.version:
            state = weights[0]
            self.set_weights(ray.get(state) if isinstance(state, ray.ObjectRef) else state, version)
        if opponent is not None and opponent[0] not in self.opponents:
            name, (ref,) = opponent
            self.add_opponent(name, ray.get(ref) if isinstance(ref, ray.ObjectRef) else ref)
        return self.play_moves(num_moves, opponent=opponent[0] if opponent else None)

    def add_opponent(self, name: str, weights: Mapping[str, torch.Tensor]) -> None:
        net = build_network(network_config(self.cfg))
        net.load_state_dict(weights)
        evaluator = NetworkEvaluator(net, example_batch=self.game.num_envs)
        self.opponents[name] = BatchedMCTS(evaluator, search_config(self.cfg), seed=self.seed)

    def _assign_opponents(self, fresh: np.ndarray, opponent: str | None) -> None:
        """Games that just started meet the live network or, with the league's share, the
        current snapshot. Built opponents are kept (a snapshot is often drawn again) up to the
        league's size; beyond it the oldest that no game plays are dropped."""
        self.opponent_of[fresh] = ""
        if opponent is not None and self.league_share > 0 and fresh.size:
            league = fresh[self.rng.random(fresh.size) < self.league_share]
            self.opponent_of[league] = opponent
            self.learner_seat[league] = self.rng.integers(0, 2, league.size)
        if len(self.opponents) > self.cfg.league_snapshots:
            in_play = set(self.opponent_of.tolist()) | {opponent}
            idle = [n for n in self.opponents if n not in in_play]  # oldest first
            for name in idle[: len(self.opponents) - self.cfg.league_snapshots]:
                del self.opponents[name]

    def play_moves(self, num_moves: int, opponent: str | None = None) -> dict[str, Any]:
        game, cfg = self.game, self.cfg
        G = game.num_envs
        out: dict[str, list[np.ndarray]] = {"planes": [], "legal": [], "policy": [], "value": []}
        games = first_wins = draws = 0
        league_results: dict[str, list[int]] = {}  # opponent -> learner's [wins, draws, losses]
        evaluations_before = self.evaluator.evaluations
        start = time.perf_counter()
        for _ in range(num_moves):
            ply = game.moves.astype(np.int64)  # (G,)
            self._assign_opponents(np.flatnonzero(ply == 0), opponent)
            mover = game.current_player()  # (G,)
            frozen_turn = (self.opponent_of != "") & (mover != self.learner_seat)  # (G,)
            temperature = np.where(ply < cfg.temperature_moves, 1.0, 0.0)
            actions = np.zeros(G, np.int64)
            learner = np.flatnonzero(~frozen_turn)
            if learner.size:
                sub = game if learner.size == G else game.take(learner)
                result = self.mcts.search(sub, add_noise=True, temperature=temperature[learner])
                actions[learner] = result.action
                at = ply[learner]
                self.hist_planes[learner, at] = sub.planes()
                self.hist_legal[learner, at] = sub.legal_mask()
                self.hist_policy[learner, at] = result.policy
            self.hist_mover[np.arange(G), ply] = mover
            self.hist_learner[np.arange(G), ply] = ~frozen_turn
            for name in set(self.opponent_of[frozen_turn].tolist()):
                idx = np.flatnonzero(frozen_turn & (self.opponent_of == name))
                result = self.opponents[name].search(
                    game.take(idx), add_noise=True, temperature=temperature[idx]
                )
                actions[idx] = result.action
            rewards, done = game.step(actions)  # finished games restart at once
            for g in np.flatnonzero(done):
                length = ply[g] + 1
                keep = self.hist_learner[g, :length]
                out["planes"].append(self.hist_planes[g, :length][keep])
                out["legal"].append(self.hist_legal[g, :length][keep])
                out["policy"].append(self.hist_policy[g, :length][keep])
                # the value target: the final result from the view of the player who moved
                movers = self.hist_mover[g, :length][keep]
                out["value"].append(rewards[g, movers].astype(np.float32))
                games += 1
                first_wins += int(rewards[g, 0] > 0)
                draws += int(rewards[g, 0] == 0)
                if self.opponent_of[g]:
                    score = rewards[g, self.learner_seat[g]]
                    record = league_results.setdefault(self.opponent_of[g], [0, 0, 0])
                    record[0 if score > 0 else 1 if score == 0 else 2] += 1
        seconds = time.perf_counter() - start
        batch: dict[str, Any] = {
            name: (np.concatenate(parts) if parts else np.zeros((0,)))
            for name, parts in out.items()
        }
        cache = self.evaluator.cache
        batch["stats"] = {
            "positions": G * num_moves,
            "games": games,
            "first_wins": first_wins,
            "draws": draws,
            "evaluations": self.evaluator.evaluations - evaluations_before,
            "seconds": seconds,
            "cache_hit_rate": cache.hit_rate() if cache is not None else 0.0,
            "worker": self.index,
            "league_results": league_results,
        }
        return batch


# ------------------------------------------------------------------------------------------
# evaluation


class EvalWorker:
    """Plays a network (with search, no noise) against baseline players and snapshots."""

    def __init__(self, cfg: Mapping[str, Any], *, threads: int = 1) -> None:
        from selfplay.config import config_from_dict

        self.cfg = config_from_dict(cfg)
        if threads > 0:
            torch.set_num_threads(threads)

    def _player(self, name: str, weights: Mapping[str, torch.Tensor], seed: int) -> SearchPlayer:
        net = build_network(network_config(self.cfg))
        net.load_state_dict(weights)
        evaluator = NetworkEvaluator(net, example_batch=max(1, self.cfg.eval_games // 2))
        return SearchPlayer(
            evaluator, search_config(self.cfg, evaluation=True), name=name, seed=seed
        )

    def evaluate(
        self,
        name: str,
        weights: Mapping[str, torch.Tensor],
        opponents: list[str],
        snapshots: Mapping[str, Mapping[str, torch.Tensor]],
        seed: int,
    ) -> list[dict[str, Any]]:
        from agents.players import make_player
        from selfplay.arena import game_factory, play_match

        make_game = game_factory(self.cfg.game)
        player = self._player(name, weights, seed)
        rows = []
        opponents_built = [make_player(spec, self.cfg.game, seed=seed + 1) for spec in opponents]
        opponents_built += [
            self._player(snap, snap_weights, seed + 2) for snap, snap_weights in snapshots.items()
        ]
        for i, opponent in enumerate(opponents_built):
            start = time.perf_counter()
            # two networks searching without noise replay the same game: start snapshot
            # matches from random two-ply openings (each played from both seats)
            snapshot = i >= len(opponents)
            result = play_match(
                make_game, player, opponent, self.cfg.eval_games,
                opening_plies=2 if snapshot else 0, seed=seed + i,
            )  # fmt: skip
            record = result.record()
            rows.append(
                {
                    "a": name,
                    "b": opponent.name,
                    "wins": record.wins,
                    "draws": record.draws,
                    "losses": record.losses,
                    "seconds": time.perf_counter() - start,
                }
            )
        return rows


# ------------------------------------------------------------------------------------------
# the learner


class Learner:
    """Trains the policy-value network on replay samples (AdamW; bf16 autocast on CUDA)."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        self.cfg = cfg
        self.device = device
        self.net = build_network(network_config(cfg)).to(device)
        self.optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )

    def weights(self) -> dict[str, torch.Tensor]:
        """A CPU copy of the weights (what workers load)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}

    def step(self, batch: Mapping[str, np.ndarray]) -> dict[str, float]:
        self.net.train()
        x = net_inputs(self.net, batch["planes"]).to(self.device)
        legal = torch.from_numpy(batch["legal"]).to(self.device)  # (B, A)
        target_policy = torch.from_numpy(batch["policy"]).to(self.device)  # (B, A)
        target_value = torch.from_numpy(batch["value"]).to(self.device)  # (B,)
        with torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"
        ):
            logits, value = self.net(x, legal)
        log_probs = torch.log_softmax(logits.float(), dim=-1).masked_fill(~legal, 0.0)
        policy_loss = -(target_policy * log_probs).sum(-1).mean()
        value_loss = F.mse_loss(value.float(), target_value)
        loss = policy_loss + value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
        self.optimizer.step()
        # the target's own entropy is the floor of the policy loss: report the gap too
        entropy = -(target_policy * torch.log(target_policy.clamp_min(1e-12))).sum(-1).mean()
        figures = torch.stack([loss, policy_loss, value_loss, policy_loss - entropy, grad_norm])
        loss_, policy_, value_, kl_, grad_ = figures.detach().cpu().tolist()  # one sync
        return {
            "learner/loss": loss_,
            "learner/policy_loss": policy_,
            "learner/value_loss": value_,
            "learner/policy_kl": kl_,
            "learner/grad_norm": grad_,
        }


def _to_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested dicts and lists) copied to the CPU: what a
    checkpoint holds, and what crosses to a process that may have no GPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


class LearnerService:
    """The learner with its replay buffer, in one process (a plain class: the driver builds
    one, or Ray wraps it as an actor when the learner runs elsewhere, `learner_placement`).

    ``state``: what ``state()`` returned (a checkpoint's weights, optimizer and replay window,
    or a whole buffer moving from the driver to an actor).
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        device: str,
        *,
        threads: int = 0,
        state: Mapping[str, Any] | None = None,
    ) -> None:
        from selfplay.config import config_from_dict

        self.cfg = config_from_dict(cfg)
        if threads > 0:
            torch.set_num_threads(threads)
        if device.startswith("cuda") and not torch.cuda.is_available():  # an actor given a GPU
            raise ValueError(
                f"device {device} was asked for but torch here sees no CUDA GPU (torch "
                f"{torch.__version__}, CUDA_VISIBLE_DEVICES "
                f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); use --device cpu or --learner "
                f"driver"
            )
        self.learner = Learner(self.cfg, pick_device(device))
        game = envs.make(self.cfg.game, 1)
        self.replay = ReplayBuffer(
            self.cfg.replay_size,
            (2, game.rows, game.cols),
            game.num_actions,
            game.symmetries() if self.cfg.augment else None,
        )
        self.rng = np.random.default_rng([self.cfg.seed, 1])  # replay sampling
        if state is not None:
            self.load(state)

    def where(self) -> dict[str, Any]:
        """The learner's device (and GPU name) and its process."""
        device = self.learner.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        return {"device": str(device), "name": name, "pid": os.getpid()}

    def load(self, state: Mapping[str, Any]) -> None:
        self.learner.net.load_state_dict(state["model"])
        if state.get("optimizer"):
            self.learner.optimizer.load_state_dict(state["optimizer"])
        if state.get("replay"):
            self.replay.load(state["replay"])

    def state(self, replay_count: int) -> dict[str, Any]:
        """Weights and optimizer state (on the CPU) and the newest ``replay_count`` positions."""
        return {
            "model": self.weights(),
            "optimizer": _to_cpu(self.learner.optimizer.state_dict()),
            "replay": self.replay.recent(replay_count),
        }

    def add(
        self, planes: np.ndarray, legal: np.ndarray, policy: np.ndarray, value: np.ndarray
    ) -> int:
        """Positions into the replay buffer; returns its size."""
        self.replay.add(planes, legal, policy, value)
        return len(self.replay)

    def size(self) -> int:
        return len(self.replay)

    def train(self) -> dict[str, float]:
        """One learner step on a replay sample (with board symmetries when ``augment``)."""
        batch = self.replay.sample(self.cfg.batch_size, self.rng, augment=self.cfg.augment)
        return self.learner.step(batch)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.learner.weights()


class LearnerActorDied(RuntimeError):
    """The learner actor is gone (its node died, it ran out of memory, its constructor
    raised): the run cannot go on; its last checkpoint resumes it. ``cause``: Ray's error in
    one line."""

    def __init__(self, cause: str) -> None:
        super().__init__(
            f"the learner actor died ({cause}); resume the run from its last checkpoint "
            f"(selfplay train --resume RUN_DIR)"
        )
        self.cause = cause


def _one_line(error: BaseException) -> str:
    """A Ray error in one line: the last "SomeError: ..." line of its text (the exception
    raised in the actor), else its first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception): ", line)]
    return (raised or lines or [type(error).__name__])[-1 if raised else 0]


class LearnerHandle:
    """The run's learner wherever it runs: calls go to a `LearnerService` in this process, or
    to its Ray actor and wait for the answer, except ``add`` (not waited for) and a learner
    step (``start_step``; an actor's runs while the driver collects games, ``finish_step``
    counts it). An actor runs its calls in the order they were made."""

    def __init__(self, service: LearnerService | None = None, actor: Any = None) -> None:
        if (service is None) == (actor is None):
            raise ValueError("a learner handle needs exactly one of a service and an actor")
        self.service = service
        self.actor = actor
        self.dead = False  # the actor died: nothing more can be asked of it
        self.step_ref: Any = None  # the actor's step in flight
        self._local_step: dict[str, float] | None = None  # a step run here, not yet counted
        self._adds: list[Any] = []  # the actor's add calls, checked when a step is counted

    def _get(self, ref: Any, timeout: float | None = None) -> Any:
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        try:
            return ray.get(ref, timeout=timeout)
        except ActorUnavailableError:
            raise  # a passing fault (a network blip): the actor may answer again
        except RayActorError as error:
            self.dead = True
            raise LearnerActorDied(_one_line(error)) from None

    def _call(self, method: str, *args: Any) -> Any:
        if self.actor is None:
            return getattr(self.service, method)(*args)
        return self._get(getattr(self.actor, method).remote(*args))

    def add(
        self, planes: np.ndarray, legal: np.ndarray, policy: np.ndarray, value: np.ndarray
    ) -> None:
        """Positions into the replay buffer (an actor's call is not waited for)."""
        if self.actor is None:
            self.service.add(planes, legal, policy, value)
        else:
            self._adds.append(self.actor.add.remote(planes, legal, policy, value))

    @property
    def stepping(self) -> bool:
        """A step was started and not yet counted."""
        return self.step_ref is not None or self._local_step is not None

    def start_step(self) -> None:
        """One learner step on a replay sample: run here, or started on the actor."""
        if self.stepping:
            raise RuntimeError("a learner step is already under way")
        if self.actor is None:
            self._local_step = self.service.train()
        else:
            self.step_ref = self.actor.train.remote()

    def finish_step(self, wait: bool) -> dict[str, float] | None:
        """The figures of the step started last, once (None: none, or not done and not
        ``wait``)."""
        if self.actor is None:
            metrics, self._local_step = self._local_step, None
            return metrics
        import ray

        if self.step_ref is None or not (wait or ray.wait([self.step_ref], timeout=0)[0]):
            return None
        ref, self.step_ref = self.step_ref, None
        return self._get(ref)

    def check_adds(self, wait: bool) -> None:
        """Raise the error of an actor's add call that failed (finished ones; ``wait``: all),
        instead of losing it."""
        if not self._adds:
            return
        import ray

        count = len(self._adds)
        done, self._adds = ray.wait(self._adds, num_returns=count, timeout=None if wait else 0)
        for add in done:
            self._get(add)

    def size(self) -> int:
        return self._call("size")

    def weights(self) -> dict[str, torch.Tensor]:
        return self._call("weights")

    def weights_ref(self) -> Any:
        """The weights in Ray's object store, for the workers (an actor's go there directly)."""
        import ray

        if self.actor is not None:
            return self.actor.weights.remote()
        return ray.put(self.service.weights())

    def state(self, replay_count: int) -> dict[str, Any]:
        return self._call("state", replay_count)

    def where(self, timeout: float | None = None) -> dict[str, Any]:
        if self.actor is None:
            return self.service.where()
        return self._get(self.actor.where.remote(), timeout=timeout)

    def load(self, state: Mapping[str, Any]) -> None:
        self._call("load", state)


# ------------------------------------------------------------------------------------------
# the run


def league_config(cfg: TrainConfig) -> LeagueConfig:
    """The league's sampling settings for a run. "latest" is the live network, which the
    workers play themselves; the league draws the frozen opponents of the other games: past
    and pfsp, renormalized."""
    mix = parse_league_mix(cfg.league_mix)
    frozen = mix["past"] + mix["pfsp"]
    return LeagueConfig(
        latest=0.0,
        past=mix["past"] / frozen if frozen else 1.0,
        pfsp=mix["pfsp"] / frozen if frozen else 0.0,
        pfsp_weighting=cfg.league_pfsp_weighting,
        max_snapshots=cfg.league_snapshots,
        gated_only=cfg.league_gating == "sprt",
    )


class AlphaZeroRun:
    """One training run: ``start()``, ``run()`` (until the time budget or a signal), ``close()``."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, checkpoint: Any | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.checkpoint_in = checkpoint
        self.rng = np.random.default_rng(cfg.seed)
        cpus = os.cpu_count() or 1
        self.learner_threads = cfg.learner_threads or max(1, cpus - cfg.workers)
        torch.set_num_threads(self.learner_threads)
        torch.manual_seed(cfg.seed)
        # Where the learner runs (None: decided by the cluster's GPUs once Ray is up). It starts
        # here either way, on its device when it stays here, else on the CPU until start()
        # hands its state to an actor; a device torch cannot reach here is refused now.
        self.placement = learner_placement(
            cfg.learner,
            cfg.device,
            ray_address=cfg.ray_address,
            local_gpus=torch.cuda.device_count(),
            cluster_gpus=None,
        )
        device = pick_device(cfg.device) if self.placement == "driver" else torch.device("cpu")
        self.learner = LearnerHandle(LearnerService(to_dict(cfg), str(device)))
        self.counters: dict[str, float] = {
            "step": 0, "version": 0, "positions": 0, "games": 0, "seconds": 0.0,
            "evaluations": 0, "restarts": 0, "first_wins": 0, "draws": 0, "samples": 0,
        }  # fmt: skip
        self.results = MatchResults()
        self.elo_history: list[dict[str, float]] = []
        self.league_share = 1.0 - parse_league_mix(cfg.league_mix)["latest"]
        self.league = League(league_config(cfg))
        self._snapshot_refs: dict[str, Any] = {}
        self.wandb_id: str | None = None
        if checkpoint is not None:
            self._restore(checkpoint)
        self._stop = False
        self._started_ray = False
        self.tracker: Any = None
        self.workers: list[Any] = []
        self.eval_worker: Any = None
        self._pending: dict[Any, int] = {}  # worker calls in flight -> worker index
        # run()'s state that a step counted outside its loop (save) updates too
        self._window = {"positions": 0, "games": 0, "evaluations": 0, "steps": 0}
        self._weights_ref: Any = None  # the newest published weights (Ray object)
        self._train_metrics: dict[str, float] = {}

    # -- checkpoints ---------------------------------------------------------------------

    def _restore(self, ckpt: Any) -> None:
        prefixes = (LEAGUE_PREFIX, OLD_SNAPSHOT_PREFIX)
        model = {k: v for k, v in ckpt.model.items() if not k.startswith(prefixes)}
        self.learner.load({"model": model, "optimizer": ckpt.optimizer, "replay": ckpt.replay})
        if ckpt.league:
            tensors = {k: v for k, v in ckpt.model.items() if k.startswith(LEAGUE_PREFIX)}
            self.league = League.from_state_dict(ckpt.league, tensors)
            # the sampling settings are this run's (a resume may change them), not the saved ones
            self.league.config = league_config(self.cfg)
        self.counters.update(ckpt.counters)
        ratings = ckpt.ratings or {}
        if "results" in ratings:
            self.results = MatchResults.from_dict(ratings["results"])
        self.elo_history = list(ratings.get("history", []))
        self.wandb_id = (ckpt.extra or {}).get("wandb_run_id")

    def save(self) -> Path:
        from selfplay.checkpoint import checkpoint_path, save_checkpoint

        self._collect_step(wait=True)  # the counters of the weights saved, step included
        league_meta, league_tensors = self.league.state_dict()
        learner = self.learner.state(min(REPLAY_WINDOW, self.cfg.replay_size))
        return save_checkpoint(
            checkpoint_path(self.run_dir),
            model={**learner["model"], **league_tensors},
            optimizer=learner["optimizer"],
            counters=dict(self.counters),
            config=to_dict(self.cfg),
            ratings={"results": self.results.to_dict(), "history": self.elo_history},
            league=league_meta,
            replay=learner["replay"],
            extra={"wandb_run_id": self.wandb_id},
        )

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        import ray

        from selfplay.tracking import Tracker

        if not ray.is_initialized():
            address = self.cfg.ray_address or None
            if address is None:
                # embedded Ray: enough CPU slots for every worker even on a small machine
                cpus = max(os.cpu_count() or 1, self.cfg.workers)
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
            self._started_ray = True
        try:  # a refusal or failure here leaves no learner actor or Ray of this run behind
            total_cpus = ray.cluster_resources().get("CPU", 0)
            if total_cpus < self.cfg.workers:
                raise ValueError(
                    f"workers {self.cfg.workers} need {self.cfg.workers} CPUs; the Ray cluster "
                    f"has {total_cpus:g}"
                )
            where = self._place_learner()
            self.tracker = Tracker(
                self.run_dir,
                to_dict(self.cfg),
                mode=self.cfg.wandb,
                project=self.cfg.wandb_project,
                run_name=self.run_dir.name,
                resume_id=self.wandb_id,
            )
        except BaseException:
            if self.learner.actor is not None:
                ray.kill(self.learner.actor, no_restart=True)
            if self._started_ray:
                ray.shutdown()
                self._started_ray = False
            raise
        self.wandb_id = self.tracker.run_id
        print(
            f"learner on {where['device']} ({where['name']}"
            f"{', a Ray actor' if self.placement == 'actor' else ''}), "
            f"{self.cfg.workers} self-play workers"
        )
        config = to_dict(self.cfg)
        worker_cls = ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=0)(SelfPlayWorker)
        self.workers = [
            worker_cls.options(scheduling_strategy="SPREAD").remote(config, i)
            for i in range(self.cfg.workers)
        ]
        eval_cls = ray.remote(num_cpus=0, max_restarts=-1)(EvalWorker)
        self.eval_worker = eval_cls.remote(config)

    def _place_learner(self) -> dict[str, Any]:
        """Settle where the learner runs now that Ray is up (an actor gets the state of the
        learner built in __init__: weights, optimizer, the whole replay buffer); returns
        `LearnerService.where`."""
        import ray

        cfg = self.cfg
        cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
        placement = learner_placement(
            cfg.learner,
            cfg.device,
            ray_address=cfg.ray_address,
            local_gpus=torch.cuda.device_count(),
            cluster_gpus=cluster_gpus,
        )
        if placement == "driver":
            if self.placement is None:  # stays here after all: no GPU here nor in the cluster
                pick_device(cfg.device)  # device cuda is refused; auto is the CPU it is on
            self.placement = placement
            return self.learner.where()
        from ray.exceptions import GetTimeoutError

        device = actor_device(cfg.device, cluster_gpus, ray.available_resources().get("GPU", 0.0))
        # torch threads: the driver's count when the actor shares this machine (Ray embedded);
        # on a cluster the flag's, else Ray's default of 1 (a GPU does the work)
        threads = cfg.learner_threads or (0 if cfg.ray_address else self.learner_threads)
        actor_cls = ray.remote(num_cpus=0, num_gpus=1 if device == "cuda" else 0, max_restarts=0)
        actor = actor_cls(LearnerService).remote(
            to_dict(cfg), device, threads=threads, state=self.learner.state(cfg.replay_size)
        )
        self.learner = LearnerHandle(actor=actor)
        self.placement = placement
        try:
            return self.learner.where(timeout=LEARNER_START_TIMEOUT)
        except LearnerActorDied as error:  # its constructor's error, in one line
            raise ValueError(f"the learner actor did not start: {error.cause}") from None
        except GetTimeoutError:
            raise ValueError(
                f"the learner actor was not running after {LEARNER_START_TIMEOUT:g} s (it "
                f"asked Ray for {'1 GPU' if device == 'cuda' else 'no GPU'}); see `ray status`"
            ) from None

    def request_stop(self, *_: Any) -> None:
        self._stop = True

    def run(self, seconds: float | None = None) -> dict[str, float]:
        """Train until the run's time budget (or ``seconds`` more) is spent, or a signal."""
        import ray
        from ray.exceptions import ActorUnavailableError, RayActorError

        from selfplay.tracking import Progress

        cfg = self.cfg
        budget = cfg.minutes * 60 - self.counters["seconds"]
        if seconds is not None:
            budget = min(budget, seconds)
        self._weights_ref = self.learner.weights_ref()
        # calls still running from an earlier run() are collected here, not cancelled:
        # cancelling queued actor calls can leave an actor waiting for a call that never comes
        pending = self._pending
        replay_size = self.learner.size()

        def submit(worker: int) -> None:
            ref = self.workers[worker].play.remote(
                [self._weights_ref],
                int(self.counters["version"]),
                cfg.moves_per_call,
                self._sample_opponent(),
            )
            pending[ref] = worker

        for w in range(len(self.workers)):
            # one running, one queued: a worker never waits for the driver
            for _ in range(2 - list(pending.values()).count(w)):
                submit(w)
        eval_pending: Any = None
        eval_name = ""
        start = time.perf_counter()
        base_seconds = self.counters["seconds"]
        last_log = last_eval = last_ckpt = start
        self._window = window = {"positions": 0, "games": 0, "evaluations": 0, "steps": 0}
        window_start = start
        self._train_metrics = {}
        hit_rates: dict[int, float] = {}
        progress = Progress(cfg.minutes * 60)
        learner = self.learner
        handlers = self._install_signal_handlers()  # restored in the finally below
        try:
            while not self._stop:
                now = time.perf_counter()
                self.counters["seconds"] = base_seconds + (now - start)
                if now - start >= budget or (
                    cfg.max_steps and self.counters["step"] >= cfg.max_steps
                ):
                    break
                # counted over the whole run (resumes included): samples trained on per
                # training position generated; one step at a time (an actor's in flight
                # while this loop collects games)
                trained = self.counters["step"] * cfg.batch_size
                can_train = (
                    not learner.stepping
                    and replay_size >= cfg.min_replay
                    and trained < cfg.max_sample_reuse * self.counters["samples"]
                )
                step = [learner.step_ref] if learner.step_ref is not None else []
                waiting = [*pending, *step]
                ready, _ = ray.wait(waiting, num_returns=1, timeout=0 if can_train else 0.2)
                for ref in ready:
                    if ref not in pending:
                        continue  # the learner's step, counted by _collect_step below
                    worker = pending.pop(ref)
                    try:
                        batch = ray.get(ref)
                    except (RayActorError, ActorUnavailableError):
                        if learner.actor is not None:
                            learner.size()  # the worker died of a dead learner: raises
                        self.counters["restarts"] += 1  # Ray restarts the actor; resubmit
                        submit(worker)
                        continue
                    stats = batch.pop("stats")
                    if len(batch["value"]):
                        self.learner.add(
                            batch["planes"], batch["legal"], batch["policy"], batch["value"]
                        )  # an actor queues them behind its step, in call order
                        replay_size = min(replay_size + len(batch["value"]), cfg.replay_size)
                        self.counters["samples"] += len(batch["value"])
                    for key in ("positions", "games", "evaluations", "first_wins", "draws"):
                        self.counters[key] += stats[key]
                    for key in ("positions", "games", "evaluations"):
                        window[key] += stats[key]
                    hit_rates[worker] = stats["cache_hit_rate"]
                    for opponent, (wins, draws, losses) in stats["league_results"].items():
                        if opponent in self.league:  # it may have left the league since
                            self.league.record("main", opponent, wins, draws, losses)
                    submit(worker)
                if can_train:
                    learner.start_step()
                self._collect_step(wait=False)
                # evaluation: launch, then collect without blocking
                if eval_pending is not None and ray.wait([eval_pending], timeout=0)[0]:
                    self._record_eval(ray.get(eval_pending), eval_name)
                    eval_pending = None
                if eval_pending is None and now - last_eval >= cfg.eval_every_minutes * 60:
                    self._collect_step(wait=True)  # the snapshot's name is its step
                    eval_name = f"step_{int(self.counters['step'])}"
                    eval_pending = self._launch_eval(eval_name)
                    last_eval = now
                if now - last_log >= 10 or not self.tracker:
                    elapsed = now - window_start
                    metrics = {
                        "selfplay/positions": self.counters["positions"],
                        "selfplay/games": self.counters["games"],
                        "selfplay/positions_per_s": window["positions"] / elapsed,
                        "selfplay/games_per_s": window["games"] / elapsed,
                        "perf/evals_per_s": window["evaluations"] / elapsed,
                        "perf/cache_hit_rate": float(np.mean(list(hit_rates.values()) or [0])),
                        "learner/steps": self.counters["step"],
                        "learner/steps_per_s": window["steps"] / elapsed,
                        "replay/size": replay_size,
                        "workers/restarts": self.counters["restarts"],
                        "selfplay/first_player_win_rate": self.counters["first_wins"]
                        / max(1, self.counters["games"]),
                        **self._train_metrics,
                    }
                    self.tracker.log(metrics, step=int(self.counters["positions"]))
                    progress.update(
                        self.counters["seconds"],
                        {
                            "step": int(self.counters["step"]),
                            "pos/s": f"{metrics['selfplay/positions_per_s']:.0f}",
                            "loss": f"{self._train_metrics.get('learner/loss', float('nan')):.3f}",
                            "elo": self._latest_elo(),
                        },
                    )
                    window.update(dict.fromkeys(window, 0))  # self._window too
                    window_start = last_log = now
                if now - last_ckpt >= cfg.checkpoint_every_minutes * 60:
                    self.save()
                    last_ckpt = now
            self._collect_step(wait=True)
            if eval_pending is not None:  # a started evaluation is worth its wait
                self._record_eval(ray.get(eval_pending), eval_name)
        finally:
            progress.close()
            self._restore_signal_handlers(handlers)
        return dict(self.counters)

    def _collect_step(self, wait: bool) -> None:
        """Count the learner's step once it is done (``wait``: wait for it): the step counter,
        and every ``publish_every`` steps new weights for the workers."""
        metrics = self.learner.finish_step(wait)
        if metrics is not None:
            self._train_metrics = metrics
            self.counters["step"] += 1
            self._window["steps"] += 1
            if self.counters["step"] % self.cfg.publish_every == 0:
                self.counters["version"] += 1
                self._weights_ref = self.learner.weights_ref()
        self.learner.check_adds(wait)  # after the count: a failed add loses no counted step

    def evaluate_now(self) -> None:
        """A blocking evaluation of the current weights (the end of a run)."""
        import ray

        name = f"step_{int(self.counters['step'])}"
        self._record_eval(ray.get(self._launch_eval(name)), name)

    def _sample_opponent(self) -> tuple[str, list[Any]] | None:
        """The league snapshot that games starting in the next worker call meet."""
        if self.league_share == 0 or not self.league.opponents_for("main", "main"):
            return None  # no snapshot yet (with gating: none promoted yet)
        name = self.league.sample_opponent("main", self.rng)
        import ray

        if name not in self._snapshot_refs:
            self._snapshot_refs[name] = ray.put(dict(self.league.snapshot(name).weights))
        return name, [self._snapshot_refs[name]]

    def _launch_eval(self, name: str) -> Any:
        opponents = [s.strip() for s in self.cfg.eval_opponents.split(",") if s.strip()]
        weights = self.learner.weights()
        # the two newest snapshots are rated against the current weights too, and with
        # gating the best one, whose games the promotion test reads
        rated = [m for m in self.league.names if m != name][-2:]
        best = self.league.best
        if self.cfg.league_gating == "sprt" and best not in (None, name, *rated):
            rated.append(best)
        earlier = {n: dict(self.league.snapshot(n).weights) for n in rated}
        ref = self.eval_worker.evaluate.remote(
            name, weights, opponents, earlier, int(self.rng.integers(1 << 30))
        )
        if name not in self.league:  # the same step again (a resume, the final evaluation):
            # the same weights, already a snapshot
            self.league.add_snapshot(name, weights, role="main", step=int(self.counters["step"]))
        self._snapshot_refs = {
            n: r for n, r in self._snapshot_refs.items() if n in self.league.names
        }
        return ref

    def _record_eval(self, rows: list[dict[str, Any]], name: str) -> None:
        metrics: dict[str, float] = {}
        for row in rows:
            self.results.add(row["a"], row["b"], row["wins"], row["draws"], row["losses"])
            if row["a"] in self.league and row["b"] in self.league:
                self.league.record(row["a"], row["b"], row["wins"], row["draws"], row["losses"])
            games = row["wins"] + row["draws"] + row["losses"]
            label = row["b"].replace(":", "")
            metrics[f"eval/score_vs_{label}"] = (row["wins"] + 0.5 * row["draws"]) / games
            metrics[f"eval/win_rate_vs_{label}"] = row["wins"] / games
        try:
            ratings = fit_elo(self.results, anchor="random")
        except ValueError:
            ratings = None  # no game against random yet: no anchored Elo
        if ratings is not None and name in ratings:
            rating = ratings[name]
            metrics["eval/elo"] = rating.rating
            metrics["eval/elo_ci"] = (rating.ci_high - rating.ci_low) / 2
            for row in rows:
                if row["b"] in ratings:
                    metrics[f"eval/elo_{row['b'].replace(':', '')}"] = ratings[row["b"]].rating
        if self.cfg.league_gating == "sprt":
            metrics.update(self._gate(name))
        self.elo_history.append(
            {"step": self.counters["step"], "seconds": self.counters["seconds"], **metrics}
        )
        self.tracker.log(metrics, step=int(self.counters["positions"]))

    def _gate(self, name: str) -> dict[str, float]:
        """SPRT gating of the snapshot just evaluated: the first one is promoted as is; a later
        one when the test on its games against the current best accepts."""
        best = self.league.best
        if name not in self.league or name == best:
            decision = "continue"  # dropped from the league, or the final re-evaluation
        elif best is None:
            self.league.promote(name)
            decision = "accept"
        else:
            decision = self.league.promote_if_stronger(name, best)
        return {
            "league/promoted": float(decision == "accept"),
            "league/rejected": float(decision == "reject"),
            "league/gated": float(len(self.league.gated)),
        }

    def _latest_elo(self) -> str:
        for entry in reversed(self.elo_history):
            if "eval/elo" in entry:
                return f"{entry['eval/elo']:.0f}"
        return "-"

    def _install_signal_handlers(self) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self.request_stop)
        return previous

    def _restore_signal_handlers(self, previous: Mapping[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def close(self) -> None:
        """Final checkpoint, W&B run finished, Ray shut down (when this run started it)."""
        import ray

        try:
            if not self.learner.dead:  # a dead learner actor: the last checkpoint stands
                self.save()
        finally:
            if self.tracker is not None:
                self.tracker.log_summary({k: v for k, v in self.counters.items()})
                self.tracker.finish()
            if ray.is_initialized():
                for actor in [*self.workers, self.eval_worker, self.learner.actor]:
                    if actor is not None:  # stop their work now, even on a shared cluster
                        ray.kill(actor, no_restart=True)
                self._pending.clear()
            if self._started_ray and ray.is_initialized():
                ray.shutdown()


def make_run_dir(cfg: TrainConfig) -> Path:
    from selfplay.config import make_run_name

    return Path(cfg.runs_dir) / (cfg.run_name or make_run_name(cfg.game))


def train(
    cfg: TrainConfig, *, resume: str | Path | None = None, final_eval: bool = True
) -> dict[str, Any]:
    """Run AlphaZero training as configured (or resume the run in ``resume``)."""
    checkpoint = None
    if resume is not None:
        from selfplay.checkpoint import find_checkpoint, load_checkpoint

        path = find_checkpoint(resume)
        checkpoint = load_checkpoint(path)
        check_resume(checkpoint.config, cfg)  # before Ray or any weights are touched
        run_dir = path.parent
    else:
        run_dir = make_run_dir(cfg)
    run = AlphaZeroRun(cfg, run_dir, checkpoint)
    run.start()
    try:
        counters = run.run()
        if final_eval and not run._stop:
            run.evaluate_now()
    finally:
        run.close()
    return {"run_dir": str(run_dir), **counters, "elo_history": run.elo_history}


__all__ = [
    "AlphaZeroRun",
    "EvalWorker",
    "Learner",
    "LearnerHandle",
    "LearnerService",
    "SelfPlayWorker",
    "make_run_dir",
    "network_config",
    "search_config",
    "train",
]
