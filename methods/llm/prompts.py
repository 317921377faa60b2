"""The Alpaca-style prompt of protocol section 2, one template for training and inference.

Factual (with history):

    Below is an instruction that describes a task, paired with an input that provides further
    context. Write a response that appropriately completes the request.

    ### Instruction:
    Given a list of toys the user has bought before, please recommend a new toy that the user likes to the user.

    ### Input:
    The user has bought the following toys before: "A", "B", "C"

    ### Response:
    "<title>"<EOS>

Counterfactual: the same template without the input block (Alpaca's no-input variant).

Choice: where the answer's opening quote goes, the `label_layout` setting of every LLM method.
- "quoted" (the default): the prompt ends with "### Response:\\n" and the labelled response is the
  whole quoted title then EOS (opening quote, title, closing quote, tokenised as one text, + EOS).
  This is what the reference CFT code trains on (BIGRec's data format), so the first label token,
  the one the CFT decay gives weight 1, is the opening quote's token there as here, and the
  published alpha/beta values carry over. The title trie of constrained decoding holds these
  sequences, and a free generation is stripped of both quotes before grounding.
- "title-close": the opening quote ends the prompt, so the labelled response is title + closing
  quote + EOS, its first token is the title's first token, and every catalogue title starts a
  fresh tokenisation (no merge across the quote).
In both, prompt and response are tokenised separately and concatenated, and training, the title
trie and grounding use identical token sequences.

One object carries the format of a run: `PromptFormat(tokenizer, card, layout, cutoff)`, built once
by the method and handed to everything that writes or reads prompts and answers (examples, the
title trie, grounding), so no part of the engine can assume a layout of its own. The functions
below take the layout as a required keyword, for code that has no tokenizer (the tiny model's
tokenizer training texts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.data.cards import DatasetCard
from methods.llm.options import LAYOUTS, QUOTED, TITLE_CLOSE, check_choice

HEADER_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)
HEADER_NO_INPUT = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
CLOSE = '"'
OPEN = '"'


def check_layout(layout: str) -> str:
    return check_choice("label_layout", layout, LAYOUTS)


def instruction(card: DatasetCard) -> str:
    return (
        f"Given a list of {card.noun_plural} the user has {card.verb} before, please recommend a new "
        f"{card.noun} that the user likes to the user."
    )


def history_block(card: DatasetCard, history_titles: list[str]) -> str:
    quoted = ", ".join(f'"{t}"' for t in history_titles)
    return f"The user has {card.verb} the following {card.noun_plural} before: {quoted}"


def build_prompt(card: DatasetCard, history_titles: list[str], counterfactual: bool = False, *, layout: str) -> str:
    """The text the model sees before the answer: ends with "### Response:\\n" ("quoted") or with
    the answer's opening quote after it ("title-close")."""
    tail = OPEN if check_layout(layout) == TITLE_CLOSE else ""
    if counterfactual:
        return f"{HEADER_NO_INPUT}### Instruction:\n{instruction(card)}\n\n### Response:\n{tail}"
    return (
        f"{HEADER_WITH_INPUT}### Instruction:\n{instruction(card)}\n\n"
        f"### Input:\n{history_block(card, history_titles)}\n\n### Response:\n{tail}"
    )


def response_text(title: str, *, layout: str) -> str:
    """The answer after the prompt, without EOS: the quoted title ("quoted") or the title and its
    closing quote ("title-close")."""
    if check_layout(layout) == TITLE_CLOSE:
        return f"{title}{CLOSE}"
    return f"{OPEN}{title}{CLOSE}"


def response_ids(tokenizer, title: str, *, layout: str) -> list[int]:
    """Token ids of the labelled response: response_text tokenised as one text, then EOS."""
    return tokenizer(response_text(title, layout=layout), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def title_from_generation(text: str, *, layout: str) -> str:
    """The title inside a generated answer (decoded up to EOS): drop the closing quote and, in
    "quoted", the opening one. Titles may contain quotes themselves (`12" Doll`), so only the
    first and the last character are removed."""
    text = text.strip()
    if check_layout(layout) == QUOTED and text.startswith(OPEN):
        text = text[len(OPEN) :]
    return text[: -len(CLOSE)].strip() if text.endswith(CLOSE) else text


@dataclass(frozen=True)
class PromptFormat:
    """How one run writes prompts and reads answers: its tokenizer, dataset card (the domain's
    words), label layout and cutoff (the most tokens of an example or an inference prompt; longer
    histories drop their oldest titles, methods.llm.examples)."""

    tokenizer: Any
    card: DatasetCard
    layout: str
    cutoff: int

    def __post_init__(self):
        check_layout(self.layout)

    def prompt(self, history_titles: list[str], counterfactual: bool = False) -> str:
        """The prompt text (build_prompt in this format's layout)."""
        return build_prompt(self.card, history_titles, counterfactual, layout=self.layout)

    def ids(self, text: str) -> list[int]:
        """Token ids of a prompt text, as training and decoding tokenise it (no special tokens)."""
        return prompt_ids(self.tokenizer, text)

    def response_text(self, title: str) -> str:
        return response_text(title, layout=self.layout)

    def response_ids(self, title: str) -> list[int]:
        """The labelled response's ids: response_text tokenised as one text, then EOS."""
        return response_ids(self.tokenizer, title, layout=self.layout)

    def title_from_generation(self, text: str) -> str:
        return title_from_generation(text, layout=self.layout)

    @property
    def eos(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id
