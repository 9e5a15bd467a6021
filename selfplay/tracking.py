"""Run tracking: Weights & Biases, ``metrics.jsonl`` and a progress bar.

Every metric goes to two places: W&B (``online``, ``offline`` by default, or ``disabled``) and
``runs/<run>/metrics.jsonl``, one JSON object per line, which needs no account and no network and
is what tests and scripts read::

    with Tracker(run_dir, to_dict(config), mode="offline", run_name="c4-demo") as tracker:
        tracker.log({"learner/loss": 1.23, "perf/positions_per_s": 5400.0}, step=100)
        ...
        tracker.log_summary({"eval/elo": 812.0})

Metric names carry a prefix: ``selfplay/``, ``learner/``, ``eval/``, ``perf/``.

`Progress` shows a run's time budget as a tqdm bar with the key figures beside it, or, when the
output is not a terminal (CI, log files), prints one compact line every ``every`` seconds.

wandb is imported inside `Tracker` only (and not at all in ``disabled`` mode): it is slow to
import and only ``selfplay/`` may depend on it.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import string
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["METRICS_FILE", "SUMMARY_FILE", "WANDB_MODES", "Progress", "Tracker", "new_run_id"]

WANDB_MODES = ("online", "offline", "disabled")
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"

# W&B run ids: 8 characters of [a-z0-9], like the ones wandb generates itself.
_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_run_id() -> str:
    """A fresh run id in W&B's style (also used, and stored in checkpoints, when W&B is off)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def _json_default(value: Any) -> Any:
    # numpy and torch scalars (np.float32 losses, tensor.mean()) are common in metric dicts.
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")


