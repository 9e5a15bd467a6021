"""Tests for selfplay.checkpoint: round trip, atomic writes, refusing bad and unsafe files."""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from selfplay.checkpoint import (
    FORMAT,
    VERSION,
    Checkpoint,
    CheckpointError,
    checkpoint_path,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def trained_model_and_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A tiny net after one AdamW step, so the optimizer state holds tensors and step counts."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2)
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    model(torch.randn(16, 4)).square().mean().backward()
    optimizer.step()
    return model, optimizer


def save_example(path: Path, **overrides: object) -> dict[str, object]:
    model, optimizer = trained_model_and_optimizer()
    rng = np.random.default_rng(0)
    contents: dict[str, object] = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "counters": {"learner_steps": 120, "games": np.int64(3000), "elapsed_s": 61.5},
        "config": {"game": "connect_four", "lr": 1e-3, "augment": True},
        "ratings": {"results": [["net_0001", "random", 9, 0, 1]]},
        "league": {"snapshots": ["net_0001"]},
        "replay": {
            "obs": rng.random((5, 2, 6, 7), dtype=np.float32),
            "policy": rng.random((5, 7)),
            "value": np.array([1, -1, 0, 1, 1], dtype=np.int8),
            "legal": np.ones((5, 7), dtype=bool),
        },
        "extra": {"wandb_run_id": "abc12345"},
    }
    contents.update(overrides)
    save_checkpoint(path, **contents)  # type: ignore[arg-type]
    return contents


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "run" / "checkpoint.pt"  # the parent is created
    saved = save_example(path)
    loaded = load_checkpoint(path)
    assert isinstance(loaded, Checkpoint)

    model, optimizer = trained_model_and_optimizer()
    model.load_state_dict(loaded.model)  # strict: same keys and shapes
    for name, tensor in saved["model"].items():  # type: ignore[attr-defined]
        assert torch.equal(loaded.model[name], tensor)
    optimizer.load_state_dict(loaded.optimizer)
    state = loaded.optimizer["state"][0]
    original = saved["optimizer"]["state"][0]  # type: ignore[index]
    assert torch.equal(state["exp_avg"], original["exp_avg"])
    assert loaded.optimizer["param_groups"][0]["betas"] == (0.9, 0.999)

    assert loaded.counters == {"learner_steps": 120, "games": 3000, "elapsed_s": 61.5}
    assert loaded.config == saved["config"]
    assert loaded.ratings == saved["ratings"] and loaded.league == saved["league"]
    assert loaded.extra == {"wandb_run_id": "abc12345"}
    assert loaded.replay is not None
    for name, array in saved["replay"].items():  # type: ignore[attr-defined]
        assert isinstance(loaded.replay[name], np.ndarray)
        assert loaded.replay[name].dtype == array.dtype
        np.testing.assert_array_equal(loaded.replay[name], array)


def test_optional_parts_may_be_left_out(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, optimizer={}, counters={}, config={})
    loaded = load_checkpoint(path)
    assert loaded.ratings is None and loaded.league is None and loaded.replay is None
    assert (
        loaded.extra is None
        and loaded.counters == {}
        and torch.equal(loaded.model["w"], torch.ones(2))
    )


def test_the_file_is_a_plain_weights_only_dict_with_our_marker(tmp_path: Path) -> None:
    path = save_checkpoint(
        tmp_path / "c.pt", model={"w": torch.zeros(1)}, optimizer={}, counters={"a": 1}, config={}
    )
    raw = torch.load(path, weights_only=True, map_location="cpu")
    assert raw["format"] == FORMAT and raw["version"] == VERSION
    assert raw["counters"] == '{"a": 1}'  # JSON text, not pickled objects


