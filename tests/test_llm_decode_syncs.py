"""What the own beam search (methods.llm.beam) asks of the host, counted on the CPU with
bench.syncs: the operations that make a GPU host wait for the device, and the operations dispatched.

The budget (beam.py's docstring): at most one host sync per model forward (the stopping test; the
prefill's forward computes step 0) plus two per search, the padding test before the prefill and the
length of the returned beams at the end. Measured on the tiny model (2 layers), padded batch, per
step after the prefill: 1 sync (2 when the model got a 2-D mask and tested it on the host at every
step); 224 operations free (5 beams) and 254 constrained (10 beams, 200 titles), of which 82 and
112 the search's own, the rest the model's forward (before the masks were made once per search:
255 and 287, the forward 172 of them).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import replace

import pytest
import torch

from bench.data.cards import DatasetCard
from bench.syncs import SYNCING, count_host_syncs
from methods.llm import prompts as P
from methods.llm.beam import beam_search
from methods.llm.decode import TitleTrie, _left_pad
from methods.llm.models import load_tiny
from methods.llm.prompts import PromptFormat

TITLES = ["Red toy car", "Red toy truck", "Red toy", "Blue ball", '12" Doll', "Puzzle box"]
PROMPTS = [  # "title-close" prompts of very different lengths: a padded batch
    'Below is an instruction.\n\n### Response:\n"',
    "Below is an instruction with a much longer body of words in it. " * 4 + '\n\n### Response:\n"',
    'x"',
]
WORDS = ["Red", "toy", "car", "truck", "Blue", "ball", "Doll", "Puzzle", "box", "instruction", "body", "words"]
TITLE_CLOSE = PromptFormat(
    None, DatasetCard(name="toys", source="amazon", noun="toy", noun_plural="toys", verb="bought"), "title-close", 1024
)
SEARCH_SYNCS = 2  # per search: the padding test before the prefill, the returned length at the end
STEP_SYNCS = 1  # per model forward: the stopping test
OWN_OPS_PER_STEP = 150  # the search's own operations per step, model forward excluded (about 100)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    loaded = load_tiny([*TITLES, *PROMPTS], tmp_path_factory.mktemp("cache"), seed=0)
    loaded.model.eval()
    return loaded.model, loaded.tokenizer


def bushy_titles(n: int) -> list[str]:
    """n distinct titles of 1-5 words sharing first words (many branches per step)."""
    import random

    rng = random.Random(0)
    out: dict[str, None] = {}
    while len(out) < n:
        out[" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))] = None
    return list(out)


def syncs_of(counts) -> int:
    """Host syncs; under inference mode `.item()` / `int(t)` dispatch aten.item, which
    bench.syncs does not list (it lists aten._local_scalar_dense, what they dispatch otherwise)."""
    return counts.syncs + (0 if "aten.item" in SYNCING else counts.by_op.get("aten.item", 0))


@contextmanager
def forwards_counted(model):
    """[number of model forwards, operations dispatched inside them] while the block runs."""
    seen = [0, 0]
    state = {}

    def before(_module, _args):
        seen[0] += 1
        state["start"] = state["counts"].ops

    def after(_module, _args, _out):
        seen[1] += state["counts"].ops - state["start"]

    hooks = [model.register_forward_pre_hook(before), model.register_forward_hook(after)]
    try:
        yield seen, state
    finally:
        for hook in hooks:
            hook.remove()


def counted_search(model, tok, prompts, *, trie=None, num_beams, max_new_tokens, length_penalty, stop_lag):
    """(host syncs, operations, model forwards, operations inside the forwards) of one search."""
    ids, mask = _left_pad([P.prompt_ids(tok, p) for p in prompts], tok.eos_token_id, "cpu")
    with forwards_counted(model) as (seen, state), torch.inference_mode(), count_host_syncs() as counts:
        state["counts"] = counts
        beam_search(
            model,
            ids,
            mask,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            length_penalty=length_penalty,
            trie=None if trie is None else trie.flat("cpu"),
            stop_lag=stop_lag,
        )
    return syncs_of(counts), counts.ops, seen[0], seen[1]


@pytest.mark.parametrize("stop_lag", [0, 1])
@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("constrained", [True, False])
def test_at_most_one_host_sync_per_step(tiny, constrained, padded, stop_lag):
    """Searches that stop early and searches cut by the limit, padded batches and not: syncs <=
    forwards + 2."""
    model, tok = tiny
    prompts = PROMPTS if padded else [PROMPTS[0]] * 2
    trie = TitleTrie(replace(TITLE_CLOSE, tokenizer=tok), bushy_titles(60)) if constrained else None
    for max_new_tokens in (1, 6, 40):
        syncs, _, forwards, _ = counted_search(
            model,
            tok,
            prompts,
            trie=trie,
            num_beams=6,
            max_new_tokens=max_new_tokens,
            length_penalty=0.0 if constrained else 1.0,
            stop_lag=stop_lag,
        )
        assert 1 <= forwards <= max_new_tokens
        assert syncs <= STEP_SYNCS * forwards + SEARCH_SYNCS, (max_new_tokens, syncs, forwards)


@pytest.mark.parametrize("constrained", [True, False])
def test_each_step_costs_one_sync_and_a_bounded_number_of_operations(tiny, constrained):
    """Two searches that run to their limit (4 and 8 steps) on a padded batch: the 4 more steps
    cost exactly 4 more syncs, and the search's own operations per step stay bounded (no
    operations per beam, none growing with the step)."""
    model, tok = tiny
    trie = TitleTrie(replace(TITLE_CLOSE, tokenizer=tok), bushy_titles(200)) if constrained else None
    runs = [
        counted_search(
            model,
            tok,
            PROMPTS,
            trie=trie,
            num_beams=10 if constrained else 5,
            max_new_tokens=steps,
            length_penalty=0.0 if constrained else 1.0,
            stop_lag=1,
        )
        for steps in (4, 8)
    ]
    (syncs_4, ops_4, forwards_4, model_ops_4), (syncs_8, ops_8, forwards_8, model_ops_8) = runs
    assert (forwards_4, forwards_8) == (4, 8)  # both ran to the limit
    assert syncs_8 - syncs_4 == 4 * STEP_SYNCS
    assert syncs_8 <= 8 * STEP_SYNCS + SEARCH_SYNCS
    own_per_step = ((ops_8 - model_ops_8) - (ops_4 - model_ops_4)) / 4
    assert 0 < own_per_step <= OWN_OPS_PER_STEP


def test_decoding_passes_prepared_masks_and_the_cache_keyword(tiny):
    """Every forward gets the cache as `cache=` (no deprecated `past_key_values=`, no deprecation
    warning) and, on a padded batch with SDPA attention, a 4-D mask: the prefill's (batch, 1,
    prompt, prompt), then views of one buffer (batch * beams, 1, 1, prompt + t) of the same
    storage."""
    model, tok = tiny
    calls = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: calls.append(dict(kw)), with_kwargs=True)
    ids, mask = _left_pad([P.prompt_ids(tok, p) for p in PROMPTS], tok.eos_token_id, "cpu")
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("error", FutureWarning)
            beam_search(model, ids, mask, num_beams=3, max_new_tokens=5, eos_token_id=tok.eos_token_id, stop_lag=1)
    finally:
        hook.remove()
    assert len(calls) == 5
    assert all("past_key_values" not in kw and kw["cache"] is not None for kw in calls)
    batch, prompt = ids.shape
    assert calls[0]["attention_mask"].shape == (batch, 1, prompt, prompt)
    steps = [kw["attention_mask"] for kw in calls[1:]]
    assert [m.shape for m in steps] == [(batch * 3, 1, 1, prompt + t) for t in range(1, 5)]
    assert len({m.untyped_storage().data_ptr() for m in steps}) == 1
