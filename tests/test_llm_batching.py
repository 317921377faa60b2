"""Micro-batches of the LLM training loop (methods.llm.batching): the length-grouped order, its
sharding over processes, and the padding of the factual and counterfactual sequences. No model."""

from __future__ import annotations

import numpy as np
import pytest

from methods.llm.batching import MEGABATCH, EpochBatches, collate, padding
from methods.llm.examples import Example


def skewed_lengths(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Most sequences short, a long tail (as histories of very different lengths give)."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.8, rng.integers(20, 60, n), rng.integers(150, 500, n))


def order(sampler: EpochBatches, epoch: int) -> list[list[int]]:
    sampler.epoch = epoch
    return [list(b) for b in sampler]


@pytest.mark.parametrize("n, batch_size", [(2000, 16), (1003, 8), (5, 8), (16, 8)])
def test_grouped_order_is_a_seeded_permutation_per_epoch(n, batch_size):
    lengths = skewed_lengths(n)
    sampler = EpochBatches(n, batch_size, seed=3, lengths=lengths)
    first = order(sampler, 0)
    assert len(first) == len(sampler) == -(-n // batch_size)
    flat = [i for b in first for i in b]
    assert sorted(flat) == list(range(n))  # every example exactly once
    assert all(len(b) == batch_size for b in first[:-1]) and 0 < len(first[-1]) <= batch_size  # only the last is short
    assert order(EpochBatches(n, batch_size, seed=3, lengths=lengths), 0) == first  # same (seed, epoch): same batches
    assert order(sampler, 0) == first
    if n > MEGABATCH * batch_size:  # (a smaller set is one chunk: its micro-batches are the same each epoch, their order not)
        assert order(sampler, 1) != first  # another epoch, another order
        assert order(EpochBatches(n, batch_size, seed=4, lengths=lengths), 0) != first  # another seed
    # the micro-batch holding the longest example comes first
    assert lengths.max() in lengths[first[0]]


def test_grouped_micro_batches_are_sorted_chunks_of_the_epoch_permutation():
    n, size = 2000, 8
    lengths = skewed_lengths(n)
    sampler = EpochBatches(n, size, seed=1, lengths=lengths)
    batches = order(sampler, 2)
    permutation = np.random.default_rng([1, 2]).permutation(n)  # the ungrouped order of that epoch
    chunk = MEGABATCH * size
    chunk_of = {int(i): k // chunk for k, i in enumerate(permutation)}
    for b in batches:
        assert len({chunk_of[i] for i in b}) == 1  # drawn from one chunk of the epoch's permutation
        assert list(lengths[b]) == sorted(lengths[b], reverse=True)
    # the micro-batches' order is shuffled, not chunk after chunk
    chunks = [chunk_of[b[0]] for b in batches]
    assert chunks != sorted(chunks)


def test_without_grouping_the_order_is_the_plain_permutation():
    n, size = 103, 8
    sampler = EpochBatches(n, size, seed=5)
    for epoch in (0, 1):
        permutation = np.random.default_rng([5, epoch]).permutation(n).tolist()
        assert order(sampler, epoch) == [permutation[s : s + size] for s in range(0, n, size)]
    assert order(EpochBatches(n, size, 0, shuffle=False), 0) == [list(range(s, min(s + size, n))) for s in range(0, n, size)]


def test_validation_order_is_sorted_by_length():
    lengths = skewed_lengths(101)
    batches = EpochBatches(101, 10, 0, shuffle=False, lengths=lengths).batches()
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(101))
    assert list(lengths[flat]) == sorted(lengths, reverse=True)


def test_grouping_reduces_padding_on_a_skewed_set():
    n, size = 2000, 16
    lengths = skewed_lengths(n)
    real, plain = padding(lengths, order(EpochBatches(n, size, seed=0), 0))
    real_g, grouped = padding(lengths, order(EpochBatches(n, size, seed=0, lengths=lengths), 0))
    assert real == real_g == lengths.sum()
    # measured: 581,571 padded tokens ungrouped, 10,947 grouped (53x fewer) for 192,845 real ones
    assert grouped < plain / 20, (plain, grouped)


def test_each_process_gets_its_shard_of_the_grouped_order():
    """accelerate's BatchSamplerShard hands process p every num_processes-th micro-batch; it
    assumes that only the last one is short (a short one in the middle would drop batches)."""
    from accelerate.data_loader import BatchSamplerShard

    n, size, processes = 1003, 8, 2  # 126 micro-batches, the last of 3 examples
    lengths = skewed_lengths(n)
    sampler = EpochBatches(n, size, seed=0, lengths=lengths)
    for epoch in (0, 1):
        sampler.epoch = epoch
        whole = sampler.batches()
        shards = [list(BatchSamplerShard(sampler, processes, p)) for p in range(processes)]
        assert shards == [list(BatchSamplerShard(sampler, processes, p)) for p in range(processes)]  # deterministic
        assert shards[0] == whole[0::2]  # 63 full micro-batches
        assert shards[1][:-1] == whole[1::2][:-1]  # 62 full ones, then the short last one...
        assert shards[1][-1] == whole[-1] + whole[0][: size - len(whole[-1])]  # ...completed from the start (even_batches)
        seen = {i for shard in shards for b in shard for i in b}
        assert seen == set(range(n))


def test_prepared_loader_follows_the_sampler_epoch():
    """The trainer sets sampler.epoch itself (a resumed run starts at its epoch); accelerate's
    prepared loader must not override it (EpochBatches has no set_epoch for that reason)."""
    import torch
    from accelerate.data_loader import prepare_data_loader

    n, size = 50, 4
    lengths = skewed_lengths(n)
    sampler = EpochBatches(n, size, seed=0, lengths=lengths)
    assert not hasattr(sampler, "set_epoch")
    loader = torch.utils.data.DataLoader(list(range(n)), batch_sampler=sampler, collate_fn=list)
    prepared = prepare_data_loader(loader, num_processes=1, process_index=0, put_on_device=False)
    for epoch in (3, 1):
        sampler.epoch = epoch
        assert [list(b) for b in prepared] == sampler.batches()


def test_counterfactual_sequences_are_padded_to_their_own_length():
    """A micro-batch whose factual prompts are far longer than the counterfactual prompt: the
    counterfactual sequences are cf prompt + response, padded to the longest of those, never to
    the factual width."""
    cf_prompt = [7, 8, 9]
    examples = [
        Example(prompt=list(range(10, 210)), response=[1, 2, 3, 4, 5]),
        Example(prompt=list(range(10, 150)), response=[1, 2]),
        Example(prompt=list(range(10, 40)), response=[6, 6, 6, 6, 6, 6, 6]),
    ]
    batch = collate(examples, cf_prompt, pad_id=0, counterfactual=True)
    assert batch["input_ids"].shape == (3, 205)  # the longest factual sequence: 200 + 5
    assert batch["cf_input_ids"].shape == (3, len(cf_prompt) + 7)  # cf prompt + the longest response
    for b, ex in enumerate(examples):
        n = len(cf_prompt) + len(ex.response)
        assert batch["cf_input_ids"][b, :n].tolist() == cf_prompt + ex.response
        assert batch["cf_attention_mask"][b].tolist() == [1] * n + [0] * (10 - n)
    # the label coordinates of both passes point at the same response tokens
    assert batch["input_ids"][batch["rows"], batch["cols"] + 1].tolist() == batch["labels"].tolist()
    assert batch["cf_input_ids"][batch["cf_rows"], batch["cf_cols"] + 1].tolist() == batch["labels"].tolist()


def test_lengths_must_match_the_examples():
    with pytest.raises(ValueError, match="lengths holds 3 values for 4 examples"):
        EpochBatches(4, 2, 0, lengths=[1, 2, 3])


def test_throughput_benchmark_answers_help_quickly():
    """benchmarks/llm_throughput.py is run by hand, never by the suite; it must at least start."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "llm_throughput.py"
    done = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--shape" in done.stdout and "--peak-flops" in done.stdout
