"""Sound-event detection study: teacher CRNN vs distilled causal student (fp32 and QAT int8) vs the same student
without a teacher.

    python bench/sed.py --out runs/sed --json bench/results/sed.json        (make sed = make demo TASK=sed)

Soundscapes from `edgekd data synth-sed` (Debian-shipped recordings + synthesized speech and beeps; the test
soundscapes use recordings never heard in training), plus unlabelled transfer soundscapes (training recordings)
that only the teacher labels. The recipe is `edgekd train sed`'s (edgekd/recipes/sed.py). Each model's
post-processing (median, thresholds, minimum duration, merge gap, latency) is tuned on the validation split by the
same grid, then frozen for the test split. Reports event-based F1 (200 ms onset collar, offset max(200 ms, 20%)),
segment-based F1 (1 s), error rates, PSDS1 (threshold-free, through sed_scores_eval: the psds extra), params,
MACs and ONNX bytes; the student bundles (fp32 and int8) are also scored through the runtime, as
`edgekd eval --sed-annotations` does. Trained models are kept under --out and reused on a rerun.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]

TEACHER, KD, QAT, PLAIN = "teacher (sed-crnn)", "student distilled (sed-causal-cnn)", "student distilled, QAT int8", "student no teacher (sed-causal-cnn)"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "sed")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "sed.json")
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--validation", type=int, default=60)
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--transfer", type=int, default=800, help="unlabelled soundscapes for distillation (0: none)")
    ap.add_argument("--teacher-epochs", type=int, default=20)
    ap.add_argument("--student-epochs", type=int, default=60)
    ap.add_argument("--qat-epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term on labelled soundscapes")
    ap.add_argument("--temperature", type=float, default=1.0)
    return ap.parse_args()


def _models(args: argparse.Namespace, d) -> tuple[dict, object]:  # type: ignore[no-untyped-def,type-arg]
    """Teacher, distilled student, its QAT int8 form and the same student without a teacher (trained or reused)."""
    from edgekd.recipes.sed import DEFAULT_POSTPROCESS, SedRecipe, fit_or_load, train_sed_models
    from edgekd.train.sed import train_sed

    recipe = SedRecipe(teacher_epochs=args.teacher_epochs, student_epochs=args.student_epochs, qat_epochs=args.qat_epochs, alpha=args.alpha,
                       temperature=args.temperature, threads=args.threads)
    say = lambda s: print(f"  {s}", flush=True)  # noqa: E731
    trained = train_sed_models(d, args.out, recipe, say=say)
    plain = fit_or_load(args.out / "student_plain.pt", "sed-causal-cnn", d.labels, lambda **kw: train_sed(
        "sed-causal-cnn", d.train, d.validation, d.labels, epochs=args.student_epochs, alpha=0.0, threads=args.threads,
        postprocess=DEFAULT_POSTPROCESS, **kw), say=say)
    return {TEACHER: trained["teacher"], KD: trained["student"], QAT: trained["student_qat"], PLAIN: plain}, recipe


def _score(models: dict, d, data: Path, out: Path) -> dict[str, dict]:  # type: ignore[no-untyped-def,type-arg]
    """Each model on the test split (post-processing tuned on validation); the students' bundles also through the runtime."""
    import torch

    from edgekd.recipes.sed import export_scored_bundle, score_sed_model, sed_bundle

    results: dict[str, dict] = {}  # type: ignore[type-arg]
    for name, m in models.items():
        pp, results[name] = score_sed_model(m, d)
        if name == TEACHER:  # not a streaming model, so no bundle; its ONNX file for the size column
            with tempfile.TemporaryDirectory() as tmp:
                torch.onnx.export(m.eval(), (torch.zeros(1, 400, 40),), f"{tmp}/t.onnx", dynamo=False, opset_version=18)
                results[name]["onnx_bytes"] = Path(f"{tmp}/t.onnx").stat().st_size
        elif name in (KD, QAT):  # runtime bundles, scored again through the runtime's own streaming events
            bundle, bundle_name = sed_bundle(out, d.labels, int8=name == QAT)
            results[name].update(export_scored_bundle(m, d, data, bundle, bundle_name, pp))
        r = results[name]
        print(f"{name}: event-F1 {r['event_f1']:.3f}, segment-F1 {r['segment_f1']:.3f}, PSDS1 {r['psds1']} (validation event-F1 "
              f"{r['validation_event_f1']:.3f}), {r['params']} params", flush=True)
    return results


def main() -> None:
    args = _args()
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.data.synth_sed import SynthSedConfig, synth_sed
    from edgekd.recipes.sed import DEFAULT_POSTPROCESS, load_sed_data

    data = args.out / "data"
    if not (data / "sed_meta.json").is_file():
        print(f"synthesizing soundscapes into {data}", flush=True)
        synth_sed(data, SynthSedConfig(scapes_train=args.train, scapes_validation=args.validation, scapes_test=args.test,
                                       scapes_transfer=args.transfer))
    t0 = time.time()
    d = load_sed_data(data)
    models, recipe = _models(args, d)
    results = _score(models, d, data, args.out)
    gap = results[TEACHER]["event_f1"] - results[QAT]["event_f1"]
    ratio = results[TEACHER]["params"] / results[QAT]["params"]
    summary = {"what": "SED on held-out soundscapes (test recordings never heard in training)", "command": "python bench/sed.py (make sed)",
               "labels": d.labels, "test_soundscapes": len(d.test.files), "test_events": len(d.test.rows), "transfer_soundscapes": len(d.transfer),
               "alpha": args.alpha, "temperature": args.temperature, "recipe": asdict(recipe),
               "epochs": {"teacher": args.teacher_epochs, "students": args.student_epochs, "qat": args.qat_epochs},
               "postprocess_tuning": "per model on validation: grid over median 1-9 frames, onset 0.3-0.7, offset 0.5/0.75 x onset, min "
                                     "duration 40/80/160 ms, merge gap 0/120/240 ms; then latency 0-120 ms; then the grid again at that latency",
               "default_postprocess": DEFAULT_POSTPROCESS.to_dict(), "models": results,
               "int8_student_vs_teacher": {"event_f1_points_behind": round(100 * gap, 2), "teacher_params_over_student": round(ratio, 1),
                                           "within_5_points": gap <= 0.05, "at_least_10x_fewer_params": ratio >= 10},
               "wall_seconds": time.time() - t0, "machine": machine_facts()}
    write_json(args.json, summary)
    print(f"\n{'model':<38} {'event-F1':>8} {'segment-F1':>10} {'params':>8} {'MMAC/s':>7} {'ONNX bytes':>10} {'runtime event-F1':>16}")
    for name, r in results.items():
        rt = f"{r['runtime']['event_f1']:.3f}" if "runtime" in r else "-"
        print(f"{name:<38} {r['event_f1']:>8.3f} {r['segment_f1']:>10.3f} {r['params']:>8,} {r['macs_per_second_of_audio'] / 1e6:>7.1f} "
              f"{r.get('onnx_bytes', 0):>10,} {rt:>16}")
    print(f"int8 student: {100 * gap:.1f} event-F1 points behind the teacher with {ratio:.1f}x fewer parameters -> {args.json}")


if __name__ == "__main__":
    main()
