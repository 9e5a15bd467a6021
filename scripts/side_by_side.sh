#!/usr/bin/env bash
# AlphaZero engine vs RLlib PPO, each with and without the league, at equal wall time on this
# machine (one run at a time, so each has the whole machine), then one round-robin tournament
# with baselines. Usage: bash scripts/side_by_side.sh [MINUTES] [OUT_DIR] [GAMES_PER_PAIR]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
out=${2:-runs/side-by-side}
games=${3:-40}
selfplay=${SELFPLAY:-.venv/bin/selfplay}
export WANDB_SILENT=true
league="latest=0.8,past=0.2"
# --play-simulations 32: the AlphaZero agents play the tournament at their self-play budget
# (PPO policies play greedily whatever it says)
common=(--preset connect_four --minutes "$minutes" --runs-dir "$out" --eval-games 10
        --eval-opponents random --play-simulations 32)
# AlphaZero: snapshots enter the league at each evaluation, every minute here
"$selfplay" train "${common[@]}" --run-name az --eval-every-minutes 1
"$selfplay" train "${common[@]}" --run-name az-league --eval-every-minutes 1 --league-mix "$league"
"$selfplay" train "${common[@]}" --run-name ppo --algo ppo --lr 3e-4
"$selfplay" train "${common[@]}" --run-name ppo-league --algo ppo --lr 3e-4 --league-mix "$league"
"$selfplay" eval "$out/az" "$out/az-league" "$out/ppo" "$out/ppo-league" \
    --baselines random,alphabeta:2,mcts:200 --games "$games" --out "$out/tournament" --wandb offline
