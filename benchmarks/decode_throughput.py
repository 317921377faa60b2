"""Decoding throughput: the own beam search (methods.llm.beam) against transformers' generate, side
by side in one process on the same model and prompts, with the outputs compared in the run.

    python benchmarks/decode_throughput.py --model tiny --prompts 16           # random tiny model
    python benchmarks/decode_throughput.py --model smollm2-135m --threads 1    # real weights, offline
    python benchmarks/decode_throughput.py --model Qwen/Qwen2-0.5B --device cuda --json gpu.json
    python benchmarks/decode_throughput.py --quick                             # dry run: tiny model, a few prompts
    python benchmarks/decode_throughput.py --threads 1 --assistant-scale 0.5    # D3's text-free assistant's cost

Legs: 10-beam constrained decoding over the catalogue titles (D3 style) and 5-beam free decoding
followed by L2 grounding (the catalogue's title embeddings are computed once, untimed: a method
computes them once per run; the leg times the search, the beams' embeddings and the grounding).
Prompts and titles are MovieLens-100k's (the split is prepared on first use; it ships with
RecBole). Every leg and search first runs once on one batch, untimed (warm-up); then --repeats
rounds time both searches of both legs, alternating which search goes first. Printed per leg:
samples/s of each search and the own/transformers speed ratio, median [min-max] over the rounds.

Outputs: in float32 on a CPU the two searches must return the same lists (the run stops
otherwise). Elsewhere (a GPU, bf16) near-ties make differences certain, so the run reports how
far the searches agree instead: the share of prompts whose whole lists are identical, the share
whose first result is the same, and the largest score gap between the two first results, where
a result's score is the model's summed log-probability of its tokens after the prompt, computed
again by one forward pass of the model as loaded (its log-softmax in float32, as the searches take
it) and divided by the token count for free decoding (its length penalty is 1). The first timed round's outputs are compared.

`--assistant-scale G` (G other than 1) adds a leg: the own 10-beam constrained search with D3's
text-free assistant mixed in (methods.llm.tfa, gamma G, `--assistant-reduce`) against the same
search without it. The assistant is synthetic (per prompt, 3 x standard normal scores over the
catalogue, seeded): the mix's cost does not depend on where the assistant comes from, and the
searches may take different numbers of steps, so the leg reports the median time of a decoding
step (from one one-token model pass to the next, seen by a forward hook: the step's forward,
constraint, mix and bookkeeping, without the prefill) of each and their ratio, median [min-max]
over the rounds, beside the samples/s. The outputs differ by design and are not compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DTYPES = ("auto", "float32", "bfloat16")
QUICK = dict(prompts=4, batch_size=4, max_new_tokens=16, repeats=1)
SEARCHES = ("own", "transformers")


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def sequence_score(model, prompt_ids: list[int], tokens: list[int], normalise: bool) -> float:
    """The model's log-probability of `tokens` after `prompt_ids` (float32 softmax), per token when
    `normalise` (a beam score with length penalty 1)."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids + tokens], device=device)
    with torch.inference_mode():
        logits = model(input_ids=ids, use_cache=False).logits[0, len(prompt_ids) - 1 : -1].float()
        logp = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(tokens, device=device)[:, None]).sum().item()
    return logp / len(tokens) if normalise else logp


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m, a Hugging Face id or a local folder")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--dtype", choices=DTYPES, default="auto", help="auto: bfloat16 on a GPU (as the methods decode), float32 on a CPU"
    )
    parser.add_argument(
        "--layout",
        choices=("quoted", "title-close"),
        default="quoted",
        help="label layout (the methods' label_layout; default theirs)",
    )
    parser.add_argument("--prompts", type=int, default=16, help="test samples to decode")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per decoding batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up")
    parser.add_argument("--threads", type=int, default=0, help="CPU torch threads (0: torch's default)")
    parser.add_argument(
        "--quick", action="store_true", help="dry run: 4 prompts, 16 new tokens, one round (tiny model by default)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results to this file")
    parser.add_argument(
        "--assistant-scale", type=float, default=1.0, help="not 1: add the text-free assistant leg with this gamma (e.g. 0.5)"
    )
    parser.add_argument("--assistant-reduce", choices=("max", "sum"), default="max", help="the assistant leg's reduce")
    args = parser.parse_args(argv)  # fmt: skip
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.repeats < 1 or args.prompts < 1:
        parser.error("--repeats and --prompts must be at least 1")
    return args


