"""Batch sizes for the device: how many examples one forward/backward pass holds in training, and
how many prompts one decoding batch holds. Neither changes what is computed, only how: the same
settings train the same model and decode the same lists on a CPU and on a GPU, up to rounding.

Training. `micro_batch` and `grad_accum` define the model (the effective batch, and the loss
normalised per micro-batch, methods.llm.loss.pass_loss). A pass may join k consecutive
micro-batches, k a divisor of grad_accum, and then accumulates over grad_accum / k passes: the same
gradient, computed with fewer, larger kernels. The setting `device_batch` (examples per pass) is
k * micro_batch; 0 chooses it:
- on a CPU, k = 1 (a larger pass is not faster there);
- on a GPU, the largest k whose estimated memory fits in 80 % of the memory free before training,
  after the model's own share: weights, gradients and AdamW state, 16 bytes per parameter (8 in
  bf16-pure), plus per example in the pass
      tokens x layers x (16 x hidden + 6 x intermediate) bytes of activations (factual and
      counterfactual tokens; bf16 activations, no checkpointing; a coarse upper estimate of a
      decoder layer's saved tensors with fused attention), plus
      label tokens x vocabulary x 10 bytes (bf16 logits, their float32 copy and softmax), twice
      with a counterfactual pass,
  for the longest example of the training set (the first micro-batch holds it, so a pass that
  does not fit fails at once). balance=gradcraft keeps two more float32 copies of the gradients
  (one per CFT term; the crafted update takes the gradients' own place): 8 bytes per parameter. Gradient checkpointing keeps one layer's activations: the layer
  factor then counts 1 layer plus the hidden states at every layer's input (2 x hidden bytes).
  With Qwen2-0.5B, 200-token examples and a counterfactual pass, on an H200 (141 GB) the rule
  joins the 4 micro-batches of 16 into one pass of 64 examples.

Decoding. `eval_batch_size` 0 chooses the prompts per decoding batch: 8 on a CPU; on a GPU as many
as fit in 50 % of the free memory (each prompt holds num_beams rows of KV cache for its prompt and
max_new_tokens, and about four float32 copies of the vocabulary-wide step scores), at most 256.
The own beam search syncs with the host once per step whatever the batch, so larger batches cost
almost nothing more per step.
"""

from __future__ import annotations

from dataclasses import dataclass

CPU_DECODE_BATCH = 8
MAX_DECODE_BATCH = 256
TRAIN_SHARE = 0.8  # of the free memory, for the training passes
DECODE_SHARE = 0.5  # of the free memory, for a decoding batch


@dataclass(frozen=True)
class Shape:
    """What the memory rule needs to know about a model."""

    parameters: int
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, model) -> Shape:
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
        hidden = int(config.hidden_size)
        heads = int(getattr(config, "num_attention_heads", 1) or 1)
        return cls(
            parameters=int(sum(p.numel() for p in base.parameters())),
            layers=int(config.num_hidden_layers),
            hidden=hidden,
            intermediate=int(getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden),
            vocab=int(config.vocab_size),
            kv_heads=int(getattr(config, "num_key_value_heads", heads) or heads),
            head_dim=int(getattr(config, "head_dim", None) or hidden // heads),
        )


def example_bytes(shape: Shape, tokens: int, label_tokens: int, counterfactual: bool, checkpointing: bool) -> int:
    """Estimated training memory of one example of `tokens` tokens (factual and counterfactual
    together) with `label_tokens` labels."""
    per_layer = 16 * shape.hidden + 6 * shape.intermediate
    if checkpointing:
        activations = tokens * (per_layer + shape.layers * 2 * shape.hidden)
    else:
        activations = tokens * shape.layers * per_layer
    logits = label_tokens * shape.vocab * 10 * (2 if counterfactual else 1)
    return activations + logits


def training_passes(
    shape: Shape,
    micro_batch: int,
    grad_accum: int,
    longest: int,
    longest_labels: int,
    counterfactual: bool,
    free_bytes: int,
    pure_bf16: bool = False,
    checkpointing: bool = False,
    cf_tokens: int = 0,
    gradient_copies: int = 0,
) -> int:
    """k, the micro-batches joined into one pass: the largest divisor of grad_accum whose pass
    fits (module docstring); 1 when even one micro-batch is estimated not to (it may still fit:
    the estimate errs high). `gradient_copies`: float32 copies of the gradients kept beside the
    model (balance=gradcraft: one per CFT term, methods.llm.gradcraft)."""
    static = shape.parameters * ((8 if pure_bf16 else 16) + 4 * gradient_copies)
    budget = TRAIN_SHARE * free_bytes - static
    tokens = longest + (cf_tokens if counterfactual else 0)
    one = example_bytes(shape, tokens, longest_labels, counterfactual, checkpointing)
    best = 1
    for k in range(1, grad_accum + 1):
        if grad_accum % k == 0 and k * micro_batch * one <= budget:
            best = k
    return best


def decode_batch(shape: Shape, prompt_tokens: int, num_beams: int, max_new_tokens: int, free_bytes: int) -> int:
    """Prompts per decoding batch on a GPU with `free_bytes` free (module docstring)."""
    kv = 2 * shape.layers * shape.kv_heads * shape.head_dim * 2 * (prompt_tokens + max_new_tokens)  # bf16 keys and values
    scores = 4 * shape.vocab * 4
    per_prompt = num_beams * (kv + scores)
    return int(max(1, min(MAX_DECODE_BATCH, DECODE_SHARE * free_bytes // max(per_prompt, 1))))


def free_memory(device: str) -> int | None:
    """Bytes free on a CUDA device, None on a CPU."""
    if not str(device).startswith("cuda"):
        return None
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)
