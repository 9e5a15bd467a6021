"""Training configuration: one frozen dataclass, YAML presets, CLI flags on top.

`TrainConfig` holds every knob of a training run, CleanRL style: each field has a one-line
docstring right below it, and those docstrings are the ``--help`` text of the CLI (Python drops
them at runtime, so `field_docs` reads them back from this file's source with `ast`).

A run's configuration is built in layers, and validated as a whole before anything starts::

    preset YAML (selfplay/presets/<name>.yaml)  ->  --flags given on the command line

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--preset", "tictactoe", "--lr", "3e-3"]))

Every bad value raises a one-line `ValueError` naming the field, the value and what is allowed;
unknown keys are refused with a "did you mean" hint. Values arriving as strings (CLI flags, YAML
scalars such as ``1e-3`` that PyYAML reads as text) are coerced to the field's type first.

This module imports neither Ray nor torch: the CLI validates a config before paying for either.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import functools
import inspect
import itertools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "ALGOS",
    "DEVICES",
    "GAMES",
    "LEARNER_PLACEMENTS",
    "NETS",
    "PRESETS",
    "SEARCHES",
    "WANDB_MODES",
    "TrainConfig",
    "actor_device",
    "add_arguments",
    "config_from_args",
    "config_from_dict",
    "field_docs",
    "learner_placement",
    "load_preset",
    "make_run_name",
    "to_dict",
]

GAMES = ("connect_four", "tictactoe")
ALGOS = ("alphazero", "ppo")  # ppo: PPO self-play through RLlib (selfplay.rllib_bridge)
NETS = ("convnet", "transformer", "mlp")
SEARCHES = ("gumbel", "puct")
DEVICES = ("auto", "cpu", "cuda")
LEARNER_PLACEMENTS = ("auto", "driver", "actor")  # see learner_placement
PRECISIONS = ("auto", "float32", "bfloat16")  # ppo; resolved by rllib_bridge.resolve_precision
# Kept in step with selfplay.tracking.WANDB_MODES (a test checks); not imported from there so
# that building a config never imports tqdm or anything tracking grows to need.
WANDB_MODES = ("online", "offline", "disabled")

DEFAULT_PRESET = "connect_four"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs to know; see `field_docs` for each field's meaning."""

    # --- what to learn ---
    game: str = "connect_four"
    """game to learn: connect_four or tictactoe"""
    algo: str = "alphazero"
    """training algorithm: alphazero (search, own engine) or ppo (model-free, through RLlib)"""

    # --- network ---
    net: str = "convnet"
    """policy-value network: convnet, transformer or mlp"""
    channels: int = 64
    """convnet: channels of the residual tower"""
    blocks: int = 4
    """convnet: residual blocks"""
    width: int = 128
    """transformer: model width (embedding size); a multiple of heads"""
    heads: int = 4
    """transformer: attention heads"""
    depth: int = 4
    """transformer: number of blocks"""
    hidden: int = 128
    """mlp: hidden units per layer"""
    mlp_layers: int = 2
    """mlp: number of hidden layers"""
    line_filters: int = 0
    """mlp: f > 0 puts a layer of f filters before the hidden layers, each a square window as
    long as the game's winning line (4 x 4 in Connect Four) slid over the board: pattern
    detectors shared by the whole board, as a convnet's; 0: none"""
    threat_planes: bool = False
    """convnet, mlp: the net computes two more input planes from the board, the empty cells
    where the mover's and where the opponent's stone would complete a line (Connect Four's
    "threats"): a hand-made feature; false: the two stone planes only"""
    drop_planes: bool = False
    """with threat_planes, connect_four: four more planes on the cells a stone can drop into
    now: a win there, a forced block there, a gift (an opponent's threat on the cell above),
    and the mover's own threat above (hand-made, like the threat planes)"""

    # --- search ---
    search: str = "gumbel"
    """tree search in self-play: gumbel (sequential halving) or puct (AlphaZero)"""
    simulations: int = 32
    """search simulations per move in self-play"""
    eval_simulations: int = 32
    """search simulations per move when the evaluator plays the network during training"""
    play_simulations: int = 128
    """default search simulations per move of the trained agent (selfplay play, arena, eval,
    load_player); 0: eval_simulations"""
    num_considered: int = 16
    """gumbel: actions sampled at the root before sequential halving"""
    c_puct: float = 1.25
    """puct: exploration constant"""
    dirichlet_alpha: float = 0.5
    """puct: concentration of the Dirichlet noise added to the root priors"""
    dirichlet_fraction: float = 0.25
    """puct: share of Dirichlet noise in the root priors, in [0, 1]"""
    temperature_moves: int = 10
    """puct: plies sampled at temperature 1 at the start of each game, greedy after"""

    # --- self-play actors ---
    workers: int = 2
    """self-play actors (Ray processes)"""
    games_per_worker: int = 256
    """games each actor plays at once, as one batch"""
    moves_per_call: int = 8
    """moves each actor plays per Ray call before handing back finished games"""

    # --- learner ---
    batch_size: int = 256
    """positions per learner step"""
    lr: float = 1e-3
    """learning rate (AdamW)"""
    weight_decay: float = 1e-4
    """AdamW weight decay"""
    replay_size: int = 100_000
    """positions kept in the replay buffer (oldest dropped first)"""
    min_replay: int = 2_000
    """positions in the replay buffer before the learner starts"""
    max_sample_reuse: float = 4.0
    """the learner trains at most this many times per generated position, on average"""
    publish_every: int = 25
    """learner steps between weight publications to the actors"""
    augment: bool = True
    """train on the board's symmetries (mirror images) too"""
    device: str = "auto"
    """learner device: auto (cuda when available), cpu, cuda or cuda:N (a GPU of this machine,
    learner driver only); the self-play workers (ppo: EnvRunners) run on the CPU either way"""
    learner_threads: int = 0
    """torch threads of the learner; 0: the machine's cores less one per self-play worker (a
    learner actor with --ray-address: Ray's default, one thread; set this for a CPU one)"""
    learner: str = "auto"
    """where the learner runs: driver (this process), actor (a Ray actor, which Ray gives one
    GPU of the cluster when device asks for one: how a learner reaches a GPU on another node),
    or auto (the driver, except when a run joins a cluster with --ray-address, wants a GPU
    (device auto or cuda), this machine has none and the cluster has one). alphazero: the
    replay buffer lives with the learner; ppo: RLlib's learner (num_learners 0 or 1)"""

    # --- PPO (algo ppo: workers are RLlib EnvRunners, games_per_worker the games each steps
    # at once, batch_size the SGD minibatch, lr Adam's rate) ---
    ppo_rollout: int = 4000
    """ppo: environment steps (both seats) gathered per training iteration"""
    ppo_epochs: int = 4
    """ppo: passes of SGD over each iteration's steps"""
    entropy_coeff: float = 0.01
    """ppo: weight of the entropy bonus in the loss"""
    ppo_lr_decay_steps: int = 0
    """ppo: environment steps over which Adam's rate falls linearly from lr to ppo_lr_final
    (RLlib's schedule on the steps sampled so far, so a resumed run goes on where it was);
    0 keeps lr constant"""
    ppo_lr_final: float = 0.0
    """ppo: the rate at the end of ppo_lr_decay_steps and after"""
    ppo_lr_decay_start: int = 0
    """ppo: environment steps at the constant lr before the decay begins (the decay then runs
    from ppo_lr_decay_start to ppo_lr_decay_start + ppo_lr_decay_steps)"""
    ppo_clip: float = 0.3
    """ppo: clip range of the policy ratio (RLlib's clip_param)"""
    ppo_kl_coeff: float = 0.2
    """ppo: starting weight of RLlib's adaptive KL penalty (it grows while an iteration's KL
    exceeds twice its 0.01 target and shrinks below half of it); 0 turns the penalty off and
    leaves the step size to the clip alone, as most PPO implementations do"""
    opening_plies: int = 0
    """ppo: self-play games start after 0..k uniformly random plies (0: from the empty board),
    so the policy meets many positions rather than replaying its own favourite lines"""
    snapshot_every: int = 10
    """ppo: training iterations between frozen snapshots of the learner (league opponents)"""
    symmetric: bool = False
    """ppo: policy and value average the net over the board's symmetries (Connect Four: its
    mirror image), so they are exactly symmetric; the exported agent plays the same way"""
    policy_average: int = 0
    """ppo: the policy the run evaluates and exports (checkpoint.pt) is the mean of the weights
    of the newest k frozen snapshots (weight averaging, as in SWA; training is unchanged and
    the learner goes on from its own weights); 0 = the learner's own weights. At most
    league_snapshots"""
    policy_select: int = 0
    """ppo: at the end of the run the learner and its newest k frozen snapshots each play
    eval_games games against every evaluation opponent (another seed than the final
    evaluation's), and the best mean score becomes the run's policy: exported
    (checkpoint.pt), evaluated and rated (a best-checkpoint pick, as a validation set picks
    one; the learner goes on from its own weights on resume); 0 = the learner's own weights.
    At most league_snapshots; not with policy_average"""
    ppo_sampler: str = "batched"
    """ppo: how EnvRunners play their games: batched (all of an EnvRunner's games stepped as
    one array on our game core, one forward pass per module per step; the episodes are the
    ones RLlib would build) or rllib (RLlib's own loop through the PettingZoo wrapper, a game
    at a time: slower, for comparison)"""
    precision: str = "float32"
    """ppo: number format of the policy net's matrix products in the learner and EnvRunners:
    float32; bfloat16 (autocast: weights, optimizer and loss stay float32; about 2x faster
    learning on CPUs that multiply bfloat16 natively, far slower on those that do not); auto
    (bfloat16 when the driver's CPU has AVX-512 BF16, AMX or ARM BF16, else float32; decided
    again on the machine a run resumes on). Evaluations and the exported agent play in float32"""

    # --- budget ---
    minutes: float = 30.0
    """wall-clock budget of the run, in minutes"""
    max_steps: int = 0
    """stop after this many learner steps; 0 = no limit"""
    seed: int = 0
    """random seed of the run (actors derive their own from it)"""

    # --- evaluation and checkpoints ---
    eval_every_minutes: float = 5.0
    """minutes between evaluations of the latest network"""
    eval_games: int = 100
    """games per opponent in each evaluation (seats alternated)"""
    eval_opponents: str = "random,alphabeta:4,mcts:200"
    """comma-separated player specs the network is rated against"""
    checkpoint_every_minutes: float = 5.0
    """minutes between checkpoints (one more is written at the end)"""

    # --- league ---
    league_mix: str = "latest=1.0"
    """self-play opponents as shares of games summing to 1: latest (the live network itself),
    past (uniform over the frozen snapshots before the newest), pfsp (snapshots weighted by how
    hard they are)"""
    league_pfsp_weighting: str = "hard"
    """PFSP weighting of a snapshot the learner beats with probability p: hard (1-p)^2,
    variance p(1-p) or linear 1-p"""
    league_snapshots: int = 20
    """frozen snapshots the league keeps (one is added at every evaluation)"""
    league_greedy: bool = False
    """ppo: frozen snapshots play their most likely move instead of sampling one (the learner
    still samples its own), so a past self punishes a blunder whenever its policy sees the
    punishing move rather than only as often as it happens to draw it"""
    league_gating: str = "none"
    """none, or sprt: frozen opponents come only from promoted snapshots; the first snapshot is
    promoted as is, each later one plays the current best in its evaluation and is promoted when
    an SPRT (elo0 0, elo1 35, alpha = beta = 0.05) says it is stronger"""

    # --- tracking and infrastructure ---
    wandb: str = "offline"
    """Weights & Biases mode: online, offline or disabled"""
    wandb_project: str = "selfplay"
    """Weights & Biases project name"""
    run_name: str = ""
    """run name and directory under runs_dir; empty = generated from the preset and the time"""
    runs_dir: str = "runs"
    """directory that holds one sub-directory per run"""
    ray_address: str = ""
    """Ray cluster to join: empty starts Ray embedded, auto joins the local cluster"""

    def __post_init__(self) -> None:
        # Each field alone (type, then range), then the relations between fields.
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = _check_field(f.name, value)
            if checked is not value:
                # Ints given to float fields are stored as floats, so that equal configs compare
                # and serialise equal.
                object.__setattr__(self, f.name, checked)

        if self.width % self.heads:
            raise ValueError(
                f"width must be a multiple of heads, got width {self.width} and heads {self.heads}"
            )
        if self.batch_size > self.replay_size:
            raise ValueError(
                f"batch_size must be <= replay_size ({self.replay_size}), got {self.batch_size}"
            )
        if self.min_replay > self.replay_size:
            raise ValueError(
                f"min_replay must be <= replay_size ({self.replay_size}), got {self.min_replay}"
            )
        if self.algo != "ppo" and self.opening_plies:
            raise ValueError(
                f"opening_plies works with algo ppo only (alphazero explores by search noise), "
                f"got opening_plies {self.opening_plies} with algo {self.algo}"
            )
        if self.algo == "ppo" and self.batch_size > self.ppo_rollout:
            raise ValueError(
                f"batch_size (PPO's minibatch) must be <= ppo_rollout ({self.ppo_rollout}), "
                f"got {self.batch_size}"
            )
        if self.threat_planes and self.net == "transformer":
            raise ValueError(
                "threat_planes works with the planes nets (convnet, mlp), got threat_planes "
                "true with net transformer"
            )
        if self.drop_planes and not self.threat_planes:
            raise ValueError(
                "drop_planes needs threat_planes true (they are read off the threat planes), "
                "got threat_planes false"
            )
        if self.drop_planes and not _has_gravity(self.game):
            raise ValueError(
                f"drop_planes works with games with gravity (connect_four), got game {self.game}"
            )
        if self.line_filters and self.net != "mlp":
            raise ValueError(
                f"line_filters works with net mlp only, got line_filters {self.line_filters} "
                f"with net {self.net}"
            )
        if self.learner == "actor" and self.device.startswith("cuda:"):
            raise ValueError(actor_device_error(self.device))
        if self.algo != "ppo" and self.symmetric:
            raise ValueError(
                f"symmetric works with algo ppo only (alphazero trains on mirror images: "
                f"augment), got symmetric true with algo {self.algo}"
            )
        # the two ways a PPO run chooses its policy among the league's kept snapshots
        for name, verb in (("policy_average", "averages"), ("policy_select", "picks among")):
            value = getattr(self, name)
            if self.algo != "ppo" and value:
                raise ValueError(
                    f"{name} works with algo ppo only (alphazero exports its learner's net), "
                    f"got {name} {value} with algo {self.algo}"
                )
            if value > self.league_snapshots:
                raise ValueError(
                    f"{name} {verb} kept snapshots, so it must be <= league_snapshots "
                    f"({self.league_snapshots}), got {value}"
                )
        if self.policy_select and not self.eval_opponents.strip():
            raise ValueError(
                f"policy_select picks by games against the evaluation opponents, so it needs "
                f"eval_opponents, got policy_select {self.policy_select} and none"
            )
        if self.policy_select and self.policy_average:
            raise ValueError(
                f"policy_select and policy_average each choose the run's policy; set one, got "
                f"policy_select {self.policy_select} and policy_average {self.policy_average}"
            )
        if self.algo != "ppo" and self.league_greedy:
            raise ValueError(
                f"league_greedy works with algo ppo only (alphazero's opponents search), got "
                f"league_greedy true with algo {self.algo}"
            )
        if self.algo != "ppo" and self.precision != "float32":
            raise ValueError(
                f"precision {self.precision} works with algo ppo only (alphazero trains in "
                f"float32), got algo {self.algo}"
            )
        if self.algo != "ppo" and self.ppo_sampler != "batched":
            raise ValueError(
                f"ppo_sampler works with algo ppo only (alphazero plays through its own "
                f"actors), got ppo_sampler {self.ppo_sampler} with algo {self.algo}"
            )
        if self.algo != "ppo":
            for name in _PPO_ONLY:
                if getattr(self, name) != _FIELD_DEFAULTS[name]:
                    raise ValueError(
                        f"{name} works with algo ppo only, got {name} {getattr(self, name)} "
                        f"with algo {self.algo} (default {_FIELD_DEFAULTS[name]})"
                    )
        if self.ppo_lr_final and not self.ppo_lr_decay_steps:
            raise ValueError(
                f"ppo_lr_final {self.ppo_lr_final} needs ppo_lr_decay_steps > 0 (the steps over "
                f"which the rate falls to it), got ppo_lr_decay_steps 0"
            )
        if self.ppo_lr_decay_start and not self.ppo_lr_decay_steps:
            raise ValueError(
                f"ppo_lr_decay_start {self.ppo_lr_decay_start} needs ppo_lr_decay_steps > 0 "
                f"(the steps over which the rate then falls), got ppo_lr_decay_steps 0"
            )
        if self.league_gating == "sprt":
            if self.algo != "alphazero":
                raise ValueError(
                    f"league_gating sprt works with algo alphazero only, got algo {self.algo}"
                )
            from selfplay.league import min_games_to_accept

            need = min_games_to_accept()
            if self.eval_games < need:
                raise ValueError(
                    f"league_gating sprt needs eval_games >= {need} (the test reads one "
                    f"evaluation's games and cannot accept on fewer), got {self.eval_games}"
                )


