"""From samples to token ids: the training examples and the inference prompts of the LLM methods.

    fmt = PromptFormat(tokenizer, card, layout, cutoff)                 # methods.llm.prompts
    data = training_set(fmt, titles, train_samples, valid_samples)     # examples + the counterfactual prompt
    texts = inference_prompts(fmt, titles, samples)                    # what decoding starts from

Every function takes the run's prompt format, so training examples, decoding prompts and the title
trie are written in one layout ("quoted": response = the quoted title + EOS, the reference code's;
"title-close": the opening quote ends the prompt).

Choices where the protocol leaves one open:
- Examples longer than `cutoff` tokens drop their oldest history titles until they fit; the
  counterfactual sequence never needs it. Inference prompts use the same rule (prompt <= cutoff).
- `cap_samples` draws a random subset with the run's seed, as BIGRec does with its training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from methods.llm.prompts import PromptFormat


@dataclass
class Example:
    prompt: list[int]  # factual prompt ids (ends with "### Response:\n", or with the opening quote in "title-close")
    response: list[int]  # the labelled response: "title" + EOS ("quoted"), title" + EOS ("title-close")
    dropped: int = 0  # history titles dropped to fit the cutoff


@dataclass
class TrainingSet:
    """What the training loop learns from: the encoded examples, the counterfactual prompt they all
    share, and the id that pads sequences (methods.llm.batching.collate)."""

    train: list[Example]
    valid: list[Example]
    cf_prompt: list[int]
    pad_id: int


def fit_prompt(fmt: PromptFormat, history_titles: list[str], budget: int) -> tuple[str, list[int], int]:
    """The factual prompt with the most recent history that fits `budget` tokens:
    (text, ids, number of oldest titles dropped)."""
    dropped = 0
    while True:
        text = fmt.prompt(history_titles[dropped:])
        ids = fmt.ids(text)
        if len(ids) <= budget or dropped >= len(history_titles):
            return text, ids, dropped
        dropped += 1


def encode_samples(fmt: PromptFormat, titles: list[str], samples) -> list[Example]:
    """Tokenised factual examples; prompts are tokenised in one batch, long ones refitted. The
    response is the target's `fmt.response_ids`: response_text tokenised as one text + EOS."""
    tokenizer = fmt.tokenizer
    histories = [[titles[i] for i in h] for h in samples.histories]
    texts = [fmt.prompt(h) for h in histories]
    prompt_batch = tokenizer(texts, add_special_tokens=False)["input_ids"]
    answers = [fmt.response_text(titles[t]) for t in samples.targets]
    responses = tokenizer(answers, add_special_tokens=False)["input_ids"]
    out = []
    for hist, p_ids, r_ids in zip(histories, prompt_batch, responses):
        r_ids = list(r_ids) + [fmt.eos]
        dropped = 0
        if len(p_ids) + len(r_ids) > fmt.cutoff:
            _, p_ids, dropped = fit_prompt(fmt, hist, fmt.cutoff - len(r_ids))
        out.append(Example(list(p_ids), r_ids, dropped))
    return out


def counterfactual_prompt(fmt: PromptFormat) -> list[int]:
    """The prompt without the history block: one sequence shared by every example."""
    return fmt.ids(fmt.prompt([], counterfactual=True))


def training_set(fmt: PromptFormat, titles: list[str], train, valid) -> TrainingSet:
    """The training and validation samples encoded in `fmt`, with the counterfactual prompt."""
    return TrainingSet(
        encode_samples(fmt, titles, train), encode_samples(fmt, titles, valid), counterfactual_prompt(fmt), fmt.pad_id
    )


def inference_prompts(fmt: PromptFormat, titles: list[str], samples) -> list[str]:
    """Factual prompt texts for decoding, history dropped oldest first beyond the cutoff. A sample
    without history (the `none` condition of bench.history) gets the counterfactual prompt, the one
    the CFT term trains: the template without its input block."""
    texts = [fmt.prompt([titles[i] for i in h], counterfactual=not h) for h in samples.histories]
    lengths = [len(ids) for ids in fmt.tokenizer(texts, add_special_tokens=False)["input_ids"]]
    for row, n in enumerate(lengths):
        if n > fmt.cutoff:
            texts[row] = fit_prompt(fmt, [titles[i] for i in samples.histories[row]], fmt.cutoff)[0]
    return texts


def cap_samples(samples, n: int, seed: int):
    """At most n samples, a random subset drawn with the seed (as BIGRec: shuffle with the seed,
    take the first n), kept in their original order; n = 0 keeps all."""
    if not n or n >= len(samples):
        return samples
    index = np.sort(np.random.default_rng(seed).permutation(len(samples))[:n])
    return samples.subset(index)
