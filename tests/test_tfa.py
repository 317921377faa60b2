"""D3's text-free assistant (methods.llm.tfa) against a direct implementation written here: for
every beam, every allowed token and every item, is the item's sequence a continuation with that
token, then max or sum, epsilon, normalise, log, mix. Hand-made catalogues (shared prefixes, equal
sequences, sequences that are prefixes of others, EOS after a complete title, beams past EOS and
off the trie), hand-worked node values, no host sync per step; and the tiny LLM end to end: the
step hook placed after the trie constraint of the own beam search, gamma = 1 bitwise the plain
search, gamma < 1 the same beams as transformers' beam search with the direct mix as its logits
processor, and a one-item assistant putting that item first."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation import LogitsProcessor, LogitsProcessorList

from bench.syncs import count_host_syncs
from methods.llm.beam import DEAD, ROOT, beam_search
from methods.llm.decode import TitleTrie
from methods.llm.models import load_tiny
from methods.llm.tfa import AssistantMix, ItemTree, item_nodes, item_probabilities, mix, node_table

EOS = 0
# shared prefixes, item 5 equal to item 0, [5, EOS] and [5, 6, EOS] prefixes of longer ones, a chain
SEQUENCES = [[5, 6, 7, EOS], [5, 6, 8, EOS], [5, EOS], [5, 6, EOS], [9, EOS], [5, 6, 7, EOS], [4, 4, 4, 4, EOS]]
VOCAB = 12


def flat_of(sequences):
    return TitleTrie.from_sequences(sequences, eos=EOS).flat("cpu")


def walk(flat, prefix) -> int:
    """The node after `prefix`, one token at a time through FlatTrie.allowed (DEAD off the trie)."""
    node = torch.tensor([ROOT])
    for depth, token in enumerate(prefix):
        tokens, children = flat.allowed(node, depth, pad=-1)
        hit = tokens[0] == token
        node = children[0][hit] if hit.any() else torch.tensor([DEAD])
    return int(node)


def direct_mix(row, prefix, trie, sequences, probs, reduce, gamma):
    """One beam's scores, token by token and item by item in float64 (the reference's loops)."""
    out = row.double().clone()
    allowed = trie.allowed(prefix) or [trie.eos]
    values = []
    for token in allowed:
        extended = list(prefix) + [token]
        members = [float(p) for seq, p in zip(sequences, probs) if list(seq[: len(extended)]) == extended]
        value = (max(members) if reduce == "max" else sum(members)) if members else 0.0
        values.append(value + 1e-20)  # the reference's epsilon
    total = sum(values)
    for token, value in zip(allowed, values):
        out[token] = gamma * float(row[token]) + (1 - gamma) * math.log(value / total)
    return out


def constrained_log_probs(rows: int, allowed_rows, generator) -> torch.Tensor:
    """Random log-probabilities with -inf off each row's allowed tokens (as _TrieMask leaves them)."""
    log_probs = torch.log_softmax(torch.randn(rows, VOCAB, generator=generator), dim=-1)
    masked = torch.full_like(log_probs, -float("inf"))
    for r, allowed in enumerate(allowed_rows):
        masked[r, allowed] = log_probs[r, allowed]
    return masked


def beams_by_depth(sequences, extra):
    """Every prefix of every sequence, and `extra` (off the trie, past EOS), grouped by length: the
    beams of one step all share a depth."""
    prefixes = {tuple(s[:i]) for s in sequences for i in range(len(s) + 1)} | {tuple(p) for p in extra}
    depths: dict[int, list[tuple[int, ...]]] = {}
    for p in sorted(prefixes):
        depths.setdefault(len(p), []).append(p)
    return depths


# ------------------------------------------------------------------------------- the item tree


