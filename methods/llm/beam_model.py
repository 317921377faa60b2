"""The model's side of the own beam search (methods.llm.beam): its forward passes on the beams' KV
cache, with attention masks made once per search.

- `ModelPasses`: the prefill once per prompt, then one token per beam and step;
- `BeamLayer` / `beam_cache`: the prefilled cache (one row per prompt) turned into the cache of the
  beams, the prompt part shared in place and only the generated part reordered;
- `StepMasks`: the 4-D attention masks of a left-padded batch for the prefill and every step,
  made by transformers' own `create_causal_mask` once, so the model neither rebuilds them nor
  syncs with the host to test whether it may leave them out.
"""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.masking_utils import create_causal_mask

# ----------------------------------------------------------------------------------------------
# the KV cache of the beams


class BeamLayer(DynamicLayer):
    """A DynamicLayer's cache for the beams of a batch of prompts, in one buffer with room for the
    generated tokens. The prompt part, the same for every beam of a prompt, is copied to the beams
    once and never moves: reordering beams (always among the beams of one prompt) moves only the
    generated part, and a new token is written in place. A DynamicLayer instead copies the whole
    cache twice a step (concatenating the new token, reordering the beams), with the same values."""

    def __init__(self, layer: DynamicLayer, num_beams: int, room: int):
        super().__init__()
        batch, _, self.prompt, _ = layer.keys.shape
        self.length = self.prompt
        self._buffers = []
        for states in (layer.keys, layer.values):
            heads, dim = states.shape[1], states.shape[-1]
            buffer = states.new_empty((batch * num_beams, heads, self.prompt + room, dim))
            buffer.view(batch, num_beams, heads, -1, dim)[:, :, :, : self.prompt] = states[:, None]
            self._buffers.append(buffer)
        self.dtype, self.device = layer.keys.dtype, layer.keys.device
        self.is_initialized = True
        self._views()

    def _views(self) -> None:
        self.keys = self._buffers[0][:, :, : self.length]
        self.values = self._buffers[1][:, :, : self.length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        new = key_states.shape[-2]
        for buffer, states in zip(self._buffers, (key_states, value_states)):
            buffer[:, :, self.length : self.length + new] = states
        self.length += new
        self._views()
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.length

    def reorder_cache(self, beam_idx: torch.Tensor) -> None:
        if self.length > self.prompt:
            for buffer in self._buffers:
                part = buffer[:, :, self.prompt : self.length]
                part.copy_(part.index_select(0, beam_idx))

    def _unsupported(self, *args, **kwargs):
        raise NotImplementedError("a beam search cache layer is only updated and reordered")

    crop = batch_repeat_interleave = batch_select_indices = reset = offload = prefetch = _unsupported


def beam_cache(cache: DynamicCache, num_beams: int, room: int) -> DynamicCache:
    """The prefilled `cache` (one row per prompt) made the cache of `num_beams` beams per prompt
    with room for `room` more tokens: its plain DynamicLayers become BeamLayers (other layer
    kinds, e.g. sliding windows, are repeated to the beams as transformers does)."""
    if all(type(layer) is DynamicLayer and layer.get_seq_length() > 0 for layer in cache.layers):
        cache.layers = [BeamLayer(layer, num_beams, room) for layer in cache.layers]
    else:
        cache.batch_repeat_interleave(num_beams)
    return cache


# ----------------------------------------------------------------------------------------------
# the attention masks of a padded batch


class StepMasks:
    """The attention masks of a search over left-padded prompts, made once per search: `prefill`
    for the prompts' forward, and `step(t)` for step t, a view of one buffer that covers the prompt
    and all generated tokens of every beam.

    Given a 2-D mask, the model makes its 4-D mask at every forward, and before that it tests
    whether the mask can be left out for the SDPA kernels (`masking_utils._ignore_causal_mask_sdpa`:
    `fast_all(padding_mask)`, read on the host): one host sync per step. A 4-D mask the model takes
    as it is (`create_causal_mask` returns a prepared 4-D mask unchanged), so the masks are made
    here, once per search, by `create_causal_mask` itself with that test turned off
    (`allow_is_causal_skip=False`), in the format of the model's attention (booleans for SDPA,
    0 / dtype minimum for eager): the prefill's (batch, 1, prompt, prompt) mask, the one the model
    would make, and the mask of the last generated position, (batch * beams, 1, 1, prompt +
    steps), whose first `prompt + t` columns are step t's mask (every earlier key is causally
    visible to the step's query). The values are those the model would make.

    Otherwise the buffer is the 2-D mask, and the model makes its masks, and syncs, at every step:
    for an attention whose mask is not a 4-D tensor (flash attention takes the 2-D mask and tests
    it with `.all()`, flex attention a BlockMask) and for models with other than full-attention
    layers (sliding windows: the model makes one mask per layer type)."""

    def __init__(self, model, attention_mask: torch.Tensor, cache: DynamicCache, num_beams: int, steps: int):
        batch, self.prompt = attention_mask.shape
        self.num_beams, self.steps = num_beams, steps
        # the 2-D mask of the prompts and every generated token
        self.full = attention_mask.new_ones((batch, self.prompt + steps))
        self.full[:, : self.prompt] = attention_mask
        self.prefill = attention_mask
        self.prepared: tuple | None = None  # (config, dtype) when the masks are made here
        self.buffer: torch.Tensor | None = None
        if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
            config = model.config.get_text_config(decoder=True)
            dtype = model.get_input_embeddings().weight.dtype
            prefill = causal_mask(config, dtype, attention_mask, cache, self.prompt)
            if isinstance(prefill, torch.Tensor) and prefill.dim() == 4:
                self.prefill, self.prepared = prefill.contiguous(), (config, dtype)

    def prefilled(self, cache: DynamicCache) -> None:
        """Make the steps' buffer, `cache` holding the prompts (one row per prompt)."""
        if self.prepared is None:
            buffer = self.full
        else:  # the queries of all steps after the prompt; the last one's row
            buffer = causal_mask(*self.prepared, self.full, cache, self.steps)[:, :, -1:]
        self.buffer = buffer.repeat_interleave(self.num_beams, dim=0)
        self.full = None

    def step(self, t: int) -> torch.Tensor:
        """Step t's mask (t >= 1: keys of the prompt and of t generated tokens)."""
        return self.buffer[..., : self.prompt + t]


def causal_mask(config, dtype, attention_mask: torch.Tensor, cache: DynamicCache, q_length: int):
    """transformers' mask for `q_length` queries after the tokens in `cache`, without its test for
    a mask that can be left out (a host sync)."""
    # create_causal_mask reads only the batch size, query length, dtype and device of the embeddings
    embeds = torch.empty((attention_mask.shape[0], q_length, 0), dtype=dtype, device=attention_mask.device)
    return create_causal_mask(
        config=config, inputs_embeds=embeds, attention_mask=attention_mask, cache=cache, allow_is_causal_skip=False
    )


# ----------------------------------------------------------------------------------------------
# the passes


def _log_softmax_last(model, input_ids, cache, position_ids, attention_mask, keep_last: bool) -> torch.Tensor:
    extra = {"logits_to_keep": 1} if keep_last else {}
    out = model(
        input_ids=input_ids,
        cache=cache,
        position_ids=position_ids,
        attention_mask=attention_mask,
        use_cache=True,
        return_dict=True,
        **extra,
    )
    logits = out.logits[:, -1, :].to(copy=True, dtype=torch.float32)
    del out
    return torch.nn.functional.log_softmax(logits, dim=-1)


class ModelPasses:
    """The model's passes of one search: the prefill once per prompt (as generate prepares it:
    positions from the mask, no mask at all when there is no padding, logits of the last position
    only; the padding test is its one host sync), then one token per beam and step on the beams'
    cache. `first`: the prefill's log-probabilities repeated to the beams, (batch * beams, vocab)."""

    def __init__(self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, num_beams: int, steps: int):
        device = input_ids.device
        self.model = model
        attention_mask = attention_mask.to(device=device, dtype=torch.long)
        positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        cache = DynamicCache(config=model.config.get_text_config(decoder=True))  # as generate makes it
        padded = not bool((attention_mask == 1).all())
        self.masks = StepMasks(model, attention_mask, cache, num_beams, steps) if padded else None
        self.keep_last = getattr(model, "_supports_logits_to_keep", lambda: False)()
        prefill_mask = None if self.masks is None else self.masks.prefill
        self.first = _log_softmax_last(model, input_ids, cache, positions, prefill_mask, self.keep_last)
        self.first = self.first.repeat_interleave(num_beams, dim=0)
        if self.masks is not None:
            self.masks.prefilled(cache)
        self.cache = beam_cache(cache, num_beams, steps)
        # the position of step t's input token (t >= 1) is column t - 1
        self.positions = positions[:, -1:].repeat_interleave(num_beams, dim=0) + torch.arange(1, steps, device=device)

    def step(self, t: int, tokens: torch.Tensor) -> torch.Tensor:
        """Step t's (t >= 1) log-probabilities after the beams' last tokens (batch * beams, 1)."""
        mask = None if self.masks is None else self.masks.step(t)
        return _log_softmax_last(self.model, tokens, self.cache, self.positions[:, t - 1 : t], mask, self.keep_last)
