"""The AlphaZero engine end to end on the tic-tac-toe preset: a real local Ray, real W&B offline
runs, real checkpoints; a worker killed mid-run; `selfplay play` driven through standard input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from selfplay.alphazero import AlphaZeroRun, train  # noqa: E402
from selfplay.checkpoint import load_checkpoint  # noqa: E402
from selfplay.config import load_preset  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    os.environ.setdefault("WANDB_SILENT", "true")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def small_config(tmp: Path, name: str, **changes):
    fields = {
        "runs_dir": str(tmp),
        "run_name": name,
        "games_per_worker": 16,
        "moves_per_call": 4,
        "min_replay": 64,
        "batch_size": 64,
        "eval_every_minutes": 0.15,
        "eval_games": 10,
        "checkpoint_every_minutes": 0.1,
    }
    return replace(load_preset("tictactoe"), **{**fields, **changes})


@pytest.fixture(scope="module")
def trained_run(local_ray, tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("runs")
    summary = train(small_config(tmp, "ttt", minutes=0.35))
    return Path(summary["run_dir"])


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_run_trains_tracks_and_checkpoints(trained_run: Path) -> None:
    lines = read_metrics(trained_run)
    assert any("selfplay/positions_per_s" in line for line in lines)
    assert any("learner/loss" in line for line in lines)
    evals = [line for line in lines if "eval/score_vs_random" in line]
    assert evals, "the evaluator reported"
    assert any("eval/elo" in line for line in evals)
    steps = [line["step"] for line in lines]
    assert steps == sorted(steps)
    offline = list((trained_run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline, "a W&B offline run was written"
    ckpt = load_checkpoint(trained_run / "checkpoint.pt")
    assert ckpt.counters["step"] > 0 and ckpt.counters["games"] > 0
    assert ckpt.config["game"] == "tictactoe"
    assert len(ckpt.replay["value"]) > 0
    assert ckpt.extra["wandb_run_id"]


def test_resume_continues_the_counters(trained_run: Path, tmp_path: Path) -> None:
    # resume a copy, so the other tests keep the original checkpoint
    import shutil

    copy = tmp_path / "ttt"
    shutil.copytree(trained_run, copy)
    before = load_checkpoint(copy / "checkpoint.pt")
    cfg = replace(
        small_config(tmp_path, "ttt", minutes=before.counters["seconds"] / 60 + 0.2),
        wandb="offline",
    )
    summary = train(cfg, resume=copy, final_eval=False)
    after = load_checkpoint(copy / "checkpoint.pt")
    assert summary["run_dir"] == str(copy)
    for key in ("step", "positions", "games"):
        assert after.counters[key] > before.counters[key], key
    assert after.extra["wandb_run_id"] == before.extra["wandb_run_id"]
    lines = read_metrics(copy)
    assert [line["step"] for line in lines] == sorted(line["step"] for line in lines)


def test_resume_refuses_another_net_shape(trained_run: Path, tmp_path: Path) -> None:
    """The engine itself refuses (a library caller gets it too), before touching the run."""
    before = (trained_run / "checkpoint.pt").read_bytes()
    saved = load_checkpoint(trained_run / "checkpoint.pt").config
    cfg = replace(small_config(tmp_path, "ttt"), **{"channels": saved["channels"] * 2})
    with pytest.raises(ValueError, match="--channels cannot change when resuming"):
        train(cfg, resume=trained_run, final_eval=False)
    assert (trained_run / "checkpoint.pt").read_bytes() == before


def test_a_killed_worker_is_restarted_and_the_run_goes_on(local_ray, tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "chaos", minutes=2.0, eval_every_minutes=10.0)
    run = AlphaZeroRun(cfg, tmp_path / "chaos")
    run.start()
    try:
        run.run(seconds=8)
        positions = run.counters["positions"]
        ray.kill(run.workers[0], no_restart=False)
        for _ in range(12):  # a loaded machine may take a while to restart the actor
            run.run(seconds=5)
            if run.counters["restarts"] >= 1 and run.counters["positions"] > positions:
                break
        assert run.counters["restarts"] >= 1
        assert run.counters["positions"] > positions
        # the restarted actor answers again
        assert ray.get(run.workers[0].node_id.remote())
    finally:
        run.close()


def test_the_learner_moves_into_a_ray_actor_and_back(trained_run: Path, tmp_path: Path) -> None:
    """learner actor: the driver-trained checkpoint's weights, optimizer state and replay
    window reach the actor (another process), it trains there, and its state comes back into
    the checkpoint, which a run with the learner in the driver resumes whole."""
    import shutil

    copy = tmp_path / "ttt"
    shutil.copytree(trained_run, copy)
    before = load_checkpoint(copy / "checkpoint.pt")
    net = {k: v for k, v in before.model.items() if not k.startswith("league/")}
    cfg = small_config(tmp_path, "ttt", minutes=60.0, learner="actor", eval_every_minutes=10.0)
    run = AlphaZeroRun(cfg, copy, checkpoint=before)
    assert run.placement == "actor" and run.learner.actor is None  # here until start()
    run.start()
    try:
        assert run.learner.actor is not None
        assert run.learner.where()["pid"] != os.getpid()
        assert run.learner.size() == len(before.replay["value"])
        state = run.learner.state(len(before.replay["value"]))
        for key, tensor in net.items():
            assert torch.equal(state["model"][key], tensor), key
        for index, saved in before.optimizer["state"].items():
            for name in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(state["optimizer"]["state"][index][name], saved[name])
        np.testing.assert_array_equal(state["replay"]["policy"], before.replay["policy"])
        step = run.counters["step"]
        run.run(seconds=8)
        assert run.counters["step"] > step, "the actor trained"
        trained = run.learner.weights()
    finally:
        run.close()
    after = load_checkpoint(copy / "checkpoint.pt")
    assert any(not torch.equal(trained[k], net[k]) for k in net)
    for key, tensor in trained.items():
        assert torch.equal(after.model[key], tensor), key
    back = AlphaZeroRun(replace(cfg, learner="driver"), copy, checkpoint=after)
    assert back.placement == "driver" and back.learner.actor is None
    for key, tensor in back.learner.weights().items():
        assert torch.equal(tensor, trained[key]), key
    optimizer = back.learner.state(0)["optimizer"]
    assert optimizer["state"].keys() == after.optimizer["state"].keys()
    for index, saved in after.optimizer["state"].items():
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(optimizer["state"][index][name], saved[name])
    assert back.learner.size() == len(after.replay["value"])
    # the actor's buffer took the new games (the window is full: its newest rows moved on)
    assert after.replay["policy"].shape == before.replay["policy"].shape
    assert not np.array_equal(after.replay["policy"], before.replay["policy"])


@pytest.mark.parametrize("learner", ["driver", "actor"])
def test_max_steps_ends_the_run_at_that_step(local_ray, tmp_path: Path, learner: str) -> None:
    """Both placements stop at max_steps, and the checkpoint's step counter is the number of
    steps its optimizer took."""
    cfg = small_config(tmp_path, learner, minutes=3.0, max_steps=12, learner=learner,
                       eval_every_minutes=10.0)  # fmt: skip
    summary = train(cfg, final_eval=False)
    assert summary["step"] == 12
    ckpt = load_checkpoint(tmp_path / learner / "checkpoint.pt")
    assert ckpt.counters["step"] == 12
    # optimizer state: AdamW counts its own steps
    assert all(float(s["step"]) == 12 for s in ckpt.optimizer["state"].values())


def test_a_dead_learner_actor_ends_the_run_in_one_line_and_keeps_the_checkpoint(
    local_ray, tmp_path: Path
) -> None:
    import signal
    import threading

    from selfplay.alphazero import LearnerActorDied

    cfg = small_config(tmp_path, "dies", minutes=5.0, learner="actor", eval_every_minutes=10.0)
    run = AlphaZeroRun(cfg, tmp_path / "dies")
    run.start()
    try:
        run.run(seconds=6)
        run.learner.start_step()  # a step in flight: the save waits for it and counts it
        before = load_checkpoint(run.save())
        assert before.counters["step"] > 0
        adam = {float(s["step"]) for s in before.optimizer["state"].values()}
        assert adam == {before.counters["step"]}, "the counters are those of the weights"
        # an add that fails on the actor is raised, after the step in flight is counted
        run.learner.start_step()
        bad = (np.zeros((2, 2, 3, 3), bool), np.zeros((1, 9), bool), np.zeros((1, 9)), [0.0])
        run.learner.add(*bad)
        step = run.counters["step"]
        with pytest.raises(ValueError, match="replay batch fields differ in length"):
            run._collect_step(wait=True)
        assert run.counters["step"] == step + 1
        before = load_checkpoint(run.save())
        # the learner actor dies in the middle of a run
        handler = signal.getsignal(signal.SIGINT)
        threading.Timer(3.0, ray.kill, (run.learner.actor,), {"no_restart": True}).start()
        with pytest.raises(LearnerActorDied) as info:
            run.run(seconds=60)
        assert signal.getsignal(signal.SIGINT) is handler, "run() gave the signals back"
        message = str(info.value)
        assert message.startswith("the learner actor died (") and "\n" not in message
        assert message.endswith("resume the run from its last checkpoint (selfplay train "
                                "--resume RUN_DIR)")  # fmt: skip
        assert run.learner.dead
        with pytest.raises(LearnerActorDied):  # again, from run()'s set-up this time
            run.run(seconds=5)
        assert signal.getsignal(signal.SIGINT) is handler
    finally:
        run.close()  # does not overwrite the checkpoint with nothing
    after = load_checkpoint(tmp_path / "dies" / "checkpoint.pt")
    assert after.counters == before.counters


def test_the_cli_ends_a_run_whose_learner_actor_died_in_one_line(monkeypatch, capsys) -> None:
    """What `selfplay train` prints when the engine raises LearnerActorDied (the death itself
    is the test above's)."""
    import selfplay.alphazero as alphazero
    from selfplay import cli

    def dies(*_, **__):
        raise alphazero.LearnerActorDied("The actor is dead because its node has died.")

    monkeypatch.setattr(alphazero, "train", dies)
    assert cli.main(["train", "--preset", "tictactoe", "--learner", "actor"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "selfplay: error: the learner actor died (The actor is dead because its node has "
        "died.); resume the run from its last checkpoint (selfplay train --resume RUN_DIR)\n"
    )


def test_a_learner_actor_without_a_gpu_for_it_is_refused(local_ray, tmp_path: Path) -> None:
    cfg = small_config(tmp_path, "nogpu", learner="actor", device="cuda")
    run = AlphaZeroRun(cfg, tmp_path / "nogpu")  # the cluster is not known yet
    with pytest.raises(ValueError) as info:
        run.start()
    assert str(info.value) == (
        "device cuda was asked for the learner actor, but the Ray cluster has no GPU; use cpu "
        "or auto"
    )
    assert not (tmp_path / "nogpu").exists(), "refused before W&B or any file"
    assert ray.is_initialized(), "a Ray this run did not start is left running"


def test_load_player_analyses_a_position(trained_run: Path) -> None:
    import selfplay

    player = selfplay.load_player(trained_run, simulations=8)
    analysis = player.analyse("51")  # X centre, O corner: X to move
    assert 0 <= analysis.action < 9 and analysis.action not in (0, 4)
    assert -1.0 <= analysis.value <= 1.0
    assert analysis.policy[[0, 4]].sum() == 0 and abs(analysis.policy.sum() - 1) < 1e-5
    assert analysis.move == str(analysis.action + 1)
    with pytest.raises(ValueError, match="malformed move"):
        player.analyse("5x")
    with pytest.raises(ValueError, match="is over"):
        player.analyse("14253")


def test_play_in_the_terminal(trained_run: Path) -> None:
    # malformed, out-of-range and occupied inputs are asked again; the game finishes
    moves = ["x", "0", "5", "5", "1", "2", "3", "4", "6", "7", "8", "9"]
    completed = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "play", str(trained_run), "--seat", "first",
         "--simulations", "8"],
        input="\n".join(moves) + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    out = completed.stdout
    assert completed.returncode == 0, completed.stderr
    assert "'x' is not a move" in out and "'0' is not a move" in out
    assert "'5' is not legal here" in out
    assert out.count("agent plays") >= 3
    assert any(end in out for end in ("You win!", "The agent wins.", "Draw."))
    assert "X" in out and "O" in out


def test_resume_refuses_a_broken_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "broken"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"PK\x03\x04 not really a zip")
    completed = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", "--resume", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert "truncated or corrupt" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1


