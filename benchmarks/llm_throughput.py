"""Training throughput of the LLM engine against a reference-style loop, side by side in one process,
on a model built from a published config with random weights (no download).

    .venv/bin/python benchmarks/llm_throughput.py --shape qwen2-0.5b --device cuda --json gpu.json
    .venv/bin/python benchmarks/llm_throughput.py --shape tiny --device cpu --threads 1
    .venv/bin/python benchmarks/llm_throughput.py --quick          # dry run: tiny sizes, one repeat pair
    .venv/bin/python benchmarks/llm_throughput.py --shape tiny --device cpu --threads 1 --legs engine,gradcraft

Legs, each one epoch over the same synthetic examples with the same model (a fresh AdamW each time):
    engine     what methods.llm.train runs: micro-batches grouped by length (EpochBatches), the
               engine's collate (right padding; the counterfactual sequences padded to their own
               length), LabelLogits (the LM head at label positions only) and cft_loss with the
               token weights taken from the collator's label positions (no host read)
    reference  the reference code's way: micro-batches in plain shuffled order, the factual and the
               counterfactual sequences left-padded to the micro-batch's factual width (so that the
               label positions line up), model(...).logits (the LM head over the full vocabulary
               at every position) and the loss computed from those full logits (cross-entropy at
               every position, -100 outside the response)
    gradcraft  the engine with balance=gradcraft (methods.llm.gradcraft): the same batches and
               forward, L_f and L_cf back-propagated apart (the graph kept for the second), each
               term's gradients collected, the update crafted and written before the step; its
               cost against the `engine` leg (balance=fixed) is the ratio gradcraft/engine.
`--legs` chooses them (default engine,reference). Every leg builds its micro-batches on the host,
as a data loader does, and copies them to the device the same way (pinned memory, non-blocking on
a GPU); no leg reads a device value on the host inside its step. Before timing, the engine's and
the reference's losses on the same micro-batch must agree to 1e-2 (asserted, printed).

Timing: a warm-up round (--warmup micro-batches of each leg, untimed), then --repeats rounds that
each time one epoch of every leg, the order reversed every other round. Reported per leg, median [min-max]
over the rounds: samples/s, tokens/s (real tokens through the model, factual + counterfactual), ms
per micro-batch, MFU; the padded share of the computed positions; peak CUDA memory, allocated and
reserved (max over the rounds), or on a CPU the peak resident memory of the process during the
epoch and its rise over the epoch's start (Linux: freed memory is returned to the system and the
peak reset before each epoch). Then the ratios engine/reference and gradcraft/engine, one per
round, median [min-max], and the legs' peak memory ratios.

MFU = model FLOPs of the leg / seconds / peak FLOP/s, the model FLOPs counted per real token
(padding is counted nowhere: it is the waste the padding column shows):
    body       6 N per real token (forward 2 N + backward 4 N), N the non-embedding parameters
               (the input embedding and an untied LM head excluded)
    LM head    6 x hidden x vocab per position where the leg computes it: the label positions in
               the engine, every real position (factual and counterfactual) in the reference loop
    attention  the exact causal count: a sequence of s real tokens costs 2 x d x s(s+1) forward per
               layer (QK^T and AV, query i attending to i keys; d = heads x head dim), x3 for
               training: 6 x layers x d x s(s+1) (half the non-causal 12 x layers x hidden x s^2)
The peak is --peak-flops, else the bf16 dense peak of the GPU named by torch.cuda.get_device_name
(H100 SXM 989.4, H100 PCIe 756, H100 NVL 835, H200 SXM 989.4, H200 NVL 835, GH200 989.4, A100 312
TFLOP/s); any other device is an "unknown peak" and gets no MFU. The gradcraft leg is counted as
the engine (its second backward through the factual pass is the overhead, not model FLOPs). --precision auto trains as the
engine does by default: bf16-mixed on a GPU (float32 weights and AdamW state, bf16 autocast), fp32
on a CPU.

Examples mimic the protocol's prompts: a factual prompt of --min-prompt-len to --prompt-len tokens
(uniform: histories of different lengths), a response of half --response-len to --response-len
tokens, and a counterfactual prompt of --cf-len tokens. Decoding throughput is
benchmarks/decode_throughput.py.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# published architectures (their config.json), used with random weights
SHAPES = {
    "qwen2-0.5b": (
        "Qwen2",
        dict(
            vocab_size=151936,
            hidden_size=896,
            intermediate_size=4864,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
        ),
    ),
    "smollm2-135m": (
        "Llama",
        dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            rope_theta=100_000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
        ),
    ),
    "tiny": (
        "Qwen2",
        dict(
            vocab_size=2048,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        ),
    ),
}

# bf16 dense peak FLOP/s (no sparsity) by torch.cuda.get_device_name, most specific test first:
# (every substring that must occur, case-insensitive; the name reported; FLOP/s)
PEAKS = [
    (("GH200",), "GH200", 989.4e12),
    (("H200", "NVL"), "H200 NVL", 835e12),
    (("H200",), "H200 SXM", 989.4e12),
    (("H100", "NVL"), "H100 NVL", 835e12),
    (("H100", "PCIE"), "H100 PCIe", 756e12),
    (("H100",), "H100 SXM", 989.4e12),  # "NVIDIA H100 80GB HBM3"
    (("A100",), "A100", 312e12),
]
PRECISIONS = ("auto", "fp32", "bf16-mixed", "bf16-pure")
LOSS_TOLERANCE = 1e-2
QUICK = dict(repeats=1, steps=2, warmup=1, micro_batch=4, prompt_len=48, min_prompt_len=16, response_len=8, cf_len=16)


def device_peak(name: str) -> tuple[str | None, float | None]:
    """(the GPU's name in the table, its bf16 dense peak FLOP/s) or (None, None): an unknown peak."""
    upper = name.upper()
    for needles, label, flops in PEAKS:
        if all(n in upper for n in needles):
            return label, flops
    return None, None


def build(shape: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    family, kw = SHAPES[shape]
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if family == "Qwen2" else (LlamaConfig, LlamaForCausalLM)
    config = config_cls(**kw)
    config._attn_implementation = "sdpa"  # as methods.llm.models loads every model
    torch.manual_seed(0)
    model = model_cls(config)
    model.config.use_cache = False
    return model.to(dtype)


def synthetic_examples(n: int, vocab: int, args, seed: int = 0):
    """(examples, counterfactual prompt): token ids drawn at random, lengths as the module docstring says."""
    import numpy as np

    from methods.llm.examples import Example

    rng = np.random.default_rng(seed)
    cf_prompt = rng.integers(1, vocab, args.cf_len).tolist()
    examples = []
    for _ in range(n):
        p = int(rng.integers(args.min_prompt_len, args.prompt_len + 1))
        r = int(rng.integers(max(2, args.response_len // 2), args.response_len + 1))
        examples.append(Example(rng.integers(1, vocab, p).tolist(), rng.integers(1, vocab, r).tolist()))
    return examples, cf_prompt


def to_device(batch: dict, device) -> dict:
    """Tensors to `device` as a data loader hands them over (pinned, non-blocking on a GPU); other
    values (the collator's plain counts) as they are."""
    cuda = device.type == "cuda"

    def move(v):
        if not hasattr(v, "to"):
            return v
        return (v.pin_memory() if cuda else v).to(device, non_blocking=cuda)

    return {k: move(v) for k, v in batch.items()}


# ------------------------------------------------------------------------------- FLOP counting


class Flops:
    """Model FLOPs of one training step (forward + backward), counted on the host from lengths."""

    def __init__(self, model):
        cfg = model.config
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        total = sum(p.numel() for p in model.parameters())
        self.non_embedding = total - embed.numel() - (head.numel() if head is not embed else 0)
        self.hidden, self.vocab, self.layers = cfg.hidden_size, cfg.vocab_size, cfg.num_hidden_layers
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.attn_dim = cfg.num_attention_heads * head_dim

    def step(self, lengths: list[int], head_positions: int) -> float:
        """`lengths`: the real lengths of every sequence through the model (factual and
        counterfactual); `head_positions`: where the LM head is computed."""
        body = 6 * self.non_embedding * sum(lengths)
        attention = sum(6 * self.layers * self.attn_dim * s * (s + 1) for s in lengths)
        return float(body + attention + 6 * self.hidden * self.vocab * head_positions)


# ------------------------------------------------------------------------------ the engine's leg


@dataclass
class Leg:
    """One way of training: its micro-batches in order, the loss of one (for the loss check), what
    one costs (counts), and `start()`, called before each epoch, giving the step's forward and
    backward: backward(index, device, autocast) leaves the gradients in the parameters."""

    order: list
    loss_of: Callable | None
    counts: Callable
    start: Callable


def plain_backward(loss_of):
    def start():
        def backward(index, device, autocast):
            with autocast():
                loss = loss_of(index, device)
            loss.backward()

        return backward

    return start


def engine_leg(model, examples, cf_prompt, args) -> Leg:
    """The engine's order, collate and loss (balance=fixed)."""
    from methods.llm import loss as engine_loss
    from methods.llm.batching import EpochBatches, collate
    from methods.llm.loss import LabelLogits, cft_loss

    module = LabelLogits(model)
    lengths = [len(e.prompt) + len(e.response) for e in examples]
    order = EpochBatches(len(examples), args.micro_batch, args.seed, lengths=lengths).batches()
    use_cf = args.alpha != 0
    weights_at = getattr(engine_loss, "weights_at", None)

    def loss_of(index, device):
        batch = to_device(collate([examples[i] for i in index], cf_prompt, pad_id=0, counterfactual=use_cf), device)
        z_f, z_cf = module(batch, counterfactual=use_cf)
        extra = {}
        if weights_at is not None and "label_pos" in batch:  # the training loop's weights: no host read
            extra["weights"] = weights_at(batch["label_pos"], batch["label_len"], args.beta)
        return cft_loss(z_f, z_cf, batch["labels"], batch["example_index"], args.alpha, args.beta, **extra)[0]

    def counts(index):
        exs = [examples[i] for i in index]
        f = [len(e.prompt) + len(e.response) for e in exs]
        cf = [len(cf_prompt) + len(e.response) for e in exs] if use_cf else []
        computed = len(exs) * max(f) + (len(exs) * max(cf) if use_cf else 0)
        labels = sum(len(e.response) for e in exs) * (2 if use_cf else 1)
        return {"lengths": f + cf, "computed": computed, "head_positions": labels}

    return Leg(order, loss_of, counts, plain_backward(loss_of))


def gradcraft_leg(model, examples, cf_prompt, args) -> Leg:
    """The engine with balance=gradcraft (GradCraft's reference settings): the engine's order,
    collate and forward, then methods.llm.train's crafted pass and step."""
    from methods.llm.batching import collate
    from methods.llm.gradcraft import TaskGradients
    from methods.llm.loss import LabelLogits, pass_terms
    from methods.llm.objective import GradCraftSettings, Objective

    fixed = engine_leg(model, examples, cf_prompt, argparse.Namespace(**dict(vars(args), alpha=args.alpha or 1.0)))
    objective = Objective(1.0, args.beta, balance="gradcraft", gradcraft=GradCraftSettings())
    module = LabelLogits(model)

    def start():
        tasks = TaskGradients([p for p in model.parameters() if p.requires_grad], 2, objective.gradcraft)

        def backward(index, device, autocast):
            batch = to_device(collate([examples[i] for i in index], cf_prompt, pad_id=0, counterfactual=True), device)
            with autocast():
                z_f, z_cf = module(batch, counterfactual=True)
            l_f, l_cf = pass_terms(z_f, z_cf, batch, objective)
            l_f.backward(retain_graph=True)
            tasks.collect(0)
            l_cf.backward()
            tasks.collect(1)
            tasks.write_update()

        return backward

    return Leg(fixed.order, None, fixed.counts, start)


# --------------------------------------------------------------------------- the reference leg


def reference_batch(examples, cf_prompt, use_cf: bool, beta: float):
    """On the host: left-padded factual and counterfactual sequences of the micro-batch's factual
    width, labels -100 outside the response (which ends both sequences, so that its positions line
    up), and the linear token weights (1 on the first response token down to beta on the last) per
    position, 0 elsewhere."""
    import torch

    width = max(len(e.prompt) + len(e.response) for e in examples)
    b = len(examples)

    def pack(prefixes):
        ids = torch.zeros((b, width), dtype=torch.long)
        mask = torch.zeros((b, width), dtype=torch.long)
        labels = torch.full((b, width), -100, dtype=torch.long)
        for row, (p, e) in enumerate(zip(prefixes, examples)):
            seq = p + e.response
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
            labels[row, width - len(e.response) :] = torch.tensor(e.response)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return ids, mask, positions, labels

    weights = torch.zeros((b, width), dtype=torch.float32)
    for row, e in enumerate(examples):
        n = len(e.response)
        weights[row, width - n :] = 1.0 - torch.arange(n, dtype=torch.float32) * (1.0 - beta) / max(n - 1, 1)
    factual = pack([e.prompt for e in examples])
    cf = pack([list(cf_prompt)] * b) if use_cf else None
    return factual, cf, weights


def reference_leg(model, examples, cf_prompt, args) -> Leg:
    """The reference code's order, padding and full-vocabulary loss."""
    import torch.nn.functional as F

    from methods.llm.batching import EpochBatches

    order = EpochBatches(len(examples), args.micro_batch, args.seed).batches()
    use_cf = args.alpha != 0

    def loss_of(index, device):
        factual, cf, weights = reference_batch([examples[i] for i in index], cf_prompt, use_cf, args.beta)
        host = {"ids": factual[0], "mask": factual[1], "positions": factual[2], "labels": factual[3], "w": weights}
        if use_cf:
            host.update(cf_ids=cf[0], cf_mask=cf[1], cf_positions=cf[2])
        t = to_device(host, device)
        logits = model(input_ids=t["ids"], attention_mask=t["mask"], position_ids=t["positions"]).logits  # (B, W, V)
        vocab = logits.shape[-1]
        shifted = logits[:, :-1].float()
        target = t["labels"][:, 1:].reshape(-1)
        w = t["w"][:, 1:].reshape(-1)
        ce = F.cross_entropy(shifted.reshape(-1, vocab), target, ignore_index=-100, reduction="none")
        loss = (w * ce).sum() / w.sum()
        if use_cf:
            cf_logits = model(input_ids=t["cf_ids"], attention_mask=t["cf_mask"], position_ids=t["cf_positions"]).logits
            diff = (shifted - cf_logits[:, :-1].float()).reshape(-1, vocab)
            ce_cf = F.cross_entropy(diff, target, ignore_index=-100, reduction="none")
            loss = loss + args.alpha * (w * ce_cf).sum() / w.sum()
        return loss

    def counts(index):
        exs = [examples[i] for i in index]
        f = [len(e.prompt) + len(e.response) for e in exs]
        cf = [len(cf_prompt) + len(e.response) for e in exs] if use_cf else []
        computed = len(exs) * max(f) * (2 if use_cf else 1)
        return {"lengths": f + cf, "computed": computed, "head_positions": sum(f) + sum(cf)}

    return Leg(order, loss_of, counts, plain_backward(loss_of))


LEGS = {"engine": engine_leg, "reference": reference_leg, "gradcraft": gradcraft_leg}
RATIOS = (("engine", "reference"), ("gradcraft", "engine"))  # (numerator leg, denominator leg) when both run


def _status_bytes(key: str) -> int:
    """A size from /proc/self/status (Linux), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {key} in /proc/self/status")


def reset_peak_rss() -> int | None:
    """Return freed memory to the system and reset the process's peak resident size to the
    current one (Linux); the current size in bytes, None where this cannot be done."""
    try:
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        return _status_bytes("VmRSS")
    except OSError:
        return None


# ------------------------------------------------------------------------------------- timing


class Runner:
    """One leg's order, step and counts, built once; `epoch()` times one epoch with a fresh AdamW."""

    def __init__(self, name, model, examples, cf_prompt, args, device, autocast, flops: Flops):
        self.name, self.model, self.device, self.autocast = name, model, device, autocast
        self.leg = LEGS[name](model, examples, cf_prompt, args)
        self.order = self.leg.order
        self.n_examples = len(examples)
        per_step = [self.leg.counts(index) for index in self.order]
        self.tokens = sum(sum(c["lengths"]) for c in per_step)
        self.computed = sum(c["computed"] for c in per_step)
        self.flops = sum(flops.step(c["lengths"], c["head_positions"]) for c in per_step)

    def _steps(self, batches) -> None:
        import torch

        optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-5)
        backward = self.leg.start()
        self.model.train()
        for index in batches:
            backward(index, self.device, self.autocast)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        del optimizer, backward  # their state goes before the next leg measures its peak

    def warm_up(self, steps: int) -> None:
        self._steps(self.order[:steps])

    def epoch(self) -> dict:
        import torch

        cuda = self.device.type == "cuda"
        start_rss = None
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            start_rss = reset_peak_rss()
        t0 = time.perf_counter()
        self._steps(self.order)
        if cuda:
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - t0
        out = {"seconds": seconds}
        if cuda:
            out["peak_allocated_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
            out["peak_reserved_gib"] = torch.cuda.max_memory_reserved(self.device) / 2**30
            torch.cuda.empty_cache()
        elif start_rss is not None:
            peak = _status_bytes("VmHWM")
            out["peak_rss_gib"] = peak / 2**30
            out["peak_rss_rise_gib"] = (peak - start_rss) / 2**30
        return out


def same_batch_losses(model, examples, cf_prompt, args, device, autocast):
    """The engine's and the reference's losses on the reference order's first micro-batch, weights untouched."""
    import torch

    index = reference_leg(model, examples, cf_prompt, args).order[0]
    model.eval()
    with torch.no_grad(), autocast():
        engine = float(engine_leg(model, examples, cf_prompt, args).loss_of(index, device))
        reference = float(reference_leg(model, examples, cf_prompt, args).loss_of(index, device))
    return engine, reference


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def _fmt(s: dict | None, spec: str) -> str:
    if s is None:
        return "-"
    return f"{format(s['median'], spec)} [{format(s['min'], spec)}-{format(s['max'], spec)}]"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default=None,
        help="model architecture, random weights (default qwen2-0.5b; tiny with --quick)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="auto", help="auto: bf16-mixed on a GPU, fp32 on a CPU (the engine's default)"
    )
    parser.add_argument("--micro-batch", type=int, default=16, help="examples per micro-batch")
    parser.add_argument(
        "--steps", type=int, default=20, help="micro-batches per leg and epoch (the epoch: steps x micro-batch examples)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed micro-batches of each leg before the first timed round")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds, each one epoch of every leg, the order alternating")
    parser.add_argument(
        "--legs",
        default="engine,reference",
        help=f"comma-separated legs to time, of {', '.join(LEGS)} (default engine,reference)",
    )
    parser.add_argument("--prompt-len", type=int, default=200, help="longest factual prompt, tokens")
    parser.add_argument("--min-prompt-len", type=int, default=80, help="shortest factual prompt, tokens")
    parser.add_argument("--response-len", type=int, default=20, help="longest response (title + EOS), tokens")
    parser.add_argument("--cf-len", type=int, default=60, help="counterfactual prompt, tokens")
    parser.add_argument("--alpha", type=float, default=0.1, help="CFT counterfactual weight (0: no counterfactual pass)")
    parser.add_argument("--beta", type=float, default=0.25, help="CFT weight of the last label token (linear decay)")
    parser.add_argument(
        "--peak-flops", type=float, default=None, help="peak FLOP/s for MFU (default: the table of known GPUs' bf16 dense peaks)"
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="dry run: tiny shape and sizes, one round (under a minute on a CPU)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    args = parser.parse_args(argv)  # fmt: skip
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    args.shape = args.shape or ("tiny" if args.quick else "qwen2-0.5b")
    if not args.min_prompt_len <= args.prompt_len or args.min_prompt_len < 1 or args.response_len < 2:
        parser.error("need 1 <= --min-prompt-len <= --prompt-len and --response-len >= 2")
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be at least 1")
    args.legs = [leg.strip() for leg in args.legs.split(",") if leg.strip()]
    unknown = [leg for leg in args.legs if leg not in LEGS]
    if unknown or not args.legs:
        parser.error(f"--legs names {', '.join(unknown) or 'nothing'}; choose from {', '.join(LEGS)}")
    return args


def time_rounds(runners: dict, args) -> dict[str, list[dict]]:
    """A warm-up, then --repeats rounds of one timed epoch per leg, the order reversed every other round."""
    for runner in runners.values():
        runner.warm_up(args.warmup)
    rounds: dict[str, list[dict]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(args.repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            out = runners[name].epoch()
            rounds[name].append(out)
            print(f"  round {r + 1}: {name:9s} {out['seconds']:8.3f} s", flush=True)
    return rounds


MEMORY_KEYS = ("peak_allocated_gib", "peak_reserved_gib", "peak_rss_gib", "peak_rss_rise_gib")


def leg_summary(runner: Runner, rounds: list[dict], peak_flops: float | None) -> dict:
    seconds = [o["seconds"] for o in rounds]
    leg = {
        "samples_per_s": spread([runner.n_examples / s for s in seconds]),
        "tokens_per_s": spread([runner.tokens / s for s in seconds]),
        "ms_per_step": spread([1000 * s / len(runner.order) for s in seconds]),
        "mfu": spread([runner.flops / s / peak_flops for s in seconds]) if peak_flops else None,
        "padding": 1 - runner.tokens / runner.computed,
        "tokens": runner.tokens,
        "model_flops_per_epoch": runner.flops,
    }
    for key in MEMORY_KEYS:
        if all(key in o for o in rounds):
            leg[key] = max(o[key] for o in rounds)
    return leg


def leg_ratios(runners: dict, rounds: dict, legs: dict, a: str, b: str, peak_flops: float | None) -> dict:
    """Leg a against leg b: samples/s (and MFU) per round, median [min-max], and peak memory."""
    a_s = [o["seconds"] for o in rounds[a]]
    b_s = [o["seconds"] for o in rounds[b]]
    out: dict = {"samples_per_s": spread([sb / sa for sa, sb in zip(a_s, b_s)])}
    if peak_flops:
        a_f, b_f = runners[a].flops, runners[b].flops
        out["mfu"] = spread([(a_f / sa) / (b_f / sb) for sa, sb in zip(a_s, b_s)])
    for key in MEMORY_KEYS:
        if key in legs[a] and key in legs[b] and legs[b][key] > 0:
            out[key] = legs[a][key] / legs[b][key]
    return out


def print_table(legs: dict, ratios: dict, repeats: int, peak_flops: float | None, cuda: bool) -> None:
    print(f"  median [min-max] of {repeats} rounds" + ("" if peak_flops else "; MFU: unknown peak (give --peak-flops)"))
    memory_head = "peak GiB alloc/reserved" if cuda else "peak RSS GiB (rise)"
    print(f"  {'leg':10s} {'samples/s':>24s} {'ms/step':>24s} {'MFU':>24s} {'padding':>8s} {memory_head:>24s}")
    for name, leg in legs.items():
        mfu = None if leg["mfu"] is None else {k: 100 * v for k, v in leg["mfu"].items() if k != "values"}
        if cuda:
            memory = f"{leg['peak_allocated_gib']:.2f}/{leg['peak_reserved_gib']:.2f}"
        elif "peak_rss_gib" in leg:
            memory = f"{leg['peak_rss_gib']:.3f} ({leg['peak_rss_rise_gib']:+.3f})"
        else:
            memory = "-"
        print(
            f"  {name:10s} {_fmt(leg['samples_per_s'], '.2f'):>24s} {_fmt(leg['ms_per_step'], '.1f'):>24s} "
            f"{_fmt(mfu, '.2f') + ('%' if mfu else ''):>24s} {leg['padding']:8.1%} {memory:>24s}"
        )
    for pair, values in ratios.items():
        print(
            f"  {pair}: "
            + ", ".join(f"{k} x{_fmt(v, '.2f')}" if isinstance(v, dict) else f"{k} x{v:.2f}" for k, v in values.items())
        )


def main(argv=None) -> dict:
    args = parse_args(argv)

    import torch
    import transformers

    from bench.seeding import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    cuda = device.type == "cuda"
    precision = args.precision if args.precision != "auto" else ("bf16-mixed" if cuda else "fp32")
    dtype = torch.bfloat16 if precision == "bf16-pure" else torch.float32
    if precision == "bf16-mixed":
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    device_name = torch.cuda.get_device_name(device) if cuda else "cpu"
    if args.peak_flops:
        peak_label, peak_flops = "--peak-flops", args.peak_flops
    elif cuda:
        peak_label, peak_flops = device_peak(device_name)
    else:
        peak_label, peak_flops = None, None

    model = build(args.shape, dtype).to(device)
    flops = Flops(model)
    examples, cf_prompt = synthetic_examples(args.steps * args.micro_batch, model.config.vocab_size, args, args.seed)
    threads = torch.get_num_threads()
    print(
        f"{args.shape}: {flops.non_embedding / 1e6:.1f}M non-embedding parameters, {precision}, "
        f"{model.config._attn_implementation} attention, {device}"
        + (f" ({device_name}, peak {peak_label or 'unknown'})" if cuda else f", {threads} threads")
        + f"; {len(examples)} examples in micro-batches of {args.micro_batch}, prompt {args.min_prompt_len}-{args.prompt_len}"
        + f", response {max(2, args.response_len // 2)}-{args.response_len}, cf prompt {args.cf_len}, alpha {args.alpha}"
        + f", beta {args.beta}; {args.repeats} rounds after a warm-up of {args.warmup} micro-batches per leg"
    )

    engine_loss, reference_loss = same_batch_losses(model, examples, cf_prompt, args, device, autocast)
    gap = abs(engine_loss - reference_loss)
    print(f"loss on the same micro-batch: engine {engine_loss:.5f}, reference {reference_loss:.5f} (|diff| {gap:.1e})")
    assert gap <= LOSS_TOLERANCE, f"the legs' losses differ by {gap:.3g} > {LOSS_TOLERANCE}"

    runners = {name: Runner(name, model, examples, cf_prompt, args, device, autocast, flops) for name in args.legs}
    rounds = time_rounds(runners, args)
    legs = {name: leg_summary(runner, rounds[name], peak_flops) for name, runner in runners.items()}
    ratios = {f"{a}/{b}": leg_ratios(runners, rounds, legs, a, b, peak_flops) for a, b in RATIOS if a in legs and b in legs}
    print_table(legs, ratios, args.repeats, peak_flops, cuda)

    result = {
        "benchmark": "llm_throughput",
        "shape": args.shape,
        "device": str(device),
        "device_name": device_name,
        "peak": {"device": peak_label, "flops": peak_flops},
        "precision": precision,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": threads,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "non_embedding_parameters": flops.non_embedding,
        "losses": {"engine": engine_loss, "reference": reference_loss},
        "legs": legs,
        "ratios": ratios.get("engine/reference"),  # engine/reference, as before the gradcraft leg existed
        "all_ratios": ratios,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
