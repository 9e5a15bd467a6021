"""The replay buffer: a ring of recent self-play positions, sampled with board symmetries.

Positions are stored as boolean planes (the mover's stones, the opponent's) with the legal mask,
the search's policy target and the game's final result from the mover's view. Networks that
read tokens get them derived from the planes at sampling time, so one buffer serves both.
"""

from __future__ import annotations

import numpy as np

FIELDS = ("planes", "legal", "policy", "value")


class ReplayBuffer:
    """A fixed-capacity ring of training positions (numpy, in the learner's process)."""

    def __init__(
        self,
        capacity: int,
        planes_shape: tuple[int, ...],
        num_actions: int,
        symmetries: list[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"replay capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.planes = np.zeros((capacity, *planes_shape), bool)  # (cap, 2, rows, cols)
        self.legal = np.zeros((capacity, num_actions), bool)  # (cap, A)
        self.policy = np.zeros((capacity, num_actions), np.float32)  # (cap, A)
        self.value = np.zeros(capacity, np.float32)  # (cap,)
        self.size = 0
        self.cursor = 0
        symmetries = symmetries or []
        self._cell_perms = np.stack([c for c, _ in symmetries]) if symmetries else None
        self._action_perms = np.stack([a for _, a in symmetries]) if symmetries else None

    def __len__(self) -> int:
        return self.size

    def add(
        self, planes: np.ndarray, legal: np.ndarray, policy: np.ndarray, value: np.ndarray
    ) -> None:
        n = len(value)
        if not (len(planes) == len(legal) == len(policy) == n):
            raise ValueError(
                f"replay batch fields differ in length: planes {len(planes)}, legal {len(legal)}, "
                f"policy {len(policy)}, value {n}"
            )
        if n > self.capacity:  # only the newest fit
            planes, legal, policy, value = (
                planes[-self.capacity :],
                legal[-self.capacity :],
                policy[-self.capacity :],
                value[-self.capacity :],
            )
            n = self.capacity
        slots = (self.cursor + np.arange(n)) % self.capacity
        self.planes[slots] = planes
        self.legal[slots] = legal
        self.policy[slots] = policy
        self.value[slots] = value
        self.cursor = int((self.cursor + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(
        self, batch_size: int, rng: np.random.Generator, *, augment: bool = True
    ) -> dict[str, np.ndarray]:
        """A uniform batch; with ``augment`` each position gets a random board symmetry."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        index = rng.integers(0, self.size, batch_size)
        planes = self.planes[index]  # (B, C, rows, cols)
        legal = self.legal[index]  # (B, A)
        policy = self.policy[index]
        if augment and self._cell_perms is not None and len(self._cell_perms) > 1:
            which = rng.integers(0, len(self._cell_perms), batch_size)  # (B,)
            B, C = planes.shape[:2]
            flat = planes.reshape(B, C, -1)  # (B, C, cells)
            cells = self._cell_perms[which][:, None, :]  # (B, 1, cells)
            planes = np.take_along_axis(flat, np.broadcast_to(cells, flat.shape), 2).reshape(
                planes.shape
            )
            actions = self._action_perms[which]  # (B, A)
            legal = np.take_along_axis(legal, actions, 1)
            policy = np.take_along_axis(policy, actions, 1)
        return {"planes": planes, "legal": legal, "policy": policy, "value": self.value[index]}

    def recent(self, count: int) -> dict[str, np.ndarray]:
        """The newest ``count`` positions, oldest first (what a checkpoint keeps)."""
        count = min(count, self.size)
        slots = (self.cursor - count + np.arange(count)) % self.capacity
        return {name: getattr(self, name)[slots] for name in FIELDS}

    def load(self, data: dict[str, np.ndarray]) -> None:
        """Add positions saved by ``recent`` (a resumed run starts from a full window)."""
        self.add(*(np.asarray(data[name]) for name in FIELDS))


def planes_to_tokens(planes: np.ndarray) -> np.ndarray:
    """(B, 2, rows, cols) mover/opponent planes -> int64 (B, rows*cols) tokens 0/1/2."""
    tokens = planes[:, 0].astype(np.int64) + 2 * planes[:, 1].astype(np.int64)
    return tokens.reshape(len(planes), -1)