@dataclass
class Setup:
    """What every leg decodes with: the model as the methods decode with it, the ml-100k prompts,
    the catalogue's titles, its trie and title embeddings (both once per run in a method)."""

    args: argparse.Namespace
    model: object
    tokenizer: object
    fmt: object
    prompts: list[str]
    titles: list[str]
    trie: object
    item_vectors: object
    device: str
    dtype: object

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def exact(self) -> bool:  # where the two searches must agree exactly
        import torch

        return not self.cuda and self.dtype == torch.float32


def set_up(args) -> Setup:
    import torch

    from bench import paths
    from bench.data.prepare import is_prepared, load_split, prepare
    from bench.seeding import resolve_device
    from methods.llm import models
    from methods.llm.decode import TitleTrie
    from methods.llm.examples import inference_prompts
    from methods.llm.ground import embed_texts
    from methods.llm.prompts import PromptFormat

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    dtype = {"auto": torch.bfloat16 if cuda else torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if not is_prepared("ml-100k"):
        prepare("ml-100k")
    split = load_split("ml-100k")
    titles = list(split.items.titles)
    texts = models.tiny_training_texts(split.card, titles) if args.model == models.TINY else None
    loaded = models.load_model(args.model, device, cache_dir=paths.cache_dir(), tiny_texts=texts)
    model, tokenizer = loaded.model.to(device=device, dtype=dtype).eval(), loaded.tokenizer
    fmt = PromptFormat(tokenizer, split.card, args.layout, 1024)  # the methods' default cutoff
    prompts = inference_prompts(fmt, titles, split.test.head(args.prompts))
    trie = TitleTrie(fmt, titles)  # the method builds it once per run, as here
    item_vectors = embed_texts(model, tokenizer, titles, batch_size=32)  # once per run in a method: untimed
    return Setup(args, model, tokenizer, fmt, prompts, titles, trie, item_vectors, device, dtype)


def search_legs(setup: Setup) -> dict:
    """{leg: (label, fn(search, prompts) -> outputs)} of the own search against transformers'."""
    from methods.llm.decode import constrained_beam_search, generate_beams
    from methods.llm.ground import embed_texts, ground_by_l2

    args, model, tokenizer = setup.args, setup.model, setup.tokenizer

    def constrained(search, which):
        items, _ = constrained_beam_search(model, setup.fmt, which, setup.titles, num_beams=10, max_new_tokens=args.max_new_tokens,
                                           batch_size=args.batch_size, trie=setup.trie, search=search)  # fmt: skip
        return [row[row >= 0].tolist() for row in items]

    def grounded(search, which):
        beams = generate_beams(model, tokenizer, which, num_beams=5, num_return=5, max_new_tokens=args.max_new_tokens,
                               batch_size=args.batch_size, search=search)  # fmt: skip
        flat = embed_texts(model, tokenizer, [t for row in beams for t in row], batch_size=32)
        ground_by_l2(flat.view(len(beams), 5, -1), setup.item_vectors, 50)
        return beams

    return {"constrained": ("constrained, 10 beams", constrained), "grounded": ("free, 5 beams + grounding", grounded)}


@dataclass
class Steps:
    """The decoding steps of one timed call, seen from the model's passes: `seconds` from each
    one-token pass to the next one-token pass of the same search (that step's forward, constraint,
    mix and bookkeeping; the prefill and the gaps between batches left out), `count` all passes."""

    seconds: list[float]
    count: int


def _step_recorder(steps: Steps):
    """A forward pre-hook filling `steps`: a pass of more than one token is a prefill."""
    last = {"time": None}

    def record(_module, args, kwargs):
        now = time.perf_counter()
        ids = kwargs.get("input_ids", args[0] if args else None)
        one_token = ids is not None and ids.shape[-1] == 1
        if one_token and last["time"] is not None:
            steps.seconds.append(now - last["time"])
        last["time"] = now if one_token else None
        steps.count += 1

    return record


def timed(setup: Setup, fn, variant) -> tuple[object, float, Steps]:
    """(outputs, seconds, its Steps) of `fn(variant, prompts)` on every prompt."""
    import torch

    steps = Steps([], 0)
    hook = setup.model.register_forward_pre_hook(_step_recorder(steps), with_kwargs=True)
    try:
        if setup.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn(variant, setup.prompts)
        if setup.cuda:
            torch.cuda.synchronize()
        return out, time.perf_counter() - start, steps
    finally:
        hook.remove()


def run_rounds(setup: Setup, legs: dict, variants: tuple[str, str]) -> tuple[dict, dict, dict]:
    """Warm-up (one batch of each leg and variant, untimed), then --repeats rounds alternating which
    variant goes first: {leg: {variant: [seconds]}}, {leg: {variant: [Steps]}}, {leg: {variant:
    the first timed round's outputs}}."""
    args = setup.args
    for _, fn in legs.values():
        for variant in variants:
            fn(variant, setup.prompts[: args.batch_size])
    seconds = {leg: {v: [] for v in variants} for leg in legs}
    steps = {leg: {v: [] for v in variants} for leg in legs}
    outputs: dict[str, dict[str, list]] = {leg: {} for leg in legs}
    for r in range(args.repeats):
        order = variants if r % 2 == 0 else variants[::-1]
        for leg, (_, fn) in legs.items():
            for variant in order:
                out, s, n = timed(setup, fn, variant)
                seconds[leg][variant].append(s)
                steps[leg][variant].append(n)
                outputs[leg].setdefault(variant, out)
        print(f"  round {r + 1}: " + ", ".join(f"{leg} {variants[0]} {seconds[leg][variants[0]][-1]:.2f}s / {variants[1]} "
                                              f"{seconds[leg][variants[1]][-1]:.2f}s" for leg in legs), flush=True)  # fmt: skip
    return seconds, steps, outputs


def compare_searches(setup: Setup, legs: dict, seconds: dict, outputs: dict) -> tuple[dict, list[str]]:
    """Per leg: samples/s of each search, their ratio and how far their outputs agree; the legs
    whose outputs differ."""
    from methods.llm import prompts as P

    fmt, tokenizer, prompts = setup.fmt, setup.tokenizer, setup.prompts

    def top1_tokens(leg, result) -> list[int] | None:
        if not result:
            return None
        if leg == "constrained":
            return fmt.response_ids(setup.titles[result[0]])
        return tokenizer(result[0], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    results, different = {}, []
    for leg, (label, _) in legs.items():
        own, ref = outputs[leg]["own"], outputs[leg]["transformers"]
        same = [a == b for a, b in zip(own, ref)]
        top1 = [bool(a) and bool(b) and a[0] == b[0] for a, b in zip(own, ref)]
        gap = 0.0
        for i, (a, b) in enumerate(zip(own, ref)):
            if not (a and b) or a[0] == b[0]:
                continue
            prompt = P.prompt_ids(tokenizer, prompts[i])
            scores = [sequence_score(setup.model, prompt, top1_tokens(leg, x), normalise=leg == "grounded") for x in (a, b)]
            gap = max(gap, abs(scores[0] - scores[1]))
        own_sps = [len(prompts) / s for s in seconds[leg]["own"]]
        ref_sps = [len(prompts) / s for s in seconds[leg]["transformers"]]
        ratio = spread([t / o for o, t in zip(seconds[leg]["own"], seconds[leg]["transformers"])])
        results[leg] = res = {
            "label": label,
            "own_samples_per_s": spread(own_sps),
            "transformers_samples_per_s": spread(ref_sps),
            "ratio": ratio,
            "identical_share": sum(same) / len(same),
            "top1_agreement": sum(top1) / len(top1),
            "largest_top1_score_gap": gap,
        }
        print(
            f"{label}: own {statistics.median(own_sps):.2f} samples/s, transformers {statistics.median(ref_sps):.2f} samples/s, "
            f"own/transformers x{ratio['median']:.2f} [{ratio['min']:.2f}-{ratio['max']:.2f}]; identical lists "
            f"{res['identical_share']:.0%}, top-1 agreement {res['top1_agreement']:.0%}, largest top-1 score gap {gap:.2e}"
        )
        if not all(same):
            different.append(leg)
    return results, different


def assistant_leg(setup: Setup) -> dict:
    """The own constrained search with D3's text-free assistant (a synthetic one) against the same
    search without it: the median seconds of a decoding step (Steps) and samples/s of each, and
    their ratios."""
    import torch

    from methods.llm.decode import constrained_beam_search
    from methods.llm.tfa import TextFreeAssistant

    args = setup.args
    scores = 3 * torch.randn(len(setup.prompts), len(setup.titles), generator=torch.Generator().manual_seed(0))
    mixed = TextFreeAssistant(lambda rows: scores[list(rows)], args.assistant_scale, args.assistant_reduce)

    def constrained(variant, which):
        items, _ = constrained_beam_search(setup.model, setup.fmt, which, setup.titles, num_beams=10,
                                           max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, trie=setup.trie,
                                           assistant=mixed if variant == "mixed" else None)  # fmt: skip
        return items

    label = f"constrained, 10 beams, text-free assistant gamma {args.assistant_scale:g} ({args.assistant_reduce})"
    seconds, steps, _ = run_rounds(setup, {"tfa": (label, constrained)}, ("plain", "mixed"))
    seconds, steps = seconds["tfa"], steps["tfa"]
    variants = ("plain", "mixed")
    per_step = {v: [statistics.median(s.seconds) for s in steps[v]] for v in variants}
    step_ratio = spread([m / p for p, m in zip(per_step["plain"], per_step["mixed"])])
    sample_ratio = spread([m / p for p, m in zip(seconds["plain"], seconds["mixed"])])
    print(
        f"{label}: a step takes {statistics.median(per_step['plain']) * 1e3:.2f} ms without, "
        f"{statistics.median(per_step['mixed']) * 1e3:.2f} ms with (x{step_ratio['median']:.3f} "
        f"[{step_ratio['min']:.3f}-{step_ratio['max']:.3f}]); per sample x{sample_ratio['median']:.3f} "
        f"[{sample_ratio['min']:.3f}-{sample_ratio['max']:.3f}], model passes {steps['plain'][0].count} without, "
        f"{steps['mixed'][0].count} with"
    )
    return {
        "label": label,
        "seconds_per_step": {v: spread(per_step[v]) for v in variants},
        "passes": {v: steps[v][0].count for v in variants},
        "samples_per_s": {v: spread([len(setup.prompts) / s for s in seconds[v]]) for v in variants},
        "step_ratio": step_ratio,
        "sample_ratio": sample_ratio,
    }


def main(argv=None) -> dict:
    args = parse_args(argv)

    import torch
    import transformers

    setup = set_up(args)
    cuda, device = setup.cuda, setup.device
    print(
        f"{args.model} ({setup.dtype}, {device}" + (f", {torch.cuda.get_device_name(device)}" if cuda else f", {torch.get_num_threads()} threads")
        + f"): {len(setup.prompts)} ml-100k test prompts, batches of {args.batch_size}, at most {args.max_new_tokens} new tokens, "
        + f"{args.repeats} rounds after a warm-up"
    )  # fmt: skip
    legs = search_legs(setup)
    seconds, _, outputs = run_rounds(setup, legs, SEARCHES)
    results, different = compare_searches(setup, legs, seconds, outputs)
    if args.assistant_scale != 1.0:
        results["assistant"] = assistant_leg(setup)
    summary = {
        "benchmark": "decode_throughput",
        "model": args.model,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "dtype": str(setup.dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "exact": setup.exact,
        "legs": results,
    }
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    if different and setup.exact:
        raise SystemExit(f"{', '.join(different)}: the two searches gave different outputs in float32 on the CPU")
    return summary


if __name__ == "__main__":
    main()
