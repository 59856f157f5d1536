"""One progress display for every long command (device-safe: tqdm only when it is installed and stderr is a terminal).

On a terminal: a tqdm bar that appears once the work has taken ``delay`` seconds. In a log (stderr not a terminal,
e.g. ``make demo > log``): one line per 10% instead of a carriage-return storm (and one at least every ``heartbeat``
seconds, so a long run is never silent for long), nothing for work under ``delay``.
``EDGEKD_PROGRESS=off`` silences it, ``=lines`` forces the log form (also on a terminal).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Progress"]


class Progress:
    """``done`` of ``total`` units of work. Use as a context manager; ``update(n)`` adds, ``callback()`` gives a
    ``progress(done, total)`` function for code that reports absolute counts."""

    def __init__(self, desc: str, total: int = 0, unit: str = "it", *, initial: int = 0, enabled: bool = True, delay: float = 1.0,
                 file: IO[str] | None = None, heartbeat: float = 60.0) -> None:
        self.desc, self.total, self.unit, self.n, self.delay, self.heartbeat = desc, int(total), unit, int(initial), delay, heartbeat
        self._file = file if file is not None else sys.stderr
        self._t0 = self._last_line = time.monotonic()
        self._n0 = self.n  # the rate counts the work done in this process (a resumed run starts part-way)
        self._postfix = ""
        self._printed_decile = 0  # the first line is the first tenth done
        self._printed_n: int | None = None  # the count of the last line printed
        self._bar: Any = None
        mode = os.environ.get("EDGEKD_PROGRESS", "auto").lower()
        self._on = enabled and mode != "off"
        if self._on and mode != "lines" and _isatty(self._file):
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=self.total or None, initial=self.n, desc=desc, unit=unit, dynamic_ncols=True, delay=delay, file=self._file)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.set(self.n + n, self.total)

    def set(self, done: int, total: int | None = None) -> None:
        """Absolute position (and total, when it is learnt late)."""
        if total is not None and total != self.total:
            self.total = int(total)
            if self._bar is not None:
                self._bar.total = self.total
                self._bar.refresh()
        step, self.n = int(done) - self.n, int(done)
        if self._bar is not None:
            self._bar.update(step)
        elif self._on:
            self._line(final=False)

    def callback(self) -> Callable[[int, int], None]:
        return self.set

    def set_postfix(self, **values: Any) -> None:
        self._postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._on and self._printed_n is not None and self._printed_n != self.n and self._printed_decile < 10:
            self._line(final=True)  # a log that showed the work going on also shows where it ended

    def _line(self, final: bool) -> None:
        if self.total <= 0:
            return
        decile = min(10, 10 * self.n // self.total)
        now = time.monotonic()
        elapsed = now - self._t0
        due = decile > self._printed_decile or now - self._last_line >= self.heartbeat
        if not final and (not due or elapsed < self.delay):
            return
        self._printed_decile, self._last_line, self._printed_n = decile, now, self.n
        rate = (self.n - self._n0) / elapsed if elapsed > 0 else 0.0
        left = f", about {(self.total - self.n) / rate:.0f} s left" if 0 < rate and self.n < self.total else ""
        extra = f", {self._postfix}" if self._postfix else ""
        print(f"{self.desc}: {100 * self.n // self.total}% ({self.n}/{self.total} {self.unit}, {elapsed:.0f} s, {rate:.3g} {self.unit}/s"
              f"{left}{extra})", file=self._file, flush=True)


def _isatty(f: IO[str]) -> bool:
    try:
        return f.isatty()
    except (AttributeError, ValueError):
        return False
