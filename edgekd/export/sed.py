"""Export a frame-level SED model as a bundle (task ``sed``): ONNX with a dynamic number of frames, manifest with
labels, output frame hop, receptive field and post-processing, golden input/output and golden events.

A QAT model (``edgekd.train.qat.to_qat``) is frozen and written as int8 ONNX (QuantizeLinear/DequantizeLinear with
int8 weight initializers, fused by onnxruntime into QLinearConv) and checked against the QAT model within
``export.verify.SED_INT8_STEPS`` steps of the output quantizer (wider than KWS, measured: the fused integer kernels
round a few first-layer outputs, 0.04% on the trained student, one step away from float fake quantization)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgekd.core.errors import ConfigError
from edgekd.export.bundle import finalize_manifest, staging_dir
from edgekd.export.verify import FP32_EXPORT_ATOL, FP32_GOLDEN_ATOL, SED_INT8_STEPS, check_export, int8_atol, output_quant_step
from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
from edgekd.runtime.manifest import Golden, ModelManifest, SedStreaming, TensorSpec
from edgekd.runtime.sed_post import SedPostprocessConfig
from edgekd.train.models.sed_frames import TIME_POOL

__all__ = ["export_sed", "receptive_field"]


@torch.no_grad()
def receptive_field(model: nn.Module, n_mels: int, max_frames: int = 256) -> int:
    """How many past output frames an output frame depends on (measured: perturb one input group, see how far it reaches)."""
    model.eval()
    n = max_frames
    x = torch.randn(1, n * TIME_POOL, n_mels)
    base = model(x)
    future = x.clone()
    future[:, -TIME_POOL:] += 5.0
    if (model(future) - base)[:, :-1].abs().max() > 0:
        raise ConfigError("earlier frames change when the last input changes: not a causal model, so it cannot stream")
    past = x.clone()
    past[:, :TIME_POOL] += 5.0
    reach = (model(past) - base).abs().amax(dim=(0, 2)).ne(0).nonzero()
    last = int(reach.max()) if reach.numel() else 0
    if last >= n // 2:
        raise ConfigError(f"an input still changes output frames {last} frames later: not a finite-context model")
    return last + 1


def _write_golden(tmp: Path, model: nn.Module, golden_audio: np.ndarray, labels: list[str], postprocess: SedPostprocessConfig,
                  int8: bool, atol: float) -> dict[str, Any]:
    """golden/: the WAV as stored (16-bit, what selftest streams), its features, the graph's frame logits (checked against
    torch within ``atol``, see ``export.verify``) and its events; returns the manifest's golden block."""
    import onnxruntime as ort

    from edgekd.runtime.sed_post import sed_events, sigmoid
    from edgekd.runtime.wav import load_audio, write_wav

    params = FrontendParams()
    (tmp / "golden").mkdir()
    write_wav(tmp / "golden" / "clip.wav", golden_audio, params.sample_rate)
    golden_audio = load_audio(tmp / "golden" / "clip.wav", params.sample_rate)
    feats = LogMelFrontend(params).features(golden_audio)[None].astype(np.float32)
    np.save(tmp / "golden" / "input.npy", feats)
    sess = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = sess.run(None, {"features": feats})[0]
    with torch.no_grad():
        torch_out = model(torch.from_numpy(feats)).numpy()
    err = check_export(onnx_out, torch_out, atol if int8 else FP32_EXPORT_ATOL)
    np.save(tmp / "golden" / "output.npy", onnx_out)
    hop_ms = 1000.0 * TIME_POOL * params.hop_samples / params.sample_rate
    ev = sed_events(sigmoid(onnx_out[0]), tuple(labels), hop_ms, postprocess)
    (tmp / "golden" / "events.json").write_text(json.dumps([e.to_dict() for e in ev], indent=1) + "\n")
    return Golden(input="golden/input.npy", output="golden/output.npy", atol=atol, rtol=0.0, wav="golden/clip.wav",
                  events="golden/events.json", extra={"torch_vs_onnx_max_abs": err}).to_dict()


def export_sed(model: nn.Module, labels: list[str], out: str | os.PathLike[str], *, name: str, arch: str,
               postprocess: SedPostprocessConfig, golden_audio: np.ndarray | None = None, stride_frames: int = 5,
               metrics: dict[str, Any] | None = None) -> ModelManifest:
    """Write the bundle folder ``out`` (replaced atomically)."""

    from edgekd.train.qat import fake_quant_disabled, freeze, is_qat

    int8 = is_qat(model)
    params = FrontendParams()
    model = freeze(model, torch.zeros(1, 64 * TIME_POOL, params.n_mels)) if int8 else model.eval()
    with fake_quant_disabled(model):  # the structure, not rounding, decides how far back a frame sees
        context = receptive_field(model, params.n_mels)
    with staging_dir(out) as tmp:
        x = torch.randn(1, 64 * TIME_POOL, params.n_mels)
        with torch.no_grad():
            torch.onnx.export(model, (x,), str(tmp / "model.onnx"), dynamo=False, opset_version=18, input_names=["features"],
                              output_names=["frame_logits"], dynamic_axes={"features": {1: "frames"}, "frame_logits": {1: "out_frames"}})
        atol = FP32_GOLDEN_ATOL
        if int8:
            from edgekd.export.int8 import fold_weight_quantization

            fold_weight_quantization(tmp / "model.onnx")
            atol = int8_atol(SED_INT8_STEPS, output_quant_step(tmp / "model.onnx"))  # another CPU's integer kernels may round differently
        golden: dict[str, Any] = {}
        if golden_audio is not None:
            golden = _write_golden(tmp, model, golden_audio, labels, postprocess, int8, atol)
        n_params = sum(p.numel() for p in model.parameters())
        m = ModelManifest(
            name=name, task="sed", labels=tuple(labels), sample_rate=params.sample_rate, frontend=params.to_dict(), model_file="model.onnx",
            inputs=(TensorSpec("features", (1, -1, params.n_mels)),), outputs=(TensorSpec("frame_logits", (1, -1, len(labels))),),
            window_frames=(context + stride_frames) * TIME_POOL, quantization="int8-qat" if int8 else "fp32",
            streaming=SedStreaming(TIME_POOL, context, stride_frames).to_dict(),
            postprocess=postprocess.to_dict(), provenance={"arch": arch, "params": n_params}, metrics=metrics or {}, golden=golden,
        )
        finalize_manifest(tmp, m)
    return ModelManifest.load(out)
