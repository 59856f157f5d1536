"""Parameters and MACs counted from an exported ONNX graph (so they hold for any model, fp32 or QDQ int8).

params: elements of the weights and biases of Conv / Gemm / MatMul nodes (followed back through
DequantizeLinear to the stored initializer) plus BatchNormalization scale and bias.
MACs (batch 1): Conv = output elements x (input channels / groups) x kernel area; Gemm/MatMul = M x N x K.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["graph_stats", "constant_map"]


def constant_map(graph: Any) -> dict[str, np.ndarray]:
    """Every constant tensor of an ONNX graph by name: its initializers and the outputs of its Constant nodes."""
    from onnx import numpy_helper

    consts: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    return consts


def graph_stats(path: str | Path, shapes_of: dict[str, tuple[int, ...]] | None = None) -> dict[str, int]:
    """Parameters and MACs of one call; a free batch axis counts as 1, and ``shapes_of`` fixes other free axes of the
    named inputs (a streaming graph's new frames)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if shapes_of and vi.name in shapes_of:
            for d, v in zip(dims, shapes_of[vi.name], strict=True):
                d.ClearField("dim_param")
                d.dim_value = int(v)
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    g = model.graph
    consts = constant_map(g)
    producer = {o: n for n in g.node for o in n.output}
    shapes: dict[str, list[int]] = {}
    for vi in list(g.value_info) + list(g.output) + list(g.input):
        d = vi.type.tensor_type.shape.dim
        if d and all(x.HasField("dim_value") for x in d):
            shapes[vi.name] = [x.dim_value for x in d]

    def stored(name: str) -> np.ndarray | None:
        while name not in consts and name in producer and producer[name].op_type in ("DequantizeLinear", "Identity", "Cast"):
            name = producer[name].input[0]
        return consts.get(name)

    params = 0
    macs = 0
    for n in g.node:
        op = n.op_type
        if op in ("Conv", "Gemm", "MatMul"):
            w = stored(n.input[1])
            if w is None:
                continue
            params += int(w.size)
            if len(n.input) > 2 and n.input[2]:
                b = stored(n.input[2])
                params += int(b.size) if b is not None else 0
            out = shapes.get(n.output[0])
            if out is None:
                continue
            if op == "Conv":
                macs += int(np.prod(out)) * int(w.shape[1]) * int(np.prod(w.shape[2:]))  # w: (Cout, Cin/groups, kh, kw)
            else:
                trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0) if op == "Gemm" else 0
                k = int(w.shape[1] if trans_b else w.shape[0])
                macs += int(np.prod(out)) * k
        elif op == "BatchNormalization":
            for i in (1, 2):
                v = stored(n.input[i])
                params += int(v.size) if v is not None else 0
    return {"params": params, "macs_per_inference": macs}
