"""The one training loop of the LLM methods, for every objective (SFT, CFT and its ablations).

    fmt = PromptFormat(tokenizer, card, config.label_layout, config.cutoff)   # methods.llm.prompts
    data = training_set(fmt, titles, train_samples, valid_samples)           # methods.llm.examples
    model, state = train(model, data, config, seed=seed, device=..., work_dir=..., progress=...)

`config` is the method's own configuration (methods.llm.config.LLMConfig or a subclass), read
whole: the objective is `config.objective()` (methods.llm.objective), the learning rate
`config.learning_rate()`. `state` (methods.llm.checkpoint.TrainState) is the run's progress and
what the run records about training.

The loop in named steps (as transformers' inner training loop): `prepare_loop` builds the
Accelerator, the trainable model (LoRA, checkpointing), optimiser, batches and scheduler and
resumes a checkpoint; each epoch `run_epoch` trains over the micro-batches (`plain_pass` or
`crafted_pass` per forward/backward pass, `optimizer_step` every grad_accum micro-batches),
`validate` computes the validation loss and decides on early stopping, `save_epoch` writes the
checkpoint; `finish` restores the best weights.

One optimiser step: micro-batches of `micro_batch` examples (grouped by length unless
group_by_length is off) are collated (right padding, methods.llm.batching), the decoder runs on the
factual sequences (and, when alpha != 0, on the counterfactual ones, padded to their own length),
logits are computed at label positions only (methods.llm.loss), the objective's loss is
back-propagated, and every `grad_accum` micro-batches AdamW steps (gradient norm clipped at 1.0)
and the learning rate follows `warmup_steps` of warm-up then linear decay to 0. After each epoch
the validation loss L_f is computed; training stops after `patience` epochs without improvement
and the best weights are restored.

balance=gradcraft (methods.llm.gradcraft): each pass back-propagates L_f (keeping the graph) and
then L_cf, each term's gradients kept apart (TaskGradients) and accumulated over the step's passes
with a plain step's scaling; at the optimiser step they are averaged over processes, crafted into
one update and written to the parameters' gradients, then clipped and applied as a plain step's.
The passes run without DDP's own gradient reduction (no_sync), which the per-task reduction
replaces. The recorded train_loss is then the mean of L_f + L_cf.

How the device computes it: one pass may join k consecutive micro-batches (`device_batch`,
methods.llm.sizing), each keeping its own loss normaliser (methods.llm.loss.pass_loss), with
grad_accum / k passes per step: the same gradient. Weights and arithmetic follow `precision`
(methods.llm.precision). The host reads a device value once per optimiser step (the progress
line's loss) and once per epoch: loss weights and token counts come from the collator, the
attention mask of the right-padded sequences is a prepared causal triangle
(methods.llm.loss.causal_mask), and batches come from pinned memory without blocking.

Choices where the protocol leaves one open:
- AdamW with weight decay 0 and gradient clipping at norm 1.0: the defaults of the transformers
  Trainer the reference code used.
- Each epoch's order is a permutation drawn from (seed, epoch) (methods.llm.batching); dropout
  (LoRA) is seeded from (seed, epoch) too, so a resumed run repeats the uninterrupted one exactly.
- group_by_length (default on): within chunks of 50 micro-batches of that permutation, examples of
  similar length share a micro-batch and the micro-batches' order is shuffled with the same
  generator, so padding shrinks and a run stays reproducible; group_by_length=false is the
  reference code's order (alpaca-lora's). The per-micro-batch loss normaliser is the same either
  way; validation runs on micro-batches sorted by length (a sum over tokens: only rounding moves).
- A checkpoint is written at the end of every epoch to `work_dir`, the best weights beside it
  (methods.llm.checkpoint). Calling `train` again with the same work_dir resumes; a finished run
  just reloads its best weights.
- Validation loss L_f uses the objective's token weights; the plain token CE is recorded beside it.
- LoRA (peft): adapters are merged into the weights after training, so decoding runs on a plain model.

Speed and memory settings, off by default (methods.llm.setup): compile (torch.compile of the
module around the model, dynamic shapes; the plain model comes back; refused with one sentence
where torch.compile cannot run) and gradient_checkpointing (each decoder layer's activations
recomputed in the backward pass, non-reentrant; with LoRA the input embeddings' output requires
grad, as peft recommends; switched off after training).

Multi-GPU: the loop runs on accelerate's Accelerator (device placement, autocast, gradient
accumulation, DDP) in the process group the runner made (bench.distributed); launch the whole
benchmark under accelerate, e.g. `accelerate launch --multi_gpu --num_processes 4 -m bench.cli run
--methods cft --dataset toys`. Each process trains on its shard of every epoch's micro-batches (the
effective batch is micro_batch x grad_accum x processes), only the main process writes checkpoints
and progress, and the validation loss is reduced over processes; inference is sharded by the runner
(bench.runner). epochs = 0 trains nothing and returns the model as loaded (zero-shot evaluation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from methods.llm import setup
from methods.llm.batching import EpochBatches, collate
from methods.llm.checkpoint import Checkpoints, TrainState, fingerprint, load_trainable
from methods.llm.config import LLMConfig
from methods.llm.examples import TrainingSet
from methods.llm.gradcraft import TaskGradients
from methods.llm.objective import Objective
from methods.llm.validation import validation_loss

WEIGHT_DECAY = 0.0  # AdamW's, as in the transformers Trainer the reference code used
MAX_GRAD_NORM = 1.0  # gradient clipping, idem
CRAFTED_TASKS = 2  # balance=gradcraft: L_f and L_cf


@dataclass
class Loop:
    """What one call of `train` builds around the model, shared by its steps."""

    config: LLMConfig
    objective: Objective
    data: TrainingSet
    seed: int
    accelerator: Any
    module: Any  # methods.llm.loss.LabelLogits around the model, prepared by accelerate
    optimizer: Any
    scheduler: Any
    loader: Any
    sampler: EpochBatches
    checkpoints: Checkpoints
    state: TrainState
    per_pass: int  # micro-batches per forward/backward pass
    tasks: TaskGradients | None  # balance=gradcraft: the per-task gradients of the current step


def train(
    model,
    data: TrainingSet,
    config: LLMConfig,
    *,
    seed: int,
    device: str = "cpu",
    work_dir: Path | None = None,
    progress: Any = None,
    label: str = "train",
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> tuple[Any, TrainState]:
    """Train `model` in place (a LoRA-wrapped copy when config.lora) and return (trained model in
    eval mode with the best weights, TrainState). `label` names the progress line;
    `on_epoch_end(epoch, record)` is called after each epoch's checkpoint is written."""
    if not data.train:
        raise ValueError("no training examples")
    loop = prepare_loop(model, data, config, seed, device, work_dir)
    show = progress is not None and loop.accelerator.is_main_process
    task = progress.add_task(label, total=len(loop.loader)) if show else None
    try:
        while not loop.state.finished and loop.state.epochs_trained < config.epochs:
            if show:
                epoch = loop.state.epochs_trained + 1
                progress.reset(task, total=len(loop.loader), description=f"{label} epoch {epoch}/{config.epochs}", info="")
            record = run_epoch(loop, progress if show else None, task)
            improved = validate(loop, record)
            save_epoch(loop, improved)
            if on_epoch_end is not None:
                on_epoch_end(loop.state.epochs_trained, record)
    finally:
        if show:
            progress.remove_task(task)
    return finish(loop)


