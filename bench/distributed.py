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


def backend_for(device: str) -> str:
    """The process group's backend for a run on `device`: NCCL for CUDA runs, gloo for CPU runs,
    also on a machine with GPUs (NCCL cannot move CPU tensors)."""
    return "nccl" if str(device).startswith("cuda") else "gloo"


def init_group(device: str = "cpu") -> None:
    """Join the launched job's process group, with the backend the run's device needs, if nothing
    has yet. A CUDA run binds this process to its own GPU (cuda:LOCAL_RANK) before joining, so no
    collective ever runs on another process's GPU. accelerate adopts a group that exists (the LLM
    methods' training loop), so the runner makes it once per command, before any method runs."""
    if launched_processes() == 1:
        return
    import torch
    import torch.distributed as dist

    if not dist.is_available() or dist.is_initialized():
        return
    backend = backend_for(device)
    if backend == "nccl":
        gpu = torch.device("cuda", local_rank())
        torch.cuda.set_device(gpu)
        dist.init_process_group(backend=backend, device_id=gpu)
    else:
        dist.init_process_group(backend=backend)


_OBJECT_GROUP = None  # a gloo group for Python objects, whatever the default group's backend


def _object_group():
    """Gathers of Python objects run over gloo on the CPU: with an NCCL default group,
    all_gather_object would pickle into tensors on the current CUDA device, which must then be
    this process's own GPU; a gloo group never touches a GPU. Made on first use (every process
    gathers at the same points, so every process makes it in the same order)."""
    global _OBJECT_GROUP
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None  # the default group already is one
    if _OBJECT_GROUP is None:
        _OBJECT_GROUP = dist.new_group(backend="gloo")
    return _OBJECT_GROUP


def destroy_group() -> None:
    """Leave the process group (and the object group) if this process is in one: called once the
    command's work is done, on success and on failure. Without it the backends tear down in
    destructors at exit, which aborts the process now and then ("terminate called without an active
    exception") after its run was stored, and a launcher then marks the job failed."""
    global _OBJECT_GROUP
    if "torch" not in sys.modules:
        return
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    if _OBJECT_GROUP is not None:
        dist.destroy_process_group(_OBJECT_GROUP)
        _OBJECT_GROUP = None
    dist.destroy_process_group()
    if "accelerate.state" in sys.modules:  # accelerate keeps the group in its process-wide state: forget it too
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def local_rank() -> int:
    """This process's rank on its node (LOCAL_RANK), 0 outside a launched job."""
    return int(os.environ.get("LOCAL_RANK", "0"))


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
    dist.all_gather_object(out, obj, group=_object_group())
    return out
