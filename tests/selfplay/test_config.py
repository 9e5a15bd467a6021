"""Tests for selfplay.config: validation, presets, dict round trip, CLI flags, field docs."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from selfplay import config as config_module
from selfplay.config import (
    PRESETS,
    TrainConfig,
    actor_device,
    add_arguments,
    config_from_args,
    config_from_dict,
    field_docs,
    learner_placement,
    load_preset,
    to_dict,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


# --- validation ------------------------------------------------------------------------------


def test_defaults_are_the_documented_ones() -> None:
    config = TrainConfig()
    assert (config.game, config.algo, config.net, config.search) == (
        "connect_four",
        "alphazero",
        "convnet",
        "gumbel",
    )
    assert (config.channels, config.blocks, config.simulations) == (64, 4, 32)
    assert (config.replay_size, config.min_replay, config.batch_size) == (100_000, 2_000, 256)
    assert config.eval_opponents == "random,alphabeta:4,mcts:200"
    assert config.wandb == "offline" and config.ray_address == "" and config.augment is True


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"simulations": 0}, "simulations must be an integer >= 1, got 0"),
        ({"net": "cnn"}, "net must be one of convnet, transformer, mlp, got 'cnn'"),
        ({"game": "chess"}, "game must be one of connect_four, tictactoe, got 'chess'"),
        ({"algo": "dqn"}, "algo must be one of alphazero, ppo, got 'dqn'"),
        ({"search": "alphabeta"}, "search must be one of gumbel, puct"),
        ({"wandb": "cloud"}, "wandb must be one of online, offline, disabled, got 'cloud'"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda"),
        ({"workers": "abc"}, "workers must be an integer >= 1, got 'abc'"),
        ({"workers": 1.5}, "workers must be an integer >= 1, got 1.5"),
        ({"workers": True}, "workers must be an integer >= 1, got True"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"augment": "maybe"}, "augment must be true or false, got 'maybe'"),
        ({"augment": 1}, "augment must be true or false, got 1"),
        ({"lr": 0.0}, "lr must be a number > 0, got 0.0"),
        ({"lr": float("nan")}, "lr must be a number > 0, got nan"),
        ({"lr": "fast"}, "lr must be a number > 0, got 'fast'"),
        ({"minutes": -1}, "minutes must be a number > 0, got -1.0"),
        ({"weight_decay": -0.1}, "weight_decay must be a number >= 0, got -0.1"),
        ({"dirichlet_fraction": 1.5}, "dirichlet_fraction must be a number in [0, 1], got 1.5"),
        ({"max_sample_reuse": 0}, "max_sample_reuse must be a number > 0"),
        ({"width": 130, "heads": 4}, "width must be a multiple of heads, got width 130"),
        ({"batch_size": 512, "replay_size": 256, "min_replay": 10}, "batch_size must be <= "),
        ({"min_replay": 5_000, "replay_size": 4_000}, "min_replay must be <= replay_size (4000)"),
        ({"eval_opponents": "random,,mcts:200"}, "eval_opponents must be comma-separated"),
        ({"run_name": "../escape"}, "run_name must be empty or one directory name"),
        ({"run_name": ".."}, "run_name must be empty or one directory name"),
        ({"wandb_project": " "}, "wandb_project must be a non-empty string"),
        ({"ray_address": 6379}, "ray_address must be a string, got 6379"),
        ({"league_gating": "elo"}, "league_gating must be one of none, sprt, got 'elo'"),
        ({"league_gating": "sprt", "eval_games": 30}, "league_gating sprt needs eval_games >= 31"),
        ({"league_gating": "sprt", "algo": "ppo"}, "league_gating sprt works with algo alphazero"),
        ({"play_simulations": -1}, "play_simulations must be an integer >= 0, got -1"),
        ({"learner": "gpu"}, "learner must be one of auto, driver, actor, got 'gpu'"),
        (
            {"learner": "actor", "device": "cuda:1"},
            "device cuda:1 names a GPU of this machine, but a learner actor runs on the GPU Ray "
            "gives it: use device cuda (or auto) with learner actor, or learner driver",
        ),
        (
            {"threat_planes": True, "net": "transformer"},
            "threat_planes works with the planes nets (convnet, mlp), got threat_planes true",
        ),
        (
            {"drop_planes": True},
            "drop_planes needs threat_planes true (they are read off the threat planes), got "
            "threat_planes false",
        ),
        (
            {"drop_planes": True, "threat_planes": True, "game": "tictactoe"},
            "drop_planes works with games with gravity (connect_four), got game tictactoe",
        ),
    ],
)
def test_bad_values_are_refused_with_a_one_line_message(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        TrainConfig(**changes)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_the_learner_stays_in_the_driver_unless_only_the_cluster_has_a_gpu() -> None:
    def place(learner="auto", device="auto", address="auto", here=0, cluster=None):
        return learner_placement(
            learner, device, ray_address=address, local_gpus=here, cluster_gpus=cluster
        )

    # asked for by name: as asked, whatever the GPUs
    assert place("driver", "cuda", cluster=8) == "driver"
    assert place("actor", "cpu", address="", cluster=None) == "actor"
    # auto: Ray embedded (the cluster is this machine), no GPU wanted, or one here
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert place(device=device, address="", cluster=8) == "driver"
    for device in ("cpu", "cuda:0"):
        assert place(device=device, cluster=8) == "driver"
    assert place(device="cuda", here=1, cluster=8) == "driver"
    # auto, joining a cluster, a GPU wanted and none here: the cluster's GPUs decide
    for device in ("auto", "cuda"):
        assert place(device=device, cluster=None) is None  # before Ray starts
        assert place(device=device, cluster=1) == "actor"
        assert place(device=device, cluster=0) == "driver"
    with pytest.raises(ValueError, match=r"^learner must be one of auto, driver, actor, got 'x'$"):
        place("x")


def test_a_learner_actor_takes_a_gpu_of_the_cluster_or_the_cpu() -> None:
    assert actor_device("cpu", 4) == "cpu"
    assert actor_device("auto", 0) == "cpu"
    assert (actor_device("auto", 1), actor_device("cuda", 2)) == ("cuda", "cuda")
    assert actor_device("cuda", 2, free_gpus=1) == "cuda" and actor_device("cpu", 2, 0) == "cpu"
    with pytest.raises(ValueError, match=r"^the learner actor needs a GPU and the Ray cluster's "
                                         r"2 are all taken; free one, or keep the learner here "
                                         r"with --learner driver$"):  # fmt: skip
        actor_device("auto", 2, free_gpus=0)
    for device, cluster, message in (
        ("cuda", 0, r"^device cuda was asked for the learner actor, but the Ray cluster has no "
                    r"GPU; use cpu or auto$"),
        ("cuda:1", 4, r"^device cuda:1 names a GPU of this machine"),
        ("tpu", 1, r"^device must be one of auto, cpu, cuda \(or cuda:N\), got 'tpu'$"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            actor_device(device, cluster)


def test_valid_edge_values_are_accepted() -> None:
    config = TrainConfig(
        dirichlet_fraction=0.0,
        temperature_moves=0,
        max_steps=0,
        learner_threads=0,
        weight_decay=0.0,
        device="cuda:1",
        batch_size=100,
        replay_size=100,
        min_replay=100,
        eval_opponents="",
        run_name="c4-2024_01.v2",
        width=96,
        heads=3,
    )
    assert config.replay_size == config.batch_size == 100


def test_ints_given_to_float_fields_are_stored_as_floats() -> None:
    config = TrainConfig(lr=1, minutes=3)
    assert isinstance(config.lr, float) and isinstance(config.minutes, float)
    assert config == TrainConfig(lr=1.0, minutes=3.0)
    assert json.dumps(to_dict(config)) == json.dumps(to_dict(TrainConfig(lr=1.0, minutes=3.0)))


def test_config_is_frozen() -> None:
    config = TrainConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.1  # type: ignore[misc]


# --- dicts -----------------------------------------------------------------------------------


def test_dict_round_trip_through_json() -> None:
    config = TrainConfig(game="tictactoe", net="transformer", width=64, heads=2, augment=False)
    data = json.loads(json.dumps(to_dict(config)))
    assert set(data) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert config_from_dict(data) == config


def test_config_from_dict_coerces_text() -> None:
    config = config_from_dict(
        {
            "simulations": "64",
            "replay_size": "100_000",
            "min_replay": "1e3",
            "lr": "1e-3",
            "augment": "no",
            "minutes": 2,
            "run_name": 2024,
        }
    )
    assert config.simulations == 64 and config.replay_size == 100_000
    assert config.min_replay == 1000 and config.lr == pytest.approx(1e-3)
    assert config.augment is False and config.minutes == 2.0 and config.run_name == "2024"


@pytest.mark.parametrize("text", ["true", "Yes", "1", "on"])
def test_boolean_spellings_true(text: str) -> None:
    assert config_from_dict({"augment": text}).augment is True


@pytest.mark.parametrize("text", ["false", "NO", "0", "off"])
def test_boolean_spellings_false(text: str) -> None:
    assert config_from_dict({"augment": text}).augment is False


def test_unknown_keys_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ValueError, match=r"unknown config key: 'simulation' \(did you mean "):
        config_from_dict({"simulation": 8})
    with pytest.raises(ValueError) as info:
        config_from_dict({"simulation": 8, "zzz": 1})
    text = str(info.value)
    assert "'simulations'" in text and "'zzz'" in text and text.startswith("unknown config keys")


def test_config_from_dict_layers_on_a_base() -> None:
    base = TrainConfig(game="tictactoe", net="mlp", minutes=3.0)
    config = config_from_dict({"minutes": 10}, base=base)
    assert config == dataclasses.replace(base, minutes=10.0)


# --- presets ---------------------------------------------------------------------------------


def test_presets_are_listed_and_load() -> None:
    assert set(PRESETS) >= {"connect_four", "tictactoe"}
    for name in PRESETS:
        assert isinstance(load_preset(name), TrainConfig)


def test_connect_four_preset_is_the_defaults() -> None:
    assert load_preset("connect_four") == TrainConfig()


def test_tictactoe_preset() -> None:
    config = load_preset("tictactoe")
    assert config.game == "tictactoe" and config.net == "mlp" and config.search == "gumbel"
    assert (config.simulations, config.workers, config.games_per_worker) == (32, 2, 128)
    assert (config.batch_size, config.replay_size, config.min_replay) == (128, 20_000, 500)
    assert config.lr == pytest.approx(2e-3)
    assert (config.minutes, config.eval_every_minutes, config.checkpoint_every_minutes) == (
        3.0,
        1.0,
        1.0,
    )
    assert config.eval_games == 100 and config.eval_opponents == "random,solver"


def test_connect_four_ppo_preset() -> None:
    config = load_preset("connect_four_ppo")
    assert (config.game, config.algo, config.net) == ("connect_four", "ppo", "mlp")
    assert (config.hidden, config.mlp_layers, config.opening_plies) == (512, 3, 4)
    assert (config.workers, config.games_per_worker, config.batch_size) == (2, 32, 256)
    assert (config.ppo_rollout, config.ppo_epochs, config.minutes) == (4000, 4, 30.0)
    assert config.eval_opponents == "random,alphabeta:2" and config.eval_games == 200
    assert config.symmetric and config.snapshot_every == 10 and config.precision == "auto"
    assert config.league_mix == "latest=0.8,past=0.2" and config.league_snapshots == 20
    assert config.policy_average == 0  # the learner's own weights (README: no clear gain)
    assert config.threat_planes and config.lr == 3e-4 and config.line_filters == 64
    assert config.drop_planes  # README: mean 68.9 % against 66.2 % without
    # 3e-4 for the first 3 M steps, then down to 3e-5 at 4.6 M (about the 30 minutes here)
    decay = (config.ppo_lr_decay_start, config.ppo_lr_decay_steps, config.ppo_lr_final)
    assert decay == (3_000_000, 1_600_000, 3e-5)


def test_opening_plies_are_for_ppo_only() -> None:
    with pytest.raises(ValueError, match="opening_plies works with algo ppo only.*got opening_"):
        TrainConfig(opening_plies=2)
    assert TrainConfig(algo="ppo", opening_plies=2).opening_plies == 2
    with pytest.raises(ValueError, match="opening_plies must be an integer >= 0, got -1"):
        TrainConfig(algo="ppo", opening_plies=-1)
    with pytest.raises(ValueError, match="mlp_layers must be an integer >= 1, got 0"):
        TrainConfig(mlp_layers=0)
    with pytest.raises(ValueError, match="line_filters must be an integer >= 0, got -2"):
        TrainConfig(net="mlp", line_filters=-2)
    with pytest.raises(ValueError, match="line_filters works with net mlp only.*net convnet"):
        TrainConfig(net="convnet", line_filters=8)
    with pytest.raises(ValueError, match="symmetric works with algo ppo only"):
        TrainConfig(symmetric=True)
    with pytest.raises(ValueError, match="league_greedy works with algo ppo only"):
        TrainConfig(league_greedy=True)
    assert TrainConfig(algo="ppo", league_greedy=True).league_greedy
    with pytest.raises(ValueError, match="ppo_sampler works with algo ppo only"):
        TrainConfig(ppo_sampler="rllib")
    assert TrainConfig(algo="ppo", ppo_sampler="rllib").ppo_sampler == "rllib"
    with pytest.raises(ValueError, match="ppo_sampler must be one of batched, rllib, got 'fast'"):
        TrainConfig(algo="ppo", ppo_sampler="fast")
    with pytest.raises(ValueError, match=r"batch_size \(PPO's minibatch\) must be <= ppo_rol"):
        TrainConfig(algo="ppo", batch_size=512, ppo_rollout=500)
    with pytest.raises(ValueError, match="precision bfloat16 works with algo ppo only"):
        TrainConfig(precision="bfloat16")
    allowed = "precision must be one of auto, float32, bfloat16, got 'fp16'"
    with pytest.raises(ValueError, match=allowed):
        TrainConfig(algo="ppo", precision="fp16")
    with pytest.raises(ValueError, match="ppo_lr_final 3e-05 needs ppo_lr_decay_steps > 0"):
        TrainConfig(algo="ppo", ppo_lr_final=3e-5)
    assert TrainConfig(algo="ppo", ppo_lr_final=3e-5, ppo_lr_decay_steps=10).ppo_lr_final == 3e-5
    for name, value in (("ppo_rollout", 2000), ("entropy_coeff", 0.0), ("ppo_kl_coeff", 0.0),
                        ("snapshot_every", 5)):  # fmt: skip
        with pytest.raises(ValueError, match=f"{name} works with algo ppo only, got {name} "):
            TrainConfig(algo="alphazero", **{name: value})
        assert getattr(TrainConfig(algo="ppo", **{name: value}), name) == value
    with pytest.raises(ValueError, match="ppo_lr_decay_start 100 needs ppo_lr_decay_steps > 0"):
        TrainConfig(algo="ppo", ppo_lr_decay_start=100)
    with pytest.raises(ValueError, match="ppo_lr_decay_start must be"):
        TrainConfig(algo="ppo", ppo_lr_decay_start=-1, ppo_lr_decay_steps=10)
    with pytest.raises(ValueError, match="policy_average works with algo ppo only"):
        TrainConfig(policy_average=5)
    with pytest.raises(ValueError, match=r"must be <= league_snapshots \(20\), got 21"):
        TrainConfig(algo="ppo", policy_average=21)
    with pytest.raises(ValueError, match="policy_average must be an integer >= 0, got -1"):
        TrainConfig(algo="ppo", policy_average=-1)
    assert TrainConfig(algo="ppo", policy_average=20).policy_average == 20
    with pytest.raises(ValueError, match="policy_select works with algo ppo only"):
        TrainConfig(policy_select=5)
    with pytest.raises(ValueError, match=r"must be <= league_snapshots \(20\), got 21"):
        TrainConfig(algo="ppo", policy_select=21)
    with pytest.raises(ValueError, match="^policy_select and policy_average each choose"):
        TrainConfig(algo="ppo", policy_select=5, policy_average=5)
    with pytest.raises(ValueError, match="needs eval_opponents, got policy_select 5 and none"):
        TrainConfig(algo="ppo", policy_select=5, eval_opponents="")
    assert TrainConfig(algo="ppo", policy_select=20).policy_select == 20


def test_ppo_runs_saved_before_the_ppo_fields_keep_their_sampling() -> None:
    from selfplay.config import config_from_dict, to_dict, upgrade_saved_config

    old = {k: v for k, v in to_dict(TrainConfig(algo="ppo")).items() if k != "ppo_rollout"}
    cfg = config_from_dict(upgrade_saved_config(old))
    assert (cfg.workers, cfg.games_per_worker, cfg.batch_size) == (1, 8, 256)
    new = to_dict(TrainConfig(algo="ppo", workers=3))
    assert config_from_dict(upgrade_saved_config(new)).workers == 3  # saved with the fields


def test_unknown_preset_lists_the_presets() -> None:
    with pytest.raises(ValueError, match=r"unknown preset 'go19': choose one of connect_four, "):
        load_preset("go19")


# --- command line ----------------------------------------------------------------------------


def test_every_field_has_a_flag_defaulting_to_none() -> None:
    args = parse()
    for f in dataclasses.fields(TrainConfig):
        assert getattr(args, f.name) is None
    assert args.preset == "connect_four" and args.resume is None


def test_flags_override_the_preset() -> None:
    args = parse("--preset", "tictactoe", "--lr", "3e-3", "--eval-games", "10", "--augment", "no")
    config = config_from_args(args)
    assert config == dataclasses.replace(
        load_preset("tictactoe"), lr=3e-3, eval_games=10, augment=False
    )


def test_bare_boolean_flag_means_true() -> None:
    config = config_from_args(parse("--augment"))
    assert config.augment is True
    assert config_from_args(parse("--augment", "0")).augment is False


def test_no_flags_gives_the_preset() -> None:
    assert config_from_args(parse()) == load_preset("connect_four")
    assert config_from_args(parse("--preset", "tictactoe")) == load_preset("tictactoe")


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (("--simulations", "64"), "--simulations 64"),
        (("--replay-size", "5000"), "--replay-size 5000"),
        (("--augment", "no"), "--augment no"),
        (("--learner-threads", "2"), "--learner-threads 2"),
        (("--max-steps", "100"), "--max-steps 100"),
    ],
)
def test_alphazero_only_flags_are_refused_with_ppo(flags: tuple[str, ...], shown: str) -> None:
    """Typed with algo ppo, a search, replay or learner-process flag is refused by name, not
    ignored; the same values coming from an alphazero preset (tictactoe's num_considered,
    replay_size, ...) do not stop `--algo ppo`."""
    for preset in ("connect_four", "connect_four_ppo"):
        with pytest.raises(ValueError) as info:
            config_from_args(parse("--preset", preset, "--algo", "ppo", *flags))
        assert str(info.value) == (
            f"{flags[0]} works with algo alphazero only (PPO has no search, replay buffer or "
            f"learner process of ours), got {shown} with algo ppo"
        )
    cfg = config_from_args(parse("--preset", "tictactoe", "--algo", "ppo"))
    assert cfg.algo == "ppo" and cfg.num_considered == load_preset("tictactoe").num_considered
    assert config_from_args(parse("--algo", "alphazero", *flags)).algo == "alphazero"


def test_bad_flag_values_name_the_flag() -> None:
    with pytest.raises(ValueError, match=r"^--simulations must be an integer >= 1, got 0$"):
        config_from_args(parse("--simulations", "0"))
    with pytest.raises(ValueError, match=r"^--augment must be true or false"):
        config_from_args(parse("--augment", "maybe"))
    with pytest.raises(ValueError, match=r"^--batch-size must be <= replay_size \(20000\)"):
        config_from_args(parse("--preset", "tictactoe", "--batch-size", "30000"))
    with pytest.raises(ValueError, match="unknown preset"):
        config_from_args(parse("--preset", "nope"))


def test_base_replaces_the_preset_when_resuming() -> None:
    stored = to_dict(TrainConfig(game="tictactoe", net="mlp", minutes=3.0))
    args = parse("--resume", "runs/x", "--minutes", "9")
    config = config_from_args(args, base=stored)
    assert config.game == "tictactoe" and config.net == "mlp" and config.minutes == 9.0
    assert args.resume == "runs/x"


def test_resume_refuses_a_changed_net_before_starting_anything(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A resumed run keeps its game, engine and net shape; other flags (minutes) may change."""
    import json

    from selfplay.cli import main
    from selfplay.config import check_resume

    saved = TrainConfig(algo="ppo", net="mlp", hidden=64, line_filters=8, minutes=3.0)
    check_resume(to_dict(saved), dataclasses.replace(saved, minutes=9.0, lr=1e-4))  # allowed
    for name, value in (
        ("hidden", 32),
        ("line_filters", 0),
        ("mlp_layers", 3),
        ("algo", "alphazero"),
    ):
        with pytest.raises(
            ValueError, match=f"--{name.replace('_', '-')} cannot change when resuming"
        ):
            check_resume(to_dict(saved), dataclasses.replace(saved, **{name: value}))
    (tmp_path / "ppo_run.json").write_text(json.dumps({"config": to_dict(saved)}))
    assert main(["train", "--resume", str(tmp_path), "--hidden", "32"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "selfplay: error: --hidden cannot change when resuming: the run was started with "
        "hidden 64, got 32 (start a new run for another hidden)"
    )


def test_help_shows_field_docs_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="train")
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--eval-simulations" in text
    assert "search simulations per move in self-play (default: 32)" in text
    assert "{convnet,transformer,mlp}" in text