def test_item_nodes_and_node_values_worked_by_hand():
    flat = flat_of(SEQUENCES)
    nodes = item_nodes(flat, SEQUENCES)
    assert nodes.tolist() == [walk(flat, s) for s in SEQUENCES]
    assert nodes[0] == nodes[5] and len(set(nodes.tolist())) == 6
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.05, 0.2, 0.0]])
    tree = ItemTree.build(flat, SEQUENCES)
    for reduce, want in (
        # after [5]: items 0 1 2 3 5; after [5 6]: 0 1 3 5; after [5 6 7 EOS]: 0 5; after [9]: 4; after [4]: 6
        ("max", {(5,): 0.3, (5, 6): 0.2, (5, 6, 7, EOS): 0.2, (9,): 0.05, (4,): 0.0, (5, EOS): 0.3}),
        ("sum", {(5,): 0.95, (5, 6): 0.65, (5, 6, 7, EOS): 0.3, (9,): 0.05, (4,): 0.0, (5, EOS): 0.3}),
    ):
        table = node_table(tree, probs, reduce)
        assert table.shape == (1, tree.n_nodes) and table.dtype == torch.float32
        for prefix, value in want.items():
            assert table[0, walk(flat, prefix)].item() == pytest.approx(value, abs=1e-7), (reduce, prefix)
        assert table[0, DEAD] == 0


def test_item_tree_refuses_sequences_off_the_trie():
    flat = flat_of(SEQUENCES)
    with pytest.raises(ValueError, match="not on the trie"):
        ItemTree.build(flat, [*SEQUENCES, [5, 7, EOS]])
    with pytest.raises(ValueError, match="must end with"):
        ItemTree.build(flat, [[5, 6, 7]])


def test_mix_worked_by_hand():
    """The beam after [5, 6] allows 7, 8 and EOS: max values 0.2 (items 0, 5), 0.2 (item 1), 0.15
    (item 3); the LLM gives each log(1/3); gamma 0.5."""
    flat = flat_of(SEQUENCES)
    tree = ItemTree.build(flat, SEQUENCES)
    values = node_table(tree, torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.05, 0.2, 0.0]]), "max")
    tokens, children = flat.allowed(torch.tensor([walk(flat, [5, 6])]), 2, pad=VOCAB)
    log_probs = torch.full((1, VOCAB), -float("inf"))
    log_probs[0, [7, 8, EOS]] = math.log(1 / 3)
    out = mix(log_probs.clone(), tokens, children, values, 0.5)
    for token, share in ((7, 0.2 / 0.55), (8, 0.2 / 0.55), (EOS, 0.15 / 0.55)):
        assert out[0, token].item() == pytest.approx(0.5 * math.log(1 / 3) + 0.5 * math.log(share), abs=1e-6)
    assert out[0, [1, 2, 3, 4, 5, 6, 9, 10, 11]].isneginf().all()


