"""Which real utterances a wake-word bundle misses, by how long they are, beside its teacher with a 1 s and a 1.5 s view.

    python bench/realdev_wakeword_misses.py runs/ww-smart_mirror
    python bench/realdev_wakeword_misses.py runs/ww-view_glass --fa-per-hour 2

RUN is a finished ``edgekd train wakeword --phrase`` folder (its ``bundle/``, ``teacher.pt`` and ``report.json``).
Each real dev utterance (``../shared/realdev/wakeword_dev/<label>``, measurement only) is scored alone, with 1 s of
silence on both sides: the bundle's peak smoothed posterior, and the teacher's peak P(label) with the view it was
trained on (the last 1 s, centred in 1.5 s of zeros) and with the backbone's whole 1.5 s of audio. The bundle's
threshold is the one at ``--fa-per-hour`` on the real negatives (every gsc_v2_test_dev and fsdd clip back to back,
as in ``bench/realdev_wakeword.py``); the teacher's is 0.5 (streaming it over the hour and a half of negatives
would take ~20 min on 2 cores: ``bench/realdev_wakeword.py --teacher`` does that). Utterances are grouped by their
active length: from the first to the last 10 ms frame within 30 dB of the loudest, and by median pitch (``pitch_hz``:
autocorrelation over the voiced 32 ms frames; 190 Hz and above is mostly women's voices). Prints and writes
``bench/results/realdev_wakeword_misses_<label>.json``. About 10 min per run on 2 cores (the teacher's two views of
every utterance and the bundle over the real negatives).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV, evaluate, real_negatives  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EDGES = (0.0, 0.7, 0.85, 1.0, 1.2, float("inf"))  # s of active speech: the student's window is 1 s
PITCH_EDGES = (0.0, 120.0, 150.0, 190.0, 230.0, float("inf"))  # Hz, median f0 of the voiced frames
TEACHER_THRESHOLD = 0.5


def active_seconds(x: np.ndarray, sr: int = 16000, within_db: float = 30.0) -> float:
    """From the first to the last 10 ms frame whose energy is within ``within_db`` of the loudest frame's."""
    hop = sr // 100
    fr = x[: x.shape[0] // hop * hop].reshape(-1, hop).astype(np.float64)
    e = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-10)
    on = np.flatnonzero(e > e.max() - within_db)
    return float((on[-1] - on[0] + 1) / 100) if on.size else 0.0


