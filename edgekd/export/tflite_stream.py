"""The LiteRT twin of a bundle's int8 streaming-state graph: ``model_stream.tflite`` (host-only extra ``tflite``).

Its source is the bundle's own int8 ``model_stream.onnx`` (QDQ form), not a checkpoint: the integer weights and their
per-channel scales, the biases, and every activation's scale and zero point are read from that graph, and the step is
rebuilt in TensorFlow (NHWC) with each of those ranges pinned by a fake-quantization node. TensorFlow's converter keeps
pinned ranges as they are, so the TFLite graph computes on the same integer grids as the ONNX one (int8 = uint8 - 128);
only the tensors ONNX keeps in float (the raw input frames, the pooled per-frame means) get ranges from calibration,
measured on the states the ONNX graph itself produces. So the shipped bundles, whose QAT checkpoints are not shipped,
get one too, and the result can be checked against the ONNX stream hop by hop.

The state tensors cross the call boundary as int8 and every state output carries the quantization of its input (one
concatenation makes both), so the runtime feeds them back as they are. The frame axis is free: one graph serves any
stride. Supported: the ``dscnn-stream`` family (a strided stem, depthwise-separable blocks, a per-frame pool, a linear
head); anything else is a clear error. TensorFlow is imported here and in ``export.tflite`` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["StreamGraph", "read_stream_graph", "convert_stream_to_tflite", "add_tflite_stream_to_bundle", "TFLITE_STREAM_FILE",
           "TFLITE_STREAM_INIT", "STREAM_PARITY_STEPS", "stream_logit_pairs"]

TFLITE_STREAM_FILE = "model_stream.tflite"
TFLITE_STREAM_INIT = "state_init_tflite.npz"
# the TFLite step may differ from the ONNX step by this many output steps: its input is rounded twice (raw frames per
# tensor, then after the per-mel normalisation) where ONNX rounds once. Over 2,800 hops of 200 real clips the shipped
# graphs differ by at most 6 steps (99th percentile 4-5), with the same top label on 98.7-99.6% of hops
# (bench/tflite_stream_parity.py, 2026-12-06); their golden windows alone gave 3-5, the previous builds 2-3.
STREAM_PARITY_STEPS = 8

QParams = tuple[float, int]  # uint8 scale and zero point of one activation


@dataclass(frozen=True)
class QConvSpec:
    """One int8 convolution of the ONNX graph: dequantized weights (Cout, Cin/groups, kh, kw), their per-channel scale,
    the float bias, geometry, and the quantization of its (ReLU) output."""

    w: np.ndarray
    w_scale: np.ndarray
    b: np.ndarray
    groups: int
    stride: tuple[int, int]
    pads: tuple[int, int, int, int]  # ONNX order: time begin, freq begin, time end, freq end
    relu: bool
    out: QParams


@dataclass(frozen=True)
class StreamGraph:
    """What the TFLite step needs from an int8 DS-CNN streaming graph."""

    mean: np.ndarray
    inv_std: np.ndarray
    q_in: QParams
    stem: QConvSpec
    blocks: tuple[tuple[QConvSpec, QConvSpec], ...]  # (depthwise, pointwise)
    head_in: QParams
    head_w: np.ndarray  # (labels, C), dequantized
    head_w_scale: np.ndarray
    head_b: np.ndarray
    head_out: QParams
    pool_frames: int
    n_mels: int

    @property
    def state_frames(self) -> list[int]:
        """Frames of past input each time kernel keeps: the stem's, then each depthwise conv's."""
        return [int(self.stem.w.shape[2]) - 1, *(int(dw.w.shape[2]) - 1 for dw, _ in self.blocks)]

    def state_quant(self) -> list[QParams]:
        """The grid of each frame state (stem input, then each block's input): what produced its values."""
        return [self.q_in, self.stem.out, *(pw.out for _, pw in self.blocks[:-1])]


def _scalar_q(consts: dict[str, np.ndarray], node: Any) -> QParams:
    s, z = consts.get(node.input[1]), consts.get(node.input[2]) if len(node.input) > 2 else np.uint8(0)
    if s is None or z is None or np.size(s) != 1 or np.asarray(z).dtype != np.uint8:
        raise ConfigError("TFLite stream export: an activation is not quantized per tensor to uint8; re-export the bundle")
    return float(np.asarray(s).reshape(())), int(np.asarray(z).reshape(()))


def read_stream_graph(path: Path) -> StreamGraph:
    """Read the weights and quantization of an int8 DS-CNN streaming graph (``ConfigError`` for any other graph)."""
    import onnx

    from edgekd.export.graph_stats import constant_map

    g = onnx.load(str(path)).graph
    consts = constant_map(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def not_ours(why: str) -> ConfigError:
        return ConfigError(f"{path}: not an int8 dscnn-stream graph ({why}); the TFLite streaming export supports that family only")

    def only(name: str, op: str) -> Any:
        users = [n for n in consumers.get(name, []) if n.op_type == op]
        if len(users) != 1:
            raise not_ours(f"no single {op} after {name}")
        return users[0]

    def quant_of_output(name: str) -> tuple[QParams, bool]:
        relu = next((n for n in consumers.get(name, []) if n.op_type == "Relu"), None)
        q = only(relu.output[0] if relu is not None else name, "QuantizeLinear")
        return _scalar_q(consts, q), relu is not None

    def dq_weight(name: str) -> tuple[np.ndarray, np.ndarray]:
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in consts or dq.input[1] not in consts:
            raise not_ours("weights are not int8 initializers behind a DequantizeLinear")
        q, s = consts[dq.input[0]], np.asarray(consts[dq.input[1]], dtype=np.float32).reshape(-1)
        if q.dtype != np.int8:
            raise not_ours("weights are not int8")
        shape = (-1,) + (1,) * (q.ndim - 1)
        return (q.astype(np.float32) * s.reshape(shape)).astype(np.float32), s

    frames = g.input[0].name
    sub = only(frames, "Sub")
    mul = only(sub.output[0], "Mul")
    q_in = _scalar_q(consts, only(mul.output[0], "QuantizeLinear"))
    convs: list[QConvSpec] = []
    for n in (n for n in g.node if n.op_type == "Conv"):
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        w, s = dq_weight(n.input[1])
        b = consts.get(n.input[2]) if len(n.input) > 2 else None
        if b is None or w.ndim != 4:
            raise not_ours("a 2-D convolution without a constant bias")
        out, relu = quant_of_output(n.output[0])
        convs.append(QConvSpec(w=w, w_scale=s, b=np.asarray(b, np.float32), groups=int(attrs.get("group", 1)),
                               stride=tuple(int(v) for v in attrs.get("strides", (1, 1))),  # type: ignore[arg-type]
                               pads=tuple(int(v) for v in attrs.get("pads", (0, 0, 0, 0))), relu=relu, out=out))  # type: ignore[arg-type]
    gemms = [n for n in g.node if n.op_type == "Gemm"]
    if len(convs) < 3 or len(convs) % 2 != 1 or len(gemms) != 1:
        raise not_ours("expected a stem, depthwise/pointwise pairs and one linear head")
    c = int(convs[0].w.shape[0])
    for i, cv in enumerate(convs[1:]):
        dw = i % 2 == 0
        if (dw and (cv.groups != c or cv.w.shape[1] != 1)) or (not dw and (cv.groups != 1 or cv.w.shape[2:] != (1, 1))):
            raise not_ours("blocks are not depthwise then pointwise")
    gemm = gemms[0]
    if not any(a.name == "transB" and a.i == 1 for a in gemm.attribute):
        raise not_ours("the head is not Gemm(transB=1)")
    head_w, head_s = dq_weight(gemm.input[1])
    head_q = producer.get(producer[gemm.input[0]].input[0]) if gemm.input[0] in producer else None
    if head_q is None or head_q.op_type != "QuantizeLinear":
        raise not_ours("the head's input is not quantized")
    pool = [x for x in g.input if len(x.type.tensor_type.shape.dim) == 3 and x.name != frames
            and x.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    if len(pool) != 1:
        raise not_ours("no float pool state")
    return StreamGraph(mean=np.asarray(consts[sub.input[1]], np.float32).reshape(-1),
                       inv_std=np.asarray(consts[mul.input[1]], np.float32).reshape(-1), q_in=q_in, stem=convs[0],
                       blocks=tuple((convs[i], convs[i + 1]) for i in range(1, len(convs), 2)), head_in=_scalar_q(consts, head_q),
                       head_w=head_w, head_w_scale=head_s, head_b=np.asarray(consts[gemm.input[2]], np.float32),
                       head_out=quant_of_output(gemm.output[0])[0],
                       pool_frames=int(pool[0].type.tensor_type.shape.dim[2].dim_value),
                       n_mels=int(g.input[0].type.tensor_type.shape.dim[2].dim_value))


def state_names(n_blocks: int) -> list[tuple[str, str]]:
    """(input, output) names of the states, in the graph's order: the stem's, each block's, the pool."""
    return [(f"state_{i}", f"state_out_{i}") for i in range(n_blocks + 2)]


def _tf_step(tf: Any, sg: StreamGraph) -> Any:
    """The step as a tf.function of (frames, *states) -> {logits, state_out_i}, every ONNX range pinned."""

    def fq(x: Any, q: QParams) -> Any:
        s, z = q
        return tf.quantization.fake_quant_with_min_max_args(x, min=-z * s, max=(255 - z) * s, num_bits=8)

    def wq(w: np.ndarray, scale: np.ndarray) -> Any:  # per channel along the last axis, symmetric (ONNX int8 grid)
        lim = (127.0 * scale).astype(np.float32)
        return tf.quantization.fake_quant_with_min_max_vars_per_channel(tf.constant(w), min=-lim, max=lim, num_bits=8, narrow_range=True)

    def conv(x: Any, cv: QConvSpec) -> Any:
        pt, pf, pte, pfe = cv.pads
        if any(cv.pads):
            x = tf.pad(x, [[0, 0], [pt, pte], [pf, pfe], [0, 0]])
        kh, kw = cv.w.shape[2:]
        if cv.groups == 1:
            y = tf.nn.conv2d(x, wq(cv.w.transpose(2, 3, 1, 0), cv.w_scale), strides=[1, *cv.stride, 1], padding="VALID")
        else:  # depthwise: quantized per channel in the (kh, kw, 1, C) form, then laid out as TF wants it
            f = tf.reshape(wq(cv.w.transpose(2, 3, 1, 0), cv.w_scale), (kh, kw, cv.groups, 1))
            y = tf.nn.depthwise_conv2d(x, f, strides=[1, *cv.stride, 1], padding="VALID")
        y = y + tf.constant(cv.b)
        return fq(tf.nn.relu(y) if cv.relu else y, cv.out)

    keep = sg.state_frames
    n = len(sg.blocks)

    def step(frames: Any, *states: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        x = tf.concat([states[0], fq((frames - tf.constant(sg.mean)) * tf.constant(sg.inv_std), sg.q_in)], axis=1)
        out["state_out_0"] = x[:, -keep[0] :, :]
        h = conv(tf.expand_dims(x, -1), sg.stem)
        for i, (dw, pw) in enumerate(sg.blocks):
            hx = tf.concat([states[1 + i], h], axis=1)
            out[f"state_out_{1 + i}"] = hx[:, -keep[1 + i] :, :, :]
            h = conv(conv(hx, dw), pw)
        pool = tf.concat([states[n + 1], tf.reduce_mean(h, axis=2)], axis=1)[:, -sg.pool_frames :, :]  # (1, P, C)
        out[f"state_out_{n + 1}"] = pool
        z = fq(tf.reduce_mean(pool, axis=1), sg.head_in)
        # the head as a 1x1 convolution: TFLite quantizes a fully-connected layer's weights per tensor after a
        # transpose, a convolution's per output channel as the ONNX graph does
        w = wq(sg.head_w.T.reshape(1, 1, *sg.head_w.T.shape).copy(), sg.head_w_scale)
        y = tf.nn.conv2d(tf.reshape(z, (1, 1, 1, -1)), w, strides=1, padding="VALID") + tf.constant(sg.head_b)
        out["logits"] = fq(tf.reshape(y, (1, -1)), sg.head_out)
        return out

    return step


def tflite_state_shapes(sg: StreamGraph) -> list[tuple[int, ...]]:
    """The TFLite graph's state shapes (NHWC; the pool as (1, frames, channels))."""
    c = int(sg.stem.w.shape[0])
    f = sg.n_mels
    shapes: list[tuple[int, ...]] = [(1, sg.state_frames[0], f)]
    f_stem = (f + sg.stem.pads[1] + sg.stem.pads[3] - sg.stem.w.shape[3]) // sg.stem.stride[1] + 1
    fi = f_stem
    for i, (dw, _) in enumerate(sg.blocks):
        shapes.append((1, sg.state_frames[1 + i], fi, c))
        fi = (fi + dw.pads[1] + dw.pads[3] - dw.w.shape[3]) // dw.stride[1] + 1
    shapes.append((1, sg.pool_frames, c))
    return shapes


def onnx_states_to_float(sg: StreamGraph, onnx_states: list[np.ndarray]) -> list[np.ndarray]:
    """The ONNX graph's states (uint8 frame states, channels-last; a float (1, C, P) pool) as float values in the TFLite
    graph's layout."""
    out = []
    for x, (s, z) in zip(onnx_states[:-1], sg.state_quant(), strict=True):
        out.append(((x.astype(np.float32) - z) * np.float32(s)) if x.dtype == np.uint8 else x.astype(np.float32))
    out.append(np.ascontiguousarray(onnx_states[-1].transpose(0, 2, 1)).astype(np.float32))
    return out


def convert_stream_to_tflite(sg: StreamGraph, out: Path, representative: list[list[np.ndarray]]) -> bytes:
    """Write ``out`` (.tflite): the int8 step of the graph ``sg`` was read from (``read_stream_graph``) with int8 inputs
    and outputs; ``representative`` holds float ``[frames, *states]`` samples (TFLite layout) for the ranges ONNX leaves
    in float."""
    from edgekd.export.tflite import _import_tf, convert_and_write

    tf = _import_tf()
    names = state_names(len(sg.blocks))
    sig = [tf.TensorSpec([1, None, sg.n_mels], tf.float32, name="frames"),
           *(tf.TensorSpec(list(s), tf.float32, name=i) for (i, _), s in zip(names, tflite_state_shapes(sg), strict=True))]
    holder = tf.Module()
    holder.step = tf.function(_tf_step(tf, sg), input_signature=sig)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([holder.step.get_concrete_function()], holder)

    keys = ["frames", *(i for i, _ in names)]

    def gen():  # type: ignore[no-untyped-def]
        for sample in representative:  # by name: with a signature the converter orders its inputs its own way
            yield dict(zip(keys, sample, strict=True))

    return convert_and_write(tf, conv, out, gen)


def _onnx_hops(backend: Any, names: list[tuple[str, str]], init: dict[str, np.ndarray], window: np.ndarray,
               hop: int) -> list[tuple[np.ndarray, list[np.ndarray], np.ndarray]]:
    """Step the ONNX graph over one window from its initial state: (frames, states before the call, logits) per hop."""
    states = [init[i] for i, _ in names]
    out = []
    for t in range(0, window.shape[0] - hop + 1, hop):
        frames = np.ascontiguousarray(window[None, t : t + hop], dtype=np.float32)
        res = backend.run({"frames": frames, **{i: s for (i, _), s in zip(names, states, strict=True)}})
        out.append((frames, states, res["logits"][0]))
        states = [res[o] for _, o in names]
    return out


def _quantize(x: np.ndarray, d: dict[str, Any]) -> np.ndarray:
    s, z = d["quantization"]
    return np.clip(np.round(x / s) + z, -128, 127).astype(np.int8)


def write_tflite_stream(tmp: Path, manifest: Any, calibration: np.ndarray, *, max_samples: int = 400, calibration_source: str = "") -> Any:
    """In ``tmp`` (a staging copy of an int8 streaming bundle with a model.tflite): convert its ONNX streaming graph,
    write the TFLite graph, its initial states and the LiteRT golden detections (now streamed); check the TFLite step
    against the ONNX step hop by hop on the golden windows. Return the manifest with all of it recorded (not yet
    finalized)."""
    from edgekd.export.bundle import write_golden_detections
    from edgekd.runtime.backends.litert import LiteRTBackend
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.kws_stream import stride_frames

    st = manifest.kws_streaming
    if st is None or not any(x.dtype == "uint8" for x in st.states):
        raise ConfigError(f"{manifest.name}: no int8 streaming-state graph; the TFLite streaming graph is made from one "
                          "(export the bundle from a QAT checkpoint)")
    if not manifest.tflite_file:
        raise ConfigError(f"{manifest.name}: add model.tflite first (edgekd export tflite CHECKPOINT --bundle B --int8 --calib DIR)")
    if calibration.ndim != 3 or calibration.shape[0] == 0:
        raise ConfigError("TFLite stream export: the calibration set is empty; give a folder with WAVs")
    onnx_path = tmp / st.model_file
    sg = read_stream_graph(onnx_path)
    names = state_names(len(sg.blocks))
    if [(x.input, x.output) for x in st.states] != names:
        raise ConfigError(f"{st.model_file}: state names differ from the manifest's; re-export the bundle")
    with np.load(tmp / st.init) as z:
        init = {k: z[k] for k in z.files}
    onnx = OnnxBackend(onnx_path)
    hop = stride_frames(manifest.postprocess.get("stride_ms", 160), manifest.sample_rate, int(manifest.frontend["hop_samples"]))
    step = max(1, calibration.shape[0] * (calibration.shape[1] // hop) // max_samples)
    rep = [[frames, *onnx_states_to_float(sg, states)]
           for w in calibration[::step] for frames, states, _ in _onnx_hops(onnx, names, init, w, hop)]
    path = tmp / TFLITE_STREAM_FILE
    convert_stream_to_tflite(sg, path, rep)
    lite = LiteRTBackend(path)
    ins = lite._in  # name -> interpreter detail (quantization of each int8 input)
    init_tfl = {i: _quantize(x, ins[i]) for (i, _), x in zip(names, onnx_states_to_float(sg, [init[i] for i, _ in names]), strict=True)}
    np.savez(tmp / TFLITE_STREAM_INIT, **init_tfl)
    worst = _max_steps_vs_onnx(lite, onnx, names, init, init_tfl, np.load(tmp / manifest.golden_block.input), hop, sg.head_out[0])
    if worst > STREAM_PARITY_STEPS:
        raise ConfigError(f"TFLite streaming graph differs from the ONNX one by {worst:.0f} output steps (limit {STREAM_PARITY_STEPS}); "
                          "report this with the bundle")
    streaming = dict(manifest.streaming, tflite_model_file=TFLITE_STREAM_FILE, tflite_init=TFLITE_STREAM_INIT)
    m = manifest.replace(streaming=streaming, provenance=dict(manifest.provenance, tflite_stream_vs_onnx_max_steps=round(worst, 3),
                                                              tflite_stream_from=st.model_file,
                                                              tflite_stream_calibration=calibration_source or "the export's --calib WAVs"))
    g = m.golden_block
    if g.wav:
        whole = LiteRTBackend(tmp / m.tflite_file)
        rel = g.tflite_detections or "golden/detections_tflite.json"
        write_golden_detections(tmp, m, whole, rel, step_backend=lite)
        m = m.replace(golden=g.replace(tflite_detections=rel).to_dict())
    return m



def stream_logit_pairs(lite: Any, onnx: Any, names: list[tuple[str, str]], init: dict[str, np.ndarray],
                       init_tfl: dict[str, np.ndarray], windows: Any, hop: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(TFLite logits, ONNX logits) of each hop over each of ``windows`` (``(T, mels)`` arrays), each window from the
    initial states; the TFLite step runs through the runtime's own LiteRT stepper."""
    stepper = None
    for w in windows:
        if stepper is None:
            stepper = lite.state_stepper("frames", (1, hop, w.shape[1]), names, "logits", init_tfl)
        stepper.reset()
        for frames, _, want in _onnx_hops(onnx, names, init, w, hop):
            stepper.frames[...] = frames
            yield stepper.step(), want


def _max_steps_vs_onnx(lite: Any, onnx: Any, names: list[tuple[str, str]], init: dict[str, np.ndarray],
                       init_tfl: dict[str, np.ndarray], windows: np.ndarray, hop: int, out_step: float) -> float:
    """Largest logit difference, in output steps, between the TFLite step and the ONNX step over ``windows`` hop by hop."""
    return max((float(np.max(np.abs(got - want))) / out_step
                for got, want in stream_logit_pairs(lite, onnx, names, init, init_tfl, windows, hop)), default=0.0)


def add_tflite_stream_to_bundle(bundle: str | Path, *, calibration: np.ndarray, calibration_source: str = "") -> Any:
    """Add ``model_stream.tflite`` (made from the bundle's int8 streaming ONNX graph) to ``bundle``, atomically;
    ``calibration_source`` (what the calibration windows came from) goes into the provenance."""
    import shutil

    from edgekd.export.bundle import finalize_manifest, staging_dir
    from edgekd.export.tflite import _import_tf
    from edgekd.runtime.manifest import ModelManifest

    root = Path(bundle)
    manifest = ModelManifest.load(root)
    manifest.verify_files(root)
    _import_tf()
    with staging_dir(root) as tmp:
        shutil.copytree(root, tmp, dirs_exist_ok=True)
        m = finalize_manifest(tmp, write_tflite_stream(tmp, manifest, calibration, calibration_source=calibration_source))
    return m