@pytest.mark.parametrize("reduce", ["max", "sum"])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_mix_equals_the_direct_implementation(reduce, gamma):
    """Every prefix of the catalogue as a beam, two prompts with different assistants (some items
    at probability 0), beams past EOS and off the trie: float64 loops within 1e-6 (1e-6 relative
    where the log of an epsilon share, about -46, exceeds float32's 1e-6 resolution)."""
    g = torch.Generator().manual_seed(0)
    trie = TitleTrie.from_sequences(SEQUENCES, eos=EOS)
    flat = trie.flat("cpu")
    tree = ItemTree.build(flat, SEQUENCES)
    probs = torch.softmax(torch.randn(2, len(SEQUENCES), generator=g) * 2, dim=-1)
    probs[1, [1, 4]] = 0.0  # an EOS with no mass beside a token with some, a first token with none
    node_values = node_table(tree, probs, reduce)
    extra = [(3,), (5, 7), (5, EOS, EOS), (9, EOS, 5), (5, 6, 7, EOS, EOS), (4, 4, 4, 4, EOS, 1)]
    for depth, prefixes in beams_by_depth(SEQUENCES, extra).items():
        beams = prefixes
        nodes = torch.tensor([walk(flat, p) for p in beams])
        nodes = torch.cat([nodes, nodes])  # prompt 0's beams, then prompt 1's: the same prefixes
        tokens, children = flat.allowed(nodes, depth, pad=VOCAB)
        allowed = [trie.allowed(list(p)) or [EOS] for p in beams] * 2
        log_probs = constrained_log_probs(len(nodes), allowed, g)
        got = mix(log_probs.clone(), tokens, children, node_values, gamma)
        half = len(beams)
        for r in range(len(nodes)):
            want = direct_mix(log_probs[r], list(beams[r % half]), trie, SEQUENCES, probs[r // half], reduce, gamma)
            assert torch.equal(got[r].isneginf(), want.isneginf()), (depth, beams[r % half])
            finite = want.isfinite()
            torch.testing.assert_close(got[r][finite].double(), want[finite], rtol=1e-6, atol=1e-6)


def test_a_single_item_catalogue_and_a_uniform_assistant():
    """One item: every step has one allowed token and the assistant's log share is 0, so the mix
    is gamma * llm. Equal assistant values: the log share is log(1 / allowed)."""
    flat = flat_of([[3, 4, EOS]])
    tree = ItemTree.build(flat, [[3, 4, EOS]])
    values = node_table(tree, torch.tensor([[1.0]]))
    tokens, children = flat.allowed(torch.tensor([ROOT]), 0, pad=VOCAB)
    log_probs = torch.full((1, VOCAB), -float("inf"))
    log_probs[0, 3] = -2.0
    assert mix(log_probs, tokens, children, values, 0.25)[0, 3].item() == pytest.approx(-0.5)
    sequences = [[1, EOS], [2, EOS], [3, EOS], [4, EOS]]
    flat = flat_of(sequences)
    values = node_table(ItemTree.build(flat, sequences), torch.full((1, 4), 7.0))  # any scale cancels
    tokens, children = flat.allowed(torch.tensor([ROOT]), 0, pad=VOCAB)
    out = mix(torch.zeros((1, VOCAB)), tokens, children, values, 0.0)
    assert torch.allclose(out[0, 1:5], torch.full((4,), math.log(0.25)))


def test_the_step_makes_no_host_sync():
    flat = flat_of(SEQUENCES)
    tree = ItemTree.build(flat, SEQUENCES)
    probs = torch.softmax(torch.randn(3, len(SEQUENCES)), dim=-1)
    nodes = torch.full((3 * 4,), walk(flat, [5]))
    tokens, children = flat.allowed(nodes, 1, pad=VOCAB)
    with count_host_syncs() as counts:
        hook = AssistantMix(tree, probs, gamma=0.4, reduce="sum")
        hook(torch.zeros((12, VOCAB)), tokens, children)
    assert counts.syncs == 0, counts.by_op


# ------------------------------------------------------------------------- the tiny LLM, end to end

TITLES = ["Red toy car", "Red toy truck", "Red toy", "Blue ball", '12" Doll', "Puzzle box", "Red ball"]
PROMPTS = [
    'Below is an instruction.\n\n### Response:\n"',
    "Below is an instruction with a much longer body of words in it. " * 4 + '\n\n### Response:\n"',
    'x"',
]
FILL = -1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    loaded = load_tiny([*TITLES, *PROMPTS], tmp_path_factory.mktemp("cache"), seed=0)
    model, tok = loaded.model.eval(), loaded.tokenizer
    # the "title-close" responses: title, closing quote, EOS
    sequences = [tok(f'{t}"', add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in TITLES]
    rows = [tok(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[tok.eos_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    yield model, tok.eos_token_id, sequences, ids, mask
    torch.set_num_threads(threads)


def own_search(model, eos, ids, mask, flat, hook, num_beams=5):
    """The own constrained search with `hook(log_probs, tokens, children)` as its step hook (called
    right after the trie constraint of every step). Returns (sequences, scores, number of hook
    calls)."""
    calls = []

    def counted(log_probs, tokens, children):
        calls.append(tokens.shape)
        return hook(log_probs, tokens, children)

    with torch.inference_mode():
        result = beam_search(
            model,
            ids,
            mask,
            num_beams=num_beams,
            max_new_tokens=24,
            eos_token_id=eos,
            length_penalty=0.0,
            trie=flat,
            fill=FILL,
            step_hook=None if hook is None else counted,
        )
    return result.sequences, result.scores, len(calls)


def test_a_step_hook_needs_a_trie(tiny):
    model, eos, _, ids, mask = tiny
    with pytest.raises(ValueError, match="give the search a trie"):
        beam_search(model, ids, mask, num_beams=2, max_new_tokens=4, eos_token_id=eos, step_hook=lambda lp, t, c: lp)


class DirectAssistant(LogitsProcessor):
    """The reference's processor shape for transformers' beam search: constraint and mix per beam
    and per token on the host, with `direct_mix`."""

    def __init__(self, trie, sequences, probs, start, num_beams, gamma):
        self.trie, self.sequences, self.probs, self.start = trie, sequences, probs, start
        self.num_beams, self.gamma = num_beams, gamma

    def __call__(self, input_ids, scores):
        out = torch.full_like(scores, -float("inf"))
        for r, sent in enumerate(input_ids):
            prefix = sent[self.start :].tolist()
            allowed = self.trie.allowed(prefix) or [self.trie.eos]
            row = direct_mix(scores[r], prefix, self.trie, self.sequences, self.probs[r // self.num_beams], "max", self.gamma)
            out[r, allowed] = row[allowed].float()
        return out


def transformers_search(model, eos, ids, mask, processor, num_beams):
    config = GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        num_return_sequences=num_beams,
        length_penalty=0.0,
        early_stopping=False,
        max_new_tokens=24,
        eos_token_id=eos,
        pad_token_id=FILL,
        return_dict_in_generate=True,
        output_scores=True,
    )
    saved, model.generation_config = model.generation_config, GenerationConfig()
    try:
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=mask, generation_config=config, logits_processor=LogitsProcessorList([processor])
            )
    finally:
        model.generation_config = saved
    batch = ids.shape[0]
    return out.sequences[:, ids.shape[1] :].view(batch, num_beams, -1), out.sequences_scores.view(batch, num_beams)


def test_gamma_one_is_the_plain_search_bitwise(tiny):
    model, eos, sequences, ids, mask = tiny
    flat = TitleTrie.from_sequences(sequences, eos=eos).flat("cpu")
    tree = ItemTree.build(flat, sequences)
    probs = torch.softmax(torch.randn(len(PROMPTS), len(sequences), generator=torch.Generator().manual_seed(1)), dim=-1)
    plain, plain_scores, _ = own_search(model, eos, ids, mask, flat, None)
    seqs, scores, calls = own_search(model, eos, ids, mask, flat, AssistantMix(tree, probs, 1.0))
    assert calls >= plain.shape[-1]  # once per step
    assert torch.equal(seqs, plain) and torch.equal(scores, plain_scores)
    # gamma below 1 changes the scores: the hook takes part
    _, mixed_scores, _ = own_search(model, eos, ids, mask, flat, AssistantMix(tree, probs, 0.5))
    assert not torch.allclose(mixed_scores, plain_scores)


@pytest.mark.parametrize("num_beams", [3, 8])
def test_mixed_search_equals_transformers_with_the_direct_mix(tiny, num_beams):
    """gamma 0.5, a random assistant per prompt: the own search with the hook and transformers'
    beam search with the direct implementation as its logits processor return the same beams."""
    model, eos, sequences, ids, mask = tiny
    trie = TitleTrie.from_sequences(sequences, eos=eos)
    flat = trie.flat("cpu")
    probs = torch.softmax(3 * torch.randn(len(PROMPTS), len(sequences), generator=torch.Generator().manual_seed(2)), dim=-1)
    seqs, scores, _ = own_search(
        model, eos, ids, mask, flat, AssistantMix(ItemTree.build(flat, sequences), probs, 0.5), num_beams
    )
    direct = DirectAssistant(trie, sequences, probs, ids.shape[1], num_beams, 0.5)
    ref_seqs, ref_scores = transformers_search(model, eos, ids, mask, direct, num_beams)
    assert torch.equal(seqs, ref_seqs)
    real = ref_scores > -1e8
    assert torch.equal(real, scores > -1e8)
    assert torch.allclose(scores[real], ref_scores[real], rtol=0, atol=1e-4)


def test_an_assistant_sure_of_one_item_puts_it_first(tiny):
    """Per prompt, all the assistant's mass on the item the plain search ranks last (or misses):
    with gamma 0.5 that item's sequence is the first beam."""
    model, eos, sequences, ids, mask = tiny
    flat = TitleTrie.from_sequences(sequences, eos=eos).flat("cpu")
    plain, _, _ = own_search(model, eos, ids, mask, flat, None, num_beams=len(sequences))
    probs = torch.zeros(len(PROMPTS), len(sequences))
    chosen = []
    for p in range(len(PROMPTS)):
        found = [[t for t in beam_ids if t != FILL] for beam_ids in plain[p].tolist()]
        target = max(range(len(sequences)), key=lambda i: found.index(sequences[i]) if sequences[i] in found else len(found))
        assert found[0] != sequences[target]
        probs[p, target] = 1.0
        chosen.append(target)
    hook = AssistantMix(ItemTree.build(flat, sequences), item_probabilities(torch.log(probs)), 0.5)
    seqs, _, _ = own_search(model, eos, ids, mask, flat, hook, num_beams=len(sequences))
    for p, target in enumerate(chosen):
        assert [t for t in seqs[p, 0].tolist() if t != FILL] == sequences[target]
