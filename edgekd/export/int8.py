"""int8 ONNX: the QAT model through the exporter, then weights stored as int8, and the ORT fusion checked.

torch 2.13's dynamo exporter has no fake-tensor kernel for ``fake_quantize_per_tensor_affine_cachemask``,
so the QAT graph goes through the TorchScript exporter (``dynamo=False``), which maps fake quantization
to QuantizeLinear/DequantizeLinear. Quantizing a constant weight is then folded here: the float
initializer and its QuantizeLinear become an int8 initializer feeding the DequantizeLinear, which makes
the file about 4x smaller; onnxruntime fuses DQ -> Conv -> Q into QLinearConv (and Gemm into QGemm).
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.export.quiet import quiet_torch_export

__all__ = ["calibration_features", "export_qat_onnx", "fold_weight_quantization", "optimized_op_counts", "ptq_quantize"]


def export_qat_onnx(model: Any, window_frames: int, n_mels: int, path: Path, input_name: str, output_name: str) -> None:
    import torch

    with torch.no_grad(), quiet_torch_export():
        torch.onnx.export(
            model,
            (torch.zeros(2, window_frames, n_mels),),
            str(path),
            dynamo=False,
            opset_version=18,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}},
        )
    fold_weight_quantization(path)


def fold_weight_quantization(path: Path) -> int:
    """Replace ``const W -> QuantizeLinear`` by an int8 initializer. Returns how many weights were folded."""
    import onnx
    from onnx import numpy_helper

    from edgekd.export.graph_stats import constant_map

    model = onnx.load(str(path))
    g = model.graph
    consts = constant_map(g)
    folded = 0
    keep = []
    new_inits = []
    for n in g.node:
        if n.op_type == "QuantizeLinear" and all(i in consts for i in n.input[:3]) and consts[n.input[0]].dtype == np.float32:
            w, scale, zp = (consts[i] for i in n.input[:3])
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if scale.ndim == 1:
                shape = [1] * w.ndim
                shape[axis] = -1
                scale, zpb = scale.reshape(shape), zp.reshape(shape)
            else:
                zpb = zp
            info = np.iinfo(zp.dtype)
            q = np.clip(np.round(w / scale) + zpb.astype(np.int64), info.min, info.max).astype(zp.dtype)
            new_inits.append(numpy_helper.from_array(q, name=n.output[0]))
            folded += 1
            continue
        keep.append(n)
    if not folded:
        return 0
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(new_inits)
    # drop float weights (initializers or Constant nodes) that nothing reads any more
    used = Counter(name for n in g.node for name in n.input)
    alive = [i for i in g.initializer if used[i.name] or i.name in {o.name for o in g.output}]
    del g.initializer[:]
    g.initializer.extend(alive)
    nodes = [n for n in g.node if not (n.op_type == "Constant" and not used[n.output[0]])]
    del g.node[:]
    g.node.extend(nodes)
    _shorten_names(g)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return folded


def _shorten_names(g: Any) -> None:
    """Rename internal tensors to short ids and drop node names: in a 25 kB model they were half the file."""
    keep = {v.name for v in g.input} | {v.name for v in g.output}
    mapping: dict[str, str] = {}

    def short(name: str) -> str:
        if not name or name in keep:
            return name
        return mapping.setdefault(name, f"t{len(mapping)}")

    for init in g.initializer:
        init.name = short(init.name)
    for n in g.node:
        n.name = ""
        for i, name in enumerate(n.input):
            n.input[i] = short(name)
        for i, name in enumerate(n.output):
            n.output[i] = short(name)
    del g.value_info[:]


def optimized_op_counts(path: Path, *, layout: bool = False) -> dict[str, int]:
    """Op types of the graph onnxruntime actually runs (after its graph optimizations; with ``layout`` also its
    layout transformations, as a default session runs it: channels-last QLinearConv and the Transposes around it)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        so = ort.SessionOptions()
        so.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if layout
                                       else ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
        so.optimized_model_filepath = str(Path(d) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        return dict(Counter(n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node))


def ptq_quantize(fp32_path: Path, out_path: Path, calibration: np.ndarray, input_name: str) -> None:
    """onnxruntime's static post-training quantization (QDQ, per-channel int8 weights, uint8 activations)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration[i : i + 1] for i in range(calibration.shape[0]))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {input_name: x.astype(np.float32)}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(
            str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        )


def calibration_features(data_dir: Path, frontend: dict[str, Any], window_frames: int, n: int = 256, seed: int = 0) -> np.ndarray:
    """Feature windows of up to ``n`` random WAVs under ``data_dir`` (training clips when split lists exist)."""
    from edgekd.core.errors import DataError
    from edgekd.data import BACKGROUND_NOISE
    from edgekd.data.augment import fit_to_length
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.runtime.wav import load_audio

    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such calibration folder; give a folder of WAVs (e.g. the training data)")
    held: set[str] = set()
    for name in ("validation_list.txt", "testing_list.txt"):
        if (root / name).is_file():
            held |= set((root / name).read_text().split())
    wavs = sorted(p for p in root.rglob("*.wav") if BACKGROUND_NOISE not in p.parts and str(p.relative_to(root)) not in held)
    if not wavs:
        raise DataError(f"{root}: no WAV files to calibrate on")
    rng = np.random.default_rng(seed)
    pick = [wavs[i] for i in rng.choice(len(wavs), size=min(n, len(wavs)), replace=False)]
    fp = FrontendParams.from_dict(frontend)
    fe = LogMelFrontend(fp)
    n_samples = (window_frames - 1) * fp.hop_samples + fp.window_samples
    return np.stack([fe.features(fit_to_length(load_audio(p, fp.sample_rate), n_samples)) for p in pick]).astype(np.float32)
