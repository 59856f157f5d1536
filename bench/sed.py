"""Sound-event detection study: teacher CRNN vs distilled causal student (fp32 and QAT int8) vs the same student
without a teacher.

    python bench/sed.py --out runs/sed --json bench/results/sed.json        (make sed = make demo TASK=sed)

Soundscapes from `edgekd data synth-sed` (Debian-shipped recordings + synthesized speech and beeps; the test
soundscapes use recordings never heard in training), plus unlabelled transfer soundscapes (training recordings)
that only the teacher labels. Each model's post-processing (median, thresholds, minimum duration, merge gap) is
tuned on the validation split by the same grid, then frozen for the test split. Reports event-based F1 (200 ms
onset collar, offset max(200 ms, 20%)), segment-based F1 (1 s), error rates, PSDS1 (threshold-free, through
sed_scores_eval: the psds extra), params, MACs and ONNX bytes; the
student bundles (fp32 and int8) are also scored through the runtime, as `edgekd eval --sed-annotations` does.
Trained models are kept under --out and reused on a rerun (delete them to retrain).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TEACHER, KD, QAT, PLAIN = "teacher (sed-crnn)", "student distilled (sed-causal-cnn)", "student distilled, QAT int8", "student no teacher (sed-causal-cnn)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "sed")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "sed.json")
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--validation", type=int, default=60)
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--transfer", type=int, default=800, help="unlabelled soundscapes for distillation (0: none)")
    ap.add_argument("--teacher-epochs", type=int, default=20)
    ap.add_argument("--student-epochs", type=int, default=60)
    ap.add_argument("--qat-epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term on labelled soundscapes")
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()

    import torch

    from edgekd.bench.machine import machine_facts
    from edgekd.cli.common import write_json
    from edgekd.data.synth_sed import SynthSedConfig, synth_sed
    from edgekd.evaluate_sed import evaluate_sed_bundle
    from edgekd.export.sed import export_sed
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.sed_post import SedPostprocessConfig, sigmoid
    from edgekd.runtime.wav import load_audio
    from edgekd.sed_metrics import psds1
    from edgekd.train.profile import count_macs, count_params
    from edgekd.train.qat import to_qat
    from edgekd.train.sed import evaluate_sed, load_sed_split, load_transfer, predict_frames, qat_sed, train_sed, tune_postprocess
    from edgekd.train.students import build_model

    data = args.out / "data"
    if not (data / "sed_meta.json").is_file():
        print(f"synthesizing soundscapes into {data}", flush=True)
        synth_sed(data, SynthSedConfig(scapes_train=args.train, scapes_validation=args.validation, scapes_test=args.test,
                                       scapes_transfer=args.transfer))
    labels = json.loads((data / "sed_meta.json").read_text())["labels"]
    tr, va, te = (load_sed_split(data, s, labels) for s in ("train", "validation", "test"))
    default_pp = SedPostprocessConfig(onset_threshold=0.5, offset_threshold=0.3, median_frames=3, min_duration_ms=80, merge_gap_ms=120)
    t0 = time.time()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)

    def fit(name: str, arch: str, train_fn) -> torch.nn.Module:  # type: ignore[no-untyped-def]
        """Train (or reload) one model; a QAT model is rebuilt through to_qat before its weights are loaded."""
        path = args.out / f"{name}.pt"
        if path.is_file():
            m = build_model(arch, n_labels=len(labels), n_mels=40)
            if name.endswith("_qat"):
                m = to_qat(m)
            m.load_state_dict(torch.load(path, weights_only=True))
            print(f"  reusing {path} (delete it to retrain)", flush=True)
            return m.eval()
        m, _ = train_fn(progress=lambda s: print(f"  {name}: {s}", flush=True))
        torch.save(m.state_dict(), path)
        return m

    common = {"threads": args.threads, "postprocess": default_pp}
    teacher = fit("teacher", "sed-crnn", lambda **kw: train_sed("sed-crnn", tr, va, labels, epochs=args.teacher_epochs, alpha=0.0, **common, **kw))
    t_logits = predict_frames(teacher, tr.feats)
    transfer = None
    if args.transfer:
        x_tr = load_transfer(data)
        transfer = (x_tr, predict_frames(teacher, x_tr))
    kd_args = {"teacher_logits": t_logits, "alpha": args.alpha, "temperature": args.temperature, "transfer": transfer, **common}
    kd = fit("student_kd", "sed-causal-cnn", lambda **kw: train_sed("sed-causal-cnn", tr, va, labels, epochs=args.student_epochs, **kd_args, **kw))
    models = {
        TEACHER: teacher,
        KD: kd,
        QAT: fit("student_kd_qat", "sed-causal-cnn", lambda **kw: qat_sed(kd, tr, va, labels, epochs=args.qat_epochs, **kd_args, **kw)),
        PLAIN: fit("student_plain", "sed-causal-cnn",
                   lambda **kw: train_sed("sed-causal-cnn", tr, va, labels, epochs=args.student_epochs, alpha=0.0, **common, **kw)),
    }

    def scores(r: dict) -> dict:  # type: ignore[type-arg]
        return {"event_f1": r["event_based"]["overall"]["f1"], "event_macro_f1": r["event_based"]["macro_f1"],
                "event_error_rate": r["event_based"]["error_rate"], "segment_f1": r["segment_based"]["overall"]["f1"],
                "segment_error_rate": r["segment_based"]["error_rate"]}

    results: dict[str, dict] = {}  # type: ignore[type-arg]
    golden = load_audio(data / "audio" / "test" / te.files[0], 16000)
    for name, m in models.items():
        pp, val_f1 = tune_postprocess(predict_frames(m, va.feats), va, labels, 40.0)
        test_logits = predict_frames(m, te.feats)
        r = evaluate_sed(test_logits, te, labels, 40.0, pp)
        psds = psds1({f: sigmoid(z) for f, z in zip(te.files, test_logits, strict=True)}, 0.04, te.rows, labels, te.durations)
        results[name] = {**scores(r), "psds1": psds, "validation_event_f1": val_f1, "postprocess": pp.to_dict(),
                         "with_default_postprocess": scores(evaluate_sed(test_logits, te, labels, 40.0, default_pp)),
                         "params": count_params(m), "macs_per_second_of_audio": count_macs(m, (1, 100, 40)),
                         "class_wise_event_f1": {k: v["f1"] for k, v in r["event_based"]["class_wise"].items()}}
        if name == TEACHER:  # not a streaming model, so no bundle; its ONNX file for the size column
            with tempfile.TemporaryDirectory() as d:
                torch.onnx.export(m.eval(), (torch.zeros(1, 400, 40),), f"{d}/t.onnx", dynamo=False, opset_version=18)
                results[name]["onnx_bytes"] = Path(f"{d}/t.onnx").stat().st_size
        elif name in (KD, QAT):  # runtime bundles; scored again through the runtime's own streaming events
            bundle = args.out / ("bundle-student-kd" if name == KD else "bundle-student-kd-int8")
            man = export_sed(m, labels, bundle, name="sed-causal-cnn-kd" + ("-int8" if name == QAT else ""), arch="sed-causal-cnn",
                             postprocess=pp, golden_audio=golden)
            rt = evaluate_sed_bundle(load_model(bundle), data / "test.tsv", data / "audio" / "test")
            results[name].update(onnx_bytes=(bundle / "model.onnx").stat().st_size, bundle=str(bundle.relative_to(REPO) if bundle.is_relative_to(REPO)
                                 else bundle), quantization=man.quantization, runtime=scores(rt))
        print(f"{name}: event-F1 {results[name]['event_f1']:.3f}, segment-F1 {results[name]['segment_f1']:.3f} (validation event-F1 "
              f"{val_f1:.3f}), {results[name]['params']} params", flush=True)
    gap = results[TEACHER]["event_f1"] - results[QAT]["event_f1"]
    ratio = results[TEACHER]["params"] / results[QAT]["params"]
    summary = {"what": "SED on held-out soundscapes (test recordings never heard in training)", "command": "python bench/sed.py (make sed)",
               "labels": labels, "test_soundscapes": len(te.files), "test_events": len(te.rows), "transfer_soundscapes": args.transfer,
               "alpha": args.alpha, "temperature": args.temperature,
               "epochs": {"teacher": args.teacher_epochs, "students": args.student_epochs, "qat": args.qat_epochs},
               "postprocess_tuning": "per model, grid over median 1-9 frames, onset 0.3-0.7, offset 0.5/0.75 x onset, min duration "
                                     "40/80/160 ms, merge gap 0/120/240 ms; best validation event-F1",
               "default_postprocess": default_pp.to_dict(), "models": results,
               "int8_student_vs_teacher": {"event_f1_points_behind": round(100 * gap, 2), "teacher_params_over_student": round(ratio, 1),
                                           "within_5_points": gap <= 0.05, "at_least_10x_fewer_params": ratio >= 10},
               "wall_seconds": time.time() - t0, "machine": machine_facts()}
    write_json(args.json, summary)
    print(f"int8 student: {100 * gap:.1f} event-F1 points behind the teacher with {ratio:.1f}x fewer parameters -> {args.json}")


if __name__ == "__main__":
    main()
