import struct
from pathlib import Path

import numpy as np
import pytest

from edgekd.core.errors import AudioFormatError
from edgekd.runtime.wav import load_audio, read_wav, resample, write_wav


def _tone(sr: int, seconds: float = 0.5, f: float = 440.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def _write_pcm16(path: Path, x: np.ndarray, sr: int, channels: int = 1) -> None:
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    hdr = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    hdr += b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * 2 * channels, 2 * channels, 16)
    path.write_bytes(hdr + b"data" + struct.pack("<I", len(pcm)) + pcm)


def test_round_trip(tmp_path: Path) -> None:
    x = _tone(16000)
    write_wav(tmp_path / "a.wav", x, 16000)
    a = read_wav(tmp_path / "a.wav")
    assert a.sample_rate == 16000 and np.max(np.abs(a.samples - x)) < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temp file left behind


def test_stereo_is_downmixed(tmp_path: Path) -> None:
    left, right = _tone(16000), np.zeros(8000, np.float32)
    _write_pcm16(tmp_path / "s.wav", np.stack([left, right], axis=1).reshape(-1), 16000, channels=2)
    a = read_wav(tmp_path / "s.wav")
    assert a.samples.shape == (8000,) and np.max(np.abs(a.samples - left / 2)) < 1e-4


@pytest.mark.parametrize("sr", [8000, 44100])
def test_other_rates_are_resampled_with_a_notice(tmp_path: Path, sr: int) -> None:
    _write_pcm16(tmp_path / "r.wav", _tone(sr), sr)
    notes: list[str] = []
    x = load_audio(tmp_path / "r.wav", 16000, notice=notes.append)
    assert x.shape == (8000,) and len(notes) == 1 and f"{sr} Hz -> 16000 Hz" in notes[0]
    ref = _tone(16000)
    assert np.max(np.abs(x[200:-200] - ref[200:-200])) < 2e-3


def test_strict_refuses_other_rates(tmp_path: Path) -> None:
    _write_pcm16(tmp_path / "r.wav", _tone(8000), 8000)
    with pytest.raises(AudioFormatError, match="8000 Hz"):
        load_audio(tmp_path / "r.wav", 16000, strict=True)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "a.wav", _tone(16000), 16000)
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "t.wav").write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioFormatError, match="truncated"):
        read_wav(tmp_path / "t.wav")


@pytest.mark.parametrize("content,match", [(b"", "empty"), (b"not a wav file at all", "RIFF")])
def test_empty_and_garbage_files_are_refused(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / "bad.wav").write_bytes(content)
    with pytest.raises(AudioFormatError, match=match):
        read_wav(tmp_path / "bad.wav")


def test_wav_without_samples_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "z.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioFormatError, match="no samples"):
        load_audio(tmp_path / "z.wav", 16000)


def test_nan_float_wav_is_refused(tmp_path: Path) -> None:
    x = np.array([0.0, np.nan, 0.1], dtype="<f4").tobytes()
    hdr = b"RIFF" + struct.pack("<I", 36 + len(x)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 3, 1, 16000, 64000, 4, 32)
    (tmp_path / "n.wav").write_bytes(hdr + b"data" + struct.pack("<I", len(x)) + x)
    with pytest.raises(AudioFormatError, match="NaN"):
        load_audio(tmp_path / "n.wav", 16000)


def test_resample_keeps_a_tone() -> None:
    y = resample(_tone(22050, 1.0), 22050, 16000)
    assert y.shape == (16000,)
    assert np.max(np.abs(y[100:-100] - _tone(16000, 1.0)[100:-100])) < 1e-4


@pytest.mark.parametrize("size_field", [0, 0xFFFFFFFF])
def test_wav_written_through_a_pipe_is_read_to_the_end(tmp_path: Path, size_field: int) -> None:
    """sox ... -t wav - | cat > x.wav and arecord to stdout leave the sizes unknown (0 or 0xFFFFFFFF)."""

    x = (np.sin(np.arange(16000) * 0.05) * 0.5).astype(np.float32)
    write_wav(tmp_path / "ok.wav", x, 16000)
    data = bytearray((tmp_path / "ok.wav").read_bytes())
    data[4:8] = struct.pack("<I", size_field)
    data[40:44] = struct.pack("<I", size_field)  # the data chunk's size (canonical 44-byte header)
    (tmp_path / "pipe.wav").write_bytes(bytes(data))
    got = read_wav(tmp_path / "pipe.wav")
    assert got.sample_rate == 16000 and got.samples.shape == (16000,)
    np.testing.assert_allclose(got.samples, read_wav(tmp_path / "ok.wav").samples)


@pytest.mark.parametrize("bits", [16, 24, 32])
def test_wav_reader_streams_what_read_wav_reads(tmp_path: Path, bits: int) -> None:
    from edgekd.runtime.wav import WavReader

    rng = np.random.default_rng(0)
    x = (rng.uniform(-0.9, 0.9, size=(10007, 2))).astype(np.float32)
    scale = float(2 ** (bits - 1))
    pcm = np.round(x * (scale - 1)).astype(np.int64)
    if bits == 16:
        body = pcm.astype("<i2").tobytes()
    elif bits == 32:
        body = pcm.astype("<i4").tobytes()
    else:
        b = (pcm & 0xFFFFFF).astype("<u4").view(np.uint8).reshape(-1, 4)[:, :3]
        body = b.tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + 8 + 4 + len(body)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 16000, 16000 * 2 * bits // 8, 2 * bits // 8, bits)
    header += b"LIST" + struct.pack("<I", 4) + b"abcd"  # an extra chunk before the data
    header += b"data" + struct.pack("<I", len(body))
    (tmp_path / "x.wav").write_bytes(header + body)
    whole = read_wav(tmp_path / "x.wav").samples
    r = WavReader(tmp_path / "x.wav")
    parts = []
    while True:
        piece = r.read(999)
        if not piece.size:
            break
        parts.append(piece)
    r.close()
    assert r.sample_rate == 16000 and r.frames == 10007
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_run_streams_a_wav_from_disk_with_the_same_detections(shipped_bundle: Path, tmp_path: Path) -> None:
    """`edgekd run --wav` reads blocks from disk; its detections equal those of the whole clip in memory."""
    from edgekd.runtime.audio import WavFileSource
    from edgekd.runtime.detector import load_model

    wav = shipped_bundle / "golden" / "clip.wav"
    det = load_model(shipped_bundle)
    whole = det.create_stream().accept_waveform(load_audio(wav, 16000))
    s = det.create_stream()
    src = WavFileSource(wav, 16000, 1280)
    got = [d for c in src for d in s.accept_waveform(c.samples)]
    src.close()
    assert [(d.label, d.t_ms) for d in got] == [(d.label, d.t_ms) for d in whole] and got


@pytest.mark.parametrize("rate", [0, 1, 999, 768001, 0xFFFFFFFF])
def test_implausible_sample_rate_is_refused(tmp_path: Path, rate: int) -> None:
    # found by bench/fuzz.py: a header saying 1 Hz made one second of samples resample into hours of audio
    from edgekd.runtime.wav import WavReader

    pcm = np.zeros(1600, "<i2").tobytes()
    p = tmp_path / "odd.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, 2 * rate & 0xFFFFFFFF, 2, 16)
                  + b"data" + struct.pack("<I", len(pcm)) + pcm)
    with pytest.raises(AudioFormatError, match="Hz"):
        load_audio(p, 16000)
    with pytest.raises(AudioFormatError, match="Hz"):
        WavReader(p)