# PPO knobs that algo alphazero has no use for: a value other than the default is refused
# there (those with a reason of their own, such as symmetric or opening_plies, say it above).
_PPO_ONLY = (
    "ppo_rollout", "ppo_epochs", "entropy_coeff", "ppo_lr_decay_steps", "ppo_lr_final",
    "ppo_lr_decay_start", "ppo_clip", "ppo_kl_coeff", "snapshot_every",
)  # fmt: skip


# AlphaZero knobs that algo ppo has no use for (search, replay buffer, the learner process's
# threads and publications, max_steps). Refused when typed as flags with algo ppo
# (`config_from_args`); a preset written for alphazero (tictactoe's) may carry them into
# `--algo ppo`, where they are inert.
_ALPHAZERO_ONLY = (
    "search", "simulations", "eval_simulations", "play_simulations", "num_considered",
    "c_puct", "dirichlet_alpha", "dirichlet_fraction", "temperature_moves", "moves_per_call",
    "weight_decay", "replay_size", "min_replay", "max_sample_reuse", "publish_every", "augment",
    "learner_threads", "max_steps",
)  # fmt: skip


def learner_placement(
    learner: str, device: str, *, ray_address: str, local_gpus: int, cluster_gpus: float | None
) -> str | None:
    """Where a run's learner goes: "driver" (this process) or "actor" (a Ray actor); None while
    that depends on the cluster's GPUs and ``cluster_gpus`` is not known yet (Ray not started).

    ``learner`` auto keeps the learner in the driver (no copies of batches or weights between
    processes), except when the run joins a cluster (``ray_address``), wants a GPU (device auto
    or cuda), this machine has none and the cluster has one: then an actor takes a GPU there.
    """
    if learner not in LEARNER_PLACEMENTS:
        raise ValueError(f"learner must be one of {', '.join(LEARNER_PLACEMENTS)}, got {learner!r}")
    if learner != "auto":
        return learner
    if not ray_address or device not in ("auto", "cuda") or local_gpus > 0:
        return "driver"
    if cluster_gpus is None:
        return None
    return "actor" if cluster_gpus >= 1 else "driver"