def test_field_docs_cover_every_field() -> None:
    docs = field_docs()
    assert set(docs) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(text and "\n" not in text for text in docs.values())
    assert docs["replay_size"].startswith("positions kept in the replay buffer")
    docs["lr"] = "changed"  # a copy: the cached original must not change
    assert field_docs()["lr"] != "changed"


def test_wandb_modes_match_tracking() -> None:
    from selfplay.tracking import WANDB_MODES

    assert config_module.WANDB_MODES == WANDB_MODES


def test_config_imports_neither_ray_nor_torch() -> None:
    # The CLI validates the config before paying for Ray or torch.
    code = (
        "import sys, selfplay.config as c; c.load_preset('connect_four');"
        "print(sorted(m for m in ('ray', 'torch', 'wandb') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_saved_config_from_before_play_simulations_keeps_playing_at_eval_simulations() -> None:
    from selfplay.config import default_play_simulations, to_dict, upgrade_saved_config

    saved = {k: v for k, v in to_dict(TrainConfig(eval_simulations=24)).items()}
    del saved["play_simulations"]
    old = config_from_dict(upgrade_saved_config(saved))
    assert old.play_simulations == 0 and default_play_simulations(old) == 24
    new = config_from_dict(upgrade_saved_config(to_dict(TrainConfig(play_simulations=64))))
    assert default_play_simulations(new) == 64  # a saved value is kept
