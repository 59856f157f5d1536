"""Checkpoint -> model.tflite through TensorFlow's own TFLite converter (host-only extra ``tflite``).

The torch model is traced with torch.fx and rebuilt op by op as a ``tf.function`` in NHWC layout
(BatchNorm folded into the convs first, the same folding QAT uses); TensorFlow's converter then writes
fp32, or full-integer int8 calibrated with a representative dataset. Why not onnx2tf: it mis-read the
(batch, frames, mels) input as NCW and produced an invalid graph (docs/ARCHITECTURE.md).
Supported ops are exactly those the registry's architectures use; anything else is a clear error.
TensorFlow is imported here and only here.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["convert_to_tflite", "convert_and_write", "tflite_available"]


def tflite_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorflow") is not None


def _import_tf():  # type: ignore[no-untyped-def]
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter is not for our users
    try:
        import tensorflow as tf
    except ImportError:
        raise ConfigError('the TFLite converter is not installed; run: pip install -c constraints.txt "edgekd[tflite]"') from None
    return tf


_AXIS_NCHW_TO_NHWC = {0: 0, 1: 3, 2: 1, 3: 2, -1: 2, -2: 1, -3: 3}


def _fold(conv: Any, bn: Any | None) -> tuple[np.ndarray, np.ndarray]:
    from edgekd.train.qat import fold_conv_bn

    w, b = fold_conv_bn(conv, bn)
    return w.numpy(), b.numpy()


def _trace(model: Any) -> tuple[Any, dict[str, Any]]:
    """The model's torch.fx graph, with edgekd's own modules and torch's layers kept as leaves, and its modules by name."""
    from torch import fx, nn

    from edgekd.train.models.common import FeatureNorm
    from edgekd.train.qat import ActQuant, QConv, QLinear

    leaves = (FeatureNorm, QConv, QLinear, ActQuant, nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.SiLU, nn.Dropout, nn.Identity)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, leaves) or super().is_leaf_module(m, qualname)

    model = model.eval()
    try:
        graph = Tracer().trace(model)
    except Exception as e:  # torch.fx raises several types for untraceable code
        raise ConfigError(f"TFLite export: cannot trace this model with torch.fx ({type(e).__name__}: {e})") from None
    return graph, dict(model.named_modules())


def _conv_plan(nodes: list[Any], mods: dict[str, Any]) -> tuple[dict[Any, Any], set[Any]]:
    """Each convolution node's (module, weight, bias, relu), a BatchNorm that is a conv's only user folded into it;
    and the BatchNorm nodes so folded (they pass their input through)."""
    from torch import nn

    from edgekd.train.qat import QConv

    plan: dict[Any, Any] = {}
    folded_bn: set[Any] = set()
    for n in nodes:
        if n.op == "call_module" and isinstance(mods[n.target], nn.Conv2d):
            users = list(n.users)
            bn = None
            if len(users) == 1 and users[0].op == "call_module" and isinstance(mods[users[0].target], nn.BatchNorm2d):
                bn = mods[users[0].target]
                folded_bn.add(users[0])
            plan[n] = (mods[n.target], *_fold(mods[n.target], bn), False)
        elif n.op == "call_module" and isinstance(mods[n.target], QConv):
            q = mods[n.target]
            if q.weight.dim() != 4 or q.left_pad or q.in_q is not None:
                raise ConfigError("TFLite export: causal or 1-D quantized convolutions are not supported; export this model to ONNX")
            plan[n] = (q, q.weight.detach().numpy(), q.bias.detach().numpy(), q.relu)
    return plan, folded_bn


def _tf_conv(tf: Any, x: Any, spec: Any) -> Any:
    """A (depthwise) convolution in NHWC with its bias and optional ReLU."""
    m, w, b, relu = spec
    ph, pw = m.padding
    if ph or pw:
        x = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    groups, cin = m.groups, w.shape[1] * m.groups
    if groups == 1:
        y = tf.nn.conv2d(x, tf.constant(w.transpose(2, 3, 1, 0)), strides=[1, *m.stride, 1], padding="VALID", dilations=[1, *m.dilation, 1])
    elif groups == cin and w.shape[1] == 1:
        mult = w.shape[0] // cin
        filt = w.reshape(cin, mult, *w.shape[2:]).transpose(2, 3, 0, 1)
        y = tf.nn.depthwise_conv2d(x, tf.constant(filt), strides=[1, *m.stride, 1], padding="VALID", dilations=list(m.dilation))
    else:
        raise ConfigError(f"TFLite export: grouped conv with {groups} groups is not supported")
    y = y + tf.constant(b)
    return tf.nn.relu(y) if relu else y