def prepare_loop(model, data: TrainingSet, config: LLMConfig, seed: int, device: str, work_dir: Path | None) -> Loop:
    """Everything around the model before the first epoch, a checkpoint resumed when one matches."""
    from methods.llm.precision import Precision

    if config.compile:
        setup.check_compile()
    precision = Precision.resolve(config.precision, device)
    model.to(precision.weights_dtype)  # float32 master weights unless bf16-pure
    per_pass = setup.passes_per_micro_batch(config, model, data.train, len(data.cf_prompt), device)
    accelerator = setup.make_accelerator(device, config.grad_accum // per_pass, precision.name)
    checkpoints = Checkpoints(work_dir, fingerprint(config, seed, len(data.train), len(data.valid)), accelerator.is_main_process)
    model = trainable_model(model, config)
    state, resumed = TrainState(), checkpoints.resume()
    if resumed is not None:
        load_trainable(model, resumed.trainable)
        state = resumed.state
    state.resumed_from_epoch = state.epochs_trained
    state.trainable_parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    state.precision, state.device_batch = precision.name, per_pass * config.micro_batch
    loop = build_loop(model, data, config, seed, accelerator, per_pass, checkpoints, state)
    if resumed is not None:
        loop.optimizer.load_state_dict(resumed.optimizer)
        loop.scheduler.load_state_dict(resumed.scheduler)
    return loop


def trainable_model(model, config: LLMConfig):
    """The model as it trains: LoRA adapters added, activation checkpointing on, no KV cache."""
    if config.lora:
        model = setup.add_lora(model, config)
    if config.gradient_checkpointing:
        setup.enable_gradient_checkpointing(model.get_base_model() if config.lora else model, config.lora)
    model.config.use_cache = False
    return model


def build_loop(model, data: TrainingSet, config: LLMConfig, seed: int, accelerator, per_pass: int, checkpoints, state) -> Loop:
    """The training module, optimiser, batches and scheduler, prepared by accelerate."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from methods.llm.loss import LabelLogits

    objective = config.objective()
    module = LabelLogits(model)
    if config.compile:
        module.compile(**setup.COMPILE_OPTIONS)  # in place: the wrapper's calls are compiled, the model's names stay
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate(), weight_decay=WEIGHT_DECAY)
    lengths = [len(e.prompt) + len(e.response) for e in data.train] if config.group_by_length else None
    sampler = EpochBatches(len(data.train), config.micro_batch, seed, lengths=lengths, per_pass=per_pass)
    use_cf, cf_prompt, pad_id = objective.needs_counterfactual, data.cf_prompt, data.pad_id
    loader = torch.utils.data.DataLoader(
        data.train,
        batch_sampler=sampler,
        collate_fn=lambda exs: collate(exs, cf_prompt, pad_id, counterfactual=use_cf, micro_batch=config.micro_batch),
        pin_memory=accelerator.device.type == "cuda",  # copied to the GPU without blocking the host
    )
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / (config.grad_accum // per_pass))
    scheduler = get_linear_schedule_with_warmup(optimizer.optimizer, config.warmup_steps, steps_per_epoch * config.epochs)
    tasks = None
    if objective.crafted:
        tasks = TaskGradients(trainable, CRAFTED_TASKS, objective.gradcraft, state.gradcraft_magnitudes)
    return Loop(
        config,
        objective,
        data,
        seed,
        accelerator,
        module,
        optimizer,
        scheduler,
        loader,
        sampler,
        checkpoints,
        state,
        per_pass,
        tasks,
    )


def run_epoch(loop: Loop, progress, task) -> dict:
    """One pass over the training micro-batches; the epoch's record (its validation loss added by
    `validate`). The host waits for the device at most once per optimiser step: the running loss
    is summed on the device and read when the step is taken (for the progress line); token
    counts come from the collator."""
    import torch

    accelerator, state = loop.accelerator, loop.state
    epoch = state.epochs_trained
    loop.module.train()
    loop.sampler.epoch = epoch
    torch.manual_seed(loop.seed * 1000 + epoch)
    train_pass = plain_pass if loop.tasks is None else crafted_pass
    loss_sum, loss_n, tokens, t0 = None, 0, 0, time.perf_counter()
    shown = float("nan")
    for batch in loop.loader:
        with accelerator.accumulate(loop.module):
            loss = train_pass(loop, batch)
            if accelerator.sync_gradients:
                optimizer_step(loop)
            loop.optimizer.zero_grad()
        part = loss * loop.per_pass  # the sum of the pass's micro-batch losses
        loss_sum = part if loss_sum is None else loss_sum + part
        loss_n += batch["n_chunks"]
        tokens += batch["n_tokens"]
        if progress is not None:
            if accelerator.sync_gradients:  # one read of a device value per optimiser step
                shown = float(loss_sum) / loss_n
            rate = tokens * accelerator.num_processes / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, advance=1, info=f"loss {shown:.4f} | {rate:,.0f} tok/s")
    seconds = time.perf_counter() - t0
    tokens *= accelerator.num_processes
    state.train_tokens += tokens
    state.train_seconds += seconds
    state.epochs_trained = epoch + 1
    return {
        "epoch": epoch + 1,
        "train_loss": float(loss_sum) / loss_n if loss_n else 0.0,
        "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
        "lr": loop.scheduler.get_last_lr()[0],
    }


def plain_pass(loop: Loop, batch: dict):
    """Forward and backward of one pass with the objective's loss (balance=fixed); its detached loss."""
    from methods.llm.loss import pass_loss

    with loop.accelerator.autocast():
        z_f, z_cf = loop.module(batch, counterfactual=loop.objective.needs_counterfactual)
    loss = pass_loss(z_f, z_cf, batch, loop.objective, loop.per_pass)
    loop.accelerator.backward(loss)
    return loss.detach()


