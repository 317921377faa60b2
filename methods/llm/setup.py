"""What the LLM training loop is built from besides the model: the Accelerator (device, autocast,
gradient accumulation, data parallelism), the pass size, LoRA adapters, torch.compile and gradient
checkpointing. methods.llm.train puts them together.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from methods.llm.options import BF16_PURE

if TYPE_CHECKING:
    from methods.llm.config import LLMConfig
    from methods.llm.examples import Example


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


def passes_per_micro_batch(config: LLMConfig, model, examples: list[Example], cf_len: int, device: str) -> int:
    """k, the micro-batches one forward/backward pass joins (methods.llm.sizing): from
    `device_batch` when set (k * micro_batch with k dividing grad_accum, which LLMConfig checks),
    else 1 on a CPU and the memory rule on a GPU."""
    from methods.llm import sizing

    mb, accum = config.micro_batch, config.grad_accum
    if config.device_batch:
        return config.device_batch // mb
    free = sizing.free_memory(device)
    if free is None:
        return 1
    longest = max(examples, key=lambda e: len(e.prompt) + len(e.response))
    objective = config.objective()
    return sizing.training_passes(
        sizing.Shape.of(model),
        mb,
        accum,
        len(longest.prompt) + len(longest.response),
        max(len(e.response) for e in examples),
        counterfactual=objective.needs_counterfactual,
        free_bytes=free,
        pure_bf16=config.precision == BF16_PURE,
        checkpointing=config.gradient_checkpointing,
        cf_tokens=cf_len + max(len(e.response) for e in examples),
        gradient_copies=2 if objective.crafted else 0,  # methods.llm.gradcraft.TaskGradients: one row per CFT term
    )


COMPILE_OPTIONS = {"dynamic": True}  # torch.compile's arguments: widths change with every micro-batch


def backward_twice(compiled: bool):
    """A context around a forward and the two backward passes of its graph (balance=gradcraft: L_f
    with the graph kept, then L_cf). A compiled module's backward (AOTAutograd) may donate its
    saved buffers to the first backward and then refuses the second; with donated buffers off,
    as torch's own message advises (read when compiling and at each backward), both run."""
    import contextlib

    if not compiled:
        return contextlib.nullcontext()
    import torch._functorch.config

    return torch._functorch.config.patch(donated_buffer=False)


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


def add_lora(model, config: LLMConfig):
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


@contextlib.contextmanager
def no_progress_bars():
    """transformers' progress bars off for the block: its "Loading weights" bar on every load, and
    the GGUF reader's de-quantizing bar (plain tqdm, which the switch does not reach)."""
    import functools

    from transformers.utils import logging as hf_logging

    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_reader
    except ImportError:  # pragma: no cover (an older transformers)
        gguf_reader = None
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    bar = getattr(gguf_reader, "tqdm", None)
    if bar is not None:
        gguf_reader.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        if bar is not None:
            gguf_reader.tqdm = bar
        if was:
            hf_logging.enable_progress_bar()
