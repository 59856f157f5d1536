#!/usr/bin/env bash
# `make bench`: the peer comparison and the quantization cost table on this machine.
# Writes bench/results/<machine>/*.json and *.png; prints the tables (bench/README.md quotes them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EDGEKD=${EDGEKD:-.venv/bin/edgekd}
machine=$($PY -c 'from edgekd.bench.machine import machine_slug; print(machine_slug())')
out=bench/results/$machine
mkdir -p "$out" runs/bench
wav=runs/bench/stream.wav
if [ ! -f "$wav" ]; then
  # 40 s of held-out espeak-ng voices saying the ten keywords three times over light noise
  $PY -c "from edgekd.data.synth_kws import synth_keyword_stream; from edgekd.runtime.wav import write_wav; \
a, _ = synth_keyword_stream(('yes','no','up','down','left','right','on','off','stop','go')*3, seed=11, gap_s=1.0); write_wav('$wav', a, 16000)"
fi
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
results=()
for bundle in models/kws*/; do  # the KWS bundles: the SED one streams soundscapes, not keywords
  name=$(basename "$bundle")
  for backend in onnx litert; do
    f="$out/bench_${name}_${backend}.json"
    $EDGEKD bench "$bundle" --wav "$wav" --backend "$backend" --threads 1 --repeats 5 --json "$f" 2>&1 | grep -v '^INFO: ' || true
    [ -f "$f" ] && results+=("$f")
  done
done
$EDGEKD bench compare "${results[@]}" --plots "$out" | tee "$out/quantization_table.md"
$PY bench/side_by_side.py models/kws*/ --wav "$wav" --json "$out/side_by_side.json"
# every shipped KWS bundle against openWakeWord (Model.predict and its ONNX models driven directly), 5 rounds each
$PY bench/peers/openwakeword_peer.py --bundle models/kws12-dscnn-kd-int8 --wav "$wav" --out "$out/peer_openwakeword.json" --rounds 5
for bundle in models/kws*/; do
  name=$(basename "$bundle")
  [ "$name" = kws12-dscnn-kd-int8 ] || \
    $PY bench/peers/openwakeword_peer.py --bundle "$bundle" --wav "$wav" --out "$out/peer_openwakeword_$name.json" --rounds 5
  if grep -q '"model_stream.tflite"' "$bundle/manifest.json"; then  # its LiteRT streaming graph too
    $PY bench/peers/openwakeword_peer.py --bundle "$bundle" --wav "$wav" --out "$out/peer_openwakeword_${name}_litert.json" --rounds 5 --backend litert
  fi
  if grep -q '"model_stream.onnx"' "$bundle/manifest.json"; then
    $PY bench/stream_vs_window.py --bundle "$bundle" --wav "$wav" --out "$out/stream_vs_window_$name.json"
  fi
done
$PY bench/soak.py --bundle models/kws12-dscnn-kd-int8 --wav "$wav" --minutes 60 --out "$out/soak.json"
$PY bench/soak.py --bundle models/kws12-dscnn-stream-kd --wav "$wav" --minutes 60 --out "$out/soak_kws12-dscnn-stream-kd.json"
# the default bundle (README's first model)
$PY bench/soak.py --bundle models/kws12-dscnn-stream64-kd-int8 --wav "$wav" --minutes 60 --out "$out/soak_kws12-dscnn-stream64-kd-int8.json"
$PY bench/summarize.py
