"""The GPUs of the local executor (bench.jobs): which ones local jobs may use, found without
importing torch, and how they are split between the jobs running at a time."""

from __future__ import annotations

import itertools
import os
import re
import subprocess


def visible_gpus() -> list[str]:
    """The GPUs local jobs may use, as CUDA_VISIBLE_DEVICES entries, without importing torch:
    those CUDA_VISIBLE_DEVICES names when it is set, else the indices `nvidia-smi -L` lists."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:  # CUDA ignores every entry from the first invalid one on (-1 hides them all)
        return list(itertools.takewhile(lambda e: e and not e.startswith("-"), (e.strip() for e in chosen.split(","))))
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if listed.returncode != 0:
        return []
    return re.findall(r"^GPU (\d+):", listed.stdout, re.M)


def gpu_slots(gpus: list[str], n_parallel: int) -> tuple[list[str], str]:
    """The CUDA_VISIBLE_DEVICES of each of the `n_parallel` jobs running at a time, and one
    sentence saying how the GPUs were split. A job runs as one process, which uses one GPU: each
    job gets one of its own while there are enough, else jobs share them in turn. One GPU or none:
    nothing to split ([], "")."""
    n = len(gpus)
    if n < 2:
        return [], ""
    slots = [gpus[i % n] for i in range(n_parallel)]
    line = f"{n} GPUs, {n_parallel} job(s) at a time: "
    if n_parallel <= n:
        unused = f"; {n - n_parallel} stay unused (--jobs {n} uses them all)" if n_parallel < n else ""
        return slots, line + f"one GPU each (CUDA_VISIBLE_DEVICES {', '.join(slots)}){unused}."
    return slots, line + f"up to {-(-n_parallel // n)} jobs share each GPU (CUDA_VISIBLE_DEVICES {', '.join(gpus)})."
