"""Remake models/kws12-dscnn-kd-int8 from the shipped fp32 bundle models/kws12-dscnn-kd, with 7-bit weights.

    .venv/bin/python tools/remake_int8.py [--work runs/remake-int8] [--install]

Why: the first int8 bundle (2026-11-27) had int8 weights on the full -127..127 scale. onnxruntime's u8s8 kernels on
x86 CPUs without VNNI add pairs of uint8 x int8 products in int16 and saturate, so on such a CPU (an AMD EPYC)
its logits came out up to 24 steps off its golden output and `edgekd selftest` failed. The QAT recipe now puts
weights on a 7-bit scale (edgekd/train/qat.py), where those kernels are exact.

How: the float checkpoint is rebuilt from the fp32 bundle's ONNX (BatchNorm is already folded into the conv weights
and biases there, so the rebuilt model has identity BatchNorms; checked equal to the ONNX within 1e-5), the
Speech Commands-layout data is synthesized again with `make demo`'s settings (espeak-ng, 1,000 per keyword,
seed 0), QAT runs 2 epochs as in `make demo`, distilling from the float student's own logits (the teacher
checkpoint is not shipped), and the bundle is exported with the shipped post-processing and golden WAV, plus a
full-integer TFLite model. Test accuracies go into the manifest and are printed; --install replaces the bundle
under models/ (the model card is kept; update its numbers by hand from the printout).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FP32 = REPO / "models" / "kws12-dscnn-kd"
INT8 = REPO / "models" / "kws12-dscnn-kd-int8"


def float_checkpoint_from_bundle(bundle: Path, out: Path):  # type: ignore[no-untyped-def]
    """A float DS-CNN checkpoint with the bundle's weights (BN folded, so BN is identity), checked against its ONNX."""
    import onnx
    import torch
    from onnx import numpy_helper

    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.models import build_model

    man = ModelManifest.load(bundle)
    w = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(str(bundle / man.model_file)).graph.initializer}
    labels = tuple(man.labels)
    model = build_model("dscnn", n_labels=len(labels), n_mels=w["norm.mean"].shape[0]).eval()
    sd = model.state_dict()
    for k in sd:
        if k.endswith(".0.weight") and k in w:  # a conv: the folded weight
            sd[k] = w[k]
        elif k.endswith(".1.bias") and k.replace(".1.bias", ".0.weight_bias") in w:  # its BN carries the folded bias
            sd[k] = w[k.replace(".1.bias", ".0.weight_bias")]
        elif k.endswith(".1.weight") and k.replace(".1.weight", ".0.weight") in w:
            sd[k] = torch.ones_like(sd[k])
        elif k.endswith(".1.running_mean"):
            sd[k] = torch.zeros_like(sd[k])
        elif k.endswith(".1.running_var"):
            eps = 1e-5
            sd[k] = torch.full_like(sd[k], 1.0 - eps)  # (y - 0) / sqrt(1 - eps + eps) = y
        elif k in w:
            sd[k] = w[k]
    model.load_state_dict(sd)
    x = np.load(bundle / man.golden_block.input)
    with torch.no_grad():
        got = model(torch.from_numpy(x)).numpy()
    want = OnnxBackend(bundle / man.model_file).run({man.inputs[0].name: x})[man.outputs[0].name]
    err = float(np.abs(got - want).max())
    if err > 1e-4:
        raise SystemExit(f"rebuilt float model differs from {bundle.name}'s ONNX by {err:.2e}; the weight mapping is wrong")
    prov = man.provenance
    ck = Checkpoint(arch="dscnn", labels=labels, n_mels=int(w["norm.mean"].shape[0]), frontend=dict(man.frontend),
                    window_frames=int(man.window_frames), state_dict={k: v.contiguous() for k, v in model.state_dict().items()},
                    config=dict(prov["train_config"]), metrics=dict(man.metrics),
                    provenance={"rebuilt_from": f"models/{bundle.name}/{man.model_file}", "teacher_sha256": prov.get("teacher_sha256")})
    ck.save(out)
    print(f"float checkpoint rebuilt from {bundle.name} (max |torch - onnx| {err:.1e})", flush=True)
    return ck


