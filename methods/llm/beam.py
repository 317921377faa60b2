"""Batched beam search for the LLM methods (decode.py's `search="own"`), free or constrained to a
title trie, with the results of transformers' beam search (GenerationMixin._beam_search,
transformers 5.24) and a fraction of its cost.

Where it differs from `model.generate(num_beams=...)`:
- the prompt prefill runs once per prompt (left-padded batch, its attention mask, position ids
  from the mask) and its KV cache is then copied to the beams; transformers copies every prompt
  `num_beams` times before the first forward, so the prefill, most of the decoding time of short
  titles after long prompts, runs once per beam;
- the beams' KV cache (`_BeamLayer`) keeps the prompt part, the same for all beams of a prompt, in
  place and moves only the generated part when beams are reordered; transformers' DynamicCache
  copies the whole cache twice a step (appending a token, reordering);
- the constraint is the title trie flattened into tensors on the model's device (`FlatTrie`: per
  node a range of its allowed tokens and their child nodes), applied per step by a few gathers and
  two scatters into one vocabulary-wide -inf buffer per search (`_TrieMask`), with no Python per
  beam; transformers calls `prefix_allowed_tokens_fn` once per beam per step (a device
  synchronisation per call on a GPU) and allocates a fresh mask per step;
- padded prompts: the attention masks of the prefill and of every step are made once per search
  (`_Masks`, by transformers' own `create_causal_mask`) and passed as 4-D masks the model takes
  as they are; given a 2-D mask, transformers concatenates a column to it and rebuilds the 4-D
  mask at every step, after reading on the host whether it could leave it out;
- the loop synchronises with the host once per step, for the stopping test only, and on a GPU reads
  that test one step late (the step run after the stop is discarded on the device).

Host-sync budget (tests/test_llm_decode_syncs.py counts them with bench.syncs, on the CPU): per
search at most one sync per model forward (the stopping test; the prefill's forward counts as
step 0) plus two: the padding test before the prefill (is there any padding, i.e. a mask at all)
and the length of the returned beams at the end: a search of n forwards makes at most n + 2
syncs. With an attention that takes no 4-D mask (flash, flex) or a model with sliding-window
layers, transformers adds its own, one per step with padding (see `_Masks`).
The model is called with `cache=` (transformers >= 5.24; `past_key_values=` goes in 5.40).

Everything else is transformers' algorithm step by step, with the same tensor operations on tensors
of the same shapes, so that equal log-probabilities give bitwise equal choices, ties included:
- per prompt `num_beams` running beams, the first scored 0 and the others -1e9 at the start;
- each step: log-softmax of the last position's float32 logits, the constraint's -inf mask added
  (with transformers' fallback: a prompt none of whose beams has a finite allowed token gets the
  bare mask), the beams' scores added, the top 2 * num_beams candidates over (beam, token);
- a candidate ending with EOS (or reaching `max_new_tokens`) is finished: among the top
  `num_beams` candidates it may enter the prompt's `num_beams` result slots (initialised to -1e9)
  with its score divided by length ** length_penalty; the best `num_beams` unfinished candidates
  (finished ones pushed down by -1e9) run on;
- early stopping as transformers' `early_stopping=False`: a prompt stops taking results once its
  best running score (normalised at the current length) cannot beat its worst result, and the
  search ends when no prompt of the batch can improve or at `max_new_tokens`.
Only the prefill's batch differs (one row per prompt, not per beam), which changes the last bits
of some log-probabilities (matrix products of another shape): scores differ by about 1e-6 on the
CPU, so only candidates tied to that precision could be ordered differently; the tests find the
same beams in the same order in every case they run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer
from transformers.masking_utils import create_causal_mask

NEG = -1.0e9  # transformers' "minus infinity" for beam bookkeeping
DEAD = 0  # FlatTrie node of sequences off the trie or past a title's EOS: EOS only
ROOT = 1


# ----------------------------------------------------------------------------------------------
# the trie as tensors


@dataclass
class FlatTrie:
    """A token trie in CSR form on one device. Node n allows `tokens[start[n] : start[n] + count[n]]`
    leading to `children[...]` (same range). Every node allows at least one token: a node without
    children (a complete sequence, ending with EOS) and `DEAD` (anything off the trie) allow only
    EOS, leading to `DEAD`, which is what `decode.TitleTrie.allowed(prefix) or [eos]` gives.

    `widths[d]`: the most tokens any node at depth d allows (all running beams of a step are at the
    same depth or DEAD), so a step builds (beams, widths[d]) tables, not (beams, widest node)."""

    start: torch.Tensor  # (n_nodes,) int64
    count: torch.Tensor  # (n_nodes,) int64
    tokens: torch.Tensor  # (n_edges,) int64
    children: torch.Tensor  # (n_edges,) int64
    widths: tuple[int, ...]
    eos: int

    @classmethod
    def build(cls, root: Mapping, eos: int, device=None) -> FlatTrie:
        """From a nested dict trie ({token: {token: ...}}, as decode.TitleTrie keeps it)."""
        starts, counts, tokens, children, widths = [0, 0], [1, 0], [eos], [DEAD], []
        level = [(ROOT, root)]
        next_index = ROOT + 1
        while level:
            deeper, width = [], 1
            for index, node in level:
                starts[index] = len(tokens)
                if not node:
                    tokens.append(eos)
                    children.append(DEAD)
                    counts[index] = 1
                    continue
                for token, child in node.items():
                    tokens.append(int(token))
                    children.append(next_index)
                    starts.append(0)
                    counts.append(0)
                    deeper.append((next_index, child))
                    next_index += 1
                counts[index] = len(node)
                width = max(width, len(node))
            widths.append(width)
            level = deeper
        starts, counts, tokens, children = (
            torch.tensor(xs, dtype=torch.long, device=device) for xs in (starts, counts, tokens, children)
        )
        return cls(starts, counts, tokens, children, tuple(widths), int(eos))

    @property
    def device(self) -> torch.device:
        return self.tokens.device

    def width(self, depth: int) -> int:
        return self.widths[depth] if depth < len(self.widths) else 1

    def allowed(self, nodes: torch.Tensor, depth: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, children), each (len(nodes), width(depth)): the allowed tokens of each node and
        the nodes they lead to; unused entries hold token `pad` and child DEAD."""
        offsets = torch.arange(self.width(depth), device=nodes.device)
        used = offsets < self.count[nodes, None]
        index = torch.where(used, self.start[nodes, None] + offsets, 0)
        tokens = torch.where(used, self.tokens[index], pad)
        children = torch.where(used, self.children[index], DEAD)
        return tokens, children


