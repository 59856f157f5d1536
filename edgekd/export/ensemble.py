"""Several students of one task as one bundle: their graphs side by side, the output their mean posterior.

Independent training draws of the same wake-word student differ on real voices (one draw's gate misses speakers the
next one reaches); their mean posterior is one student made of several (``edgekd train wakeword --students K``;
measured on the dev phrases, README: two gained nothing over their members' average, three built from other draws
helped one phrase, and the recipe's own three-student draws gained nothing on average). The
members' exported graphs (whole window and streaming, int8 as exported, each checked against torch then) are copied into one
graph per kind with every name but the shared input prefixed ``m<k>/``; the new output is ``log(mean_k softmax(
logits_k))``, whose softmax, what the runtime takes, is the members' mean posterior. Nothing in the runtime changes:
the merged bundle has one ``model.onnx``, one ``model_stream.onnx`` whose states are all the members' states, one
``state_init.npz``. Its golden output and detections are made again by running the merged graphs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgekd.core.errors import ConfigError
from edgekd.runtime.manifest import ModelManifest

__all__ = ["merge_students", "MEAN_FLOOR"]

MEAN_FLOOR = 1e-30  # the mean posterior is floored here before its log: a member's exact 0 never becomes -inf


def _prefixed(graph: Any, prefix: str, shared: str) -> Any:
    """A copy of ``graph`` whose every value, initializer and node name but the input ``shared`` starts with ``prefix``."""
    import onnx

    g = onnx.GraphProto()
    g.CopyFrom(graph)

    def name(n: str) -> str:
        return n if n in ("", shared) else prefix + n

    for node in g.node:
        node.name = prefix + node.name if node.name else ""
        node.input[:] = [name(i) for i in node.input]
        node.output[:] = [name(o) for o in node.output]
        for a in node.attribute:
            if a.g.node or a.graphs:
                raise ConfigError("a member graph has subgraphs: merging students supports plain graphs only")
    for coll in (g.initializer, g.sparse_initializer):
        for t in coll:
            if hasattr(t, "values"):
                t.values.name = name(t.values.name)
            else:
                t.name = name(t.name)
    for coll in (g.input, g.output, g.value_info):
        for v in coll:
            v.name = name(v.name)
    return g


def _merge_graphs(paths: Sequence[Path], shared: str, logits: str) -> Any:
    """One model from the member graphs at ``paths``: ``shared`` is everyone's input; output ``logits`` is the log of
    the members' mean posterior; every other input and output is the members', prefixed."""
    import onnx
    from onnx import TensorProto, helper

    models = [onnx.load(str(p)) for p in paths]
    opsets = {(o.domain, o.version) for m in models for o in m.opset_import}
    if len({m.ir_version for m in models}) != 1 or len(opsets) != len({d for d, _ in opsets}):
        raise ConfigError(f"the students' graphs differ in ONNX version or opset ({paths[0].name}): export them with one edgekd")
    parts = [_prefixed(m.graph, f"m{k}/", shared) for k, m in enumerate(models)]
    g = helper.make_graph([], models[0].graph.name, [], [])
    g.input.append(next(v for v in models[0].graph.input if v.name == shared))
    g.output.append(next(v for v in models[0].graph.output if v.name == logits))
    probs = []
    for k, p in enumerate(parts):
        g.node.extend(p.node)
        g.initializer.extend(p.initializer)
        g.sparse_initializer.extend(p.sparse_initializer)
        g.value_info.extend(p.value_info)
        g.input.extend(v for v in p.input if v.name != shared)
        g.output.extend(v for v in p.output if v.name != f"m{k}/{logits}")
        probs.append(f"m{k}/{logits}.softmax")
        g.node.append(helper.make_node("Softmax", [f"m{k}/{logits}"], [probs[-1]], name=f"m{k}/mean_softmax", axis=-1))
    n = len(parts)
    g.initializer.extend([helper.make_tensor("ensemble/inv_n", TensorProto.FLOAT, [], [1.0 / n]),
                          helper.make_tensor("ensemble/floor", TensorProto.FLOAT, [], [MEAN_FLOOR])])
    g.node.extend([helper.make_node("Sum", probs, ["ensemble/sum"], name="ensemble/sum"),
                   helper.make_node("Mul", ["ensemble/sum", "ensemble/inv_n"], ["ensemble/mean"], name="ensemble/mean"),
                   helper.make_node("Max", ["ensemble/mean", "ensemble/floor"], ["ensemble/floored"], name="ensemble/floored"),
                   helper.make_node("Log", ["ensemble/floored"], [logits], name="ensemble/log")])
    merged = helper.make_model(g, opset_imports=list(models[0].opset_import), producer_name="edgekd")
    merged.ir_version = models[0].ir_version
    onnx.checker.check_model(merged)
    return merged


def _check_members(manifests: Sequence[ModelManifest], members: Sequence[Path]) -> None:
    first = manifests[0]
    for m, p in zip(manifests[1:], members[1:], strict=True):
        for what in ("task", "labels", "frontend", "sample_rate", "window_frames", "quantization", "inputs", "outputs"):
            if getattr(m, what) != getattr(first, what):
                raise ConfigError(f"{p}: its {what} differ from {members[0]}'s: give students of one task and recipe")
        a, b = m.kws_streaming, first.kws_streaming
        if (a is None) != (b is None) or (a and b and (a.hop_frames, a.frames_input, a.logits_output) != (b.hop_frames, b.frames_input, b.logits_output)):
            raise ConfigError(f"{p}: its streaming graph differs from {members[0]}'s (hop, names): export both the same way")
    if first.task != "kws":
        raise ConfigError(f"{members[0]}: only keyword-spotting students can be merged (task {first.task!r})")
    if any(m.tflite_file for m in manifests):
        raise ConfigError("a student bundle has a TFLite model: merge ONNX-only bundles (export without --tflite)")


def merge_students(members: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, name: str | None = None) -> ModelManifest:
    """One bundle at ``out`` (replaced atomically) whose model is the mean posterior of the student bundles ``members``
    (two or more, same task, labels, frontend, window and quantization). The first member's post-processing, golden
    WAV and metadata are kept; a member's verifier is not (attach one to the merged bundle)."""
    import onnx

    from edgekd.export.bundle import finalize_manifest, staging_dir, write_golden_detections
    from edgekd.export.onnx import stamp_manifest
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.manifest import KwsStreaming, StateSpec

    paths = [Path(p) for p in members]
    if len(paths) < 2:
        raise ConfigError("give two or more student bundles to merge")
    manifests = [ModelManifest.load(p) for p in paths]
    for m, p in zip(manifests, paths, strict=True):
        m.verify_files(p)
    _check_members(manifests, paths)
    first = manifests[0]
    inp, outp = first.inputs[0].name, first.outputs[0].name
    st = first.kws_streaming
    with staging_dir(out) as tmp:
        whole = _merge_graphs([p / m.model_file for p, m in zip(paths, manifests, strict=True)], inp, outp)
        m = first.replace(name=name or f"{first.name}-x{len(paths)}", verifier={},
                          provenance=dict(first.provenance, ensemble=[{"bundle": str(p), "name": mm.name, "checkpoint": mm.provenance.get("checkpoint"),
                                                                       "model_sha256": mm.files.get(mm.model_file)}
                                                                      for p, mm in zip(paths, manifests, strict=True)],
                                          params=sum(int(mm.provenance.get("params") or 0) for mm in manifests),
                                          macs_per_inference=sum(int(mm.provenance.get("macs_per_inference") or 0) for mm in manifests)),
                          metrics={"params": sum(int(mm.metrics.get("params") or 0) for mm in manifests),
                                   "macs_per_inference": sum(int(mm.metrics.get("macs_per_inference") or 0) for mm in manifests),
                                   "members": [mm.metrics for mm in manifests]})
        if st is not None:
            onnx.save(_merge_graphs([p / mm.kws_streaming.model_file for p, mm in zip(paths, manifests, strict=True)],  # type: ignore[union-attr]
                                    st.frames_input, st.logits_output), str(tmp / st.model_file))
            init: dict[str, np.ndarray] = {}
            states: list[StateSpec] = []
            for k, (p, mm) in enumerate(zip(paths, manifests, strict=True)):
                s = mm.kws_streaming
                with np.load(p / s.init) as z:  # type: ignore[union-attr]
                    init.update({f"m{k}/{n}": z[n] for n in z.files})
                states += [StateSpec(f"m{k}/{x.input}", f"m{k}/{x.output}", x.shape, x.dtype) for x in s.states]  # type: ignore[union-attr]
            np.savez(tmp / st.init, **init)
            m = m.replace(streaming=KwsStreaming(model_file=st.model_file, init=st.init, hop_frames=st.hop_frames, frames_input=st.frames_input,
                                                 logits_output=st.logits_output, graph_macs_per_hop=sum(mm.kws_streaming.graph_macs_per_hop  # type: ignore[union-attr]
                                                                                                         for mm in manifests),
                                                 states=tuple(states)).to_dict())
        stamp_manifest(whole, m)
        onnx.save(whole, str(tmp / m.model_file))
        g = first.golden_block
        (tmp / "golden").mkdir()
        golden_in = np.load(paths[0] / g.input)
        np.save(tmp / g.input, golden_in)
        backend = OnnxBackend(tmp / m.model_file)
        np.save(tmp / g.output, backend.run({inp: golden_in})[outp])
        if g.wav:
            shutil.copyfile(paths[0] / g.wav, tmp / g.wav)
            from edgekd.runtime.detector import streaming_backend

            write_golden_detections(tmp, m, backend, g.detections, step_backend=streaming_backend("onnx", tmp, m))
        return finalize_manifest(tmp, m)