def _tf_module(tf: Any, m: Any, x: Any) -> Any:
    """One leaf module (other than a convolution) on a TF tensor."""
    import torch
    from torch import nn

    from edgekd.train.models.common import FeatureNorm
    from edgekd.train.qat import ActQuant, QLinear

    if isinstance(m, FeatureNorm):
        return (x - tf.constant(m.mean.numpy())) * tf.constant(m.inv_std.numpy())
    if isinstance(m, (ActQuant, nn.Dropout, nn.Identity)):
        return x
    if isinstance(m, nn.ReLU):
        return tf.nn.relu(x)
    if isinstance(m, nn.SiLU):
        return x * tf.sigmoid(x)
    if isinstance(m, (nn.Linear, QLinear)):
        return tf.matmul(x, tf.constant(m.weight.detach().numpy().T)) + tf.constant(m.bias.detach().numpy())
    if isinstance(m, nn.BatchNorm2d):
        inv = (m.weight / torch.sqrt(m.running_var + m.eps)).detach().numpy()
        return x * tf.constant(inv) + tf.constant((m.bias.detach() - m.running_mean).numpy() * inv)
    raise ConfigError(f"TFLite export: module {type(m).__name__} is not supported")


def _tf_call(tf: Any, n: Any, a: list[Any], window_frames: int) -> Any:
    """One method or function call of the traced graph on TF tensors (NCHW semantics mapped to NHWC)."""
    import torch
    from torch import nn

    from edgekd.train.models.students.dscnn_stream import pad_to

    if n.op == "call_method" and n.target == "unsqueeze" and a[1:] in ([1],) and not n.kwargs:
        return tf.expand_dims(a[0], -1)  # (B, T, M) -> NCHW (B, 1, T, M) == NHWC (B, T, M, 1)
    if n.op == "call_method" and n.target == "mean":
        dims = n.kwargs.get("dim", a[1] if len(a) > 1 else None)
        dims = dims if isinstance(dims, (tuple, list)) else (dims,)
        return tf.reduce_mean(a[0], axis=[_AXIS_NCHW_TO_NHWC[d] for d in dims], keepdims=bool(n.kwargs.get("keepdim", False)))
    if n.op == "call_function" and n.target is operator.getitem and isinstance(a[1], tuple) and len(a[1]) == 4:
        idx = a[1]
        return a[0][idx[0], idx[2], idx[3], idx[1]]  # NCHW index -> NHWC
    if n.op == "call_function" and n.target is pad_to:
        if a[1] != window_frames:
            raise ConfigError(f"TFLite export: the model needs {a[1]} input frames, the signature has {window_frames}")
        return a[0]
    if n.op == "call_function" and n.target in (operator.add, torch.add):
        return a[0] + a[1]
    if n.op == "call_function" and n.target in (torch.relu, nn.functional.relu):
        return tf.nn.relu(a[0])
    raise ConfigError(f"TFLite export: {n.op} {n.target} is not supported")


def _build_tf_function(model: Any, window_frames: int, n_mels: int):  # type: ignore[no-untyped-def]
    """The model rebuilt as a TF function of (B, T, M) features: its fx graph replayed node by node in NHWC."""
    from torch import fx

    tf = _import_tf()
    graph, mods = _trace(model)
    nodes = list(graph.nodes)
    plan, folded_bn = _conv_plan(nodes, mods)

    def run(x: Any) -> Any:
        env: dict[Any, Any] = {}
        for n in nodes:
            a = [env[i] if isinstance(i, fx.Node) else i for i in n.args]
            if n.op == "placeholder":
                env[n] = x
            elif n.op == "output":
                return env[n.args[0]]
            elif n in plan:
                env[n] = _tf_conv(tf, a[0], plan[n])
            elif n in folded_bn:
                env[n] = a[0]
            elif n.op == "call_module":
                env[n] = _tf_module(tf, mods[n.target], a[0])
            else:
                env[n] = _tf_call(tf, n, a, window_frames)
        raise ConfigError("TFLite export: the traced graph has no output")

    fn = tf.function(run, input_signature=[tf.TensorSpec([None, window_frames, n_mels], tf.float32, name="features")])
    return tf, fn


