"""What the LLM training loop keeps across a restart: its state, the resumable checkpoint and the
best weights.

    checkpoints = Checkpoints(work_dir, fingerprint(config, seed, n_train, n_valid), is_main_process)
    resumed = checkpoints.resume()          # None: nothing to resume (or another configuration's)
    ...                                     # each epoch:
    checkpoints.keep_best(model)            #   when the validation loss improved
    checkpoints.save(model, optimizer, scheduler, state)
    best = checkpoints.best()               # at the end: the best trainable tensors, or None

Files in `work_dir` (resume granularity is one epoch):
- `checkpoint.pt`: the fingerprint, trainable weights, optimiser, scheduler and the TrainState
  (stored as a plain dict, `dataclasses.asdict`, and rebuilt on load).
- `best.pt`: the trainable weights of the best epoch.
Only trainable tensors are saved (LoRA: the adapters), which also sidesteps save_pretrained's
refusal of GGUF-loaded models. Files are written atomically (bench.atomic): a run killed while
saving leaves the previous checkpoint whole. Without a work_dir nothing is written and the best
weights are kept in memory. Under several processes only the main one writes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.atomic import atomic_file

if TYPE_CHECKING:
    from methods.llm.config import LLMConfig

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"


@dataclass
class TrainState:
    """One training run's state: the loop's progress and early-stopping state (what a restart
    restores besides the weights, the optimiser and the scheduler) and the facts the run records
    (methods.llm.base.LLMMethod.run_info). `train` returns it."""

    epochs_trained: int = 0
    best_valid_loss: float | None = None  # best validation loss so far
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the validation loss last improved
    finished: bool = False  # stopped early or trained every epoch
    stopped_early: bool = False  # finished before the last epoch (patience)
    history: list[dict] = field(default_factory=list)  # one record per epoch
    train_tokens: int = 0  # training tokens seen by all processes
    train_seconds: float = 0.0  # training time (validation and checkpoints excluded)
    optimizer_steps: int = 0
    gradcraft_magnitudes: list[float] | None = None  # balance=gradcraft: the gradient magnitudes' moving average
    # facts of the call that trained (set when it starts, whatever a checkpoint held)
    resumed_from_epoch: int = 0
    trainable_parameters: int = 0
    precision: str = ""  # the resolved precision (methods.llm.precision)
    device_batch: int = 0  # examples per forward/backward pass, as used

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def record(self) -> dict:
        """What the run record stores about training (beside the model's facts)."""
        return {
            "epochs_trained": self.epochs_trained,
            "best_epoch": self.best_epoch,
            "best_valid_loss": self.best_valid_loss,
            "stopped_early": self.stopped_early,
            "resumed_from_epoch": self.resumed_from_epoch,
            "optimizer_steps": self.optimizer_steps,
            "trainable_parameters": self.trainable_parameters,
            "train_tokens": self.train_tokens,
            "tokens_per_s": round(self.tokens_per_s, 1),
            "history": self.history,
        }


@dataclass
class Resumable:
    """A checkpoint read back: what the loop restores before going on."""

    trainable: dict
    optimizer: dict
    scheduler: dict
    state: TrainState


def trainable_state(model) -> dict:
    """The trainable tensors of `model`, copied to the CPU."""
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict) -> None:
    import torch

    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise ValueError(f"checkpoint holds tensors the model lacks: {missing[:3]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)


def fingerprint(config: LLMConfig, seed: int, n_train: int, n_valid: int) -> dict:
    """What a checkpoint must match to be resumed: the method's configuration (the pass size
    aside: it changes rounding only), the seed and the sizes of the example sets."""
    keep = {k: v for k, v in asdict(config).items() if k != "device_batch"}
    return dict(keep, seed=seed, n_train=n_train, n_valid=n_valid)


def _save(obj, path: Path) -> None:
    import torch

    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


class Checkpoints:
    """The checkpoint files of one training run in `work_dir` (None: the best weights in memory)."""

    def __init__(self, work_dir: Path | None, fingerprint: dict, is_main_process: bool = True):
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.fingerprint = fingerprint
        self.is_main_process = is_main_process
        self._best_in_memory: dict | None = None
        if self.work_dir is not None:
            self.work_dir.mkdir(parents=True, exist_ok=True)

    def resume(self) -> Resumable | None:
        """The checkpoint left by an earlier call with the same configuration, or None."""
        import torch

        if self.work_dir is None or not (self.work_dir / CHECKPOINT).is_file():
            return None
        saved = torch.load(self.work_dir / CHECKPOINT, map_location="cpu", weights_only=False)
        if saved.get("fingerprint") != self.fingerprint:
            return None  # a different configuration left it: start afresh
        return Resumable(saved["trainable"], saved["optimizer"], saved["scheduler"], TrainState(**saved["state"]))

    def save(self, model, optimizer, scheduler, state: TrainState) -> None:
        """Write the resumable checkpoint (after `keep_best`, so that a checkpoint never points past
        the best weights on disk)."""
        if self.work_dir is not None and self.is_main_process:
            _save(
                {
                    "fingerprint": self.fingerprint,
                    "trainable": trainable_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "state": asdict(state),
                },
                self.work_dir / CHECKPOINT,
            )

    def keep_best(self, model) -> None:
        if self.work_dir is None:
            self._best_in_memory = trainable_state(model)
        elif self.is_main_process:
            _save(trainable_state(model), self.work_dir / BEST)

    def best(self) -> dict | None:
        """The best weights kept by this run or an earlier one in the same folder, or None."""
        import torch

        if self._best_in_memory is not None:
            return self._best_in_memory
        if self.work_dir is not None and (self.work_dir / BEST).is_file():
            return torch.load(self.work_dir / BEST, map_location="cpu", weights_only=True)
        return None
