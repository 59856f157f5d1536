"""WAV reading/writing with the standard library, plus the checks and fixes the runtime applies.

Reads PCM 8/16/24/32-bit integer and 32-bit float (WAVE_FORMAT_EXTENSIBLE too), downmixes stereo,
resamples other rates (with a notice) or refuses them with ``strict=True``. Every failure is an
``AudioFormatError`` with one line that names the file.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekd.core.errors import AudioFormatError
from edgekd.core.fsutil import atomic_write_bytes

__all__ = ["Audio", "read_wav", "write_wav", "resample", "load_audio", "fast_fft_len", "WavReader"]


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / float(self.sample_rate)


MIN_RATE, MAX_RATE = 1000, 768000  # sample rates a WAV header may claim


def _parse_fmt(body: bytes, name: str) -> tuple[int, int, int, int]:
    """(format tag, channels, rate, bits) of a fmt chunk; WAVE_FORMAT_EXTENSIBLE gives its sub-format's tag."""
    if len(body) < 16:
        raise AudioFormatError(f"{name}: truncated fmt chunk; the file is damaged")
    tag, ch, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:
        tag = struct.unpack("<H", body[24:26])[0]
    if ch >= 1 and not MIN_RATE <= rate <= MAX_RATE:  # e.g. 1 Hz would resample one second of samples into hours
        raise AudioFormatError(f"{name}: WAV header says {rate} Hz (audio is {MIN_RATE}-{MAX_RATE} Hz); the file is damaged")
    return tag, ch, rate, bits


