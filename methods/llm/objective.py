"""What a training run optimises: the objective object the loop, the loss and the run record share.
No torch here (a method's configuration builds it when the run is planned).

    Objective()                                   plain SFT: token cross-entropy on the response
    Objective(alpha=0.1, beta=0.25)               CFT (protocol section 4): L_f + alpha L_cf, weights 1 -> beta
    Objective(alpha=1.0, beta=0.25, balance="gradcraft", gradcraft=GradCraftSettings())
                                                  CFT's two terms combined by GradCraft instead of a fixed alpha

alpha weighs the counterfactual term L_cf (0: no counterfactual pass at all), beta is the weight of
the last label token and `weighting` the decay's form (methods.llm.loss.token_weights). `balance`
says how the two terms become one update: "fixed" back-propagates L_f + alpha L_cf; "gradcraft"
back-propagates each term alone and crafts the update from the two gradients
(methods.llm.gradcraft), the counterfactual term entering with weight 1 (alpha is then 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.options import BALANCES, FIXED, GRADCRAFT, LINEAR, WEIGHTINGS, check_choice

# GradCraft's settings in the reference code (github.com/baiyimeng/GradCraft): r = 0.1 and e = 1e-10
# are the example configuration of main.py; b = 0 is what models/basemodel.py passes for the
# "gradcraft" method (customized_optimizer: GlobalPCGradMagnitudePositive(..., b=0, ...)), so the
# magnitudes there are the current step's norms, with no moving average.
GRADCRAFT_R = 0.1
GRADCRAFT_E = 1e-10
GRADCRAFT_B = 0.0


@dataclass(frozen=True)
class GradCraftSettings:
    """r: how far each gradient is scaled towards the largest magnitude (0 none, 1 all the way); e:
    the small positive inner product a crafted gradient keeps with each gradient it conflicted with
    (relative to both norms); b: the moving average's decay of the gradient magnitudes (0: this
    step's norms)."""

    r: float = GRADCRAFT_R
    e: float = GRADCRAFT_E
    b: float = GRADCRAFT_B

    def __post_init__(self):
        if not 0.0 <= self.r <= 1.0:
            raise ValueError(f"gradcraft_r must be in [0, 1], not {self.r}")
        if not self.e >= 0.0:
            raise ValueError(f"gradcraft_e must not be negative, not {self.e}")
        if not 0.0 <= self.b < 1.0:
            raise ValueError(f"gradcraft_b must be in [0, 1), not {self.b}")


@dataclass(frozen=True)
class Objective:
    alpha: float = 0.0  # weight of the counterfactual term; 0 = plain (position-weighted) SFT
    beta: float = 1.0  # weight of the last label token; 1 = uniform
    weighting: str = LINEAR  # the decay's form: "linear" or "reciprocal" (methods.llm.loss.token_weights)
    balance: str = FIXED  # "fixed": L_f + alpha L_cf; "gradcraft": the two gradients crafted into one update
    gradcraft: GradCraftSettings | None = None  # balance="gradcraft": its settings

    def __post_init__(self):
        check_choice("weighting", self.weighting, WEIGHTINGS)
        check_choice("balance", self.balance, BALANCES)
        if self.balance == GRADCRAFT and (self.gradcraft is None or self.alpha == 0.0):
            raise ValueError("balance=gradcraft needs GradCraft's settings and a counterfactual term (alpha 1)")

    @property
    def needs_counterfactual(self) -> bool:
        """Whether the counterfactual sequences are collated and run through the model."""
        return self.alpha != 0.0

    @property
    def crafted(self) -> bool:
        return self.balance == GRADCRAFT

    def info(self) -> dict:
        """What the run record stores under "objective" (GradCraft's settings only when it is used)."""
        out = {"alpha": self.alpha, "beta": self.beta, "weighting": self.weighting}
        if self.crafted:
            out.update(balance=self.balance, gradcraft={"r": self.gradcraft.r, "e": self.gradcraft.e, "b": self.gradcraft.b})
        return out