def actor_device_error(device: str) -> str:
    return (
        f"device {device} names a GPU of this machine, but a learner actor runs on the GPU Ray "
        f"gives it: use device cuda (or auto) with learner actor, or learner driver"
    )


def actor_device(device: str, cluster_gpus: float, free_gpus: float | None = None) -> str:
    """The device of a learner actor: "cuda" (Ray reserves it one GPU) or "cpu". Device auto
    takes a GPU when the cluster has one; cuda without one, or with ``free_gpus`` (Ray's
    available GPUs, when known) below one, is refused in one line."""
    if device.startswith("cuda:"):
        raise ValueError(actor_device_error(device))
    if device not in DEVICES:
        raise ValueError(f"device must be one of auto, cpu, cuda (or cuda:N), got {device!r}")
    if device == "cpu" or (device == "auto" and cluster_gpus < 1):
        return "cpu"
    if cluster_gpus < 1:
        raise ValueError(
            f"device {device} was asked for the learner actor, but the Ray cluster has no GPU; "
            f"use cpu or auto"
        )
    if free_gpus is not None and free_gpus < 1:
        raise ValueError(
            f"the learner actor needs a GPU and the Ray cluster's {cluster_gpus:g} are all "
            f"taken; free one, or keep the learner here with --learner driver"
        )
    return "cuda"


