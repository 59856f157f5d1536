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
from edgekd.export.quiet import quiet_torch_export
from edgekd.export.verify import FP32_EXPORT_ATOL, FP32_GOLDEN_ATOL, INT8_GOLDEN_STEPS, KWS_INT8_EXPORT_STEPS, check_export, int8_atol, output_quant_step
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.kws_post import KwsPostprocessConfig
from edgekd.runtime.manifest import Golden, KwsStreaming, ModelManifest, StateSpec, TensorSpec

__all__ = ["export_onnx", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "features"
OUTPUT_NAME = "logits"
MANIFEST_METADATA_KEY = "edgekd_manifest"


def _torch_to_onnx(model: Any, window_frames: int, n_mels: int, path: Path) -> None:
    import torch

    example = torch.zeros(2, window_frames, n_mels)
    batch = torch.export.Dim("batch", min=1, max=4096)
    with quiet_torch_export():
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


def _open_checkpoint(checkpoint: str | os.PathLike[str], int8: bool, ptq: bool) -> tuple[Any, Any, str]:
    """The checkpoint, its model ready to export (QAT frozen) and the bundle's quantization; misuse is a ConfigError."""
    from edgekd.train.checkpoint import Checkpoint

    ckpt = Checkpoint.load(checkpoint)
    if int8 and not ckpt.is_qat:
        raise ConfigError(f"{checkpoint}: not QAT-trained, so --int8 has no ranges to use; run `edgekd train qat {checkpoint}` "
                          "first, or use --ptq DATA_DIR for post-training quantization")
    if ckpt.is_qat and not int8:
        raise ConfigError(f"{checkpoint}: a QAT checkpoint; export it with --int8")
    if int8 and ptq:
        raise ConfigError("--int8 (QAT) and --ptq are two different int8 paths; give one")
    model = ckpt.build()
    if int8:
        import torch

        from edgekd.train.qat import freeze

        freeze(model, torch.zeros(1, int(getattr(model, "input_frames", ckpt.window_frames)), ckpt.n_mels))
    return ckpt, model, "int8-qat" if int8 else "int8-ptq" if ptq else "fp32"


def _kws_manifest(ckpt: Any, model: Any, checkpoint: str | os.PathLike[str], name: str, fp: FrontendParams, pp: KwsPostprocessConfig,
                  quantization: str, metrics: dict[str, Any] | None) -> ModelManifest:
    """The bundle's manifest before any file is written: tensors, frontend, post-processing, provenance."""
    import onnx
    import torch

    from edgekd.train.profile import count_macs, count_params

    T, M = int(getattr(model, "input_frames", ckpt.window_frames)), ckpt.n_mels
    return ModelManifest(
        name=name, task="kws", labels=ckpt.labels, sample_rate=fp.sample_rate, frontend=fp.to_dict(), model_file="model.onnx",
        inputs=(TensorSpec(INPUT_NAME, (-1, T, M)),), outputs=(TensorSpec(OUTPUT_NAME, (-1, len(ckpt.labels))),),
        window_frames=T, quantization=quantization, postprocess=pp.to_dict(),
        provenance={
            "arch": ckpt.arch, "params": count_params(model), "macs_per_inference": count_macs(model, (1, T, M)),
            "checkpoint": Path(checkpoint).name, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch": torch.__version__, "onnx": onnx.__version__, "host": f"{platform.system()} {platform.machine()}",
            **ckpt.provenance, "train_config": ckpt.config,
        },
        metrics=dict(ckpt.metrics, **(metrics or {})),
        golden=Golden(input="golden/input.npy", output="golden/output.npy", atol=FP32_GOLDEN_ATOL, rtol=FP32_GOLDEN_ATOL).to_dict(),
    )


def _write_model(model: Any, manifest: ModelManifest, tmp: Path, ptq_calibration: np.ndarray | None) -> Path:
    """model.onnx in ``tmp`` (QAT int8, PTQ int8 or fp32), with the manifest in its metadata."""
    import onnx

    T, M = manifest.window_frames, manifest.inputs[0].shape[-1]
    model_path = tmp / "model.onnx"
    if manifest.quantization == "int8-qat":
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
    stamp_manifest(proto, manifest)
    onnx.save(proto, str(model_path))
    return model_path


def stamp_manifest(proto: Any, manifest: ModelManifest) -> None:
    """Put the manifest (less its file hashes) in a bundle model's metadata, as every exported ``model.onnx`` carries it."""
    meta = manifest.to_dict()
    meta.pop("files", None)
    entry = proto.metadata_props.add()
    entry.key = MANIFEST_METADATA_KEY
    entry.value = json.dumps(meta, sort_keys=True)
    proto.producer_name = "edgekd"


def _golden_check(manifest: ModelManifest, model_path: Path, golden_in: np.ndarray, golden_torch: np.ndarray,
                  tmp: Path) -> tuple[ModelManifest, np.ndarray]:
    """Golden input and output files; the ONNX graph must give torch's answer and an int8 bundle's golden tolerance
    is one step of the output quantizer (``export.verify``). Adds graph statistics."""
    from edgekd.export.graph_stats import graph_stats

    (tmp / "golden").mkdir()
    np.save(tmp / "golden" / "input.npy", golden_in)
    golden_out = _run_onnx(model_path, golden_in)
    if manifest.quantization == "fp32":
        err = check_export(golden_out, golden_torch, FP32_EXPORT_ATOL)
    else:
        step = output_quant_step(model_path)
        manifest = manifest.replace(golden=manifest.golden_block.replace(atol=int8_atol(INT8_GOLDEN_STEPS, step), rtol=0.0).to_dict())
        qat = manifest.quantization == "int8-qat"
        err = check_export(golden_out, golden_torch, int8_atol(KWS_INT8_EXPORT_STEPS, step) if qat else None)
    np.save(tmp / "golden" / "output.npy", golden_out)
    stats = graph_stats(model_path)
    manifest = manifest.replace(provenance=dict(manifest.provenance, torch_vs_onnx_max_abs=err, graph_params=stats["params"],
                                                graph_macs_per_inference=stats["macs_per_inference"]))
    return manifest, golden_out


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
    float_states: bool = False,
    channels_last: bool = True,
) -> ModelManifest:
    """Export a checkpoint as a bundle folder ``out`` (replaced atomically if it exists).

    fp32 by default; ``int8=True`` for a QAT checkpoint (QDQ graph with int8 weights);
    ``ptq_calibration`` (feature windows) for onnxruntime's post-training quantization of a float one.
    A streaming student also gets its streaming-state graph (an int8 one passes its states as uint8 unless
    ``float_states``, and channels-last unless not ``channels_last``: both only for measuring the difference);
    ``golden_wav`` adds the golden stream.
    """
    import torch

    from edgekd.runtime.wav import load_audio

    ckpt, model, quantization = _open_checkpoint(checkpoint, int8, ptq_calibration is not None)
    fp = FrontendParams.from_dict(ckpt.frontend)
    pp = KwsPostprocessConfig.from_dict(postprocess or {})
    manifest = _kws_manifest(ckpt, model, checkpoint, name or Path(out).name, fp, pp, quantization, metrics)
    wav = load_audio(golden_wav, fp.sample_rate) if golden_wav is not None else None
    golden_in = _golden_inputs(fp, manifest.window_frames, wav)
    with torch.no_grad():
        golden_torch = model(torch.from_numpy(golden_in)).numpy()
    with staging_dir(out) as tmp:
        model_path = _write_model(model, manifest, tmp, ptq_calibration)
        manifest, golden_out = _golden_check(manifest, model_path, golden_in, golden_torch, tmp)
        if hasattr(model, "input_frames") and ptq_calibration is None:
            manifest = manifest.replace(streaming=_export_streaming(model, tmp, fp, pp, ckpt.n_mels, int8=int8,
                                                                   float_states=float_states, channels_last=channels_last))
            _check_streaming_parity(tmp, manifest, golden_in, golden_out, int8)
        if wav is not None:
            manifest = _write_golden_stream(tmp, manifest, wav)
        manifest = finalize_manifest(tmp, manifest)
    return manifest


