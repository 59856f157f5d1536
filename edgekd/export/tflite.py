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

__all__ = ["convert_to_tflite", "tflite_available"]


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


def _build_tf_function(model: Any, window_frames: int, n_mels: int):  # type: ignore[no-untyped-def]
    import torch
    from torch import fx, nn

    from edgekd.train.qat import ActQuant, QConv, QLinear
    from edgekd.train.students.common import FeatureNorm

    tf = _import_tf()
    leaves = (FeatureNorm, QConv, QLinear, ActQuant, nn.Conv2d, nn.BatchNorm2d, nn.Linear, nn.ReLU, nn.SiLU, nn.Dropout, nn.Identity)

    class Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, leaves) or super().is_leaf_module(m, qualname)

    from edgekd.train.students.dscnn_stream import pad_to

    model = model.eval()
    try:
        graph = Tracer().trace(model)
    except Exception as e:  # torch.fx raises several types for untraceable code
        raise ConfigError(f"TFLite export: cannot trace this model with torch.fx ({type(e).__name__}: {e})") from None
    mods = dict(model.named_modules())
    nodes = list(graph.nodes)
    users = {n: list(n.users) for n in nodes}

    # Pre-compute folded conv weights (a BatchNorm that is the only user of a conv is folded into it).
    plan: dict[Any, tuple[str, Any]] = {}
    folded_bn: set[Any] = set()
    for n in nodes:
        if n.op == "call_module" and isinstance(mods[n.target], nn.Conv2d):
            bn = None
            if len(users[n]) == 1 and users[n][0].op == "call_module" and isinstance(mods[users[n][0].target], nn.BatchNorm2d):
                bn = mods[users[n][0].target]
                folded_bn.add(users[n][0])
            plan[n] = ("conv", (mods[n.target], *_fold(mods[n.target], bn), False))
        elif n.op == "call_module" and isinstance(mods[n.target], QConv):
            q = mods[n.target]
            if q.weight.dim() != 4 or q.left_pad or q.in_q is not None:
                raise ConfigError("TFLite export: causal or 1-D quantized convolutions are not supported; export this model to ONNX")
            plan[n] = ("conv", (q, q.weight.detach().numpy(), q.bias.detach().numpy(), q.relu))

    def conv(x: Any, spec: Any) -> Any:
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

    def run(x: Any) -> Any:
        env: dict[Any, Any] = {}
        for n in nodes:
            a = [env[i] if isinstance(i, fx.Node) else i for i in n.args]
            if n.op == "placeholder":
                env[n] = x
            elif n.op == "output":
                return env[n.args[0]]
            elif n in plan:
                env[n] = conv(a[0], plan[n][1])
            elif n in folded_bn:
                env[n] = a[0]
            elif n.op == "call_module":
                m = mods[n.target]
                if isinstance(m, FeatureNorm):
                    env[n] = (a[0] - tf.constant(m.mean.numpy())) * tf.constant(m.inv_std.numpy())
                elif isinstance(m, (ActQuant, nn.Dropout, nn.Identity)):
                    env[n] = a[0]
                elif isinstance(m, nn.ReLU):
                    env[n] = tf.nn.relu(a[0])
                elif isinstance(m, nn.SiLU):
                    env[n] = a[0] * tf.sigmoid(a[0])
                elif isinstance(m, (nn.Linear, QLinear)):
                    env[n] = tf.matmul(a[0], tf.constant(m.weight.detach().numpy().T)) + tf.constant(m.bias.detach().numpy())
                elif isinstance(m, nn.BatchNorm2d):
                    inv = (m.weight / torch.sqrt(m.running_var + m.eps)).detach().numpy()
                    env[n] = a[0] * tf.constant(inv) + tf.constant((m.bias.detach() - m.running_mean).numpy() * inv)
                else:
                    raise ConfigError(f"TFLite export: module {type(m).__name__} is not supported")
            elif n.op == "call_method" and n.target == "unsqueeze" and a[1:] in ([1],) and not n.kwargs:
                env[n] = tf.expand_dims(a[0], -1)  # (B, T, M) -> NCHW (B, 1, T, M) == NHWC (B, T, M, 1)
            elif n.op == "call_method" and n.target == "mean":
                dims = n.kwargs.get("dim", a[1] if len(a) > 1 else None)
                dims = dims if isinstance(dims, (tuple, list)) else (dims,)
                keep = bool(n.kwargs.get("keepdim", False))
                env[n] = tf.reduce_mean(a[0], axis=[_AXIS_NCHW_TO_NHWC[d] for d in dims], keepdims=keep)
            elif n.op == "call_function" and n.target is operator.getitem and isinstance(a[1], tuple) and len(a[1]) == 4:
                idx = a[1]
                env[n] = a[0][idx[0], idx[2], idx[3], idx[1]]  # NCHW index -> NHWC
            elif n.op == "call_function" and n.target is pad_to:
                if a[1] != window_frames:
                    raise ConfigError(f"TFLite export: the model needs {a[1]} input frames, the signature has {window_frames}")
                env[n] = a[0]
            elif n.op == "call_function" and n.target in (operator.add, torch.add):
                env[n] = a[0] + a[1]
            elif n.op == "call_function" and n.target in (torch.relu, nn.functional.relu):
                env[n] = tf.nn.relu(a[0])
            else:
                raise ConfigError(f"TFLite export: {n.op} {n.target} is not supported")
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

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = gen
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    data = conv.convert()
    from edgekd.core.fsutil import atomic_write_bytes

    atomic_write_bytes(out, data)
    return data


def add_tflite_to_bundle(checkpoint: str | Path, bundle: str | Path, *, calibration: np.ndarray | None = None) -> Any:
    """Convert ``checkpoint`` and add ``model.tflite`` (+ its golden output) to ``bundle``, atomically.

    fp32 without ``calibration``; full-integer int8 (TFLite's own calibration) with it. The bundle must
    come from the same checkpoint family (same labels and frontend).
    """
    import shutil

    from edgekd.export.bundle import finalize_manifest, staging_dir, write_golden_detections
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
        golden_in = np.load(tmp / manifest.golden["input"])
        out = backend.run({manifest.inputs[0].name: golden_in})[manifest.outputs[0].name]
        np.save(tmp / "golden" / "output_tflite.npy", out)
        if calibration is not None:
            scale = float(backend._out[manifest.outputs[0].name]["quantization"][0])  # one int8 step of the output
            atol = 1.01 * scale
        else:
            atol = 1e-4
        golden = dict(manifest.golden, tflite_output="golden/output_tflite.npy", tflite_atol=atol)
        if manifest.golden.get("wav"):
            golden["tflite_detections"] = write_golden_detections(tmp, manifest, backend, "golden/detections_tflite.json")
        quant = "int8" if calibration is not None else "fp32"
        m = manifest.replace(tflite_file="model.tflite", golden=golden,
                             provenance=dict(manifest.provenance, tflite_quantization=quant, tflite_converter=f"tensorflow {_import_tf().__version__}"))
        m = finalize_manifest(tmp, m)
    return m