def _parse_chunks(data: bytes, name: str) -> tuple[int, int, int, int, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{name}: not a RIFF/WAVE file; convert it to WAV (e.g. sox in.mp3 out.wav)")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    pcm: bytes | None = None
    while pos + 8 <= len(data):
        cid = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = _parse_fmt(body, name)
        elif cid == b"data":
            if size in (0, 0xFFFFFFFF):  # written to a pipe (sox ... -t wav - | cat, arecord to stdout): the size was unknown
                body = data[pos + 8 :]
                size = len(body)
            if len(body) < size:
                raise AudioFormatError(
                    f"{name}: truncated WAV (data chunk says {size} bytes, file holds {len(body)}); re-record or re-copy it"
                )
            pcm = body
            break
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise AudioFormatError(f"{name}: WAV has no fmt chunk; the file is damaged")
    if pcm is None:
        raise AudioFormatError(f"{name}: WAV has no data chunk (truncated?); re-record or re-copy it")
    return (*fmt, pcm)


def _decode(pcm: bytes, tag: int, bits: int, ch: int) -> np.ndarray:
    """Little-endian PCM (tag 1: 8/16/24/32-bit) or IEEE float (tag 3: 32/64-bit) as float32 mono (channels averaged);
    a trailing partial frame is dropped."""
    width = bits // 8
    usable = len(pcm) - len(pcm) % (width * ch)
    raw = np.frombuffer(pcm[:usable], dtype=np.uint8)
    if tag == 3:
        x = raw.view("<f4" if bits == 32 else "<f8").astype(np.float32)
    elif bits == 8:
        x = (raw.astype(np.float32) - 128.0) / 128.0
    elif bits == 16:
        x = raw.view("<i2").astype(np.float32) / 32768.0
    elif bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float32) / float(1 << 23)
    else:
        x = raw.view("<i4").astype(np.float32) / float(1 << 31)
    if ch > 1:
        x = x.reshape(-1, ch).mean(axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def read_wav(path: str | os.PathLike[str]) -> Audio:
    """Read a WAV file as float32 mono (stereo is averaged). Raises ``AudioFormatError``."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise AudioFormatError(f"{name}: cannot read ({e.strerror or e})") from None
    if not data:
        raise AudioFormatError(f"{name}: file is empty; give a WAV with audio in it")
    tag, ch, rate, bits, pcm = _parse_chunks(data, name)
    if ch < 1 or rate <= 0:
        raise AudioFormatError(f"{name}: WAV header says {ch} channels at {rate} Hz; the file is damaged")
    if not ((tag == 1 and bits in (8, 16, 24, 32)) or (tag == 3 and bits in (32, 64))):
        raise AudioFormatError(
            f"{name}: unsupported WAV encoding (format tag {tag}, {bits} bits); convert to 16-bit PCM"
        )
    x = _decode(pcm, tag, bits, ch)
    return Audio(np.ascontiguousarray(x, dtype=np.float32), int(rate))


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM mono atomically (temp file in the same folder, then rename)."""
    x = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    pcm = np.round(x * 32767.0).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
    header += b"data" + struct.pack("<I", len(pcm))
    atomic_write_bytes(path, header + pcm)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling of a whole clip in the frequency domain (no scipy on the board)."""
    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    n_in = x.shape[0]
    n_out = int(round(n_in * sr_out / sr_in))
    if n_in == 0 or n_out == 0:
        return np.zeros(n_out, dtype=np.float32)
    # Zero-pad to a length whose FFT and resampled FFT are both fast (prime sizes are 10x slower).
    g = math.gcd(int(sr_in), int(sr_out))
    step_in, step_out = sr_in // g, sr_out // g
    k = _fast_len(-(-n_in // step_in))
    n_pad, m = k * step_in, k * step_out
    spec = np.fft.rfft(x.astype(np.float64), n=n_pad)
    n_keep = min(spec.shape[0], m // 2 + 1)
    out_spec = np.zeros(m // 2 + 1, dtype=np.complex128)
    out_spec[:n_keep] = spec[:n_keep]
    y = np.fft.irfft(out_spec, n=m) * (m / n_pad)
    return y[:n_out].astype(np.float32)


def _is_smooth(n: int) -> bool:
    for p in (2, 3, 5, 7):
        while n % p == 0 and n > 1:
            n //= p
    return n == 1


def _fast_len(n: int) -> int:
    """The smallest 7-smooth integer >= n (an FFT size pocketfft computes quickly)."""
    while not _is_smooth(n):
        n += 1
    return n


def load_audio(
    path: str | os.PathLike[str],
    sample_rate: int,
    *,
    strict: bool = False,
    notice: Callable[[str], None] | None = None,
) -> np.ndarray:
    """Read a WAV for a model: mono, at ``sample_rate``, finite, non-empty. Raises ``AudioFormatError``."""
    audio = read_wav(path)
    x = audio.samples
    if x.size == 0:
        raise AudioFormatError(f"{path}: WAV holds no samples; give a WAV with audio in it")
    if not np.all(np.isfinite(x)):
        raise AudioFormatError(f"{path}: audio contains NaN or Inf samples; fix the file")
    if audio.sample_rate != sample_rate:
        if strict:
            raise AudioFormatError(
                f"{path}: sample rate {audio.sample_rate} Hz, the model needs {sample_rate} Hz "
                "(drop --strict to resample, or convert with: sox in.wav -r 16000 out.wav)"
            )
        if notice is not None:
            notice(f"notice: {path}: resampling {audio.sample_rate} Hz -> {sample_rate} Hz")
        x = resample(x, audio.sample_rate, sample_rate)
    return x


fast_fft_len = _fast_len


class WavReader:
    """A WAV file read a block at a time (constant memory for an hour of audio): ``read(n)`` gives up to ``n``
    float32 mono samples, an empty array at the end. The header is checked as ``read_wav`` checks it; a data size
    of 0 or 0xFFFFFFFF (written to a pipe) means "to the end of the file"."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = str(path)
        try:
            self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as e:
            raise AudioFormatError(f"{self.name}: cannot read ({e.strerror or e})") from None
        try:
            self._parse_header()
        except BaseException:
            self._f.close()
            raise

    def _parse_header(self) -> None:
        f, name = self._f, self.name
        head = f.read(12)
        if not head:
            raise AudioFormatError(f"{name}: file is empty; give a WAV with audio in it")
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise AudioFormatError(f"{name}: not a RIFF/WAVE file; convert it to WAV (e.g. sox in.mp3 out.wav)")
        fmt = None
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                break
            cid, size = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"fmt ":
                fmt = _parse_fmt(f.read(size), name)
                if size & 1:
                    f.read(1)
            elif cid == b"data":
                if fmt is None:
                    raise AudioFormatError(f"{name}: WAV has no fmt chunk before its data; the file is damaged")
                start = f.tell()
                end = os.fstat(f.fileno()).st_size
                self._remaining = end - start if size in (0, 0xFFFFFFFF) else size
                if end - start < self._remaining:
                    raise AudioFormatError(f"{name}: truncated WAV (data chunk says {size} bytes, file holds {end - start}); "
                                           "re-record or re-copy it")
                break
            else:
                f.seek(size + (size & 1), os.SEEK_CUR)
        else:  # pragma: no cover - the loop only ends by break
            pass
        if fmt is None:
            raise AudioFormatError(f"{name}: WAV has no fmt chunk; the file is damaged")
        if not hasattr(self, "_remaining"):
            raise AudioFormatError(f"{name}: WAV has no data chunk (truncated?); re-record or re-copy it")
        tag, ch, rate, bits = fmt
        if ch < 1 or rate <= 0:
            raise AudioFormatError(f"{name}: WAV header says {ch} channels at {rate} Hz; the file is damaged")
        if not ((tag == 1 and bits in (8, 16, 24, 32)) or (tag == 3 and bits in (32, 64))):
            raise AudioFormatError(f"{name}: unsupported WAV encoding (format tag {tag}, {bits} bits); convert to 16-bit PCM")
        self.tag, self.channels, self.sample_rate, self.bits = tag, ch, int(rate), bits
        self.frame_bytes = (bits // 8) * ch
        self.frames = self._remaining // self.frame_bytes
        self._data_at, self._data_bytes = self._f.tell(), self._remaining

    def rewind(self) -> None:
        """Back to the first sample (read the file again without parsing its header again)."""
        self._f.seek(self._data_at)
        self._remaining = self._data_bytes

    def read(self, n: int) -> np.ndarray:
        want = min(self._remaining, int(n) * self.frame_bytes)
        want -= want % self.frame_bytes
        data = self._f.read(want) if want > 0 else b""
        self._remaining -= len(data)
        if not data:
            return np.zeros(0, dtype=np.float32)
        return _decode(data, self.tag, self.bits, self.channels)

    def close(self) -> None:
        self._f.close()
