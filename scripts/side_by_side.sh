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
# each engine with its own preset (AlphaZero: connect_four, the 64x4 convnet with search; PPO:
# connect_four_ppo, the symmetric 3x512 MLP with threat and drop planes and line filters), with and
# without the league.
# --play-simulations 32: the AlphaZero agents play the tournament at their self-play budget
# (PPO policies play greedily whatever it says)
common=(--minutes "$minutes" --runs-dir "$out" --eval-games 10 --eval-opponents random)
az=(--preset connect_four --play-simulations 32 --eval-every-minutes 1)
ppo=(--preset connect_four_ppo)
# AlphaZero: snapshots enter the league at each evaluation, every minute here
"$selfplay" train "${common[@]}" "${az[@]}" --run-name az
"$selfplay" train "${common[@]}" "${az[@]}" --run-name az-league --league-mix "$league"
"$selfplay" train "${common[@]}" "${ppo[@]}" --run-name ppo --league-mix latest=1.0
"$selfplay" train "${common[@]}" "${ppo[@]}" --run-name ppo-league --league-mix "$league"
"$selfplay" eval "$out/az" "$out/az-league" "$out/ppo" "$out/ppo-league" \
    --baselines random,alphabeta:2,mcts:200 --games "$games" --out "$out/tournament" --wandb offline
