"""RecBoleMethod: a RecBole sequential model as a ScoreMethod. `_fit` writes the atomic files into the
run's work_dir, builds RecBole's Config, dataset and Trainer (early stopping on valid NDCG@10, best
checkpoint inside work_dir); `_score` runs full_sort_predict on the histories and reorders the
columns to our item ids. The harness, not RecBole, turns the scores into ranks and metrics."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from bench.data.split import Samples
from bench.errors import BenchError
from bench.method import Context, ScoreMethod
from methods.recbole.files import DATASET, ITEM, ITEM_LENGTH, ITEM_LIST, USER, write_atomic_files
from methods.recbole.settings import RecBoleConfig, build_config, config_class, model_class, recbole_settings
from methods.recbole.shims import install_shims, quiet


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


class RecBoleMethod(ScoreMethod):
    """A RecBole sequential model; subclasses (made by the registry) set `recbole_model`."""

    name = "recbole"
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
    def _fit(self, train: Samples, valid: Samples, context: Context) -> None:
        import torch
        from recbole.utils import get_trainer

        cfg = self.config
        started = time.perf_counter()
        cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        try:
            config = self._build(train, valid, context)  # seeds RecBole (and sets cudnn's flags) for training
            with quiet():
                self.trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, self.model)
                task = _Progress(context.progress, self.name, cfg.epochs)
                self.trainer.fit(
                    self.data.train, self.data.valid, verbose=False, saved=True, show_progress=False, callback_fn=task.epoch_done
                )
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

    def _build(self, train: Samples, valid: Samples, context: Context):
        """RecBole's data and an untrained model for this split and seed; returns RecBole's config.
        RecBole's seeding sets cudnn's flags: the caller restores them."""
        if not self.recbole_model:
            raise BenchError(
                f"Method '{self.name}' names no RecBole model; register it with options {{'recbole_model': 'SASRec'}}."
            )
        install_shims()
        from recbole.utils import init_seed

        cfg = self.config
        folder = Path(context.work_dir) / "recbole"
        # RecBole needs a third file; it is never used here (the harness scores the test samples)
        write_atomic_files(folder / DATASET, {"train": train, "valid": valid, "test": valid}, context.n_items, cfg.max_history)
        config = build_config(self.recbole_model, recbole_settings(self.recbole_model, cfg, folder, context.seed), context.device)
        self.device = config["device"]
        self.data = load_data(config, cfg.max_history)
        self._item_columns(context.n_items)
        try:
            with quiet():
                init_seed(config["seed"], config["reproducibility"])
                self.model = model_class(self.recbole_model)(config, self.data.train._dataset).to(self.device)
        except (ValueError, KeyError, TypeError, AssertionError) as exc:
            raise BenchError(
                f"RecBole could not build {self.recbole_model} with these settings ({exc}); "
                "fix the --set values, or the model needs inputs this benchmark does not provide."
            ) from exc
        return config

    # the trained weights (as RecBole saves its best epoch) and the facts of the fit
    def _save_fit(self, folder: Path) -> None:
        import json

        import torch

        state = {"state_dict": self.model.state_dict(), "other_parameter": self.model.other_parameter()}
        torch.save(state, folder / "model.pth")
        (folder / "info.json").write_text(json.dumps(self.info))

    def _load_fit(self, folder: Path, train: Samples, valid: Samples, context: Context) -> None:
        import json

        import torch

        info = json.loads((folder / "info.json").read_text(encoding="utf-8"))
        saved = torch.load(folder / "model.pth", map_location="cpu", weights_only=False)  # our own file
        cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        try:
            self._build(train, valid, context)
        finally:
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn
        self.model.load_state_dict(saved["state_dict"])
        self.model.load_other_parameter(saved.get("other_parameter"))
        self.model.eval()
        self.info = info

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
            raise BenchError(
                f"RecBole built {len(tokens) - 1} items for a catalogue of {n_items}; the atomic files are damaged, run again."
            )
        columns = np.full(n_items, -1, dtype=np.int64)
        ours = np.asarray([int(t) for t in tokens[1:]], dtype=np.int64)  # index 0 is [PAD]
        columns[ours] = np.arange(1, len(tokens), dtype=np.int64)
        self._columns = columns
        self._item_lookup = np.append(columns, 0)  # our -1 padding -> RecBole 0
        user_tokens = dataset.field2id_token[USER][1:]
        self._user_index = pd.Index(np.asarray([int(t) for t in user_tokens], dtype=np.int64))

    # ---- scoring ----------------------------------------------------------------------------
    def _score(self, samples: Samples, batch_size: int | None = None) -> Iterator[tuple[np.ndarray, Any]]:
        """Scores of every catalogue item (columns in our item order) for each sample, from the model's
        full_sort_predict on the sample's history; nothing is masked. `batch_size` defaults to the
        config's eval_batch_size (the base class's `score` checks fitted and shapes, then calls this)."""
        import torch
        from recbole.data.interaction import Interaction

        batch_size = batch_size or self.config.eval_batch_size
        width = self.config.max_history
        hist = samples.history_matrix(width, pad=-1, align="left")
        if hist.size and hist.max() >= len(self._columns):
            raise BenchError(
                f"Samples name item ids outside the catalogue (0..{len(self._columns) - 1}); use the split the method was fitted on."
            )
        items = self._item_lookup[hist]
        # a sample without history is scored from the padding token alone
        lengths = np.maximum((hist >= 0).sum(axis=1), 1)
        position = self._user_index.get_indexer(np.asarray(samples.users, dtype=np.int64))
        users = np.where(position >= 0, position + 1, 0)  # unseen users -> [PAD]
        columns = torch.as_tensor(self._columns, device=self.device)
        self.model.eval()
        for start in range(0, len(samples), batch_size):
            rows = np.arange(start, min(start + batch_size, len(samples)))
            batch = Interaction(
                {
                    ITEM_LIST: torch.as_tensor(items[rows]),
                    ITEM_LENGTH: torch.as_tensor(lengths[rows]),
                    USER: torch.as_tensor(users[rows]),
                    # a few models (the CPR variants) compute a loss inside full_sort_predict and read the
                    # target; they get the padding id, so no model can see the answer
                    ITEM: torch.zeros(len(rows), dtype=torch.long),
                }
            ).to(self.device)
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
        if valid_score >= self.best:  # RecBole keeps the later model on a tie, so do we
            self.best, self.best_epoch = float(valid_score), epoch + 1
        if self.task is not None:
            self.progress.update(
                self.task,
                completed=self.epochs,
                info=f"valid NDCG@10 {valid_score:.4f} (best {self.best:.4f}, epoch {self.best_epoch})",
            )

    def finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, total=self.epochs, completed=self.epochs)
