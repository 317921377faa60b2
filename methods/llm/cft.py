"""cft and its two ablations: counterfactual fine-tuning (methods.llm.loss: L_f + alpha L_cf with
position-decaying token weights), recommending by default as BIGRec (free beam search + L2
grounding); `--set cft.decoding=constrained` is CFT on a D3-style backbone.

    cft        alpha 0.1, beta 0.25
    cft-no-cf  alpha 0,   beta 0.25   no counterfactual term: position-weighted SFT
    cft-no-tw  alpha 0.1, beta 1      uniform token weights

The decay's form is the setting `weighting`: "linear" (1 on the first label token down to beta on
the last) or "reciprocal" (w_t = 1 - t/(b n), b = 1/(1 - beta), the form whose b grid the paper's
beta grid {0.09, ..., 0.96} comes from).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.base import LLMConfig, LLMMethod


@dataclass
class CFTConfig(LLMConfig):
    alpha: float = 0.1  # weight of the counterfactual term (history removed); 0 = none
    beta: float = 0.25  # weight of the last label token: weights fall from 1 to beta; 1 = uniform
    weighting: str = "linear"  # "linear": from 1 on the first label token to beta on the last; "reciprocal": 1 - t/(b n), b = 1/(1 - beta) (the paper's beta grid)


@dataclass
class CFTNoCFConfig(CFTConfig):
    alpha: float = 0.0  # weight of the counterfactual term; 0 here: the ablation without it


@dataclass
class CFTNoTWConfig(CFTConfig):
    beta: float = 1.0  # weight of the last label token; 1 here: uniform token weights (the ablation)


class CFT(LLMMethod):
    """Counterfactual fine-tuning (protocol section 4): L_f + alpha L_cf with position-decaying
    token weights ("linear" or "reciprocal"); inference as BIGRec unless decoding=constrained."""

    name = "cft"
    description = "Counterfactual fine-tuning (alpha 0.1, beta 0.25) + L2 grounding."
    Config = CFTConfig

    def objective(self) -> tuple[float, float]:
        return float(self.config.alpha), float(self.config.beta)


class CFTNoCF(CFT):
    """CFT ablation without the counterfactual term (alpha 0, beta 0.25): position-weighted SFT."""

    name = "cft-no-cf"
    description = "CFT ablation without the counterfactual term (alpha 0, beta 0.25)."
    Config = CFTNoCFConfig


class CFTNoTW(CFT):
    """CFT ablation with uniform token weights (alpha 0.1, beta 1)."""

    name = "cft-no-tw"
    description = "CFT ablation with uniform token weights (alpha 0.1, beta 1)."
    Config = CFTNoTWConfig