def write_json_atomic(path: str | os.PathLike[str], data: Any, *, default: Any = None) -> Path:
    """Write ``data`` as indented JSON through a temp file and a rename: a crash never leaves
    half a file. ``default`` converts what JSON cannot hold (numpy/torch scalars by default)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    text = json.dumps(data, default=default or _json_default, indent=2) + "\n"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


class Tracker:
    """A run's metrics sink: W&B plus ``run_dir/metrics.jsonl`` (appended, so resumes add on).

    Steps must not decrease: W&B drops (with a warning) any row whose step is lower than the last
    one it saw, including across a resume with the same run id. So `log` refuses a decreasing
    step, and a resumed run must continue its step counter from the checkpoint, not from zero.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike[str],
        config: Mapping[str, Any],
        *,
        mode: str = "offline",
        project: str = "selfplay",
        run_name: str,
        resume_id: str | None = None,
    ) -> None:
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
        self.run_dir = Path(run_dir)
        self.mode = mode
        self.run_name = run_name
        self._run_id = resume_id or new_run_id()
        self._last_step: int | None = None
        self._lock = threading.Lock()  # the learner and the evaluator may log from two threads
        self._finished = False
        self._summary: dict[str, Any] = {}
        self.run_dir.mkdir(parents=True, exist_ok=True)

        self._wandb_run: Any = None
        if mode != "disabled":
            import wandb

            init_args: dict[str, Any] = {
                "project": project,
                "name": run_name,
                "dir": str(self.run_dir),
                "mode": mode,
                "config": dict(config),
                "id": self._run_id,
            }
            if resume_id:
                # "allow": continue the run with this id if W&B knows it, else start it fresh.
                init_args["resume"] = "allow"
            try:
                self._wandb_run = wandb.init(**init_args)
            except Exception as error:
                first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                raise RuntimeError(
                    f"wandb.init failed in {mode} mode: {first_line} "
                    "(use --wandb offline to track without a W&B account)"
                ) from error
        self._metrics = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")

    @property
    def run_id(self) -> str:
        """The W&B run id; store it in checkpoints and pass it back as ``resume_id``."""
        return self._run_id

    @property
    def metrics_path(self) -> Path:
        """The ``metrics.jsonl`` file this tracker appends to."""
        return self.run_dir / METRICS_FILE

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record ``metrics`` at ``step`` (a non-decreasing int, e.g. learner steps)."""
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        reserved = {"step", "time"} & set(metrics)
        if reserved:
            raise ValueError(f"metric names {sorted(reserved)} are reserved in {METRICS_FILE}")
        with self._lock:
            if self._finished:
                raise RuntimeError("Tracker.log called after finish()")
            if self._last_step is not None and step < self._last_step:
                raise ValueError(
                    f"step must not decrease (W&B drops such rows): got {step} after "
                    f"{self._last_step}"
                )
            self._last_step = step
            record = {"step": step, "time": time.time(), **metrics}
            self._metrics.write(json.dumps(record, default=_json_default) + "\n")
            # Flushed per line: a killed run keeps everything it logged, and `tail -f` works.
            self._metrics.flush()
            if self._wandb_run is not None:
                self._wandb_run.log(dict(metrics), step=step)

    def log_media(self, media: Mapping[str, Any], step: int) -> None:
        """W&B objects (``wandb.Image``, ``wandb.Table``) at ``step``, to this tracker's run
        only: metrics.jsonl holds JSON numbers, so media skip it. Nothing when W&B is off."""
        with self._lock:
            if self._finished:
                raise RuntimeError("Tracker.log_media called after finish()")
            if self._wandb_run is not None:
                self._wandb_run.log(dict(media), step=step)

    @property
    def wandb_enabled(self) -> bool:
        """Whether this tracker writes to a W&B run (mode online or offline)."""
        return self._wandb_run is not None

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """Set final / best figures (W&B run summary, and ``run_dir/summary.json``)."""
        with self._lock:
            self._summary.update(summary)
            if self._wandb_run is not None:
                self._wandb_run.summary.update(dict(summary))
            write_json_atomic(self.run_dir / SUMMARY_FILE, self._summary)

    def finish(self, exit_code: int = 0) -> None:
        """Close ``metrics.jsonl`` and finish the W&B run (``exit_code`` != 0 marks it failed).

        Safe to call more than once; later calls do nothing.
        """
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._metrics.close()
            if self._wandb_run is not None:
                run, self._wandb_run = self._wandb_run, None
                run.finish(exit_code=exit_code)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def _format_number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:.0f}"
    return f"{value:.4g}"


def _format_clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class Progress:
    """Progress over a run's time budget, with key figures (step, games/s, loss, elo ...).

    On a terminal: a tqdm bar. Otherwise (or with ``enabled=False``): one compact line every
    ``every`` seconds of run time, so CI logs get a heartbeat without a flood; ``every <= 0``
    prints nothing at all.
    """

    def __init__(
        self,
        total_seconds: float,
        *,
        enabled: bool | None = None,
        every: float = 30.0,
        file: TextIO | None = None,
        desc: str = "train",
    ) -> None:
        if not total_seconds > 0:
            raise ValueError(f"total_seconds must be > 0, got {total_seconds!r}")
        self.total_seconds = float(total_seconds)
        self.every = every
        self.desc = desc
        self._file = file if file is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self._file, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self._next_line = every
        self._pending: str | None = None  # the last status not yet printed (line mode)
        self._closed = False
        self._bar: tqdm | None = None
        if enabled:
            self._bar = tqdm(
                total=self.total_seconds,
                desc=desc,
                file=self._file,
                bar_format="{desc} {percentage:3.0f}%|{bar:20}| {postfix}",
                dynamic_ncols=True,
                leave=True,
            )

    def status(self, elapsed_seconds: float, figures: Mapping[str, Any]) -> str:
        """``"03:10/30:00 step=120 games/s=35.2 loss=1.234"``: the text shown for an update."""
        parts = [f"{_format_clock(elapsed_seconds)}/{_format_clock(self.total_seconds)}"]
        parts += [f"{name}={_format_number(value)}" for name, value in figures.items()]
        return " ".join(parts)

    def update(self, elapsed_seconds: float, figures: Mapping[str, Any] | None = None) -> None:
        """Show the run at ``elapsed_seconds`` into its budget with ``figures`` beside it."""
        if self._closed:
            return
        text = self.status(elapsed_seconds, figures or {})
        if self._bar is not None:
            self._bar.n = min(max(float(elapsed_seconds), 0.0), self.total_seconds)
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.refresh()
            return
        if self.every <= 0:
            return
        self._pending = text
        if elapsed_seconds >= self._next_line:
            self._print_pending()
            # Next line on the next multiple of `every`, however late this update came.
            self._next_line = (math.floor(elapsed_seconds / self.every) + 1) * self.every

    def _print_pending(self) -> None:
        if self._pending is not None:
            print(f"{self.desc} {self._pending}", file=self._file, flush=True)
            self._pending = None

    def close(self) -> None:
        """Finish the bar (or print the last status line once). Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.every > 0:
            self._print_pending()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
