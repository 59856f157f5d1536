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


def _run_through_mic(vmic: VirtualMic, bundle: Path, clip: np.ndarray) -> tuple[str, str, float]:
    """`edgekd run BUNDLE --mic` while the virtual microphone plays ``clip`` one second after it starts listening:
    stdout, stderr, and where the clip starts on the stream's clock (ms)."""
    env = dict(os.environ, **vmic.env)
    p = subprocess.Popen([*EDGEKD, "run", str(bundle), "--mic", "--duration", str(clip.shape[0] / 16000 + 2.0)],
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
    return out, err, 1000.0 * (vmic.started_at[0] - t_listen)


@needs_mic
def test_keywords_through_a_real_portaudio_stream(vmic: VirtualMic, shipped_bundle: Path) -> None:
    clip, ends = _three_keyword_clip(shipped_bundle)
    out, err, offset_ms = _run_through_mic(vmic, shipped_bundle, clip)
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


def _tone_sed_bundle(out: Path) -> tuple[np.ndarray, list[tuple[str, int, int]]]:
    """An (untrained) sed-causal-cnn bundle whose one live label separates a 900 Hz tone from silence (thresholds
    set between its scores on the two), the clip (2 s quiet, 1.5 s tone, 2.5 s quiet) and the clip's own events."""
    import torch

    from edgekd.export.sed import export_sed
    from edgekd.runtime.detector import load_model
    from edgekd.runtime.frontend import LogMelFrontend
    from edgekd.runtime.sed_post import SedPostprocessConfig
    from edgekd.train.models import build_model

    labels = ["alarm", "bell", "door"]
    t = np.arange(16000 * 6) / 16000
    clip = (1e-3 * np.random.default_rng(0).standard_normal(t.shape[0]) + 0.3 * np.sin(2 * np.pi * 900 * t) * ((t >= 2) & (t < 3.5))).astype(np.float32)
    torch.manual_seed(5)
    model = build_model("sed-causal-cnn", n_labels=len(labels), n_mels=40).eval()
    with torch.no_grad():
        z = model(torch.from_numpy(LogMelFrontend().features(clip))[None])[0].numpy()  # 40 ms frames
    quiet, tone = np.median(z[10:45], axis=0), np.median(z[55:85], axis=0)
    k = int(np.argmax(np.abs(tone - quiet)))
    if tone[k] < quiet[k]:  # make the tone raise this label's score
        with torch.no_grad():
            model.head.conv.weight[k].neg_()
            model.head.conv.bias[k].neg_()
        quiet, tone = -quiet, -tone
    mid = 1 / (1 + np.exp(-(quiet[k] + tone[k]) / 2))
    never = {lab: [1.0, 1.0] for i, lab in enumerate(labels) if i != k}
    # 400 ms minimum: the convolutions' zero history gives a short blip in the first half second of any stream
    pp = SedPostprocessConfig(onset_threshold=float(mid), offset_threshold=float(mid), thresholds=never, median_frames=3, min_duration_ms=400,
                              merge_gap_ms=200)
    export_sed(model, labels, out, name="sed-tone", arch="sed-causal-cnn", postprocess=pp, golden_audio=clip)
    events = [(e.label, e.onset_ms, e.offset_ms) for e in load_model(out).events(clip)]
    assert len(events) == 1 and events[0][0] == labels[k] and 1800 <= events[0][1] <= 2400, events
    return clip, events  # type: ignore[return-value]


@needs_mic
def test_sound_events_through_a_real_portaudio_stream(vmic: VirtualMic, tmp_path: Path) -> None:
    clip, want = _tone_sed_bundle(tmp_path / "sed")
    out, _, offset_ms = _run_through_mic(vmic, tmp_path / "sed", clip)
    lines = [json.loads(ln) for ln in out.splitlines() if ln.startswith("{")]
    closed = [d for d in lines if "offset_ms" in d]
    onsets = [d for d in lines if d.get("event") == "onset"]
    assert [d["label"] for d in closed] == [want[0][0]] and [d["label"] for d in onsets] == [want[0][0]], lines
    label, on_ms, off_ms = want[0]
    # the live stream starts at another phase of the 40 ms frame grid, and the pipe source has its own jitter
    assert abs(closed[0]["onset_ms"] - (offset_ms + on_ms)) <= 250, (closed[0], offset_ms + on_ms)
    assert abs(closed[0]["offset_ms"] - (offset_ms + off_ms)) <= 250, (closed[0], offset_ms + off_ms)


def test_devices_without_a_microphone_is_quiet_and_exits_1(tmp_path: Path) -> None:
    """No sound server, no card: one line saying so (no ALSA/JACK enumeration noise) and exit code 1."""
    pytest.importorskip("pyaudio", reason="pyaudio is not installed (the mic extra)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE")}
    env.update(PULSE_SERVER=f"unix:{tmp_path}/none", HOME=str(tmp_path))  # a sound server that is not there
    p = subprocess.run([*EDGEKD, "devices"], env=env, capture_output=True, text=True, timeout=60)
    if p.returncode == 0 and p.stdout.strip():
        pytest.skip(f"this machine has an input device: {p.stdout.splitlines()[0]}")
    assert p.returncode == 1, p.stderr
    assert [ln for ln in p.stderr.splitlines() if ln.strip()] == ["no input devices (is a microphone connected? is the user in the 'audio' group?)"]
