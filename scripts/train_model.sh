#!/usr/bin/env bash
# The shipped model's recipe in one command (python/lmp_gnn/data/README.md):
#   bash scripts/train_model.sh [OUT_PREFIX]        # data: bash scripts/make_dataset.sh data/dataset2 200 2
# 1. one-step training (examples/train_paper.yaml: prior c = 1, push-forward batches), ~11 min on 2 cores;
# 2. fine-tuning with ever longer unrolled losses (train.unroll = 8, 32, 64; lmp_gnn.learning.train), each
#    stage starting from the last one's weights, ~30 min on 2 cores in all;
# 3. the 64-step loss taken after up to 256, then 384 of the model's own steps (train.unroll_lead:
#    states off the true path, as a long rollout reaches them): 1000 + 1000 + 1500 + 1500 steps,
#    ~16 + 16 + 25 + 25 min on one core;
# 4. the same with the homogeneous-strain part of the error weighted more (train.strain_weight: the
#    part Poisson's ratio is read from): 20× for 1000 steps, then 100× for 1500 steps, ~17 + 25 min
#    on one core;
# 5. export of the last stage to OUT_PREFIX_strain100/model.pt.
# Re-running resumes: a stage with a last.pt goes on from it (--resume; nothing to do if finished).
# TRAIN_ARGS adds options to every stage, e.g. the same recipe at width 64 (docs/model.md):
#   TRAIN_ARGS="--set model.hidden=64 --set model.latent=64" bash scripts/train_model.sh runs/w64
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/paper}
LMP_GNN=${LMP_GNN:-.venv/bin/lmp-gnn}
CONFIG=examples/train_paper.yaml

stage() {   # stage OUT_DIR ARGS...: train into OUT_DIR, resuming from OUT_DIR/last.pt if there
  local dir=$1; shift
  local resume=()
  if [ -f "$dir/last.pt" ]; then resume=(--resume); fi
  # shellcheck disable=SC2086  # TRAIN_ARGS is a list of options
  $LMP_GNN train "$CONFIG" -o "$dir" --no-progress "$@" "${resume[@]}" ${TRAIN_ARGS:-}
}
unrolled() {   # unrolled FROM OUT_DIR K STEPS BATCH LR CLIP [LEAD [STRAIN_WEIGHT]]: fine-tune FROM with a K-step unrolled loss
  stage "$2" --init "$1/last.pt" --unroll "$3" --steps "$4" --batch-size "$5" --lr "$6" --lr-final 1e-5 \
    --set train.pushforward=0 --set "train.grad_clip=$7" --set "train.val_every=$4" --set "train.unroll_lead=${8:-0}" \
    --set "train.strain_weight=${9:-0}"
}

stage "$OUT"
unrolled "$OUT" "${OUT}_u8" 8 1000 4 1e-5 0
unrolled "${OUT}_u8" "${OUT}_u32" 32 2000 2 5e-5 0
unrolled "${OUT}_u32" "${OUT}_u64" 64 1000 1 2e-5 0
unrolled "${OUT}_u64" "${OUT}_lead256" 64 1000 1 2e-5 1.0 256
unrolled "${OUT}_lead256" "${OUT}_lead384" 64 1000 1 2e-5 1.0 384
unrolled "${OUT}_lead384" "${OUT}_lead384b" 64 1500 1 1e-5 1.0 384
unrolled "${OUT}_lead384b" "${OUT}_lead384c" 64 1500 1 1e-5 1.0 384
unrolled "${OUT}_lead384c" "${OUT}_strain20" 64 1000 1 1e-5 1.0 384 20
unrolled "${OUT}_strain20" "${OUT}_strain100" 64 1500 1 1e-5 1.0 384 100
$LMP_GNN export "${OUT}_strain100/last.pt" -o "${OUT}_strain100/model.pt"
