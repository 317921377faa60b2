"""Training throughput of the LLM engine against a reference-style loop, side by side in one process,
on a model built from a published config with random weights (no download).

    .venv/bin/python benchmarks/llm_throughput.py --shape qwen2-0.5b                 # CUDA when there is one
    .venv/bin/python benchmarks/llm_throughput.py --shape tiny --device cpu --threads 1

Legs, each one epoch over the same synthetic examples with the same model (a fresh AdamW each),
timed after --warmup untimed micro-batches:
    engine     what methods.llm.train runs: micro-batches grouped by length (EpochBatches), the
               engine's collate (right padding; the counterfactual sequences padded to their own
               length), LabelLogits (the LM head at label positions only) and cft_loss
    reference  the reference code's way: micro-batches in plain shuffled order, the factual and the
               counterfactual sequences left-padded to the micro-batch's factual width (so that the
               label positions line up), model(...).logits (the LM head over the full vocabulary
               at every position) and the loss computed from those full logits (cross-entropy at
               every position, -100 outside the response)
Before timing, both legs' losses on the same micro-batch must agree to 1e-2 (asserted, printed).

Reported per leg: samples/s, tokens/s (real tokens through the model, factual + counterfactual),
ms per micro-batch, the padded share of the computed sequence positions, MFU and peak CUDA memory;
then the ratios engine/reference. MFU = 6 x parameters x real tokens / seconds / peak FLOP/s,
the same model FLOPs per real token for both legs (padding and the reference's LM head at every
position are the waste it shows); the peak is --peak-flops, by default the bf16 dense peak of a
known GPU (H100/H200 989e12, A100 312e12), on a CPU only when --peak-flops is given.

Examples mimic the protocol's prompts: a factual prompt of --min-prompt-len to --prompt-len tokens
(uniform: histories of different lengths), a response of half --response-len to --response-len
tokens, and a counterfactual prompt of --cf-len tokens.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
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

# bf16 dense peak FLOP/s by GPU name (a substring of torch.cuda.get_device_name)
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}
LOSS_TOLERANCE = 1e-2


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


# ------------------------------------------------------------------------------ the engine's leg


def engine_leg(model, examples, cf_prompt, args):
    """(micro-batch index lists in the engine's order, step(index) -> (loss, real tokens, computed positions))."""
    from methods.llm.batching import EpochBatches, collate
    from methods.llm.loss import LabelLogits, cft_loss

    module = LabelLogits(model)
    lengths = [len(e.prompt) + len(e.response) for e in examples]
    order = EpochBatches(len(examples), args.micro_batch, args.seed, lengths=lengths).batches()
    use_cf = args.alpha != 0

    def loss_of(index, device):
        batch = collate([examples[i] for i in index], cf_prompt, pad_id=0, counterfactual=use_cf)
        batch = {k: v.to(device) for k, v in batch.items()}
        z_f, z_cf = module(batch, counterfactual=use_cf)
        loss = cft_loss(z_f, z_cf, batch["labels"], batch["example_index"], args.alpha, args.beta)[0]
        real = int(batch["attention_mask"].sum()) + (int(batch["cf_attention_mask"].sum()) if use_cf else 0)
        computed = batch["input_ids"].numel() + (batch["cf_input_ids"].numel() if use_cf else 0)
        return loss, real, computed

    return order, loss_of


# --------------------------------------------------------------------------- the reference leg


def reference_batch(examples, cf_prompt, use_cf: bool):
    """Left-padded factual and counterfactual sequences of the micro-batch's factual width, labels
    -100 outside the response (which ends both sequences, so that its positions line up), linear
    token weights (1 on the first response token down to beta on the last) per position."""
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

    factual = pack([e.prompt for e in examples])
    cf = pack([list(cf_prompt)] * b) if use_cf else None
    return factual, cf


def reference_weights(labels, beta: float):
    """(B, W) linear token weights over each row's response positions (labels != -100), 0 elsewhere."""
    import torch

    weights = torch.zeros(labels.shape, dtype=torch.float32)
    for row in range(labels.shape[0]):
        cols = (labels[row] != -100).nonzero().flatten()
        n = len(cols)
        t = torch.arange(n, dtype=torch.float32)
        weights[row, cols] = 1.0 - t * (1.0 - beta) / max(n - 1, 1)
    return weights


def reference_leg(model, examples, cf_prompt, args):
    """(micro-batch index lists in plain shuffled order, step(index) -> (loss, real tokens, computed positions))."""
    import torch.nn.functional as F

    from methods.llm.batching import EpochBatches

    order = EpochBatches(len(examples), args.micro_batch, args.seed).batches()
    use_cf = args.alpha != 0

    def loss_of(index, device):
        factual, cf = reference_batch([examples[i] for i in index], cf_prompt, use_cf)
        ids, mask, positions, labels = (t.to(device) for t in factual)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits  # (B, W, V)
        vocab = logits.shape[-1]
        shifted = logits[:, :-1].float()
        target = labels[:, 1:]
        w = reference_weights(labels, args.beta)[:, 1:].to(device)
        ce = F.cross_entropy(shifted.reshape(-1, vocab), target.reshape(-1), ignore_index=-100, reduction="none")
        loss = (w.reshape(-1) * ce).sum() / w.sum()
        real, computed = int(mask.sum()), ids.numel()
        if use_cf:
            cf_ids, cf_mask, cf_positions, _ = (t.to(device) for t in cf)
            cf_logits = model(input_ids=cf_ids, attention_mask=cf_mask, position_ids=cf_positions).logits
            diff = (shifted - cf_logits[:, :-1].float()).reshape(-1, vocab)
            ce_cf = F.cross_entropy(diff, target.reshape(-1), ignore_index=-100, reduction="none")
            loss = loss + args.alpha * (w.reshape(-1) * ce_cf).sum() / w.sum()
            real, computed = real + int(cf_mask.sum()), computed + cf_ids.numel()
        return loss, real, computed

    return order, loss_of


# --------------------------------------------------------------------------------- decoding legs
# Decoding throughput (the own beam search of methods.llm.beam against model.generate) belongs
# here, beside the training legs, once it is written: a name -> callable(model, args) -> dict of
# the same measures. None yet; the training legs below do not depend on it.
DECODING_LEGS: dict = {}


# ------------------------------------------------------------------------------------- timing


def run_leg(name, leg, model, examples, cf_prompt, args, device, autocast):
    import torch

    cuda = device.type == "cuda"
    order, loss_of = leg(model, examples, cf_prompt, args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()

    def step(index):
        with autocast():
            loss, real, computed = loss_of(index, device)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return real, computed

    for index in order[: args.warmup]:
        step(index)
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    real = computed = 0
    t0 = time.perf_counter()
    for index in order:
        r, c = step(index)
        real, computed = real + r, computed + c
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    optimizer.state.clear()  # its moments go before the next leg measures its peak
    if cuda:
        torch.cuda.empty_cache()
    return dict(
        name=name,
        seconds=seconds,
        samples_per_s=len(examples) / seconds,
        tokens_per_s=real / seconds,
        ms_per_step=1000 * seconds / len(order),
        padding=1 - real / computed,
        tokens=real,
        peak_gib=peak,
    )


def same_batch_losses(model, examples, cf_prompt, args, device, autocast):
    """Both legs' losses on the reference order's first micro-batch, weights untouched."""
    import torch

    index = reference_leg(model, examples, cf_prompt, args)[0][0]
    model.eval()
    with torch.no_grad(), autocast():
        engine = float(engine_leg(model, examples, cf_prompt, args)[1](index, device)[0])
        reference = float(reference_leg(model, examples, cf_prompt, args)[1](index, device)[0])
    return engine, reference


def default_peak_flops(device) -> float | None:
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_FLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_FLOPS[key]
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] + " " + __doc__.splitlines()[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-0.5b", help="model architecture (random weights)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--micro-batch", type=int, default=16, help="examples per micro-batch")
    parser.add_argument(
        "--steps", type=int, default=20, help="timed micro-batches per leg (the epoch: steps x micro-batch examples)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed micro-batches before each leg's epoch")
    parser.add_argument("--prompt-len", type=int, default=200, help="longest factual prompt, tokens")
    parser.add_argument("--min-prompt-len", type=int, default=80, help="shortest factual prompt, tokens")
    parser.add_argument("--response-len", type=int, default=20, help="longest response (title + EOS), tokens")
    parser.add_argument("--cf-len", type=int, default=60, help="counterfactual prompt, tokens")
    parser.add_argument("--alpha", type=float, default=0.1, help="CFT counterfactual weight (0: no counterfactual pass)")
    parser.add_argument("--beta", type=float, default=0.25, help="CFT weight of the last label token (linear decay)")
    parser.add_argument("--peak-flops", type=float, default=None, help="peak FLOP/s for MFU (default: known GPUs' bf16 peak)")
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.min_prompt_len <= args.prompt_len or args.min_prompt_len < 1 or args.response_len < 2:
        parser.error("need 1 <= --min-prompt-len <= --prompt-len and --response-len >= 2")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)

    import torch

    from bench.seeding import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32  # as methods.llm.models loads (and bf16 autocast, as accelerate)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    model = build(args.shape, dtype).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    examples, cf_prompt = synthetic_examples(args.steps * args.micro_batch, model.config.vocab_size, args, args.seed)
    peak_flops = args.peak_flops or default_peak_flops(device)
    print(
        f"{args.shape}: {n_params / 1e6:.1f}M parameters, {dtype}, {model.config._attn_implementation} attention, {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if cuda else f", {torch.get_num_threads()} threads")
        + f"; {len(examples)} examples in micro-batches of {args.micro_batch}, prompt {args.min_prompt_len}-{args.prompt_len}"
        + f", response {max(2, args.response_len // 2)}-{args.response_len}, cf prompt {args.cf_len}, alpha {args.alpha}"
        + f", beta {args.beta}"
    )

    engine_loss, reference_loss = same_batch_losses(model, examples, cf_prompt, args, device, autocast)
    gap = abs(engine_loss - reference_loss)
    print(f"loss on the same micro-batch: engine {engine_loss:.5f}, reference {reference_loss:.5f} (|diff| {gap:.1e})")
    assert gap <= LOSS_TOLERANCE, f"the legs' losses differ by {gap:.3g} > {LOSS_TOLERANCE}"

    results = {}
    header = f"  {'leg':10s} {'samples/s':>10s} {'tokens/s':>11s} {'ms/step':>9s} {'padding':>8s} {'MFU':>7s} {'peak GiB':>9s}"
    print(header)
    for name, leg in (("engine", engine_leg), ("reference", reference_leg)):
        r = run_leg(name, leg, model, examples, cf_prompt, args, device, autocast)
        r["mfu"] = 6 * n_params * r["tokens"] / r["seconds"] / peak_flops if peak_flops else None
        results[name] = r
        print(
            f"  {name:10s} {r['samples_per_s']:10.2f} {r['tokens_per_s']:11,.0f} {r['ms_per_step']:9.1f} {r['padding']:8.1%}"
            + (f" {r['mfu']:7.2%}" if r["mfu"] is not None else f" {'-':>7s}")
            + (f" {r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f" {'-':>9s}")
        )
    e, ref = results["engine"], results["reference"]
    ratios = {"samples_per_s": e["samples_per_s"] / ref["samples_per_s"]}
    if e["mfu"] is not None:
        ratios["mfu"] = e["mfu"] / ref["mfu"]
    if e["peak_gib"] is not None:
        ratios["peak_memory"] = e["peak_gib"] / ref["peak_gib"]
    print("  engine/reference: " + ", ".join(f"{k} x{v:.2f}" for k, v in ratios.items()))
    for name in DECODING_LEGS:  # none yet (see above)
        results[name] = DECODING_LEGS[name](model, args)
    return {"losses": (engine_loss, reference_loss), "legs": results, "ratios": ratios}


if __name__ == "__main__":
    main()
