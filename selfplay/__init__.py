"""selfplay: the platform (config, engine, league, ratings, tracking, CLI).

``selfplay.load_player(checkpoint, simulations=...)`` returns a trained agent; see
``selfplay.api``. It is imported on first use, so ``import selfplay`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("load_player", "Analysis", "TrainedPlayer"):
        from selfplay import api

        return getattr(api, name)
    raise AttributeError(f"module 'selfplay' has no attribute {name!r}")
