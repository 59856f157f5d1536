"""Shared CLI plumbing: one-line errors for ``EdgeKDError``, atomic JSON output, notices on stderr."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from edgekd.errors import EdgeKDError
from edgekd.fsutil import atomic_write_text

__all__ = ["friendly_errors", "write_json", "notice", "EXIT_USER_ERROR"]

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


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (temp file in the same folder, then rename)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