def _export_streaming(model: Any, tmp: Path, fp: FrontendParams, pp: KwsPostprocessConfig, n_mels: int, int8: bool = False,
                      float_states: bool = False, channels_last: bool = True) -> dict[str, Any]:
    """model_stream.onnx: (frames, state_0..n) -> (logits, state_out_0..n), any number of new frames per call (the
    manifest's hop is the default); its initial state.
    For a QAT model the graph is int8 like model.onnx (QDQ, weights folded to int8 initializers), and the states
    between two convolutions cross the boundary as uint8 and channels-last (``export.int8_states``: exact and cheaper);
    ``float_states`` keeps them float32 (dequantized values) and ``channels_last=False`` in torch's NCHW layout, for
    measuring the difference."""
    import torch

    from edgekd.train.models.students.dscnn_stream import StreamingStep

    hop_ms = 1000.0 * fp.hop_samples / fp.sample_rate
    hop = max(1, round(pp.stride_ms / hop_ms))
    step = StreamingStep(model).eval()
    shapes = step.state_shapes(hop)
    floor = torch.full((1, hop, n_mels), fp.floor_value)
    states = [torch.zeros(sh) for sh in shapes]  # example inputs for the trace; the real initial state comes below
    names_in = [f"state_{i}" for i in range(len(shapes))]
    names_out = [f"state_out_{i}" for i in range(len(shapes))]
    path = tmp / "model_stream.onnx"
    with torch.no_grad(), quiet_torch_export():
        # any number of new frames per call (the hop below is only the default): the stride stays a run-time setting
        torch.onnx.export(step, (floor, *states), str(path), dynamo=False, opset_version=18,
                          input_names=["frames", *names_in], output_names=[OUTPUT_NAME, *names_out],
                          dynamic_axes={"frames": {1: "new_frames"}})
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
    if int8 and not float_states:
        from edgekd.export.int8_states import quantize_state_boundaries

        init = quantize_state_boundaries(path, init)
    if int8 and channels_last:
        from edgekd.export.int8_states import channels_last_states

        init = channels_last_states(path, init, dict(zip(names_in, names_out, strict=True)))
    np.savez(tmp / "state_init.npz", **init)
    from edgekd.export.graph_stats import graph_stats

    return KwsStreaming(model_file="model_stream.onnx", init="state_init.npz", hop_frames=hop, frames_input="frames",
                        logits_output=OUTPUT_NAME, graph_macs_per_hop=graph_stats(path, {"frames": (1, hop, n_mels)})["macs_per_inference"],
                        states=tuple(StateSpec(i, o, tuple(init[i].shape), str(init[i].dtype))
                                     for i, o in zip(names_in, names_out, strict=True))).to_dict()


