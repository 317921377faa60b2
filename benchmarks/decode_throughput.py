"""Decoding throughput: the own beam search (methods.llm.beam) against transformers' generate, side
by side in one process on the same model and prompts, with identical outputs checked in the run.

    python benchmarks/decode_throughput.py --model tiny --prompts 16           # random tiny model
    python benchmarks/decode_throughput.py --model smollm2-135m --threads 1    # real weights, offline
    python benchmarks/decode_throughput.py --model Qwen/Qwen2-0.5B --device cuda

Legs: 10-beam constrained decoding over the catalogue titles (D3 style) and 5-beam free decoding
followed by L2 grounding. Prompts and titles are MovieLens-100k's (the split is prepared on first
use; it ships with RecBole). Prints samples/s of each leg and the own/transformers ratio.
"""

from __future__ import annotations

import argparse
import time


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m, a Hugging Face id or a local folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prompts", type=int, default=16, help="test samples to decode")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per decoding batch")
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from bench import paths
    from bench.data.prepare import load_split, prepare
    from methods.llm import models
    from methods.llm.decode import constrained_beam_search, generate_beams
    from methods.llm.examples import inference_prompts
    from methods.llm.ground import embed_texts, ground_by_l2

    if args.threads:
        torch.set_num_threads(args.threads)
    prepare("ml-100k")
    split = load_split("ml-100k")
    titles = list(split.items.titles)
    texts = models.tiny_training_texts(split.card, titles) if args.model == models.TINY else None
    loaded = models.load_model(args.model, args.device, cache_dir=paths.cache_dir(), tiny_texts=texts)
    model, tokenizer = loaded.model.to(args.device).eval(), loaded.tokenizer
    prompts = inference_prompts(tokenizer, split.card, titles, split.test.head(args.prompts), cutoff=1024)
    results = {}

    def constrained(search):
        return constrained_beam_search(model, tokenizer, prompts, titles, num_beams=10, max_new_tokens=args.max_new_tokens,
                                       batch_size=args.batch_size, search=search)  # fmt: skip

    def grounded(search):
        beams = generate_beams(model, tokenizer, prompts, num_beams=5, num_return=5, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, search=search)  # fmt: skip
        items = embed_texts(model, tokenizer, titles, batch_size=32)
        flat = embed_texts(model, tokenizer, [t for row in beams for t in row], batch_size=32)
        return beams, ground_by_l2(flat.view(len(beams), 5, -1), items, 50)

    for leg, fn in (("constrained, 10 beams", constrained), ("free, 5 beams + grounding", grounded)):
        (own, own_s), (ref, ref_s) = timed(lambda f=fn: f("own")), timed(lambda f=fn: f("transformers"))
        same = (
            all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(own, ref)) if isinstance(own, tuple) else own == ref
        )
        results[leg] = {"own_samples_per_s": len(prompts) / own_s, "transformers_samples_per_s": len(prompts) / ref_s,
                        "ratio": ref_s / own_s, "identical": bool(same)}  # fmt: skip
        r = results[leg]
        print(f"{leg}: own {r['own_samples_per_s']:.2f} samples/s, transformers {r['transformers_samples_per_s']:.2f} "
              f"samples/s, own/transformers x{r['ratio']:.2f}, identical outputs: {r['identical']}")  # fmt: skip
        if not same:
            raise SystemExit(f"{leg}: the two searches gave different outputs")
    return results


if __name__ == "__main__":
    main()
