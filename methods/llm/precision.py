"""How an LLM method's numbers are stored and computed: the `precision` setting.

    auto        fp32 on a CPU, bf16-mixed on a GPU (the default)
    fp32        float32 weights, optimiser state and arithmetic
    bf16-mixed  float32 master weights and AdamW state, forward and backward under bf16 autocast;
                after training the weights are cast to bf16 once, for decoding
    bf16-pure   bf16 weights trained by AdamW directly, with no float32 copy: the reference CFT
                code's setting (transformers Trainer with bf16 weights and bf16=True)

Why bf16-pure is not the default: bf16 keeps 8 significant bits, so the spacing between
representable values at |w| >= 2^-5 is 2^-12 (about 2.4e-4) and above; an AdamW update at lr 1e-4
is about 1e-4 per step, less than half that spacing, and rounds to no change at all. On
SmolLM2-135M 85.5 % of the linear weights' elements are that large, and its norm weights (median
0.27) can never move: pure bf16 fine-tunes a small part of the model, while a CPU run in float32
trains all of it. With float32 master weights (bf16-mixed) every update is kept, and a run on a
GPU trains the model a CPU run trains, up to rounding; `auto` therefore never mixes the two in one
leaderboard. bf16-pure stays available to reproduce the reference code's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.llm.options import AUTO, BF16_MIXED, BF16_PURE, FP32, PRECISIONS, check_choice


@dataclass(frozen=True)
class Precision:
    """A resolved precision setting (never "auto")."""

    name: str

    @classmethod
    def resolve(cls, setting: str, device: str) -> Precision:
        check_choice("precision", setting, PRECISIONS)
        if setting == AUTO:
            return cls(BF16_MIXED if str(device).startswith("cuda") else FP32)
        return cls(setting)

    @property
    def weights_dtype(self):
        """The dtype the weights are loaded and trained in."""
        import torch

        return torch.bfloat16 if self.name == BF16_PURE else torch.float32

    @property
    def decode_dtype(self):
        """The dtype the trained weights are decoded in (cast once after training)."""
        import torch

        return torch.float32 if self.name == FP32 else torch.bfloat16

    @property
    def mixed_precision(self) -> str:
        """accelerate's `mixed_precision` for the training loop: autocast to bf16 or none."""
        return "bf16" if self.name == BF16_MIXED else "no"

    def facts(self) -> dict:
        """What a run records about its arithmetic."""
        names = {"float32": "float32", "bfloat16": "bfloat16"}
        return {
            "precision": self.name,
            "train_weights_dtype": names[str(self.weights_dtype).replace("torch.", "")],
            "autocast": "bf16" if self.name == BF16_MIXED else "none",
            "decode_dtype": names[str(self.decode_dtype).replace("torch.", "")],
        }
