"""When a two-stage wake-word bundle asks its verifier: other gates and asking rules, offline, on the real dev streams.

    python bench/verifier_rules.py runs/ww-smart_mirror --rules 0.08:2:3:0 0.08:2:3:2 0.08:1:-:0
    python bench/verifier_rules.py runs/ww-view_glass --budget-gates 1000 --holds 0 2
    python bench/verifier_rules.py runs/ww-view_glass --rules 0.09:2:3:2 --peak-power 0 0.25 0.5 1
    python bench/verifier_rules.py runs/ww-view_glass --rules 0.1:2:3:2 --lookback 0 '0|320,0' '0|480,0'
    python bench/verifier_rules.py runs/ww-view_glass-s4 --students runs/ww-view_glass-s3 --rules 0.09:2:3:2

RUN is a finished ``edgekd train wakeword --phrase`` folder whose bundle has a verifier. A rule is
``GATE:EVERY:MAX_CALLS:HOLD`` (``-`` for no cap): the student's smoothed score at or over GATE opens the gate, which
stays open HOLD inferences after the score falls under it (``held_open``); of each run of open inferences the first
and every EVERY-th ask the verifier, at most MAX_CALLS of them (``verified_hops``). The verified score is the
verifier's posterior times the opening's peak student score (``opening_peaks``) to the bundle's ``peak_power``, or to
each of ``--peak-power P ...`` (every rule with each). ``--lookback A,B|C ...`` says which seconds each call of an
opening scores, in ms before the call per call number (the last entry for later calls; ``A|B``: the better of two, as
the runtime's first call with ``lookback_ms``); default the bundle's own. ``--students RUN ...`` (other draws of the same phrase and
material) makes the gate read the mean of their students' smoothed scores and the run's own, as a bundle of merged
students would (``edgekd.export.ensemble``); the run's verifier asks. ``--budget-gates B --holds H ...``
adds, per hold, the recipe's own rule at its budget: the budget's gate of ``choose_gates`` for B verifier calls per
hour of the run's validation speech (before its ceiling from the positives), with the recipe's every and cap. Streams are those of
``bench/realdev_wakeword.py`` (measurement only): each real dev utterance of the run's phrase from a fresh stream, the
real negatives (gsc_v2_test_dev + fsdd back to back) and, for the issue's yardstick, the run's synthesized test
speech after them, one stream as the yardstick streams them. The student is streamed once; the bundle's own verifier (``edgekd.runtime.verifier``, the
second of audio that ends at the inference, as the runtime asks it) scores each asked inference once, whatever
the rules asking it. The refractory time applies in the sweep, as for every wake-word number. Under the bundle's
own rule this gives what ``bench/realdev_wakeword.py`` measures streaming the bundle (checked: the same FRR at 0.5 /
1 / 2 / 5 FA/h on the real negatives). Prints one line per rule (verifier calls per hour of the real negatives, with the verifier's runs where a first
call hears two seconds, FRR at
0.5 / 1 / 2 / 5 FA/h against them and with the synthesized speech); writes ``bench/results/verifier_rules_<label>.json``.
The verifier heads stay as trained: the recipe trains its heads on the windows its own rule asks about. A few
minutes per run on 2 cores.
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
from realdev_wakeword import DEFAULT_REALDEV, real_negatives  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
Rule = tuple[float, int, "int | None", int]
Lookback = tuple[tuple[int, ...], ...]


def parse_rule(text: str) -> Rule:
    """``GATE:EVERY:MAX_CALLS:HOLD`` (MAX_CALLS ``-``: no cap)."""
    try:
        g, e, c, h = text.split(":")
        rule = (float(g), int(e), None if c == "-" else int(c), int(h))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give GATE:EVERY:MAX_CALLS:HOLD, e.g. 0.08:2:3:2 (MAX_CALLS - for no cap)") from None
    if not 0.0 < rule[0] < 1.0 or rule[1] < 1 or (rule[2] is not None and rule[2] < 1) or rule[3] < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: GATE in (0, 1), EVERY >= 1, MAX_CALLS >= 1 or -, HOLD >= 0")
    return rule


class AskedScores:
    """The verifier's score of ``label`` at the inferences of one stream that some rule asks, each computed once."""

    def __init__(self, verifier: Any, label: str, audio: np.ndarray, times_ms: np.ndarray) -> None:
        self.verifier, self.k, self.audio, self.times = verifier, verifier.labels.index(label), audio, times_ms
        self.known: dict[tuple[int, int], float] = {}

    def one(self, i: int, back_ms: int) -> float:
        """The verifier's score of the second of audio that ends ``back_ms`` before inference ``i``."""
        if (i, back_ms) not in self.known:
            w = self.verifier.window_samples
            end = int(round((self.times[i] - back_ms) * 16))  # the window's end in samples at 16 kHz
            x = self.audio[max(0, end - w) : max(0, end)]
            x = np.concatenate([np.zeros(w - x.shape[0], np.float32), x]) if x.shape[0] < w else x  # before the start: zeros
            self.known[(i, back_ms)] = float(self.verifier.probs(x)[self.k])
        return self.known[(i, back_ms)]

    def at(self, asked: np.ndarray, lookback: Lookback = ((0,),), call: np.ndarray | None = None) -> np.ndarray:
        """Scores where ``asked``; the ``c``-th call of an opening (``call``) takes the best of the windows ending
        ``lookback[c]`` ms before it (the last entry for later calls)."""
        out = np.zeros(self.times.shape[0])
        for i in np.flatnonzero(asked):
            backs = lookback[min(int(call[i]) if call is not None else 0, len(lookback) - 1)]
            out[i] = max(self.one(i, b) for b in backs)
        return out


