"""Running under ``torchrun``: PyTorch's own process group (gloo on CPU, nccl on GPU), nothing home-made.

``DistContext.from_env()`` reads the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT
or a c10d rendezvous) and joins the group; without them it is a one-process context and every helper is a
no-op, so each ``edgekd train`` command runs unchanged with or without torchrun.

Batches: every rank draws the same permutation from the seed, and step ``s`` uses the same *global* batch
as a one-process run; rank ``r`` takes rows ``r::world`` of it (``shard_rows``). DDP averages gradients over
ranks, so with equal shards one step equals the one-process step on the global batch (up to float summation
order, and BatchNorm statistics, which are per rank unless the model converts to SyncBatchNorm).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DistContext", "shard_rows"]


def shard_rows(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s share of one global batch: rows ``rank::world``."""
    return rows[rank::world]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    @classmethod
    def from_env(cls) -> DistContext:
        """Join torchrun's process group when WORLD_SIZE > 1; otherwise a single-process context."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        backend = "nccl" if torch.cuda.is_available() and os.environ.get("EDGEKD_DIST_BACKEND", "") != "gloo" else "gloo"
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if backend == "nccl":
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local, backend=backend)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        """Sum floats over ranks (float64 on the wire)."""
        if not self.enabled:
            return list(values)
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return [float(v) for v in t.cpu()]

    @contextlib.contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (e.g. builds a cache); the others wait, then run it (and find the cache)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
