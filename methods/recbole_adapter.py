"""RecBole 1.2.1 as a model zoo behind one thin adapter: any RecBole sequential model becomes a
benchmark method with one registry line (`{"recbole_model": "NARM"}`).

    prepared split ──► atomic files in the run's work_dir      user_id:token  item_id_list:token_seq  item_id:token
                       (bench.train/valid/test.inter,           one row per sample, so RecBole neither
                        bench.item = the whole catalogue)       splits nor augments anything itself
                  ──► RecBole Config from a dict (no yaml, no sys.argv, no environment writes)
                  ──► RecBole Trainer: early stopping on valid NDCG@10, best checkpoint inside work_dir
                  ──► score(samples): full_sort_predict on the histories, columns reordered to our item ids

The harness, not RecBole, turns the scores into ranks and metrics. Nothing is masked (RecBole's
sequential full-sort evaluation masks only its padding column, which we drop).

RecBole 1.2.1 predates numpy 2, pandas 3 and torch 2.6; `install_shims()` makes it run there and is
called before the first RecBole import (see its docstring for each shim).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import sys
import time
import types
import typing
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np

from bench.data.split import Samples
from bench.errors import BenchError
from bench.method import Context, ScoreMethod

DATASET = "bench"                      # RecBole dataset name; no properties/dataset/bench.yaml exists
SPLIT_FILES = ("train", "valid", "test")
USER, ITEM, ITEM_LIST, ITEM_LENGTH = "user_id", "item_id", "item_id_list", "item_length"
INTER_HEADER = f"{USER}:token\t{ITEM_LIST}:token_seq\t{ITEM}:token\n"


# --------------------------------------------------------------------------------------------
# Shims: RecBole 1.2.1 on numpy 2, pandas 3, torch >= 2.6
# --------------------------------------------------------------------------------------------

_SHIMS_INSTALLED = False
_original_torch_load = None            # torch.load as it was before the shim (tests replace it with a spy)
_NUMPY_ALIASES = {
    # removed in numpy 1.24 / 2.0, still used by RecBole's evaluator, dataset and interaction code
    "float": float, "int": int, "object": object, "str": str, "complex": complex, "unicode": str,
    "float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
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
        self.final_config_dict.setdefault("device", None)   # set by build_config

    Config.compatibility_settings = compatibility_settings
    Config._init_device = init_device
    Config._bench_shim = True


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
    logging.getLogger().addFilter(_DropRecBoleRecords(root))
    _SHIMS_INSTALLED = True


@contextmanager
def quiet():
    """RecBole and the libraries it calls warn about deprecations a user cannot act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"recbole(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.cuda\.amp.*")
        yield


# --------------------------------------------------------------------------------------------
# Atomic files
# --------------------------------------------------------------------------------------------

