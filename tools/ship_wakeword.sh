#!/usr/bin/env bash
# Rebuild a shipped wake-word bundle (models/<label>-dscnn-stream-64-kd-int8) from text alone, measure it beside the
# bundle shipped now, and replace that one only when asked (--replace).
# About 60-90 min per phrase on 2 cores (2,000 clips a phrase, as `make wakeword-dev`; the student trainings are most of it).
#   bash tools/ship_wakeword.sh alexa                # stage runs/ww-alexa/ship/<name>, compare, leave models/ alone
#   bash tools/ship_wakeword.sh --replace alexa      # the same, then copy the staged bundle into models/
#   bash tools/ship_wakeword.sh computer --speech-windows 3000   # options after the phrase go to `edgekd train wakeword`
# Steps: the recipe (`edgekd train wakeword --phrase`, its own bundle with its verifier/ second stage, thresholds and
# model card), the int8 TFLite graphs
# (whole window and the streaming twin) from the recipe's int8 checkpoint, a staged copy with a golden clip, selftests,
# FRR of the staged and the shipped bundle on the same held-out synthesized material (edgekd eval-stream), and the side
# by side with openWakeWord's head for the same phrase when it has one (bench/wakeword_peer.py, run time only). With
# --replace the staged bundle goes into models/ and its peer result into bench/results/; without it both stay under
# runs/ww-<label>/ship/.
set -euo pipefail
cd "$(dirname "$0")/.."
replace=0
if [[ "${1:-}" == --replace ]]; then replace=1; shift; fi
phrase="${1:?usage: tools/ship_wakeword.sh [--replace] PHRASE [train-wakeword options]}"
shift
label="${phrase// /_}"
EDGEKD=${EDGEKD:-.venv/bin/edgekd}
PY=${PY:-.venv/bin/python}
export EDGEKD_CACHE_DIR=${EDGEKD_CACHE_DIR:-$PWD/.edgekd-cache}  # the voice bank's Kokoro model and synthesis cache
OUT=runs/ww-$label
# --gate-views 0: a shipped bundle keeps 1/10 of openWakeWord's CPU, and the field views' ceiling would put the gate
# under the budget's (1.6-2.6 times the verifier calls on the dev phrases, README); --verifier-lookback-ms 0 likewise
# (its second run at each opening's first call costs ~1.2 times the CPU, README); an option given after the phrase wins
"$EDGEKD" train wakeword --phrase "$phrase" --out "$OUT" --per-word 2000 --positives 100 --transfer-minutes 20 \
  --validation-minutes 20 --test-minutes 30 --mining-minutes 20 --target-fa-per-hour 0.5 --gate-views 0 \
  --verifier-lookback-ms 0 "$@"
"$EDGEKD" export tflite "$OUT/student-qat.pt" --bundle "$OUT/bundle" --int8 --calib "$OUT/data/clips"
name=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['name'])" "$OUT/bundle/manifest.json")
STAGE="$OUT/ship"
rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r "$OUT/bundle" "$STAGE/$name"
cp "$OUT/det.png" "$STAGE/$name/det.png"
# the golden clip: the recipe's is one test positive (at the recipe's strict threshold often not detected); a shipped
# bundle gets the first four held-out test positives it detects, back to back, so the golden stream checks something
$PY - "$STAGE/$name" "$OUT/data/eval/test/$label" "$label" <<'EOF'
import sys
from pathlib import Path
import numpy as np
from edgekd.export.bundle import apply_postprocess, finalize_manifest
from edgekd.runtime.detector import load_kws
from edgekd.runtime.manifest import ModelManifest
from edgekd.runtime.wav import load_audio, write_wav
b, pos, label = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
det = load_kws(b, backend="onnx")
picked = []
for wav in sorted(pos.glob("*.wav")):
    x = load_audio(wav, 16000)
    if any(d.label == label for d in det.create_stream().accept_waveform(x)):
        picked.append(x)
    if len(picked) == 4:
        break
if len(picked) < 3:
    raise SystemExit(f"only {len(picked)} test positives detected: no golden clip with three detections")
gap = np.zeros(8000, np.float32)
write_wav(b / "golden" / "clip.wav", np.concatenate([p for x in picked for p in (x, gap)]), 16000)
finalize_manifest(b, ModelManifest.load(b))  # the new clip and det.png listed with their sha256
apply_postprocess(b, {}, golden_clip="the first four held-out test positives (test voices of the voice bank) the bundle detects")
EOF
"$EDGEKD" selftest "$STAGE/$name" --backend onnx
"$EDGEKD" selftest "$STAGE/$name" --backend litert
# the staged and the shipped bundle on the same held-out material (this run's eval/test)
T="$OUT/data/eval/test"
for which in staged shipped; do
  b="$STAGE/$name"; [[ $which == shipped ]] && b="models/$name"
  [[ -f "$b/manifest.json" ]] || continue
  "$EDGEKD" eval-stream "$b" --positives "$T/$label" --annotations "$T/$label.tsv" --negatives "$T/negatives.wav" \
    --label "$label" --json "$STAGE/eval_$which.json" >/dev/null
done
$PY - "$STAGE" <<'EOF'
import json, sys
from pathlib import Path
from edgekd.eval.wakeword import FA_POINTS, frr_at
stage = Path(sys.argv[1])
print("FRR on this run's held-out synthesized test (eval/test) at " + " / ".join(f"{fa:g}" for fa in FA_POINTS) + " FA/h:")
for which in ("staged", "shipped"):
    f = stage / f"eval_{which}.json"
    if f.is_file():
        rows = json.loads(f.read_text())["sweep"]
        print(f"  {which:8s} " + " / ".join("-" if (v := frr_at(rows, fa)) is None else f"{100 * v:.0f}%" for fa in FA_POINTS))
EOF
peer=()  # openWakeWord's head for the phrase; without one, the CPU side alone against Model.predict with its alexa head
ls .venv/lib/python*/site-packages/openwakeword/resources/models/"${label}"_v*.onnx >/dev/null 2>&1 || peer=(--cpu-only --oww-head alexa)
$PY bench/wakeword_peer.py --bundle "$STAGE/$name" --wakeword "$phrase" --material "$T" "${peer[@]}" \
  --json "$STAGE/peer_wakeword_$label.json"
if (( replace )); then
  rm -rf "models/$name"
  cp -r "$STAGE/$name" "models/$name"
  cp "$STAGE/peer_wakeword_$label.json" "bench/results/peer_wakeword_$label.json"
  echo "shipped: models/$name (bench/results/peer_wakeword_$label.json)"
else
  echo "staged: $STAGE/$name; models/ unchanged (give --replace to ship it)"
fi
