"""Training throughput and peak memory of the LLM engine on a model built from a config (random
weights, no download), with the engine's own collator, LabelLogits and CFT loss.

    .venv/bin/python benchmarks/llm_throughput.py --shape qwen2-0.5b --device cuda
    .venv/bin/python benchmarks/llm_throughput.py --shape tiny --device cpu --steps 5

Variants, each timed on the same synthetic micro-batches in one process, in turn, after warm-up:
    sft          factual pass, LM head at label positions only (what the engine trains with)
    cft          factual + counterfactual pass, label positions only (alpha 0.1, beta 0.25)
    sft-full     factual pass through model(...).logits: the LM head over every position
Reported: tokens/s (factual + counterfactual tokens that went through the model), seconds per
micro-batch step (forward, backward, AdamW step), peak CUDA memory, and the ratios cft/sft and
sft-full/sft of the step time. Sequences mimic the protocol's prompts: a prompt of --prompt-len
tokens (history included), a response of --response-len tokens, a counterfactual prompt of
--cf-len tokens.
"""

from __future__ import annotations

import argparse
import statistics
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


def build(shape: str, dtype):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    family, kw = SHAPES[shape]
    config_cls, model_cls = (Qwen2Config, Qwen2ForCausalLM) if family == "Qwen2" else (LlamaConfig, LlamaForCausalLM)
    torch.manual_seed(0)
    model = model_cls(config_cls(**kw))
    model.config.use_cache = False
    return model.to(dtype)


def batches(n: int, micro_batch: int, vocab: int, prompt_len: int, response_len: int, cf_len: int, seed: int = 0):
    """Synthetic examples through the engine's collator (lengths jitter by up to 25%)."""
    import numpy as np

    from methods.llm.batching import collate
    from methods.llm.examples import Example

    rng = np.random.default_rng(seed)
    cf_prompt = rng.integers(1, vocab, cf_len).tolist()
    out = []
    for _ in range(n):
        examples = []
        for _ in range(micro_batch):
            p = int(prompt_len * rng.uniform(0.75, 1.0))
            r = max(2, int(response_len * rng.uniform(0.75, 1.0)))
            examples.append(Example(rng.integers(1, vocab, p).tolist(), rng.integers(1, vocab, r).tolist()))
        out.append(collate(examples, cf_prompt, pad_id=0, counterfactual=True))
    return out


def step_fn(variant: str, model, optimizer, device, autocast):
    import torch.nn.functional as F

    from methods.llm.loss import LabelLogits, cft_loss

    module = LabelLogits(model)

    def step(batch):
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            if variant == "sft-full":
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = F.cross_entropy(logits[batch["rows"], batch["cols"]].float(), batch["labels"])
            else:
                cf = variant == "cft"
                z_f, z_cf = module(batch, counterfactual=cf)
                loss = cft_loss(z_f, z_cf, batch["labels"], batch["example_index"], 0.1 if cf else 0.0, 0.25 if cf else 1.0)[0]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = int(batch["attention_mask"].sum()) + (int(batch["cf_attention_mask"].sum()) if variant == "cft" else 0)
        return tokens

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-0.5b")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--prompt-len", type=int, default=200)
    parser.add_argument("--response-len", type=int, default=20)
    parser.add_argument("--cf-len", type=int, default=60)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    args = parser.parse_args()

    import contextlib

    import torch

    from bench.seeding import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(resolve_device(args.device))
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else contextlib.nullcontext
    model = build(args.shape, dtype).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    data = batches(
        args.warmup + args.steps, args.micro_batch, model.config.vocab_size, args.prompt_len, args.response_len, args.cf_len
    )
    print(
        f"{args.shape}: {n_params / 1e6:.1f}M parameters, {dtype}, {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if cuda else f", {torch.get_num_threads()} threads")
        + f"; micro-batch {args.micro_batch}, prompt ~{args.prompt_len}, response ~{args.response_len}, cf prompt {args.cf_len}"
    )

    results = {}
    for variant in ("sft", "cft", "sft-full"):
        step = step_fn(variant, model, optimizer, device, autocast)
        if cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        times, tokens = [], 0
        for k, batch in enumerate(data):
            t0 = time.perf_counter()
            n = step(batch)
            if cuda:
                torch.cuda.synchronize(device)
            if k >= args.warmup:
                times.append(time.perf_counter() - t0)
                tokens += n
        peak = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else float("nan")
        results[variant] = (statistics.median(times), tokens / sum(times), peak)
        print(
            f"  {variant:9s} {results[variant][0] * 1000:8.1f} ms/step  {results[variant][1]:10,.0f} tok/s"
            + (f"  peak {peak:.2f} GiB" if cuda else "")
        )
    sft, cft, full = (results[v][0] for v in ("sft", "cft", "sft-full"))
    print(f"  step-time ratios: cft/sft {cft / sft:.2f}, sft-full/sft {full / sft:.2f}")


if __name__ == "__main__":
    main()
