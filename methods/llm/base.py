"""The LLM methods' shared base: one engine (models, examples, train, loss, decode, ground), five
registered configurations, each in its own module (methods.llm.sft, .bigrec, .cft).

    name       training objective                         decoding (default; every method has both)
    sft        plain SFT (token CE on the response)       constrained: beam search over catalogue titles, 10 beams
    bigrec     plain SFT on all training samples          grounded: free beam search (5) + L2 grounding
    cft        CFT loss, alpha 0.1, beta 0.25             grounded: free beam search (5) + L2 grounding
    cft-no-cf  alpha 0, beta 0.25 (position weights)      grounded: free beam search (5) + L2 grounding
    cft-no-tw  alpha 0.1, beta 1 (uniform weights)        grounded: free beam search (5) + L2 grounding

Every Config field can be set from the command line (`--set cft.alpha=0.2`). Decoding is a setting
of every method, not of its class: `--set cft.decoding=constrained` is CFT on a D3-style backbone
(set num_beams=10 too for D3's beam count), `--set sft.decoding=grounded` is SFT decoded as BIGRec.

Choices where the protocol leaves one open:
- model: the paper's backbone Qwen/Qwen2-0.5B is the default, so a run that names no model is the
  publishable setting. `preflight` checks before anything trains that it can be loaded here (in
  the Hugging Face cache, or the hub reachable) and otherwise names the offline choices:
  `smollm2-135m`, `tiny` (a small random model for tests and CPU smoke runs, chosen explicitly)
  or a local folder.
- label_layout "quoted" (the reference CFT code's: the response is the quoted title + EOS, so the
  CFT decay's first-token weight falls on the opening quote and published alpha/beta carry over);
  "title-close" moves the opening quote into the prompt (methods.llm.prompts).
- lr None means 1e-4 (the protocol's) for a pretrained model and 3e-3 for the random tiny model,
  which learns next to nothing at 1e-4 in a CPU-sized run (on the synthetic test split, 5 epochs
  of 8 steps: 1e-3 reaches a validation loss of 3.8 nats, 3e-3 1.8, 1e-2 0.8; 1e-2 is too hot a
  default for the thousands of steps of a real dataset).
- max_train_samples: 0 (all) for every method, bigrec included, so that every method learns from
  the same training samples; BIGRec's few-shot 1,024 is `--set bigrec.max_train_samples=1024`,
  drawn at random with the run's seed (BIGRec shuffles its training set with the seed and takes
  the first 1,024). max_valid_samples caps the validation set the same way (0 = all).
- Grounding embeds each catalogue title alone and each generation's title (its quotes removed
  as the label layout puts them) alone, with the fine-tuned model (last layer, last token).
- Lists shorter than k (fewer distinct finished beams, a small catalogue) are padded with -1.
- The tiny model's weights are seeded with the run's seed, its tokenizer trained on the catalogue
  titles and the prompt text of this dataset.

A method decodes exactly the samples it is given: under a launched job the runner hands each
process its slice of the test samples and gathers the lists (bench.runner).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bench.data.split import Samples
from bench.method import INSPECT, Context, Method, Recommendations
from methods.llm.precision import AUTO, PRECISIONS
from methods.llm.prompts import LAYOUTS

TINY_LR = 3e-3
PRETRAINED_LR = 1e-4
GROUNDINGS = ("interleaved", "original")
DECODINGS = ("grounded", "constrained")
SEARCHES = ("own", "transformers")  # methods.llm.decode.SEARCHES
WEIGHTINGS = ("linear", "reciprocal")  # methods.llm.loss.WEIGHTINGS (loss imports torch: describing a method stays light)


@dataclass
class LLMConfig:
    model: str = "Qwen/Qwen2-0.5B"  # the paper's backbone; a Hugging Face id, a local folder, "smollm2-135m" (offline) or "tiny" (random, tests and smoke runs)
    epochs: int = 3  # 0 = no fine-tuning: evaluate the model as loaded
    lr: float | None = None  # None: 1e-4 for a pretrained model, 3e-3 for the tiny one
    micro_batch: int = 16  # examples whose loss is normalised together (the protocol's micro-batch)
    grad_accum: int = 4  # micro-batches per optimiser step: effective batch 64 on one device
    device_batch: int = 0  # examples per forward/backward pass: k micro-batches, k dividing grad_accum (the same gradient, fewer kernels); 0: 1 micro-batch on a CPU, by free memory on a GPU (methods.llm.sizing)
    precision: str = "auto"  # "auto" (fp32 on a CPU, bf16-mixed on a GPU), "fp32", "bf16-mixed" (fp32 master weights, bf16 autocast) or "bf16-pure" (bf16 weights and AdamW state, the reference code's; methods.llm.precision)
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
    label_layout: str = "quoted"  # "quoted": the response is the quoted title + EOS (reference CFT code); "title-close": the opening quote ends the prompt
    decoding: str = "grounded"  # "grounded": free beam search + L2 grounding to a full ranking; "constrained": beam search over catalogue titles, the list is its finished beams
    grounding: str = "interleaved"  # decoding=grounded: "interleaved" merges every beam's L2 ranking; "original": beam 0 only
    num_beams: int = 5  # beams of the beam search (grounded: every finished beam is grounded; constrained: the list, D3 used 10)
    max_new_tokens: int = 128  # most tokens generated per title
    eval_batch_size: int = 0  # prompts per decoding batch (titles are embedded 4x as many at once); 0: 8 on a CPU, by free memory on a GPU (methods.llm.sizing)
    search: str = "own"  # beam search implementation: "own" (methods.llm.beam: one prefill per prompt, the trie as tensors) or "transformers" (model.generate, the reference; equal results)

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
            ("weighting", WEIGHTINGS),
            ("precision", PRECISIONS),
        ):
            value = getattr(self, name, None)
            if value is not None and value not in values:
                raise ValueError(f"{name} must be one of {', '.join(values)}, not '{value}'")
        for name in ("alpha", "beta"):
            if getattr(self, name, 0.0) < 0:
                raise ValueError(f"{name} must not be negative, not {getattr(self, name)}")


class LLMMethod(Method):
    """Shared fit/recommend; subclasses choose the objective and their Config's defaults (the
    decoding among them: `config.decoding`)."""

    version = "2"  # 2: model Qwen/Qwen2-0.5B, label_layout "quoted", bigrec on all samples, decoding a setting
    Config = LLMConfig
    # settings added after version 2's runs were stored, keyed as those runs were (bench.plan):
    # at these values a setting trains and decodes what it did before it existed, up to rounding
    key_aliases = {"precision": (AUTO, None), "device_batch": (0, None), "eval_batch_size": (0, 8)}

    @classmethod
    def preflight(cls, config: LLMConfig) -> None:
        """The model can be loaded here (methods.llm.models.check_loadable): nothing is loaded,
        downloaded or written; an uncached Hugging Face id costs one request to the hub."""
        from methods.llm.models import check_loadable

        check_loadable(config.model, cls.name or "<method>")

    def objective(self) -> tuple[float, float]:
        """(alpha, beta); plain SFT is (0, 1)."""
        return 0.0, 1.0

    def weighting(self) -> str:
        """The form of the token weights' decay (methods.llm.loss.token_weights)."""
        return getattr(self.config, "weighting", "linear")

    def _fit(self, train: Samples, valid: Samples, context: Context) -> None:
        from methods.llm import examples, models
        from methods.llm.precision import Precision
        from methods.llm.train import TrainConfig
        from methods.llm.train import train as train_model

        cfg = self.config
        self.context = context
        self.titles = list(context.items.titles)
        precision = Precision.resolve(cfg.precision, context.device)
        loaded = models.load_model(
            cfg.model,
            context.device,
            dtype=precision.weights_dtype,
            cache_dir=context.cache_dir,
            tiny_texts=models.tiny_training_texts(context.card, self.titles) if cfg.model == models.TINY else None,
            seed=context.seed,
        )
        self.tokenizer = loaded.tokenizer
        alpha, beta = self.objective()
        lr = cfg.lr if cfg.lr is not None else (TINY_LR if cfg.model == models.TINY else PRETRAINED_LR)
        train = examples.cap_samples(train, cfg.max_train_samples, context.seed)
        valid = examples.cap_samples(valid, cfg.max_valid_samples, context.seed)
        layout = cfg.label_layout
        train_examples = examples.encode_samples(self.tokenizer, context.card, self.titles, train, cfg.cutoff, layout=layout)
        valid_examples = examples.encode_samples(self.tokenizer, context.card, self.titles, valid, cfg.cutoff, layout=layout)
        # the method's settings that the loop shares by name (epochs, micro_batch, lora_*...); the
        # objective, the resolved lr and the run's seed are decided here
        shared = {f.name: getattr(cfg, f.name) for f in fields(TrainConfig) if hasattr(cfg, f.name)}
        train_config = TrainConfig(
            **dict(
                shared, alpha=alpha, beta=beta, weighting=self.weighting(), lr=lr, seed=context.seed, label=self.name or "train"
            )
        )
        model, self.result = train_model(
            loaded.model,
            self.tokenizer,
            train_examples,
            valid_examples,
            examples.counterfactual_prompt(self.tokenizer, context.card, layout=layout),
            train_config,
            device=context.device,
            work_dir=context.work_dir,
            progress=context.progress,
        )
        loaded.model = model
        self.loaded = loaded
        self.model = model.to(_device(context.device), dtype=precision.decode_dtype)  # cast once for decoding
        self.facts = models.model_facts(loaded, context.device, cfg.lora)
        self.facts.update(precision.facts())
        self.facts.update(
            lr=lr,
            train_samples=len(train_examples),
            valid_samples=len(valid_examples),
            history_titles_dropped=int(sum(e.dropped for e in train_examples)),
        )
        self._item_embeddings = None

    # ------------------------------------------------------------ inference

    def prompts_for(self, samples: Samples) -> list[str]:
        from methods.llm.examples import inference_prompts

        return inference_prompts(
            self.tokenizer, self.context.card, self.titles, samples, self.config.cutoff, layout=self.config.label_layout
        )

    def _recommend(self, samples: Samples, k: int) -> Recommendations:
        out = np.full((len(samples), k), -1, dtype=np.int64)
        if len(samples) == 0:  # a process's slice can be empty when there are more processes than samples
            return Recommendations(items=out, invalid=np.zeros(0, dtype=np.int32))
        prompt_texts = self.prompts_for(samples)
        if self.config.decoding == "constrained":
            items, invalid, generations = self._constrained(prompt_texts)
        else:
            items, invalid, generations = self._grounded(prompt_texts, k)
        width = min(k, items.shape[1])
        out[:, :width] = items[:, :width]
        inspect = [
            {
                "history": [self.titles[i] for i in samples.histories[row]],
                "target": self.titles[int(samples.targets[row])],
                "generations": generated,
                "top": [self.titles[i] for i in out[row, :5] if i >= 0],
            }
            for row, generated in enumerate(generations[: min(INSPECT, len(samples))])
        ]
        return Recommendations(items=out, invalid=np.asarray(invalid, dtype=np.int32), examples=inspect)

    def decode_batch(self, prompt_texts: list[str]) -> int:
        """Prompts per decoding batch: eval_batch_size, or when it is 0 the device's choice
        (methods.llm.sizing: 8 on a CPU, by free memory on a GPU)."""
        from methods.llm import sizing

        cfg = self.config
        if cfg.eval_batch_size:
            return cfg.eval_batch_size
        free = sizing.free_memory(str(next(self.model.parameters()).device))
        if free is None or not prompt_texts:
            return sizing.CPU_DECODE_BATCH
        longest = max(len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in prompt_texts[:256])
        return sizing.decode_batch(sizing.Shape.of(self.model), longest, cfg.num_beams, cfg.max_new_tokens, free)

    def _constrained(self, prompt_texts: list[str]):
        """(items, invalid counts, generations of the first INSPECT prompts) by constrained beam search."""
        from methods.llm.decode import constrained_beam_search

        cfg = self.config
        items, invalid = constrained_beam_search(
            self.model,
            self.tokenizer,
            prompt_texts,
            self.titles,
            num_beams=cfg.num_beams,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=self.decode_batch(prompt_texts),
            progress=self.context.progress,
            layout=cfg.label_layout,
            search=cfg.search,
        )
        generations = [[self.titles[i] for i in row if i >= 0] for row in items[:INSPECT]]
        return items, invalid, generations

    def _grounded(self, prompt_texts: list[str], k: int):
        """(items, invalid counts, generations of the first INSPECT prompts) by free beam search
        grounded to the catalogue by L2 distance."""
        from methods.llm import prompts
        from methods.llm.decode import generate_beams
        from methods.llm.ground import count_invalid, embed_texts, ground_by_l2

        cfg = self.config
        beams = generate_beams(
            self.model,
            self.tokenizer,
            prompt_texts,
            num_beams=cfg.num_beams,
            num_return=cfg.num_beams,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=self.decode_batch(prompt_texts),
            progress=self.context.progress,
            search=cfg.search,
        )
        invalid = count_invalid(beams, self.titles, layout=cfg.label_layout)
        if self._item_embeddings is None:
            self._item_embeddings = embed_texts(
                self.model,
                self.tokenizer,
                self.titles,
                batch_size=4 * self.decode_batch(prompt_texts),
                progress=self.context.progress,
            )
        flat = [prompts.title_from_generation(text, layout=cfg.label_layout) for row in beams for text in row]
        generated = embed_texts(
            self.model, self.tokenizer, flat, batch_size=4 * self.decode_batch(prompt_texts), progress=self.context.progress
        )
        # distances on the model's device (a GPU when there is one); embeddings stay float32
        device = next(self.model.parameters()).device
        generated = generated.view(len(beams), cfg.num_beams, -1).to(device)
        items = ground_by_l2(generated, self._item_embeddings.to(device), k, mode=cfg.grounding)
        return items, invalid, beams[:INSPECT]

    def run_info(self) -> dict:
        if not hasattr(self, "result"):
            return {}
        result = self.result
        return dict(
            self.facts,
            objective={"alpha": self.objective()[0], "beta": self.objective()[1], "weighting": self.weighting()},
            epochs_trained=result.epochs_trained,
            best_epoch=result.best_epoch,
            best_valid_loss=result.best_valid_loss,
            stopped_early=result.stopped_early,
            resumed_from_epoch=result.resumed_from_epoch,
            optimizer_steps=result.optimizer_steps,
            trainable_parameters=result.trainable_parameters,
            train_tokens=result.train_tokens,
            tokens_per_s=round(result.tokens_per_s, 1),
            history=result.history,
        )


def _device(device: str):
    import torch

    return torch.device(device)
