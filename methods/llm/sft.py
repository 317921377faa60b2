"""sft: the LLM fine-tuned on title generation (plain token cross-entropy on the response),
recommending by beam search constrained to the catalogue titles (methods.llm.decode)."""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.base import LLMConfig, LLMMethod


@dataclass
class SFTConfig(LLMConfig):
    num_beams: int = 10  # beams of the constrained search; its finished beams are the list (k beyond: -1)


class SFT(LLMMethod):
    """Plain SFT; ranked list = the finished beams of a beam search constrained to the catalogue
    titles' token trie (10 beams, no length normalisation, D3 style). k beyond num_beams is -1."""

    name = "sft"
    description = "LLM fine-tuned on title generation; beam search constrained to catalogue titles."
    Config = SFTConfig
    constrained = True
