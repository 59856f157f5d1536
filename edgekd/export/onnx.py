"""Checkpoint -> ONNX bundle: model.onnx (fp32), manifest.json, golden/ (input, expected output, a WAV and its detections)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.export.bundle import finalize_manifest, staging_dir
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.kws_post import KwsPostprocessConfig
from edgekd.runtime.manifest import ModelManifest, TensorSpec

__all__ = ["export_onnx", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "features"
OUTPUT_NAME = "logits"
MANIFEST_METADATA_KEY = "edgekd_manifest"


def _torch_to_onnx(model: Any, window_frames: int, n_mels: int, path: Path) -> None:
    import torch

    example = torch.zeros(2, window_frames, n_mels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    prog = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        opset_version=18,
        external_data=False,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes={"x": {0: batch}},
        verbose=False,
    )
    prog.save(str(path))


def _golden_inputs(fp: FrontendParams, window_frames: int, wav: np.ndarray | None) -> np.ndarray:
    n = (window_frames - 1) * fp.hop_samples + fp.window_samples
    fe = LogMelFrontend(fp)
    if wav is not None and wav.shape[0] >= n:
        starts = np.linspace(0, wav.shape[0] - n, 4).astype(int)
        return np.stack([fe.features(wav[s : s + n]) for s in starts]).astype(np.float32)
    rng = np.random.default_rng(0)
    return np.stack([fe.features(0.1 * rng.standard_normal(n).astype(np.float32)) for _ in range(4)])


def export_onnx(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    name: str | None = None,
    golden_wav: str | os.PathLike[str] | None = None,
    postprocess: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    int8: bool = False,
    ptq_calibration: np.ndarray | None = None,
) -> ModelManifest:
    """Export a checkpoint as a bundle folder ``out`` (replaced atomically if it exists).

    fp32 by default; ``int8=True`` for a QAT checkpoint (QDQ graph with int8 weights);
    ``ptq_calibration`` (feature windows) for onnxruntime's post-training quantization of a float one.
    """
    import onnx
    import torch

    from edgekd.runtime.wav import load_audio
    from edgekd.train.checkpoint import Checkpoint
    from edgekd.train.profile import count_macs, count_params

    ckpt = Checkpoint.load(checkpoint)
    if int8 and not ckpt.is_qat:
        raise ConfigError(f"{checkpoint}: not QAT-trained, so --int8 has no ranges to use; run `edgekd train qat {checkpoint}` "
                          "first, or use --ptq DATA_DIR for post-training quantization")
    if ckpt.is_qat and not int8:
        raise ConfigError(f"{checkpoint}: a QAT checkpoint; export it with --int8")
    if int8 and ptq_calibration is not None:
        raise ConfigError("--int8 (QAT) and --ptq are two different int8 paths; give one")
    model = ckpt.build()
    streamable = hasattr(model, "input_frames") and ptq_calibration is None
    quantization = "int8-qat" if int8 else "int8-ptq" if ptq_calibration is not None else "fp32"
    if int8:
        from edgekd.train.qat import freeze

        freeze(model)
    fp = FrontendParams.from_dict(ckpt.frontend)
    T, M = int(getattr(model, "input_frames", ckpt.window_frames)), ckpt.n_mels
    pp = KwsPostprocessConfig.from_dict(postprocess or {})
    wav = load_audio(golden_wav, fp.sample_rate) if golden_wav is not None else None
    golden_in = _golden_inputs(fp, T, wav)
    with torch.no_grad():
        golden_torch = model(torch.from_numpy(golden_in)).numpy()
    bundle_name = name or Path(out).name
    manifest = ModelManifest(
        name=bundle_name,
        task="kws",
        labels=ckpt.labels,
        sample_rate=fp.sample_rate,
        frontend=fp.to_dict(),
        model_file="model.onnx",
        inputs=(TensorSpec(INPUT_NAME, (-1, T, M)),),
        outputs=(TensorSpec(OUTPUT_NAME, (-1, len(ckpt.labels))),),
        window_frames=T,
        quantization=quantization,
        postprocess=pp.to_dict(),
        provenance={
            "arch": ckpt.arch,
            "params": count_params(model),
            "macs_per_inference": count_macs(model, (1, T, M)),
            "checkpoint": Path(checkpoint).name,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "host": f"{platform.system()} {platform.machine()}",
            **ckpt.provenance,
            "train_config": ckpt.config,
        },
        metrics=dict(ckpt.metrics, **(metrics or {})),
        golden={
            "input": "golden/input.npy",
            "output": "golden/output.npy",
            "atol": 1e-4,
            "rtol": 1e-4,
        },
    )
    with staging_dir(out) as tmp:
        model_path = tmp / "model.onnx"
        if int8:
            from edgekd.export.int8 import export_qat_onnx

            export_qat_onnx(model, T, M, model_path, INPUT_NAME, OUTPUT_NAME)
        elif ptq_calibration is not None:
            from edgekd.export.int8 import ptq_quantize

            fp32 = tmp / "fp32.onnx"
            _torch_to_onnx(model, T, M, fp32)
            ptq_quantize(fp32, model_path, ptq_calibration, INPUT_NAME)
            fp32.unlink()
        else:
            _torch_to_onnx(model, T, M, model_path)
        proto = onnx.load(str(model_path))
        meta = manifest.to_dict()
        meta.pop("files", None)
        entry = proto.metadata_props.add()
        entry.key = MANIFEST_METADATA_KEY
        entry.value = json.dumps(meta, sort_keys=True)
        proto.producer_name = "edgekd"
        onnx.save(proto, str(model_path))
        (tmp / "golden").mkdir()
        np.save(tmp / "golden" / "input.npy", golden_in)
        golden_out = _run_onnx(model_path, golden_in)
        err = float(np.max(np.abs(golden_out - golden_torch)))
        if quantization == "fp32":
            if err > 1e-3:
                raise ConfigError(f"exported ONNX differs from torch by {err:.2e}; export is broken for this model")
        else:
            # int8: the same answer on another CPU is exact in practice; allow one step of the output quantizer.
            step = output_quant_step(model_path)
            manifest = manifest.replace(golden=dict(manifest.golden, atol=1.01 * step, rtol=0.0))
            if quantization == "int8-qat" and err > 2.01 * step:
                raise ConfigError(f"int8 ONNX differs from the QAT model by {err:.3g} (> 2 steps of {step:.3g}); export is broken")
        np.save(tmp / "golden" / "output.npy", golden_out)
        from edgekd.export.graph_stats import graph_stats

        stats = graph_stats(model_path)
        manifest = manifest.replace(provenance=dict(manifest.provenance, torch_vs_onnx_max_abs=err, graph_params=stats["params"],
                                                    graph_macs_per_inference=stats["macs_per_inference"]))
        if streamable:
            manifest = manifest.replace(streaming=_export_streaming(model, tmp, fp, pp, M, int8=int8))
            _check_streaming_parity(tmp, manifest, golden_in, golden_out, int8)
        if wav is not None:
            manifest = _write_golden_stream(tmp, manifest, wav)
        manifest = finalize_manifest(tmp, manifest)
    return manifest


def _export_streaming(model: Any, tmp: Path, fp: FrontendParams, pp: KwsPostprocessConfig, n_mels: int, int8: bool = False) -> dict[str, Any]:
    """model_stream.onnx: (frames, state_0..n) -> (logits, state_out_0..n), one hop per call; its initial state.
    For a QAT model the graph is int8 like model.onnx (QDQ, weights folded to int8 initializers); the states stay
    float32 at the boundary (dequantized values: exact, and one tensor type for every bundle)."""
    import torch

    from edgekd.train.students.dscnn_stream import StreamingStep

    hop_ms = 1000.0 * fp.hop_samples / fp.sample_rate
    hop = max(1, round(pp.stride_ms / hop_ms))
    step = StreamingStep(model).eval()
    shapes = step.state_shapes(hop)
    floor = torch.full((1, hop, n_mels), fp.floor_value)
    states = [torch.zeros(sh) for sh in shapes]  # example inputs for the trace; the real initial state comes below
    names_in = [f"state_{i}" for i in range(len(shapes))]
    names_out = [f"state_out_{i}" for i in range(len(shapes))]
    path = tmp / "model_stream.onnx"
    with torch.no_grad():
        torch.onnx.export(step, (floor, *states), str(path), dynamo=False, opset_version=18,
                          input_names=["frames", *names_in], output_names=[OUTPUT_NAME, *names_out])
    if int8:
        from edgekd.export.int8 import fold_weight_quantization

        fold_weight_quantization(path)
    # the initial state is the exported graph's own state after a long silence (what the whole-window buffer starts
    # with): computed by the graph, not by torch, whose fake quantization can round a value differently from
    # onnxruntime's integer kernels; enough hops flush every state, whatever it started from
    from edgekd.runtime.backends.onnx import OnnxBackend

    graph = OnnxBackend(path)
    init = {n: s.numpy() for n, s in zip(names_in, states, strict=True)}
    silence = floor.numpy()
    for _ in range(-(-model.input_frames // hop) + 1):
        out = graph.run({"frames": silence, **init})
        init = {n: out[o] for n, o in zip(names_in, names_out, strict=True)}
    np.savez(tmp / "state_init.npz", **init)
    from edgekd.export.graph_stats import graph_stats

    return {"model_file": "model_stream.onnx", "hop_frames": hop,
            "graph_macs_per_hop": graph_stats(path)["macs_per_inference"], "frames_input": "frames", "logits_output": OUTPUT_NAME,
            "states": [{"input": i, "output": o, "shape": list(sh)} for i, o, sh in zip(names_in, names_out, shapes, strict=True)],
            "init": "state_init.npz"}


def _check_streaming_parity(tmp: Path, manifest: ModelManifest, golden_in: np.ndarray, golden_out: np.ndarray, int8: bool) -> None:
    """The streaming graph, fed the golden window hop by hop from its initial state, must end on the whole-window
    graph's logits: within 1e-4 for fp32, within one step of the output quantizer (plus rounding) for int8."""
    from edgekd.runtime.backends.onnx import OnnxBackend

    st = manifest.streaming
    step = OnnxBackend(tmp / st["model_file"])
    with np.load(tmp / st["init"]) as z:
        states = {k: z[k] for k in z.files}
    hop = int(st["hop_frames"])
    window = golden_in[-1]  # (T, M)
    # silence before the window up to a whole number of hops (the initial state is that of a long silence)
    floor = FrontendParams.from_dict(manifest.frontend).floor_value
    frames = np.concatenate([np.full(((-window.shape[0]) % hop, window.shape[1]), floor, np.float32), window])
    got = golden_out[-1]
    for start in range(0, frames.shape[0], hop):
        out = step.run({st["frames_input"]: frames[None, start : start + hop], **states})
        states = {x["input"]: out[x["output"]] for x in st["states"]}
        got = out[st["logits_output"]][0]
    tol = 1.01 * output_quant_step(tmp / st["model_file"]) if int8 else 1e-4
    err = float(np.max(np.abs(got - golden_out[-1])))
    if err > tol:
        raise ConfigError(f"the streaming graph ends {err:.3g} away from the whole-window logits (tolerance {tol:.3g}); export is broken")