def pitch_hz(x: np.ndarray, sr: int = 16000, frame: int = 512, lo_hz: float = 70.0, hi_hz: float = 400.0) -> float:
    """Median fundamental frequency of the voiced frames (those within 20 dB of the loudest whose normalized
    autocorrelation peaks above 0.4 between ``lo_hz`` and ``hi_hz``); NaN when none is voiced."""
    fr = x[: x.shape[0] // frame * frame].reshape(-1, frame).astype(np.float64)
    if not fr.shape[0]:
        return float("nan")
    e = np.mean(fr**2, axis=1)
    f0 = []
    for w in fr[e > e.max() * 1e-2]:
        w = w - w.mean()
        ac = np.correlate(w, w, "full")[frame - 1 :]
        a, b = int(sr / hi_hz), int(sr / lo_hz)
        k = a + int(np.argmax(ac[a:b]))
        if ac[0] > 0 and ac[k] > 0.4 * ac[0]:
            f0.append(sr / k)
    return float(np.median(f0)) if f0 else float("nan")


def _peaks(scorer: Any, clips: list[np.ndarray]) -> np.ndarray:
    pad = np.zeros(16000, np.float32)
    return np.array([float(np.max(scorer(np.concatenate([pad, x, pad]))[1])) for x in clips])


def _group(ok: np.ndarray, m: np.ndarray) -> dict[str, Any]:
    """How many of the utterances in mask ``m`` there are, and the share of them not ``ok``."""
    return {"utterances": int(m.sum()), "missed": float(np.mean(~ok[m])) if m.any() else None}


def _groups(hit: dict[str, np.ndarray], value: np.ndarray, edges: tuple[float, ...], unit: str) -> dict[str, dict[str, Any]]:
    """``hit``'s misses per bin of ``value`` (``edges``), and a group of its own for NaN values when there are any."""
    out = {f"{lo:g}-{hi:g} {unit}": {k: _group(ok, (value >= lo) & (value < hi)) for k, ok in hit.items()}
           for lo, hi in zip(edges[:-1], edges[1:], strict=True)}
    if np.isnan(value).any():
        out["unvoiced"] = {k: _group(ok, np.isnan(value)) for k, ok in hit.items()}
    return out


def _print_groups(groups: dict[str, dict[str, Any]]) -> None:
    for name, row in groups.items():
        print(f"{name:>14} {row['bundle']['utterances']:>4} " + " ".join(f"{_pct(v['missed']):>18}" for v in row.values()))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--fa-per-hour", type=float, default=2.0, help="the bundle's threshold: this many false accepts per hour of real negatives")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword", help="where the real negatives WAV is kept")
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer
    from edgekd.train.teachers.speech_embedding import WINDOW_SAMPLES

    run, bundle, teacher = args.run, args.run / "bundle", args.run / "teacher.pt"
    if not (run / "report.json").is_file() or not (bundle / "manifest.json").is_file() or not teacher.is_file():
        print(f"error: {run}: give a finished `edgekd train wakeword --phrase ... --out RUN` folder (report.json, bundle/, teacher.pt)",
              file=sys.stderr)
        return 2
    report = json.loads((run / "report.json").read_text())
    if len(report["recipe"]["phrases"]) != 1:
        print(f"error: {run} is a command set; this bench takes one phrase", file=sys.stderr)
        return 2
    label = report["labels"][0]
    dev = args.realdev / "wakeword_dev"
    if not (dev / label).is_dir():
        print(f"notice: {dev / label} is absent: no real utterances to break down (measurement only; nothing else needs them)")
        return 0
    real = real_negatives(args.realdev, args.work / "real_negatives.wav")
    sweep = evaluate(bundle, label, dev / label, dev / f"{label}.tsv", [real])
    at = we.pick_threshold(sweep["sweep"], args.fa_per_hour)
    if at is None:
        print(f"error: no threshold of {bundle} reaches {args.fa_per_hour:g} FA/h on the real negatives", file=sys.stderr)
        return 2
    files = sorted((dev / label).glob("*.wav"))
    clips = [load_audio(f, 16000) for f in files]
    dur = np.array([active_seconds(x) for x in clips])
    pitch = np.array([pitch_hz(x) for x in clips])
    student = _peaks(we.bundle_scorer(load_kws(bundle, backend="onnx", threads=1), label), clips)
    t1 = _peaks(embedding_teacher_scorer(teacher, label), clips)
    t15 = _peaks(embedding_teacher_scorer(teacher, label, window=WINDOW_SAMPLES), clips)
    hit = {"bundle": student >= at["threshold"], "teacher_1s": t1 >= TEACHER_THRESHOLD, "teacher_1.5s": t15 >= TEACHER_THRESHOLD}
    table = _groups(hit, dur, EDGES, "s")
    by_pitch = _groups(hit, pitch, PITCH_EDGES, "Hz")
    missed = ~hit["bundle"]
    summary = {"utterances": len(files), "bundle_threshold": at["threshold"], "bundle_fa_per_hour": at["fa_per_hour"],
               "missed": {k: float(np.mean(~ok)) for k, ok in hit.items()},
               "bundle_misses_longer_than_1s": float(np.mean(dur[missed] > 1.0)) if missed.any() else None,
               "all_longer_than_1s": float(np.mean(dur > 1.0)),
               "bundle_misses_the_teacher_1.5s_gets": float(np.mean(hit["teacher_1.5s"][missed])) if missed.any() else None}
    print(f"{label}: {len(files)} real utterances; bundle threshold {at['threshold']:.2f} ({at['fa_per_hour']:.2f} FA/h of real negatives), "
          f"teachers at {TEACHER_THRESHOLD}")
    print(f"{'active length':>14} {'n':>4} " + " ".join(f"{k + ' missed':>18}" for k in hit))
    _print_groups(table)
    print(f"{'median pitch':>14}")
    _print_groups(by_pitch)
    print(f"{'all':>14} {len(files):>4} " + " ".join(f"{100 * v:>17.1f}%" for v in summary["missed"].values()))
    if missed.any():
        print(f"of the bundle's misses, {100 * summary['bundle_misses_longer_than_1s']:.0f}% are longer than 1 s (of all utterances: "
              f"{100 * summary['all_longer_than_1s']:.0f}%); the teacher with 1.5 s gets {100 * summary['bundle_misses_the_teacher_1.5s_gets']:.0f}% of them")
    out = args.json or REPO / "bench" / "results" / f"realdev_wakeword_misses_{label}.json"
    command = " ".join(["python bench/realdev_wakeword_misses.py", *(sys.argv[1:] if argv is None else [str(a) for a in argv])])
    write_json(out, {"what": "real dev utterances missed by a wake-word bundle (at a threshold for FA/h of real negatives) and by its "
                             "speech-embedding teacher (1 s view as trained, and 1.5 s), grouped by active length and by median pitch (measurement only)",
                     "command": command, "date": datetime.date.today().isoformat(), "run": str(run), "label": label,
                     "summary": summary, "by_active_length": table, "by_pitch": by_pitch,
                     "utterances": [{"file": f.name, "active_s": float(d), "pitch_hz": None if np.isnan(h) else float(h), "bundle": float(s),
                                     "teacher_1s": float(a), "teacher_1.5s": float(b)}
                                    for f, d, h, s, a, b in zip(files, dur, pitch, student, t1, t15, strict=True)],
                     "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
