"""Decoding and grounding of the LLM engine, on the tiny random Qwen2 model and its BPE tokenizer,
in both label layouts ("quoted": the prompt ends before the answer's opening quote; "title-close":
the prompt ends with it)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.cards import DatasetCard
from methods.llm import prompts as P
from methods.llm.decode import TitleTrie, constrained_beam_search, generate_beams
from methods.llm.ground import count_invalid, embed_texts, ground_by_l2, l2_distances
from methods.llm.models import load_tiny
from methods.llm.prompts import PromptFormat

TITLES = ["Red toy car", "Red toy truck", "Red toy", "Blue ball", '12" Doll', "Puzzle box"]
PROMPTS = [  # "title-close" prompts: they end with the answer's opening quote
    'Below is an instruction.\n\n### Response:\n"',
    'Below is an instruction with a much longer body of words in it.\n\n### Response:\n"',
    'x"',
]
LAYOUTS = ("quoted", "title-close")
CARD = DatasetCard(name="toys", source="amazon", noun="toy", noun_plural="toys", verb="bought")


def fmt_of(tok, layout: str) -> PromptFormat:
    """The prompt format decoding reads titles in (its card and cutoff play no part there)."""
    return PromptFormat(tok, CARD, layout, 1024)


def prompts_for(layout: str) -> list[str]:
    """PROMPTS as the layout ends them: "quoted" prompts stop before the opening quote."""
    return [p[:-1] for p in PROMPTS] if layout == "quoted" else PROMPTS


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The shared tiny random Qwen2 model with its BPE tokenizer, built on these titles and prompts."""
    loaded = load_tiny([*TITLES, *PROMPTS], tmp_path_factory.mktemp("cache"), seed=0)
    return loaded.model, loaded.tokenizer


# ---------------------------------------------------------------------------------------------- trie


def test_trie_allowed_tokens_with_shared_prefixes():
    eos = 0
    trie = TitleTrie.from_sequences([[5, 6, 7, eos], [5, 6, 8, eos], [5, eos], [9, eos]], eos=eos)
    assert set(trie.allowed([])) == {5, 9}
    assert set(trie.allowed([5])) == {6, eos}
    assert set(trie.allowed([5, 6])) == {7, 8}
    assert trie.allowed([5, 6, 7]) == [eos]
    assert trie.allowed([5, 6, 7, eos]) == []  # complete
    assert trie.allowed([3]) == [] and trie.allowed([5, 7]) == []  # dead ends
    assert [trie.item_of(s) for s in ([5, 6, 7, eos], [5, 6, 8, eos], [5, eos], [9, eos])] == [0, 1, 2, 3]
    assert trie.item_of([5, 6]) is None and trie.item_of([5, 6, 7]) is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_trie_from_tokenizer_follows_every_title(tiny, layout):
    _, tok = tiny
    trie = TitleTrie(fmt_of(tok, layout), TITLES)
    assert len(trie) == len(TITLES) and trie.collisions == 0
    for item, title in enumerate(TITLES):
        seq = P.response_ids(tok, title, layout=layout)
        assert seq[-1] == tok.eos_token_id
        for t in range(len(seq)):
            assert seq[t] in trie.allowed(seq[:t])
        assert trie.item_of(seq) == item
    # "Red toy", "Red toy car", "Red toy truck" share their first tokens
    shared = P.response_ids(tok, "Red toy", layout=layout)[:-2]
    assert len(trie.allowed(shared)) == 3


