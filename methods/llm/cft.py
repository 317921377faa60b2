"""cft and its two ablations: counterfactual fine-tuning (methods.llm.loss: L_f + alpha L_cf with
position-decaying token weights), recommending by default as BIGRec (free beam search + L2
grounding); `--set cft.decoding=constrained` is CFT on a D3-style backbone.

    cft        alpha 0.1, beta 0.25
    cft-no-cf  alpha 0,   beta 0.25   no counterfactual term: position-weighted SFT
    cft-no-tw  alpha 0.1, beta 1      uniform token weights

The decay's form is the setting `weighting`: "linear" (1 on the first label token down to beta on
the last) or "reciprocal" (w_t = 1 - t/(b n), b = 1/(1 - beta), the form whose b grid the paper's
beta grid {0.09, ..., 0.96} comes from).

How the two terms become one update is the setting `balance`: "fixed" (the default, the protocol's
loss) back-propagates L_f + alpha L_cf; "gradcraft" back-propagates L_f and L_cf (weight 1) apart
and crafts the update from their two gradients (methods.llm.gradcraft, with gradcraft_r, _e, _b).
alpha then plays no part, so setting it beside balance=gradcraft is refused; an alpha written
equal to the method's default cannot be told from an unset one and is accepted. cft-no-cf has no
counterfactual term to balance and refuses balance=gradcraft. The new settings at their defaults
are left out of the run key (`key_aliases`), so every stored run keeps its key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from methods.llm.base import LLMMethod
from methods.llm.config import LLMConfig
from methods.llm.objective import GRADCRAFT_B, GRADCRAFT_E, GRADCRAFT_R, GradCraftSettings, Objective
from methods.llm.options import BALANCES, FIXED, GRADCRAFT, LINEAR, WEIGHTINGS, check_choice

GRADCRAFT_SETTINGS = {"gradcraft_r": GRADCRAFT_R, "gradcraft_e": GRADCRAFT_E, "gradcraft_b": GRADCRAFT_B}


@dataclass
class CFTConfig(LLMConfig):
    alpha: float = 0.1  # weight of the counterfactual term (history removed); 0 = none
    beta: float = 0.25  # weight of the last label token: weights fall from 1 to beta; 1 = uniform
    weighting: str = LINEAR  # "linear": from 1 on the first label token to beta on the last; "reciprocal": 1 - t/(b n), b = 1/(1 - beta) (the paper's beta grid)
    balance: str = FIXED  # "fixed": the loss L_f + alpha L_cf; "gradcraft": L_f and L_cf back-propagated apart and their gradients crafted into one update (GradCraft, KDD 2024; alpha unused)
    gradcraft_r: float = GRADCRAFT_R  # balance=gradcraft: how far each gradient is scaled towards the largest gradient norm (0 none, 1 all the way)
    gradcraft_e: float = GRADCRAFT_E  # balance=gradcraft: the small positive inner product, relative to both norms, a crafted gradient keeps with a gradient it conflicted with
    gradcraft_b: float = GRADCRAFT_B  # balance=gradcraft: decay of the moving average of the gradient norms (0: each step's own norms, the reference code's)

    def __post_init__(self):
        super().__post_init__()
        check_choice("weighting", self.weighting, WEIGHTINGS)
        check_choice("balance", self.balance, BALANCES)
        for name in ("alpha", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")
        self._gradcraft_settings()  # their ranges, whatever the balance
        if self.balance == FIXED:
            for name, default in GRADCRAFT_SETTINGS.items():
                if getattr(self, name) != default:
                    raise ValueError(f"{name} acts only with balance=gradcraft, so set balance=gradcraft or leave {name} unset")
            return
        default_alpha = next(f.default for f in fields(self) if f.name == "alpha")
        if default_alpha == 0.0:
            raise ValueError("balance=gradcraft needs a counterfactual term, which this method leaves out; use cft or cft-no-tw")
        if self.alpha != default_alpha:
            raise ValueError("alpha cannot be set with balance=gradcraft, which weighs the counterfactual term itself")

    def _gradcraft_settings(self) -> GradCraftSettings:
        return GradCraftSettings(r=self.gradcraft_r, e=self.gradcraft_e, b=self.gradcraft_b)

    def objective(self) -> Objective:
        """L_f + alpha L_cf with this config's token weights; under balance=gradcraft the
        counterfactual term enters with weight 1 and GradCraft combines the two gradients."""
        if self.balance == GRADCRAFT:
            return Objective(1.0, float(self.beta), self.weighting, GRADCRAFT, self._gradcraft_settings())
        return Objective(float(self.alpha), float(self.beta), self.weighting)


@dataclass
class CFTNoCFConfig(CFTConfig):
    alpha: float = 0.0  # weight of the counterfactual term; 0 here: the ablation without it


@dataclass
class CFTNoTWConfig(CFTConfig):
    beta: float = 1.0  # weight of the last label token; 1 here: uniform token weights (the ablation)


class CFT(LLMMethod):
    """Counterfactual fine-tuning (protocol section 4): L_f + alpha L_cf with position-decaying
    token weights ("linear" or "reciprocal"), or the two terms balanced by GradCraft;
    inference as BIGRec unless decoding=constrained."""

    name = "cft"
    Config = CFTConfig
    # balance and GradCraft's settings came after version 2's runs were stored: at their defaults
    # the loss is the one those runs trained with (bench.plan.Planned.key_config)
    key_aliases = dict(LLMMethod.key_aliases, balance=(FIXED, None), **{k: (v, None) for k, v in GRADCRAFT_SETTINGS.items()})


class CFTNoCF(CFT):
    """CFT ablation without the counterfactual term (alpha 0, beta 0.25): position-weighted SFT."""

    name = "cft-no-cf"
    Config = CFTNoCFConfig


class CFTNoTW(CFT):
    """CFT ablation with uniform token weights (alpha 0.1, beta 1)."""

    name = "cft-no-tw"
    Config = CFTNoTWConfig
