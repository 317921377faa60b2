"""Shims: RecBole 1.2.1 on numpy 2, pandas 3, torch >= 2.6.

RecBole 1.2.1 predates numpy 2, pandas 3 and torch 2.6; `install_shims()` makes it run there and is
called before the first RecBole import (see its docstring for each shim). It also imports RecBole's
model packages (`import_models()`) without letting them switch on autograd's anomaly detection for the
whole process. `quiet()` and `hidden_argv()` wrap the RecBole calls that would otherwise warn or read
our command line.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from bench.errors import BenchError

_SHIMS_INSTALLED = False
_MODELS_IMPORTED = False
# The model packages RecBole's get_model walks (in this order) to find a sequential model; importing a
# package runs its __init__, which imports every model module in it.
_MODEL_PACKAGES = (
    "recbole.model.general_recommender",
    "recbole.model.context_aware_recommender",
    "recbole.model.sequential_recommender",
)
_original_torch_load = None  # torch.load as it was before the shim (tests replace it with a spy)
_NUMPY_ALIASES = {
    # removed in numpy 1.24 / 2.0, still used by RecBole's evaluator, dataset and interaction code
    "float": float,
    "int": int,
    "object": object,
    "str": str,
    "complex": complex,
    "unicode": str,
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
}


def _recbole_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("RecBole is not installed; run `pip install recbole==1.2.1` (or `make setup`).")
    return os.path.realpath(list(spec.submodule_search_locations)[0])


def _called_from_recbole(depth: int = 2) -> bool:
    """True when the function `depth` frames up the stack belongs to a RecBole module."""
    frame = sys._getframe(depth)
    return frame.f_globals.get("__name__", "").startswith("recbole.")


class _NullWriter:
    """Stands in for tensorboard's SummaryWriter: RecBole's Trainer creates one unconditionally and
    would write ./log_tensorboard into the user's working directory."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class _DropRecBoleRecords(logging.Filter):
    """RecBole logs through the root logger; drop its records below ERROR, keep everybody else's."""

    def __init__(self, root: str):
        super().__init__()
        self.root = root

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or not os.path.realpath(record.pathname).startswith(self.root)


def _shim_numpy() -> None:
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


def _shim_pandas() -> None:
    """pandas 3 evaluates `Series.agg(len)` as len(series) instead of per element; RecBole relies on
    the per-element result for sequence lengths (item_length would silently become the row count,
    and remapping token sequences fails). Only calls made from RecBole modules get the old meaning."""
    import pandas as pd

    original = pd.Series.agg
    if getattr(original, "_bench_shim", False):
        return

    @functools.wraps(original)
    def agg(self, func=None, axis=0, *args, **kwargs):
        if func is len and not args and not kwargs and _called_from_recbole():
            return self.map(len)
        return original(self, func, axis, *args, **kwargs)

    agg._bench_shim = True
    pd.Series.agg = agg


def _shim_torch_load() -> None:
    """torch >= 2.6 loads with weights_only=True by default; RecBole's checkpoints pickle its Config,
    so its own loaders (Trainer.evaluate(load_best_model=True), resume_checkpoint, pretrained models)
    fail. Calls made from RecBole modules load with weights_only=False; everybody else is unchanged."""
    global _original_torch_load
    import torch

    if getattr(torch.load, "_bench_shim", False):
        return
    _original_torch_load = torch.load

    @functools.wraps(torch.load)
    def load(*args, **kwargs):
        if "weights_only" not in kwargs and _called_from_recbole():
            kwargs["weights_only"] = False
        return _original_torch_load(*args, **kwargs)

    load._bench_shim = True
    torch.load = load


def _import_recbole_without_tensorboard() -> None:
    """recbole.utils imports torch.utils.tensorboard (and with it tensorboard and protobuf) at import
    time only to create a writer nobody reads here: import it against a stub, then drop the stub so
    that a real tensorboard import elsewhere still works."""
    name = "torch.utils.tensorboard"
    stub = None
    if name not in sys.modules:
        stub = types.ModuleType(name)
        stub.SummaryWriter = _NullWriter
        sys.modules[name] = stub
    try:
        import recbole.utils.utils as rb_utils
    finally:
        if stub is not None and sys.modules.get(name) is stub:
            del sys.modules[name]
    rb_utils.SummaryWriter = _NullWriter


