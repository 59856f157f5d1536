"""``edgekd demo``: the whole KWS path on the embedded synthesized data, ending in runs/<out>/report.md."""

from __future__ import annotations

import datetime as _dt
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekd.core.fsutil import atomic_write_text
from edgekd.core.units import SAMPLE_RATE

__all__ = ["run_demo", "DemoConfig", "DEMO_WEIGHTS", "demo_engines"]


# The demo's voice mix: every installed engine, Kokoro (0.3 s of wall time per word on 2 cores) weighted down so
# that `make demo` stays within its time budget; the shipped models use the bank's default weights (tools/reship_kws.sh).
DEMO_WEIGHTS = {"kokoro": 1.0, "piper": 1.0, "espeak": 3.0, "flite": 1.0, "festival": 1.0}


def demo_engines() -> tuple[tuple[str, float], ...]:
    """Every installed engine of the voice bank with the demo's weights (a notice names the missing ones)."""
    from edgekd.data.voices.bank import parse_engines

    return tuple((e, DEMO_WEIGHTS[e]) for e in parse_engines(None))


@dataclass(frozen=True)
class DemoConfig:
    per_word: int = 400
    unknown: int = 800
    silence: int = 320
    views: int = 3
    teacher_epochs: int = 4
    se_teacher_epochs: int = 20  # the head on the frozen speech embedding (seconds per epoch: the backbone runs once per view)
    student_epochs: int = 5
    student_arch: str = "dscnn"
    qat_epochs: int = 2
    threads: int = 2
    seed: int = 0
    engines: tuple[tuple[str, float], ...] = ()  # the voice bank's engines and weights; () = every installed one
    rooms: bool = True  # training views through simulated rooms, real background recordings, clipping
    realdev: str = ""  # a folder of real speech in Speech Commands layout, for measurement only ("" = none)


# What each bundle tag of the demo is, for the report.
BUNDLE_NAMES = {"kd": "distilled student, fp32 bundle", "ce": "no-teacher student, fp32 bundle", "qat": "distilled student, QAT int8 bundle",
                "ptq": "distilled student, PTQ int8 bundle"}


