"""The LLM methods' shared base: one engine (models, examples, train, loss, decode, ground), five
registered configurations, each in its own module (methods.llm.sft, .bigrec, .cft).

    name       training objective                         decoding (default; every method has both)
    sft        plain SFT (token CE on the response)       constrained: beam search over catalogue titles, 10 beams
    bigrec     plain SFT on all training samples          grounded: free beam search (5) + L2 grounding
    cft        CFT loss, alpha 0.1, beta 0.25             grounded: free beam search (5) + L2 grounding
    cft-no-cf  alpha 0, beta 0.25 (position weights)      grounded: free beam search (5) + L2 grounding
    cft-no-tw  alpha 0.1, beta 1 (uniform weights)        grounded: free beam search (5) + L2 grounding

The settings are one dataclass per method (methods.llm.config.LLMConfig, subclassed per method);
the training loop reads it whole (methods.llm.train), and the run's prompt format
(methods.llm.prompts.PromptFormat: tokenizer, card, label layout, cutoff) is built once in `_fit`
and handed to every step that writes or reads prompts.

Every Config field can be set from the command line (`--set cft.alpha=0.2`). Decoding is a setting
of every method, not of its class: `--set cft.decoding=constrained` is CFT on a D3-style backbone
(set num_beams=10 too for D3's beam count), `--set sft.decoding=grounded` is SFT decoded as BIGRec.
cft and cft-no-tw can combine their two loss terms by GradCraft instead of a fixed alpha
(`--set cft.balance=gradcraft`, methods.llm.cft).

The two backbones' decoding aids are settings of every method too, searched on validation without
training again (they are `decode_settings`: a grid over them shares one fit):
- `assistant=sasrec` (any score method; `assistant_set="epochs=50;hidden_size=64"` its settings)
  names a classic model fitted on the same split and seed by the harness (methods.llm.assistant);
- D3's text-free assistant: `assistant_scale` (gamma; 1 = off) and `assistant_reduce` (max, sum)
  mix its item distribution into every step of constrained decoding (methods.llm.tfa);
- BIGRec's adjusted grounding: `grounding_adjust=popularity` (training target counts) or
  `collaborative` (the assistant's scores) with `grounding_gamma` (methods.llm.adjust).

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

import numpy as np

from bench.data.split import Samples
from bench.method import INSPECT, Context, Method, Recommendations
from methods.llm.config import LLMConfig
from methods.llm.options import AUTO, COLLABORATIVE, CONSTRAINED, MAX, NONE, POPULARITY


class LLMMethod(Method):
    """Shared fit/recommend; subclasses choose their Config: its defaults (the decoding among them,
    `config.decoding`) and its objective (`config.objective()`)."""

    version = "2"  # 2: model Qwen/Qwen2-0.5B, label_layout "quoted", bigrec on all samples, decoding a setting
    Config = LLMConfig
    # settings added after version 2's runs were stored, keyed as those runs were (bench.plan):
    # at these values a setting trains and decodes what it did before it existed, up to rounding
    key_aliases = {
        "precision": (AUTO, None),
        "device_batch": (0, None),
        "eval_batch_size": (0, 8),
        "assistant": ("", None),
        "assistant_set": ("", None),
        "assistant_scale": (1.0, None),
        "assistant_reduce": (MAX, None),
        "grounding_adjust": (NONE, None),
        "grounding_gamma": (0.0, None),
    }
    # settings that act only when recommending: a grid over them fits the model once; the trained
    # model, its prompt format and title trie, the title embeddings and the popularity signal
    # depend on none of them
    decode_settings = frozenset(
        {
            "decoding",
            "num_beams",
            "grounding",
            "max_new_tokens",
            "eval_batch_size",
            "search",
            "assistant",
            "assistant_set",
            "assistant_scale",
            "assistant_reduce",
            "grounding_adjust",
            "grounding_gamma",
        }
    )

    # the texts that name the assistant: its resolved identity (assistant_key) is keyed instead
    assistant_fields = frozenset({"assistant", "assistant_set"})

    @classmethod
    def assistant_of(cls, config: LLMConfig) -> tuple[str, dict] | None:
        """The score method this configuration names as its assistant, with its settings."""
        return (config.assistant, config.assistant_settings()) if config.assistant else None

    @classmethod
    def preflight(cls, config: LLMConfig) -> None:
        """The model can be loaded here (methods.llm.models.check_loadable): nothing is loaded,
        downloaded or written; an uncached Hugging Face id costs one request to the hub. A named
        assistant is a score method whose own checks pass."""
        from methods.llm.assistant import check_assistant
        from methods.llm.models import check_loadable

        check_loadable(config.model, cls.name or "<method>")
        if config.assistant:
            check_assistant(config.assistant, config.assistant_settings(), cls.name or "<method>")

    def _fit(self, train: Samples, valid: Samples, context: Context) -> None:
        from methods.llm import examples, models
        from methods.llm.train import train as train_model

        cfg = self.config
        loaded, precision, train, valid = self._prepare(train, valid, context)
        data = examples.training_set(self.format, self.titles, train, valid)
        model, self.state = train_model(
            loaded.model,
            data,
            cfg,
            seed=context.seed,
            device=context.device,
            work_dir=context.work_dir,
            progress=context.progress,
            label=self.name or "train",
        )
        loaded.model = model
        self.model = model.to(_device(context.device), dtype=precision.decode_dtype)  # cast once for decoding
        self.facts = models.model_facts(loaded, context.device, cfg.lora)
        self.facts.update(precision.facts())
        self.facts.update(
            lr=cfg.learning_rate(),
            train_samples=len(data.train),
            valid_samples=len(data.valid),
            history_titles_dropped=int(sum(e.dropped for e in data.train)),
        )

    def _prepare(self, train: Samples, valid: Samples, context: Context):
        """What a fit and a fit loaded from the cache both start from: the base model loaded, the
        prompt format, the popularity signal, the capped samples. Returns (loaded model, precision,
        training samples, validation samples)."""
        from methods.llm import examples, models
        from methods.llm.adjust import popularity_signal
        from methods.llm.precision import Precision
        from methods.llm.prompts import PromptFormat

        cfg = self.config
        self.context = context
        self.titles = list(context.items.titles)
        self._fit_assistant(cfg)  # aside, before the LLM trains: a refusal costs no training
        # BIGRec's popularity (PDA) signal: the whole training split's targets, whatever the cap
        self._popularity = popularity_signal(train.targets, context.n_items)
        self._trie = None
        self._item_embeddings = None
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
        self.format = PromptFormat(loaded.tokenizer, context.card, cfg.label_layout, cfg.cutoff)
        train = examples.cap_samples(train, cfg.max_train_samples, context.seed)
        self.trained_samples = train
        valid = examples.cap_samples(valid, cfg.max_valid_samples, context.seed)
        return loaded, precision, train, valid

    # the fitted model as decoding uses it (after the cast to the decoding dtype), and the facts
    def _save_fit(self, folder) -> None:
        import json
        from dataclasses import asdict

        import torch

        from bench.atomic import write_text

        weights, on_cpu = {}, {}  # tied tensors (embeddings and LM head) stay one tensor in the file
        for name, tensor in self.model.state_dict().items():
            same = (tensor.data_ptr(), tensor.shape, tensor.stride(), tensor.dtype)
            if same not in on_cpu:
                on_cpu[same] = tensor.detach().to("cpu")
            weights[name] = on_cpu[same]
        torch.save(weights, folder / "weights.pt")
        write_text(folder / "state.json", json.dumps({"state": asdict(self.state), "facts": self.facts}, default=str))

    def _load_fit(self, folder, train: Samples, valid: Samples, context: Context) -> None:
        import json

        import torch

        from methods.llm.checkpoint import TrainState

        saved = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        weights = torch.load(folder / "weights.pt", map_location="cpu", weights_only=True)
        loaded, precision, _, _ = self._prepare(train, valid, context)
        model = loaded.model.to(dtype=precision.decode_dtype)
        model.load_state_dict(weights)
        model.config.use_cache = True
        self.model = model.eval().to(_device(context.device))
        self.state, self.facts = TrainState(**saved["state"]), saved["facts"]

    def _fit_assistant(self, cfg: LLMConfig):
        """The named assistant, fitted by the harness on this split and seed (once per command), or None."""
        from methods.llm.assistant import fitted_assistant

        if not cfg.assistant:
            return None
        return fitted_assistant(self.context, cfg.assistant, cfg.assistant_settings(), self.name or "<method>")

    def _reconfigure(self, config: LLMConfig) -> None:
        """A configuration that differs in decode settings only: the trained model, the trie and
        the popularity signal stay; the title embeddings are made again when the batch they are
        embedded in changes (float rounding); a newly named assistant is fitted now."""
        if config.eval_batch_size != self.config.eval_batch_size:
            self._item_embeddings = None
        self.config = config
        self._fit_assistant(config)

    # ------------------------------------------------------------ inference

    def prompts_for(self, samples: Samples) -> list[str]:
        from methods.llm.examples import inference_prompts

        return inference_prompts(self.format, self.titles, samples)

    def _recommend(self, samples: Samples, k: int) -> Recommendations:
        out = np.full((len(samples), k), -1, dtype=np.int64)
        if len(samples) == 0:  # a process's slice can be empty when there are more processes than samples
            return Recommendations(items=out, invalid=np.zeros(0, dtype=np.int32))
        prompt_texts = self.prompts_for(samples)
        # the assistant's scores of these samples, when decoding uses them
        aids = {"assistant": self._assistant_scores(samples)} if self.config.scores_by_assistant else {}
        if self.config.decoding == CONSTRAINED:
            items, invalid, generations = self._constrained(prompt_texts, **aids)
        else:
            items, invalid, generations = self._grounded(prompt_texts, k, **aids)
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

    def _assistant_scores(self, samples: Samples):
        from methods.llm.assistant import AssistantScores

        return AssistantScores(self._fit_assistant(self.config), samples, len(self.titles))

    def _title_trie(self):
        """The catalogue's title trie in the run's prompt format, built once per fit."""
        from methods.llm.decode import TitleTrie

        if self._trie is None:
            self._trie = TitleTrie(self.format, self.titles)
        return self._trie

    def _constrained(self, prompt_texts: list[str], assistant=None):
        """(items, invalid counts, generations of the first INSPECT prompts) by constrained beam
        search; `assistant` (AssistantScores of the prompts' samples): D3's text-free assistant."""
        from methods.llm.decode import constrained_beam_search
        from methods.llm.tfa import TextFreeAssistant

        cfg = self.config
        tfa = None if assistant is None else TextFreeAssistant(assistant, cfg.assistant_scale, cfg.assistant_reduce)
        items, invalid = constrained_beam_search(
            self.model,
            self.format,
            prompt_texts,
            self.titles,
            num_beams=cfg.num_beams,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=self.decode_batch(prompt_texts),
            progress=self.context.progress,
            trie=self._title_trie(),
            search=cfg.search,
            assistant=tfa,
        )
        generations = [[self.titles[i] for i in row if i >= 0] for row in items[:INSPECT]]
        return items, invalid, generations

    def _grounded(self, prompt_texts: list[str], k: int, assistant=None):
        """(items, invalid counts, generations of the first INSPECT prompts) by free beam search
        grounded to the catalogue by L2 distance, adjusted as grounding_adjust says (`assistant`:
        AssistantScores of the prompts' samples, for collaborative grounding)."""
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
        invalid = count_invalid(beams, self.titles, self.format)
        if self._item_embeddings is None:
            self._item_embeddings = embed_texts(
                self.model,
                self.tokenizer,
                self.titles,
                batch_size=4 * self.decode_batch(prompt_texts),
                progress=self.context.progress,
            )
        flat = [self.format.title_from_generation(text) for row in beams for text in row]
        generated = embed_texts(
            self.model, self.tokenizer, flat, batch_size=4 * self.decode_batch(prompt_texts), progress=self.context.progress
        )
        # distances on the model's device (a GPU when there is one); embeddings stay float32
        device = next(self.model.parameters()).device
        generated = generated.view(len(beams), cfg.num_beams, -1).to(device)
        adjust = self._grounding_adjustment(assistant)
        items = ground_by_l2(generated, self._item_embeddings.to(device), k, mode=cfg.grounding, adjust=adjust)
        return items, invalid, beams[:INSPECT]

    def _grounding_adjustment(self, assistant):
        """BIGRec's adjusted grounding of this configuration, or None for the plain L2 ranking."""
        from methods.llm.adjust import GroundingAdjustment, collaborative_signal

        cfg = self.config
        if cfg.grounding_adjust == NONE:
            return None
        if cfg.grounding_adjust == POPULARITY:
            return GroundingAdjustment(POPULARITY, cfg.grounding_gamma, self._popularity)
        return GroundingAdjustment(COLLABORATIVE, cfg.grounding_gamma, lambda rows: collaborative_signal(assistant(rows)))

    def run_info(self) -> dict:
        if not hasattr(self, "state"):
            return {}
        return dict(self.facts, objective=self.config.objective().info(), **self.state.record())


def _device(device: str):
    import torch

    return torch.device(device)
