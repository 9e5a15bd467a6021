"""Tests for selfplay.tracking: offline W&B runs, metrics.jsonl, resume, progress output."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from selfplay.tracking import WANDB_MODES, Progress, Tracker, new_run_id


@pytest.fixture(autouse=True)
def wandb_sandbox(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep W&B offline, quiet, and writing under temporary directories only."""
    home = tmp_path_factory.mktemp("wandb_home")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home / "dir"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def read_metrics(run_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def offline_runs(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "wandb").glob("offline-run-*"))


def test_offline_run_writes_wandb_files_and_metrics(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "demo"
    config = {"game": "tictactoe", "lr": 2e-3}
    with Tracker(run_dir, config, mode="offline", run_name="demo") as tracker:
        assert len(tracker.run_id) == 8
        tracker.log({"learner/loss": 1.5, "perf/games_per_s": np.float32(12.5)}, step=10)
        tracker.log({"learner/loss": 1.25}, step=20)
        tracker.log_summary({"eval/elo": 300.0})

    runs = offline_runs(run_dir)
    assert len(runs) == 1 and runs[0].name.endswith(tracker.run_id)
    assert (runs[0] / f"run-{tracker.run_id}.wandb").stat().st_size > 0

    lines = read_metrics(run_dir)
    assert [line["step"] for line in lines] == [10, 20]
    assert lines[0]["learner/loss"] == 1.5 and lines[0]["perf/games_per_s"] == 12.5
    assert lines[1] == {"step": 20, "time": lines[1]["time"], "learner/loss": 1.25}
    assert isinstance(lines[0]["time"], float) and lines[0]["time"] <= lines[1]["time"]
    assert json.loads((run_dir / "summary.json").read_text()) == {"eval/elo": 300.0}


def test_resume_with_the_same_id_appends(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = Tracker(run_dir, {}, mode="offline", run_name="r")
    first.log({"x": 1.0}, step=1)
    first.finish()
    second = Tracker(run_dir, {}, mode="offline", run_name="r", resume_id=first.run_id)
    assert second.run_id == first.run_id
    second.log({"x": 2.0}, step=2)
    second.finish()

    assert [(line["step"], line["x"]) for line in read_metrics(run_dir)] == [(1, 1.0), (2, 2.0)]
    runs = offline_runs(run_dir)
    assert len(runs) == 2  # W&B keeps one directory per session, both under the same run id
    assert all(f"-{first.run_id}" in run.name for run in runs)


def test_disabled_mode_writes_metrics_but_no_wandb_files(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with Tracker(run_dir, {"a": 1}, mode="disabled", run_name="quiet") as tracker:
        tracker.log({"x": 3.0}, step=0)
        assert tracker.run_id  # still an id, so checkpoints can store one
    assert read_metrics(run_dir)[0]["x"] == 3.0
    assert not (run_dir / "wandb").exists()
    assert not (tmp_path / "wandb").exists()


def test_bad_mode_lists_the_modes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="wandb mode must be one of online, offline, disabled"):
        Tracker(tmp_path / "run", {}, mode="cloud", run_name="x")
    assert not (tmp_path / "run").exists()  # refused before anything is created
    assert WANDB_MODES == ("online", "offline", "disabled")


def test_steps_must_not_decrease_and_names_are_not_reserved(tmp_path: Path) -> None:
    with Tracker(tmp_path, {}, mode="disabled", run_name="x") as tracker:
        tracker.log({"x": 1.0}, step=5)
        tracker.log({"y": 1.0}, step=5)  # the same step again is fine
        with pytest.raises(ValueError, match="step must not decrease .*got 4 after 5"):
            tracker.log({"x": 2.0}, step=4)
        with pytest.raises(ValueError, match="reserved"):
            tracker.log({"time": 2.0}, step=6)
    assert [line["step"] for line in read_metrics(tmp_path)] == [5, 5]


def test_finish_is_idempotent_and_closes(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path, {}, mode="disabled", run_name="x")
    tracker.finish()
    tracker.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        tracker.log({"x": 1.0}, step=1)


def test_new_run_ids_are_wandb_style_and_distinct() -> None:
    ids = {new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 8 and i.isalnum() and i == i.lower() for i in ids)


# --- Progress --------------------------------------------------------------------------------


def test_progress_prints_a_line_every_interval_when_not_a_tty() -> None:
    out = io.StringIO()  # not a TTY: line mode
    progress = Progress(120.0, every=30.0, file=out)
    assert not progress.enabled
    for elapsed in range(0, 100, 5):
        progress.update(float(elapsed), {"step": elapsed * 2, "loss": 1.0 / (elapsed + 1)})
    progress.close()
    progress.close()
    lines = out.getvalue().splitlines()
    # At 30, 60 and 90 s, plus the final status (95 s) on close.
    assert [line.split()[1] for line in lines] == [
        "00:30/02:00",
        "01:00/02:00",
        "01:30/02:00",
        "01:35/02:00",
    ]
    assert lines[0] == "train 00:30/02:00 step=60 loss=0.03226"


def test_progress_every_zero_prints_nothing() -> None:
    out = io.StringIO()
    with Progress(60.0, enabled=False, every=0, file=out) as progress:
        progress.update(59.0, {"step": 1})
    assert out.getvalue() == ""


def test_progress_bar_shows_figures() -> None:
    out = io.StringIO()
    with Progress(600.0, enabled=True, file=out, desc="c4") as progress:
        progress.update(300.0, {"step": 1200, "games/s": 35.25, "elo": 812.4})
    text = out.getvalue()
    assert "c4" in text and " 50%" in text
    assert "05:00/10:00 step=1200 games/s=35.25 elo=812.4" in text
