"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`, and in-process with one:
fit a method (an LLM method with epochs=0: the deterministic tiny model as built) and let the
runner predict the synthetic test split, once with the real decoder and once with a stub decoder
whose first item is the position of each prompt in the whole test split (so the gathered order
shows exactly); each rank writes the lists it holds after gathering. pop (a score method) has no
decoder to stub: its lists and ranks are compared as they are.

`train MICRO_BATCH GRAD_ACCUM - OUT`: train the tiny model data-parallel and save each rank's weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def recommend(name: str, n_test: int, cache_dir: Path, work_dir: Path) -> dict:
    import numpy as np
    from conftest import make_split

    from bench import distributed, registry
    from bench.method import Context
    from bench.runner import predict

    split = make_split(n_test=n_test)
    cls = registry.load_class(name)
    llm = name != "pop"
    settings = {"model": "tiny", "epochs": "0", "max_new_tokens": "12", "eval_batch_size": "1"}
    config = registry.build_config(cls, settings if llm else {})
    method = cls(config)
    context = Context(
        device="cpu", seed=0, items=split.items, card=split.card, work_dir=work_dir, cache_dir=cache_dir, progress=None
    )
    method.fit(split.train, split.valid, context)
    if not llm:
        got = predict(method, split.test, 20)
        return {"world": distributed.rank_and_world()[1], "items": got.topk.tolist(), "ranks": got.ranks.tolist()}
    decoded = []
    prompts_for = method.prompts_for
    method.prompts_for = lambda samples: decoded.append(len(samples)) or prompts_for(samples)
    recs = predict(method, split.test, 20)
    n_decoded = sum(decoded)

    everything = prompts_for(split.test)  # one prompt per test sample, unsharded
    position = {}
    for row, text in enumerate(everything):
        position.setdefault(text, row)

    def stub(prompt_texts, k=None):
        rows = [position[t] for t in prompt_texts]
        items = np.array([[r] + [0] * 9 for r in rows], dtype=np.int64)
        return items, np.array(rows, dtype=np.int32), [[f"row {r}"] for r in rows[:3]]

    method._constrained = stub
    method._grounded = stub
    order = predict(method, split.test, 20)
    return {
        "world": distributed.rank_and_world()[1],
        "decoded": n_decoded,
        "items": recs.topk.tolist(),
        "invalid": recs.invalid.tolist(),
        "generations": recs.examples,
        "order": order.topk[:, 0].tolist(),
        "order_invalid": order.invalid.tolist(),
        "order_generations": [g["generations"] for g in order.examples],
        "expected_order": [position[t] for t in everything],
    }


def train_tiny(micro_batch: int, grad_accum: int, device_batch: int = 0) -> dict:
    """Train the tiny model for one epoch on 32 synthetic examples with the CFT loss (the training
    loop joins the launched job's process group through accelerate, data-parallel when launched);
    the trained weights by name."""
    from conftest import make_split
    from test_llm_engine import cf_prompt_of, encoded, run_train, tiny_model

    from methods.llm.cft import CFTConfig

    split = make_split()
    loaded = tiny_model(split)
    examples = encoded(split, loaded.tokenizer)[:32]
    config = CFTConfig(
        model="tiny", epochs=1, micro_batch=micro_batch, grad_accum=grad_accum, device_batch=device_batch, alpha=0.1, beta=0.25,
        lr=1e-3, warmup_steps=1,
    )  # fmt: skip
    model, result = run_train(loaded, examples, [], cf_prompt_of(split, loaded.tokenizer), config, seed=0)
    return {"weights": {k: v.detach().clone() for k, v in model.state_dict().items()}, "steps": result.optimizer_steps}


if __name__ == "__main__":
    import os

    import torch

    from bench import distributed

    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    try:
        if sys.argv[1] == "train":
            out_dir = Path(sys.argv[4])
            trained = train_tiny(int(sys.argv[2]), int(sys.argv[3]))
            torch.save(trained, out_dir / f"trained{rank}.pt")
        else:
            name, n_test, cache_dir, out_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
            result = recommend(name, n_test, cache_dir, out_dir / f"work-{rank}")
            (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        distributed.destroy_group()  # as the command line does: leave the group before exit
