"""Data-parallel training over the processes ``torchrun`` starts (torch.distributed: gloo on CPU,
NCCL on CUDA), with one process and no communication otherwise.

The gradient is summed with one all-reduce per step rather than by wrapping the model in
``DistributedDataParallel``: the training loss goes through ``sample``, ``log_prob`` and the
marginal network, not through ``forward``, which is where DDP hooks its bookkeeping.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor


def init_from_environment(device: torch.device) -> bool:
    """Join the process group that ``torchrun`` describes in the environment (WORLD_SIZE > 1),
    on this process's GPU (LOCAL_RANK) when ``device`` is CUDA; False when there is none to join."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


class Ranks:
    """This process among the training processes: ``rank`` of ``size`` (0 of 1 without a group)."""

    def __init__(self) -> None:
        self.active = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.active else 0
        self.size = dist.get_world_size() if self.active else 1

    @property
    def main(self) -> bool:
        """The process that writes files and reports (rank 0)."""
        return self.rank == 0

    def gather(self, rows: Tensor) -> Tensor:
        """Every process's ``rows``, concatenated in rank order (the same on every process)."""
        if not self.active:
            return rows
        parts = [torch.empty_like(rows) for _ in range(self.size)]
        dist.all_gather(parts, rows.contiguous())
        return torch.cat(parts)

    def sum(self, values: Tensor) -> Tensor:
        """``values`` summed over the processes."""
        if self.active:
            dist.all_reduce(values)
        return values

    def sum_gradients(self, parameters) -> None:
        """Replace each parameter's gradient by its sum over the processes, in one all-reduce."""
        if not self.active:
            return
        params = [p for p in parameters if p.requires_grad]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for p, chunk in zip(params, flat.split([g.numel() for g in grads])):
            p.grad = chunk.view_as(p).clone()

    def broadcast(self, tensors) -> None:
        """Give every process rank 0's values of ``tensors`` (in place)."""
        if self.active:
            for t in tensors:
                dist.broadcast(t, 0)

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def shard_generator(seed: int, step: int, shard: int, device: torch.device) -> torch.Generator:
    """The random stream of one shard of one step's batch: a function of the seed, the step and
    the shard alone, so whichever process holds the shard draws the same rows, and a resumed run
    needs no state to redraw them."""
    high, low = np.random.SeedSequence([seed, step, shard]).generate_state(2)
    return torch.Generator(device=device).manual_seed(int(high) << 32 | int(low))