def write_atomic_files(folder: Path, parts: dict[str, Samples], n_items: int, max_history: int) -> dict[str, Path]:
    """Write RecBole benchmark files `bench.<part>.inter` (one row per sample, the newest
    `max_history` items of its history, oldest first) and `bench.item` listing every catalogue item,
    so that items never seen in a sample still get a RecBole id. Tokens are our integer ids."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for part, samples in parts.items():
        _check_samples(samples, n_items, part)
        path = folder / f"{DATASET}.{part}.inter"
        lines = [INTER_HEADER]
        for user, hist, target in zip(samples.users.tolist(), samples.histories, samples.targets.tolist()):
            lines.append(f"{user}\t{' '.join(map(str, hist[-max_history:]))}\t{target}\n")
        path.write_text("".join(lines))
        written[part] = path
    item_path = folder / f"{DATASET}.item"
    item_path.write_text(f"{ITEM}:token\n" + "".join(f"{i}\n" for i in range(n_items)))
    written["item"] = item_path
    return written


def _check_samples(samples: Samples, n_items: int, part: str) -> None:
    if len(samples) == 0:
        raise BenchError(f"The {part} set is empty; RecBole models need train and valid samples, re-prepare the dataset.")
    empty = sum(1 for h in samples.histories if not h)
    if empty:
        raise BenchError(
            f"{empty} {part} sample(s) have an empty history, which RecBole's sequential models cannot read; "
            "re-prepare the dataset (every sample has at least one history item)."
        )
    ids = np.concatenate([np.asarray(h, dtype=np.int64) for h in samples.histories] + [samples.targets.astype(np.int64)])
    if ids.min() < 0 or ids.max() >= n_items:
        raise BenchError(f"The {part} set names item ids outside the catalogue (0..{n_items - 1}); re-prepare the dataset.")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

@dataclass
class RecBoleConfig:
    epochs: int = 200
    patience: int = 10                 # stop once more than this many epochs in a row brought no better valid NDCG@10
    batch_size: int = 256
    eval_batch_size: int = 2048
    lr: float = 1e-3                   # Adam
    weight_decay: float = 0.0
    hidden_size: int = 64              # RecBole's hidden_size and embedding_size
    n_layers: int = 2                  # n_layers / num_layers
    n_heads: int = 2                   # attention models only
    dropout: float | None = None       # hidden/attention/embedding dropout; None: the model's RecBole default
    loss: str = "CE"                   # "CE" over all items or "BPR" with one sampled negative
    max_history: int = 10              # the protocol's history length
    extra: str = ""                    # any other RecBole parameter: "key=value;key=value" (values in YAML)


# Defaults per RecBole model (fields of RecBoleConfig), and parameters only one model has, which
# become fields of that model's Config (so `--set caser.nh=16` works like any other field).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "SASRec": {"n_layers": 2, "n_heads": 2, "dropout": 0.5},
    "GRU4Rec": {"n_layers": 1, "dropout": 0.3},
    "BERT4Rec": {"n_layers": 2, "n_heads": 2, "dropout": 0.2},
    "Caser": {"dropout": 0.4},
    "FPMC": {"loss": "BPR"},           # FPMC is a pairwise model
}
MODEL_FIELDS: dict[str, dict[str, Any]] = {
    "BERT4Rec": {"mask_ratio": 0.2},
    "Caser": {"nv": 4, "nh": 8, "reg_weight": 1e-4},
}
# Sequential models that need data a prepared split does not carry.
NEEDS_SIDE_DATA = {
    "GRU4RecF": "item features", "SASRecF": "item features", "FDSA": "item features", "S3Rec": "item features",
    "KSR": "a knowledge graph", "GRU4RecKG": "a knowledge graph",
    "DIN": "click labels (it is a click-through-rate model)", "DIEN": "click labels (it is a click-through-rate model)",
}


@functools.cache
def config_class(model: str) -> type:
    """The Config dataclass of one RecBole model: RecBoleConfig with that model's defaults and fields."""
    hints = typing.get_type_hints(RecBoleConfig)
    defaults = MODEL_DEFAULTS.get(model, {})
    specs = []
    for f in dataclasses.fields(RecBoleConfig):
        specs.append((f.name, hints[f.name], dataclasses.field(default=defaults.get(f.name, f.default))))
    extra_fields = list(MODEL_FIELDS.get(model, {}).items())
    # `extra` stays last in the listing; model parameters go just before it
    specs[-1:-1] = [(name, type(value), dataclasses.field(default=value)) for name, value in extra_fields]
    cls = dataclasses.make_dataclass(f"{model}Config", specs)
    cls.__module__ = __name__
    return cls


def parse_extra(extra: str) -> dict[str, Any]:
    """"a=1;b=[1, 2];c=none" -> {"a": 1, "b": [1, 2], "c": None} (values read as YAML)."""
    import yaml

    out: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in extra.split(";"))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"Cannot read extra RecBole setting '{part}'; write key=value pairs separated by ';'.")
        try:
            out[key.strip()] = yaml.safe_load(value.strip()) if value.strip() else None
        except yaml.YAMLError as exc:
            raise BenchError(f"Cannot read the value of extra RecBole setting '{part}' ({exc}); give a YAML value.") from exc
    return out


