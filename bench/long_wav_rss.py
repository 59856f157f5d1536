"""Peak memory of `edgekd run`, `bench` and `eval-stream` on a long WAV: streamed from disk (now) vs loaded whole (before).

    python bench/long_wav_rss.py --minutes 60          (writes bench/results/long_wav_rss.json)

Writes a WAV of --minutes (light noise with the bundle's golden clip repeated), then runs, each in a fresh process:
`edgekd run BUNDLE --wav FILE` (blocks from disk) and the same stream fed from the whole file in memory (what
`run` did before), then `edgekd bench BUNDLE --wav FILE --repeats 1` and `edgekd eval-stream BUNDLE --label yes
--negatives FILE` (one positive: the golden clip), and reports each process's peak RSS (VmHWM) and CPU.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# VmHWM (this process image's own high-water mark): ru_maxrss would carry over the parent's peak across fork + exec
PEAK = ("import atexit, sys\n"
        "def _hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            print('PEAK_RSS_KB', line.split()[1], file=sys.stderr)\n"
        "atexit.register(_hwm)\n")
CLI = PEAK + "from edgekd.cli import main; sys.argv = ['edgekd'] + sys.argv[1:]; main()\n"
WHOLE = PEAK + """
import json
from edgekd.runtime.audio import WavSource
from edgekd.runtime.detector import load_model
from edgekd.runtime.wav import load_audio
det = load_model(sys.argv[1])
s = det.create_stream()
for c in WavSource(load_audio(sys.argv[2], 16000), 16000, 1280):
    for d in s.accept_waveform(c.samples):
        print(json.dumps(d.to_dict()))
"""


def _write_long_wav(path: Path, minutes: float, clip: np.ndarray) -> None:
    """16-bit mono, written a minute at a time (the writer itself stays small)."""
    import struct

    rng = np.random.default_rng(0)
    n = int(minutes * 60 * 16000)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 36 + 2 * n) + b"WAVE")
        f.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16) + b"data" + struct.pack("<I", 2 * n))
        done = 0
        while done < n:
            m = min(60 * 16000, n - done)
            x = 0.003 * rng.standard_normal(m).astype(np.float32)
            for start in range(0, m - clip.shape[0], 5 * 16000):
                x[start : start + clip.shape[0]] += clip
            f.write(np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
            done += m


def _measure(cmd: list[str], ok: tuple[int, ...] = (0,)) -> dict:  # type: ignore[type-arg]
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = [ln.split()[1] for ln in proc.stderr.splitlines() if ln.startswith("PEAK_RSS_KB")]
    if proc.returncode not in ok or not peak:
        raise SystemExit(f"{cmd[:3]} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return {"peak_rss_mb": round(int(peak[0]) / 1024.0, 1), "cpu_s": round((after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime), 1),
            "wall_s": round(time.perf_counter() - t0, 1), "detection_lines": sum(1 for ln in proc.stdout.splitlines() if ln.startswith("{"))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--bundle", type=Path, default=REPO / "models" / "kws12-dscnn-kd-int8")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "long_wav_rss.json")
    args = ap.parse_args()
    from edgekd.bench.machine import machine_facts
    from edgekd.core.fsutil import write_json
    from edgekd.runtime.manifest import sha256_file
    from edgekd.runtime.wav import load_audio

    clip = load_audio(args.bundle / "golden" / "clip.wav", 16000)[: 4 * 16000]
    with tempfile.TemporaryDirectory(prefix="edgekd-longwav-") as d:
        wav = Path(d) / "long.wav"
        _write_long_wav(wav, args.minutes, clip)
        # each in its own process, which reports its own peak (VmHWM) when it exits
        streamed = _measure([sys.executable, "-c", CLI, "run", str(args.bundle), "--wav", str(wav)])
        whole = _measure([sys.executable, "-c", WHOLE, str(args.bundle), str(wav)])
        bench = _measure([sys.executable, "-c", CLI, "bench", str(args.bundle), "--wav", str(wav), "--repeats", "1"])
        pos = Path(d) / "positives"
        pos.mkdir()
        (pos / "clip.wav").write_bytes((args.bundle / "golden" / "clip.wav").read_bytes())
        (Path(d) / "positives.tsv").write_text("filename\tonset\toffset\tevent_label\nclip.wav\t0.0\t1.0\tyes\n")
        evals = _measure([sys.executable, "-c", CLI, "eval-stream", str(args.bundle), "--label", "yes", "--positives", str(pos),
                          "--annotations", str(Path(d) / "positives.tsv"), "--negatives", str(wav), "--json", str(Path(d) / "es.json")],
                         ok=(0, 1))
        size_mb = wav.stat().st_size / 2**20
    result = {"what": "peak RSS of one process streaming a long WAV through a KWS bundle", "minutes": args.minutes,
              "wav_mb": round(size_mb, 1), "bundle": str(args.bundle.relative_to(REPO)), "bundle_sha256": sha256_file(args.bundle / "model.onnx"),
              "streamed_from_disk": streamed, "loaded_whole": whole, "bench_streamed": bench, "eval_stream_streamed": evals,
              "goal_peak_rss_mb": 120,
              "command": "python bench/long_wav_rss.py " + " ".join(sys.argv[1:]), "machine": machine_facts()}
    write_json(args.json, result)
    print(json.dumps({k: result[k] for k in ("minutes", "wav_mb", "streamed_from_disk", "loaded_whole", "bench_streamed",
                                                        "eval_stream_streamed")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
