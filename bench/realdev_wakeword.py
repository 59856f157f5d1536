"""The real-voice wake-word yardstick: bundles for the dev phrases on real people's recordings.

    python bench/realdev_wakeword.py --bundle smart_mirror=runs/ww-smart_mirror/bundle \\
        --bundle view_glass=runs/ww-view_glass/bundle                               (make realdev)

Positives: ../shared/realdev/wakeword_dev/<label>/*.wav with <label>.tsv (crowd-sourced "smart mirror" / "view glass"),
each streamed from a fresh stream. Negatives: every gsc_v2_test_dev and fsdd clip (real speech without the phrases,
resampled to 16 kHz) streamed back to back with 0.25 s gaps, plus the synthesized running speech given with
--synth-negatives (default: the recipe's own eval/test/negatives.wav beside the bundle). FRR at 0.5, 1, 2 and 5 FA/h
and at the bundle's own threshold, on the real negatives alone and on both, to bench/results/realdev_wakeword.json; for a
two-stage bundle also its verifier calls per hour of those negatives (its CPU there).
``--teacher LABEL=runs/ww-smart_mirror/teacher.pt`` (``--teacher-window 1.5``: a 1.5 s view) also scores the recipe's speech-embedding teacher on the same
streams, real and (its run's) synthesized (same counting; the last second every 80 ms, unsmoothed): where a student falls
short of what its teacher knows, and whether the teacher itself reaches the issue's yardstick (~1 h per teacher).
Measurement only: nothing trains on these files. When the folder is absent this says so and exits 0.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REALDEV = REPO.parent / "shared" / "realdev"


def real_negatives(realdev: Path, out: Path, gap_s: float = 0.25) -> Path:
    """Every gsc_v2_test_dev and fsdd clip at 16 kHz, back to back with ``gap_s`` of silence, as one WAV. Made once: kept
    while ``out``'s sidecar (``<out>.json``) names the same clips (folder, names, sizes) and gap; made again otherwise, so a
    WAV made from another layout (a test's stand-in) is never taken for the real speech."""
    import hashlib
    import json

    from edgekd.core.fsutil import atomic_write, write_json
    from edgekd.runtime.wav import load_audio, write_wav

    files = sorted((realdev / "gsc_v2_test_dev").glob("*/*.wav")) + sorted((realdev / "fsdd").glob("*.wav"))
    if not files:
        raise SystemExit(f"error: no clips under {realdev}/gsc_v2_test_dev or {realdev}/fsdd")
    listing = "".join(f"{f.relative_to(realdev)}:{f.stat().st_size}\n" for f in files)
    made_from = {"realdev": str(realdev.resolve()), "clips": len(files), "gap_s": gap_s,
                 "listing_sha256": hashlib.sha256(listing.encode()).hexdigest()}
    sidecar = out.with_name(out.name + ".json")
    if out.is_file() and sidecar.is_file() and json.loads(sidecar.read_text()) == made_from:
        return out
    gap = np.zeros(int(gap_s * 16000), np.float32)
    parts: list[np.ndarray] = []
    for f in files:
        parts += [load_audio(f, 16000), gap]
    out.parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)  # the WAV is not vouched for until the new one is in place
    atomic_write(out, lambda tmp: write_wav(tmp, np.concatenate(parts), 16000))
    write_json(sidecar, made_from)
    return out


def _sweep(scorer: Any, label: str, positives: Path, tsv: Path, negatives: list[Path]) -> dict[str, Any]:
    from edgekd.eval import wakeword as we
    from edgekd.runtime.audio import wav_blocks

    rows, wavs = we.annotated_positives(positives, tsv, label)
    res = we.evaluate_stream(scorer, rows, wavs, negatives, lambda p: wav_blocks(p, 16000), 2.0)
    return {"negatives": [str(n) for n in negatives], "negative_hours": res["negative_seconds"] / 3600, "positives": res["positives"],
            **we.frr_points(res["sweep"]), "sweep": res["sweep"]}


def evaluate(bundle: Path, label: str, positives: Path, tsv: Path, negatives: list[Path]) -> dict[str, Any]:
    """``_sweep`` of one bundle, with its own threshold's point and, for a two-stage bundle, how often its runtime asks
    the verifier per hour of the negatives (at its own thresholds; the negatives are the last stream scored)."""
    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws

    det = load_kws(bundle, backend="onnx", threads=1)
    calls: list[int] = []
    out = _sweep(we.bundle_scorer(det, label, calls=calls), label, positives, tsv, negatives)
    thr = det.postprocess.threshold_for(label)
    own = min(out["sweep"], key=lambda r: abs(r["threshold"] - thr))
    per_hour = calls[-1] / out["negative_hours"] if det.verifier is not None and out["negative_hours"] > 0 else None
    return {**out, "bundle_threshold": thr, "at_bundle_threshold": {k: own[k] for k in ("frr", "fa_per_hour", "hits", "positives")},
            "verifier_calls_per_hour": per_hour}


