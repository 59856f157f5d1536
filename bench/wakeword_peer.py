"""A wake-word bundle from text against openWakeWord's own head for the same phrase, side by side in one run.

    python bench/wakeword_peer.py --bundle models/alexa-dscnn-stream-64-kd-int8 --wakeword alexa \\
        --material runs/ww-alexa/data/eval/test --json bench/results/peer_wakeword_alexa.json

Same synthesized positives and negatives for both (the recipe's held-out test material: 100 phrase clips by
espeak-ng test voices, running speech of test voices with confusables, never trained on by either), same counting
rules (``edgekd.eval.wakeword``): FRR at 0.5, 1, 2 and 5 FA/h, and the FA/h and FRR of each at its own threshold
(the bundle's, openWakeWord's customary 0.5). Then CPU ms per audio second of both on the same audio (the first
``--cpu-seconds`` of the negatives), 1 thread, alternating, median of 5: openWakeWord ``Model.predict`` and edgekd's
stream. openWakeWord's head is run here at run time only (CC BY-NC-SA 4.0); nothing is derived from it.

For a phrase openWakeWord has no head for ("computer"), ``--cpu-only --oww-head alexa`` measures the CPU side alone
against ``Model.predict`` with another head: its cost is the shared melspectrogram + speech embedding (the same for
every head) plus a head of the same shape.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OWW_THRESHOLD = 0.5  # openWakeWord's documented default


def _at(sweep: list[dict[str, Any]], thr: float) -> dict[str, Any]:
    row = min(sweep, key=lambda r: abs(r["threshold"] - thr))
    return {k: row[k] for k in ("threshold", "frr", "fa_per_hour", "hits", "positives")}


def _cpu(det: Any, name: str, audio: np.ndarray, rounds: int = 5) -> dict[str, Any]:
    from openwakeword.model import Model

    from edgekd.train.teachers.oww import CHUNK, oww_models_dir

    seconds = audio.shape[0] / 16000
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    head = next(oww_models_dir().glob(f"{name}_v*.onnx"))
    got: dict[str, list[float]] = {"openwakeword_model_predict": [], "edgekd": []}
    for _ in range(rounds + 1):  # the first round warms both up and is not kept
        m = Model(wakeword_model_paths=[str(head)])
        c0 = time.process_time()
        for i in range(0, pcm.shape[0] - CHUNK + 1, CHUNK):
            m.predict(pcm[i : i + CHUNK])
        oww = time.process_time() - c0
        s = det.create_stream()
        c0 = time.process_time()
        for i in range(0, audio.shape[0], CHUNK):
            s.accept_waveform(audio[i : i + CHUNK])
        ek = time.process_time() - c0
        got["openwakeword_model_predict"].append(1000 * oww / seconds)
        got["edgekd"].append(1000 * ek / seconds)
    out: dict[str, Any] = {k: statistics.median(v[1:]) for k, v in got.items()}
    out["ratio_edgekd_to_oww_model_predict"] = out["edgekd"] / out["openwakeword_model_predict"]
    out["paired_ratio_median"] = statistics.median(e / o for e, o in zip(got["edgekd"][1:], got["openwakeword_model_predict"][1:], strict=True))
    out["rounds"] = got
    out["audio_seconds"] = seconds
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--wakeword", default="alexa", help="openWakeWord head name (and the bundle's label, spaces as underscores)")
    ap.add_argument("--label", default=None, help="the bundle's label for the phrase (default: --wakeword, spaces as underscores)")
    ap.add_argument("--material", type=Path, required=True, help="folder with <label>/, <label>.tsv and negatives.wav")
    ap.add_argument("--oww-head", default=None, help="openWakeWord head for the CPU comparison (default: --wakeword)")
    ap.add_argument("--cpu-only", action="store_true", help="skip the FRR comparison (for a phrase openWakeWord has no head for)")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--cpu-seconds", type=float, default=120.0, help="seconds of the CPU audio to stream (default 120)")
    ap.add_argument("--cpu-wav", type=Path, default=None,
                    help="the audio of the CPU comparison (default: the material's negatives.wav); a two-stage bundle's cost "
                         "depends on how often its gate opens, so give ordinary speech as well as the confusable-rich test speech")
    args = ap.parse_args(argv)

    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.runtime.audio import wav_blocks
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio
    from edgekd.train.teachers.oww import OnnxTeacher

    label = args.label or args.wakeword.replace(" ", "_")
    if args.cpu_wav is not None and not args.cpu_wav.is_file():
        print(f"error: --cpu-wav {args.cpu_wav}: no such file", file=sys.stderr)
        return 2
    det = load_kws(args.bundle, backend="onnx", threads=1)
    rows, wavs = ([], []) if args.cpu_only else we.annotated_positives(args.material / label, args.material / f"{label}.tsv", label)
    negatives = [args.material / "negatives.wav"]
    thr = det.postprocess.threshold_for(label)
    what = ("CPU on the same audio, 1 thread (no FRR comparison: --cpu-only)" if args.cpu_only else
            "same synthesized positives and negatives, same counting rules; CPU on the same audio, 1 thread")
    result: dict[str, Any] = {"what": what,
                              "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]) if argv is None else "",
                              "date": datetime.date.today().isoformat(), "material": str(args.material)}
    oww_head = args.oww_head or args.wakeword
    result["openwakeword_head"] = oww_head
    scored = () if args.cpu_only else (("edgekd", we.bundle_scorer(det, label), thr),
                                       ("openwakeword", OnnxTeacher(f"oww:{args.wakeword}").timeline, OWW_THRESHOLD))
    for name, scorer, own in scored:
        print(f"scoring {name} ...", flush=True)
        res = we.evaluate_stream(scorer, rows, wavs, negatives, (lambda p: wav_blocks(p, 16000)) if name == "edgekd" else
                                 (lambda p: load_audio(p, 16000)), 0.5)
        result[name] = {"positives": res["positives"], "negative_hours": res["negative_seconds"] / 3600, **we.frr_points(res["sweep"]),
                        "own_threshold": _at(res["sweep"], own), "sweep": res["sweep"]}
        r = result[name]
        print(f"{name}: FRR " + ", ".join(f"{100 * v:.1f}% at {fa:g}" if (v := r[f'frr_at_{fa:g}_fa_per_hour']) is not None else f"- at {fa:g}"
                                          for fa in we.FA_POINTS) + " FA/h; at its own threshold "
              f"{r['own_threshold']['threshold']:.2f}: FRR {100 * r['own_threshold']['frr']:.1f}%, {r['own_threshold']['fa_per_hour']:.2f} FA/h",
              flush=True)
    audio = load_audio(args.cpu_wav or negatives[0], 16000)[: int(args.cpu_seconds * 16000)]
    result["cpu_ms_per_audio_s"] = _cpu(det, oww_head, audio)
    result["cpu_ms_per_audio_s"]["wav"] = str(args.cpu_wav or negatives[0])
    if det.verifier is not None:  # how often this audio opened the two-stage bundle's gate
        s = det.create_stream()
        s.accept_waveform(audio)
        result["cpu_ms_per_audio_s"]["verifier_calls_per_audio_hour"] = s.verifier_calls * 3600.0 / (audio.shape[0] / 16000)
    c = result["cpu_ms_per_audio_s"]
    print(f"CPU ms per audio s: edgekd {c['edgekd']:.2f}, openWakeWord Model.predict {c['openwakeword_model_predict']:.2f} "
          f"(ratio {c['ratio_edgekd_to_oww_model_predict']:.3f})"
          + (f"; verifier {c['verifier_calls_per_audio_hour']:.0f} calls per audio hour" if "verifier_calls_per_audio_hour" in c else ""))
    result["bundle"] = {"path": str(args.bundle), "name": det.manifest.name, "mode": det.mode, "stride_ms": det.postprocess.stride_ms}
    result["machine"] = machine_facts()
    write_json(args.json, result)
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
