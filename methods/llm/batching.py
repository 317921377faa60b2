"""Micro-batches for the LLM training loop: which examples go together, and how they are padded.

    sampler = EpochBatches(len(examples), micro_batch, seed)    # set sampler.epoch before each pass
    batch = collate([examples[i] for i in index], cf_prompt, pad_id, counterfactual=True)

Sequences are padded on the right (the tokenizer pads on the left, for generation); logits are
taken at label positions only, so `collate` returns those positions beside the ids. Each epoch's
order is a permutation drawn from (seed, epoch), so a resumed run sees the same batches as the
uninterrupted one.
"""

from __future__ import annotations

import math

import numpy as np

from methods.llm.examples import Example


def collate(examples: list[Example], cf_prompt: list[int], pad_id: int, counterfactual: bool) -> dict:
    """Right-padded factual (and counterfactual) sequences with their label coordinates: the
    hidden state at column c predicts the token at column c + 1, so a response occupying columns
    [P, P + R) is predicted from columns [P - 1, P + R - 1)."""
    import torch

    def pack(prefixes: list[list[int]]):
        seqs = [p + e.response for p, e in zip(prefixes, examples)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        rows, cols = [], []
        for b, (p, s) in enumerate(zip(prefixes, seqs)):
            ids[b, : len(s)] = torch.tensor(s)
            mask[b, : len(s)] = 1
            cols.extend(range(len(p) - 1, len(s) - 1))
            rows.extend([b] * (len(s) - len(p)))
        return ids, mask, torch.tensor(rows), torch.tensor(cols)

    ids, mask, rows, cols = pack([e.prompt for e in examples])
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "rows": rows,
        "cols": cols,
        "labels": torch.tensor([t for e in examples for t in e.response]),
        "example_index": rows.clone(),
    }
    if counterfactual:
        cf_ids, cf_mask, cf_rows, cf_cols = pack([list(cf_prompt)] * len(examples))
        batch.update(cf_input_ids=cf_ids, cf_attention_mask=cf_mask, cf_rows=cf_rows, cf_cols=cf_cols)
    return batch


class EpochBatches:
    """Micro-batches of a seeded permutation that changes with `epoch` (set before iterating).
    A batch sampler for torch's DataLoader; accelerate shards it over processes."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool = True):
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.drop_last = False  # read by accelerate when it shards the sampler
        self.epoch = 0

    def __iter__(self):
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        for start in range(0, self.n, self.batch_size):
            yield order[start : start + self.batch_size].tolist()

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)
