"""The one exception hierarchy of edgekd.

Every error a user can cause (bad audio, a broken bundle, a wrong option) is an ``EdgeKDError``.
The CLI prints ``str(err)`` as one line on stderr and exits non-zero; it never shows a traceback
for these. Messages say what is wrong and what to do.
"""

from __future__ import annotations

__all__ = [
    "EdgeKDError",
    "AudioFormatError",
    "BundleError",
    "ConfigError",
    "DataError",
    "BackendError",
]


class EdgeKDError(Exception):
    """Base class of every user-facing edgekd error."""


class AudioFormatError(EdgeKDError):
    """Audio that cannot be read or used (truncated, empty, NaN, unsupported encoding)."""


class BundleError(EdgeKDError):
    """A model bundle that is missing files, fails its sha256 check or does not match its manifest."""


class ConfigError(EdgeKDError, ValueError):
    """An option or configuration value that makes no sense (training or export misuse included); a ``ValueError``
    too, so code that guards a value with ``except ValueError`` still catches it."""


class DataError(EdgeKDError):
    """A dataset folder that is missing, empty or laid out wrongly."""


class BackendError(EdgeKDError):
    """An inference backend that is not installed or cannot run the model."""
