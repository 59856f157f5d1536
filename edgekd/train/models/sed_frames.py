"""The time resolution of the frame-level SED models: log-mel frames (10 ms) are averaged in groups of ``TIME_POOL``
before the network, so a model gives one logit vector per 40 ms (DCASE systems work at a similar resolution, and it
makes training four times cheaper)."""

from __future__ import annotations

import torch

__all__ = ["TIME_POOL", "pool_time"]

TIME_POOL = 4


def pool_time(x: torch.Tensor) -> torch.Tensor:
    """``(B, T, M)`` -> ``(B, T // TIME_POOL, M)``: the mean of each group of frames (a trailing partial group is dropped)."""
    b, t, m = x.shape
    n = t // TIME_POOL
    return x[:, : n * TIME_POOL].reshape(b, n, TIME_POOL, m).mean(dim=2)
