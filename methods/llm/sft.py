"""sft: the LLM fine-tuned on title generation (plain token cross-entropy on the response),
recommending by default by beam search constrained to the catalogue titles (methods.llm.decode).
`--set sft.decoding=grounded` decodes it as BIGRec instead."""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.base import LLMMethod
from methods.llm.config import LLMConfig
from methods.llm.options import CONSTRAINED


@dataclass
class SFTConfig(LLMConfig):
    decoding: str = CONSTRAINED  # "constrained" here (D3 style): beam search over catalogue titles, the list is its finished beams; "grounded": free beam search + L2 grounding
    num_beams: int = 10  # beams of the constrained search; its finished beams are the list (k beyond: -1)


class SFT(LLMMethod):
    """Plain SFT; by default the ranked list = the finished beams of a beam search constrained to
    the catalogue titles' token trie (10 beams, no length normalisation, D3 style). k beyond
    num_beams is -1."""

    name = "sft"
    Config = SFTConfig
