"""Batched beam search for the LLM methods (decode.py's `search="own"`), free or constrained to a
title trie, with the results of transformers' beam search (GenerationMixin._beam_search,
transformers 5.24) and a fraction of its cost.

Where it differs from `model.generate(num_beams=...)`:
- the prompt prefill runs once per prompt (left-padded batch, its attention mask, position ids
  from the mask) and its KV cache is then copied to the beams; transformers copies every prompt
  `num_beams` times before the first forward, so the prefill, most of the decoding time of short
  titles after long prompts, runs once per beam;
- the beams' KV cache (`beam_model.BeamLayer`) keeps the prompt part, the same for all beams of a
  prompt, in place and moves only the generated part when beams are reordered; transformers'
  DynamicCache copies the whole cache twice a step (appending a token, reordering);
- the constraint is the title trie flattened into tensors on the model's device (`FlatTrie`: per
  node a range of its allowed tokens and their child nodes), applied per step by a few gathers and
  two scatters into one vocabulary-wide -inf buffer per search (`_TrieMask`), with no Python per
  beam; transformers calls `prefix_allowed_tokens_fn` once per beam per step (a device
  synchronisation per call on a GPU) and allocates a fresh mask per step;
- padded prompts: the attention masks of the prefill and of every step are made once per search
  (`beam_model.StepMasks`, by transformers' own `create_causal_mask`) and passed as 4-D masks the
  model takes as they are; given a 2-D mask, transformers concatenates a column to it and rebuilds
  the 4-D mask at every step, after reading on the host whether it could leave it out;
- the loop synchronises with the host once per step, for the stopping test only, and on a GPU reads
  that test one step late (the step run after the stop is discarded on the device).

Host-sync budget (tests/test_llm_decode_syncs.py counts them with bench.syncs, on the CPU): per
search at most one sync per model forward (the stopping test; the prefill's forward counts as
step 0) plus two: the padding test before the prefill (is there any padding, i.e. a mask at all)
and the length of the returned beams at the end: a search of n forwards makes at most n + 2
syncs. With an attention that takes no 4-D mask (flash, flex) or a model with sliding-window
layers, transformers adds its own, one per step with padding (see `beam_model.StepMasks`).
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

A constrained search may take a step hook, called right after the trie constraint with the beams'
allowed tokens and child nodes (D3's text-free assistant, methods.llm.tfa): transformers has no
such place, so a hooked search has no reference there beyond the tests' direct implementation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from methods.llm.beam_model import ModelPasses

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
# the search

# a constrained step's hook: (log_probs (rows, vocab) after the trie mask, the beams' allowed
# tokens, their child nodes) -> the step's log-probabilities (methods.llm.tfa.AssistantMix)
StepHook = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class BeamResult:
    """Per prompt the `num_return` best finished beams, best first, as transformers returns them:
    `sequences` (batch, num_return, length) generated ids only, `fill` after a beam's end, the
    length cropped to the longest returned beam of the batch; `scores` (batch, num_return) float32
    (the summed log-probabilities divided by length ** length_penalty; about -1e9 in slots that no
    real beam filled)."""

    sequences: torch.Tensor
    scores: torch.Tensor


@dataclass
class _Beams:
    """The state of a search per prompt: the running beams and the result slots. `nodes`: each
    running beam's trie node (constrained searches only)."""

    running: torch.Tensor  # (batch, beams, steps) generated tokens, `fill` after the last
    running_scores: torch.Tensor  # (batch, beams) float32 summed log-probabilities
    finished: torch.Tensor  # (batch, beams, steps) the result slots
    finished_scores: torch.Tensor  # (batch, beams) float32, normalised by length ** length_penalty
    finished_lengths: torch.Tensor  # (batch, beams) int64
    is_finished: torch.Tensor  # (batch, beams) bool: a slot holds a real finished beam
    improvable: torch.Tensor  # (batch, 1) bool: the prompt still takes results
    active: torch.Tensor  # () bool: the search has not stopped
    nodes: torch.Tensor | None

    @classmethod
    def start(cls, batch: int, num_beams: int, steps: int, fill: int, device, constrained: bool) -> _Beams:
        running = torch.full((batch, num_beams, steps), fill, dtype=torch.long, device=device)
        running_scores = torch.zeros((batch, num_beams), dtype=torch.float32, device=device)
        running_scores[:, 1:] = NEG
        return cls(
            running=running,
            running_scores=running_scores,
            finished=running.clone(),
            finished_scores=torch.full((batch, num_beams), NEG, dtype=torch.float32, device=device),
            finished_lengths=torch.zeros((batch, num_beams), dtype=torch.long, device=device),
            is_finished=torch.zeros((batch, num_beams), dtype=torch.bool, device=device),
            improvable=torch.ones((batch, 1), dtype=torch.bool, device=device),
            active=torch.ones((), dtype=torch.bool, device=device),
            nodes=torch.full((batch, num_beams), ROOT, dtype=torch.long, device=device) if constrained else None,
        )


