#!/usr/bin/env bash
# Rebuild the shipped KWS bundles (models/kws12-dscnn-kd, -kd-int8, -stream-kd, -stream-kd-int8, -stream64-kd-int8) from the voice bank.
# About an hour on 2 cores (Kokoro synthesis is most of it; a rerun reuses the synthesis cache and every model).
#   bash tools/reship_kws.sh            # then copy runs/vb/bundles/* into models/ and update the model cards
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/vb}
EDGEKD=${EDGEKD:-.venv/bin/edgekd}
export EDGEKD_CACHE_DIR=${EDGEKD_CACHE_DIR:-$PWD/.edgekd-cache}
REALDEV=${REALDEV:-../shared/realdev/gsc_v2_test_dev}
real=(); [ -d "$REALDEV" ] && real=(--realdev "$REALDEV")

# 1. data: every installed engine of the voice bank, default weights (kokoro 3, piper 1, espeak 3, flite 1, festival 1)
[ -f "$OUT/data/synth_meta.json" ] || "$EDGEKD" data synth-kws "$OUT/data" --per-word 1000 --unknown 3000 --silence 1000 --workers 2
# 2. teacher, distilled + plain DS-CNN, QAT int8, PTQ, TFLite, tuning, evaluation (rooms on), real speech when present
"$EDGEKD" demo --out "$OUT" "${real[@]}"
# 3. the streaming-state student, distilled from the same teacher on the same cached features
[ -f "$OUT/dscnn-stream-kd.pt" ] || "$EDGEKD" train student --data "$OUT/data" --teacher "$OUT/teacher.pt" --arch dscnn-stream \
  --epochs 6 --cache-dir "$OUT/cache" --out "$OUT/dscnn-stream-kd.pt"
B="$OUT/bundles/kws12-dscnn-stream-kd"
rm -rf "$B"
"$EDGEKD" export onnx "$OUT/dscnn-stream-kd.pt" --out "$B" --golden-wav "$OUT/keywords.wav" --stride-ms 80
"$EDGEKD" tune "$B" --data "$OUT/data" --write
"$EDGEKD" export tflite "$OUT/dscnn-stream-kd.pt" --bundle "$B"
# 3b. its QAT int8 version: int8 whole window and int8 streaming-state graph, int8 TFLite
[ -f "$OUT/dscnn-stream-kd-qat.pt" ] || "$EDGEKD" train qat "$OUT/dscnn-stream-kd.pt" --data "$OUT/data" --teacher "$OUT/teacher.pt" \
  --cache-dir "$OUT/cache" --epochs 2 --out "$OUT/dscnn-stream-kd-qat.pt"
B8="$OUT/bundles/kws12-dscnn-stream-kd-int8"
rm -rf "$B8"
"$EDGEKD" export onnx "$OUT/dscnn-stream-kd-qat.pt" --int8 --out "$B8" --golden-wav "$OUT/keywords.wav" --stride-ms 80
"$EDGEKD" tune "$B8" --data "$OUT/data" --write
"$EDGEKD" export tflite "$OUT/dscnn-stream-kd-qat.pt" --bundle "$B8" --int8 --calib "$OUT/data"
# 3c. the default: the streaming DS-CNN at width 64, distilled, QAT int8 (int8 streaming graph), int8 TFLite
[ -f "$OUT/dscnn-stream64-kd.pt" ] || "$EDGEKD" train student --data "$OUT/data" --teacher "$OUT/teacher.pt" --arch dscnn-stream-64 \
  --epochs 5 --cache-dir "$OUT/cache" --out "$OUT/dscnn-stream64-kd.pt"
[ -f "$OUT/dscnn-stream64-kd-qat.pt" ] || "$EDGEKD" train qat "$OUT/dscnn-stream64-kd.pt" --data "$OUT/data" --teacher "$OUT/teacher.pt" \
  --cache-dir "$OUT/cache" --epochs 2 --out "$OUT/dscnn-stream64-kd-qat.pt"
B64="$OUT/bundles/kws12-dscnn-stream64-kd-int8"
rm -rf "$B64"
"$EDGEKD" export onnx "$OUT/dscnn-stream64-kd-qat.pt" --int8 --out "$B64" --golden-wav "$OUT/keywords.wav" --stride-ms 80
"$EDGEKD" tune "$B64" --data "$OUT/data" --write
"$EDGEKD" export tflite "$OUT/dscnn-stream64-kd-qat.pt" --bundle "$B64" --int8 --calib "$OUT/data"
# 4. real speech (dev speakers) for all of them
.venv/bin/python bench/realdev.py --no-models --bundle "$OUT/bundles/kws12-dscnn-kd" --bundle "$OUT/bundles/kws12-dscnn-kd-int8" \
  --bundle "$B" --bundle "$B8" --bundle "$B64" --json "$OUT/realdev.json" || true
