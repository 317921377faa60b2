"""Run by tests/test_distributed.py under `torchrun --nproc_per_node 2`, and in-process with one:
fit an LLM method with epochs=0 (the deterministic tiny model as built) and recommend the
synthetic test split; each rank writes the lists it received after gathering."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def recommend(name: str, cache_dir: Path, work_dir: Path) -> dict:
    import torch

    from bench import distributed, registry
    from bench.method import Context
    from conftest import make_split

    torch.set_num_threads(1)
    split = make_split(n_test=7)
    cls = registry.load_class(name)
    config = registry.build_config(cls, {"epochs": "0", "max_new_tokens": "12", "eval_batch_size": "1"})
    method = cls(config)
    context = Context(device="cpu", seed=0, items=split.items, card=split.card, work_dir=work_dir,
                      cache_dir=cache_dir, progress=None)
    method.fit(split.train, split.valid, context)
    decoded = []
    prompts_for = method.prompts_for
    method.prompts_for = lambda samples: decoded.append(len(samples)) or prompts_for(samples)
    recs = method.recommend(split.test, 20)
    return {"world": distributed.rank_and_world()[1], "decoded": sum(decoded), "items": recs.items.tolist(),
            "invalid": recs.invalid.tolist(), "generations": recs.extra["generations"]}


if __name__ == "__main__":
    import os

    name, cache_dir, out_dir = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    rank = int(os.environ["RANK"])
    result = recommend(name, cache_dir, out_dir / f"work-{rank}")
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
