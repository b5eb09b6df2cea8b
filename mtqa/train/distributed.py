"""Process-group set-up for `torchrun` (one process per GPU, or gloo processes on CPU)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: rank, world size and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks (identity on one process)."""
        if not self.enabled:
            return tensor
        tensor = tensor.clone()
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor / self.world_size

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's boolean, on every rank (e.g. the early-stopping decision)."""
        if not self.enabled:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def broadcast_float(self, number: float) -> float:
        """Rank 0's number, on every rank (e.g. the elapsed fraction of a time budget)."""
        if not self.enabled:
            return number
        value = torch.tensor([float(number)], dtype=torch.float64, device=self.device)
        dist.broadcast(value, src=0)
        return float(value.item())

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group described by torchrun's environment, if any.

    CUDA gets NCCL and one GPU per local rank; CPU gets gloo. Without `WORLD_SIZE` > 1 nothing is
    initialised and the single process uses the chosen device.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def close_distributed(env: DistEnv) -> None:
    """Leave the process group (safe to call on one process). The barrier first keeps a fast
    rank from tearing down gloo while a slow one still talks to it (seen as an abort at exit)."""
    if env.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