def crafted_pass(loop: Loop, batch: dict):
    """balance=gradcraft: forward once, back-propagate L_f (keeping the graph) and L_cf apart, each
    term's gradients collected into its own row (methods.llm.gradcraft.TaskGradients), never
    reduced by DDP; the detached L_f + L_cf."""
    from methods.llm.loss import pass_terms

    accelerator, tasks = loop.accelerator, loop.tasks
    with accelerator.no_sync(loop.module), setup.backward_twice(loop.config.compile):
        with accelerator.autocast():
            z_f, z_cf = loop.module(batch, counterfactual=True)
        l_f, l_cf = pass_terms(z_f, z_cf, batch, loop.objective, loop.per_pass)
        accelerator.backward(l_f, retain_graph=True)
        tasks.collect(0)
        accelerator.backward(l_cf)
        tasks.collect(1)
    return (l_f + l_cf).detach()


def optimizer_step(loop: Loop) -> None:
    """The step at the end of grad_accum micro-batches: (GradCraft's update written,) gradients
    clipped, AdamW and the schedule stepped."""
    if loop.tasks is not None:
        loop.tasks.write_update(loop.accelerator.num_processes)
    if MAX_GRAD_NORM:
        loop.accelerator.clip_grad_norm_(loop.module.parameters(), MAX_GRAD_NORM)
    loop.optimizer.step()
    loop.scheduler.step()
    loop.state.optimizer_steps += 1


