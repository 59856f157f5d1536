"""A real PortAudio input through a private PulseAudio daemon whose source is a FIFO we feed in real time.

Recipe from ../shared/ENVIRONMENT.md: ``module-pipe-source`` reading s16le 16 kHz mono from a FIFO;
PortAudio reaches it through ALSA's pulse plugin when ``PULSE_SERVER`` points at the daemon's socket.
The pipe source has no clock, so a feeder thread writes 10 ms blocks at real-time pace: silence, or the
samples of whatever ``play()`` queued. The daemon is started here and stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

BLOCK = 160  # 10 ms at 16 kHz


def available() -> tuple[bool, str]:
    for tool in ("pulseaudio",):
        if not shutil.which(tool):
            return False, f"{tool} is not installed (make test installs pulseaudio, libasound2-plugins, portaudio19-dev when root)"
    try:
        import pyaudio  # noqa: F401
    except ImportError:
        return False, "PyAudio is not installed (the mic extra; make test installs it)"
    return True, ""


class VirtualMic:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fifo = self.dir / "vmic.fifo"  # module-pipe-source creates it (and fails if it exists)
        (self.dir / "vmic.pa").write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.dir}/native\n"
            f"load-module module-pipe-source source_name=vmic file={self.fifo} format=s16le rate=16000 channels=1\n"
            "load-module module-null-sink sink_name=vspk rate=16000 channels=1\n"
            "set-default-source vmic\nset-default-sink vspk\n"
        )
        env = dict(os.environ, HOME=str(self.dir), XDG_RUNTIME_DIR=str(self.dir), PULSE_RUNTIME_PATH=str(self.dir),
                   PULSE_STATE_PATH=str(self.dir))
        self._fd: int | None = None
        self.daemon = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(self.dir / "vmic.pa"), "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        deadline = time.time() + 10
        while not ((self.dir / "native").exists() and self.fifo.exists()):
            if self.daemon.poll() is not None or time.time() > deadline:
                err = self.daemon.stderr.read().decode(errors="replace")[-800:] if self.daemon.stderr else ""
                self.close()
                raise RuntimeError(f"pulseaudio did not start: {err}")
            time.sleep(0.05)
        self._fd = os.open(self.fifo, os.O_RDWR | os.O_NONBLOCK)  # O_RDWR: the open never blocks
        self._queue: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started_at: list[float] = []  # wall time (perf_counter) at which each played clip began
        self.slow_writes = 0
        self._thread = threading.Thread(target=self._feed, daemon=True)

    def start(self) -> None:
        """Begin writing audio in real time. Call it once something records: until then nobody reads the
        FIFO, and anything written would sit in the pipe and arrive late."""
        self._thread.start()

    @property
    def env(self) -> dict[str, str]:
        return {"PULSE_SERVER": f"unix:{self.dir}/native"}

    def play(self, samples: np.ndarray) -> None:
        """Queue float32 16 kHz samples; the feeder starts them at its next 10 ms block."""
        pcm = np.clip(np.round(np.asarray(samples, np.float32) * 32767), -32768, 32767).astype("<i2")
        with self._lock:
            self._queue.append(pcm)

    def _feed(self) -> None:
        silence = np.zeros(BLOCK, dtype="<i2")
        current: np.ndarray | None = None
        pos = 0
        t_next = time.perf_counter()
        while not self._stop.is_set():
            if current is None:
                with self._lock:
                    if self._queue:
                        current, pos = self._queue.pop(0), 0
                        self.started_at.append(t_next)
            if current is not None:
                block = current[pos : pos + BLOCK]
                pos += BLOCK
                if block.shape[0] < BLOCK:
                    block = np.concatenate([block, silence[: BLOCK - block.shape[0]]])
                if pos >= current.shape[0]:
                    current = None
            else:
                block = silence
            data = block.tobytes()
            while data and not self._stop.is_set():
                try:
                    data = data[os.write(self._fd, data) :]  # type: ignore[arg-type]
                except BlockingIOError:
                    self.slow_writes += 1  # the daemon is not reading right now: wait, never drop audio
                    time.sleep(0.005)
            t_next += BLOCK / 16000.0
            delay = t_next - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join(timeout=2)
        if self.daemon.poll() is None:
            self.daemon.terminate()
            try:
                self.daemon.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
        if self._fd is not None:
            os.close(self._fd)