def recbole_settings(model: str, cfg, data_path: Path, seed: int) -> dict[str, Any]:
    """The config_dict handed to RecBole's Config: our fields under RecBole's names plus fixed choices
    (benchmark files, every column we wrote, item_id_list sharing item_id's vocabulary, no masking)."""
    install_shims()
    from recbole.utils import InputType

    if cfg.loss not in ("CE", "BPR"):
        raise BenchError(f"loss must be CE or BPR, not {cfg.loss!r}; set e.g. --set <method>.loss=CE.")
    for name in ("epochs", "batch_size", "eval_batch_size", "hidden_size", "max_history"):
        if getattr(cfg, name) < 1:
            raise BenchError(f"{name} must be at least 1 (got {getattr(cfg, name)}); fix the --set value.")
    if cfg.patience < 0:
        raise BenchError(f"patience must be 0 or more (got {cfg.patience}); fix the --set value.")
    settings: dict[str, Any] = {
        "data_path": str(data_path),
        "checkpoint_dir": str(Path(data_path) / "checkpoints"),
        "benchmark_filename": list(SPLIT_FILES),
        "USER_ID_FIELD": USER,
        "ITEM_ID_FIELD": ITEM,
        "load_col": {"inter": [USER, ITEM_LIST, ITEM], "item": [ITEM]},
        "alias_of_item_id": [ITEM_LIST],
        "MAX_ITEM_LIST_LENGTH": cfg.max_history,
        "ITEM_LIST_LENGTH_FIELD": ITEM_LENGTH,
        "LIST_SUFFIX": "_list",
        "epochs": cfg.epochs,
        "stopping_step": cfg.patience,
        "eval_step": 1,
        "train_batch_size": cfg.batch_size,
        "eval_batch_size": cfg.eval_batch_size,
        "learner": "adam",
        "learning_rate": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "hidden_size": cfg.hidden_size,
        "embedding_size": cfg.hidden_size,
        "inner_size": 4 * cfg.hidden_size,
        "n_layers": cfg.n_layers,
        "num_layers": cfg.n_layers,
        "n_heads": cfg.n_heads,
        "loss_type": cfg.loss,
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "eval_args": {"order": "TO", "mode": "full", "group_by": "user", "split": {"RS": [0.8, 0.1, 0.1]}},
        "repeatable": True,
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "worker": 0,
        "gpu_id": "",
        "state": "ERROR",
    }
    if cfg.loss == "CE" and getattr(model_class(model), "input_type", None) != InputType.PAIRWISE:
        settings["train_neg_sample_args"] = None
    else:  # BPR, and models that always train on pairs (FPMC, TransRec, SINE): one uniform negative
        settings["train_neg_sample_args"] = {"distribution": "uniform", "sample_num": 1, "alpha": 1.0, "dynamic": False, "candidate_num": 0}
    if cfg.dropout is not None:
        settings.update(hidden_dropout_prob=cfg.dropout, attn_dropout_prob=cfg.dropout, dropout_prob=cfg.dropout)
    for name in MODEL_FIELDS.get(model, {}):
        settings[name] = getattr(cfg, name)
    settings.update(parse_extra(cfg.extra))
    return settings


def model_class(model: str):
    """RecBole's class for `model`, which must be a sequential recommender."""
    install_shims()
    from recbole.utils import ModelType, get_model

    try:
        with quiet():
            cls = get_model(model)
    except (ValueError, ImportError, AttributeError) as exc:
        raise BenchError(
            f"RecBole has no usable model named '{model}' ({exc}); use a RecBole sequential model name such as SASRec, GRU4Rec, NARM."
        ) from exc
    if getattr(cls, "type", None) != ModelType.SEQUENTIAL:
        raise BenchError(f"RecBole model '{model}' is not a sequential recommender; only sequential models fit this benchmark.")
    if model in NEEDS_SIDE_DATA:
        raise BenchError(f"RecBole model '{model}' needs {NEEDS_SIDE_DATA[model]}, which the benchmark's splits do not carry; choose another model.")
    return cls


def build_config(model: str, settings: dict[str, Any], device: str):
    """RecBole's Config from `settings` alone: no yaml of ours, command line hidden, device ours."""
    install_shims()
    import torch
    from recbole.config import Config

    saved_argv = sys.argv
    sys.argv = saved_argv[:1]          # RecBole reads --key=value pairs from the command line
    try:
        with quiet():
            config = Config(model=model_class(model), dataset=DATASET, config_dict=dict(settings))
    except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError) as exc:
        raise BenchError(f"RecBole rejected the settings for {model} ({exc}); fix the --set or extra values.") from exc
    finally:
        sys.argv = saved_argv
    config["device"] = torch.device(device)
    config["use_gpu"] = config["device"].type == "cuda"
    return config


@dataclass
class RecBoleData:
    config: Any
    dataset: Any
    train: Any
    valid: Any
    test: Any


