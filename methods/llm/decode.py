"""Decoding for the LLM methods (protocol section 5).

- `generate_beams`: free beam search (bigrec, cft and its ablations); the generated texts are
  grounded to catalogue items afterwards (see ground.py).
- `TitleTrie` + `constrained_beam_search`: beam search that may only follow the token sequence of
  some catalogue title (sft by default, any LLM method with decoding=constrained; D3 style); each
  finished beam names one item. D3's text-free assistant (methods.llm.tfa) can be mixed into its
  steps (own search only). The trie holds exactly the labelled responses the model was
  trained on in the run's prompt format (`PromptFormat.response_ids`, methods.llm.prompts): the
  quoted title + EOS in "quoted", title + closing quote + EOS in "title-close".

Prompts are tokenised exactly as in training (`prompts.prompt_ids`, no special tokens added) and
left-padded by hand with EOS as the pad token (masked), so every batch row ends at the same
position and the generated part of every row starts at the batch's common prompt length. The
tokenizer itself is not touched.

Both searches have two implementations, chosen by `search` (the methods' `search` setting):
- "own" (the default): methods.llm.beam, a batched beam search that runs the prompt prefill once
  per prompt (transformers runs it once per beam) and applies the title trie as tensors on the
  model's device (transformers calls a Python function per beam per step). It replays
  transformers' beam search step by step and returns the same beams in the same order (the tests
  compare the two, tests/test_llm_beam.py); only the prefill's batch differs, which may move
  scores by float rounding (about 1e-6 on the CPU).
- "transformers": transformers' own beam search (`model.generate`), the reference, with an
  explicit, complete generation configuration: the model's `generation_config` (which for chat
  checkpoints carries sampling settings and a repetition penalty) is swapped for a blank one during
  the call, so nothing but the values set here takes part.

Reading the beams of transformers 5's beam search (checked against 5.24; the own search returns
the same): the search keeps `num_beams` result slots initialised to a score of -1e9, and the beams
other than the first start at -1e9 too. When fewer titles than beams can be reached (a small
catalogue or a short prefix), slots that no real beam filled come back, after the real ones,
holding beams descended from those -1e9 starts (mostly copies of real beams) or even unfinished
running beams, all scored about -1e9 (float32 cannot tell -1e9 + log p from -1e9). With a
catalogue of thousands of titles every slot holds a real beam.
So the output's fill value is set to -1 (no token has it) to see exactly where each returned
beam ends: a beam ending with EOS names its title, a beam without EOS that used all
`max_new_tokens` was cut by the limit (counted invalid), and anything shorter without EOS is
not a finished beam and is skipped; copies are removed with the other duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from transformers import GenerationConfig

from bench.progress import step_task
from methods.llm import prompts as P
from methods.llm.beam import FlatTrie, StepHook, beam_search
from methods.llm.options import OWN, SEARCHES, check_choice
from methods.llm.prompts import PromptFormat
from methods.llm.tfa import ItemTree, TextFreeAssistant

_FILL = -1


# ----------------------------------------------------------------------------------------------
# shared helpers


def _device_of(model) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _eval_mode(model) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        if was_training:
            model.train()


@contextmanager
def _blank_generation_config(model) -> Iterator[None]:
    """Hide the model's own generation defaults so only the explicit configuration applies."""
    saved = getattr(model, "generation_config", None)
    model.generation_config = GenerationConfig()
    try:
        yield
    finally:
        model.generation_config = saved


def _length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), to keep padding small."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def _left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


