"""The method's configuration and RecBole's: `RecBoleConfig` (one dataclass per RecBole model, with
that model's defaults and own parameters), the config_dict built from it, and RecBole's Config built
from that dict alone (no yaml, no sys.argv, no environment writes)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from methods.recbole.files import DATASET, ITEM, ITEM_LENGTH, ITEM_LIST, SPLIT_FILES, USER
from methods.recbole.shims import hidden_argv, install_shims, quiet


@dataclass
class RecBoleConfig:
    epochs: int = 200  # most training epochs (early stopping usually ends sooner)
    patience: int = 10  # stop once more than this many epochs in a row brought no better valid NDCG@10
    batch_size: int = 256  # training samples per step
    eval_batch_size: int = 2048  # samples per step when scoring validation and test
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam weight decay (L2)
    hidden_size: int = 64  # RecBole's hidden_size and embedding_size
    n_layers: int = 2  # layers (RecBole's n_layers / num_layers)
    n_heads: int = 2  # attention heads (attention models only)
    dropout: float | None = None  # hidden/attention/embedding dropout; None: the model's RecBole default
    loss: str = "CE"  # "CE" over all items or "BPR" with one sampled negative
    max_history: int = 10  # most recent history items the model sees (the protocol's history length)
    extra: str = ""  # any other RecBole parameter: "key=value;key=value" (values in YAML)


# Defaults per RecBole model (fields of RecBoleConfig), and parameters only one model has, which
# become fields of that model's Config (so `--set caser.nh=16` works like any other field).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "SASRec": {"n_layers": 2, "n_heads": 2, "dropout": 0.5},
    "GRU4Rec": {"n_layers": 1, "dropout": 0.3},
    "BERT4Rec": {"n_layers": 2, "n_heads": 2, "dropout": 0.2},
    "Caser": {"dropout": 0.4},
    "FPMC": {"loss": "BPR"},  # FPMC is a pairwise model
}
MODEL_FIELDS: dict[str, dict[str, Any]] = {
    "BERT4Rec": {"mask_ratio": 0.2},
    "Caser": {"nv": 4, "nh": 8, "reg_weight": 1e-4},
}
# What each of those model parameters means (`bench methods caser`).
MODEL_FIELD_HELP: dict[str, str] = {
    "mask_ratio": "share of history items masked in BERT4Rec's cloze training",
    "nv": "Caser's vertical convolution filters",
    "nh": "Caser's horizontal convolution filters of each height (1 to max_history)",
    "reg_weight": "weight of Caser's L2 penalty on its embeddings and layers",
}
# Sequential models that need data a prepared split does not carry.
NEEDS_SIDE_DATA = {
    "GRU4RecF": "item features",
    "SASRecF": "item features",
    "FDSA": "item features",
    "S3Rec": "item features",
    "KSR": "a knowledge graph",
    "GRU4RecKG": "a knowledge graph",
    "DIN": "click labels (it is a click-through-rate model)",
    "DIEN": "click labels (it is a click-through-rate model)",
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
    specs[-1:-1] = [
        (name, type(value), dataclasses.field(default=value, metadata={"help": MODEL_FIELD_HELP.get(name, "")}))
        for name, value in extra_fields
    ]
    namespace = {"__post_init__": _check_settings, "recbole_model": model}
    cls = dataclasses.make_dataclass(f"{model}Config", specs, namespace=namespace)
    cls.__module__ = __name__
    cls.__help_from__ = RecBoleConfig  # a generated class has no source: its comments are RecBoleConfig's (bench.describe)
    return cls


# the parameters recbole_settings() sets itself, which `extra` may also change
RECBOLE_NAMES = frozenset(
    "data_path checkpoint_dir benchmark_filename USER_ID_FIELD ITEM_ID_FIELD load_col alias_of_item_id "
    "MAX_ITEM_LIST_LENGTH ITEM_LIST_LENGTH_FIELD LIST_SUFFIX epochs stopping_step eval_step train_batch_size "
    "eval_batch_size learner learning_rate weight_decay hidden_size embedding_size inner_size n_layers num_layers "
    "n_heads loss_type metrics topk valid_metric eval_args repeatable seed reproducibility show_progress save_dataset "
    "save_dataloaders log_wandb worker gpu_id state train_neg_sample_args hidden_dropout_prob attn_dropout_prob "
    "dropout_prob".split()
)
ATTENTION_MODELS = {"SASRec", "BERT4Rec"}  # hidden_size is split between n_heads heads


def _check_settings(cfg) -> None:
    """A Config's values, checked when it is made (before any data is prepared); ValueError says
    which value is wrong."""
    if cfg.loss not in ("CE", "BPR"):
        raise ValueError(f"loss must be CE or BPR, not {cfg.loss!r}")
    for name in ("epochs", "batch_size", "eval_batch_size", "hidden_size", "max_history", "n_layers", "n_heads"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"{name} must be at least 1, not {getattr(cfg, name)}")
    if cfg.patience < 0:
        raise ValueError(f"patience must be 0 or more, not {cfg.patience}")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        raise ValueError(f"lr must be above 0 and weight_decay 0 or more, not {cfg.lr} and {cfg.weight_decay}")
    if cfg.dropout is not None and not 0 <= cfg.dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), not {cfg.dropout}")
    model = getattr(cfg, "recbole_model", None)
    if model in ATTENTION_MODELS and cfg.hidden_size % cfg.n_heads:
        raise ValueError(f"hidden_size ({cfg.hidden_size}) must be a multiple of n_heads ({cfg.n_heads}) for {model}")
    if not cfg.extra.strip():
        return
    unknown = sorted(set(parse_extra(cfg.extra)) - known_parameters(model))
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known_parameters(model)), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"extra names {', '.join(unknown)}, which RecBole does not know{hint}")


@functools.cache
def known_parameters(model: str | None) -> frozenset[str]:
    """Every parameter RecBole reads for `model`: its overall, dataset and model defaults (read
    from the installed package's files, without importing it)."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(list(spec.submodule_search_locations)[0]) / "properties"
    files = [folder / "overall.yaml", *sorted((folder / "dataset").glob("*.yaml"))]
    files += [folder / "model" / f"{model}.yaml"] if model else sorted((folder / "model").glob("*.yaml"))
    known = set()
    for path in files:
        if path.is_file():
            known |= set(yaml.safe_load(path.read_text()) or {})
    return frozenset(known | RECBOLE_NAMES)


def parse_extra(extra: str) -> dict[str, Any]:
    """ "a=1;b=[1, 2];c=none" -> {"a": 1, "b": [1, 2], "c": None} (values read as YAML)."""
    import yaml

    from bench.options import parse_pairs, split_list

    out: dict[str, Any] = {}
    for key, value in parse_pairs(split_list(extra, ";"), "extra", "extra=dropout_prob=0.3;n_layers=3"):
        try:
            out[key] = yaml.safe_load(value) if value else None
        except yaml.YAMLError as exc:
            raise BenchError(
                f"Cannot read the value of extra RecBole setting '{key}={value}' ({exc}); give a YAML value."
            ) from exc
    return out


def recbole_settings(model: str, cfg, data_path: Path, seed: int) -> dict[str, Any]:
    """The config_dict handed to RecBole's Config: our fields under RecBole's names plus fixed choices
    (benchmark files, every column we wrote, item_id_list sharing item_id's vocabulary, no masking)."""
    install_shims()
    from recbole.utils import InputType

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
        settings["train_neg_sample_args"] = {
            "distribution": "uniform",
            "sample_num": 1,
            "alpha": 1.0,
            "dynamic": False,
            "candidate_num": 0,
        }
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
        raise BenchError(
            f"RecBole model '{model}' needs {NEEDS_SIDE_DATA[model]}, which the benchmark's splits do not carry; choose another model."
        )
    return cls


def build_config(model: str, settings: dict[str, Any], device: str):
    """RecBole's Config from `settings` alone: no yaml of ours, command line hidden, device ours."""
    install_shims()
    import torch
    from recbole.config import Config

    try:
        with hidden_argv(), quiet():
            config = Config(model=model_class(model), dataset=DATASET, config_dict=dict(settings))
    except (ValueError, KeyError, TypeError, NotImplementedError, RuntimeError) as exc:
        raise BenchError(f"RecBole rejected the settings for {model} ({exc}); fix the --set or extra values.") from exc
    config["device"] = torch.device(device)
    config["use_gpu"] = config["device"].type == "cuda"
    return config
