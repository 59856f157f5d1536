"""How far the LiteRT twin of an int8 streaming graph (``model_stream.tflite``) is from the ONNX graph, on many clips.

    python bench/tflite_stream_parity.py models/kws12-dscnn-stream-kd-int8 models/kws12-dscnn-stream64-kd-int8

`edgekd export tflite-stream` checks the twin over the bundle's golden windows only (a few dozen hops) against
``STREAM_PARITY_STEPS``. This steps both graphs over one window of each of ``--clips`` clips (every k-th clip of
``--data``, a Speech Commands layout; default the real dev speakers in ../shared/realdev, measurement only; any
folder of that layout will do) at the bundle's hop and reports, per bundle, the largest, 99th-percentile and mean
logit difference in output steps and how often the two graphs agree on the top label. Writes
bench/results/tflite_stream_parity.json (``--json``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(bundle: Path, clips: list, hop_ms: int) -> dict:  # type: ignore[type-arg]
    """The parity numbers of one bundle over ``clips`` (``Clip`` objects of ``SpeechCommands``)."""
    import numpy as np

    from edgekd.export.tflite_stream import read_stream_graph, state_names, stream_logit_pairs
    from edgekd.runtime.backends.litert import LiteRTBackend
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.manifest import ModelManifest

    m = ModelManifest.load(bundle)
    st = m.kws_streaming
    if st is None or not st.tflite_model_file:
        raise SystemExit(f"{bundle}: no LiteRT streaming twin (edgekd export tflite-stream adds one)")
    sg = read_stream_graph(bundle / st.model_file)
    names = state_names(len(sg.blocks))
    with np.load(bundle / st.init) as z:
        init = {k: z[k] for k in z.files}
    with np.load(bundle / st.tflite_init) as z:
        init_t = {k: z[k] for k in z.files}
    onnx, lite = OnnxBackend(bundle / st.model_file), LiteRTBackend(bundle / st.tflite_model_file)
    det = load_model(bundle, backend="onnx")
    windows = (det.clip_features(c.load(m.sample_rate)) for c in clips)
    steps, agree = [], []
    for got, want in stream_logit_pairs(lite, onnx, names, init, init_t, windows, hop_ms // 10):
        steps.append(float(np.max(np.abs(got - want))) / sg.head_out[0])
        agree.append(bool(got.argmax() == want.argmax()))
    s = np.asarray(steps)
    return {"bundle": bundle.name, "clips": len(clips), "hops": int(s.size), "hop_ms": hop_ms, "max_steps": float(s.max()),
            "p99_steps": float(np.percentile(s, 99)), "mean_steps": float(s.mean()), "top_label_agreement": float(np.mean(agree)),
            "export_golden_max_steps": m.provenance.get("tflite_stream_vs_onnx_max_steps")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "realdev" / "gsc_v2_test_dev")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--hop-ms", type=int, default=80, help="new audio per call (a multiple of 10 ms)")
    ap.add_argument("--json", type=Path, default=REPO / "bench/results/tflite_stream_parity.json")
    args = ap.parse_args()

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.runtime.manifest import ModelManifest

    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no such folder; give --data (a Speech Commands layout)")
    if args.clips < 1:
        raise SystemExit("--clips: at least 1")
    if args.hop_ms <= 0 or args.hop_ms % 10:
        raise SystemExit("--hop-ms: a positive multiple of 10")
    labels = ModelManifest.load(args.bundles[0]).labels
    every = SpeechCommands(args.data).clips(labels, "all")
    if not every:
        raise SystemExit(f"{args.data}: no clips of the bundle's labels")
    clips = every[:: max(1, len(every) // args.clips)][: args.clips]
    rows = [measure(b, clips, args.hop_ms) for b in args.bundles]
    for r in rows:
        print(f"{r['bundle']}: {r['hops']} hops, max {r['max_steps']:.0f} output steps (p99 {r['p99_steps']:.0f}, mean "
              f"{r['mean_steps']:.2f}; export's golden check {r['export_golden_max_steps']}), top label agrees on "
              f"{100 * r['top_label_agreement']:.2f}% of hops")
    write_json(args.json, {"what": "LiteRT streaming twin vs the ONNX int8 streaming graph, hop by hop",
                           "command": "python bench/tflite_stream_parity.py " + " ".join(str(b) for b in args.bundles),
                           "data": str(args.data), "rows": rows, "machine": machine_facts()})
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
