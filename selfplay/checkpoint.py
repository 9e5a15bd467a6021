"""Checkpoints: atomic to write, safe to read.

A checkpoint is one file, ``runs/<run>/checkpoint.pt``, written by `torch.save` as a plain dict::

    {"format": "selfplay-checkpoint", "version": 1,
     "model": {name: Tensor}, "optimizer": <torch optimizer state dict>,
     "replay": {name: Tensor} | None,                       # numpy arrays, stored as tensors
     "counters": "<json>", "config": "<json>", "ratings": "<json>" | None,
     "league": "<json>" | None, "extra": "<json>" | None}

Everything that is not a tensor is a JSON string or a primitive, so `load_checkpoint` reads the
file with ``torch.load(weights_only=True)``: a checkpoint from an untrusted source can at worst be
refused, never run code on load.

Writes are atomic: the data goes to a temporary file in the same directory, is flushed and
fsynced, then renamed over the target with `os.replace`. A run killed in the middle of a save
leaves the previous checkpoint intact (and, at worst, a stray ``.checkpoint.pt.*.tmp`` that the
next successful save removes).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "VERSION",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_path",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

FORMAT = "selfplay-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"

_JSON_FIELDS = ("counters", "config", "ratings", "league", "extra")
# torch.save writes a zip archive; anything else was not written by save_checkpoint.
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message is one line naming the file and why."""


@dataclass
class Checkpoint:
    """The contents of a checkpoint file, as `save_checkpoint` was given them."""

    model: dict[str, torch.Tensor]
    """the network's state dict (on the CPU)"""
    optimizer: dict[str, Any]
    """the optimizer's state dict (tensors on the CPU)"""
    counters: dict[str, int | float]
    """progress counters: learner steps, games, positions, elapsed seconds, ..."""
    config: dict[str, Any]
    """the run's configuration (`selfplay.config.to_dict`)"""
    ratings: dict[str, Any] | None = None
    """match results / ratings state, JSON-able"""
    league: dict[str, Any] | None = None
    """league state (snapshots, payoff table), JSON-able"""
    replay: dict[str, np.ndarray] | None = None
    """the replay buffer's recent window, as numpy arrays"""
    extra: dict[str, Any] | None = None
    """anything else JSON-able (e.g. the W&B run id)"""


def checkpoint_path(run_dir: str | os.PathLike[str]) -> Path:
    """Where a run keeps its checkpoint: ``run_dir / "checkpoint.pt"``."""
    return Path(run_dir) / CHECKPOINT_NAME


def find_checkpoint(path_or_run_dir: str | os.PathLike[str]) -> Path:
    """The checkpoint file named by ``path_or_run_dir``: a run directory or the file itself."""
    path = Path(path_or_run_dir)
    if path.is_dir():
        candidate = checkpoint_path(path)
        if not candidate.is_file():
            raise CheckpointError(f"no checkpoint in run directory {path} (no {CHECKPOINT_NAME})")
        return candidate
    if path.is_file():
        return path
    raise CheckpointError(f"no checkpoint or run directory at {path}")


def _json_default(value: Any) -> Any:
    # numpy / torch scalars sneak into counters and ratings (np.int64 game counts, loss.item()
    # forgotten); store them as the Python numbers they stand for.
    if isinstance(value, (np.generic, torch.Tensor)) and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def _to_json(name: str, value: Mapping[str, Any] | None, required: bool) -> str | None:
    if value is None:
        if required:
            raise TypeError(f"checkpoint field {name} must be a dict, got None")
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"checkpoint field {name} must be a dict, got {type(value).__name__}")
    try:
        return json.dumps(dict(value), default=_json_default)
    except (TypeError, ValueError) as error:
        raise TypeError(f"checkpoint field {name} must be JSON-able: {error}") from None


