"""The D3 backbone (Bao et al., "Decoding Matters", arXiv 2406.14900) as registered presets: the
LLM fine-tuned on title generation, decoded by beam search constrained to the catalogue titles
without length normalisation (10 beams), with a SASRec text-free assistant mixed into every step.

    d3       sft's training, D3's decoding
    d3-cft   cft's training (the CFT loss), D3's decoding: CFT applied to D3

D3 chooses the assistant's weight on validation; these presets start at gamma 0.5 (an equal mix)
and a grid over it (`--grid d3.assistant_scale=1,0.7,0.5,0.3`) costs one fine-tuning, since the
weight acts at decoding time only. BIGRec is `bigrec` and CFT applied to BIGRec is `cft` (free beam
search and L2 grounding); BIGRec's popularity adjustment is `--set bigrec.grounding_adjust=popularity`.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.cft import CFT, CFTConfig
from methods.llm.options import CONSTRAINED
from methods.llm.sft import SFT, SFTConfig

D3_ASSISTANT = "sasrec"
D3_SCALE = 0.5


@dataclass
class D3Config(SFTConfig):
    assistant: str = D3_ASSISTANT  # D3's text-free assistant: SASRec fitted on the same split and seed
    assistant_scale: float = D3_SCALE  # gamma of the mix; D3 chooses it on validation (grid it)


@dataclass
class D3CFTConfig(CFTConfig):
    decoding: str = CONSTRAINED  # D3's decoding: beam search constrained to the catalogue titles
    num_beams: int = 10  # beams of the constrained search; its finished beams are the list
    assistant: str = D3_ASSISTANT  # D3's text-free assistant: SASRec fitted on the same split and seed
    assistant_scale: float = D3_SCALE  # gamma of the mix; D3 chooses it on validation (grid it)


class D3(SFT):
    """sft with D3's decoding: constrained beam search and a SASRec text-free assistant."""

    name = "d3"
    Config = D3Config


class D3CFT(CFT):
    """cft (the CFT loss) with D3's decoding: CFT applied to the D3 backbone."""

    name = "d3-cft"
    Config = D3CFTConfig
