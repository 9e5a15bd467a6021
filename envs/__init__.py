"""Game rules: batched cores, their PettingZoo views and an adapter for external PettingZoo envs.

``envs.make("connect_four", num_envs=1024, rows=6, cols=7, win_length=4, auto_reset=True)``.
"""

from __future__ import annotations

from typing import Any

from envs.adapter import PREFIX as PETTINGZOO_PREFIX
from envs.adapter import PettingZooGame, load_env_fn
from envs.base import BatchedGame
from envs.connect_four import ConnectFour
from envs.tictactoe import TicTacToe

GAMES: dict[str, type[BatchedGame]] = {"connect_four": ConnectFour, "tictactoe": TicTacToe}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "connect_four": ("rows", "cols", "win_length", "auto_reset"),
    "tictactoe": ("auto_reset",),
}


def game_class(name: str) -> type[BatchedGame]:
    """The core class registered under ``name``."""
    if name not in GAMES:
        raise ValueError(
            f"unknown game {name!r}: choose one of {', '.join(sorted(GAMES))} or "
            f"{PETTINGZOO_PREFIX}<env> (e.g. {PETTINGZOO_PREFIX}connect_four_v3)"
        )
    return GAMES[name]


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse options the game does not have, naming the ones it does."""
    game_class(name)
    unknown = sorted(set(options) - set(_OPTIONS[name]))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} for {name}: allowed are "
            f"{', '.join(_OPTIONS[name]) or 'none'}"
        )


def make(name: str, num_envs: int = 1, **options: Any) -> BatchedGame:
    """A batched core of ``num_envs`` games of ``name`` (see ``GAMES``), or, for
    ``pettingzoo:<env>``, an adapter over that external PettingZoo env (option: ``seed``)."""
    if name.startswith(PETTINGZOO_PREFIX):
        unknown = sorted(set(options) - {"seed"})
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(unknown)} for {name}: allowed is seed")
        env_fn = load_env_fn(name[len(PETTINGZOO_PREFIX) :])
        return PettingZooGame(env_fn, num_envs, **options)  # type: ignore[return-value]
    check_options(name, options)
    return game_class(name)(num_envs, **options)


__all__ = [
    "GAMES",
    "BatchedGame",
    "ConnectFour",
    "PettingZooGame",
    "TicTacToe",
    "check_options",
    "game_class",
    "make",
]

# the PettingZoo faces come last: they build their games through ``make`` above
from envs.pettingzoo_views import GameAECEnv, GameParallelEnv, aec_env, parallel_env  # noqa: E402

__all__ += ["GameAECEnv", "GameParallelEnv", "aec_env", "parallel_env"]
