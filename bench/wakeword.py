"""Wake word: distil openWakeWord's hey_jarvis into a tiny student; FRR at 0.5 FA/h and CPU, side by side.

    python bench/wakeword.py --out runs/wakeword --json bench/results/wakeword.json     (make wakeword)

Steps: synthesize a clip set (phrase / confusables + words / noise, voices split by variant) -> features ->
teacher scores for every training clip and for an unlabelled transfer set of running speech (train voices)
-> DS-CNN student distilled from those scores (and the same student on hard labels only; the distilled one also
QAT int8) -> ONNX bundles ->
streaming evaluation on held-out material: positives by test voices (with a tsv) and an hour of running
speech by test voices with confusables (negatives) -> FRR at the target FA/h for teacher and students, and
CPU ms per audio second of each on the same WAV in one run.

Licence: openWakeWord's heads are CC BY-NC-SA 4.0. The students made here are distilled from one, so they
stay under --out (runs/, git-ignored) and are never copied into models/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LABELS = ("hey_jarvis", "_unknown_", "_silence_")


def _cpu_ms_per_s(fn, seconds: float) -> float:  # type: ignore[no-untyped-def]
    c0 = time.process_time()
    fn()
    return 1000.0 * (time.process_time() - c0) / seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "wakeword")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "wakeword.json")
    ap.add_argument("--per-word", type=int, default=500, help="positive clips synthesized (confusables/words: twice that)")
    ap.add_argument("--transfer-minutes", type=float, default=20.0)
    ap.add_argument("--negative-minutes", type=float, default=60.0, help="running speech with confusables (hey travis, jarvis, ...)")
    ap.add_argument("--ordinary-minutes", type=float, default=120.0, help="running speech without confusables (ordinary audio)")
    ap.add_argument("--positives", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--arch", default="dscnn")
    ap.add_argument("--qat-epochs", type=int, default=2, help="QAT int8 fine-tuning of the distilled student (0: none)")
    ap.add_argument("--target-fa-per-hour", type=float, default=0.5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--teacher", default="oww:hey_jarvis")
    ap.add_argument("--flite-train-clips", type=int, default=0,
                    help="add this many training clips of the phrase by flite voices (then flite is no longer an unseen engine)")
    args = ap.parse_args()

    import numpy as np

    from edgekd import load_model
    from edgekd import wakeword_eval as we
    from edgekd.bench.machine import machine_facts
    from edgekd.cli.common import write_json
    from edgekd.data.speech_commands import SpeechCommands
    from edgekd.data.synth_kws import synth_kws
    from edgekd.data.synth_wakeword import engine_clips, positive_files, speech_stream, wakeword_config
    from edgekd.export.onnx import export_onnx
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.runtime.wav import load_audio, write_wav
    from edgekd.train.config import TrainConfig
    from edgekd.train.onnx_teacher import CHUNK, OnnxTeacher
    from edgekd.train.pipeline import load_kws_data, train_kws, train_qat
    from edgekd.train.wakeword import clip_targets, prob_logits, transfer_windows, with_transfer

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    data = out / "data"
    if not (data / "synth_meta.json").is_file():
        print(f"synthesizing the clip set into {data}", flush=True)
        synth_kws(data, wakeword_config(per_word=args.per_word, workers=args.workers))
    if args.flite_train_clips and not (data / "hey_jarvis" / "flite_00000.wav").is_file():
        print(f"adding {args.flite_train_clips} flite training clips", flush=True)
        engine_clips(data, args.flite_train_clips, engine="flite", seed=71)
    kd = load_kws_data(data, labels=LABELS, views=2, cache_dir=out / "cache", workers=args.workers)
    teacher = OnnxTeacher(args.teacher)
    tcache = out / "cache" / f"teacher-{teacher.identity[:12]}-{kd.train.key}.npz"
    if tcache.is_file():
        z = np.load(tcache)
        p_clip, tx, tp = z["p_clip"], z["tx"], z["tp"]
    else:
        clips = SpeechCommands(data).clips(LABELS, "train", sample_rate=16000, seed=0)
        print(f"teacher scores for {len(clips)} training clips", flush=True)
        p_clip = clip_targets(args.teacher, clips, workers=args.workers)
        print(f"transfer set: {args.transfer_minutes} min of running speech (train voices), scored by the teacher", flush=True)
        transfer = speech_stream(60 * args.transfer_minutes, split="train", seed=11)
        tx, tp = transfer_windows(teacher, transfer, LogMelFrontend(FrontendParams()))
        np.savez(tcache, p_clip=p_clip, tx=tx, tp=tp)
    kw = LABELS.index("hey_jarvis")
    pos_mask = kd.train.y[np.unique(kd.train.clip, return_index=True)[1]] == kw
    teacher_on = {"positive_clips_mean_score": float(p_clip[pos_mask].mean()), "negative_clips_mean_score": float(p_clip[~pos_mask].mean()),
                  "transfer_windows": int(tx.shape[0]), "transfer_windows_over_0.5": int((tp > 0.5).sum())}
    print(f"teacher on the training clips: {teacher_on}", flush=True)

    train_x = with_transfer(kd.train, tx)
    logits = prob_logits(np.concatenate([p_clip[kd.train.clip], tp]), kw, len(LABELS))
    students = {}
    for name, use_teacher in (("distilled", True), ("no_teacher", False)):
        ckpt = out / f"student-{args.arch}-{name}.pt"
        if not ckpt.is_file():
            cfg = TrainConfig(arch=args.arch, epochs=args.epochs, threads=args.workers, alpha=0.7 if use_teacher else 0.0, temperature=1.0)
            if use_teacher:
                train_kws(type(kd)(kd.root, train_x, kd.validation, kd.test, kd.views), ckpt, cfg, soft_targets=logits,
                          extra_provenance={"teacher": args.teacher, "teacher_sha256": teacher.identity,
                                            "licence": "distilled from a CC BY-NC-SA 4.0 openWakeWord head: do not redistribute"})
            else:
                train_kws(kd, ckpt, cfg)
        bundle = out / f"bundle-{args.arch}-{name}"
        if not (bundle / "manifest.json").is_file():
            export_onnx(ckpt, bundle, name=f"hey-jarvis-{args.arch}-{name}", postprocess={"stride_ms": 80, "smooth_ms": 160})
        students[name] = bundle
        if use_teacher and args.qat_epochs:  # the distilled student, fine-tuned with fake int8 on the same teacher targets
            q_ckpt = out / f"student-{args.arch}-{name}-qat.pt"
            if not q_ckpt.is_file():
                train_qat(type(kd)(kd.root, train_x, kd.validation, kd.test, kd.views), ckpt, q_ckpt, epochs=args.qat_epochs,
                          threads=args.workers, soft_targets=logits)
            q_bundle = out / f"bundle-{args.arch}-{name}-int8"
            if not (q_bundle / "manifest.json").is_file():
                export_onnx(q_ckpt, q_bundle, name=f"hey-jarvis-{args.arch}-{name}-int8", int8=True, postprocess={"stride_ms": 80, "smooth_ms": 160})
            students[f"{name} QAT int8"] = q_bundle

    # held-out material: test voices only
    pos_dir = out / "eval" / "positives"
    tsv = out / "eval" / "positives.tsv"
    if not tsv.is_file():
        positive_files(pos_dir, args.positives, split="test", seed=21)
    neg_wav = out / "eval" / f"negatives_{int(args.negative_minutes)}min.wav"
    if not neg_wav.is_file():
        print(f"negatives: {args.negative_minutes} min of running speech with confusables (test voices)", flush=True)
        write_wav(neg_wav, speech_stream(60 * args.negative_minutes, split="test", seed=31, confusable_rate=0.15), 16000)
    ord_wav = out / "eval" / f"ordinary_{int(args.ordinary_minutes)}min.wav"
    if not ord_wav.is_file():
        print(f"negatives: {args.ordinary_minutes} min of ordinary running speech, no confusables (test voices)", flush=True)
        write_wav(ord_wav, speech_stream(60 * args.ordinary_minutes, split="test", seed=51, confusable_rate=0.0), 16000)
    flite_dir = out / "eval" / "positives_flite"
    flite_tsv = out / "eval" / "positives_flite.tsv"
    if not flite_tsv.is_file():
        positive_files(flite_dir, args.positives // 2, engine="flite", seed=41)
    fest_dir = out / "eval" / "positives_festival"
    fest_tsv = out / "eval" / "positives_festival.tsv"
    if not fest_tsv.is_file():
        positive_files(fest_dir, args.positives // 2, engine="festival", seed=61)
    fest_rows = we.read_annotations(fest_tsv, labels=["hey_jarvis"])
    fest_wavs = sorted(fest_dir.glob("*.wav"))
    rows = we.read_annotations(tsv, labels=["hey_jarvis"])
    wavs = sorted(pos_dir.glob("*.wav"))
    flite_rows = we.read_annotations(flite_tsv, labels=["hey_jarvis"])
    flite_wavs = sorted(flite_dir.glob("*.wav"))

    def load(p: Path) -> np.ndarray:
        return load_audio(p, 16000)

    systems = {"teacher (openWakeWord hey_jarvis)": teacher.timeline}
    dets = {}
    for name, bundle in students.items():
        dets[name] = load_model(bundle, threads=1)
        systems[f"student {name} ({args.arch})"] = we.bundle_scorer(dets[name], "hey_jarvis")
    results = {}
    # 0.01 steps, then finer towards 1 (0.99 ... 0.9999): low FA/h lives in the last percent of the score range
    thresholds = sorted({round(float(x), 6) for x in np.concatenate([np.arange(0.01, 1.0, 0.01), 1.0 - np.logspace(-2, -4, 9)])})
    targets = (0.5, 1, 2, 5, 10, 20, 50)
    for label, scorer in systems.items():
        print(f"evaluating {label}", flush=True)
        pos, _ = we.score_files(scorer, wavs, load)
        neg, neg_s = we.score_files(scorer, [neg_wav], load, concatenate=True)
        sweep = we.sweep(pos, rows, neg[""], neg_s, thresholds)
        chosen = we.pick_threshold(sweep, args.target_fa_per_hour)
        ordn, ord_s = we.score_files(scorer, [ord_wav], load, concatenate=True)
        ord_sweep = we.sweep(pos, rows, ordn[""], ord_s, thresholds)
        fpos, _ = we.score_files(scorer, flite_wavs, load)  # the phrase spoken by another engine (flite)
        fest_pos, _ = we.score_files(scorer, fest_wavs, load)  # and by a third one (festival), never trained on

        def engine_frr(row: dict | None, scored: dict, refs: list) -> float | None:  # type: ignore[type-arg]
            if row is None:
                return None
            hits = we.count_hits({f: we.detections(t, s, row["threshold"]) for f, (t, s) in scored.items()}, refs)
            return 1.0 - hits / len(refs)

        def frr_at(sw: list, t: float) -> float | None:  # type: ignore[type-arg]
            r = we.pick_threshold(sw, t)
            return None if r is None else r["frr"]

        ord_chosen = we.pick_threshold(ord_sweep, args.target_fa_per_hour)
        results[label] = {"chosen": chosen, "sweep": sweep,
                          "ordinary_speech": {"chosen": ord_chosen, "sweep": ord_sweep,
                                              "frr_at_fa_per_hour": {str(t): frr_at(ord_sweep, t) for t in targets},
                                              "frr_other_engines_at_target": {"flite": engine_frr(ord_chosen, fpos, flite_rows),
                                                                              "festival": engine_frr(ord_chosen, fest_pos, fest_rows)}},
                          "frr_at_fa_per_hour": {str(t): frr_at(sweep, t) for t in targets},
                          "frr_flite_voices_at_fa_per_hour": {str(t): engine_frr(we.pick_threshold(sweep, t), fpos, flite_rows) for t in targets},
                          "frr_festival_voices_at_fa_per_hour": {str(t): engine_frr(we.pick_threshold(sweep, t), fest_pos, fest_rows) for t in targets}}
    we.det_plot({k: v["sweep"] for k, v in results.items()}, args.json.with_suffix(".png"), args.target_fa_per_hour)
    we.det_plot({k: v["ordinary_speech"]["sweep"] for k, v in results.items()}, args.json.with_name(args.json.stem + "_ordinary.png"),
                args.target_fa_per_hour)

    # CPU per audio second, same 60 s of the negative WAV, one run, 1 thread, alternating, median of 3
    clip = load(neg_wav)[: 60 * 16000]
    cpu: dict[str, list[float]] = {k: [] for k in systems}
    cpu["openWakeWord Model.predict (hey_jarvis)"] = []
    from openwakeword.model import Model

    from edgekd.train.onnx_teacher import oww_models_dir

    pcm = np.clip(np.round(clip * 32767), -32768, 32767).astype(np.int16)

    for _ in range(3):
        m = Model(wakeword_model_paths=[str(oww_models_dir() / "hey_jarvis_v0.1.onnx")])  # built outside the timed loop

        def oww_predict(m=m) -> None:  # type: ignore[no-untyped-def]
            for i in range(0, pcm.shape[0] - CHUNK + 1, CHUNK):
                m.predict(pcm[i : i + CHUNK])

        cpu["openWakeWord Model.predict (hey_jarvis)"].append(_cpu_ms_per_s(oww_predict, 60.0))
        cpu["teacher (openWakeWord hey_jarvis)"].append(_cpu_ms_per_s(lambda: teacher.scores(clip), 60.0))
        for name, det in dets.items():
            def run(d=det) -> None:
                s = d.create_stream()
                for i in range(0, clip.shape[0], CHUNK):
                    s.accept_waveform(clip[i : i + CHUNK])
            cpu[f"student {name} ({args.arch})"].append(_cpu_ms_per_s(run, 60.0))
    for k, v in cpu.items():
        results.setdefault(k, {})["cpu_ms_per_audio_s"] = float(np.median(v))
    for name, det in dets.items():
        results[f"student {name} ({args.arch})"]["params"] = det.manifest.provenance.get("params")
    summary = {"what": "FRR at a target FA/h on held-out synthesized material; teacher vs distilled student vs no-teacher student",
               "command": "python bench/wakeword.py (make wakeword)", "target_fa_per_hour": args.target_fa_per_hour,
               "positives": len(rows), "positives_flite": len(flite_rows), "positives_festival": len(fest_rows),
               "flite_train_clips": args.flite_train_clips, "negative_hours": neg_s / 3600.0,
               "ordinary_negative_hours": ord_s / 3600.0, "teacher": args.teacher,
               "teacher_sha256": teacher.identity,
               "teacher_on_training_clips": teacher_on, "config": {k: str(v) for k, v in vars(args).items()},
               "systems": results,
               "wall_seconds": time.time() - t_start, "machine": machine_facts(),
               "limits": (("training speech is espeak-ng" + (f" plus {args.flite_train_clips} flite phrase clips" if args.flite_train_clips else " only"))
                          + "; test positives are held-out espeak voices plus flite (CMU) and festival (kal) voices; "
                          "negatives are espeak running speech by held-out voices: one hour with confusable phrases, "
                          f"{args.ordinary_minutes / 60:g} hours without")}
    write_json(args.json, summary)
    for k, v in results.items():
        if "sweep" not in v:
            print(f"{k}: {v['cpu_ms_per_audio_s']:.2f} CPU ms per audio s", flush=True)
            continue
        c = v["chosen"]
        frr = f"FRR {100 * c['frr']:.1f}% at {c['fa_per_hour']:.2f} FA/h (thr {c['threshold']:.2f})" if c else "target FA/h not reached"
        print(f"{k}: {frr}; {v['cpu_ms_per_audio_s']:.2f} CPU ms per audio s", flush=True)
        for what, table in (("FRR", v["frr_at_fa_per_hour"]), ("FRR, flite voices,", v["frr_flite_voices_at_fa_per_hour"]),
                            ("FRR, festival voice,", v["frr_festival_voices_at_fa_per_hour"]),
                            ("FRR, ordinary-speech negatives,", v["ordinary_speech"]["frr_at_fa_per_hour"])):
            print(f"    {what} at FA/h " + ", ".join(f"{t}: {'-' if f is None else f'{100 * f:.1f}%'}" for t, f in table.items()))
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