def mean_scorer(bundles: list[Path], label: str) -> Any:
    """A scorer whose timeline is the mean of several bundles' smoothed posteriors of ``label`` (one stride and
    frontend): an ensemble of seeds. Each input is read whole (~350 MB per hour of audio)."""
    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws

    scorers = [we.bundle_scorer(load_kws(b, backend="onnx", threads=1), label) for b in bundles]

    def score(audio: Any) -> tuple[np.ndarray, np.ndarray]:
        x = we.as_array(audio)
        out = [s(x) for s in scorers]
        n = min(t.shape[0] for t, _ in out)
        return out[0][0][:n], np.mean([v[:n] for _, v in out], axis=0)

    return score


def evaluate_mean(bundles: list[Path], label: str, positives: Path, tsv: Path, negatives: list[Path]) -> dict[str, Any]:
    """``evaluate`` for the mean posterior of ``bundles`` (``mean_scorer``): how much of one student's error is its draw."""
    return _sweep(mean_scorer(bundles, label), label, positives, tsv, negatives)


Timeline = tuple[np.ndarray, np.ndarray]  # (times in ms, scores)


def stream_timelines(scorer: Any, wavs: list[Path], negatives: list[Path]) -> tuple[dict[str, Timeline], list[tuple[Timeline, float]]]:
    """``scorer``'s timeline of each positive file (each from a fresh stream) and of each negative stream, with its seconds."""
    from edgekd.eval import wakeword as we
    from edgekd.runtime.audio import wav_blocks

    load = lambda p: wav_blocks(p, 16000)  # noqa: E731
    pos, _ = we.score_files(scorer, list(wavs), load)
    negs = []
    for n in negatives:
        timeline, seconds = we.score_files(scorer, [n], load, concatenate=True)
        negs.append((timeline[""], seconds))
    return pos, negs


def joined(parts: list[tuple[Timeline, float]]) -> tuple[Timeline, float]:
    """Timelines of streams scored one after the other, end to end (each offset by the seconds before it)."""
    times, scores, offset = [], [], 0.0
    for (t, v), seconds in parts:
        times.append(np.asarray(t, dtype=np.float64) + 1000.0 * offset)
        scores.append(v)
        offset += seconds
    return (np.concatenate(times), np.concatenate(scores)), offset


def evaluate_teacher(teacher: Path, label: str, positives: Path, tsv: Path, real: Path, synth: list[Path],
                     window_s: float | None = None, frames_cache: Path | None = None) -> dict[str, dict[str, Any]]:
    """The recipe's speech-embedding teacher on the same streams (host-side: torch and the backbone), unsmoothed:
    ``real_negatives_only`` and, with ``synth``, ``real_and_synthesized_negatives``. The teacher is slow (the backbone
    every 80 ms), so each stream is scored once and the second yardstick joins the real and synthesized timelines end
    to end (each scored from a fresh stream: for a teacher that sees only the last second this differs from streaming
    them back to back only around the join, the windows that would straddle it and the debounce across it).
    ``window_s``: seconds of audio each score sees instead of the training clips' one (at most the backbone's 1.5).
    ``frames_cache``: where the backbone's frames of each stream are kept, so a second head on the same streams
    costs seconds instead of an hour."""
    from edgekd.eval import wakeword as we
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer

    scorer = embedding_teacher_scorer(teacher, label, window=None if window_s is None else round(window_s * 16000), frames_cache=frames_cache)
    rows, wavs = we.annotated_positives(positives, tsv, label)
    pos, negs = stream_timelines(scorer, wavs, [real, *synth])
    out: dict[str, dict[str, Any]] = {}
    for key, k in (("real_negatives_only", 1), ("real_and_synthesized_negatives", 1 + len(synth))):
        if key != "real_negatives_only" and not synth:
            continue
        neg, neg_s = joined(negs[:k])
        rows_sweep = we.sweep(pos, rows, neg, neg_s, we.THRESHOLDS)
        out[key] = {"negatives": [str(n) for n in [real, *synth][:k]], "negative_hours": neg_s / 3600, "positives": len(rows),
                    **we.frr_points(rows_sweep), "sweep": rows_sweep}
    return out