def test_bad_config_is_refused_before_ray_starts() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "selfplay.cli", "train", "--preset", "tictactoe",
         "--simulations", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 2
    assert "--simulations must be an integer >= 1, got 0" in completed.stderr
    assert "Ray" not in completed.stderr


def test_value_targets_are_from_the_movers_view() -> None:
    from selfplay.alphazero import SelfPlayWorker
    from selfplay.config import to_dict

    cfg = replace(load_preset("tictactoe"), games_per_worker=8, simulations=4)
    worker = SelfPlayWorker(to_dict(cfg), 0, threads=1)
    batch = worker.play_moves(12)
    assert batch["stats"]["games"] > 0
    planes, value = batch["planes"], batch["value"]
    # in a decided game, consecutive positions alternate movers: their targets alternate sign
    stones = planes.sum(axis=(1, 2, 3))
    for i in range(1, len(value)):
        if stones[i] == stones[i - 1] + 1:
            assert value[i] == -value[i - 1]
    assert np.allclose(batch["policy"].sum(axis=1), 1.0, atol=1e-5)
    assert not batch["policy"][~batch["legal"]].any()


def test_sigint_ends_a_run_cleanly(tmp_path: Path) -> None:
    import signal
    import time

    command = [
        sys.executable, "-m", "selfplay.cli", "train", "--preset", "tictactoe",
        "--minutes", "10", "--runs-dir", str(tmp_path), "--run-name", "sig",
        "--games-per-worker", "16", "--moves-per-call", "4", "--min-replay", "64",
        "--batch-size", "64", "--eval-every-minutes", "10", "--wandb", "offline",
    ]  # fmt: skip
    env = {**os.environ, "WANDB_SILENT": "true"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    metrics = tmp_path / "sig" / "metrics.jsonl"
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and process.poll() is None:
        if metrics.exists() and any(
            '"learner/steps"' in l for l in metrics.read_text().splitlines()
        ):
            break
        time.sleep(1)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr.decode()[-2000:]
    ckpt = load_checkpoint(tmp_path / "sig" / "checkpoint.pt")
    assert ckpt.counters["step"] > 0
    assert list((tmp_path / "sig" / "wandb").glob("offline-run-*/run-*.wandb"))


def test_sprt_gating_promotes_snapshots_in_training(local_ray, tmp_path: Path) -> None:
    """With league_gating=sprt the first snapshot is promoted as is and later ones only by the
    test on their evaluation games against the best; self-play meets promoted snapshots only."""
    from selfplay.league import League

    cfg = small_config(
        tmp_path, "gated", minutes=0.5, eval_every_minutes=0.1, eval_games=40,
        league_mix="latest=0.5,past=0.5", league_gating="sprt", league_snapshots=4,
    )  # fmt: skip
    train(cfg, final_eval=False)
    ckpt = load_checkpoint(tmp_path / "gated" / "checkpoint.pt")
    league = League.from_state_dict(
        ckpt.league, {k: v for k, v in ckpt.model.items() if k.startswith("league/")}
    )
    assert league.config.gated_only
    history = league.promotions
    assert history and history[0]["decision"] == "promoted" and history[0]["incumbent"] is None
    for decision in history[1:]:  # every later one is an SPRT verdict against the best then
        assert decision["decision"] in ("accept", "reject") and decision["incumbent"]
        assert decision["wins"] + decision["draws"] + decision["losses"] > 0
    # self-play opponents came from promoted snapshots only
    met = {b for a, b, *_ in league.results.pairs() if a == "main"}
    assert met and met <= set(league.gated), (met, league.gated)
    rows = [json.loads(line) for line in (tmp_path / "gated" / "metrics.jsonl").open()]
    gated = [r["league/gated"] for r in rows if "league/gated" in r]
    assert gated and gated[0] == 1 and gated == sorted(gated)


def test_gate_promotes_first_snapshot_then_follows_the_sprt(tmp_path: Path) -> None:
    """AlphaZeroRun._gate on recorded results: accept, reject and undecided verdicts."""
    cfg = small_config(tmp_path, "gate", league_gating="sprt", eval_games=40)
    run = AlphaZeroRun(cfg, tmp_path / "gate")
    weights = run.learner.weights()
    run.league.add_snapshot("step_1", weights)
    assert run._gate("step_1") == {"league/promoted": 1.0, "league/rejected": 0.0,
                                   "league/gated": 1.0}  # fmt: skip
    run.league.add_snapshot("step_2", weights)
    run.league.record("step_2", "step_1", wins=36, draws=2, losses=2)  # clearly stronger
    assert run._gate("step_2")["league/promoted"] == 1.0 and run.league.best == "step_2"
    run.league.add_snapshot("step_3", weights)
    run.league.record("step_3", "step_2", wins=5, draws=5, losses=30)  # clearly weaker
    verdict = run._gate("step_3")
    assert verdict["league/rejected"] == 1.0 and verdict["league/gated"] == 2.0
    run.league.add_snapshot("step_4", weights)
    run.league.record("step_4", "step_2", wins=21, draws=0, losses=19)  # undecided
    verdict = run._gate("step_4")
    assert verdict["league/promoted"] == verdict["league/rejected"] == 0.0
    assert run.league.best == "step_2" and run.league.gated == ["step_1", "step_2"]
    assert run._gate("step_2")["league/promoted"] == 0.0  # the best itself: nothing to test
    # games are drawn from promoted snapshots only, the best included
    assert run.league.opponents_for("main", "main") == ["step_1", "step_2"]


def test_a_checkpoint_from_before_the_league_resumes(tmp_path: Path) -> None:
    """Old checkpoints kept two snapshots as "snapshot/<name>/<param>" in the model dict."""
    cfg = small_config(tmp_path, "old")
    ckpt = load_checkpoint(AlphaZeroRun(cfg, tmp_path / "old").save())
    net = {k: v for k, v in ckpt.model.items() if not k.startswith("league/")}
    old = replace(ckpt, model={**net, **{f"snapshot/step_9/{k}": v for k, v in net.items()}},
                  league=None)  # fmt: skip
    run = AlphaZeroRun(cfg, tmp_path / "old", checkpoint=old)
    weights = run.learner.weights()
    for key, tensor in net.items():
        assert torch.equal(weights[key], tensor)


def test_league_opponents_in_training_survive_resume(local_ray, tmp_path: Path) -> None:
    from selfplay.league import League

    cfg = small_config(
        tmp_path, "league", minutes=0.5, eval_every_minutes=0.1,
        league_mix="latest=0.5,past=0.25,pfsp=0.25", league_snapshots=3,
    )  # fmt: skip
    train(cfg, final_eval=False)
    ckpt = load_checkpoint(tmp_path / "league" / "checkpoint.pt")
    tensors = {k: v for k, v in ckpt.model.items() if k.startswith("league/")}
    league = League.from_state_dict(ckpt.league, tensors)
    assert 1 <= len(league.names) <= 3
    # games against frozen snapshots were played and recorded for PFSP
    assert league.results.games("main") > 0, "main met league snapshots"
    # resume: the league comes back whole, and snapshots never change
    before = {n: dict(league.snapshot(n).weights) for n in league.names}
    resumed = replace(cfg, minutes=ckpt.counters["seconds"] / 60 + 0.25)
    train(resumed, resume=tmp_path / "league", final_eval=False)
    after = load_checkpoint(tmp_path / "league" / "checkpoint.pt")
    league2 = League.from_state_dict(
        after.league, {k: v for k, v in after.model.items() if k.startswith("league/")}
    )
    for name, weights in before.items():
        if name in league2:
            for key, tensor in weights.items():
                assert (league2.snapshot(name).weights[key] == tensor).all()
    assert league2.results.games("main") >= league.results.games("main")
    # the sampling settings are the resumed run's, not the saved ones
    gated = AlphaZeroRun(
        replace(resumed, league_gating="sprt", eval_games=40, league_mix="latest=0.5,past=0.5"),
        tmp_path / "league", checkpoint=after,
    )  # fmt: skip
    assert gated.league.config.gated_only and gated.league.config.pfsp == 0.0
    assert gated.league.names == league2.names  # the snapshots themselves are the saved ones