def output_quant_step(path: Path) -> float:
    """Scale of the DequantizeLinear that produces the model output (one int8 step of the logits)."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    producer = {o: n for n in g.node for o in n.output}
    name = g.output[0].name
    while name in producer:
        n = producer[name]
        if n.op_type == "DequantizeLinear":
            return float(np.max(consts[n.input[1]]))
        if n.op_type not in ("Identity", "Reshape", "Flatten", "Squeeze", "Transpose"):
            break
        name = n.input[0]
    raise ConfigError(f"{path}: the output is not produced by a DequantizeLinear; not an int8 QDQ model")


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    from edgekd.runtime.backends.onnx import OnnxBackend

    return OnnxBackend(path).run({INPUT_NAME: x})[OUTPUT_NAME]


def _write_golden_stream(tmp: Path, manifest: ModelManifest, wav: np.ndarray) -> ModelManifest:
    from edgekd.export.bundle import write_golden_detections
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.wav import write_wav

    write_wav(tmp / "golden" / "clip.wav", wav, manifest.sample_rate)
    manifest = manifest.replace(golden=dict(manifest.golden, wav="golden/clip.wav", detections="golden/detections.json"))
    write_golden_detections(tmp, manifest, OnnxBackend(tmp / manifest.model_file), "golden/detections.json")
    return manifest
