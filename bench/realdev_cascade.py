"""What a two-stage detector would give on real voices: the int8 student as an always-on gate, the recipe's
speech-embedding teacher as a verifier that runs only while the gate is open.

    python bench/realdev_cascade.py runs/ww-view_glass --gates 0.1 0.15 0.2 0.3
    python bench/realdev_cascade.py runs/ww-view_glass --teacher runs/other/teacher.pt --hold-ms 400

RUN is a finished ``edgekd train wakeword --phrase`` folder (its ``bundle/``, ``teacher.pt``,
``data/eval/test/negatives.wav``); ``--bundle`` / ``--teacher`` take others. The streams are those of
``bench/realdev_wakeword.py`` (measurement only): the real dev speakers of the run's phrase, each file from a fresh
stream, against the real negatives (every gsc_v2_test_dev and fsdd clip back to back) and against them joined end to
end with the run's synthesized test speech (the issue's yardstick). Both models score every 80 ms hop: the bundle its
smoothed posterior (as the runtime), the teacher P(phrase) of the last second (unsmoothed; its backbone frames kept
under ``--work/teacher_frames``). The cascade's score at a teacher hop is the teacher's when the student's score
reached ``gate`` within the last ``--hold-ms`` (the verifier runs at that hop), else 0; its FRR at 0.5 / 1 / 2 / 5 FA/h
comes from the same threshold sweep as every other wake-word number. Per gate it also gives the verifier hops per
hour of negatives and, with the verifier's measured CPU ms per call (the teacher exported by ``edgekd.export.verifier``
and run by the device-side ``edgekd.runtime.verifier.Verifier``: backbone + head on one second, one thread),
the verifier's CPU per audio second on those negatives: what the teacher would add to the student's cost. The gates a
recipe could choose without real voices are printed too: the student's score that 99 / 98 / 95 / 90% of the run's
synthesized validation positives reach (``valNN%``), and the lowest gate whose verifier calls stay within 250 / 500 /
1,000 / 2,000 per hour of the validation speech (``budgetN/h``; ``--budgets`` gives others); the cascade is scored at each of them as well. Offline, on
the teacher's hop grid: a pair bundle (``edgekd train wakeword --phrase`` with its default ``--verifier-budget``) is
measured as it runs by ``bench/realdev_wakeword.py``; this bench compares gates and verifiers without building each.
The gate is the bundle's student alone (a bundle's own verifier is left out). Prints a table; writes
``bench/results/realdev_cascade_<label>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from realdev_wakeword import DEFAULT_REALDEV, Timeline, joined, real_negatives, stream_timelines  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUDGETS = (250.0, 500.0, 1000.0, 2000.0)  # verifier calls per hour of validation speech whose gates are scored (--budgets)


def gated(student: Timeline, teacher: Timeline, gate: float, hold_ms: float, every: int = 1,
          max_calls: int | None = None) -> tuple[Timeline, int, int]:
    """The cascade's timeline on the teacher's hops: the teacher's score where the student reached ``gate`` at a time in
    ``(t - hold_ms, t]``, else 0; how many hops asked the verifier (its calls: the first and every ``every``-th hop of
    each opening, at most ``max_calls`` of them, ``verified_hops``) and how many times the gate opened."""
    from edgekd.runtime.kws_post import verified_hops

    ts, vs = student
    tt, vt = teacher
    over = np.asarray(ts, dtype=np.float64)[np.asarray(vs) >= gate]
    if over.size == 0:
        return (tt, np.zeros_like(vt)), 0, 0
    i = np.searchsorted(over, tt, side="right")  # over[i - 1] <= t: the last gate crossing at or before t
    last = np.where(i > 0, over[np.maximum(i - 1, 0)], -np.inf)
    open_ = tt - last < hold_ms
    opened = int(open_[0]) + int(np.sum(open_[1:] & ~open_[:-1])) if open_.size else 0
    asked = verified_hops(open_, every, max_calls)
    return (tt, np.where(asked, vt, 0.0)), int(asked.sum()), opened


def mean_of(scorers: list[Any]) -> Any:
    """One scorer whose timeline is the mean of ``scorers``' (same hops): an ensemble of verifier heads."""
    if len(scorers) == 1:
        return scorers[0]

    def score(audio: Any) -> Timeline:
        from edgekd.eval.wakeword import as_array

        x = as_array(audio)
        tls = [s(x) for s in scorers]
        return tls[0][0], np.mean([v for _, v in tls], axis=0)

    return score