class _KnownFill(logging.Filter):
    """transformers warns of every negative pad_token_id; ours (_FILL) is negative on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(
            "The following generation flags are not valid and may be ignored: ['pad_token_id']"
        )


logging.getLogger("transformers.generation.configuration_utils").addFilter(_KnownFill())


def _beam_config(tokenizer, num_beams: int, num_return: int, max_new_tokens: int, length_penalty: float) -> GenerationConfig:
    eos = tokenizer.eos_token_id
    return GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=num_return,
        length_penalty=length_penalty,
        early_stopping=False,
        max_new_tokens=max_new_tokens,
        min_new_tokens=0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        use_cache=True,
        eos_token_id=eos,
        # fill value of the output after a beam's end; never fed to the model (inputs are padded
        # by hand and masked), so it can be an id no token has: ends of beams stay unambiguous
        pad_token_id=_FILL,
        return_dict_in_generate=False,
        output_scores=False,
    )


def _check_search(search: str) -> str:
    return check_choice("search", search, SEARCHES)


def _run_batch(
    model, ids, mask, config: GenerationConfig, search: str, trie: TitleTrie | None = None, step_hook: StepHook | None = None
) -> list[list[int]]:
    """The generated part of the `num_return_sequences` returned beams of every prompt of a batch
    (batch * num_return rows, best first per prompt, `_FILL` after a beam's end), by the own search
    (with `step_hook` after the trie constraint) or by transformers' (with the trie as
    prefix_allowed_tokens_fn)."""
    start = ids.shape[1]
    if search == OWN:
        result = beam_search(
            model,
            ids,
            mask,
            num_beams=config.num_beams,
            num_return=config.num_return_sequences,
            max_new_tokens=config.max_new_tokens,
            eos_token_id=config.eos_token_id,
            length_penalty=config.length_penalty,
            trie=None if trie is None else trie.flat(ids.device),
            fill=_FILL,
            step_hook=step_hook,
        )
        return result.sequences.reshape(-1, result.sequences.shape[-1]).tolist()
    allowed_tokens = None
    if trie is not None:
        eos_only = [trie.eos]

        def allowed_tokens(_batch_id: int, sent: torch.Tensor) -> list[int]:
            return trie.allowed(sent[start:].tolist()) or eos_only

    seqs = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, prefix_allowed_tokens_fn=allowed_tokens)
    return seqs[:, start:].tolist()


def _strip_fill(ids: list[int]) -> list[int]:
    while ids and ids[-1] == _FILL:
        ids = ids[:-1]
    return ids


def _cut_at_eos(ids: list[int], eos: int, keep_eos: bool) -> list[int]:
    ids = _strip_fill(ids)
    if eos in ids:
        j = ids.index(eos)
        return ids[: j + 1] if keep_eos else ids[:j]
    return ids


# ----------------------------------------------------------------------------------------------
# free beam search


def generate_beams(
    model,
    tokenizer,
    prompts: list[str],
    num_beams: int = 5,
    num_return: int = 5,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress=None,
    *,
    search: str = OWN,
) -> list[list[str]]:
    """Free beam search (greedy, length penalty 1.0). Per prompt the `num_return` generated
    responses, best first, each decoded up to (excluding) the first EOS. `search`: "own"
    (methods.llm.beam) or "transformers" (model.generate), with equal results."""
    _check_search(search)
    if num_return > num_beams:
        raise ValueError(f"num_return ({num_return}) cannot exceed num_beams ({num_beams})")
    eos = tokenizer.eos_token_id
    device = _device_of(model)
    rows = [P.prompt_ids(tokenizer, p) for p in prompts]
    out: list[list[str]] = [[] for _ in prompts]
    batches = _length_sorted_batches([len(r) for r in rows], batch_size)
    config = _beam_config(tokenizer, num_beams, num_return, max_new_tokens, length_penalty=1.0)
    with _eval_mode(model), _blank_generation_config(model), step_task(progress, "beam search", len(batches)) as task:
        for batch in batches:
            ids, mask = _left_pad([rows[i] for i in batch], eos, device)
            gen = _run_batch(model, ids, mask, config, search)
            for j, i in enumerate(batch):
                for b in range(num_return):
                    toks = _cut_at_eos(gen[j * num_return + b], eos, keep_eos=False)
                    out[i].append(tokenizer.decode(toks, skip_special_tokens=True, clean_up_tokenization_spaces=False))
            task.advance()
    return out


# ----------------------------------------------------------------------------------------------
# constrained beam search over catalogue titles


class TitleTrie:
    """Prefix tree over the response token sequences of a catalogue (`fmt.response_ids` in the
    run's prompt format: the labelled response, EOS last).

    Item id = position of the title in `titles`. Titles are unique strings; should two of them
    tokenise to the same ids, the first keeps the sequence and `collisions` counts the others."""

    def __init__(self, fmt: PromptFormat, titles: Sequence[str]):
        self._start(fmt.eos)
        for item, title in enumerate(titles):
            self.add(fmt.response_ids(title), item)

    @classmethod
    def from_sequences(cls, sequences: Sequence[Sequence[int]], eos: int) -> TitleTrie:
        trie = cls.__new__(cls)
        trie._start(eos)
        for item, seq in enumerate(sequences):
            trie.add(seq, item)
        return trie

    def _start(self, eos: int) -> None:
        self.eos = eos
        self._root: dict = {}
        self._items: dict[tuple[int, ...], int] = {}
        self._sequences: list[tuple[int, ...]] = []  # every item's, in item order (collisions too)
        self._flat: dict[torch.device, FlatTrie] = {}
        self._trees: dict[torch.device, ItemTree] = {}
        self.collisions = 0

    def add(self, sequence: Sequence[int], item: int) -> None:
        """Items are added in id order (item == the number added before)."""
        key = tuple(int(t) for t in sequence)
        self._sequences.append(key)
        self._flat.clear()
        self._trees.clear()
        if key in self._items:
            self.collisions += 1
            return
        self._items[key] = item
        node = self._root
        for t in key:
            node = node.setdefault(t, {})

    def flat(self, device) -> FlatTrie:
        """The trie as tensors on `device` for the own search (built once per device)."""
        device = torch.device(device)
        if device not in self._flat:
            self._flat[device] = FlatTrie.build(self._root, self.eos, device)
        return self._flat[device]

    def item_tree(self, device) -> ItemTree:
        """Every item's node on `flat(device)` (D3's text-free assistant, methods.llm.tfa; built
        once per device; items whose sequences collide share a node)."""
        device = torch.device(device)
        if device not in self._trees:
            self._trees[device] = ItemTree.build(self.flat(device), self._sequences)
        return self._trees[device]

    def _node(self, prefix: Sequence[int]) -> dict | None:
        node = self._root
        for t in prefix:
            node = node.get(int(t))
            if node is None:
                return None
        return node

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Tokens that extend `prefix` towards some title; [] when none does (a dead end or a
        complete sequence)."""
        node = self._node(prefix)
        return list(node) if node else []

    def item_of(self, sequence: Sequence[int]) -> int | None:
        """Item id of a complete sequence (ending with EOS), else None."""
        return self._items.get(tuple(int(t) for t in sequence))

    def __len__(self) -> int:
        return len(self._items)