def _has_gravity(game: str) -> bool:
    import envs

    return envs.game_class(game).gravity


# Field name -> one of int, float, bool, str. Built from the annotations (strings, because of
# ``from __future__ import annotations``), so adding a field needs no second edit here.
_TYPES_BY_NAME = {"int": int, "float": float, "bool": bool, "str": str}
_FIELD_KINDS: dict[str, type] = {
    f.name: _TYPES_BY_NAME[str(f.type)] for f in dataclasses.fields(TrainConfig)
}
FIELD_NAMES: tuple[str, ...] = tuple(_FIELD_KINDS)
_FIELD_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


# What each field accepts, beyond its type. Fields missing here accept any value of their type.
_CHOICES: dict[str, tuple[str, ...]] = {
    "game": GAMES,
    "algo": ALGOS,
    "net": NETS,
    "search": SEARCHES,
    "wandb": WANDB_MODES,
    "league_pfsp_weighting": ("hard", "variance", "linear"),
    "league_gating": ("none", "sprt"),
    "precision": PRECISIONS,
    "ppo_sampler": ("batched", "rllib"),
    "learner": LEARNER_PLACEMENTS,
}
_INT_MIN: dict[str, int] = {
    **dict.fromkeys(
        (
            "channels",
            "blocks",
            "width",
            "heads",
            "depth",
            "hidden",
            "simulations",
            "eval_simulations",
            "num_considered",
            "workers",
            "games_per_worker",
            "moves_per_call",
            "batch_size",
            "replay_size",
            "min_replay",
            "publish_every",
            "eval_games",
            "league_snapshots",
            "mlp_layers",
            "ppo_rollout",
            "ppo_epochs",
            "snapshot_every",
        ),
        1,
    ),
    **dict.fromkeys(
        (
            "temperature_moves",
            "learner_threads",
            "max_steps",
            "seed",
            "play_simulations",
            "opening_plies",
            "ppo_lr_decay_steps",
            "ppo_lr_decay_start",
            "policy_average",
            "policy_select",
            "line_filters",
        ),
        0,
    ),
}
_FLOAT_POSITIVE = frozenset(
    (
        "c_puct",
        "dirichlet_alpha",
        "lr",
        "ppo_clip",
        "max_sample_reuse",
        "minutes",
        "eval_every_minutes",
        "checkpoint_every_minutes",
    )
)
_FLOAT_UNIT = frozenset(("dirichlet_fraction",))  # in [0, 1]
_NON_EMPTY = frozenset(("wandb_project", "runs_dir"))