def _frr_line(label: str, r: dict[str, Any], what: str) -> str:
    from edgekd.eval import wakeword as we

    return (f"{label} ({what}): FRR " + ", ".join(f"{100 * v:.1f}% at {fa:g}" if (v := r[f'frr_at_{fa:g}_fa_per_hour']) is not None
                                                  else f"- at {fa:g}" for fa in we.FA_POINTS)
            + f" FA/h ({r['negative_hours']:.2f} h of {'negatives' if len(r['negatives']) > 1 else 'real negatives'}, "
              f"{r['positives']} real positives)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", default=[], metavar="LABEL=BUNDLE", help="a bundle for a dev phrase (repeatable)")
    ap.add_argument("--teacher", action="append", default=[], metavar="LABEL=TEACHER",
                    help="also score a speech-embedding teacher checkpoint (the recipe's teacher.pt) on the real streams (repeatable)")
    ap.add_argument("--teacher-window", type=float, default=None, metavar="SECONDS",
                    help="the teachers see this many seconds of audio per score (default: 1, as trained; at most 1.5, the backbone's window)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--synth-negatives", type=Path, action="append", default=None,
                    help="synthesized running speech (default: BUNDLE/../data/eval/test/negatives.wav when present)")
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword",
                    help="where the real negatives WAV and the teachers' backbone frames of every stream (teacher_frames/) are kept")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "realdev_wakeword.json")
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json

    if args.teacher_window is not None and not 0.0 < args.teacher_window <= 1.5:
        print(f"error: --teacher-window {args.teacher_window:g}: give seconds in (0, 1.5] (the backbone's window)", file=sys.stderr)
        return 2
    dev = args.realdev / "wakeword_dev"
    if not dev.is_dir():
        print(f"notice: {dev} is absent: no real-voice wake-word numbers (measurement only; nothing else needs it)")
        return 0
    if not args.bundle and not args.teacher:
        print("notice: no --bundle LABEL=BUNDLE given: train one with `edgekd train wakeword --phrase \"smart mirror\" --out DIR`")
        return 0
    real = real_negatives(args.realdev, args.work / "real_negatives.wav")
    results = []
    for spec in args.bundle:
        label, _, path = spec.partition("=")
        bundle = Path(path)
        if not (bundle / "manifest.json").is_file():
            print(f"error: --bundle {spec}: no bundle there", file=sys.stderr)
            return 2
        synth = args.synth_negatives or [p for p in [bundle.parent / "data" / "eval" / "test" / "negatives.wav"] if p.is_file()]
        row = {"label": label, "bundle": str(bundle), "real_negatives_only": evaluate(bundle, label, dev / label, dev / f"{label}.tsv", [real])}
        if synth:
            row["real_and_synthesized_negatives"] = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", [real, *synth])
        r = row["real_negatives_only"]
        calls = "" if r["verifier_calls_per_hour"] is None else f"; {r['verifier_calls_per_hour']:.0f} verifier calls per hour of them"
        print(_frr_line(label, r, "bundle") + f"; at its own threshold {r['bundle_threshold']:.2f}: FRR "
              f"{100 * r['at_bundle_threshold']['frr']:.1f}%, {r['at_bundle_threshold']['fa_per_hour']:.2f} FA/h" + calls, flush=True)
        if synth:  # the yardstick: real speech and the run's synthesized running speech as negatives
            print(_frr_line(label, row["real_and_synthesized_negatives"], "bundle, with synthesized speech"), flush=True)
        results.append(row)
    for spec in args.teacher:
        label, _, path = spec.partition("=")
        if not Path(path).is_file():
            print(f"error: --teacher {spec}: no checkpoint there", file=sys.stderr)
            return 2
        synth = args.synth_negatives or [p for p in [Path(path).parent / "data" / "eval" / "test" / "negatives.wav"] if p.is_file()]
        scored = evaluate_teacher(Path(path), label, dev / label, dev / f"{label}.tsv", real, synth, args.teacher_window,
                                  args.work / "teacher_frames")
        row = {"label": label, "teacher": path, "teacher_window_s": args.teacher_window or 1.0, **scored}
        print(_frr_line(label, row["real_negatives_only"], "teacher"), flush=True)
        if "real_and_synthesized_negatives" in row:
            print(_frr_line(label, row["real_and_synthesized_negatives"], "teacher, with synthesized speech"), flush=True)
        results.append(row)
    command = " ".join(["python bench/realdev_wakeword.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(args.json, {"what": "wake-word bundles (rows with 'bundle') and speech-embedding teachers (rows with 'teacher') on real dev "
                                   "speakers (../shared/realdev/wakeword_dev); negatives: gsc_v2_test_dev + fsdd streamed back to back "
                                   "(+ synthesized running speech: the run's eval/test/negatives.wav)", "command": command,
                           "date": datetime.date.today().isoformat(), "results": results, "machine": machine_facts()})
    print(f"-> {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
