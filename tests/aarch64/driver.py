"""Runs INSIDE the emulated arm64 rootfs: selftest on every bundle, both backends (its golden stream is each bundle's
golden WAV streamed and compared with the golden detections); `edgekd run --wav` of the golden WAV through the CLI on
the first bundle of each task and backend (the same stream again; run on every bundle, the test took 326 s instead of
235 s on 2 cores, docs/ARCHITECTURE.md).

Prints one JSON object on the last line of stdout. Uses only what a board has: the kit's wheel and
its runtime dependencies.
"""

import contextlib
import io
import json
import platform
import sys
from pathlib import Path

from edgekd.cli import app
from edgekd.runtime.selftest import selftest

out = {"machine": platform.machine(), "python": platform.python_version(), "results": []}
ran = set()
for bundle in sorted(p.parent for p in Path(sys.argv[1]).glob("*/manifest.json")):
    manifest = json.loads((bundle / "manifest.json").read_text())
    golden, task = manifest["golden"], manifest["task"]
    for backend in ("onnx", "litert") if manifest.get("tflite_file") else ("onnx",):  # SED bundles have no TFLite graph
        checks = selftest(bundle, backend=backend)
        row = {"bundle": bundle.name, "backend": backend, "task": task, "selftest_ok": all(c.ok for c in checks),
               "selftest": [c.line() for c in checks], "run": (task, backend) not in ran}
        out["results"].append(row)
        if not row["run"]:
            continue
        ran.add((task, backend))
        buf = io.StringIO()
        code = 0
        with contextlib.redirect_stdout(buf):
            try:
                app(["run", str(bundle), "--wav", str(bundle / golden["wav"]), "--backend", backend], standalone_mode=False)
            except SystemExit as e:
                code = int(e.code or 0)
        got = [json.loads(ln) for ln in buf.getvalue().splitlines() if ln.startswith("{")]
        if task == "sed":  # closed events against the golden events
            want = json.loads((bundle / golden["events"]).read_text())
            run_d = sorted((d["label"], d["onset_ms"], d["offset_ms"]) for d in got if "offset_ms" in d)
            expected = sorted((e["label"], e["onset_ms"], e["offset_ms"]) for e in want)
        else:
            want_file = golden.get("tflite_detections") if backend == "litert" else golden.get("detections")
            want = json.loads((bundle / want_file).read_text())
            run_d = [(d["label"], d["t_ms"]) for d in got]
            expected = [(d["label"], d["t_ms"]) for d in want]
        row.update(run_exit=code, run_detections=run_d, expected_detections=expected)
from edgekd.bench.stream import REQUIRED_FIELDS, bench_stream  # noqa: E402

first = sorted(p.parent for p in Path(sys.argv[1]).glob("kws*/manifest.json"))[0]
b = bench_stream(first, first / "golden" / "clip.wav", backend="onnx", repeats=1)
out["bench_fields_ok"] = all(k in b for k in REQUIRED_FIELDS) and b["cpu_ms_per_audio_s"] > 0 and b["machine"]["arch"] == "aarch64"
heavy = [m for m in ("torch", "onnx", "scipy", "librosa", "tensorflow") if m in sys.modules]
out["heavy_modules_loaded"] = heavy
print(json.dumps(out))
