"""The words the LLM methods' settings accept, defined once. No torch here: describing or planning a
method reads these without loading the engine, and the engine's modules import them from here.

    setting         values                          meaning (module)
    label_layout    quoted, title-close             where the answer's opening quote goes (methods.llm.prompts)
    decoding        grounded, constrained           free beam search + L2 grounding, or a title trie (methods.llm.base)
    grounding       interleaved, original           every beam's ranking merged, or beam 0's (methods.llm.ground)
    search          own, transformers               the beam search implementation (methods.llm.decode)
    weighting       linear, reciprocal              the token weights' decay (methods.llm.loss)
    precision       auto, fp32, bf16-mixed, bf16-pure   weights and arithmetic (methods.llm.precision)
    balance         fixed, gradcraft                how the CFT loss's two terms are combined (methods.llm.gradcraft)
    assistant_reduce  max, sum                      D3's text-free assistant: items under a token (methods.llm.tfa)
    grounding_adjust  none, popularity, collaborative   BIGRec's adjusted grounding (methods.llm.adjust)
"""

from __future__ import annotations

QUOTED = "quoted"  # the prompt ends with "### Response:\n"; response = "title" + EOS
TITLE_CLOSE = "title-close"  # the prompt ends with the opening quote; response = title" + EOS
LAYOUTS = (QUOTED, TITLE_CLOSE)

GROUNDED, CONSTRAINED = "grounded", "constrained"
DECODINGS = (GROUNDED, CONSTRAINED)

INTERLEAVED, ORIGINAL = "interleaved", "original"
GROUNDINGS = (INTERLEAVED, ORIGINAL)

OWN, TRANSFORMERS = "own", "transformers"
SEARCHES = (OWN, TRANSFORMERS)

LINEAR, RECIPROCAL = "linear", "reciprocal"
WEIGHTINGS = (LINEAR, RECIPROCAL)

AUTO, FP32, BF16_MIXED, BF16_PURE = "auto", "fp32", "bf16-mixed", "bf16-pure"
PRECISIONS = (AUTO, FP32, BF16_MIXED, BF16_PURE)

FIXED, GRADCRAFT = "fixed", "gradcraft"
BALANCES = (FIXED, GRADCRAFT)

MAX, SUM = "max", "sum"
REDUCES = (MAX, SUM)

NONE, POPULARITY, COLLABORATIVE = "none", "popularity", "collaborative"
GROUNDING_ADJUSTS = (NONE, POPULARITY, COLLABORATIVE)


def check_choice(name: str, value: str, values: tuple[str, ...]) -> str:
    """`value` when it is one of `values`; otherwise ValueError naming the setting and its choices."""
    if value not in values:
        raise ValueError(f"{name} must be one of {', '.join(values)}, not '{value}'")
    return value
