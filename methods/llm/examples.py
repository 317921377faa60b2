"""From samples to token ids: the training examples and the inference prompts of the LLM methods.

    examples = encode_samples(tokenizer, card, titles, samples, cutoff, layout=layout)  # prompt + response ids
    cf_prompt = counterfactual_prompt(tokenizer, card, layout=layout)                  # shared by every example
    texts = inference_prompts(tokenizer, card, titles, samples, cutoff, layout=layout) # what decoding starts from

`layout` is the method's label_layout (methods.llm.prompts): "quoted" (the reference code's:
response = the quoted title + EOS) or "title-close" (the opening quote ends the prompt).

Choices where the protocol leaves one open:
- Examples longer than `cutoff` tokens drop their oldest history titles until they fit; the
  counterfactual sequence never needs it. Inference prompts use the same rule (prompt <= cutoff).
- `cap_samples` draws a random subset with the run's seed, as BIGRec does with its training set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from methods.llm import prompts


@dataclass
class Example:
    prompt: list[int]  # factual prompt ids (ends with "### Response:\n", or with the opening quote in "title-close")
    response: list[int]  # the labelled response: "title" + EOS ("quoted"), title" + EOS ("title-close")
    dropped: int = 0  # history titles dropped to fit the cutoff


def fit_prompt(
    tokenizer, card, history_titles: list[str], budget: int, *, layout: str = prompts.QUOTED
) -> tuple[str, list[int], int]:
    """The factual prompt with the most recent history that fits `budget` tokens:
    (text, ids, number of oldest titles dropped)."""
    dropped = 0
    while True:
        text = prompts.build_prompt(card, history_titles[dropped:], layout=layout)
        ids = prompts.prompt_ids(tokenizer, text)
        if len(ids) <= budget or dropped >= len(history_titles):
            return text, ids, dropped
        dropped += 1


def encode_samples(tokenizer, card, titles: list[str], samples, cutoff: int, *, layout: str = prompts.QUOTED) -> list[Example]:
    """Tokenised factual examples; prompts are tokenised in one batch, long ones refitted. The
    response is `prompts.response_ids` of the target: response_text tokenised as one text + EOS."""
    histories = [[titles[i] for i in h] for h in samples.histories]
    texts = [prompts.build_prompt(card, h, layout=layout) for h in histories]
    prompt_batch = tokenizer(texts, add_special_tokens=False)["input_ids"]
    answers = [prompts.response_text(titles[t], layout=layout) for t in samples.targets]
    responses = tokenizer(answers, add_special_tokens=False)["input_ids"]
    out = []
    for hist, p_ids, r_ids in zip(histories, prompt_batch, responses):
        r_ids = list(r_ids) + [tokenizer.eos_token_id]
        dropped = 0
        if len(p_ids) + len(r_ids) > cutoff:
            _, p_ids, dropped = fit_prompt(tokenizer, card, hist, cutoff - len(r_ids), layout=layout)
        out.append(Example(list(p_ids), r_ids, dropped))
    return out


def counterfactual_prompt(tokenizer, card, *, layout: str = prompts.QUOTED) -> list[int]:
    """The prompt without the history block: one sequence shared by every example."""
    return prompts.prompt_ids(tokenizer, prompts.build_prompt(card, [], counterfactual=True, layout=layout))


def inference_prompts(tokenizer, card, titles: list[str], samples, cutoff: int, *, layout: str = prompts.QUOTED) -> list[str]:
    """Factual prompt texts for decoding, history dropped oldest first beyond `cutoff` tokens. A
    sample without history (the `none` condition of bench.history) gets the counterfactual prompt,
    the one the CFT term trains: the template without its input block."""
    texts = [prompts.build_prompt(card, [titles[i] for i in h], counterfactual=not h, layout=layout) for h in samples.histories]
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    for row, n in enumerate(lengths):
        if n > cutoff:
            texts[row] = fit_prompt(tokenizer, card, [titles[i] for i in samples.histories[row]], cutoff, layout=layout)[0]
    return texts


def cap_samples(samples, n: int, seed: int):
    """At most n samples, a random subset drawn with the seed (as BIGRec: shuffle with the seed,
    take the first n), kept in their original order; n = 0 keeps all."""
    if not n or n >= len(samples):
        return samples
    index = np.sort(np.random.default_rng(seed).permutation(len(samples))[:n])
    return samples.subset(index)