@dataclass
class _Candidates:
    """The top 2 * num_beams continuations (beam, token) of every prompt at one step."""

    scores: torch.Tensor  # (batch, 2 * beams) summed log-probabilities
    beams: torch.Tensor  # (batch, 2 * beams) the beam each continues
    tokens: torch.Tensor  # (batch, 2 * beams) its new token
    sequences: torch.Tensor  # (batch, 2 * beams, steps)
    hits: torch.Tensor  # (batch, 2 * beams) bool: finished (EOS, or the length limit)


def _candidates(state: _Beams, log_probs: torch.Tensor, t: int, steps: int, eos_token_id: int) -> _Candidates:
    batch, nb = state.running_scores.shape
    vocab = log_probs.shape[-1]
    scores = (log_probs.view(batch, nb, vocab) + state.running_scores[:, :, None]).reshape(batch, nb * vocab)
    cand_scores, cand_index = torch.topk(scores, k=2 * nb)  # transformers' beams_to_keep with one EOS id
    cand_beams = cand_index // vocab
    cand_tokens = cand_index % vocab
    cand_seqs = torch.gather(state.running, 1, cand_beams[..., None].expand(-1, -1, steps))
    cand_seqs[:, :, t] = cand_tokens
    hits = cand_tokens == eos_token_id
    if t + 1 >= steps:  # the length limit finishes every candidate
        hits = torch.ones_like(hits)
    return _Candidates(cand_scores, cand_beams, cand_tokens, cand_seqs, hits)


def _run_on(state: _Beams, cand: _Candidates, allowed, children) -> torch.Tensor:
    """The best num_beams unfinished candidates become the running beams (and move to their trie
    nodes); returns the beam each continues, (batch, beams)."""
    batch, nb = state.running_scores.shape
    steps = state.running.shape[-1]
    run_scores = cand.scores + cand.hits.to(torch.float32) * NEG
    keep = torch.topk(run_scores, k=nb)[1]
    state.running = torch.gather(cand.sequences, 1, keep[..., None].expand(-1, -1, steps))
    state.running_scores = torch.gather(run_scores, 1, keep)
    if state.nodes is not None:
        state.nodes = torch.gather(_next_nodes(cand.beams, cand.tokens, allowed, children, batch, nb), 1, keep)
    return torch.gather(cand.beams, 1, keep)


def _collect(state: _Beams, cand: _Candidates, t: int, length_penalty: float, lagged: bool) -> None:
    """Finished candidates among the top num_beams may enter the result slots; `lagged`: the
    stopping test is read late, so steps after the stop must leave the results as they were."""
    nb = state.running_scores.shape[1]
    steps = state.running.shape[-1]
    top_mask = torch.arange(2 * nb, device=cand.scores.device) < nb
    just_finished = cand.hits & top_mask[None, :]
    new_scores = cand.scores / ((t + 1) ** length_penalty)
    new_scores = new_scores + (~state.improvable).to(torch.float32) * NEG
    new_scores = new_scores + (~just_finished) * NEG
    merged_scores = torch.cat((state.finished_scores, new_scores), dim=1)
    best = torch.topk(merged_scores, k=nb)[1]
    merged = torch.cat((state.finished, cand.sequences), dim=1)
    lengths = torch.cat((state.finished_lengths, torch.full_like(cand.beams, t + 1)), dim=1)
    updated = (
        torch.gather(merged, 1, best[..., None].expand(-1, -1, steps)),
        torch.gather(merged_scores, 1, best),
        torch.gather(lengths, 1, best),
        torch.gather(torch.cat((state.is_finished, just_finished), dim=1), 1, best),
    )
    previous = (state.finished, state.finished_scores, state.finished_lengths, state.is_finished)
    if lagged:
        updated = tuple(torch.where(state.active, new, old) for new, old in zip(updated, previous))
    state.finished, state.finished_scores, state.finished_lengths, state.is_finished = updated


