"""Network evaluation for search: a batch of game cores in, (logits, value) arrays out.

``NetworkEvaluator`` turns a core into the net's input (planes or tokens), runs the fastest
inference path for this machine, and optionally answers from an evaluation cache keyed by exact
position: the openings every self-play game shares, transpositions inside a search tree, and
the subtree of the move just played (which the previous search already evaluated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from agents.networks import (
    InferenceModel,
    PolicyValueNet,
    SymmetryIndex,
    inference_model,
    symmetric_forward,
)


def pick_device(name: str) -> torch.device:
    """The torch device a learner named ``name`` (auto, cpu, cuda, cuda:N) runs on: auto is
    cuda when torch sees a GPU, else cpu; a name torch cannot reach is refused in one line."""
    if not isinstance(name, str) or re.fullmatch(r"auto|cpu|cuda(:\d+)?", name) is None:
        raise ValueError(f"device must be one of auto, cpu, cuda (or cuda:N), got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device {name!r} was asked for but torch sees no CUDA GPU; use cpu or auto"
        )
    device = torch.device(name)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r} was asked for but torch sees {torch.cuda.device_count()} GPU(s) "
            f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})"
        )
    return device


class EvaluationCache:
    """position key -> (logits (A,), value); emptied whenever it outgrows ``capacity`` or the
    weights change (a cached evaluation of old weights is wrong, not just stale)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._table: dict[Any, tuple[np.ndarray, float]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._table)

    def clear(self) -> None:
        self._table.clear()

    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class NetworkEvaluator:
    """``evaluate(game) -> (logits (N, A) float32, -inf illegal; value (N,) float32)``."""

    def __init__(
        self,
        net: PolicyValueNet,
        *,
        device: str | torch.device = "cpu",
        cache_size: int = 0,
        backend: str = "auto",
        example_batch: int = 256,
        symmetries: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.net = net
        # board symmetries (cell_perm, action_perm) to average the net over (a game's
        # `symmetries()`); None or one: the net alone
        self.symmetries = list(symmetries) if symmetries is not None else []
        self._symmetry_index: SymmetryIndex | None = None  # the symmetries as index tensors
        self.device = torch.device(device)
        self.backend = backend
        self.example_batch = example_batch
        self.cache = EvaluationCache(cache_size) if cache_size else None
        self.evaluations = 0  # positions sent through the network
        self._model: InferenceModel | None = None

    def set_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load new weights; the inference path is rebuilt lazily and the cache emptied."""
        self.net.load_state_dict(state_dict)
        self._model = None
        if self.cache is not None:
            self.cache.clear()

    def _inference(self) -> InferenceModel:
        if self._model is None:
            shape = self.net.expected_input_shape()
            if self.net.input_kind == "tokens":
                example = torch.zeros((self.example_batch, *shape), dtype=torch.int64)
            else:
                example = torch.zeros((self.example_batch, *shape), dtype=torch.float32)
            self.net.eval()
            self._model = inference_model(self.net, example.to(self.device), backend=self.backend)
        return self._model

    def _run(self, game: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.net.input_kind == "tokens":
            x = torch.from_numpy(game.tokens())  # (N, T)
        else:
            x = torch.from_numpy(game.observation())  # (N, C, rows, cols)
        legal = torch.from_numpy(game.legal_mask())  # (N, A)
        if len(self.symmetries) > 1:
            return self._run_symmetric(x, legal)
        logits, value = self._inference()(x.to(self.device), legal.to(self.device))
        self.evaluations += len(x)
        # note: .cpu() is a sync point on the GPU; search needs the numbers now anyway
        return logits.float().cpu().numpy(), value.float().cpu().numpy()

    def _run_symmetric(self, x: torch.Tensor, legal: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        model = self._inference()
        if self._symmetry_index is None or self._symmetry_index.device != self.device:
            self._symmetry_index = SymmetryIndex(self.symmetries, self.device)
        logits, value = symmetric_forward(
            model, x.to(self.device), legal.to(self.device), self._symmetry_index
        )
        self.evaluations += len(self.symmetries) * len(x)
        return logits.float().cpu().numpy(), value.float().cpu().numpy()

    def evaluate(self, game: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is None:
            return self._run(game)
        cache = self.cache
        keys = game.position_keys()
        n = len(keys)
        logits = np.empty((n, game.num_actions), np.float32)  # (N, A)
        value = np.empty(n, np.float32)
        missing = []
        table = cache._table
        for i, key in enumerate(keys):
            found = table.get(key)
            if found is None:
                missing.append(i)
            else:
                logits[i], value[i] = found
        cache.hits += n - len(missing)
        cache.misses += len(missing)
        if missing:
            index = np.array(missing)
            new_logits, new_value = self._run(game.take(index))
            logits[index], value[index] = new_logits, new_value
            if len(table) + len(missing) > cache.capacity:
                table.clear()
            for j, i in enumerate(missing):
                table[keys[i]] = (new_logits[j], float(new_value[j]))
        return logits, value