def verifier_ms_per_hop(teacher: Path, rounds: int = 30) -> float:
    """Median CPU ms of one verifier call as a board would make it: the teacher exported as a verifier folder
    (``edgekd.export.verifier``) and run by the device-side ``edgekd.runtime.verifier.Verifier`` (numpy and
    onnxruntime, one thread) on one second of audio."""
    import tempfile

    from edgekd.export.verifier import export_verifier
    from edgekd.runtime.verifier import Verifier

    with tempfile.TemporaryDirectory() as tmp:
        v = Verifier(export_verifier(teacher, Path(tmp) / "verifier"), threads=1)
        x = np.random.default_rng(0).normal(0, 0.05, 16000).astype(np.float32)
        v.probs(x)  # warm
        spent = []
        for _ in range(rounds):
            t0 = time.process_time()
            v.probs(x)
            spent.append(1000.0 * (time.process_time() - t0))
    return float(np.median(spent))


def validation_gates(scorer: Any, run: Path, label: str, keep: tuple[float, ...] = (0.99, 0.98, 0.95, 0.9),
                     budgets: tuple[float, ...] = BUDGETS, every: int = 1,
                     max_calls: int | None = None) -> list[dict[str, Any]]:
    """Gates a recipe could pick without real voices, from the run's synthesized validation material: the student's
    score that ``keep`` of the validation positives reach (their peaks' quantile), and the lowest gate (0.01 steps)
    whose verifier calls stay within each of ``budgets`` per hour of the validation speech. Each with the share of
    validation positives that reach it and its calls per hour there."""
    from edgekd.eval import wakeword as we

    val = run / "data" / "eval" / "validation"
    _, wavs = we.annotated_positives(val / label, val / f"{label}.tsv", label)
    pos, [((_, neg), seconds)] = stream_timelines(scorer, wavs, [val / "negatives.wav"])
    peaks = np.array([v.max() if v.size else 0.0 for _, v in pos.values()])

    def pick(rule: str, g: float) -> dict[str, Any]:
        return {"rule": rule, "gate": g, "keep": float(np.mean(peaks >= g)),
                "validation_calls_per_hour": we.verifier_calls_per_hour(neg, seconds, g, every, max_calls)}

    out = [pick(f"val{100 * k:.0f}%", float(np.quantile(peaks, 1.0 - k))) for k in keep]
    for b in budgets:  # the recipe's rule (edgekd.recipes.custom_wakeword.choose_gates)
        g = we.lowest_gate(neg, seconds, b, every, max_calls)
        if g is not None:
            out.append(pick(f"budget{b:g}/h", g))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder")
    ap.add_argument("--bundle", type=Path, default=None, help="the gate (default: RUN/bundle)")
    ap.add_argument("--teacher", type=Path, nargs="+", default=None,
                    help="the verifier (default: RUN/teacher.pt); several: the mean of their posteriors (heads on one backbone)")
    ap.add_argument("--gates", type=float, nargs="+", default=[0.1, 0.15, 0.2, 0.3, 0.5], help="student scores that open the gate")
    ap.add_argument("--hold-ms", type=float, default=80.0,
                    help="how long the gate stays open after the student's score reached it (default 80: only the hops at or over the gate; "
                         "a bundle with a longer stride, such as the recipe's 160 ms since 2026-12-05: give its stride, and the "
                         "80 ms teacher grid then asks twice per student inference, which the built bundle does not)")
    ap.add_argument("--every", type=int, default=1,
                    help="ask the verifier at the first and every N-th hop while the gate stays open (the built bundles: 2)")
    ap.add_argument("--max-calls", type=int, default=None, metavar="N",
                    help="at most N verifier calls per opening (default: no cap; the recipe's bundles since 2026-12-05: 3)")
    ap.add_argument("--budgets", type=float, nargs="+", default=list(BUDGETS), metavar="CALLS",
                    help="verifier calls per hour of validation speech: each budget's gate, as the recipe's --verifier-budget picks it, is scored too")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword",
                    help="where the real negatives WAV and the teacher's backbone frames (teacher_frames/) are kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.runtime.detector import load_kws
    from edgekd.train.teachers.embedding_teacher import embedding_teacher_scorer

    bundle, teachers = args.bundle or args.run / "bundle", args.teacher or [args.run / "teacher.pt"]
    teacher = teachers[0]
    synth = args.run / "data" / "eval" / "test" / "negatives.wav"
    for what, p in (("--bundle", bundle / "manifest.json"), *(("--teacher", t) for t in teachers), ("synthesized test speech", synth)):
        if not p.is_file():
            print(f"error: {what}: {p} is missing; give a finished `edgekd train wakeword --phrase` folder", file=sys.stderr)
            return 2
    if (any(not 0.0 < g < 1.0 for g in args.gates) or any(b <= 0 for b in args.budgets) or args.hold_ms <= 0 or args.every < 1
            or (args.max_calls is not None and args.max_calls < 1)):
        print("error: --gates must lie in (0, 1), --budgets and --hold-ms be > 0, --every >= 1 and --max-calls >= 1", file=sys.stderr)
        return 2
    label = json.loads((args.run / "report.json").read_text())["labels"][0] if (args.run / "report.json").is_file() else None
    det = load_kws(bundle, backend="onnx", threads=1, verifier=False)  # the gate: a bundle's own second stage stays out
    label = label or det.labels[0]
    dev = args.realdev / "wakeword_dev"
    if not (dev / label).is_dir():
        print(f"notice: {dev / label} is absent: no real-voice numbers (measurement only; nothing else needs it)")
        return 0
    real = real_negatives(args.realdev, args.work / "real_negatives.wav")
    rows, wavs = we.annotated_positives(dev / label, dev / f"{label}.tsv", label)
    scorers = {"student": we.bundle_scorer(det, label),
               "teacher": mean_of([embedding_teacher_scorer(t, label, frames_cache=args.work / "teacher_frames") for t in teachers])}
    pos: dict[str, dict[str, Timeline]] = {}
    neg: dict[str, list[tuple[Timeline, float]]] = {}
    for name, scorer in scorers.items():
        print(f"scoring with the {name} ...", flush=True)
        pos[name], neg[name] = stream_timelines(scorer, wavs, [real, synth])
    has_val = (args.run / "data" / "eval" / "validation" / label).is_dir()
    picks = (validation_gates(scorers["student"], args.run, label, budgets=tuple(args.budgets), every=args.every, max_calls=args.max_calls)
             if has_val else [])
    cost = verifier_ms_per_hop(teacher)  # more heads share the backbone: each adds well under a ms
    out: dict[str, Any] = {}
    for key, k in (("real_negatives_only", 1), ("real_and_synthesized_negatives", 2)):
        neg_tl = {name: joined(neg[name][:k]) for name in scorers}
        seconds = neg_tl["teacher"][1]
        table = []
        for name in scorers:  # each stage alone, on the same streams
            sw = we.sweep(pos[name], rows, neg_tl[name][0], seconds, we.THRESHOLDS)
            table.append({"system": name, **we.frr_points(sw)})
        named = [(f"cascade gate {g:g}", g) for g in args.gates] + [(f"cascade {pk['rule']} {pk['gate']:.3f}", pk["gate"]) for pk in picks]
        for system, g in named:
            p = {f: gated(pos["student"][f], pos["teacher"][f], g, args.hold_ms, args.every, args.max_calls)[0] for f in pos["teacher"]}
            n_tl, calls, opened = gated(neg_tl["student"][0], neg_tl["teacher"][0], g, args.hold_ms, args.every, args.max_calls)
            sw = we.sweep(p, rows, n_tl, seconds, we.THRESHOLDS)
            per_hour = calls / (seconds / 3600.0)
            table.append({"system": system, "gate": g, **we.frr_points(sw), "verifier_calls_per_hour": per_hour,
                          "gate_openings_per_hour": opened / (seconds / 3600.0),
                          "verifier_cpu_ms_per_audio_s": per_hour * cost / 3600.0})
        out[key] = {"negative_hours": seconds / 3600.0, "positives": len(rows), "rows": table}
        print(f"\n{label}, {key.replace('_', ' ')} ({seconds / 3600:.2f} h, {len(rows)} real positives): FRR at "
              + " / ".join(f"{fa:g}" for fa in we.FA_POINTS) + " FA/h")
        for r in table:
            frr = " / ".join("-" if (v := r[f"frr_at_{fa:g}_fa_per_hour"]) is None else f"{100 * v:.1f}%" for fa in we.FA_POINTS)
            extra = (f"  verifier {r['verifier_calls_per_hour']:.0f} calls/h ({r['gate_openings_per_hour']:.0f} openings), "
                     f"{r['verifier_cpu_ms_per_audio_s']:.2f} CPU ms per audio s"
                     if "gate" in r else "")
            print(f"  {r['system']:<24} {frr}{extra}")
    for pk in picks:
        print(f"gate {pk['rule']}: {pk['gate']:.3f} ({100 * pk['keep']:.0f}% of the synthesized validation positives reach it, "
              f"{pk['validation_calls_per_hour']:.0f} verifier calls per hour of validation speech)")
    out_json = args.json or REPO / "bench" / "results" / f"realdev_cascade_{label}.json"
    command = " ".join(["python bench/realdev_cascade.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out_json, {"what": "student bundle as a gate, speech-embedding teacher as the verifier, offline on the real dev streams",
                          "command": command, "date": datetime.date.today().isoformat(), "bundle": str(bundle), "teacher": " ".join(map(str, teachers)),
                          "hold_ms": args.hold_ms, "every": args.every, "max_calls": args.max_calls, "verifier_cpu_ms_per_call": cost, "label": label,
                          **out, "validation_gates": picks,
                          "machine": machine_facts()})
    print(f"verifier: {cost:.1f} CPU ms per call (edgekd.runtime.verifier, one thread)\n-> {out_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
