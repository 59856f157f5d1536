"""Audio sources for the runtime: a WAV file, raw s16le on stdin, a live microphone (PyAudio).

Each source yields ``Chunk`` objects (float32 mono samples at the model's rate plus the wall time they
arrived), so the runtime can report each detection's latency from the audio's arrival.
pyaudio is imported here and only here, inside ``MicSource``.
"""

from __future__ import annotations

import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import numpy as np

from edgekd.core.errors import AudioFormatError, BackendError, ConfigError

__all__ = ["Chunk", "AudioSource", "WavSource", "WavFileSource", "RawPcmSource", "MicSource", "list_input_devices"]


@dataclass(frozen=True)
class Chunk:
    samples: np.ndarray  # float32 mono in [-1, 1]
    arrived: float  # time.perf_counter() when the audio became available


class AudioSource(Protocol):
    sample_rate: int
    overflows: int

    def __iter__(self) -> Iterator[Chunk]: ...

    def close(self) -> None: ...


class WavSource:
    """A WAV file (already checked, mono, resampled) served in fixed chunks."""

    overflows = 0

    def __init__(self, samples: np.ndarray, sample_rate: int, chunk: int) -> None:
        self.samples, self.sample_rate, self.chunk = samples, sample_rate, chunk

    def __iter__(self) -> Iterator[Chunk]:
        for i in range(0, self.samples.shape[0], self.chunk):
            yield Chunk(self.samples[i : i + self.chunk], time.perf_counter())

    def close(self) -> None:
        return None


class WavFileSource:
    """A WAV file streamed from disk in fixed chunks (constant memory). A file at another sample rate is read whole
    and resampled (with ``notice``), or refused with ``strict``; NaN/Inf samples are an ``AudioFormatError``."""

    overflows = 0

    def __init__(self, path: str | os.PathLike[str], sample_rate: int, chunk: int, *, strict: bool = False,
                 notice: Callable[[str], None] | None = None) -> None:
        from edgekd.runtime.wav import WavReader, load_audio

        self.sample_rate, self.chunk, self.path = sample_rate, chunk, str(path)
        self._reader: WavReader | None = WavReader(path)
        self._whole: np.ndarray | None = None
        if self._reader.frames == 0:
            self._reader.close()
            raise AudioFormatError(f"{path}: WAV holds no samples; give a WAV with audio in it")
        if self._reader.sample_rate != sample_rate:
            self._reader.close()
            self._reader = None
            self._whole = load_audio(path, sample_rate, strict=strict, notice=notice)

    @property
    def frames(self) -> int:
        """How many samples (at ``sample_rate``) the file holds."""
        if self._whole is not None:
            return int(self._whole.shape[0])
        assert self._reader is not None
        return self._reader.frames

    def samples(self) -> Iterator[np.ndarray]:
        """The audio from its first sample, as float32 blocks of ``chunk`` samples (the last may be shorter); may be
        called again for another pass. ``close()`` when done."""
        if self._reader is not None:
            self._reader.rewind()
        for c in self:
            yield c.samples

    def __iter__(self) -> Iterator[Chunk]:
        if self._whole is not None:
            yield from WavSource(self._whole, self.sample_rate, self.chunk)
            return
        assert self._reader is not None
        while True:
            x = self._reader.read(self.chunk)
            if not x.size:
                break
            if not np.all(np.isfinite(x)):
                raise AudioFormatError(f"{self.path}: audio contains NaN or Inf samples; fix the file")
            yield Chunk(x, time.perf_counter())

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def wav_blocks(path: str | os.PathLike[str], sample_rate: int, block: int = 16000, *,
               notice: Callable[[str], None] | None = None) -> Iterator[np.ndarray]:
    """A WAV file as float32 blocks at ``sample_rate``, read from disk as they are consumed (constant memory); the file
    is closed when the blocks run out or the consumer stops."""
    src = WavFileSource(path, sample_rate, block, notice=notice)
    try:
        yield from src.samples()
    finally:
        src.close()


class RawPcmSource:
    """Signed 16-bit little-endian mono PCM from a byte stream (stdin): ``arecord -f S16_LE -r 16000 | edgekd run --stdin``."""

    overflows = 0

    def __init__(self, stream: BinaryIO, sample_rate: int, chunk: int) -> None:
        self.stream, self.sample_rate, self.chunk = stream, sample_rate, chunk

    def __iter__(self) -> Iterator[Chunk]:
        want = 2 * self.chunk
        carry = b""
        while True:
            data = self.stream.read(want - len(carry))
            if not data:
                break
            data = carry + data
            usable = len(data) - len(data) % 2
            carry = data[usable:]
            if usable:
                yield Chunk(np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0, time.perf_counter())
        if carry:
            raise AudioFormatError("stdin ended in the middle of a 16-bit sample; send s16le mono audio")

    def close(self) -> None:
        return None