def _allowed(name: str) -> str:
    """What field ``name`` accepts, as the end of "<name> must be ..."."""
    kind = _FIELD_KINDS[name]
    if name in _CHOICES:
        return f"one of {', '.join(_CHOICES[name])}"
    if name == "device":
        return "one of auto, cpu, cuda (or cuda:N)"
    if kind is bool:
        return "true or false"
    if kind is int:
        return f"an integer >= {_INT_MIN[name]}" if name in _INT_MIN else "an integer"
    if kind is float:
        if name in _FLOAT_POSITIVE:
            return "a number > 0"
        if name in _FLOAT_UNIT:
            return "a number in [0, 1]"
        return "a number >= 0"
    if name in _NON_EMPTY:
        return "a non-empty string"
    if name == "eval_opponents":
        return "comma-separated player specs without empty items"
    if name == "league_mix":
        return "shares like latest=0.8,past=0.2,pfsp=0 (keys latest, past, pfsp; >= 0; sum 1)"
    if name == "run_name":
        return "empty or one directory name of letters, digits and ._+=-"
    return "a string"


LEAGUE_MIX_KEYS = ("latest", "past", "pfsp")


def parse_league_mix(text: str) -> dict[str, float]:
    """``"latest=0.8,past=0.2"`` -> ``{"latest": 0.8, "past": 0.2, "pfsp": 0.0}``."""
    shares = dict.fromkeys(LEAGUE_MIX_KEYS, 0.0)
    for item in text.split(","):
        key, sep, number = item.strip().partition("=")
        if not sep or key not in shares:
            raise ValueError(f"league_mix item {item!r} is not one of latest=, past=, pfsp=")
        share = float(number)
        if not (math.isfinite(share) and share >= 0):
            raise ValueError(f"league_mix share {item!r} must be a number >= 0")
        shares[key] = share
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ValueError(f"league_mix shares must sum to 1, got {text!r}")
    return shares


