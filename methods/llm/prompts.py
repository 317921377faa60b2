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

Choice: the opening quote of the answer ends the prompt, so the labelled response is exactly
title + closing quote + EOS (the tokens the protocol puts the loss on), its first token is the
title's first token (weight 1 in the CFT decay), and every catalogue title starts a fresh
tokenisation (no merge across the quote), which keeps training, the title trie and grounding on
identical token sequences. Prompt and response are tokenised separately and concatenated.
"""

from __future__ import annotations

from bench.data.cards import DatasetCard

HEADER_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)
HEADER_NO_INPUT = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
CLOSE = '"'


def instruction(card: DatasetCard) -> str:
    return (
        f"Given a list of {card.noun_plural} the user has {card.verb} before, please recommend a new "
        f"{card.noun} that the user likes to the user."
    )


def history_block(card: DatasetCard, history_titles: list[str]) -> str:
    quoted = ", ".join(f'"{t}"' for t in history_titles)
    return f"The user has {card.verb} the following {card.noun_plural} before: {quoted}"


def build_prompt(card: DatasetCard, history_titles: list[str], counterfactual: bool = False) -> str:
    """The text the model sees before the answer; ends with the answer's opening quote."""
    if counterfactual:
        return f"{HEADER_NO_INPUT}### Instruction:\n{instruction(card)}\n\n### Response:\n{CLOSE}"
    return (
        f"{HEADER_WITH_INPUT}### Instruction:\n{instruction(card)}\n\n"
        f"### Input:\n{history_block(card, history_titles)}\n\n### Response:\n{CLOSE}"
    )


def response_text(title: str) -> str:
    """The answer after the prompt, without EOS: the title and its closing quote."""
    return f"{title}{CLOSE}"


def response_ids(tokenizer, title: str) -> list[int]:
    """Token ids of the labelled response: title, closing quote, EOS."""
    return tokenizer(response_text(title), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def title_from_generation(text: str) -> str:
    """The title inside a generated answer (decoded up to EOS): drop the closing quote. Titles may
    contain quotes themselves (`12" Doll`), so only the last character is removed."""
    text = text.strip()
    return text[: -len(CLOSE)].strip() if text.endswith(CLOSE) else text