def load_data(config, width: int) -> RecBoleData:
    """RecBole's dataset and its three dataloaders from the benchmark files. Histories are padded to
    `width` columns everywhere, as at scoring time (Caser convolves over exactly that many)."""
    install_shims()
    from recbole.data import create_dataset, data_preparation

    try:
        with quiet():
            dataset = create_dataset(config)
            train, valid, test = data_preparation(config, dataset)
    except (ValueError, KeyError) as exc:
        raise BenchError(
            f"RecBole could not load the benchmark files for {config['model']} ({exc}); "
            "the model may need data this benchmark does not provide, choose another one."
        ) from exc
    for ds in (dataset, train._dataset, valid._dataset, test._dataset):
        _pad_history(ds, width)
    return RecBoleData(config, dataset, train, valid, test)


def _pad_history(dataset, width: int) -> None:
    """Some models size layers by the dataset's sequence length (CORE), others by MAX_ITEM_LIST_LENGTH
    (SASRec, Caser): make both `width`, the length the files were cut to."""
    import torch.nn.functional as F

    dataset.field2seqlen[ITEM_LIST] = width
    seq = dataset.inter_feat[ITEM_LIST]
    if seq.shape[1] < width:
        dataset.inter_feat[ITEM_LIST] = F.pad(seq, (0, width - seq.shape[1]))


# --------------------------------------------------------------------------------------------
# The method
# --------------------------------------------------------------------------------------------

