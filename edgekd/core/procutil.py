"""Worker processes that cannot run away: a bounded count, and workers that die with their parent."""

from __future__ import annotations

import os
import sys

__all__ = ["bounded_workers", "die_with_parent"]


def bounded_workers(requested: int, jobs: int) -> int:
    """At most the usable cores and the number of jobs (a notice says when the request was cut); at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    n = max(1, min(int(requested), cores, max(1, jobs)))
    if n < requested and requested > cores:
        print(f"notice: {requested} workers requested, {cores} cores usable: using {n}", file=sys.stderr)
    return n


def die_with_parent() -> None:
    """In a pool worker's initializer: ask Linux to kill this process when its parent dies (no orphans)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)