def convert_to_tflite(model: Any, window_frames: int, n_mels: int, out: Path, *, representative: np.ndarray | None = None) -> bytes:
    """Write ``out`` (.tflite): fp32, or full-integer int8 (int8 input/output) when ``representative`` is given."""
    tf, fn = _build_tf_function(model, window_frames, n_mels)

    class _Module(tf.Module):
        pass

    holder = _Module()
    holder.fn = fn

    def named(x: Any) -> dict[str, Any]:
        return {"logits": fn(x)}

    sig = tf.function(named, input_signature=fn.input_signature)
    try:
        conc = sig.get_concrete_function()
    except ConfigError:
        raise
    except Exception as e:  # tf.function re-wraps errors raised while tracing; keep ours as one line
        msg = next((ln.strip() for ln in str(e).splitlines() if "ConfigError:" in ln), None)
        raise ConfigError(msg.split("ConfigError:", 1)[1].strip() if msg else f"TFLite export failed: {type(e).__name__}") from None
    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc], holder)
    if representative is not None:
        rep = representative.astype(np.float32)

        def gen():  # type: ignore[no-untyped-def]
            for i in range(rep.shape[0]):
                yield [rep[i : i + 1]]

        return convert_and_write(tf, conv, out, gen)
    return convert_and_write(tf, conv, out, None)


def convert_and_write(tf: Any, conv: Any, out: Path, representative: Any) -> bytes:
    """Run ``conv`` (a TFLiteConverter) and write its model to ``out`` atomically: full-integer int8 (int8 inputs and
    outputs) calibrated on the ``representative`` generator when one is given, else as the converter is set up."""
    import warnings

    from edgekd.core.fsutil import atomic_write_bytes

    if representative is not None:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    with warnings.catch_warnings():  # the converter's own use of its deprecated interpreter is not the user's business
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        data = conv.convert()
    atomic_write_bytes(out, data)
    return data


def add_tflite_to_bundle(checkpoint: str | Path, bundle: str | Path, *, calibration: np.ndarray | None = None) -> Any:
    """Convert ``checkpoint`` and add ``model.tflite`` (+ its golden output) to ``bundle``, atomically.

    fp32 without ``calibration``; full-integer int8 (TFLite's own calibration) with it, and then also the LiteRT twin
    of the bundle's int8 streaming-state graph if it has one (``export.tflite_stream``). The bundle must come from the
    same checkpoint family (same labels and frontend).
    """
    import shutil

    from edgekd.export.bundle import finalize_manifest, staging_dir, write_golden_detections
    from edgekd.export.verify import FP32_GOLDEN_ATOL, INT8_GOLDEN_STEPS, int8_atol
    from edgekd.runtime.backends.litert import LiteRTBackend
    from edgekd.runtime.manifest import ModelManifest
    from edgekd.train.checkpoint import Checkpoint

    ckpt = Checkpoint.load(checkpoint)
    root = Path(bundle)
    manifest = ModelManifest.load(root)
    manifest.verify_files(root)
    if tuple(manifest.labels) != tuple(ckpt.labels) or manifest.frontend != ckpt.frontend:
        raise ConfigError(f"{root}: the bundle's labels/frontend differ from {checkpoint}'s; export both from the same checkpoint")
    _import_tf()
    model = ckpt.build()
    with staging_dir(root) as tmp:
        shutil.copytree(root, tmp, dirs_exist_ok=True)
        path = tmp / "model.tflite"
        convert_to_tflite(model, manifest.window_frames, ckpt.n_mels, path, representative=calibration)
        backend = LiteRTBackend(path)
        golden_in = np.load(tmp / manifest.golden_block.input)
        out = backend.run({manifest.inputs[0].name: golden_in})[manifest.outputs[0].name]
        np.save(tmp / "golden" / "output_tflite.npy", out)
        if calibration is not None:
            scale = float(backend._out[manifest.outputs[0].name]["quantization"][0])  # one int8 step of the output
            atol = int8_atol(INT8_GOLDEN_STEPS, scale)
        else:
            atol = FP32_GOLDEN_ATOL
        golden = manifest.golden_block.replace(tflite_output="golden/output_tflite.npy", tflite_atol=atol)
        quant = "int8" if calibration is not None else "fp32"
        m = manifest.replace(tflite_file="model.tflite", golden=golden.to_dict(),
                             provenance=dict(manifest.provenance, tflite_quantization=quant, tflite_converter=f"tensorflow {_import_tf().__version__}"))
        st = m.kws_streaming
        if calibration is not None and st is not None and any(x.dtype == "uint8" for x in st.states):
            from edgekd.export.tflite_stream import write_tflite_stream

            m = write_tflite_stream(tmp, m, calibration)  # the int8 streaming graph's LiteRT twin, and golden detections
        elif golden.wav:
            from edgekd.runtime.detector import streaming_backend

            rel = write_golden_detections(tmp, m, backend, "golden/detections_tflite.json", step_backend=streaming_backend("litert", tmp, m))
            m = m.replace(golden=golden.replace(tflite_detections=rel).to_dict())
        m = finalize_manifest(tmp, m)
    return m