def validate(loop: Loop, record: dict) -> bool:
    """The validation loss of the epoch just trained, into its record and the early-stopping
    state; whether it improved (without validation examples every epoch counts as the best)."""
    state, config = loop.state, loop.config
    epoch = state.epochs_trained
    improved = True
    if loop.data.valid:
        valid_lf, valid_ce = validation_loss(
            loop.module,
            loop.data.valid,
            loop.data.pad_id,
            loop.objective,
            config.micro_batch * loop.per_pass,
            loop.accelerator,
            group_by_length=config.group_by_length,
        )
        record.update(valid_loss=valid_lf, valid_ce=valid_ce)
        improved = state.best_valid_loss is None or valid_lf < state.best_valid_loss
        if improved:
            state.best_valid_loss, state.best_epoch, state.bad_epochs = valid_lf, epoch, 0
        else:
            state.bad_epochs += 1
            if config.patience > 0 and state.bad_epochs >= config.patience:
                state.finished = True
    else:
        state.best_epoch = epoch
    if epoch >= config.epochs:
        state.finished = True
    state.history.append(record)
    return improved


def save_epoch(loop: Loop, improved: bool) -> None:
    """The epoch's checkpoint: best weights first, then the resumable state."""
    if loop.tasks is not None:
        loop.state.gradcraft_magnitudes = loop.tasks.magnitudes.tolist()
    unwrapped = loop.accelerator.unwrap_model(loop.module).lm
    if improved:
        loop.checkpoints.keep_best(unwrapped)
    loop.checkpoints.save(unwrapped, loop.optimizer, loop.scheduler, loop.state)
    loop.accelerator.wait_for_everyone()


def finish(loop: Loop) -> tuple[Any, TrainState]:
    """The plain model with the best weights, in eval mode (LoRA merged, checkpointing off)."""
    config, state = loop.config, loop.state
    model = loop.accelerator.unwrap_model(loop.module).lm
    loop.accelerator.free_memory()
    best = loop.checkpoints.best()
    if best is not None:
        load_trainable(model, best)
    if config.lora:
        model = model.merge_and_unload()
    if config.gradient_checkpointing:
        setup.disable_gradient_checkpointing(model)
    model.config.use_cache = True
    model.eval()
    state.stopped_early = state.epochs_trained < config.epochs
    return model, state
