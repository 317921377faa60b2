"""bigrec: BIGRec, plain SFT on the same training samples as every other method, recommending by
free beam search grounded to catalogue items by L2 embedding distance (methods.llm.ground).
BIGRec's few-shot setting is `--set bigrec.max_train_samples=1024`."""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.base import LLMMethod
from methods.llm.config import LLMConfig


@dataclass
class BIGRecConfig(LLMConfig):
    max_train_samples: int = 0  # 0 = all, as every method; BIGRec's few-shot 1,024 is --set bigrec.max_train_samples=1024 (a random subset drawn with the seed)


class BIGRec(LLMMethod):
    """BIGRec: plain SFT on all training samples (BIGRec's few-shot 1,024 random samples is the
    setting max_train_samples=1024), free beam search (5 beams, 5 returned), L2 grounding to a
    full ranking ("interleaved" over the beams by default, "original" = beam 0)."""

    name = "bigrec"
    Config = BIGRecConfig