def _check_streaming_parity(tmp: Path, manifest: ModelManifest, golden_in: np.ndarray, golden_out: np.ndarray, int8: bool) -> None:
    """The streaming graph, fed the golden window hop by hop from its initial state, must end on the whole-window
    graph's logits: within ``FP32_GOLDEN_ATOL`` for fp32, within one step of the output quantizer for int8."""
    from edgekd.runtime.backends.onnx import OnnxBackend

    st = manifest.kws_streaming
    assert st is not None
    step = OnnxBackend(tmp / st.model_file)
    with np.load(tmp / st.init) as z:
        states = {k: z[k] for k in z.files}
    hop = st.hop_frames
    window = golden_in[-1]  # (T, M)
    # silence before the window up to a whole number of hops (the initial state is that of a long silence)
    floor = FrontendParams.from_dict(manifest.frontend).floor_value
    frames = np.concatenate([np.full(((-window.shape[0]) % hop, window.shape[1]), floor, np.float32), window])
    got = golden_out[-1]
    for start in range(0, frames.shape[0], hop):
        out = step.run({st.frames_input: frames[None, start : start + hop], **states})
        states = {x.input: out[x.output] for x in st.states}
        got = out[st.logits_output][0]
    tol = int8_atol(INT8_GOLDEN_STEPS, output_quant_step(tmp / st.model_file)) if int8 else FP32_GOLDEN_ATOL
    check_export(got, golden_out[-1], tol, what="streaming graph (against the whole window)")


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    from edgekd.runtime.backends.onnx import OnnxBackend

    return OnnxBackend(path).run({INPUT_NAME: x})[OUTPUT_NAME]


def _write_golden_stream(tmp: Path, manifest: ModelManifest, wav: np.ndarray) -> ModelManifest:
    from edgekd.export.bundle import write_golden_detections
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.wav import write_wav

    write_wav(tmp / "golden" / "clip.wav", wav, manifest.sample_rate)
    manifest = manifest.replace(golden=manifest.golden_block.replace(wav="golden/clip.wav", detections="golden/detections.json").to_dict())
    write_golden_detections(tmp, manifest, OnnxBackend(tmp / manifest.model_file), manifest.golden_block.detections)
    return manifest