class RecBoleMethod(ScoreMethod):
    """A RecBole sequential model; subclasses (made by the registry) set `recbole_model`."""

    name = "recbole"
    description = "A RecBole sequential model (set recbole_model)."
    version = "1"
    recbole_model: ClassVar[str] = ""
    Config = RecBoleConfig

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        model = cls.__dict__.get("recbole_model")
        if model and "Config" not in cls.__dict__:
            cls.Config = config_class(model)

    def __init__(self, config: Any = None):
        super().__init__(config)
        self.data: RecBoleData | None = None
        self.model = None
        self.trainer = None
        self.device = None
        self.info: dict = {}

    # ---- training ---------------------------------------------------------------------------
    def fit(self, train: Samples, valid: Samples, context: Context) -> None:
        if not self.recbole_model:
            raise BenchError(f"Method '{self.name}' names no RecBole model; register it with options {{'recbole_model': 'SASRec'}}.")
        install_shims()
        import torch
        from recbole.utils import get_trainer, init_seed

        cfg = self.config
        started = time.perf_counter()
        folder = Path(context.work_dir) / "recbole"
        # RecBole needs a third file; it is never used here (the harness scores the test samples)
        write_atomic_files(folder / DATASET, {"train": train, "valid": valid, "test": valid}, context.n_items, cfg.max_history)
        config = build_config(self.recbole_model, recbole_settings(self.recbole_model, cfg, folder, context.seed), context.device)
        self.device = config["device"]
        self.data = load_data(config, cfg.max_history)
        self._item_columns(context.n_items)

        cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        try:
            with quiet():
                init_seed(config["seed"], config["reproducibility"])
                try:
                    self.model = model_class(self.recbole_model)(config, self.data.train._dataset).to(self.device)
                except (ValueError, KeyError, TypeError, AssertionError) as exc:
                    raise BenchError(
                        f"RecBole could not build {self.recbole_model} with these settings ({exc}); "
                        "fix the --set values, or the model needs inputs this benchmark does not provide."
                    ) from exc
                self.trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, self.model)
                task = _Progress(context.progress, self.name, cfg.epochs)
                self.trainer.fit(self.data.train, self.data.valid, verbose=False, saved=True, show_progress=False, callback_fn=task.epoch_done)
                task.finish()
                self._load_best()
        except torch.cuda.OutOfMemoryError as exc:
            raise BenchError(
                f"{self.name} ran out of GPU memory; lower --set {self.name}.batch_size or {self.name}.eval_batch_size."
            ) from exc
        except (RuntimeError, IndexError, ValueError, KeyError) as exc:
            # inside RecBole's model code these come from settings that do not fit the data
            # (e.g. a candidate count above the number of items); the cause stays chained
            raise BenchError(
                f"RecBole's {self.recbole_model} failed while training ({type(exc).__name__}: {exc}); "
                f"check its settings (--set {self.name}.extra=...) against the dataset."
            ) from exc
        finally:
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        self.model.eval()
        self.info = {
            "recbole_model": self.recbole_model,
            "epochs_trained": task.epochs,
            "best_epoch": task.best_epoch,
            "best_valid_ndcg10": task.best,
            "parameters": int(sum(p.numel() for p in self.model.parameters())),
            "fit_seconds": round(time.perf_counter() - started, 3),
        }

    def _load_best(self) -> None:
        import torch

        path = self.trainer.saved_model_file
        if not os.path.isfile(path):
            return  # no epoch evaluated: keep the last weights
        checkpoint = torch.load(path, map_location=self.device, weights_only=False)  # our own file
        self.model.load_state_dict(checkpoint["state_dict"])
        self.model.load_other_parameter(checkpoint.get("other_parameter"))

    def _item_columns(self, n_items: int) -> None:
        """RecBole ids of our items (column i of our scores = RecBole column self._columns[i]) and of users."""
        import pandas as pd

        dataset = self.data.dataset
        tokens = dataset.field2id_token[ITEM]
        if len(tokens) != n_items + 1:
            raise BenchError(f"RecBole built {len(tokens) - 1} items for a catalogue of {n_items}; the atomic files are damaged, run again.")
        columns = np.full(n_items, -1, dtype=np.int64)
        ours = np.asarray([int(t) for t in tokens[1:]], dtype=np.int64)   # index 0 is [PAD]
        columns[ours] = np.arange(1, len(tokens), dtype=np.int64)
        self._columns = columns
        self._item_lookup = np.append(columns, 0)                            # our -1 padding -> RecBole 0
        user_tokens = dataset.field2id_token[USER][1:]
        self._user_index = pd.Index(np.asarray([int(t) for t in user_tokens], dtype=np.int64))

    # ---- scoring ----------------------------------------------------------------------------
    def score(self, samples: Samples, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        """Scores of every catalogue item (columns in our item order) for each sample, from the model's
        full_sort_predict on the sample's history; nothing is masked."""
        if self.model is None:
            raise BenchError(f"Method '{self.name}' was asked to score before it was fitted; call fit first.")
        import torch
        from recbole.data.interaction import Interaction

        batch_size = batch_size or self.config.eval_batch_size
        width = self.config.max_history
        hist = samples.history_matrix(width, pad=-1, align="left")
        if hist.size and hist.max() >= len(self._columns):
            raise BenchError(f"Samples name item ids outside the catalogue (0..{len(self._columns) - 1}); use the split the method was fitted on.")
        items = self._item_lookup[hist]
        # a sample without history is scored from the padding token alone
        lengths = np.maximum((hist >= 0).sum(axis=1), 1)
        position = self._user_index.get_indexer(np.asarray(samples.users, dtype=np.int64))
        users = np.where(position >= 0, position + 1, 0)                   # unseen users -> [PAD]
        columns = torch.as_tensor(self._columns, device=self.device)
        self.model.eval()
        for start in range(0, len(samples), batch_size):
            rows = np.arange(start, min(start + batch_size, len(samples)))
            batch = Interaction({
                ITEM_LIST: torch.as_tensor(items[rows]),
                ITEM_LENGTH: torch.as_tensor(lengths[rows]),
                USER: torch.as_tensor(users[rows]),
                # a few models (the CPR variants) compute a loss inside full_sort_predict and read the
                # target; they get the padding id, so no model can see the answer
                ITEM: torch.zeros(len(rows), dtype=torch.long),
            }).to(self.device)
            with torch.no_grad():
                scores = self.model.full_sort_predict(batch).view(len(rows), -1)
                scores = scores.index_select(1, columns).float()
            yield rows, scores

    def run_info(self) -> dict:
        return dict(self.info)


class _Progress:
    """Epochs and validation NDCG@10 in the harness's rich progress display (or nowhere)."""

    def __init__(self, progress, name: str, epochs: int):
        self.progress = progress
        self.epochs = 0
        self.best = -math.inf
        self.best_epoch = -1
        self.task = progress.add_task(f"{name} epochs", total=epochs, info="") if progress is not None else None

    def epoch_done(self, epoch: int, valid_score: float) -> None:
        self.epochs = epoch + 1
        if valid_score >= self.best:   # RecBole keeps the later model on a tie, so do we
            self.best, self.best_epoch = float(valid_score), epoch + 1
        if self.task is not None:
            self.progress.update(
                self.task, completed=self.epochs,
                info=f"valid NDCG@10 {valid_score:.4f} (best {self.best:.4f}, epoch {self.best_epoch})",
            )

    def finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=self.epochs, completed=self.epochs)
