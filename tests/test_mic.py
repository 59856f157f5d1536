"""Live input: a real PortAudio stream through a virtual microphone, overflow accounting, and stdin PCM."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgekd.runtime.wav import load_audio
from tests.vmic import VirtualMic, available

OK, WHY = available()
needs_mic = pytest.mark.skipif(not OK, reason=WHY)
EDGEKD = [sys.executable, "-m", "edgekd"]


@pytest.fixture()
def vmic(tmp_path: Path):  # type: ignore[no-untyped-def]
    vm = VirtualMic(tmp_path / "pulse")
    try:
        yield vm
    finally:
        vm.close()


def _three_keyword_clip(shipped: Path) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """yes, stop, left from the golden clip (held-out voices), and where each one ends (ms)."""
    x = load_audio(shipped / "golden" / "clip.wav", 16000)
    a, b, c = int(3.4 * 16000), int(5.6 * 16000), int(7.4 * 16000)
    clip = np.concatenate([x[:a], x[b:c], np.zeros(16000, np.float32)])
    ends = []
    for label, lo, hi, shift in (("yes", 0, 1.9 * 16000, 0), ("stop", 1.9 * 16000, a, 0), ("left", b, c, a - b)):
        seg = np.abs(x[int(lo) : int(hi)])
        loud = np.flatnonzero(seg > 0.05)
        ends.append((label, int(1000 * (int(lo) + loud[-1] + shift) / 16000)))
    return clip, ends


@needs_mic
def test_keywords_through_a_real_portaudio_stream(vmic: VirtualMic, shipped_bundle: Path) -> None:
    clip, ends = _three_keyword_clip(shipped_bundle)
    env = dict(os.environ, **vmic.env)
    p = subprocess.Popen([*EDGEKD, "run", str(shipped_bundle), "--mic", "--duration", str(clip.shape[0] / 16000 + 2.0)],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_listen = None
        assert p.stderr is not None and p.stdout is not None
        for line in p.stderr:
            if line.startswith("listening on"):
                t_listen = time.perf_counter()
                break
        assert t_listen is not None, "edgekd run --mic never started listening"
        vmic.start()
        time.sleep(1.0)
        vmic.play(clip)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-1000:]
    offset_ms = 1000.0 * (vmic.started_at[0] - t_listen)
    dets = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    assert [d["label"] for d in dets] == [label for label, _ in ends], dets
    for d, (label, end_ms) in zip(dets, ends, strict=True):
        assert abs(d["t_ms"] - (offset_ms + end_ms)) <= 250, (label, d["t_ms"], offset_ms + end_ms)
        assert d["latency_ms"] >= 0
    summary = [ln for ln in err.splitlines() if "s of audio" in ln][-1]
    assert "3 detection(s)" in summary and "overflow(s)" in summary


@needs_mic
def test_slow_consumer_overflows_are_counted_and_the_stream_goes_on(vmic: VirtualMic) -> None:
    os.environ.update(vmic.env)
    from edgekd.runtime.audio import MicSource

    src = MicSource(16000, 1280, max_queue_s=0.25)
    vmic.start()
    got = 0
    try:
        it = iter(src)
        for _ in range(12):
            chunk = next(it)
            got += chunk.samples.shape[0]
            time.sleep(0.25)  # 3x slower than real time
    finally:
        src.close()
    assert got == 12 * 1280
    assert src.overflows > 0


@needs_mic
def test_devices_lists_the_virtual_source(vmic: VirtualMic) -> None:
    p = subprocess.run([*EDGEKD, "devices"], env=dict(os.environ, **vmic.env), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert any("pulse" in ln or "default" in ln for ln in p.stdout.splitlines())


def test_stdin_pcm_gives_the_same_detections_as_the_wav(shipped_bundle: Path) -> None:
    wav = shipped_bundle / "golden" / "clip.wav"
    pcm = np.round(load_audio(wav, 16000) * 32768).clip(-32768, 32767).astype("<i2").tobytes()
    a = subprocess.run([*EDGEKD, "run", str(shipped_bundle), "--stdin"], input=pcm, capture_output=True, timeout=120)
    b = subprocess.run([*EDGEKD, "run", str(shipped_bundle), "--wav", str(wav)], capture_output=True, timeout=120)
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-500:]

    def labels_times(out: bytes) -> list[tuple[str, int]]:
        return [(d["label"], d["t_ms"]) for d in map(json.loads, out.decode().splitlines())]

    assert labels_times(a.stdout) == labels_times(b.stdout) and len(labels_times(a.stdout)) >= 3


def test_run_needs_exactly_one_source(shipped_bundle: Path) -> None:
    p = subprocess.run([*EDGEKD, "run", str(shipped_bundle)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "exactly one audio source" in p.stderr