def _pyaudio() -> Any:
    try:
        import pyaudio
    except ImportError:
        raise BackendError('microphone input needs PyAudio; run: sudo apt-get install portaudio19-dev && pip install "edgekd[mic]"') from None
    return pyaudio


class _quiet_c_stderr:
    """Silence file descriptor 2 while PortAudio enumerates (ALSA and JACK print ~100 harmless lines there)."""

    def __enter__(self) -> None:
        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)


def list_input_devices() -> list[dict[str, Any]]:
    """Input-capable devices as PortAudio sees them: index, name, channels, default rate."""
    pa_mod = _pyaudio()
    with _quiet_c_stderr():
        pa = pa_mod.PyAudio()
    try:
        out = []
        for i in range(pa.get_device_count()):
            d = pa.get_device_info_by_index(i)
            if int(d.get("maxInputChannels", 0)) > 0:
                out.append({"index": i, "name": str(d["name"]), "channels": int(d["maxInputChannels"]),
                            "default_rate": int(d["defaultSampleRate"])})
        return out
    finally:
        pa.terminate()


class MicSource:
    """A live microphone: 16-bit mono at the model's rate, read by PortAudio's callback into a bounded queue.

    ``overflows`` counts both PortAudio input overflows and chunks dropped because the consumer fell more
    than ``max_queue_s`` behind; neither stops the stream.
    """

    def __init__(self, sample_rate: int, chunk: int, device: str | None = None, max_queue_s: float = 2.0) -> None:
        pa_mod = _pyaudio()
        self.sample_rate, self.chunk = sample_rate, chunk
        self.overflows = 0
        self._q: queue.Queue[Chunk] = queue.Queue(maxsize=max(2, int(max_queue_s * sample_rate / chunk)))
        self._pa = pa_mod.PyAudio()
        self._overflow_flag = pa_mod.paInputOverflow
        try:
            index = self._resolve(device)
            self._stream = self._pa.open(format=pa_mod.paInt16, channels=1, rate=sample_rate, input=True,
                                         input_device_index=index, frames_per_buffer=chunk, stream_callback=self._callback)
        except (OSError, ValueError) as e:
            self._pa.terminate()
            raise ConfigError(f"cannot open the microphone ({e}); list devices with `edgekd devices`") from None
        self.device_name = str(self._pa.get_device_info_by_index(index)["name"]) if index is not None else "default"

    def _resolve(self, device: str | None) -> int | None:
        if device is None or device == "":
            return None
        n = self._pa.get_device_count()
        if device.isdigit():
            i = int(device)
            if i >= n or int(self._pa.get_device_info_by_index(i).get("maxInputChannels", 0)) < 1:
                raise ConfigError(f"device {i} is not an input device; list them with `edgekd devices`")
            return i
        for i in range(n):
            d = self._pa.get_device_info_by_index(i)
            if int(d.get("maxInputChannels", 0)) > 0 and device.lower() in str(d["name"]).lower():
                return i
        raise ConfigError(f"no input device matches {device!r}; list them with `edgekd devices`")

    def _callback(self, in_data: bytes, frame_count: int, time_info: Any, status: int) -> tuple[None, int]:
        if status & self._overflow_flag:
            self.overflows += 1
        chunk = Chunk(np.frombuffer(in_data, dtype="<i2").astype(np.float32) / 32768.0, time.perf_counter())
        try:
            self._q.put_nowait(chunk)
        except queue.Full:
            try:
                self._q.get_nowait()  # drop the oldest: an always-on detector wants the newest audio
            except queue.Empty:
                pass
            self.overflows += 1
            self._q.put_nowait(chunk)
        return None, 0  # paContinue

    def __iter__(self) -> Iterator[Chunk]:
        self._stream.start_stream()
        while self._stream.is_active() or not self._q.empty():
            try:
                yield self._q.get(timeout=0.5)
            except queue.Empty:
                continue

    def close(self) -> None:
        try:
            self._stream.stop_stream()
            self._stream.close()
        finally:
            self._pa.terminate()


def stdin_binary() -> BinaryIO:
    return sys.stdin.buffer
