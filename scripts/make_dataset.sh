#!/usr/bin/env bash
# The project's training/test data set in one command: networks across ν, then compression MD.
#   bash scripts/make_dataset.sh [OUT_DIR] [COUNT] [WORKERS]
# Resumable: re-running skips networks and trajectories already made.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-data/dataset}
COUNT=${2:-200}
WORKERS=${3:-2}
LMP_GNN=${LMP_GNN:-.venv/bin/lmp-gnn}
$LMP_GNN networks -o "$OUT/networks" --count "$COUNT" --nodes 300 --nu-min -0.6 --nu-max 0.4 \
  --seed 1000 --workers "$WORKERS"
# viscous: deterministic snapshots (ν equals Langevin T = 1e-10 to 1e-4; docs/protocol.md)
$LMP_GNN simulate "$OUT/networks" -o "$OUT/trajectories" --workers "$WORKERS" --seed 1000 --thermostat viscous
