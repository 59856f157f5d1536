"""Sound-event detection study: teacher CRNN vs distilled causal student vs the same student without a teacher.

    python bench/sed.py --out runs/sed --json bench/results/sed.json        (make sed)

Soundscapes from `edgekd data synth-sed` (Debian-shipped recordings + synthesized speech and beeps; the test
soundscapes use recordings never heard in training). Reports event-based F1 (200 ms onset collar, offset
max(200 ms, 20%)), segment-based F1 (1 s), error rates, params and MACs for each model on the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "sed")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "sed.json")
    ap.add_argument("--train", type=int, default=400)
    ap.add_argument("--validation", type=int, default=60)
    ap.add_argument("--test", type=int, default=120)
    ap.add_argument("--teacher-epochs", type=int, default=25)
    ap.add_argument("--student-epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term")
    ap.add_argument("--temperature", type=float, default=1.0)
    args = ap.parse_args()

    import torch

    from edgekd.bench.machine import machine_facts
    from edgekd.cli.common import write_json
    from edgekd.data.synth_sed import SynthSedConfig, synth_sed
    from edgekd.runtime.sed_post import SedPostprocessConfig
    from edgekd.train.profile import count_macs, count_params
    from edgekd.train.sed import evaluate_sed, load_sed_split, predict_frames, train_sed

    data = args.out / "data"
    if not (data / "sed_meta.json").is_file():
        print(f"synthesizing soundscapes into {data}", flush=True)
        synth_sed(data, SynthSedConfig(scapes_train=args.train, scapes_validation=args.validation, scapes_test=args.test))
    labels = json.loads((data / "sed_meta.json").read_text())["labels"]
    tr, va, te = (load_sed_split(data, s, labels) for s in ("train", "validation", "test"))
    pp = SedPostprocessConfig(onset_threshold=0.5, offset_threshold=0.3, median_frames=3, min_duration_ms=80, merge_gap_ms=120)
    t0 = time.time()

    def fit(name: str, arch: str, epochs: int, teacher_logits=None) -> torch.nn.Module:  # type: ignore[no-untyped-def]
        path = args.out / f"{name}.pt"
        if path.is_file():
            from edgekd.train.students import build_model

            m = build_model(arch, n_labels=len(labels), n_mels=40)
            m.load_state_dict(torch.load(path, weights_only=True))
            return m.eval()
        m, hist = train_sed(arch, tr, va, labels, teacher_logits=teacher_logits, epochs=epochs, threads=args.threads, postprocess=pp,
                            alpha=args.alpha if teacher_logits is not None else 0.0, temperature=args.temperature,
                            progress=lambda s: print(f"  {name}: {s}", flush=True))
        torch.save(m.state_dict(), path)
        return m

    args.out.mkdir(parents=True, exist_ok=True)
    teacher = fit("teacher", "sed-crnn", args.teacher_epochs)
    t_logits = predict_frames(teacher, tr.feats)
    models = {"teacher (sed-crnn)": teacher,
              "student distilled (sed-causal-cnn)": fit("student_kd", "sed-causal-cnn", args.student_epochs, t_logits),
              "student no teacher (sed-causal-cnn)": fit("student_plain", "sed-causal-cnn", args.student_epochs)}
    # the distilled student as a runtime bundle (ONNX, task sed); its bytes go into the report
    from edgekd.export.sed import export_sed
    from edgekd.runtime.wav import load_audio

    bundle = args.out / "bundle-student-kd"
    golden = load_audio(data / "audio" / "test" / te.files[0], 16000)
    export_sed(models["student distilled (sed-causal-cnn)"], labels, bundle, name="sed-causal-cnn-kd", arch="sed-causal-cnn", postprocess=pp,
               golden_audio=golden)
    results = {}
    for name, m in models.items():
        r = evaluate_sed(predict_frames(m, te.feats), te, labels, 40.0, pp)
        results[name] = {"event_f1": r["event_based"]["overall"]["f1"], "event_macro_f1": r["event_based"]["macro_f1"],
                         "event_error_rate": r["event_based"]["error_rate"], "segment_f1": r["segment_based"]["overall"]["f1"],
                         "segment_error_rate": r["segment_based"]["error_rate"], "params": count_params(m),
                         "macs_per_second_of_audio": count_macs(m, (1, 100, 40)),
                         "class_wise_event_f1": {k: v["f1"] for k, v in r["event_based"]["class_wise"].items()}}
        if name.startswith("student distilled"):
            results[name]["onnx_bytes"] = (bundle / "model.onnx").stat().st_size
            results[name]["bundle"] = str(bundle)
        print(f"{name}: event-F1 {results[name]['event_f1']:.3f}, segment-F1 {results[name]['segment_f1']:.3f}, "
              f"{results[name]['params']} params", flush=True)
    summary = {"what": "SED on held-out soundscapes (test recordings never heard in training)", "command": "python bench/sed.py (make sed)",
               "labels": labels, "test_soundscapes": len(te.files), "alpha": args.alpha, "temperature": args.temperature,
               "epochs": {"teacher": args.teacher_epochs, "students": args.student_epochs}, "test_events": len(te.rows), "postprocess": pp.to_dict(),
               "models": results, "wall_seconds": time.time() - t0, "machine": machine_facts(),
               "not_yet": "QAT int8 of the SED student is the next step"}
    write_json(args.json, summary)
    print(f"-> {args.json}")


if __name__ == "__main__":
    main()
