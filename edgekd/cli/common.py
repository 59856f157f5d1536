"""Shared CLI plumbing: one-line errors for ``EdgeKDError``, atomic JSON output, notices on stderr."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from edgekd.core.errors import ConfigError, EdgeKDError

if TYPE_CHECKING:
    from edgekd.train.config import Bound

__all__ = ["friendly_errors", "notice", "EXIT_USER_ERROR", "check_writable", "number", "positive", "unit", "fraction", "nonneg"]

EXIT_USER_ERROR = 2
F = TypeVar("F", bound=Callable[..., Any])


def notice(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def friendly_errors(fn: F) -> F:
    """Turn a user error into one line on stderr and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeKDError as e:
            notice(f"error: {e}")
            raise typer.Exit(EXIT_USER_ERROR) from None
        except KeyboardInterrupt:
            notice("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def check_writable(path: str | os.PathLike[str] | None, what: str = "output") -> None:
    """Refuse, before any work, an output file that could not be written: a directory, a path under a file, or a
    folder that cannot be created or written (``ConfigError``, one line). ``None`` passes."""
    if path is None:
        return
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a folder; give a file name")
    parent = p.parent
    while not parent.exists():  # the first existing ancestor decides whether the folders can be made
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {p}: {parent} is a file, not a folder; give another path")
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise ConfigError(f"{what} {p} is not writable; give a path you can write")
    probe = parent / f".edgekd-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:  # e.g. a read-only file system, where os.access can still say yes for root
        raise ConfigError(f"{what} {p} is not writable ({e.strerror}); give a path you can write") from None


def number(*, gt: float | None = None, ge: float | None = None, lt: float | None = None, le: float | None = None) -> Callable[[Any], Any]:
    """A typer callback that accepts a finite number within the bounds (``None`` passes): typer's own ``min=`` lets NaN
    through and knows no open bounds. A violation is a usage error (one line, exit 2)."""

    def check(value: Any) -> Any:
        if value is None:
            return value
        if not math.isfinite(value):
            raise typer.BadParameter(f"{value} is not a finite number")
        if gt is not None and not value > gt:
            raise typer.BadParameter(f"{value} must be > {gt:g}")
        if ge is not None and not value >= ge:
            raise typer.BadParameter(f"{value} must be >= {ge:g}")
        if lt is not None and not value < lt:
            raise typer.BadParameter(f"{value} must be < {lt:g}")
        if le is not None and not value <= le:
            raise typer.BadParameter(f"{value} must be <= {le:g}")
        return value

    return check


def within(bound: Bound) -> Callable[[Any], Any]:
    """``number`` for one of ``TrainConfig``'s ``OPTION_BOUNDS``."""
    return number(ge=bound.lo, **({"le": bound.hi} if bound.hi_included else {"lt": bound.hi}))


positive = number(gt=0.0)  # durations, rates, learning rates, temperatures
unit = number(ge=0.0, le=1.0)  # thresholds, weights
fraction = number(gt=0.0, le=1.0)  # a share of the data
nonneg = number(ge=0.0)  # minutes of optional material (0: none)
