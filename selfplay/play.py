"""`selfplay play`: a person against a trained agent in the terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

SEATS = ("first", "second")


def board_text(game: Any) -> str:
    """The board with the move labels under it (Connect Four) or beside it (Tic-Tac-Toe)."""
    text = game.render(0)
    if game.name == "connect_four":
        return text + "\n" + " ".join(game.notation_chars)
    labels = [" ".join(game.notation_chars[r * 3 : r * 3 + 3]) for r in range(3)]
    return "\n".join(
        f"{row}    {label}" for row, label in zip(text.splitlines(), labels, strict=True)
    )


def play_human(
    player: Any,
    seat: str,
    *,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """Play one game; returns the person's result (+1 win, 0 draw, -1 loss)."""
    if seat not in SEATS:
        raise ValueError(f"seat must be one of {', '.join(SEATS)}, got {seat!r}")
    game = player.game_class(1)
    human = SEATS.index(seat)
    stones = ("X", "O")
    how = (f"searches {player.simulations} simulations per move" if player.simulations
           else "plays its policy greedily, without search")  # fmt: skip
    write(f"You play {stones[human]} ({seat}); the agent {how}.")
    write(board_text(game))
    while not game.terminated[0]:
        if game.current_player()[0] == human:
            action = _ask_move(game, read, write)
        else:
            action = int(player.act(game)[0])
            write(f"agent plays {game.notation_chars[action]}")
        game.step(np.array([action]))
        write(board_text(game))
    winner = int(game.winner[0])
    if winner < 0:
        write("Draw.")
        return 0
    write("You win!" if winner == human else "The agent wins.")
    return 1 if winner == human else -1


def _ask_move(game: Any, read: Callable[[str], str], write: Callable[[str], None]) -> int:
    legal = game.legal_mask()[0]
    allowed = [game.notation_chars[a] for a in np.flatnonzero(legal)]
    while True:
        try:
            text = read(f"your move ({' '.join(allowed)}, q to quit): ").strip().lower()
        except EOFError:
            raise SystemExit("no more input: game abandoned") from None
        if text in ("q", "quit", "exit"):
            raise SystemExit("game abandoned")
        if len(text) != 1 or text not in game.notation_chars:
            write(f"'{text}' is not a move: type one of {' '.join(allowed)}")
            continue
        action = game.notation_chars.index(text)
        if not legal[action]:
            write(f"'{text}' is not legal here (full or taken): type one of {' '.join(allowed)}")
            continue
        return action


def run(args: Any) -> int:
    from selfplay.api import load_player

    player = load_player(args.checkpoint, simulations=args.simulations)
    seat = args.seat
    if seat is None:
        seat = "first"
        if sys.stdin.isatty():
            answer = input("play first or second? [first]: ").strip().lower() or "first"
            seat = answer
    play_human(player, seat)
    return 0