def parse_lookback(text: str) -> Lookback:
    """``A,B,C``: the first call of an opening scores the second ending A ms before it, the second B, later calls C;
    ``A|B`` at a call: the best of both windows (two verifier runs)."""
    try:
        out = tuple(tuple(int(b) for b in c.split("|")) for c in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give ms per call, e.g. 480,0 or 0|320 (whole ms)") from None
    if not out or any(b < 0 for c in out for b in c):
        raise argparse.ArgumentTypeError(f"{text!r}: look-backs are ms >= 0")
    return out


def verified(asked: AskedScores, scores: np.ndarray, rule: Rule, peak_power: float, lookback: Lookback = ((0,),)) -> tuple[np.ndarray, np.ndarray]:
    """Under ``rule``, over a stream whose student timeline is ``scores``: the verified score at each inference (0 where
    the verifier is not asked) and where it is asked, as the runtime decides them (``KwsPostprocessor``)."""
    from edgekd.runtime.kws_post import call_numbers, held_open, opening_peaks, verified_hops

    g, e, c, h = rule
    open_ = held_open(scores >= g, h)
    mask = verified_hops(open_, e, c)
    v = asked.at(mask, lookback, call_numbers(open_, mask))
    return (v * opening_peaks(scores, open_) ** peak_power if peak_power else v), mask


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a finished `edgekd train wakeword --phrase` folder whose bundle has a verifier")
    ap.add_argument("--rules", type=parse_rule, nargs="*", default=[], metavar="G:E:C:H", help="rules to score (GATE:EVERY:MAX_CALLS:HOLD)")
    ap.add_argument("--budget-gates", type=float, default=None, metavar="CALLS",
                    help="also the recipe's rule at this budget (calls per hour of the validation speech), per --holds")
    ap.add_argument("--holds", type=int, nargs="+", default=[0], help="holds for --budget-gates (default: 0)")
    ap.add_argument("--peak-power", type=float, nargs="+", default=None, metavar="P",
                    help="score every rule with each of these peak powers (the verified score is the verifier's posterior "
                         "times the opening's peak student score to P); default: the bundle's own")
    ap.add_argument("--students", type=Path, nargs="+", default=[], metavar="RUN",
                    help="other finished runs of the same phrase and material: the gate reads the mean of their students' "
                         "smoothed scores and the run's own (a student ensemble; the run's verifier asks)")
    ap.add_argument("--lookback", type=parse_lookback, nargs="+", default=None, metavar="MS,MS|MS",
                    help="which seconds each call of an opening scores: ms before the call per call number (the last entry for "
                         "later calls), A|B the better of two; every rule with each (default: the bundle's own, e.g. 0|320,0 "
                         "for lookback_ms 320; 0: the second that ends at the call)")
    ap.add_argument("--realdev", type=Path, default=DEFAULT_REALDEV)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "realdev_wakeword", help="where the real negatives WAV is kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.recipes.custom_wakeword import VERIFY_EVERY, VERIFY_MAX_CALLS
    from edgekd.runtime.audio import wav_blocks
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.kws_post import call_numbers, held_open
    from edgekd.runtime.manifest import MAX_PEAK_POWER
    from edgekd.runtime.wav import load_audio

    bundle, synth = args.run / "bundle", args.run / "data" / "eval" / "test" / "negatives.wav"
    if not (bundle / "manifest.json").is_file() or not synth.is_file() or not (args.run / "report.json").is_file():
        print(f"error: {args.run}: give a finished `edgekd train wakeword --phrase` folder (bundle/, report.json, data/eval/test/)", file=sys.stderr)
        return 2
    if not args.rules and args.budget_gates is None:
        print("error: give --rules G:E:C:H ... and/or --budget-gates CALLS", file=sys.stderr)
        return 2
    label = json.loads((args.run / "report.json").read_text())["labels"][0]
    for other in args.students:
        if (not (other / "bundle" / "manifest.json").is_file() or not (other / "report.json").is_file()
                or json.loads((other / "report.json").read_text())["labels"][0] != label):
            print(f"error: {other}: give a finished run of the same phrase ({label}) for --students", file=sys.stderr)
            return 2
    dev = args.realdev / "wakeword_dev"
    if not (dev / label).is_dir():
        print(f"notice: {dev / label} is absent: no real-voice numbers (measurement only; nothing else needs it)")
        return 0
    pair = load_kws(bundle, backend="onnx", threads=1)
    if pair.verifier is None:
        print(f"error: {bundle} has no verifier", file=sys.stderr)
        return 2
    scorers = [we.bundle_scorer(load_kws(b, backend="onnx", threads=1, verifier=False), label)
               for b in [bundle, *(o / "bundle" for o in args.students)]]

    def student(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The run's student timeline, or the mean of the ensemble's (same stride: the same inference times)."""
        if not isinstance(x, np.ndarray) and len(scorers) > 1:  # blocks of a file: each student streams them all
            x = np.concatenate(list(x))
        lines = [s(x) for s in scorers]
        if any(t.shape != lines[0][0].shape for t, _ in lines):
            raise SystemExit("error: --students must share the run's stride")
        return lines[0][0], np.mean([v for _, v in lines], axis=0)
    powers = args.peak_power if args.peak_power is not None else [pair.verifier_block.peak_power]
    own = pair.verifier_block.lookback_ms
    lookbacks = args.lookback if args.lookback is not None else [((0, own), (0,)) if own else ((0,),)]
    if any(not 0.0 <= p <= MAX_PEAK_POWER for p in powers):
        print(f"error: --peak-power must be within [0, {MAX_PEAK_POWER:g}]", file=sys.stderr)
        return 2
    rules: list[tuple[str, Rule]] = [(f"{g:g}:{e}:{'-' if c is None else c}:{h}", (g, e, c, h)) for g, e, c, h in args.rules]
    if args.budget_gates is not None:
        val = args.run / "data" / "eval" / "validation" / "negatives.wav"
        tl, seconds = we.score_files(student, [val], lambda p: wav_blocks(p, 16000), concatenate=True)
        for h in args.holds:
            g = we.lowest_gate(tl[""][1], seconds, args.budget_gates, VERIFY_EVERY, VERIFY_MAX_CALLS, h)
            if g is not None:
                rules.append((f"budget {args.budget_gates:g}, hold {h}: {g:g}", (g, VERIFY_EVERY, VERIFY_MAX_CALLS, h)))
    rows, wavs = we.annotated_positives(dev / label, dev / f"{label}.tsv", label)
    audio = {w.name: load_audio(w, 16000) for w in wavs}
    real = load_audio(real_negatives(args.realdev, args.work / "real_negatives.wav"), 16000)
    audio["negatives"] = np.concatenate([real, load_audio(synth, 16000)])  # one stream, as the yardstick streams them
    print(f"streaming the student over {len(wavs)} real positives and {sum(x.shape[0] for x in audio.values()) / 57.6e6:.2f} h of audio ...", flush=True)
    timelines = {k: student(x) for k, x in audio.items()}
    asked = {k: AskedScores(pair.verifier, label, audio[k], t) for k, (t, _) in timelines.items()}
    real_s, both_s = real.shape[0] / 16000.0, audio["negatives"].shape[0] / 16000.0
    in_real = timelines["negatives"][0] <= 1000.0 * real_s  # the real negatives alone: the stream's first part
    table = []
    for (name, (g, e, c, h)), pp, lb in ((r, p, b) for r in rules for p in powers for b in lookbacks):
        if len(powers) > 1 or args.peak_power is not None:
            name = f"{name} peak^{pp:g}"
        if args.lookback is not None and lb != ((0,),):
            name = f"{name} back " + ",".join("|".join(map(str, x)) for x in lb)

        def scored(k: str, rule: Rule = (g, e, c, h), pp: float = pp, lb: Lookback = lb) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
            v, mask = verified(asked[k], timelines[k][1], rule, pp, lb)
            return (timelines[k][0], v), mask

        pos = {k: scored(k)[0] for k in audio if k != "negatives"}
        (t_n, v_n), mask = scored("negatives")
        calls = int(mask[in_real].sum())  # the rule is causal: the stream's first part asks as the real negatives alone would
        runs = int(sum(len(lb[min(int(n), len(lb) - 1)]) for n in call_numbers(held_open(timelines["negatives"][1] >= g, h), mask)[mask & in_real]))
        row: dict[str, Any] = {"rule": name, "gate": g, "every": e, "max_calls": c, "hold": h, "peak_power": pp,
                               "lookback_ms": [list(x) for x in lb], "verifier_runs_per_hour_real": runs / (real_s / 3600.0),
                               "verifier_calls_per_hour_real": calls / (real_s / 3600.0)}
        for key, neg, total in (("real_negatives_only", (t_n[in_real], v_n[in_real]), real_s), ("real_and_synthesized_negatives", (t_n, v_n), both_s)):
            row[key] = we.frr_points(we.sweep(pos, rows, neg, total, we.THRESHOLDS))
        table.append(row)
        frr = {k: " / ".join("-" if (v := row[k][f"frr_at_{fa:g}_fa_per_hour"]) is None else f"{100 * v:.1f}" for fa in we.FA_POINTS)
               for k in ("real_negatives_only", "real_and_synthesized_negatives")}
        runs = f" ({row['verifier_runs_per_hour_real']:.0f} runs)" if row["verifier_runs_per_hour_real"] != row["verifier_calls_per_hour_real"] else ""
        print(f"  {name:<28} {row['verifier_calls_per_hour_real']:5.0f} calls/h real{runs} | real {frr['real_negatives_only']}% | "
              f"with synthesized speech {frr['real_and_synthesized_negatives']}%", flush=True)
    out = args.json or REPO / "bench" / "results" / f"verifier_rules_{label}.json"
    command = " ".join(["python bench/verifier_rules.py", *(sys.argv[1:] if argv is None else argv)])
    write_json(out, {"what": "a two-stage bundle's verifier asked by other rules (gate, every, max_calls, hold), offline on the real dev "
                             "streams; FRR at 0.5 / 1 / 2 / 5 FA/h", "command": command, "date": datetime.date.today().isoformat(),
                     "bundle": str(bundle),
                     "students": [str(bundle), *(str(o / "bundle") for o in args.students)], "label": label, "rows": table, "machine": machine_facts()})
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