def _check_tensors(name: str, tensors: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if not isinstance(tensors, Mapping):
        raise TypeError(f"checkpoint field {name} must be a dict of tensors")
    for key, value in tensors.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise TypeError(
                f"checkpoint field {name} must map names to tensors, got {key!r}: "
                f"{type(value).__name__}"
            )
    return dict(tensors)


def _replay_to_tensors(replay: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    tensors = {}
    for key, array in replay.items():
        array = np.asarray(array)
        try:
            # A copy: the caller's buffer keeps changing while (or after) we save.
            tensors[str(key)] = torch.from_numpy(np.ascontiguousarray(array).copy())
        except TypeError:
            raise TypeError(
                f"replay array {key!r} has dtype {array.dtype}, which torch cannot store"
            ) from None
    return tensors


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: Mapping[str, torch.Tensor],
    optimizer: Mapping[str, Any],
    counters: Mapping[str, int | float],
    config: Mapping[str, Any],
    ratings: Mapping[str, Any] | None = None,
    league: Mapping[str, Any] | None = None,
    replay: Mapping[str, np.ndarray] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint to ``path`` atomically and return the path.

    Bad contents (a non-tensor in ``model``, a non-JSON-able ``counters`` ...) raise `TypeError`
    before anything is written. The parent directory is created if needed.
    """
    path = Path(path)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "model": _check_tensors("model", model),
        "optimizer": dict(optimizer),
        "replay": None if replay is None else _replay_to_tensors(replay),
    }
    fields = {"counters": counters, "config": config, "ratings": ratings}
    fields |= {"league": league, "extra": extra}
    for name, value in fields.items():
        payload[name] = _to_json(name, value, required=name in ("counters", "config"))

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(payload, file)
            file.flush()
            # The data must be on disk before the rename makes it the checkpoint: otherwise a
            # power cut can leave a renamed but empty file.
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave our temp file behind when we can remove it.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_directory(path.parent)
    # Temp files of saves that were killed (SIGKILL, power cut) before they could clean up.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    return path


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on Windows.
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _weights_only_reason(error: BaseException) -> str:
    """The one informative line of torch's long weights-only refusal message."""
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = text.split(marker, 1)[1].strip().splitlines()[0]
        return reason.split(". Please", 1)[0].strip()
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (tensors on the CPU, replay as numpy).

    Raises `CheckpointError` (a `ValueError`) with a one-line message for a missing file, a
    truncated or corrupt file, a file that is not a selfplay checkpoint (including any file
    holding objects other than tensors and primitives: those are never unpickled), or a
    checkpoint written by a newer version of this code.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    with open(path, "rb") as file:
        head = file.read(len(_ZIP_MAGIC))
    if len(head) < len(_ZIP_MAGIC):
        raise CheckpointError(f"{path} is truncated or corrupt: only {len(head)} bytes")
    if head != _ZIP_MAGIC:
        # A raw pickle, an old-style torch file, or anything else: not ours, and not worth the
        # risk of feeding to an unpickler at all.
        raise CheckpointError(f"{path} is not a selfplay checkpoint (not a torch zip archive)")
    try:
        data = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        reason = _weights_only_reason(error)
        if "Unsupported global" in reason:
            raise CheckpointError(
                f"{path} is not a selfplay checkpoint (holds objects that safe loading "
                f"refuses: {reason})"
            ) from None
        raise CheckpointError(f"{path} is truncated or corrupt: {reason}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise CheckpointError(f"{path} is truncated or corrupt: {first_line}") from None

    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a selfplay checkpoint (no {FORMAT!r} marker)")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path} is truncated or corrupt: bad version {version!r}")
    if version > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer selfplay (checkpoint version {version}; "
            f"this code reads up to {VERSION})"
        )
    try:
        return _unpack(data)
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is truncated or corrupt: {error}") from None


def _unpack(data: dict[str, Any]) -> Checkpoint:
    """A `Checkpoint` from the loaded dict, or an error naming the malformed part."""
    model = data["model"]
    if not isinstance(model, dict) or not all(
        isinstance(value, torch.Tensor) for value in model.values()
    ):
        raise ValueError("model is not a dict of tensors")
    optimizer = data["optimizer"]
    if not isinstance(optimizer, dict):
        raise ValueError("optimizer is not a dict")
    replay = data.get("replay")
    if replay is not None:
        if not isinstance(replay, dict) or not all(
            isinstance(value, torch.Tensor) for value in replay.values()
        ):
            raise ValueError("replay is not a dict of tensors")
        replay = {key: value.numpy() for key, value in replay.items()}
    decoded: dict[str, Any] = {}
    for name in _JSON_FIELDS:
        text = data.get(name)
        if text is None and name not in ("counters", "config"):
            decoded[name] = None
            continue
        if not isinstance(text, str):
            raise ValueError(f"{name} is not a JSON string")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{name} is not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{name} is not a JSON object")
        decoded[name] = value
    return Checkpoint(model=model, optimizer=optimizer, replay=replay, **decoded)
