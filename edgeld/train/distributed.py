"""Where training runs: torch.distributed set-up for `torchrun` (DDP: gloo on CPU, NCCL on GPUs; a
no-op alone) and the device each process computes on."""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edgeld.core.errors import UserError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> "Distributed":
        """Join the process group torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        return cls(rank, world, local)

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'cpu', 'cuda' (this process's GPU under torchrun) or 'auto' (CUDA when there is one)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: this torch build sees no CUDA GPU; use --device cpu")
        return torch.device("cuda", local_rank)
    if name != "cpu":
        raise UserError(f"--device must be auto, cpu or cuda (got {name!r})")
    return torch.device("cpu")
