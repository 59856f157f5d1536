"""Wake word: distil openWakeWord's hey_jarvis into a tiny student; FRR at 0.5 FA/h and CPU, side by side.

    python bench/wakeword.py --out runs/wakeword --json bench/results/wakeword.json     (make wakeword)

Steps: synthesize a clip set with espeak-ng (phrase / confusables + words / noise, voices split by variant),
optionally add clips by flite's training voices (the phrase, and confusables + words) -> features -> teacher
scores for every training clip and for an unlabelled transfer set of running speech (espeak train voices, and
optionally flite train voices) -> DS-CNN student distilled from those scores (and the same student on hard
labels only; the distilled one also QAT int8) -> ONNX bundles -> streaming evaluation on held-out material:
positives by espeak test voices, by flite's held-out voice (rms) and by festival (an engine never trained on);
negatives: an hour of running speech with confusables, two hours without (espeak test voices) and ordinary
speech by flite's held-out voice and by festival -> FRR at the target FA/h for teacher and students, and CPU ms
per audio second of each on the same WAV in one run.

Layout under --out: data-w<per-word>/ (the espeak clip set) and eval/ (held-out material) are shared by every
variant; each variant (its training options) gets variants/<tag>/ with its data copy, caches and models, so
two variants never mix and a rerun reuses what exists.

Licence: openWakeWord's heads are CC BY-NC-SA 4.0. The students made here are distilled from one, so they
stay under --out (runs/, git-ignored) and are never copied into models/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from edgekd.core.units import SAMPLE_RATE

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
# 0.01 steps, then finer towards 1 (0.99 ... 0.9999): low FA/h lives in the last percent of the score range
THRESHOLDS = sorted({round(x / 100, 6) for x in range(1, 100)} | {round(1.0 - 10 ** (-2 - 2 * i / 8), 6) for i in range(9)})
TARGETS = (0.5, 1, 2, 5, 10, 20, 50)



def _cpu_ms_per_s(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    c0 = time.process_time()
    fn()
    return 1000.0 * (time.process_time() - c0) / seconds


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "wakeword")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "wakeword.json")
    ap.add_argument("--per-word", type=int, default=1000, help="positive clips synthesized (confusables/words: twice that)")
    ap.add_argument("--transfer-minutes", type=float, default=30.0, help="unlabelled espeak running speech (train voices)")
    ap.add_argument("--negative-minutes", type=float, default=60.0, help="running speech with confusables (hey travis, jarvis, ...)")
    ap.add_argument("--ordinary-minutes", type=float, default=120.0, help="running speech without confusables (ordinary audio)")
    ap.add_argument("--engine-negative-minutes", type=float, default=20.0,
                    help="ordinary running speech by flite's held-out voice and by festival, each (0: none)")
    ap.add_argument("--positives", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--arch", default="dscnn")
    ap.add_argument("--qat-epochs", type=int, default=2, help="QAT int8 fine-tuning of the distilled student (0: none)")
    ap.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                    help="also train the student on hard labels only (--no-baseline: skip it)")
    ap.add_argument("--extra-strides-ms", default="160,240",
                    help="also run the distilled student every this many ms instead of 80, comma-separated (no smoothing; '': none)")
    ap.add_argument("--target-fa-per-hour", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--teacher", default="oww:hey_jarvis")
    ap.add_argument("--flite-train-clips", type=int, default=0,
                    help="training clips of the phrase by flite's training voices (awb, slt, kal16)")
    ap.add_argument("--flite-negative-clips", type=int, default=0,
                    help="training clips of confusables and other words by flite's training voices (_unknown_)")
    ap.add_argument("--flite-transfer-minutes", type=float, default=0.0,
                    help="unlabelled running speech by flite's training voices, labelled by the teacher")
    return ap.parse_args()


def _variant_tag(args: argparse.Namespace) -> str:
    tag = f"w{args.per_word}-t{args.transfer_minutes:g}-e{args.epochs}-{args.arch}"
    if args.flite_train_clips or args.flite_negative_clips or args.flite_transfer_minutes:
        tag += f"-flite{args.flite_train_clips}p{args.flite_negative_clips}n{args.flite_transfer_minutes:g}t"
    return tag


def _train_data(args: argparse.Namespace, out: Path, variant: Path) -> Path:
    """The espeak clip set (shared), hard-linked into the variant with its flite clips when it has any."""
    import shutil

    from edgekd.data.synth_kws import synth_kws
    from edgekd.data.synth_wakeword import engine_clips, wakeword_config

    base = out / f"data-w{args.per_word}"
    if not (base / "synth_meta.json").is_file():
        print(f"synthesizing the clip set into {base}", flush=True)
        if base.exists():
            shutil.rmtree(base)  # an interrupted synthesis
        synth_kws(base, wakeword_config(per_word=args.per_word, workers=args.workers))
    if not (args.flite_train_clips or args.flite_negative_clips):
        return base
    data = variant / "data"
    if not (data / "flite_done").is_file():
        if data.exists():
            shutil.rmtree(data)
        shutil.copytree(base, data, copy_function=os.link)
        print(f"adding {args.flite_train_clips} flite phrase clips and {args.flite_negative_clips} flite confusable/word clips", flush=True)
        engine_clips(data, args.flite_train_clips, engine="flite", seed=71)
        engine_clips(data, args.flite_negative_clips, engine="flite", words=wakeword_config().other_words, seed=73)
        (data / "flite_done").write_text("ok\n", encoding="utf-8")
    return data


def _eval_material(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """Held-out positives (tsv beside each folder) and negative WAVs, written once under out/eval."""
    from edgekd.data.synth_wakeword import positive_files, speech_stream
    from edgekd.runtime.wav import write_wav

    ev = out / "eval"
    m = {"positives": ev / "positives", "positives_flite": ev / "positives_flite", "positives_festival": ev / "positives_festival",
         "negatives": ev / f"negatives_{int(args.negative_minutes)}min.wav", "ordinary": ev / f"ordinary_{int(args.ordinary_minutes)}min.wav"}
    for key, n, engine, seed in (("positives", args.positives, "espeak", 21), ("positives_flite", args.positives // 2, "flite", 41),
                                 ("positives_festival", args.positives // 2, "festival", 61)):
        if not m[key].with_suffix(".tsv").is_file():
            print(f"held-out positives: {n} by {engine} test voices", flush=True)
            positive_files(m[key], n, split="test", seed=seed, engine=engine)
    streams = [("negatives", args.negative_minutes, "espeak", 31, 0.15), ("ordinary", args.ordinary_minutes, "espeak", 51, 0.0)]
    if args.engine_negative_minutes:
        for engine, seed in (("flite", 81), ("festival", 91)):
            m[f"ordinary_{engine}"] = ev / f"ordinary_{engine}_{int(args.engine_negative_minutes)}min.wav"
            streams.append((f"ordinary_{engine}", args.engine_negative_minutes, engine, seed, 0.0))
    for key, minutes, engine, seed, rate in streams:
        if not m[key].is_file():
            print(f"negatives: {minutes:g} min of running speech by {engine} test voices, confusable rate {rate}", flush=True)
            write_wav(m[key], speech_stream(60 * minutes, split="test", seed=seed, confusable_rate=rate, engine=engine), 16000)
    return m


def _cpu_side_by_side(clip, teacher, dets: dict, arch: str) -> dict[str, float]:  # type: ignore[no-untyped-def,type-arg]
    """CPU ms per audio second on the same audio, one thread, systems alternating, median of 5 (on a shared 2-core
    VM single runs of Model.predict moved between 30 and 40 ms/s)."""
    import numpy as np
    from openwakeword.model import Model

    from edgekd.train.teachers.oww import CHUNK, oww_models_dir

    seconds = clip.shape[0] / 16000
    oww = "openWakeWord Model.predict (hey_jarvis)"
    cpu: dict[str, list[float]] = {oww: [], "teacher (openWakeWord hey_jarvis)": []}
    pcm = np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)
    for _ in range(5):
        m = Model(wakeword_model_paths=[str(oww_models_dir() / "hey_jarvis_v0.1.onnx")])  # built outside the timed loop

        def oww_predict(m=m) -> None:  # type: ignore[no-untyped-def]
            for i in range(0, pcm.shape[0] - CHUNK + 1, CHUNK):
                m.predict(pcm[i : i + CHUNK])

        cpu[oww].append(_cpu_ms_per_s(oww_predict, seconds))
        cpu["teacher (openWakeWord hey_jarvis)"].append(_cpu_ms_per_s(lambda: teacher.scores(clip), seconds))
        for name, det in dets.items():
            def run(d=det) -> None:  # type: ignore[no-untyped-def]
                s = d.create_stream()
                for i in range(0, clip.shape[0], CHUNK):
                    s.accept_waveform(clip[i : i + CHUNK])
            cpu.setdefault(f"student {name} ({arch})", []).append(_cpu_ms_per_s(run, seconds))
    return {k: float(np.median(v)) for k, v in cpu.items()}


def _transfer_audio(args: argparse.Namespace, out: Path) -> list:  # type: ignore[type-arg]
    """Unlabelled running speech by training voices (espeak, optionally flite), written once; the teacher labels it."""
    from edgekd.data.synth_wakeword import speech_stream
    from edgekd.runtime.wav import load_audio, write_wav

    transfer = []
    for engine, minutes, seed in (("espeak", args.transfer_minutes, 11), ("flite", args.flite_transfer_minutes, 13)):
        if minutes:
            wav = out / f"transfer_{engine}_{minutes:g}min.wav"
            if not wav.is_file():
                print(f"transfer set: {minutes:g} min of {engine} running speech (train voices)", flush=True)
                write_wav(wav, speech_stream(60 * minutes, split="train", seed=seed, engine=engine), SAMPLE_RATE)
            transfer.append(load_audio(wav, SAMPLE_RATE))
    return transfer


def _load(p: Path):  # type: ignore[no-untyped-def]
    from edgekd.runtime.wav import load_audio

    return load_audio(p, SAMPLE_RATE)


def _score_system(args: argparse.Namespace, scorer, m: dict[str, Path], pos_sets: dict) -> dict:  # type: ignore[no-untyped-def,type-arg]
    """One system (teacher or student) on every positive set and negative stream: sweeps, chosen thresholds, FRR at
    several FA/h targets, and by the engines never or little trained on."""
    from edgekd.eval import wakeword as we

    rows = pos_sets["positives"][0]
    scored = {k: we.score_files(scorer, w, _load)[0] for k, (_, w) in pos_sets.items()}
    pos = scored["positives"]

    def frr_at(sw: list, t: float) -> float | None:  # type: ignore[type-arg]
        r = we.pick_threshold(sw, t)
        return None if r is None else r["frr"]

    def engine_frr(row: dict | None, key: str) -> float | None:  # type: ignore[type-arg]
        if row is None:
            return None
        refs = pos_sets[key][0]
        hits = we.count_hits({f: we.detections(t, s, row["threshold"]) for f, (t, s) in scored[key].items()}, refs)
        return 1.0 - hits / len(refs)

    neg, neg_s = we.score_files(scorer, [m["negatives"]], _load, concatenate=True)
    sweep = we.sweep(pos, rows, neg[""], neg_s, THRESHOLDS)
    ordn, ord_s = we.score_files(scorer, [m["ordinary"]], _load, concatenate=True)
    ord_sweep = we.sweep(pos, rows, ordn[""], ord_s, THRESHOLDS)
    ord_chosen = we.pick_threshold(ord_sweep, args.target_fa_per_hour)
    engine_fa = {}
    for engine in ("flite", "festival"):
        if f"ordinary_{engine}" in m and ord_chosen is not None:
            eng_neg, eng_s = we.score_files(scorer, [m[f"ordinary_{engine}"]], _load, concatenate=True)
            fa = we.count_false_accepts(*eng_neg[""], ord_chosen["threshold"])
            engine_fa[engine] = {"false_accepts": fa, "hours": eng_s / 3600.0, "fa_per_hour": fa / (eng_s / 3600.0)}
    return {"chosen": we.pick_threshold(sweep, args.target_fa_per_hour), "sweep": sweep, "negative_seconds": neg_s,
            "ordinary_seconds": ord_s,
            "ordinary_speech": {"chosen": ord_chosen, "sweep": ord_sweep,
                                "frr_at_fa_per_hour": {str(t): frr_at(ord_sweep, t) for t in TARGETS},
                                "frr_other_engines_at_target": {"flite": engine_frr(ord_chosen, "positives_flite"),
                                                                "festival": engine_frr(ord_chosen, "positives_festival")},
                                "other_engine_negatives_at_target": engine_fa},
            "frr_at_fa_per_hour": {str(t): frr_at(sweep, t) for t in TARGETS},
            "frr_flite_voices_at_fa_per_hour": {str(t): engine_frr(we.pick_threshold(sweep, t), "positives_flite") for t in TARGETS},
            "frr_festival_voices_at_fa_per_hour": {str(t): engine_frr(we.pick_threshold(sweep, t), "positives_festival") for t in TARGETS}}


def _print_results(results: dict) -> None:  # type: ignore[type-arg]
    for k, v in results.items():
        if "sweep" not in v:
            print(f"{k}: {v['cpu_ms_per_audio_s']:.2f} CPU ms per audio s", flush=True)
            continue
        c = v["ordinary_speech"]["chosen"]
        frr = f"FRR {100 * c['frr']:.1f}% at {c['fa_per_hour']:.2f} FA/h (thr {c['threshold']:.4g})" if c else "target FA/h not reached"
        print(f"{k}: ordinary speech: {frr}; {v['cpu_ms_per_audio_s']:.2f} CPU ms per audio s", flush=True)
        o = v["ordinary_speech"]
        print("    at that threshold: FRR by other engines " + ", ".join(f"{e} {'-' if f is None else f'{100 * f:.1f}%'}"
                                                      for e, f in o["frr_other_engines_at_target"].items())
              + "; FA/h on other engines' speech " + ", ".join(f"{e} {r['fa_per_hour']:.1f}" for e, r in o["other_engine_negatives_at_target"].items()))
        for what, table in (("FRR, confusable hour,", v["frr_at_fa_per_hour"]), ("FRR, flite voice,", v["frr_flite_voices_at_fa_per_hour"]),
                            ("FRR, festival voice,", v["frr_festival_voices_at_fa_per_hour"]),
                            ("FRR, ordinary-speech negatives,", o["frr_at_fa_per_hour"])):
            print(f"    {what} at FA/h " + ", ".join(f"{t}: {'-' if f is None else f'{100 * f:.1f}%'}" for t, f in table.items()))


def _limits(args: argparse.Namespace) -> str:
    flite_training = [f"{n} {what}" for n, what in ((args.flite_train_clips, "phrase clips"), (args.flite_negative_clips, "confusable/word clips"),
                                                    (f"{args.flite_transfer_minutes:g} min" if args.flite_transfer_minutes else 0, "transfer speech")) if n]
    return ("training speech is espeak-ng" + (" plus flite's awb/slt/kal16 voices (" + ", ".join(flite_training) + ")" if flite_training else " only")
            + "; test positives are held-out espeak voices, flite's held-out rms voice and festival (kal, never trained on); "
            "negatives are running speech by held-out voices: one espeak hour with confusable phrases, "
            f"{args.ordinary_minutes / 60:g} espeak hours without, and {args.engine_negative_minutes:g} min each by flite rms and festival")


def main() -> None:
    args = _args()

    from edgekd import load_model
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.eval import wakeword as we
    from edgekd.recipes.wakeword import WakewordRecipe, teacher_targets, train_wakeword_students, wakeword_labels
    from edgekd.train.pipeline import load_kws_data
    from edgekd.train.teachers.oww import OnnxTeacher

    out: Path = args.out
    tag = _variant_tag(args)
    variant = out / "variants" / tag
    variant.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    data = _train_data(args, out, variant)
    kd = load_kws_data(data, labels=wakeword_labels("hey_jarvis"), views=2, cache_dir=out / "cache", workers=args.workers)
    teacher = OnnxTeacher(args.teacher)
    scores = teacher_targets(args.teacher, kd, _transfer_audio(args, out), variant / "teacher-targets.npz", workers=args.workers)
    teacher_on = scores.summary(kd.train)
    print(f"teacher on the training clips: {teacher_on}", flush=True)
    recipe = WakewordRecipe(arch=args.arch, epochs=args.epochs, qat_epochs=args.qat_epochs, views=2, threads=args.workers)
    students = train_wakeword_students(kd, scores, variant, recipe, teacher_spec=args.teacher, teacher_identity=teacher.identity,
                                       baseline=args.baseline, extra_strides_ms=tuple(int(x) for x in args.extra_strides_ms.split(",") if x.strip()),
                                       name_prefix="hey-jarvis")

    m = _eval_material(args, out)
    pos_sets = {k: (we.read_annotations(m[k].with_suffix(".tsv"), labels=["hey_jarvis"]), sorted(m[k].glob("*.wav")))
                for k in ("positives", "positives_flite", "positives_festival")}
    systems = {"teacher (openWakeWord hey_jarvis)": teacher.timeline}
    dets = {}
    for name, bundle in students.items():
        dets[name] = load_model(bundle, threads=1)
        systems[f"student {name} ({args.arch})"] = we.bundle_scorer(dets[name], "hey_jarvis")
    results = {}
    for label, scorer in systems.items():
        print(f"evaluating {label}", flush=True)
        results[label] = _score_system(args, scorer, m, pos_sets)
    seconds = [(v.pop("negative_seconds"), v.pop("ordinary_seconds")) for v in results.values()]
    neg_s, ord_s = seconds[0]  # the same negative WAVs for every system
    we.det_plot({k: v["sweep"] for k, v in results.items()}, args.json.with_suffix(".png"), args.target_fa_per_hour)
    we.det_plot({k: v["ordinary_speech"]["sweep"] for k, v in results.items()}, args.json.with_name(args.json.stem + "_ordinary.png"),
                args.target_fa_per_hour)
    for k, v in _cpu_side_by_side(_load(m["negatives"])[: 60 * SAMPLE_RATE], teacher, dets, args.arch).items():
        results.setdefault(k, {})["cpu_ms_per_audio_s"] = v
    for name, det in dets.items():
        results[f"student {name} ({args.arch})"]["params"] = det.manifest.provenance.get("params")
    summary = {"what": "FRR at a target FA/h on held-out synthesized material; teacher vs distilled student vs no-teacher student",
               "command": "python bench/wakeword.py " + " ".join(sys.argv[1:]), "variant": tag, "target_fa_per_hour": args.target_fa_per_hour,
               "positives": len(pos_sets["positives"][0]), "positives_flite": len(pos_sets["positives_flite"][0]),
               "positives_festival": len(pos_sets["positives_festival"][0]),
               "flite_train_clips": args.flite_train_clips, "flite_negative_clips": args.flite_negative_clips,
               "flite_transfer_minutes": args.flite_transfer_minutes, "negative_hours": neg_s / 3600.0,
               "ordinary_negative_hours": ord_s / 3600.0, "teacher": args.teacher, "teacher_sha256": teacher.identity,
               "teacher_on_training_clips": teacher_on, "config": {k: str(v) for k, v in vars(args).items()},
               "systems": results, "wall_seconds": time.time() - t_start, "machine": machine_facts(), "limits": _limits(args)}
    write_json(args.json, summary)
    _print_results(results)
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