def _say(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _data_line(data: Path) -> str:
    meta_file = data / "synth_meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    per = meta.get("clips_per_engine")
    engines = ", ".join(f"{e} {n}" for e, n in sorted(per.items(), key=lambda t: -t[1])) if per else "espeak-ng"
    counts = meta.get("config", {})
    return (f"voice bank ({engines} clips), {counts.get('per_word', '?')} per keyword, {counts.get('unknown_total', '?')} _unknown_, "
            f"{counts.get('silence_total', '?')} _silence_")


def _realdev(cfg: DemoConfig, bundles: dict[str, Path], teachers: dict[str, list[Path]]) -> dict[str, float]:
    """Accuracy of each teacher (torch; several = the mean of their logits) and bundle (runtime) on real speech (dev
    speakers), when ``cfg.realdev`` holds it; measurement only."""
    if not cfg.realdev:
        return {}
    root = Path(cfg.realdev)
    if not root.is_dir():
        _say(f"no real-speech folder at {root}: no real-speech numbers")
        return {}
    from edgekd.eval.kws import evaluate_kws
    from edgekd.runtime.detector import load_kws
    from edgekd.train.evaluate import checkpoint_logits, ensemble_accuracy

    out = {}
    logits = {p: checkpoint_logits(p, root) for p in {p for ps in teachers.values() for p in ps}}
    for tag, ps in teachers.items():
        out[tag] = ensemble_accuracy([logits[p] for p in ps], ps)
        _say(f"real speech (dev speakers), {tag}: {100 * out[tag]:.2f}%")
    for tag, b in bundles.items():
        out[tag] = evaluate_kws(load_kws(b), root, "all")["accuracy"]
        _say(f"real speech (dev speakers), {b.name}: {100 * out[tag]:.2f}%")
    return out


def _dataset(data: Path, cfg: DemoConfig) -> None:
    """Synthesize the dataset with the voice bank unless a finished one is there."""
    from edgekd.data.synth_kws import SynthKwsConfig, synth_kws

    if (data / "synth_meta.json").is_file():
        _say(f"reusing dataset {data}")
        return
    _say(f"synthesizing the dataset into {data}")
    if data.exists():
        import shutil

        shutil.rmtree(data)
    from edgekd.core.progress import Progress
    from edgekd.data.voices.cache import default_cache_dir

    with Progress("synthesize", unit="clip") as bar:
        synth_kws(data, SynthKwsConfig(per_word=cfg.per_word, unknown_total=cfg.unknown, silence_total=cfg.silence, seed=cfg.seed,
                                       engines=cfg.engines), progress=bar.callback(), cache_dir=default_cache_dir())


def _cnn_teacher(kd: Any, teacher: Path, cfg: DemoConfig, cache: Path) -> dict[str, Any]:
    """Train the cnn-teacher (or reuse it); its row of the report."""
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import train_kws

    if teacher.is_file():
        _say(f"reusing teacher {teacher} (delete it to retrain)")
        tc = Checkpoint.load(teacher)
    else:
        _say("training the CNN teacher")
        tc = train_kws(kd, teacher, TrainConfig(arch="cnn-teacher", epochs=cfg.teacher_epochs, threads=cfg.threads, seed=cfg.seed,
                                                alpha=0.0, label_smoothing=0.1), cache_dir=cache)
    return {"accuracy": tc.metrics["test_accuracy_torch"], "params": tc.metrics["params"], "macs": tc.metrics["macs_per_inference"],
            "bytes": teacher.stat().st_size, "format": "torch checkpoint"}


def _se_teacher(kd: Any, teacher: Path, cfg: DemoConfig, cache: Path, data: Path) -> dict[str, Any] | None:
    """Train the speech-embedding teacher (or reuse it): a head, with 2 cross-fitting heads, on the frozen embedding
    of the same augmented views; the backbone runs once per view and its frames are cached under ``cache``, so the
    students never run it. Its row of the report, or None (with a notice) when the backbone is not installed."""
    from edgekd.core.errors import ConfigError
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.config import TrainConfig
    from edgekd.train.teachers.embedding_teacher import train_embedding_teacher
    from edgekd.train.teachers.oww import oww_models_dir
    from edgekd.train.teachers.speech_embedding import BACKBONE_FILES

    try:
        backbone = oww_models_dir()
    except ConfigError as e:
        _say(f"no speech-embedding teacher ({e}); the student distils from the CNN teacher alone")
        return None
    if teacher.is_file():
        _say(f"reusing teacher {teacher} (delete it to retrain)")
        tc = Checkpoint.load(teacher)
    else:
        _say("training the speech-embedding teacher (a head on the frozen embedding; the backbone runs once per training view)")
        cfg_t = TrainConfig(arch="speech-embedding", epochs=cfg.se_teacher_epochs, threads=cfg.threads, seed=cfg.seed, alpha=0.0,
                            label_smoothing=0.1)
        tc = train_embedding_teacher(kd.train, kd.validation, kd.test, teacher, cfg_t, folds=2, cache_dir=cache,
                                     provenance={"data": str(data), "views": cfg.views, "rooms": cfg.rooms})
    return {"accuracy": tc.metrics["test_accuracy_torch"], "params": tc.metrics["params"], "macs": tc.metrics["macs_per_inference"],
            "bytes": teacher.stat().st_size + sum((backbone / f).stat().st_size for f in BACKBONE_FILES),
            "format": "torch head + frozen ONNX speech embedding (params and MACs: the head's)"}


def _ensemble_row(kd: Any, teachers: list[Path], rows: list[dict[str, Any]], cache: Path) -> dict[str, Any]:
    """The teachers together as the student hears them: the mean of their logits on the test split."""
    from edgekd.train.evaluate import ensemble_accuracy, feature_set_logits

    acc = ensemble_accuracy([(feature_set_logits(p, kd.test, cache_dir=cache), kd.test.y) for p in teachers], teachers)
    return {"accuracy": acc, "params": sum(r["params"] for r in rows), "macs": sum(r["macs"] for r in rows),
            "bytes": sum(r["bytes"] for r in rows), "format": "mean of the teachers' logits"}


def _student(out: Path, kd: Any, data: Path, cache: Path, cfg: DemoConfig, teachers: list[Path], tag: str, stream_wav: Path,
             tuned: dict[str, Any] | None, timings: dict[str, float]) -> tuple[Path, dict[str, Any], dict[str, Any] | None]:
    """Train (or reuse) one student, export its bundle, choose post-processing on validation for the first one,
    evaluate it on the test split. Returns the bundle, its report row and the post-processing in force."""
    from edgekd.eval.kws import evaluate_kws
    from edgekd.eval.tune import sweep_postprocess
    from edgekd.export.bundle import apply_postprocess, update_manifest
    from edgekd.export.onnx import export_onnx
    from edgekd.runtime.detector import load_kws
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.config import TrainConfig
    from edgekd.train.pipeline import train_kws

    ck = out / f"{cfg.student_arch}-{tag}.pt"
    t = time.time()
    if ck.is_file():
        _say(f"reusing {ck} (delete it to retrain)")
        sc = Checkpoint.load(ck)
    else:
        _say(f"training {cfg.student_arch} " + (f"distilled from {_names(teachers)}" if teachers else "without a teacher"))
        sc = train_kws(kd, ck, TrainConfig(arch=cfg.student_arch, epochs=cfg.student_epochs, threads=cfg.threads, seed=cfg.seed,
                                           alpha=0.7 if teachers else 0.0), teacher=teachers or None, cache_dir=cache)
    timings[f"student-{tag}"] = time.time() - t
    b = out / "bundles" / f"kws12-{cfg.student_arch}-{tag}"
    export_onnx(ck, b, golden_wav=stream_wav, postprocess=tuned)
    if tuned is None:  # the first (distilled) bundle: choose post-processing on the validation split
        _say("choosing stride / smoothing / threshold on the validation split (edgekd tune)")
        res = sweep_postprocess(load_kws(b), data)
        tuned = res.postprocess()
        apply_postprocess(b, tuned, postprocess_tuned_on="validation split")
        _say(f"chosen {tuned}: recall {res.recall:.3f}, {res.false_alarms} false alarms in {res.audio_seconds:.0f} s")
    det = load_kws(b)
    ev = evaluate_kws(det, data, "test")
    atomic_write_text(out / f"eval-{tag}.json", json.dumps(ev, indent=1) + "\n")
    update_manifest(b, metrics=dict(det.manifest.metrics, test_accuracy=ev["accuracy"], test_n=ev["n"],
                                    test_split="synthesized by the voice bank, voices unseen in training"))
    row = {"accuracy": ev["accuracy"], "accuracy_torch": sc.metrics["test_accuracy_torch"], "params": sc.metrics["params"],
           "macs": sc.metrics["macs_per_inference"], "bytes": (b / "model.onnx").stat().st_size, "format": "ONNX fp32"}
    return b, row, tuned


def _names(teachers: list[Path]) -> str:
    return " + ".join({"se-teacher.pt": "the speech-embedding teacher", "teacher.pt": "the CNN teacher"}.get(p.name, p.name) for p in teachers)


def _stream_detections(bundle: Path, wav: Path) -> list[dict[str, Any]]:
    """``edgekd run BUNDLE --wav WAV``: the detections, printed as JSON lines."""
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.wav import load_audio

    _say(f"streaming {wav.name} through the distilled bundle (edgekd run)")
    stream = load_kws(bundle).create_stream()
    x = load_audio(wav, SAMPLE_RATE)
    detections = []
    for i in range(0, x.shape[0], 1280):
        detections += [d.to_dict() for d in stream.accept_waveform(x[i : i + 1280])]
    for d in detections:
        print(json.dumps(d), flush=True)
    return detections


def run_demo(out: Path, cfg: DemoConfig = DemoConfig()) -> Path:
    """The KWS chain end to end under ``out`` (data, the CNN and speech-embedding teachers, students with and without them, bundles, tuning, int8,
    evaluation, a streamed WAV, real speech when present); finished steps are reused. Returns the report's path."""
    from edgekd.data.synth_kws import synth_keyword_stream
    from edgekd.runtime.wav import write_wav
    from edgekd.train.pipeline import load_kws_data

    t_start = time.time()
    out.mkdir(parents=True, exist_ok=True)
    data, cache, teacher, se_teacher = out / "data", out / "cache", out / "teacher.pt", out / "se-teacher.pt"
    timings: dict[str, float] = {}
    t = time.time()
    _dataset(data, cfg)
    timings["data"] = time.time() - t
    t = time.time()
    kd = load_kws_data(data, views=cfg.views, seed=cfg.seed, cache_dir=cache, rooms=cfg.rooms)
    timings["features"] = time.time() - t
    _say(f"features: {len(kd.train)} training views, {len(kd.validation)} validation, {len(kd.test)} test clips")
    t = time.time()
    results: dict[str, dict[str, Any]] = {"teacher (cnn-teacher)": _cnn_teacher(kd, teacher, cfg, cache)}
    timings["teacher"] = time.time() - t
    t = time.time()
    teachers, teacher_tags = [teacher], {"teacher (cnn-teacher)": [teacher]}
    se_row = _se_teacher(kd, se_teacher, cfg, cache, data)
    if se_row is not None:
        teachers = [se_teacher, teacher]
        results["teacher (speech-embedding head)"] = se_row
        results["both teachers (what the student distils from)"] = _ensemble_row(kd, teachers, list(results.values()), cache)
        teacher_tags.update({"teacher (speech-embedding head)": [se_teacher], "both teachers (what the student distils from)": teachers})
        timings["speech-embedding teacher"] = time.time() - t

    stream_wav = out / "keywords.wav"
    audio, truth = synth_keyword_stream(("yes", "stop", "go", "left", "no", "right"), seed=cfg.seed + 7)
    write_wav(stream_wav, audio, SAMPLE_RATE)
    atomic_write_text(out / "keywords_truth.json", json.dumps(truth, indent=1) + "\n")
    bundles: dict[str, Path] = {}
    tuned: dict[str, Any] | None = None
    student_tags = {"kd": f"{cfg.student_arch} distilled (KD from {'both teachers' if len(teachers) > 1 else 'the CNN teacher'})",
                    "ce": f"{cfg.student_arch} no teacher"}
    for tag, use_teacher in (("kd", True), ("ce", False)):
        bundles[tag], row, tuned = _student(out, kd, data, cache, cfg, teachers if use_teacher else [], tag, stream_wav, tuned, timings)
        results[student_tags[tag]] = row

    t = time.time()
    quant = _quantization(out, kd, data, teachers, stream_wav, out / f"{cfg.student_arch}-kd.pt", bundles, cfg, tuned)
    timings["quantization"] = time.time() - t
    detections = _stream_detections(bundles["kd"], stream_wav)
    t = time.time()
    real = _realdev(cfg, bundles, teacher_tags)
    if real:
        timings["real speech"] = time.time() - t
    tag_of = {v: k for k, v in student_tags.items()}  # a student's row name -> its bundle tag; a teacher's is its own
    for name, r in results.items():  # the real-speech column of the main table
        tag = tag_of.get(name, name)
        if tag in real:
            r["realdev_accuracy"] = real[tag]
    timings["total"] = time.time() - t_start
    report = _report(out, cfg, results, truth, detections, timings, quant, tuned, real, _data_line(data))
    _say(f"report: {report}")
    print(report.read_text())
    return report


def _quantization(out: Path, kd: Any, data: Path, teachers: list[Path], stream_wav: Path, float_ckpt: Path,
                  bundles: dict[str, Path], cfg: DemoConfig, postprocess: dict[str, Any] | None) -> dict[str, Any]:
    """QAT int8 and PTQ int8 bundles beside fp32, TFLite for each when the converter is installed; one table."""
    from edgekd.bench.latency import inference_latency_ms
    from edgekd.bench.machine import machine_facts
    from edgekd.eval.kws import evaluate_kws
    from edgekd.export.bundle import update_manifest
    from edgekd.export.int8 import calibration_features
    from edgekd.export.onnx import export_onnx
    from edgekd.export.tflite import add_tflite_to_bundle, tflite_available
    from edgekd.runtime.backends.litert import litert_available
    from edgekd.runtime.detector import load_kws
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.pipeline import train_qat

    qat_ckpt = out / f"{cfg.student_arch}-kd-qat.pt"
    if qat_ckpt.is_file():
        _say(f"reusing {qat_ckpt} (delete it to retrain)")
    else:
        _say("quantization-aware training (int8) of the distilled student, KD still on")
        train_qat(kd, float_ckpt, qat_ckpt, teacher=teachers, epochs=cfg.qat_epochs, threads=cfg.threads, cache_dir=out / "cache")
    ck = Checkpoint.load(float_ckpt)
    calib = calibration_features(data, ck.frontend, ck.input_frames)
    bundles["qat"] = out / "bundles" / f"kws12-{cfg.student_arch}-kd-int8"
    bundles["ptq"] = out / "bundles" / f"kws12-{cfg.student_arch}-kd-ptq"
    _say("exporting the QAT int8 and the PTQ int8 bundles")
    export_onnx(qat_ckpt, bundles["qat"], golden_wav=stream_wav, int8=True, postprocess=postprocess)
    export_onnx(float_ckpt, bundles["ptq"], golden_wav=stream_wav, ptq_calibration=calib, postprocess=postprocess)
    have_tflite = tflite_available() and litert_available()
    if have_tflite:
        _say("converting to TFLite (fp32 for fp32, full-integer int8 for the int8 bundles)")
        add_tflite_to_bundle(float_ckpt, bundles["kd"])
        add_tflite_to_bundle(qat_ckpt, bundles["qat"], calibration=calib)
        add_tflite_to_bundle(float_ckpt, bundles["ptq"], calibration=calib)
    else:
        _say("TFLite converter or LiteRT not installed: TFLite columns left empty")
    rows = []
    for tag, name in (("kd", "fp32"), ("ptq", "PTQ int8 (onnxruntime quantize_static)"), ("qat", "QAT int8")):
        b = bundles[tag]
        row: dict[str, Any] = {"variant": name, "bundle": b.name}
        for backend in ("onnx", "litert"):
            if backend == "litert" and not have_tflite:
                continue
            det = load_kws(b, backend=backend)
            file = det.manifest.tflite_file if backend == "litert" else det.manifest.model_file
            row[backend] = {"accuracy": evaluate_kws(det, data, "test")["accuracy"], "model_bytes": (b / file).stat().st_size,
                            "latency_ms": inference_latency_ms(det)}
        accs = {f"test_accuracy_{k}": v["accuracy"] for k, v in row.items() if isinstance(v, dict)}
        update_manifest(b, metrics=dict(ModelManifest.load(b).metrics, **accs, test_accuracy=row["onnx"]["accuracy"],
                                        test_split="synthesized by the voice bank, voices unseen in training"))
        rows.append(row)
    result = {"what": "fp32 vs PTQ int8 vs QAT int8, test split = unseen espeak-ng voice variants, 1 thread",
              "command": "make demo", "machine": machine_facts(), "rows": rows}
    atomic_write_text(out / "quantization.json", json.dumps(result, indent=1) + "\n")
    return result


def _report(out: Path, cfg: DemoConfig, results: dict[str, dict[str, Any]], truth: list[dict[str, Any]],
            detections: list[dict[str, Any]], timings: dict[str, float], quant: dict[str, Any], tuned: dict[str, Any] | None,
            real: dict[str, float], data_line: str) -> Path:
    import numpy as np
    import onnxruntime
    import torch

    from edgekd.bench.machine import cpu_model
    from edgekd.eval.matching import match

    lines = [
        "# edgekd demo report (KWS, Speech Commands v2-12 labels)",
        "",
        f"- date: {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}",
        f"- machine: {platform.machine()}, {cpu_model()}, Python {platform.python_version()}; torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, numpy {np.__version__}",
        f"- data: {data_line}; "
        f"test split = voices never used in training; rooms in augmentation: {'yes' if cfg.rooms else 'no'}",
        f"- command: `edgekd demo --out {out}`",
        "",
        "| model | test accuracy (synthesized) | real speech (dev) | params | MACs / inference | model bytes | format |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rd = f"{100 * r['realdev_accuracy']:.2f}%" if "realdev_accuracy" in r else "-"
        lines.append(f"| {name} | {100 * r['accuracy']:.2f}% | {rd} | {r['params']:,} | {r['macs'] / 1e6:.2f} M | {r['bytes']:,} | {r['format']} |")
    kd = next(v for k, v in results.items() if "distilled" in k)
    ce = next(v for k, v in results.items() if "no teacher" in k)
    diff = f"{100 * (kd['accuracy'] - ce['accuracy']):+.2f} points on synthesized voices"
    if "realdev_accuracy" in kd and "realdev_accuracy" in ce:
        diff += f", {100 * (kd['realdev_accuracy'] - ce['realdev_accuracy']):+.2f} on real speech"
    lines += ["", f"Distillation vs the same student without a teacher (one seed): {diff}. "
              "See bench/README.md (`make kd-study`) for means over seeds. The speech-embedding teacher's backbone runs "
              "once per training view (its frames and the teachers' logits are cached under cache/); the student never runs it.", "",
              "## int8: fp32 vs PTQ vs QAT (1 thread; latency = one 1 s window, p50)", "",
              "| variant | ORT accuracy | ORT bytes | ORT p50 ms | LiteRT accuracy | TFLite bytes | LiteRT p50 ms |",
              "|---|---|---|---|---|---|---|"]
    for r in quant["rows"]:
        o, li = r["onnx"], r.get("litert")
        lt = (f"{100 * li['accuracy']:.2f}% | {li['model_bytes']:,} | {li['latency_ms']['p50']:.3f}" if li else "- | - | -")
        lines.append(f"| {r['variant']} | {100 * o['accuracy']:.2f}% | {o['model_bytes']:,} | {o['latency_ms']['p50']:.3f} | {lt} |")
    if real:
        lines += ["", "## Real speech (dev speakers)", "", f"Accuracy on {cfg.realdev} (measurement only, never trained on; teachers in "
                  "torch, bundles through the runtime):", ""]
        lines += [f"- {BUNDLE_NAMES.get(tag, tag)}: {100 * acc:.2f}%" for tag, acc in real.items()]
    lines += ["", "(also in quantization.json, with machine facts)", "",
              "## Streaming a WAV through `edgekd run`", "",
              f"Post-processing chosen on the validation split (`edgekd tune`): {tuned}", "", "Spoken (held-out voices):", ""]
    lines += [f"- {t['label']} at {t['onset_ms']}-{t['offset_ms']} ms" for t in truth]
    lines += ["", "Detections:", ""]
    lines += [f"- {d['label']} at {d['t_ms']} ms (score {d['score']:.3f})" for d in detections] or ["- none"]
    hit, false = match([(t["label"], t["onset_ms"], t["offset_ms"]) for t in truth], [(d["label"], d["t_ms"]) for d in detections])
    lines += ["", f"{int(hit.sum())} of {len(truth)} spoken keywords detected, {false} false alarms, {len(detections)} detections in all.", "",
              "## Time", "", *[f"- {k}: {v:.0f} s" for k, v in timings.items()], ""]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines))
    atomic_write_text(out / "report.json", json.dumps({"results": results, "truth": truth, "detections": detections, "timings_s": timings,
                                                       "realdev_accuracy": real}, indent=1) + "\n")
    return path