def _shim_config() -> None:
    """RecBole's Config rebinds numpy aliases (failing on numpy 2) and writes CUDA_VISIBLE_DEVICES into
    the process environment from its gpu_id; the harness chooses the device itself (context.device)."""
    from recbole.config import Config

    if getattr(Config, "_bench_shim", False):
        return

    def compatibility_settings(self):
        _shim_numpy()

    def init_device(self):
        self.final_config_dict["gpu_id"] = str(self.final_config_dict.get("gpu_id", ""))
        self.final_config_dict["single_spec"] = True
        self.final_config_dict["local_rank"] = 0
        self.final_config_dict.setdefault("device", None)  # set by settings.build_config

    Config.compatibility_settings = compatibility_settings
    Config._init_device = init_device
    Config._bench_shim = True


@contextmanager
def kept_anomaly_mode() -> Iterator[None]:
    """Autograd's anomaly detection (and its NaN check) as they were on entry, whatever the body sets."""
    import torch

    enabled, check_nan = torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()
    try:
        yield
    finally:
        torch.autograd.set_detect_anomaly(enabled, check_nan=check_nan)


def import_models() -> None:
    """Import RecBole's model packages, leaving autograd's anomaly detection as the process had it.

    RecBole 1.2.1's recbole/model/sequential_recommender/sine.py calls
    `torch.autograd.set_detect_anomaly(True)` at import time (a debugging line left in), and the
    sequential package's __init__ imports sine.py, so the first get_model of any sequential model
    switched anomaly mode on for the rest of the process: every later autograd op records a stack and
    checks its output for NaNs (a SASRec epoch about 2x slower, an LLM method run after a RecBole method
    2-3x slower, and on a GPU a device sync after every backward op). Importing the packages here, once
    and before anything else of ours can, and restoring the mode afterwards keeps whatever the user
    chose (off by default; `set_detect_anomaly(True)` of their own stays on); later imports of these
    modules, by get_model or anybody, find them in sys.modules and run nothing. Idempotent."""
    global _MODELS_IMPORTED
    if _MODELS_IMPORTED:
        return
    import importlib

    with kept_anomaly_mode():
        for name in _MODEL_PACKAGES:
            importlib.import_module(name)
    _MODELS_IMPORTED = True


def install_shims() -> None:
    """Make RecBole 1.2.1 importable and runnable on numpy 2, pandas 3 and torch >= 2.6. Idempotent.

    - numpy: the removed aliases np.float, np.int, np.object, np.str, np.complex, np.unicode,
      np.float_, np.complex_, np.unicode_ exist again (np.bool and np.long exist in numpy 2).
    - pandas 3: `Series.agg(len)` called from RecBole is per element again (see _shim_pandas).
    - torch >= 2.6: RecBole's own torch.load calls use weights_only=False (see _shim_torch_load).
    - tensorboard is never imported; RecBole's SummaryWriter is a no-op (no ./log_tensorboard).
    - ray: only recbole.quick_start imports it; the adapter never imports recbole.quick_start.
    - Config neither rebinds numpy names nor writes CUDA_VISIBLE_DEVICES.
    - RecBole's log records below ERROR are dropped from the root logger (progress shows in rich).
    - RecBole's model packages are imported without leaving autograd's anomaly detection switched on
      (see import_models).
    """
    global _SHIMS_INSTALLED
    if _SHIMS_INSTALLED:
        return
    _shim_numpy()
    _shim_pandas()
    _shim_torch_load()
    root = _recbole_dir()
    _import_recbole_without_tensorboard()
    _shim_config()
    import_models()
    logging.getLogger().addFilter(_DropRecBoleRecords(root))
    _SHIMS_INSTALLED = True


@contextmanager
def quiet():
    """RecBole and the libraries it calls warn about deprecations a user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"recbole(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.cuda\.amp.*")
        yield


@contextmanager
def hidden_argv() -> Iterator[None]:
    """RecBole's Config reads --key=value pairs from the command line: show it only the program name."""
    saved_argv = sys.argv
    sys.argv = saved_argv[:1]
    try:
        yield
    finally:
        sys.argv = saved_argv
