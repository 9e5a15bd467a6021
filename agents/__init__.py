"""Agents: policy-value networks (``agents.networks``), search and baseline players
(``agents.players``). Import the submodule you need: ``agents.networks`` pulls in torch, the
players do not."""
