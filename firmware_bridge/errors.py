"""Errors of the board side: each message says what failed and what to do (printed as one line by the CLI)."""

from __future__ import annotations

from edgekd.core.errors import EdgeKDError

__all__ = ["BoardError", "DeployError"]


class BoardError(EdgeKDError):
    """The board cannot be reached, refused the login, or cannot run what we ask."""


class DeployError(BoardError):
    """A deploy step failed; ``current`` on the board still points at the previous bundle."""
