#!/usr/bin/env bash
# Train the shipped CPU weights (issue 5): one small preset per call, 1 torch thread each, so the
# two presets can train side by side on a 2-core machine. Resumable: run the same command again
# (it adds --resume when the run folder has a checkpoint).
#   bash scripts/train_shipped.sh lgtd_small 8000
#   bash scripts/train_shipped.sh msdtgp_small 6000
# Data: the real Jilin-1 training clips plus synthetic drifting clips made from single
# high-resolution images (UC Merced 0.3 m -> ~1 m; SpaceNet pan 0.5 m -> 1 m, MS 1 m). No eval/
# folder is ever used for training; jilin1/eval and taipei/eval are validation only.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model name}
ITERS=${2:?total iterations}
D=${SATVSR_DATA:-../shared/data}
OUT=${OUT:-runs/$MODEL}
RESUME=()
if compgen -G "$OUT/checkpoints/*.pt" >/dev/null || compgen -G "$OUT/*.pt" >/dev/null; then
  RESUME=(--resume)
fi
exec .venv/bin/satvsr train --model "$MODEL" --recipe cpu --lr 2e-3 --iters "$ITERS" --out "$OUT" \
  --data "$D/satvideo/jilin1/train,weight=0.3" \
  --data "$D/images/ucmerced,gsd=3,weight=0.3" \
  --data "$D/geotiff/spacenet_solaris/pan*.tif,gsd=2,weight=0.15" \
  --data "$D/geotiff/spacenet_solaris/sample_geotiff.tif,gsd=2,weight=0.1" \
  --data "$D/geotiff/spacenet_solaris/ms*.tif,gsd=1,bands=3:2:1,weight=0.15" \
  --val-data "$D/satvideo/taipei/eval" --val-data "$D/satvideo/jilin1/eval" \
  --val-every 2000 --val-max-frames 6 --ckpt-every 500 --threads 1 "${RESUME[@]}"