def _check_field(name: str, value: Any) -> Any:
    """``value`` if field ``name`` accepts it (an int made float for float fields); else raise."""
    kind = _FIELD_KINDS[name]
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        # bool is a subclass of int, but `simulations: true` is a mistake, not 1.
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and value >= _INT_MIN.get(name, value)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            value = float(value)
            if name in _FLOAT_POSITIVE:
                ok = math.isfinite(value) and value > 0
            elif name in _FLOAT_UNIT:
                ok = 0.0 <= value <= 1.0
            else:
                ok = math.isfinite(value) and value >= 0
    else:
        ok = isinstance(value, str)
        if ok and name in _CHOICES:
            ok = value in _CHOICES[name]
        elif ok and name == "device":
            ok = re.fullmatch(r"auto|cpu|cuda(:\d+)?", value) is not None
        elif ok and name in _NON_EMPTY:
            ok = bool(value.strip())
        elif ok and name == "league_mix":
            try:
                parse_league_mix(value)
            except ValueError:
                ok = False
        elif ok and name == "eval_opponents":
            ok = not value.strip() or all(spec.strip() for spec in value.split(","))
        elif ok and name == "run_name":
            # The run name becomes a directory: one path component, nothing that leaves runs_dir.
            ok = not value or (
                value not in (".", "..") and re.fullmatch(r"[\w.+=-]+", value) is not None
            )
    if not ok:
        raise ValueError(f"{name} must be {_allowed(name)}, got {value!r}")
    return value