def _demo_data(work: Path) -> Path:
    """The demo's espeak dataset under ``work/data`` (synthesized once)."""
    from edgekd.data.synth_kws import SynthKwsConfig, synth_kws

    data = work / "data"
    if not (data / "synth_meta.json").is_file():
        if data.exists():
            shutil.rmtree(data)
        print(f"synthesizing the demo dataset into {data}", flush=True)
        synth_kws(data, SynthKwsConfig(per_word=1000, unknown_total=2000, silence_total=800, seed=0))
    return data


def _install(bundle: Path) -> None:
    """Replace models/kws12-dscnn-kd-int8 with ``bundle`` (its model card kept), through a staged copy."""
    shutil.copy(INT8 / "MODEL_CARD.md", bundle / "MODEL_CARD.md")
    staged = INT8.with_name(INT8.name + ".new")
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(bundle, staged)
    shutil.rmtree(INT8)
    staged.rename(INT8)
    print(f"installed {INT8}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "remake-int8")
    ap.add_argument("--install", action="store_true", help="replace models/kws12-dscnn-kd-int8 (MODEL_CARD.md kept)")
    args = ap.parse_args()

    import torch

    from edgekd.eval.kws import evaluate_kws
    from edgekd.export.bundle import update_manifest
    from edgekd.export.int8 import calibration_features
    from edgekd.export.onnx import export_onnx
    from edgekd.export.tflite import add_tflite_to_bundle
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.pipeline import load_kws_data, train_qat

    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    data = _demo_data(work)
    float_ckpt = work / "dscnn-kd.pt"
    ck = float_checkpoint_from_bundle(FP32, float_ckpt)
    kd = load_kws_data(data, labels=ck.labels, views=3, cache_dir=work / "cache")
    model = ck.build()
    with torch.no_grad():
        soft = np.concatenate([model(torch.from_numpy(kd.train.x[i : i + 512].astype(np.float32))).numpy()
                               for i in range(0, len(kd.train), 512)])
    qat_ckpt = work / "dscnn-kd-qat.pt"
    if not qat_ckpt.is_file():
        train_qat(kd, float_ckpt, qat_ckpt, epochs=2, threads=2, soft_targets=soft)
    q = Checkpoint.load(qat_ckpt)
    old = ModelManifest.load(INT8)
    bundle = work / "kws12-dscnn-kd-int8"
    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "clip.wav"
        shutil.copy(INT8 / old.golden_block.wav, wav)
        export_onnx(qat_ckpt, bundle, name=old.name, golden_wav=wav, int8=True, postprocess=dict(old.postprocess))
    add_tflite_to_bundle(qat_ckpt, bundle, calibration=calibration_features(data, ck.frontend, ck.window_frames))
    accs = {f"test_accuracy_{b}": evaluate_kws(load_model(bundle, backend=b), data, "test")["accuracy"] for b in ("onnx", "litert")}
    update_manifest(bundle, metrics=dict(ModelManifest.load(bundle).metrics, **accs, test_accuracy=accs["test_accuracy_onnx"],
                                         test_split="synthesized espeak-ng, voice variants unseen in training"),
                    provenance=dict(ModelManifest.load(bundle).provenance, remade_by="tools/remake_int8.py", qat_weight_bits=q.config["qat_weight_bits"]))
    fp32_acc = evaluate_kws(load_model(FP32), data, "test")["accuracy"]
    report = {"fp32_bundle_test_accuracy": fp32_acc, **accs, "test_accuracy_torch_qat": q.metrics["test_accuracy_torch"],
              "onnx_bytes": (bundle / "model.onnx").stat().st_size, "tflite_bytes": (bundle / "model.tflite").stat().st_size,
              "test_clips": len(kd.test)}
    print(json.dumps(report, indent=1), flush=True)
    (work / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.install:
        _install(bundle)


if __name__ == "__main__":
    main()
