"""Baseline players behind one protocol: ``name`` and ``act(game) -> int64 (N,)``.

The protocol (details in ``agents.players.base``): ``act`` gets a batched core of N unfinished
games and returns one legal action per game, never mutates the core, and is deterministic given
the player's seed (each player owns one ``np.random.Generator``).

- ``RandomPlayer(seed)``: uniform over the legal moves, any game;
- ``PerfectTicTacToePlayer(seed)`` ("solver"): exact minimax by table lookup, Tic-Tac-Toe only;
- ``AlphaBetaPlayer(depth, seed)``: negamax with alpha-beta on bitboards, Connect Four only;
- ``RolloutMCTSPlayer(num_simulations, seed, c_uct)``: batched UCT with random rollouts, any game;
- ``make_player(spec, game, seed)``: one of the above from a spec such as ``"alphabeta:4"``;
- ``TacticsRecorder(player)``: plays as ``player`` and counts its Connect Four tactics (wins
  in one taken, forced blocks made, gifts) in ``.tactics``.
"""

from agents.players.alphabeta import AlphaBetaPlayer
from agents.players.base import GameBatch, Player, RandomPlayer
from agents.players.factory import PLAYER_SPECS, make_player
from agents.players.rollout_mcts import RolloutMCTSPlayer
from agents.players.tactics import Tactics, TacticsRecorder
from agents.players.tictactoe_solver import PerfectTicTacToePlayer

__all__ = [
    "PLAYER_SPECS",
    "AlphaBetaPlayer",
    "GameBatch",
    "PerfectTicTacToePlayer",
    "Player",
    "RandomPlayer",
    "RolloutMCTSPlayer",
    "Tactics",
    "TacticsRecorder",
    "make_player",
]
