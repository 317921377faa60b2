"""The one configuration of an LLM method: every setting, checked when the run is planned, and
what training derives from it (the objective, the learning rate). No torch here: describing and
planning a method import this module only.

Each field's trailing comment is its help text (`bench methods NAME`). A subclass per method
changes defaults (methods.llm.sft, .bigrec) or adds the CFT objective's settings (methods.llm.cft).
The training loop (methods.llm.train) reads this object whole, beside the run's seed; nothing is
copied into a second configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from methods.llm.models import TINY
from methods.llm.objective import Objective
from methods.llm.options import (
    AUTO,
    COLLABORATIVE,
    CONSTRAINED,
    DECODINGS,
    GROUNDED,
    GROUNDING_ADJUSTS,
    GROUNDINGS,
    INTERLEAVED,
    LAYOUTS,
    MAX,
    NONE,
    OWN,
    PRECISIONS,
    QUOTED,
    REDUCES,
    SEARCHES,
    check_choice,
)

TINY_LR = 3e-3
PRETRAINED_LR = 1e-4


@dataclass
class LLMConfig:
    model: str = "Qwen/Qwen2-0.5B"  # the paper's backbone; a Hugging Face id, a local folder, "smollm2-135m" (offline) or "tiny" (random, tests and smoke runs)
    epochs: int = 3  # 0 = no fine-tuning: evaluate the model as loaded
    lr: float | None = None  # None: 1e-4 for a pretrained model, 3e-3 for the tiny one
    micro_batch: int = 16  # examples whose loss is normalised together (the protocol's micro-batch)
    grad_accum: int = 4  # micro-batches per optimiser step: effective batch 64 on one device
    device_batch: int = 0  # examples per forward/backward pass: k micro-batches, k dividing grad_accum (the same gradient, fewer kernels); 0: 1 micro-batch on a CPU, by free memory on a GPU (methods.llm.sizing)
    precision: str = AUTO  # "auto" (fp32 on a CPU, bf16-mixed on a GPU), "fp32", "bf16-mixed" (fp32 master weights, bf16 autocast) or "bf16-pure" (bf16 weights and AdamW state, the reference code's; methods.llm.precision)
    warmup_steps: int = 20  # optimiser steps of linear learning-rate warm-up (then linear decay to 0)
    patience: int = 1  # epochs without validation improvement before stopping; 0 = never
    cutoff: int = 1024  # tokens; longer examples drop their oldest history titles
    max_train_samples: int = 0  # 0 = all; otherwise a random subset drawn with the seed
    max_valid_samples: int = 0  # 0 = all
    lora: bool = False  # train LoRA adapters instead of every weight (merged into the weights after training)
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 16  # LoRA scaling: the adapter's update is multiplied by lora_alpha / lora_r
    lora_dropout: float = 0.05  # dropout on the LoRA adapters' input
    lora_targets: str = "q_proj,v_proj"  # comma-separated module names that get LoRA adapters
    group_by_length: bool = True  # micro-batches of similar-length examples, their order shuffled with the seed (less padding; false: the plain shuffled order)
    compile: bool = False  # torch.compile the training step (dynamic shapes; refused where torch.compile is unavailable)
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, one more forward pass
    label_layout: str = QUOTED  # "quoted": the response is the quoted title + EOS (reference CFT code); "title-close": the opening quote ends the prompt
    decoding: str = GROUNDED  # "grounded": free beam search + L2 grounding to a full ranking; "constrained": beam search over catalogue titles, the list is its finished beams
    grounding: str = INTERLEAVED  # decoding=grounded: "interleaved" merges every beam's L2 ranking; "original": beam 0 only
    num_beams: int = 5  # beams of the beam search (grounded: every finished beam is grounded; constrained: the list, D3 used 10)
    max_new_tokens: int = 128  # most tokens generated per title
    eval_batch_size: int = 0  # prompts per decoding batch (titles are embedded 4x as many at once); 0: 8 on a CPU, by free memory on a GPU (methods.llm.sizing)
    search: str = OWN  # beam search implementation: "own" (methods.llm.beam: one prefill per prompt, the trie as tensors) or "transformers" (model.generate, the reference; equal results)
    assistant: str = ""  # a score method (e.g. sasrec, pop) fitted on the same split and seed whose scores decoding uses: D3's text-free assistant (assistant_scale) or BIGRec's collaborative grounding; "" = none
    assistant_set: str = ""  # the assistant's own settings, setting=value pairs joined by ";", e.g. --set 'sft.assistant_set=epochs=50;hidden_size=64' (quoted: ";" ends a shell command)
    assistant_scale: float = 1.0  # decoding=constrained (search=own), D3's text-free assistant: each step scores gamma * LLM + (1 - gamma) * assistant (log shares of the allowed tokens); 1 = the LLM alone (off), 0 = the assistant alone
    assistant_reduce: str = MAX  # the text-free assistant's share of a token: the "max" (the protocol's) or "sum" (D3's released code) of the assistant's probabilities of the items whose title continues with it
    grounding_adjust: str = NONE  # decoding=grounded, BIGRec's adjusted grounding: "popularity" (PDA: training target counts), "collaborative" (CI: the assistant's scores) or "none" (plain L2)
    grounding_gamma: float = 0.0  # grounding_adjust's gamma: items ranked by minmax(L2 distance) times (1 + signal) to the power -gamma; 0 = the plain L2 order

    def __post_init__(self):
        """Impossible settings fail when the run is planned, before anything trains."""
        for name, low in (
            ("epochs", 0),
            ("micro_batch", 1),
            ("grad_accum", 1),
            ("warmup_steps", 0),
            ("patience", 0),
            ("cutoff", 16),
            ("max_train_samples", 0),
            ("max_valid_samples", 0),
            ("num_beams", 1),
            ("max_new_tokens", 1),
            ("eval_batch_size", 0),
            ("device_batch", 0),
            ("lora_r", 1),
        ):
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, not {getattr(self, name)}")
        k, rest = divmod(self.device_batch, self.micro_batch)
        if self.device_batch and (rest or self.grad_accum % k):
            choices = ", ".join(str(self.micro_batch * d) for d in range(1, self.grad_accum + 1) if self.grad_accum % d == 0)
            raise ValueError(
                f"device_batch={self.device_batch} is not a whole number of micro-batches of {self.micro_batch} dividing "
                f"grad_accum={self.grad_accum}; choose one of {choices}, or 0 to let the device decide"
            )
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, not {self.lr}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        for name in ("group_by_length", "compile", "gradient_checkpointing"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, not {getattr(self, name)!r}")
        for name, values in (
            ("label_layout", LAYOUTS),
            ("decoding", DECODINGS),
            ("search", SEARCHES),
            ("grounding", GROUNDINGS),
            ("precision", PRECISIONS),
            ("assistant_reduce", REDUCES),
            ("grounding_adjust", GROUNDING_ADJUSTS),
        ):
            check_choice(name, getattr(self, name), values)
        self._check_decoding_aids()

    def _check_decoding_aids(self) -> None:
        """The assistant's and the adjusted grounding's settings fit the decoding they act in."""
        self.assistant_settings()  # readable
        if not math.isfinite(self.assistant_scale):
            raise ValueError(f"assistant_scale must be a finite number, not {self.assistant_scale}")
        if not (math.isfinite(self.grounding_gamma) and self.grounding_gamma >= 0):
            raise ValueError(f"grounding_gamma must be a finite number >= 0, not {self.grounding_gamma}")
        if self.assistant_set and not self.assistant:
            raise ValueError(
                "assistant_set gives settings to an assistant, but none is named; set assistant too, e.g. assistant=sasrec"
            )
        if self.mixes_assistant_in:
            scale = f"assistant_scale={self.assistant_scale:g}"
            if not self.assistant:
                raise ValueError(
                    f"{scale} mixes an assistant's scores into decoding, but none is named; set assistant, e.g. assistant=sasrec"
                )
            if self.decoding != CONSTRAINED:
                raise ValueError(
                    f"{scale} (D3's text-free assistant) acts in constrained decoding only; set decoding=constrained, "
                    "or use grounding_adjust=collaborative with decoding=grounded"
                )
            if self.search != OWN:
                raise ValueError(f"{scale} (D3's text-free assistant) runs in the own beam search only; set search=own")
        if self.grounding_adjust != NONE and self.decoding != GROUNDED:
            raise ValueError(f"grounding_adjust={self.grounding_adjust} acts in grounded decoding only; set decoding=grounded")
        if self.grounding_adjust == COLLABORATIVE and not self.assistant:
            raise ValueError(
                "grounding_adjust=collaborative ranks by an assistant's scores, but none is named; set assistant, e.g. assistant=sasrec"
            )

    @property
    def mixes_assistant_in(self) -> bool:
        """D3's text-free assistant takes part in decoding (assistant_scale is not 1)."""
        return self.assistant_scale != 1.0

    @property
    def scores_by_assistant(self) -> bool:
        """Decoding asks the assistant for score rows: the text-free assistant or collaborative grounding."""
        return self.mixes_assistant_in or self.grounding_adjust == COLLABORATIVE

    def assistant_settings(self) -> dict[str, str]:
        """assistant_set as {setting: text}: "epochs=50;hidden_size=64" -> {"epochs": "50", "hidden_size": "64"}."""
        out = {}
        for pair in self.assistant_set.split(";"):
            if not pair.strip():
                continue
            key, eq, value = pair.partition("=")
            if not (eq and key.strip() and value.strip()):
                raise ValueError(
                    f"assistant_set must be setting=value pairs joined by ';', e.g. epochs=50;hidden_size=64, not '{self.assistant_set}'"
                )
            out[key.strip()] = value.strip()
        return out

    def objective(self) -> Objective:
        """What training optimises: plain SFT (token cross-entropy on the response) unless a
        subclass says otherwise (methods.llm.cft)."""
        return Objective()

    def learning_rate(self) -> float:
        """`lr`, or when it is None 1e-4 (the protocol's) for a pretrained model and 3e-3 for the
        random tiny model (methods.llm.base explains why)."""
        if self.lr is not None:
            return self.lr
        return TINY_LR if self.model == TINY else PRETRAINED_LR