class _TrieMask:
    """transformers' PrefixConstrainedLogitsProcessor on (batch * beams, vocab) log-probs, with the
    allowed tokens as a padded table (padding = vocab). The -inf mask over the vocabulary is one
    buffer per search: each step sets the last step's allowed tokens back to -inf and zeroes the
    new ones (two scatters of the table's size; no vocabulary-wide allocation or write)."""

    def __init__(self, batch: int, num_beams: int, vocab: int, dtype: torch.dtype, device):
        self.rows, self.vocab = batch * num_beams, vocab
        self.buffer = torch.full((self.rows, vocab + 1), -float("inf"), dtype=dtype, device=device)
        self.mask = self.buffer.view(batch, num_beams, vocab + 1)[:, :, :vocab]
        self.zeroed: torch.Tensor | None = None  # the tokens the buffer holds zeros at

    def __call__(self, log_probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        if self.zeroed is not None:
            self.buffer.scatter_(1, self.zeroed, -float("inf"))
        self.buffer.scatter_(1, tokens, 0.0)
        self.zeroed = tokens
        processed = log_probs.view(self.mask.shape) + self.mask
        # a prompt whose beams all have only -inf allowed scores gets the bare mask (score 0 each)
        unsatisfiable = processed.amax(dim=(1, 2), keepdim=True).isneginf()
        return torch.where(unsatisfiable, self.mask, processed).view(self.rows, self.vocab)


def _next_nodes(cand_beams, cand_tokens, tokens, children, batch: int, num_beams: int) -> torch.Tensor:
    """The trie node after each candidate (beam, token): the child of that beam's node along the
    token, DEAD when the token is not one of its allowed ones (a -inf pick)."""
    width = tokens.shape[-1]
    idx = cand_beams[..., None].expand(-1, -1, width)
    tok = torch.gather(tokens.view(batch, num_beams, width), 1, idx)
    child = torch.gather(children.view(batch, num_beams, width), 1, idx)
    match = tok == cand_tokens[..., None]
    return (child * match).sum(dim=-1)  # at most one match per row; DEAD is 0


# ----------------------------------------------------------------------------------------------
# the KV cache of the beams


class _BeamLayer(DynamicLayer):
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


def _beam_cache(cache: DynamicCache, num_beams: int, room: int) -> DynamicCache:
    """The prefilled `cache` (one row per prompt) made the cache of `num_beams` beams per prompt
    with room for `room` more tokens: its plain DynamicLayers become _BeamLayers (other layer
    kinds, e.g. sliding windows, are repeated to the beams as transformers does)."""
    if all(type(layer) is DynamicLayer and layer.get_seq_length() > 0 for layer in cache.layers):
        cache.layers = [_BeamLayer(layer, num_beams, room) for layer in cache.layers]
    else:
        cache.batch_repeat_interleave(num_beams)
    return cache


# ----------------------------------------------------------------------------------------------
# the attention masks of a padded batch


class _Masks:
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
            prefill = _causal_mask(config, dtype, attention_mask, cache, self.prompt)
            if isinstance(prefill, torch.Tensor) and prefill.dim() == 4:
                self.prefill, self.prepared = prefill.contiguous(), (config, dtype)

    def prefilled(self, cache: DynamicCache) -> None:
        """Make the steps' buffer, `cache` holding the prompts (one row per prompt)."""
        if self.prepared is None:
            buffer = self.full
        else:  # the queries of all steps after the prompt; the last one's row
            buffer = _causal_mask(*self.prepared, self.full, cache, self.steps)[:, :, -1:]
        self.buffer = buffer.repeat_interleave(self.num_beams, dim=0)
        self.full = None

    def step(self, t: int) -> torch.Tensor:
        """Step t's mask (t >= 1: keys of the prompt and of t generated tokens)."""
        return self.buffer[..., : self.prompt + t]


def _causal_mask(config, dtype, attention_mask: torch.Tensor, cache: DynamicCache, q_length: int):
    """transformers' mask for `q_length` queries after the tokens in `cache`, without its test for
    a mask that can be left out (a host sync)."""
    # create_causal_mask reads only the batch size, query length, dtype and device of the embeddings
    embeds = torch.empty((attention_mask.shape[0], q_length, 0), dtype=dtype, device=attention_mask.device)
    return create_causal_mask(
        config=config, inputs_embeds=embeds, attention_mask=attention_mask, cache=cache, allow_is_causal_skip=False
    )


# ----------------------------------------------------------------------------------------------
# the search


@dataclass
class BeamResult:
    """Per prompt the `num_return` best finished beams, best first, as transformers returns them:
    `sequences` (batch, num_return, length) generated ids only, `fill` after a beam's end, the
    length cropped to the longest returned beam of the batch; `scores` (batch, num_return) float32
    (the summed log-probabilities divided by length ** length_penalty; about -1e9 in slots that no
    real beam filled)."""

    sequences: torch.Tensor
    scores: torch.Tensor


def _forward(model, input_ids, cache, position_ids, attention_mask, keep_last: bool) -> torch.Tensor:
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


def beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    num_beams: int,
    max_new_tokens: int,
    eos_token_id: int,
    length_penalty: float = 1.0,
    num_return: int | None = None,
    trie: FlatTrie | None = None,
    fill: int = -1,
    stop_lag: int | None = None,
) -> BeamResult:
    """Beam search (greedy, early_stopping=False) after left-padded prompts `input_ids` (batch,
    length) with `attention_mask` (1 = token, 0 = padding), on the model's device; with `trie` only
    token sequences of the trie (then EOS) are followed. Call under torch.inference_mode() with the
    model in eval mode.

    `stop_lag`: the step whose stopping test is read on the host is this many steps behind (None:
    0 on the CPU, 1 elsewhere, so a GPU never waits for the test before the next step is queued);
    steps run after the stop change nothing."""
    num_return = num_beams if num_return is None else num_return
    if not 1 <= num_return <= num_beams:
        raise ValueError(f"num_return ({num_return}) must be between 1 and num_beams ({num_beams})")
    device = input_ids.device
    if stop_lag is None:
        stop_lag = 0 if device.type == "cpu" else 1
    batch, nb, steps = input_ids.shape[0], num_beams, max_new_tokens
    width = 2 * nb  # transformers' beams_to_keep with one EOS id
    rows = batch * nb
    if trie is not None and trie.device != device:
        raise ValueError(f"the trie is on {trie.device}, the prompts on {device}")

    # prefill, once per prompt (as generate prepares it: positions from the mask, no mask at all
    # when there is no padding, logits of the last position only); the padding test is the
    # prefill's one host sync
    attention_mask = attention_mask.to(device=device, dtype=torch.long)
    positions = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    cache = DynamicCache(config=model.config.get_text_config(decoder=True))  # as generate makes it
    masks = None if bool((attention_mask == 1).all()) else _Masks(model, attention_mask, cache, nb, steps)
    keep_last = getattr(model, "_supports_logits_to_keep", lambda: False)()
    log_probs = _forward(model, input_ids, cache, positions, None if masks is None else masks.prefill, keep_last)
    vocab = log_probs.shape[-1]
    log_probs = log_probs.repeat_interleave(nb, dim=0)
    if masks is not None:
        masks.prefilled(cache)
    cache = _beam_cache(cache, nb, steps)
    # the position of step t's input token (t >= 1) is column t - 1
    step_positions = positions[:, -1:].repeat_interleave(nb, dim=0) + torch.arange(1, steps, device=device)
    constrain = None if trie is None else _TrieMask(batch, nb, vocab, log_probs.dtype, device)

    running = torch.full((batch, nb, steps), fill, dtype=torch.long, device=device)
    running_scores = torch.zeros((batch, nb), dtype=torch.float32, device=device)
    running_scores[:, 1:] = NEG
    finished = running.clone()
    finished_scores = torch.full((batch, nb), NEG, dtype=torch.float32, device=device)
    finished_lengths = torch.zeros((batch, nb), dtype=torch.long, device=device)
    is_finished = torch.zeros((batch, nb), dtype=torch.bool, device=device)
    improvable = torch.ones((batch, 1), dtype=torch.bool, device=device)
    active = torch.ones((), dtype=torch.bool, device=device)  # the search has not stopped
    top_mask = torch.arange(width, device=device) < nb
    batch_offset = torch.arange(batch, device=device)[:, None] * nb
    nodes = torch.full((batch, nb), ROOT, dtype=torch.long, device=device) if trie is not None else None
    pending: list[torch.Tensor] = []  # stopping tests not read yet

    for t in range(steps):
        if t > 0:
            mask = None if masks is None else masks.step(t)
            inputs = running[:, :, t - 1].reshape(rows, 1)
            log_probs = _forward(model, inputs, cache, step_positions[:, t - 1 : t], mask, keep_last)
        if trie is not None:
            allowed, children = trie.allowed(nodes.view(rows), t, pad=vocab)
            log_probs = constrain(log_probs, allowed)
        scores = (log_probs.view(batch, nb, vocab) + running_scores[:, :, None]).reshape(batch, nb * vocab)

        # top 2 * num_beams continuations over (beam, token)
        cand_scores, cand_index = torch.topk(scores, k=width)
        cand_beams = cand_index // vocab
        cand_tokens = cand_index % vocab
        cand_seqs = torch.gather(running, 1, cand_beams[..., None].expand(-1, -1, steps))
        cand_seqs[:, :, t] = cand_tokens
        hits = cand_tokens == eos_token_id
        if t + 1 >= steps:  # the length limit finishes every candidate
            hits = torch.ones_like(hits)

        # the best num_beams unfinished candidates run on
        run_scores = cand_scores + hits.to(torch.float32) * NEG
        keep = torch.topk(run_scores, k=nb)[1]
        running = torch.gather(cand_seqs, 1, keep[..., None].expand(-1, -1, steps))
        running_scores = torch.gather(run_scores, 1, keep)
        beams = torch.gather(cand_beams, 1, keep)
        if trie is not None:
            nodes = torch.gather(_next_nodes(cand_beams, cand_tokens, allowed, children, batch, nb), 1, keep)

        # finished candidates among the top num_beams may enter the result slots
        just_finished = hits & top_mask[None, :]
        new_scores = cand_scores / ((t + 1) ** length_penalty)
        new_scores = new_scores + (~improvable).to(torch.float32) * NEG
        new_scores = new_scores + (~just_finished) * NEG
        merged_scores = torch.cat((finished_scores, new_scores), dim=1)
        best = torch.topk(merged_scores, k=nb)[1]
        new_finished = torch.gather(torch.cat((finished, cand_seqs), dim=1), 1, best[..., None].expand(-1, -1, steps))
        new_finished_scores = torch.gather(merged_scores, 1, best)
        new_lengths = torch.gather(torch.cat((finished_lengths, torch.full_like(cand_beams, t + 1)), dim=1), 1, best)
        new_is_finished = torch.gather(torch.cat((is_finished, just_finished), dim=1), 1, best)
        if stop_lag:  # steps after the stop leave the results as they were
            new_finished = torch.where(active, new_finished, finished)
            new_finished_scores = torch.where(active, new_finished_scores, finished_scores)
            new_lengths = torch.where(active, new_lengths, finished_lengths)
            new_is_finished = torch.where(active, new_is_finished, is_finished)
        finished, finished_scores, finished_lengths, is_finished = new_finished, new_finished_scores, new_lengths, new_is_finished

        if t + 1 >= steps:
            break
        cache.reorder_cache((beams + batch_offset).view(rows))

        # early stopping (transformers' heuristic for early_stopping=False)
        best_running = running_scores[:, :1] / ((t + 1) ** length_penalty)
        worst_finished = torch.where(is_finished, torch.min(finished_scores, dim=1, keepdim=True)[0], NEG)
        improvable = improvable & torch.any(best_running > worst_finished, dim=-1, keepdim=True)
        active = active & torch.any(improvable) & ~torch.all(hits)
        pending.append(active)
        if len(pending) > stop_lag and not bool(pending.pop(0)):
            break

    # the num_return best slots, cropped to the longest returned beam of the batch (as generate)
    length = int(finished_lengths[:, :num_return].max())
    return BeamResult(finished[:, :num_return, :length], finished_scores[:, :num_return])