def test_bad_contents_are_refused_before_writing(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(TypeError, match="counters must be JSON-able"):
        save_checkpoint(path, model={}, optimizer={}, counters={"x": object()}, config={})
    with pytest.raises(TypeError, match="model must map names to tensors"):
        save_checkpoint(path, model={"w": [1.0]}, optimizer={}, counters={}, config={})
    with pytest.raises(TypeError, match="replay array 'o' has dtype object"):
        replay = {"o": np.array([None, 1], dtype=object)}
        save_checkpoint(path, model={}, optimizer={}, counters={}, config={}, replay=replay)
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_example(path, counters={"learner_steps": 1})
    save_example(path, counters={"learner_steps": 2})
    assert load_checkpoint(path).counters == {"learner_steps": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_failed_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "checkpoint.pt"
    save_example(path, counters={"learner_steps": 1})

    real_save = torch.save

    def save_then_fail(obj: object, file: object) -> None:
        real_save(obj, file)
        raise KeyboardInterrupt  # Ctrl-C after the data, before the rename

    monkeypatch.setattr(torch, "save", save_then_fail)
    with pytest.raises(KeyboardInterrupt):
        save_example(path, counters={"learner_steps": 2})
    assert load_checkpoint(path).counters == {"learner_steps": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_killed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    # A real SIGKILL in the middle of torch.save: nothing can clean up, so only the
    # write-to-temp-then-rename protocol protects the checkpoint.
    path = tmp_path / "checkpoint.pt"
    save_example(path, counters={"learner_steps": 1})
    script = textwrap.dedent(
        f"""
        import os, signal, torch
        from selfplay.checkpoint import save_checkpoint

        def half_a_save(obj, file):
            file.write(b"PK\\x03\\x04 half of a checkpoint")
            file.flush()
            os.kill(os.getpid(), signal.SIGKILL)

        torch.save = half_a_save
        save_checkpoint({str(path)!r}, model={{"w": torch.ones(3)}}, optimizer={{}},
                        counters={{"learner_steps": 2}}, config={{}})
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert result.returncode == -9, result.stderr.decode()
    assert load_checkpoint(path).counters == {"learner_steps": 1}
    stale = [p for p in tmp_path.iterdir() if p.name != "checkpoint.pt"]
    assert len(stale) == 1 and stale[0].name.endswith(".tmp")  # the killed save's temp file
    save_example(path, counters={"learner_steps": 3})  # the next save cleans it up
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


# --- refusing files --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"^no checkpoint at .*nothing\.pt$"):
        load_checkpoint(tmp_path / "nothing.pt")


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0, 3])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    path = tmp_path / "checkpoint.pt"
    save_example(path)
    data = path.read_bytes()
    size = int(len(data) * keep) if keep < 1 else int(keep)
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointError, match="is truncated or corrupt: ") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    model, _ = trained_model_and_optimizer()
    torch.save(model.state_dict(), path)  # a valid torch file, but not ours
    with pytest.raises(CheckpointError, match=r"weights\.pt is not a selfplay checkpoint"):
        load_checkpoint(path)


def test_foreign_pickle_and_text(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(pickle.dumps({"format": FORMAT, "version": 1}))
    with pytest.raises(CheckpointError, match="is not a selfplay checkpoint"):
        load_checkpoint(path)
    path.write_text("hello, I am a text file\n")
    with pytest.raises(CheckpointError, match="is not a selfplay checkpoint"):
        load_checkpoint(path)


def test_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    torch.save({"format": FORMAT, "version": VERSION + 1, "model": {}}, path)
    with pytest.raises(
        CheckpointError, match=rf"newer selfplay \(checkpoint version {VERSION + 1}"
    ):
        load_checkpoint(path)


def test_malformed_contents_are_refused_whole(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_example(path)
    good = torch.load(path, weights_only=True)
    bad = dict(good, counters="{not json")
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="counters is not valid JSON"):
        load_checkpoint(path)
    bad = dict(good)
    del bad["model"]
    torch.save(bad, path)
    with pytest.raises(CheckpointError, match="truncated or corrupt: 'model'"):
        load_checkpoint(path)


class CodeOnLoad:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_the_code_on_load_payload_is_live(tmp_path: Path) -> None:
    # Proves the next test would notice: plain unpickling does run the payload.
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(CodeOnLoad(marker))).close()
    assert marker.exists()


def test_a_pickled_object_never_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    payload = {"format": FORMAT, "version": VERSION, "model": {}, "extra": CodeOnLoad(marker)}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="is not a selfplay checkpoint .*Unsupported global"):
        load_checkpoint(path)
    path.write_bytes(pickle.dumps(CodeOnLoad(marker)))
    with pytest.raises(CheckpointError, match="is not a selfplay checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


# --- paths -----------------------------------------------------------------------------------


def test_checkpoint_path_and_find(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "c4"
    run_dir.mkdir(parents=True)
    assert checkpoint_path(run_dir) == run_dir / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=r"no checkpoint in run directory .*c4"):
        find_checkpoint(run_dir)
    with pytest.raises(CheckpointError, match="no checkpoint or run directory at"):
        find_checkpoint(tmp_path / "missing")
    save_checkpoint(checkpoint_path(run_dir), model={}, optimizer={}, counters={}, config={})
    assert find_checkpoint(run_dir) == run_dir / "checkpoint.pt"
    assert find_checkpoint(str(run_dir / "checkpoint.pt")) == run_dir / "checkpoint.pt"
