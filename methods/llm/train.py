"""The one training loop of the LLM methods, for every objective (SFT, CFT and its ablations).

    examples = encode_samples(tokenizer, card, titles, train, cutoff)     # methods.llm.examples
    model, result = train(model, tokenizer, examples, valid_examples, cf_prompt, TrainConfig(...),
                          device=..., work_dir=..., progress=...)

What one optimiser step does: micro-batches of `micro_batch` examples (grouped by length unless
group_by_length is off) are collated (right padding, methods.llm.batching), the decoder runs on
the factual sequences (and, when alpha != 0, on the counterfactual ones, padded to their own
length), logits are computed at label positions only (methods.llm.loss), the objective's loss is
back-propagated, and every `grad_accum` micro-batches AdamW steps (gradient norm clipped at 1.0)
and the learning rate follows 20 warm-up steps then linear decay to 0. After each epoch the
validation loss L_f is computed; training stops after `patience` epochs without improvement and
the best weights are restored.

How the device computes it: one forward/backward pass may join k consecutive micro-batches
(`device_batch`, methods.llm.sizing: 1 on a CPU, by free memory on a GPU), each keeping its own
loss normaliser (methods.llm.loss.pass_loss), with grad_accum / k passes per step: the same
gradient. Weights and arithmetic follow `precision` (methods.llm.precision: float32 master weights,
bf16 autocast on a GPU by default). The host reads a device value once per optimiser step (the
progress line's loss) and once per epoch: loss weights and token counts come from the collator,
the attention mask of the right-padded sequences is a prepared causal triangle
(methods.llm.loss.causal_mask), and batches come from pinned memory without blocking.

Choices where the protocol leaves one open:
- AdamW with weight decay 0 and gradient clipping at norm 1.0: the defaults of the transformers
  Trainer the reference code used.
- Long examples drop their oldest history titles to fit `cutoff` (methods.llm.examples).
- Each epoch's order is a permutation drawn from (seed, epoch) (methods.llm.batching); dropout
  (LoRA) is seeded from (seed, epoch) too, so a resumed run repeats the uninterrupted one exactly.
- group_by_length (default on): within chunks of 50 micro-batches of that permutation, examples of
  similar length share a micro-batch and the micro-batches' order is shuffled with the same
  generator (methods.llm.batching), so padding shrinks and a run stays reproducible. The
  reference code's order (alpaca-lora's group_by_length=False) is group_by_length=false; the
  per-micro-batch loss normaliser is the same either way. Validation then runs on micro-batches
  sorted by length (its loss is a sum over tokens: the order changes nothing but rounding).
- A checkpoint is written at the end of every epoch to `work_dir` and the best weights beside it
  (methods.llm.checkpoint). Calling `train` again with the same work_dir resumes; a finished run
  just reloads its best weights.
- Validation loss L_f uses the objective's token weights (beta and its weighting form); the plain
  token cross-entropy is recorded beside it.
- LoRA (peft): adapters are merged into the weights after training, so decoding runs on a plain model.

Speed and memory settings (all off by default, so the numerics stay those of the plain loop):
- compile: torch.compile (dynamic shapes: every micro-batch has its own width) of the training
  module that wraps the model; the model returned is the plain, uncompiled one. A torch without
  torch.compile support here is refused with one sentence before anything trains.
- gradient_checkpointing: activations of each decoder layer are recomputed in the backward pass
  (non-reentrant checkpointing; with LoRA the input embeddings' output requires grad, as peft
  recommends); switched off again after training.
Attention runs through PyTorch's scaled_dot_product_attention where transformers supports it
(methods.llm.models).

Multi-GPU: the loop runs on accelerate's Accelerator (device placement, autocast, gradient
accumulation, DDP), in the process group the runner made (bench.distributed). Single-process CPU or one GPU needs nothing; for several GPUs launch the
whole benchmark under accelerate, e.g.

    accelerate launch --multi_gpu --num_processes 4 -m bench.cli run --methods cft --dataset toys

Each process then trains on its shard of every epoch's micro-batches (the effective batch is
micro_batch x grad_accum x processes; lower grad_accum to keep 64), only the main process writes
checkpoints and progress, and the validation loss is reduced over processes. Inference is sharded
by the runner, not here (bench.runner). Prepare the dataset before launching. epochs = 0 trains
nothing and returns the model as loaded (zero-shot evaluation).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from methods.llm.batching import EpochBatches, collate
from methods.llm.checkpoint import Checkpoints, TrainState, fingerprint, load_trainable
from methods.llm.examples import Example


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-4
    micro_batch: int = 16
    grad_accum: int = 4
    warmup_steps: int = 20
    patience: int = 1  # epochs without validation improvement before stopping; 0 = never stop early
    alpha: float = 0.0  # CFT counterfactual weight (0: no counterfactual pass)
    beta: float = 1.0  # CFT weight of the last label token (1: uniform)
    weighting: str = "linear"  # form of the token weights' decay: "linear" or "reciprocal" (methods.llm.loss)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: str = "q_proj,v_proj"
    group_by_length: bool = True  # micro-batches of similar-length examples (methods.llm.batching); False: plain shuffled order
    compile: bool = False  # torch.compile the training module
    gradient_checkpointing: bool = False  # recompute each layer's activations in the backward pass (memory for time)
    precision: str = "auto"  # methods.llm.precision: auto, fp32, bf16-mixed, bf16-pure
    device_batch: int = 0  # examples per forward/backward pass (k micro-batches, k dividing grad_accum); 0: methods.llm.sizing
    seed: int = 0
    label: str = "train"  # progress bar label


@dataclass
class TrainResult:
    epochs_trained: int = 0
    best_epoch: int = 0
    best_valid_loss: float | None = None
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    train_tokens: int = 0
    train_seconds: float = 0.0
    trainable_parameters: int = 0
    optimizer_steps: int = 0
    precision: str = ""  # the resolved precision (methods.llm.precision)
    device_batch: int = 0  # examples per forward/backward pass, as used
    history: list[dict] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.train_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return dict(asdict(self), tokens_per_s=round(self.tokens_per_s, 1))


def make_accelerator(device: str, grad_accum: int, precision: str = "auto"):
    """An Accelerator for `device` accumulating over `grad_accum` passes, with the autocast of
    `precision` (methods.llm.precision; accelerate's bf16 autocast for bf16-mixed, on a CPU too).
    Batches are copied to a GPU without blocking the host (from pinned memory). Outside
    `accelerate launch` accelerate's process-wide state is reset first, so that one process can
    train on the CPU and then on a GPU (accelerate otherwise refuses a second configuration)."""
    import torch
    from accelerate import Accelerator, DataLoaderConfiguration
    from accelerate.state import AcceleratorState, GradientState

    from bench.distributed import launched_processes
    from methods.llm.precision import Precision

    cuda = str(device).startswith("cuda")
    if launched_processes() == 1:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        if cuda and ":" in str(device):
            torch.cuda.set_device(int(str(device).split(":")[1]))
    return Accelerator(
        cpu=not cuda,
        mixed_precision=Precision.resolve(precision, device).mixed_precision,
        gradient_accumulation_steps=grad_accum,
        dataloader_config=DataLoaderConfiguration(non_blocking=cuda),
    )


def passes_per_micro_batch(config: TrainConfig, model, examples: list[Example], cf_len: int, device: str) -> int:
    """k, the micro-batches one forward/backward pass joins (methods.llm.sizing): from
    `device_batch` when set (it must be k * micro_batch with k dividing grad_accum), else 1 on a
    CPU and the memory rule on a GPU."""
    from bench.errors import BenchError
    from methods.llm import sizing

    mb, accum = config.micro_batch, config.grad_accum
    if config.device_batch:
        k, rest = divmod(config.device_batch, mb)
        if rest or k < 1 or accum % k:
            choices = ", ".join(str(mb * d) for d in range(1, accum + 1) if accum % d == 0)
            raise BenchError(
                f"device_batch={config.device_batch} is not a whole number of micro-batches of {mb} dividing grad_accum={accum}; "
                f"choose one of {choices}, or 0 to let the device decide."
            )
        return k
    free = sizing.free_memory(device)
    if free is None:
        return 1
    longest = max(examples, key=lambda e: len(e.prompt) + len(e.response))
    return sizing.training_passes(
        sizing.Shape.of(model),
        mb,
        accum,
        len(longest.prompt) + len(longest.response),
        max(len(e.response) for e in examples),
        counterfactual=config.alpha != 0.0,
        free_bytes=free,
        pure_bf16=config.precision == "bf16-pure",
        checkpointing=config.gradient_checkpointing,
        cf_tokens=cf_len + max(len(e.response) for e in examples),
    )


COMPILE_OPTIONS = {"dynamic": True}  # torch.compile's arguments: widths change with every micro-batch


def check_compile() -> None:
    """Raise BenchError (one sentence) unless torch.compile can run here."""
    import torch

    from bench.errors import BenchError

    supported = hasattr(torch, "compile")
    if supported:
        try:
            import torch._dynamo

            supported = bool(torch._dynamo.is_dynamo_supported())
        except Exception:
            supported = False
    if not supported:
        raise BenchError(
            f"compile=true needs torch.compile, which torch {torch.__version__} does not support on this platform; "
            "set compile=false."
        )


def enable_gradient_checkpointing(model, lora: bool) -> None:
    """Non-reentrant activation checkpointing of every decoder layer of `model` (a transformers
    model; with LoRA the base model inside the peft wrapper, enabled after wrapping so that the
    hook below is registered once, not by peft too); with LoRA the input embeddings' output
    requires grad (peft's recipe, so that gradients reach the adapters through checkpointed layers
    whose own weights are frozen)."""
    from bench.errors import BenchError

    if not getattr(model, "supports_gradient_checkpointing", False):
        raise BenchError(f"{type(model).__name__} does not support gradient checkpointing; set gradient_checkpointing=false.")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 (the old name is deprecated)
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if lora and getattr(model, "_require_grads_hook", None) is None:
        model.enable_input_require_grads()


def disable_gradient_checkpointing(model) -> None:
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()
    if getattr(model, "_require_grads_hook", None) is not None:
        model.disable_input_require_grads()


def add_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    targets = [t.strip() for t in config.lora_targets.split(",") if t.strip()]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def validation_loss(
    module,
    examples: list[Example],
    cf_prompt,
    pad_id: int,
    beta: float,
    batch_size: int,
    accelerator,
    weighting: str = "linear",
    group_by_length: bool = False,
) -> tuple[float, float]:
    """(L_f with the objective's token weights, plain token CE) over `examples`, reduced over
    processes; group_by_length: micro-batches sorted by length (less padding, the same sums)."""
    import torch

    from methods.llm.loss import token_ce, weights_at

    module.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=accelerator.device)  # sum w*ce, sum w, sum ce, count
    lengths = [len(e.prompt) + len(e.response) for e in examples] if group_by_length else None
    batches = EpochBatches(len(examples), batch_size, 0, shuffle=False, lengths=lengths).batches()
    with torch.no_grad():
        for index in batches[accelerator.process_index :: accelerator.num_processes]:
            batch = collate([examples[i] for i in index], cf_prompt, pad_id, counterfactual=False)
            batch = {k: v.to(accelerator.device, non_blocking=True) if hasattr(v, "to") else v for k, v in batch.items()}
            with accelerator.autocast():
                z_f, _ = module(batch)
            ce = token_ce(z_f, batch["labels"]).double()
            w = weights_at(batch["label_pos"], batch["label_len"], beta, weighting).double()
            sums += torch.stack([(w * ce).sum(), w.sum(), ce.sum(), ce.new_tensor(float(ce.numel()))])
    sums = accelerator.reduce(sums, reduction="sum")
    module.train()
    return float(sums[0] / sums[1]), float(sums[2] / sums[3])


def _run_epoch(
    module, loader, optimizer, scheduler, accelerator, config: TrainConfig, per_pass: int, state: TrainState, progress, task
) -> tuple[float, int, float]:
    """One pass over the training micro-batches: (mean micro-batch loss, tokens seen by all
    processes, seconds). The host waits for the device at most once per optimiser step: the
    running loss is summed on the device and read when the step is taken (for the progress line);
    token counts come from the collator."""
    from methods.llm.loss import Objective, pass_loss

    objective = Objective(config.alpha, config.beta, config.weighting)
    use_cf = objective.needs_counterfactual
    loss_sum, loss_n, tokens, t0 = None, 0, 0, time.perf_counter()
    shown = float("nan")
    for batch in loader:
        with accelerator.accumulate(module):
            with accelerator.autocast():
                z_f, z_cf = module(batch, counterfactual=use_cf)
            loss = pass_loss(z_f, z_cf, batch, objective, per_pass)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                if config.max_grad_norm:
                    accelerator.clip_grad_norm_(module.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                state.steps += 1
            optimizer.zero_grad()
        part = loss.detach() * per_pass  # the sum of the pass's micro-batch losses
        loss_sum = part if loss_sum is None else loss_sum + part
        loss_n += batch["n_chunks"]
        tokens += batch["n_tokens"]
        if progress is not None:
            if accelerator.sync_gradients:  # one read of a device value per optimiser step
                shown = float(loss_sum) / loss_n
            rate = tokens * accelerator.num_processes / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, advance=1, info=f"loss {shown:.4f} | {rate:,.0f} tok/s")
    mean = float(loss_sum) / loss_n if loss_n else 0.0
    return mean, tokens * accelerator.num_processes, time.perf_counter() - t0


def train(
    model,
    tokenizer,
    train_examples: list[Example],
    valid_examples: list[Example],
    cf_prompt: list[int],
    config: TrainConfig,
    device: str = "cpu",
    work_dir: Path | None = None,
    progress: Any = None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
) -> tuple[Any, TrainResult]:
    """Train `model` in place (a LoRA-wrapped copy when config.lora) and return (trained model in
    eval mode with the best weights, TrainResult). `on_epoch_end(epoch, record)` is called after
    each epoch's checkpoint is written."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    from methods.llm.loss import LabelLogits
    from methods.llm.precision import Precision

    if not train_examples:
        raise ValueError("no training examples")
    if config.compile:
        check_compile()
    precision = Precision.resolve(config.precision, device)
    model.to(precision.weights_dtype)  # float32 master weights unless bf16-pure
    per_pass = passes_per_micro_batch(config, model, train_examples, len(cf_prompt), device)
    accelerator = make_accelerator(device, config.grad_accum // per_pass, precision.name)
    pad_id = tokenizer.pad_token_id
    use_cf = config.alpha != 0.0
    checkpoints = Checkpoints(
        work_dir, fingerprint(config, len(train_examples), len(valid_examples)), accelerator.is_main_process
    )

    if config.lora:
        model = add_lora(model, config)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model.get_base_model() if config.lora else model, config.lora)
    model.config.use_cache = False
    result = TrainResult(
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        precision=precision.name,
        device_batch=per_pass * config.micro_batch,
    )

    state = TrainState()
    resumed = checkpoints.resume()
    if resumed is not None:
        load_trainable(model, resumed.trainable)
        state = resumed.state
        result.resumed_from_epoch = state.epoch

    module = LabelLogits(model)
    if config.compile:
        module.compile(**COMPILE_OPTIONS)  # in place: the wrapper's calls are compiled, the model's names stay
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
    )
    lengths = [len(e.prompt) + len(e.response) for e in train_examples] if config.group_by_length else None
    sampler = EpochBatches(len(train_examples), config.micro_batch, config.seed, lengths=lengths, per_pass=per_pass)
    loader = torch.utils.data.DataLoader(
        train_examples,
        batch_sampler=sampler,
        collate_fn=lambda exs: collate(exs, cf_prompt, pad_id, counterfactual=use_cf, micro_batch=config.micro_batch),
        pin_memory=str(device).startswith("cuda"),  # copied to the GPU without blocking the host
    )
    module, optimizer, loader = accelerator.prepare(module, optimizer, loader)
    steps_per_epoch = math.ceil(len(loader) / (config.grad_accum // per_pass))
    scheduler = get_linear_schedule_with_warmup(optimizer.optimizer, config.warmup_steps, steps_per_epoch * config.epochs)
    if resumed is not None:
        optimizer.load_state_dict(resumed.optimizer)
        scheduler.load_state_dict(resumed.scheduler)
    del resumed

    show = progress is not None and accelerator.is_main_process
    task = progress.add_task(config.label, total=len(loader)) if show else None
    try:
        module.train()
        epoch = state.epoch
        while not state.finished and epoch < config.epochs:
            sampler.epoch = epoch
            torch.manual_seed(config.seed * 1000 + epoch)
            if show:
                progress.reset(task, total=len(loader), description=f"{config.label} epoch {epoch + 1}/{config.epochs}", info="")
            train_loss, tokens, seconds = _run_epoch(
                module, loader, optimizer, scheduler, accelerator, config, per_pass, state, progress if show else None, task
            )
            state.tokens += tokens
            state.seconds += seconds
            epoch += 1
            state.epoch = epoch
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "tokens_per_s": round(tokens / max(seconds, 1e-9), 1),
                "lr": scheduler.get_last_lr()[0],
            }

            # validation and early stopping
            improved = True
            if valid_examples:
                valid_lf, valid_ce = validation_loss(
                    module,
                    valid_examples,
                    cf_prompt,
                    pad_id,
                    config.beta,
                    config.micro_batch * per_pass,
                    accelerator,
                    config.weighting,
                    group_by_length=config.group_by_length,
                )
                record.update(valid_loss=valid_lf, valid_ce=valid_ce)
                improved = state.best_valid is None or valid_lf < state.best_valid
                if improved:
                    state.best_valid, state.best_epoch, state.bad_epochs = valid_lf, epoch, 0
                else:
                    state.bad_epochs += 1
                    if config.patience > 0 and state.bad_epochs >= config.patience:
                        state.finished = True
            else:
                state.best_epoch = epoch
            if epoch >= config.epochs:
                state.finished = True
            state.history.append(record)

            # checkpoint: best weights first, then the resumable state
            unwrapped = accelerator.unwrap_model(module).lm
            if improved:
                checkpoints.keep_best(unwrapped)
            checkpoints.save(unwrapped, optimizer, scheduler, state)
            accelerator.wait_for_everyone()
            if on_epoch_end is not None:
                on_epoch_end(epoch, record)
    finally:
        if show:
            progress.remove_task(task)

    model = accelerator.unwrap_model(module).lm
    accelerator.free_memory()
    best = checkpoints.best()
    if best is not None:
        load_trainable(model, best)
    if config.lora:
        model = model.merge_and_unload()
    if config.gradient_checkpointing:
        disable_gradient_checkpointing(model)
    model.config.use_cache = True
    model.eval()

    result.epochs_trained = state.epoch
    result.best_epoch = state.best_epoch
    result.best_valid_loss = state.best_valid
    result.train_tokens = state.tokens
    result.train_seconds = state.seconds
    result.optimizer_steps = state.steps
    result.history = state.history
    result.stopped_early = state.epoch < config.epochs
    return model, result