def _may_go_on(state: _Beams, cand: _Candidates, t: int, length_penalty: float) -> torch.Tensor:
    """transformers' early stopping for early_stopping=False: a prompt takes results while its best
    running score (normalised at the current length) can beat its worst result; the search goes
    on while some prompt can and not every candidate finished. A () bool on the device."""
    best_running = state.running_scores[:, :1] / ((t + 1) ** length_penalty)
    worst_finished = torch.where(state.is_finished, torch.min(state.finished_scores, dim=1, keepdim=True)[0], NEG)
    state.improvable = state.improvable & torch.any(best_running > worst_finished, dim=-1, keepdim=True)
    state.active = state.active & torch.any(state.improvable) & ~torch.all(cand.hits)
    return state.active


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
    step_hook: StepHook | None = None,
) -> BeamResult:
    """Beam search (greedy, early_stopping=False) after left-padded prompts `input_ids` (batch,
    length) with `attention_mask` (1 = token, 0 = padding), on the model's device; with `trie` only
    token sequences of the trie (then EOS) are followed. Call under torch.inference_mode() with the
    model in eval mode.

    `stop_lag`: the step whose stopping test is read on the host is this many steps behind (None:
    0 on the CPU, 1 elsewhere, so a GPU never waits for the test before the next step is queued);
    steps run after the stop change nothing. `step_hook` (constrained searches only): called at
    every step right after the trie constraint with (log_probs, allowed tokens, their child
    nodes), returns the log-probabilities the step goes on with (D3's text-free assistant)."""
    num_return = num_beams if num_return is None else num_return
    if not 1 <= num_return <= num_beams:
        raise ValueError(f"num_return ({num_return}) must be between 1 and num_beams ({num_beams})")
    if step_hook is not None and trie is None:
        raise ValueError("a step hook acts on the trie's allowed tokens; give the search a trie")
    device = input_ids.device
    if stop_lag is None:
        stop_lag = 0 if device.type == "cpu" else 1
    if trie is not None and trie.device != device:
        raise ValueError(f"the trie is on {trie.device}, the prompts on {device}")
    batch, nb, steps = input_ids.shape[0], num_beams, max_new_tokens
    rows = batch * nb

    forward = ModelPasses(model, input_ids, attention_mask, nb, steps)
    log_probs = forward.first
    vocab = log_probs.shape[-1]
    constrain = None if trie is None else _TrieMask(batch, nb, vocab, log_probs.dtype, device)
    state = _Beams.start(batch, nb, steps, fill, device, constrained=trie is not None)
    batch_offset = torch.arange(batch, device=device)[:, None] * nb
    pending: list[torch.Tensor] = []  # stopping tests not read yet
    allowed = children = None

    for t in range(steps):
        if t > 0:
            log_probs = forward.step(t, state.running[:, :, t - 1].reshape(rows, 1))
        if trie is not None:
            allowed, children = trie.allowed(state.nodes.view(rows), t, pad=vocab)
            log_probs = constrain(log_probs, allowed)
            if step_hook is not None:
                log_probs = step_hook(log_probs, allowed, children)
        cand = _candidates(state, log_probs, t, steps, eos_token_id)
        beams = _run_on(state, cand, allowed, children)
        _collect(state, cand, t, length_penalty, lagged=bool(stop_lag))
        if t + 1 >= steps:
            break
        forward.cache.reorder_cache((beams + batch_offset).view(rows))
        pending.append(_may_go_on(state, cand, t, length_penalty))
        if len(pending) > stop_lag and not bool(pending.pop(0)):
            break

    # the num_return best slots, cropped to the longest returned beam of the batch (as generate)
    length = int(state.finished_lengths[:, :num_return].max())
    return BeamResult(state.finished[:, :num_return, :length], state.finished_scores[:, :num_return])
