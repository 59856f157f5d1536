"""Rewrite the int8 streaming graph of shipped bundles in place: dead dequantizations dropped, 4-D states channels-last.

    .venv/bin/python tools/restream_int8.py models/kws12-dscnn-stream64-kd-int8 [more bundles] [--install] [--rounds 10]

Why: bundles exported before this rewrite (`edgekd.export.int8_states.channels_last_states`, 2026-12-02) pass their
states in torch's NCHW layout, and onnxruntime, which runs int8 convolutions channels-last, transposes every state
concatenation and every convolution output per hop. Their training checkpoints are not shipped, so instead of a new
export the same graph pass runs on the shipped ONNX file. The values do not change, and this tool proves it on each
bundle before it writes anything: the old and the new graph stepped hop by hop over the bundle's golden clip give the
same logits and the same states (transposed), bit for bit. It also measures one model call per hop of each graph side
by side (1 thread, alternating rounds, medians) and writes bench/results/<machine>/stream_graph_rewrites.json.
Without --install nothing under models/ changes. A bundle already rewritten is left as it is (the pass finds no NCHW
state to move).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _hop_frames(bundle: Path, manifest: Any) -> np.ndarray:
    """The golden clip's log-mel frames, cut to whole hops of the manifest's stride."""
    from edgekd.runtime.frontend import FrontendParams, LogMelFrontend
    from edgekd.runtime.wav import load_audio

    fp = FrontendParams.from_dict(manifest.frontend)
    feats = LogMelFrontend(fp).features(load_audio(bundle / manifest.golden_block.wav, fp.sample_rate))
    hop = max(1, round(manifest.postprocess["stride_ms"] * fp.sample_rate / (1000.0 * fp.hop_samples)))
    return feats[: feats.shape[0] // hop * hop].reshape(-1, 1, hop, fp.n_mels)


def _step_all(graph: Any, st: Any, init: dict[str, np.ndarray], hops: np.ndarray) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    states, logits, trail = dict(init), [], []
    for x in hops:
        out = graph.run({st.frames_input: x, **states})
        states = {s.input: out[s.output] for s in st.states}
        logits.append(out[st.logits_output])
        trail.append(states)
    return np.concatenate(logits), trail


def _time_side_by_side(a: Any, fa: dict[str, np.ndarray], b: Any, fb: dict[str, np.ndarray], rounds: int, calls: int = 500) -> dict[str, float]:
    """Median CPU microseconds per call of each graph, alternating rounds in this one process."""
    for _ in range(100):
        a.run(fa)
        b.run(fb)
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for sess, feeds, acc in ((a, fa, ta), (b, fb, tb)):
            c0 = time.process_time()
            for _ in range(calls):
                sess.run(feeds)
            acc.append(1e6 * (time.process_time() - c0) / calls)
    return {"before_us_per_call": statistics.median(ta), "after_us_per_call": statistics.median(tb),
            "after_over_before": statistics.median(tb) / statistics.median(ta)}


def restream(bundle: Path, rounds: int, install: bool) -> dict[str, Any]:
    from edgekd.export.bundle import finalize_manifest, staging_dir
    from edgekd.export.int8 import optimized_op_counts
    from edgekd.export.int8_states import channels_last_states
    from edgekd.runtime.backends.onnx import OnnxBackend
    from edgekd.runtime.manifest import ModelManifest

    man = ModelManifest.load(bundle)
    st = man.kws_streaming
    if st is None or man.quantization not in ("int8-qat", "int8-ptq"):
        raise SystemExit(f"{bundle}: not an int8 bundle with a streaming-state graph")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d) / bundle.name
        shutil.copytree(bundle, work)
        with np.load(bundle / st.init) as z:
            init = {k: z[k] for k in z.files}
        new_init = channels_last_states(work / st.model_file, init, {s.input: s.output for s in st.states})
        moved = [k for k in init if new_init[k].shape != init[k].shape]
        before, after = OnnxBackend(bundle / st.model_file), OnnxBackend(work / st.model_file)
        hops = _hop_frames(bundle, man)
        la, sa = _step_all(before, st, init, hops)
        lb, sb = _step_all(after, st, new_init, hops)
        same_states = all(np.array_equal(x[k].transpose(0, 2, 3, 1) if k in moved else x[k], y[k]) for x, y in zip(sa, sb, strict=True) for k in x)
        if not (np.array_equal(la, lb) and same_states):
            raise SystemExit(f"{bundle}: the rewritten graph differs from the shipped one; nothing written")
        timing = _time_side_by_side(before, {st.frames_input: hops[0], **init}, after, {st.frames_input: hops[0], **new_init}, rounds)
        result = {"bundle": man.name, "hop_frames": int(hops.shape[2]), "hops_compared": int(hops.shape[0]),
                  "identical_logits_and_states": True, "states_moved_channels_last": moved,
                  "transposes_run_before": optimized_op_counts(bundle / st.model_file, layout=True).get("Transpose", 0),
                  "transposes_run_after": optimized_op_counts(work / st.model_file, layout=True).get("Transpose", 0),
                  "nodes_before": _nodes(bundle / st.model_file), "nodes_after": _nodes(work / st.model_file), **timing}
        print(json.dumps(result), flush=True)
        if install and moved:
            np.savez(work / st.init, **new_init)
            shapes = {k: list(v.shape) for k, v in new_init.items()}
            block = dict(man.streaming)
            block["states"] = [{**s, "shape": shapes[s["input"]]} for s in block["states"]]
            finalize_manifest(work, man.replace(streaming=block))
            with staging_dir(bundle) as tmp:  # the bundle is replaced whole or not at all
                shutil.copytree(work, tmp, dirs_exist_ok=True)
            print(f"installed {bundle}", flush=True)
    return result


def _nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", nargs="+", type=Path)
    ap.add_argument("--install", action="store_true", help="replace the bundles' streaming graph and initial state")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from edgekd.bench.machine import machine_facts, machine_slug
    from edgekd.core.fsutil import atomic_write_text

    results = [restream(b, args.rounds, args.install) for b in args.bundles]
    out = REPO / "bench" / "results" / machine_slug() / "stream_graph_rewrites.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"what": "int8 streaming graph before/after dropping dead nodes and passing 4-D states channels-last: one "
                   "model call per hop, CPU us, onnxruntime 1 thread, alternating rounds in one process",
           "command": "python tools/restream_int8.py " + " ".join(str(b) for b in args.bundles), "results": results,
           "machine": machine_facts()}
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    print(f"-> {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
