"""Counting what a piece of accelerator code asks of the host, on any device, the CPU included.

    with count_host_syncs() as counts:
        train_one_step(...)
    counts.syncs      # operations that make the host wait for the device's result
    counts.ops        # every aten operation dispatched (host-side launch overhead grows with it)
    counts.by_op      # {"aten._local_scalar_dense": 3, ...}

On a GPU, the host waits for the device whenever it needs a value the device computes: a Python
number (`.item()`, `float(t)`, `int(t)`, `bool(t)`, an `if` on a tensor), or the size of an output
that depends on the data (`nonzero`, boolean-mask indexing, `masked_select`, `unique`, `bincount`,
`repeat_interleave` with tensor repeats). Those operations dispatch the same aten operators on the
CPU, so counting them here (with a TorchDispatchMode) counts the synchronisations the same code
will make on a GPU, without one. Device-to-host copies (`.cpu()`, `.tolist()`, `.numpy()`) are
not dispatched for CPU tensors and are not counted here; on CUDA,
`torch.cuda.set_sync_debug_mode("warn")` reports them (benchmarks/gpu_campaign.sh).

Values that live on the host on a GPU too are not synchronisations, and are left out by where
they are read: the optimisers' step counters (torch.optim keeps them as CPU tensors unless
`capturable`) and the DataLoader's seed (a CPU generator).
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

# aten operators that need a device value on the host (their names without the overload)
SYNCING = frozenset(
    {
        "aten._local_scalar_dense",  # .item(), float(), int(), bool(), `if tensor:`
        "aten.item",  # the same under torch.inference_mode()
        "aten.is_nonzero",
        "aten.equal",
        "aten.nonzero",
        "aten.nonzero_static",
        "aten.masked_select",
        "aten.unique",
        "aten._unique",
        "aten._unique2",
        "aten.unique_consecutive",
        "aten.unique_dim",
        "aten.bincount",
        "aten.repeat_interleave",  # with tensor repeats: the output size is data-dependent
        "aten.index_put_",  # with a boolean mask (checked below)
        "aten.index_put",
        "aten.index",  # with a boolean mask (checked below)
        "aten._assert_async",
    }
)
_MASK_DEPENDENT = frozenset({"aten.index_put_", "aten.index_put", "aten.index"})
HOST_SIDE = ("torch.optim.", "torch.utils.data.")  # modules whose scalar reads are of host tensors


def _host_side() -> bool:
    """Whether the operation being dispatched was called from a module in HOST_SIDE."""
    import sys

    frame = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(HOST_SIDE):
            return True
        frame = frame.f_back
    return False


@dataclass
class HostCounts:
    ops: int = 0
    syncs: int = 0
    by_op: Counter = field(default_factory=Counter)  # every operation
    by_sync: Counter = field(default_factory=Counter)  # the synchronising ones, as counted in `syncs`


def _name(func) -> str:
    return str(func.overloadpacket).replace("aten::", "aten.") if hasattr(func, "overloadpacket") else str(func)


def _syncs(name: str, args, kwargs) -> bool:
    if name not in SYNCING:
        return False
    if name == "aten.repeat_interleave":
        # repeat_interleave(tensor, int) knows its size; tensor repeats (or a tensor alone) do not
        import torch

        repeats = args[1] if len(args) > 1 else kwargs.get("repeats", args[0] if args else None)
        return isinstance(repeats, torch.Tensor) and repeats.numel() > 1 or len(args) == 1
    if name in _MASK_DEPENDENT:
        import torch

        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (indices or ()))
    return True


@contextmanager
def count_host_syncs():
    """Count the aten operations dispatched inside the block, and those among them that make the
    host wait for a device value (see the module docstring). Autograd's backward runs through the
    mode too, so a training step's backward pass is counted."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts = HostCounts()

    class _Counter(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = _name(func)
            counts.ops += 1
            counts.by_op[name] += 1
            if _syncs(name, args, kwargs) and not _host_side():
                counts.syncs += 1
                counts.by_sync[name] += 1
            return func(*args, **kwargs)

    with _Counter():
        yield counts
