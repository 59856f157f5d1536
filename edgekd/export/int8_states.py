"""int8 streaming graph: states that cross the call boundary quantized (uint8), not as dequantized float32.

The QAT exporter writes each state concatenation as ``state (float) + DQ(q) -> Concat -> Q -> DQ -> {Slice -> state_out,
Conv}``, where the Q after the Concat has the scale and zero point of the Q that made ``q`` (one observer). Every
value of the state is on that grid, so the Concat can take the quantized tensors directly: ``state (uint8) + q ->
Concat -> DQ -> Conv`` and ``Slice -> state_out (uint8)``. Nothing changes value (Q(DQ(q)) = q); per hop ONNX Runtime
runs one QuantizeLinear and one DequantizeLinear less per state and moves a quarter of the bytes through Concat and
Slice (14% of the whole stream on x86: bench/results/state_dtype_side_by_side.json). States whose neighbours do not match that pattern (the pooled
head state, which is averaged in float) stay float32.

Two more rewrites, exact as well (``channels_last_states``): the dequantizations the first rewrite leaves without a
consumer are dropped (ONNX Runtime runs them anyway), and every 4-D state crosses the boundary channels-last
(N, T, F, C). ONNX Runtime runs QLinearConv channels-last on every CPU, so with NCHW states it transposes each state
concatenation in and each convolution's output back, ten Transposes per hop; with channels-last states the graph's
own transposes at the boundary cancel against those and two remain. Together 14-18% less model time per call
(``tools/restream_int8.py``, bench/results/<machine>/stream_graph_rewrites.json). Only for int8 graphs: the fp32 graph
runs convolutions in blocked NCHWc, where channels-last states measured slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError

__all__ = ["quantize_state_boundaries", "channels_last_states", "drop_unused_nodes"]


def quantize_state_boundaries(path: Path, init: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rewrite the graph at ``path`` in place; return ``init`` with each rewritten state in its quantized type."""
    import onnx

    from edgekd.export.graph_stats import constant_map

    model = onnx.load(str(path))
    g = model.graph
    consts = constant_map(g)
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name: o for o in g.output}
    out = dict(init)
    dropped: list[onnx.NodeProto] = []
    for inp in g.input:
        concat = next((n for n in consumers.get(inp.name, []) if n.op_type == "Concat"), None)
        if concat is None or len(concat.input) != 2 or concat.input[0] != inp.name:
            continue
        dq_new = producer.get(concat.input[1])
        after = consumers.get(concat.output[0], [])
        if dq_new is None or dq_new.op_type != "DequantizeLinear" or len(after) != 1 or after[0].op_type != "QuantizeLinear":
            continue
        q = after[0]
        scale, zp = consts.get(q.input[1]), consts.get(q.input[2])
        if scale is None or zp is None or scale.size != 1:
            continue
        same = all(i in consts and np.array_equal(consts[i], consts[j]) for i, j in zip(dq_new.input[1:3], q.input[1:3], strict=True))
        dq_after = [n for n in consumers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
        if not same or len(dq_after) != 1:
            continue
        slices = [n for n in consumers.get(dq_after[0].output[0], []) if n.op_type == "Slice" and n.output[0] in outputs]
        if len(slices) != 1:
            continue
        q_vals = _quantize_exactly(inp.name, init[inp.name], float(scale.reshape(())), zp.reshape(()))
        # the Concat takes the quantized new values and produces what the Q produced; the Slice reads it directly
        concat.input[1] = dq_new.input[0]
        concat.output[0] = q.output[0]
        slices[0].input[0] = q.output[0]
        dropped.append(q)
        elem = onnx.helper.np_dtype_to_tensor_dtype(zp.dtype)
        inp.type.tensor_type.elem_type = elem
        outputs[slices[0].output[0]].type.tensor_type.elem_type = elem
        out[inp.name] = q_vals
    for n in dropped:
        g.node.remove(n)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return out


def _quantize_exactly(name: str, values: np.ndarray, scale: float, zp: np.ndarray) -> np.ndarray:
    """The quantized form of a state that holds dequantized values; refuses one that is not on the grid."""
    info = np.iinfo(zp.dtype)
    q = np.clip(np.round(values.astype(np.float64) / scale) + int(zp), info.min, info.max).astype(zp.dtype)
    back = ((q.astype(np.float32) - np.float32(int(zp))) * np.float32(scale)).astype(np.float32)
    if not np.allclose(back, values, rtol=0.0, atol=1e-6 * max(1.0, float(np.max(np.abs(values), initial=0.0)))):
        raise ConfigError(f"initial {name} is not on its quantizer's grid; the streaming export is broken")
    return q


def drop_unused_nodes(graph: Any) -> int:
    """Remove the nodes nothing needs for the graph's outputs (and initializers left unused); return how many nodes."""
    needed = {o.name for o in graph.output}
    keep: list[Any] = []
    for n in reversed(list(graph.node)):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(n.input)
    dropped = len(graph.node) - len(keep)
    if dropped:
        keep.reverse()
        del graph.node[:]
        graph.node.extend(keep)
        inits = [i for i in graph.initializer if i.name in needed]
        del graph.initializer[:]
        graph.initializer.extend(inits)
    return dropped


def channels_last_states(path: Path, init: dict[str, np.ndarray], outputs: dict[str, str]) -> dict[str, np.ndarray]:
    """Rewrite the int8 streaming graph at ``path`` in place: unused nodes dropped, each 4-D state (N, C, T, F) that
    feeds a Concat passed as (N, T, F, C) instead; return ``init`` in the new layout. ``outputs`` maps each state input
    to its state output. The graph computes the same values (tested hop by hop)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path))
    g = model.graph
    drop_unused_nodes(g)
    consumers: dict[str, list[Any]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    graph_out = {o.name: o for o in g.output}
    out = dict(init)
    first: list[Any] = []
    last: list[Any] = []
    for inp in g.input:
        dims = inp.type.tensor_type.shape.dim
        concats = [n for n in consumers.get(inp.name, []) if n.op_type == "Concat"]
        out_name = outputs.get(inp.name)
        if inp.name not in init or init[inp.name].ndim != 4 or len(dims) != 4 or len(concats) != 1 or out_name not in producer:
            continue
        n, c, t, f = init[inp.name].shape
        inner = f"{inp.name}_nchw"
        for node in consumers[inp.name]:
            node.input[:] = [inner if i == inp.name else i for i in node.input]
        first.append(helper.make_node("Transpose", [inp.name], [inner], perm=[0, 3, 1, 2], name=f"{inp.name}_to_nchw"))
        producer[out_name].output[:] = [f"{out_name}_nchw" if o == out_name else o for o in producer[out_name].output]
        last.append(helper.make_node("Transpose", [f"{out_name}_nchw"], [out_name], perm=[0, 2, 3, 1], name=f"{out_name}_to_nhwc"))
        for vi in (inp, graph_out[out_name]):
            for d, v in zip(vi.type.tensor_type.shape.dim, (n, t, f, c), strict=True):
                d.dim_value = v
        out[inp.name] = np.ascontiguousarray(init[inp.name].transpose(0, 2, 3, 1))
    nodes = [*first, *g.node, *last]
    del g.node[:]
    g.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return out