@pytest.mark.parametrize("layout", LAYOUTS)
def test_trie_holds_exactly_the_trained_responses(tiny, layout):
    """The trie's sequences are the labels training puts after the prompt, computed here directly
    with the tokenizer: tok('"' + title + '"') + EOS in "quoted", tok(title + '"') + EOS in
    "title-close"."""
    _, tok = tiny
    trie = TitleTrie(fmt_of(tok, layout), TITLES)
    text = (lambda t: '"' + t + '"') if layout == "quoted" else (lambda t: t + '"')
    expected = [tok(text(t), add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in TITLES]
    assert sorted(trie._items) == sorted(tuple(seq) for seq in expected)
    first = {seq[0] for seq in expected}
    assert set(trie.allowed([])) == first
    if layout == "quoted":  # every title starts with the opening quote's token
        assert first == {tok('"', add_special_tokens=False)["input_ids"][0]}


# ----------------------------------------------------------------------------------- beam searches


@pytest.mark.parametrize("layout", LAYOUTS)
def test_constrained_search_returns_only_catalogue_items(tiny, layout):
    model, tok = tiny
    prompts = prompts_for(layout)
    for beams in (3, 10):
        items, invalid = constrained_beam_search(model, fmt_of(tok, layout), prompts, TITLES, num_beams=beams, batch_size=2)
        assert items.shape == (len(prompts), beams) and items.dtype == np.int64
        assert invalid.shape == (len(prompts),) and invalid.dtype == np.int32
        assert (invalid == 0).all()
        for row in items:
            valid = row[row >= 0]
            assert ((valid >= 0) & (valid < len(TITLES))).all()
            assert len(set(valid.tolist())) == len(valid)
            assert (row[len(valid) :] == -1).all()  # -1 only pads the end
            # more beams than titles: the search is exhaustive and finds every title
            assert len(valid) == (len(TITLES) if beams >= len(TITLES) else beams)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_constrained_search_counts_beams_cut_before_eos(tiny, layout):
    model, tok = tiny
    # one token in "title-close" (the titles' first tokens); two in "quoted", whose first token is
    # the opening quote of every title (one real beam only: see decode.py on unfilled slots)
    cut = 1 if layout == "title-close" else 2
    items, invalid = constrained_beam_search(
        model, fmt_of(tok, layout), prompts_for(layout)[:2], TITLES, num_beams=3, max_new_tokens=cut
    )
    assert (items == -1).all()
    assert (invalid == 3).all()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_constrained_search_is_independent_of_batching(tiny, layout):
    model, tok = tiny
    prompts = prompts_for(layout)
    alone, _ = constrained_beam_search(model, fmt_of(tok, layout), prompts[:1], TITLES, num_beams=4)
    batched, _ = constrained_beam_search(model, fmt_of(tok, layout), prompts, TITLES, num_beams=4, batch_size=3)
    assert (alone[0] == batched[0]).all()


def test_generate_beams_shapes_and_padding(tiny):
    model, tok = tiny
    tok.padding_side = "right"
    out = generate_beams(model, tok, PROMPTS, num_beams=3, num_return=2, max_new_tokens=6, batch_size=2)
    assert len(out) == len(PROMPTS)
    assert all(len(texts) == 2 and all(isinstance(t, str) for t in texts) for texts in out)
    alone = generate_beams(model, tok, PROMPTS[:1], num_beams=3, num_return=2, max_new_tokens=6)
    assert alone[0] == out[0]
    assert tok.padding_side == "right"  # the tokenizer is left as it was


# -------------------------------------------------------------------------------------- grounding


def test_embed_texts_unchanged_by_padding(tiny):
    model, tok = tiny
    alone = embed_texts(model, tok, ["Red toy"])
    batched = embed_texts(model, tok, ["A much longer text than the other one, by far", "Red toy"], batch_size=2)
    assert alone.dtype == torch.float32 and alone.shape == (1, model.config.hidden_size)
    assert torch.allclose(alone[0], batched[1], atol=1e-5)
    # the last token's state of the text alone, as the full model computes it
    ids = torch.tensor([tok("Red toy", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True).hidden_states[-1][0, -1]
    assert torch.allclose(alone[0], ref, atol=1e-5)


def _embed_one_text_at_a_time(model, tok, texts: list[str], batch_size: int) -> torch.Tensor:
    """embed_texts as it was before it tokenised in one call: one tokenizer call per text, the
    batches filled row by row."""
    eos = tok.eos_token_id
    rows = [tok(t, add_special_tokens=False)["input_ids"] or [eos] for t in texts]
    order = sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i))
    out = torch.empty((len(rows), model.config.hidden_size), dtype=torch.float32)
    decoder = model.get_decoder()
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            batch = order[s : s + batch_size]
            width = max(len(rows[i]) for i in batch)
            ids = torch.full((len(batch), width), eos, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for j, i in enumerate(batch):
                ids[j, : len(rows[i])] = torch.tensor(rows[i], dtype=torch.long)
                mask[j, : len(rows[i])] = 1
            h = decoder(input_ids=ids, attention_mask=mask, use_cache=False).last_hidden_state
            out[torch.tensor(batch)] = h[torch.arange(len(batch)), mask.sum(dim=1) - 1].float()
    return out


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_embed_texts_equals_tokenising_one_text_at_a_time(tiny, batch_size):
    """One tokenizer call for the whole list: bitwise the embeddings of the per-text path, an empty
    text (embedded as EOS), quotes, non-ASCII and repeated texts included."""
    model, tok = tiny
    model.eval()
    texts = [*TITLES, "", "Red toy", " leading space", "Ünïcödé — title", "A much longer text than the other one, by far"]
    texts += [f"{t} ({year})" for t, year in zip(TITLES, range(1990, 1996))]
    got = embed_texts(model, tok, texts, batch_size=batch_size)
    assert torch.equal(got, _embed_one_text_at_a_time(model, tok, texts, batch_size))
    assert embed_texts(model, tok, [], batch_size=batch_size).shape == (0, model.config.hidden_size)


def _line(xs) -> torch.Tensor:
    """Points on a line embedded in 3-d, so distances are |x - y|."""
    x = torch.tensor(xs, dtype=torch.float32)
    return torch.stack([x, torch.zeros_like(x), torch.zeros_like(x)], dim=-1)


def test_interleaved_hand_example():
    items = _line([0.0, 1.0, 2.0, 3.0])
    # sample 0: beam 0 at 0.1 ranks 0,1,2,3; beam 1 at 1.8 ranks 2,1,3,0
    #   round robin: 0, 2 | 1, (1) | (2), 3  ->  0, 2, 1, 3
    # sample 1: beam 0 at 1.5 ties items 1 and 2 (lower id first) ranks 1,2,0,3; beam 1 at 3.2 ranks 3,2,1,0
    #   round robin: 1, 3 | 2, (2) | ...       ->  1, 3, 2, 0
    generated = torch.stack([_line([0.1, 1.8]), _line([1.5, 3.2])])
    assert ground_by_l2(generated, items, k=4).tolist() == [[0, 2, 1, 3], [1, 3, 2, 0]]
    assert ground_by_l2(generated, items, k=2, mode="interleaved").tolist() == [[0, 2], [1, 3]]
    assert ground_by_l2(generated, items, k=4, mode="original").tolist() == [[0, 1, 2, 3], [1, 2, 0, 3]]


def test_original_uses_beam_zero_only():
    g = torch.Generator().manual_seed(1)
    items = torch.randn(20, 8, generator=g)
    generated = torch.randn(5, 3, 8, generator=g)
    other = generated.clone()
    other[:, 1:] = torch.randn(5, 2, 8, generator=g)
    a = ground_by_l2(generated, items, k=7, mode="original")
    assert (a == ground_by_l2(other, items, k=7, mode="original")).all()
    assert (a == ground_by_l2(generated[:, :1], items, k=7, mode="interleaved")).all()
    assert not (ground_by_l2(generated, items, k=20) == ground_by_l2(other, items, k=20)).all()


def test_full_ranking_every_item_once():
    g = torch.Generator().manual_seed(2)
    n_items = 37
    items = torch.randn(n_items, 16, generator=g)
    generated = torch.randn(9, 5, 16, generator=g)
    for mode in ("original", "interleaved"):
        ranking = ground_by_l2(generated, items, k=n_items, mode=mode, chunk=4)
        assert ranking.shape == (9, n_items) and ranking.dtype == np.int64
        for row in ranking:
            assert sorted(row.tolist()) == list(range(n_items))
    assert ground_by_l2(generated, items, k=10 * n_items).shape == (9, n_items)


def test_chunked_distances_equal_direct_cdist():
    g = torch.Generator().manual_seed(3)
    items = torch.randn(50, 16, generator=g) * 10 + 5
    generated = torch.randn(13, 4, 16, generator=g) * 10 + 5
    queries = generated.reshape(-1, 16)
    direct = torch.cdist(queries, items)
    assert torch.allclose(l2_distances(queries, items, chunk=5), direct, atol=1e-4)
    # the rankings read off chunks follow the direct distances and do not depend on the chunk size
    ranked = ground_by_l2(generated, items, k=50, mode="original", chunk=2)
    assert (ranked == ground_by_l2(generated, items, k=50, mode="original", chunk=1000)).all()
    along = torch.gather(direct.view(13, 4, 50)[:, 0], 1, torch.from_numpy(ranked))
    assert (along[:, 1:] >= along[:, :-1] - 1e-4).all()
    inter = ground_by_l2(generated, items, k=50, chunk=3)
    assert (inter == ground_by_l2(generated, items, k=50, chunk=1000)).all()


def test_count_invalid_hand_example():
    generations = [
        ['Red toy"', 'Red toy car"', 'Nope"', 'Red  toy"'],
        ['Blue ball"', '12" Doll"', "Puzzle box", 'Puzzle box""'],
        [],
    ]
    counts = count_invalid(generations, TITLES, fmt_of(None, "title-close"))
    assert counts.dtype == np.int32
    assert counts.tolist() == [2, 1, 0]
    # "quoted": the generation carries the opening quote too
    quoted = [['"' + g for g in gens] for gens in generations]
    assert count_invalid(quoted, TITLES, fmt_of(None, "quoted")).tolist() == [2, 1, 0]
    assert count_invalid(quoted, TITLES, fmt_of(None, "title-close")).tolist() == [4, 4, 0]


def test_title_from_generation_in_both_layouts():
    title = P.title_from_generation
    assert title('Red toy"', layout="title-close") == "Red toy"
    assert title('"Red toy"', layout="title-close") == '"Red toy'  # the old layout keeps a leading quote
    assert title('"Red toy"', layout="quoted") == "Red toy"
    assert title('"12" Doll"', layout="quoted") == '12" Doll'
    assert title(' "Red toy" ', layout="quoted") == "Red toy"
    assert title('"Red toy', layout="quoted") == "Red toy"  # cut before the closing quote
    assert title("Red toy", layout="quoted") == "Red toy"
    assert title('"', layout="quoted") == ""