def constrained_beam_search(
    model,
    fmt: PromptFormat,
    prompts: list[str],
    titles: list[str],
    num_beams: int = 10,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress=None,
    trie: TitleTrie | None = None,
    *,
    search: str = OWN,
    assistant: TextFreeAssistant | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Beam search restricted to catalogue titles (D3 style: no length normalisation, all
    `num_beams` finished beams returned). Returns ((n, num_beams) int64 item ids best first, -1
    where fewer distinct items finished, duplicates dropped keeping the first; (n,) int32 number
    of returned beams naming no catalogue item, e.g. cut by `max_new_tokens` before EOS).

    The prompts must end where the labelled response of `fmt` starts (examples.inference_prompts
    with the same format). `trie` may be passed to reuse one built for the same format and titles.
    `assistant`: D3's text-free assistant mixed into every step of the own search, its scores
    asked for one batch of prompts at a time (their positions in `prompts`)."""
    eos = fmt.eos
    if assistant is not None and search != OWN:
        raise ValueError("D3's text-free assistant runs in the own beam search only; use search=own")
    if trie is None:
        trie = TitleTrie(fmt, titles)
    device = _device_of(model)
    rows = [fmt.ids(p) for p in prompts]
    items = np.full((len(prompts), num_beams), -1, dtype=np.int64)
    invalid = np.zeros(len(prompts), dtype=np.int32)
    batches = _length_sorted_batches([len(r) for r in rows], batch_size)
    config = _beam_config(fmt.tokenizer, num_beams, num_beams, max_new_tokens, length_penalty=0.0)

    with _eval_mode(model), _blank_generation_config(model), step_task(progress, "constrained beam search", len(batches)) as task:
        for batch in batches:
            ids, mask = _left_pad([rows[i] for i in batch], eos, device)
            hook = None if assistant is None else assistant.step_hook(trie.item_tree(device), batch)
            gen = _run_batch(model, ids, mask, config, search, trie, hook)
            for j, i in enumerate(batch):
                found: list[int] = []
                for b in range(num_beams):
                    toks = _strip_fill(gen[j * num_beams + b])
                    if eos in toks:
                        item = trie.item_of(toks[: toks.index(eos) + 1])
                    elif len(toks) >= max_new_tokens:
                        item = None  # cut by the length limit before EOS
                    else:
                        # not a finished beam: an unfilled slot (fewer finished beams than
                        # num_beams, small catalogues) or a running beam the beam bookkeeping
                        # let into an unfilled slot
                        continue
                    if item is None:
                        invalid[i] += 1
                    elif item not in found:
                        found.append(item)
                items[i, : len(found)] = found
            task.advance()
    return items, invalid
