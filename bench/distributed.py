"""The processes of one `accelerate launch` / torchrun job: which one this is, and how a method
splits its inference across them.

Every process runs the harness; training is data-parallel (accelerate), inference is sharded:
each process handles one contiguous slice of the test samples and the slices are gathered, in
rank order, on every process. Only rank 0 stores the run. Outside a launched job (or before the
process group is initialised) there is one process and nothing is split.
"""

from __future__ import annotations

import os
import sys


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised torch.distributed group, (0, 1) without one."""
    if "torch" in sys.modules:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_group() -> None:
    """Join the launched job's process group (NCCL with GPUs, gloo without) if nothing has yet;
    methods that train through accelerate join it themselves, a score method may never have."""
    if launched_processes() == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_available() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def launched_processes() -> int:
    """How many processes the launcher started (WORLD_SIZE), 1 outside a launched job."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 of a launched job (read from the environment, so it holds before any group exists)."""
    return int(os.environ.get("RANK", "0")) == 0


def shard(n: int, rank: int, world: int) -> slice:
    """The contiguous slice of n items that `rank` handles: sizes differ by at most one, ranks in order."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in a world of {world}")
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def gather(obj) -> list:
    """Every process's `obj`, in rank order, on every process ([obj] with one process)."""
    _, world = rank_and_world()
    if world == 1:
        return [obj]
    import torch.distributed as dist

    out = [None] * world
    dist.all_gather_object(out, obj)
    return out
