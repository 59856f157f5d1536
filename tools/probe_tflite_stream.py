"""Can the TFLite converter make a full-integer streaming-state graph whose states feed back exactly?

    .venv/bin/python tools/probe_tflite_stream.py

A toy streaming step with the shape of edgekd's (frames and a stem state concatenated in time, a strided stem
convolution, its output concatenated with a block state, a depthwise convolution, a mean) is converted with
full-integer int8 quantization and a representative dataset, and loaded with LiteRT. The question for a LiteRT
streaming runtime is whether each state output has the same scale and zero point as the matching state input
(then the int8 state is fed back as it is, no requantization per hop). Prints the tensors and the answer; exits 1
if they differ. Host-side (TensorFlow); the bundles in models/ do not have a TFLite streaming graph yet.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np


def main() -> int:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    hop, n_mels, ch = 32, 40, 16
    w_stem = rng.normal(0, 0.1, (10, 4, 1, ch)).astype(np.float32)
    w_dw = rng.normal(0, 0.1, (3, 3, ch, 1)).astype(np.float32)

    def step(frames, s0, s1):  # type: ignore[no-untyped-def]
        x = tf.concat([s0, frames], axis=1)
        y = tf.nn.relu(tf.nn.conv2d(tf.expand_dims(x, -1), w_stem, strides=[1, 1, 2, 1], padding="VALID"))
        z = tf.concat([s1, y], axis=1)
        d = tf.nn.relu(tf.nn.depthwise_conv2d(z, w_dw, strides=[1, 1, 1, 1], padding="VALID"))
        return {"logits": tf.reduce_mean(d, axis=[1, 2]), "state_out_0": x[:, -9:, :], "state_out_1": z[:, -2:]}

    f_stem = (n_mels - 4) // 2 + 1
    sig = [tf.TensorSpec([1, hop, n_mels], tf.float32, name="frames"), tf.TensorSpec([1, 9, n_mels], tf.float32, name="state_0"),
           tf.TensorSpec([1, 2, f_stem, ch], tf.float32, name="state_1")]
    conc = tf.function(step, input_signature=sig).get_concrete_function()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([conc])

    def rep():  # type: ignore[no-untyped-def]
        for _ in range(50):
            yield [rng.normal(-6, 3, (1, hop, n_mels)).astype(np.float32), rng.normal(-6, 3, (1, 9, n_mels)).astype(np.float32),
                   np.abs(rng.normal(0, 1, (1, 2, f_stem, ch))).astype(np.float32)]

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    it = Interpreter(model_content=conv.convert())
    it.allocate_tensors()
    ins = {d["name"].split(":")[0].removeprefix("serving_default_"): d for d in it.get_input_details()}
    outs = sorted(it.get_output_details(), key=lambda d: d["index"])
    for d in [*ins.values(), *outs]:
        print(f"{d['name']}: {[int(v) for v in d['shape']]} {np.dtype(d['dtype']).name} scale {d['quantization'][0]:.6g} zero {d['quantization'][1]}")
    by_shape = {tuple(d["shape"]): d for d in outs}
    same = all(by_shape.get(tuple(ins[s]["shape"]), {}).get("quantization") == ins[s]["quantization"] for s in ("state_0", "state_1"))
    print("state outputs quantized like their inputs (feed back as int8, exact):", same)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
