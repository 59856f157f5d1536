"""Worker processes that cannot run away: a bounded count, and workers that die with their parent."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from edgekd.core.errors import ConfigError, EdgeKDError

__all__ = ["bounded_workers", "die_with_parent", "spawn_imap"]

_R = TypeVar("_R")


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


def spawn_imap(fn: Callable[[Any], _R], items: Iterable[Any], workers: int, *,
               initializer: Callable[..., None] = die_with_parent, initargs: tuple[Any, ...] = (),
               chunksize: int = 1) -> Iterator[_R]:
    """``fn`` over ``items`` in ``workers`` spawned processes, results in order. A worker that dies (killed, out of
    memory) raises ``ConfigError`` in one line instead of leaving the caller waiting forever for its task, as
    ``multiprocessing.Pool`` does; when the caller stops early or fails, the workers are stopped with it.
    ``initializer`` runs in each worker and should call ``die_with_parent``."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool
    from multiprocessing import get_context

    ex = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_guarded_init,
                             initargs=(initializer, initargs))
    finished = False
    try:
        yield from ex.map(functools.partial(_guarded_call, fn), items, chunksize=chunksize)
        finished = True
    except BrokenProcessPool:
        raise ConfigError("a worker process died (killed, or out of memory?); run again, with fewer workers "
                          "or more memory") from None
    finally:
        if not finished:  # stopped early or failed: kill the workers (private dict, the only handle on them); the
            for p in list((getattr(ex, "_processes", None) or {}).values()):  # pool's own thread then reaps them
                p.kill()
        ex.shutdown(wait=True, cancel_futures=True)  # one thread reaps: two calling waitpid raced


_INIT_ERROR: list[str] = []  # in a spawn_imap worker: why its initializer failed


def _guarded_init(initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """A failing initializer would print a traceback and break the pool as if the worker had been killed: keep its
    error instead, for each task to raise as one line."""
    try:
        initializer(*initargs)
    except Exception as e:  # noqa: BLE001 - said in one line by every task of this worker
        _INIT_ERROR.append(str(e) if isinstance(e, EdgeKDError) else f"a worker process could not start: {type(e).__name__}: {e}")


def _guarded_call(fn: Callable[[Any], _R], item: Any) -> _R:
    if _INIT_ERROR:
        raise ConfigError(_INIT_ERROR[0])
    return fn(item)
