"""bigrec: BIGRec, plain SFT on a random subset of the training samples, recommending by free beam
search grounded to catalogue items by L2 embedding distance (methods.llm.ground)."""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.base import LLMConfig, LLMMethod


@dataclass
class BIGRecConfig(LLMConfig):
    max_train_samples: int = 1024  # BIGRec's 1,024 training samples, drawn at random with the seed; 0 = all
    grounding: str = "interleaved"  # "interleaved": merge every beam's L2 ranking; "original": beam 0 only


class BIGRec(LLMMethod):
    """BIGRec: plain SFT on 1,024 random training samples, free beam search (5 beams, 5 returned),
    L2 grounding to a full ranking ("interleaved" over the beams by default, "original" = beam 0)."""

    name = "bigrec"
    description = "BIGRec: LLM SFT, free beam search grounded to items by L2 embedding distance."
    Config = BIGRecConfig