# --- coercion of text (CLI flags, YAML) to field types --------------------------------------

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _coerce(name: str, value: Any) -> Any:
    """``value`` converted to field ``name``'s type where that is unambiguous; else unchanged.

    Anything left unconverted is refused by `TrainConfig.__post_init__` with the field's message,
    so this function never has to raise for a wrong type, only for unparsable text.
    """
    kind = _FIELD_KINDS[name]
    if kind is bool:
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(f"{name} must be true or false (or yes/no/on/off/1/0), got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
            return bool(value)
        return value
    if kind is int:
        if isinstance(value, str):
            text = value.strip()
            try:
                return int(text)  # also "100_000"
            except ValueError:
                pass
            try:
                number = float(text)  # "1e5"
            except ValueError:
                raise ValueError(f"{name} must be {_allowed(name)}, got {value!r}") from None
            value = number
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if kind is float:
        if isinstance(value, str):
            try:
                return float(value.strip())  # PyYAML reads "1e-3" (no dot) as a string
            except ValueError:
                raise ValueError(f"{name} must be {_allowed(name)}, got {value!r}") from None
        return value
    # str fields: YAML may turn `run_name: 2024` or `ray_address: 127.0.0.1` parts into numbers.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


def config_from_dict(d: Mapping[str, Any], *, base: TrainConfig | None = None) -> TrainConfig:
    """A validated `TrainConfig` from ``d``'s fields on top of ``base`` (default: the defaults).

    Unknown keys are refused (with the closest field name as a hint); text values are coerced
    to the field's type (``"32"`` -> 32, ``"1e-3"`` -> 0.001, ``"yes"`` -> True).
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"a config must be a mapping of field names to values, got {d!r}")
    unknown = [key for key in d if key not in _FIELD_KINDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), FIELD_NAMES, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown config key{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}")
    values = to_dict(base) if base is not None else {}
    values.update({key: _coerce(key, value) for key, value in d.items()})
    return TrainConfig(**values)


# Fields added after runs were saved, with the value that keeps such a run's old behaviour.
_SAVED_BEFORE = {"play_simulations": 0}  # 0: play with eval_simulations, as runs did then


# PPO runs saved before the PPO fields existed ran 1 EnvRunner x 8 games with 256-step
# minibatches, whatever workers, games_per_worker and batch_size said.
_PPO_SAVED_BEFORE = {"workers": 1, "games_per_worker": 8, "batch_size": 256}


def upgrade_saved_config(d: Mapping[str, Any]) -> dict[str, Any]:
    """A config saved with a run (checkpoint, ppo_run.json), with the fields it predates set so
    that the run behaves as it did (for example an old run still plays at eval_simulations)."""
    upgraded = {**_SAVED_BEFORE, **d}
    if upgraded.get("algo") == "ppo" and "ppo_rollout" not in d:
        upgraded.update(_PPO_SAVED_BEFORE)
    return upgraded


# What a resumed run cannot change: the game, the engine and the net's shape (the checkpoint's
# weights and optimizer state are built for them).
FIXED_ON_RESUME = (
    "game", "algo", "net", "channels", "blocks", "width", "heads", "depth", "hidden",
    "mlp_layers", "line_filters", "threat_planes", "drop_planes", "symmetric",
)  # fmt: skip


def check_resume(saved: Mapping[str, Any], resumed: TrainConfig) -> None:
    """Raise ValueError naming the first flag that would change what the run was built with.
    ``saved``: the config stored with the run (checkpoint, ppo_run.json); both engines call
    this before they load anything or start Ray."""
    upgraded = upgrade_saved_config(saved)
    defaults = _FIELD_DEFAULTS
    for name in FIXED_ON_RESUME:
        before, after = upgraded.get(name, defaults[name]), getattr(resumed, name)
        if before != after:
            raise ValueError(
                f"{_flag(name)} cannot change when resuming: the run was started with "
                f"{name} {before}, got {after} (start a new run for another {name})"
            )


def to_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as a plain, JSON-able dict; ``config_from_dict(to_dict(c)) == c``."""
    return dataclasses.asdict(config)


# --- presets ---------------------------------------------------------------------------------


def _preset_files() -> dict[str, Any]:
    folder = resources.files("selfplay") / "presets"
    return {
        entry.name.removesuffix(".yaml"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


PRESETS: tuple[str, ...] = tuple(sorted(_preset_files()))
"""Names of the presets shipped in ``selfplay/presets/*.yaml``."""


def load_preset(name: str) -> TrainConfig:
    """The validated config of preset ``name`` (``selfplay/presets/<name>.yaml``)."""
    files = _preset_files()
    if name not in files:
        raise ValueError(f"unknown preset {name!r}: choose one of {', '.join(sorted(files))}")
    data = yaml.safe_load(files[name].read_text(encoding="utf-8")) or {}
    try:
        return config_from_dict(data)
    except ValueError as error:
        raise ValueError(f"preset {name}: {error}") from None


def default_play_simulations(cfg: TrainConfig) -> int:
    """The trained agent's search budget when the user names none."""
    return cfg.play_simulations or cfg.eval_simulations


def make_run_name(preset: str, when: datetime | None = None) -> str:
    """A run name from the preset and the time, e.g. ``tictactoe-20250131-142501``."""
    when = when or datetime.now()
    return f"{preset}-{when:%Y%m%d-%H%M%S}"


# --- command line ----------------------------------------------------------------------------


@functools.cache
def _field_docs() -> dict[str, str]:
    tree = ast.parse(inspect.getsource(TrainConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def field_docs() -> dict[str, str]:
    """Field name -> its docstring (read from the source: Python does not keep them)."""
    return dict(_field_docs())


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--preset``, ``--resume`` and one ``--<field>`` flag per `TrainConfig` field.

    Flags default to None (= not given) and take text: `config_from_args` converts and validates
    them all at once, so a bad value gets the same one-line message as in a YAML preset.
    """
    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help=f"starting configuration: {', '.join(PRESETS)} (default: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR (or from a checkpoint file) where it stopped",
    )
    docs = field_docs()
    defaults = TrainConfig()
    metavars = {int: "INT", float: "X", str: "TEXT", bool: "BOOL"}
    for f in dataclasses.fields(TrainConfig):
        kind = _FIELD_KINDS[f.name]
        default = getattr(defaults, f.name)
        # argparse formats help with %; a literal % in a docstring must not break --help.
        help_text = f"{docs.get(f.name, '')} (default: {default!r})".replace("%", "%%")
        extra: dict[str, Any] = {}
        metavar = metavars[kind]
        if f.name in _CHOICES:
            metavar = "{" + ",".join(_CHOICES[f.name]) + "}"
        if kind is bool:
            # `--augment` alone means true; `--augment no` spells false.
            extra = {"nargs": "?", "const": "true"}
        parser.add_argument(
            _flag(f.name),
            dest=f.name,
            default=None,
            metavar=metavar,
            help=help_text,
            **extra,
        )


def config_from_args(
    args: argparse.Namespace, *, base: TrainConfig | Mapping[str, Any] | None = None
) -> TrainConfig:
    """The config of a parsed command line: the preset (or ``base``), then every given flag.

    ``base`` replaces the preset, e.g. with the config stored in a checkpoint when resuming, so
    that flags (a longer ``--minutes``) apply on top of what the run was started with.
    """
    if base is None:
        start = load_preset(getattr(args, "preset", None) or DEFAULT_PRESET)
    elif isinstance(base, TrainConfig):
        start = base
    else:
        start = config_from_dict(base)
    given = {
        name: value for name in FIELD_NAMES if (value := getattr(args, name, None)) is not None
    }
    try:
        cfg = config_from_dict(given, base=start)
    except ValueError as error:
        # Name the flag the user typed, not the Python field.
        message = str(error)
        for name in given:
            if message.startswith(f"{name} "):
                message = _flag(name) + message[len(name) :]
                break
        raise ValueError(message) from None
    if cfg.algo == "ppo":
        for name in _ALPHAZERO_ONLY:
            if name in given:
                raise ValueError(
                    f"{_flag(name)} works with algo alphazero only (PPO has no search, replay "
                    f"buffer or learner process of ours), got {_flag(name)} {given[name]} "
                    f"with algo ppo"
                )
    return cfg
