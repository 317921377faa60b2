"""Explicit seeds everywhere: one call seeds Python, numpy and (if loaded) torch."""

from __future__ import annotations

import contextlib
import os
import random
import re
import sys

import numpy as np


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; "cuda" without a GPU is an error; in a
    launched multi-process job "auto" and "cuda" mean the process's own GPU, cuda:LOCAL_RANK, and
    "cuda:N" is refused (it would put every process on GPU N)."""
    from bench.errors import BenchError

    if device not in ("auto", "cpu") and not re.fullmatch(r"cuda(:[0-9]+)?", device):
        raise BenchError(f"Unknown device '{device}'; use auto, cpu, cuda or cuda:N with N a GPU number (0, 1, ...).")
    if device == "cpu":
        return "cpu"
    import torch

    if not torch.cuda.is_available():
        if device == "auto":
            return "cpu"
        raise BenchError(f"--device {device} was asked for but no GPU is visible; use --device cpu or --device auto.")
    from bench.distributed import launched_processes

    if device.startswith("cuda:") and launched_processes() > 1:
        # one GPU named for every process would put all of them on it: each process owns its own
        raise BenchError(
            f"--device {device} names one GPU for every process of a launched job; use --device cuda (or auto): "
            "each process then uses the GPU of its local rank, and CUDA_VISIBLE_DEVICES chooses which GPUs the job sees."
        )
    if device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise BenchError(f"--device {device} does not exist: {torch.cuda.device_count()} GPU(s) visible.")
    if device in ("auto", "cuda") and launched_processes() > 1:
        # under `accelerate launch` / torchrun each process owns the GPU of its local rank
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if local >= torch.cuda.device_count():
            raise BenchError(
                f"This process (local rank {local}) has no GPU of its own: {torch.cuda.device_count()} visible; "
                "launch at most one process per visible GPU."
            )
        return f"cuda:{local}"
    return "cuda" if device == "auto" else device


@contextlib.contextmanager
def seeded_aside(seed: int):
    """Run the block seeded with `seed`, then give every random generator back the state it had:
    work done aside (an assistant fitted inside another method's fit) leaves the outer run's
    random stream as it would have been without it."""
    states = (random.getstate(), np.random.get_state())
    torch = sys.modules.get("torch")
    torch_state = torch.random.get_rng_state() if torch is not None else None
    cuda_states = torch.cuda.get_rng_state_all() if torch is not None and torch.cuda.is_available() else None
    seed_everything(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch = sys.modules.get("torch")
        if torch is not None and torch_state is not None:
            torch.random.set_rng_state(torch_state)
            if cuda_states is not None:
                torch.cuda.set_rng_state_all(cuda_states)
