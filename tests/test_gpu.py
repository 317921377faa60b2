"""What only a GPU can show: the same model trained on a CPU and on a GPU, host synchronisations
counted by CUDA itself, the process group on NCCL, decoding equal to transformers' on the device.
Skipped without CUDA (benchmarks/gpu_campaign.sh runs them on a GPU machine)."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from conftest import make_split
from test_llm_engine import cf_prompt_of, encoded, run_train, tiny_model

from methods.llm.cft import CFTConfig
from methods.llm.precision import Precision
from methods.llm.prompts import PromptFormat

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run by benchmarks/gpu_campaign.sh)"),
]


def _train(device: str, precision: str, lr: float = 1e-3, n: int = 32, **kw):
    split = make_split()
    loaded = tiny_model(split)
    loaded.model.to(Precision.resolve(precision, device).weights_dtype)
    before = {k: v.detach().float().cpu().clone() for k, v in loaded.model.named_parameters()}
    config = CFTConfig(
        model="tiny",
        epochs=1,
        micro_batch=4,
        grad_accum=2,
        alpha=0.1,
        beta=0.25,
        lr=lr,
        warmup_steps=0,
        precision=precision,
        **kw,
    )
    examples = encoded(split, loaded.tokenizer)[:n]
    model, result = run_train(loaded, examples, [], cf_prompt_of(split, loaded.tokenizer), config, seed=0, device=device)
    after = {k: v.detach().float().cpu() for k, v in model.named_parameters()}
    return before, after, result


def test_a_gpu_trains_the_model_a_cpu_trains():
    """fp32 on both: equal to float32 rounding (TF32 is off for matmuls by default). bf16-mixed on
    the GPU: the same model to bf16 autocast's rounding, every weight moved as on the CPU."""
    _, cpu, _ = _train("cpu", "fp32")
    _, gpu, _ = _train("cuda", "fp32")
    before, mixed, result = _train("cuda", "bf16-mixed")
    assert result.precision == "bf16-mixed"
    for name in cpu:
        torch.testing.assert_close(gpu[name], cpu[name], rtol=1e-4, atol=1e-5, msg=name)
        moved_cpu = (cpu[name] - before[name]).norm()
        assert (mixed[name] - cpu[name]).norm() <= 0.05 * moved_cpu + 1e-6, name  # within 5 % of the update


def test_bf16_mixed_moves_every_weight_on_a_gpu():
    before, after, _ = _train("cuda", "bf16-mixed", lr=1e-5)
    for name, w in after.items():
        unchanged = int((w == before[name]).sum())
        allowed = w.numel() - 1 if "embed" in name else max(2, w.numel() // 1000)
        assert unchanged <= allowed, f"{name}: {unchanged} of {w.numel()} elements did not move"


def _cuda_syncs(fn) -> int:
    """Synchronisations CUDA itself reports (torch.cuda.set_sync_debug_mode) while fn runs."""
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message).lower() for w in caught)


def test_training_syncs_at_most_once_per_optimiser_step_on_a_gpu():
    counts = {}

    def run():
        counts["result"] = _train("cuda", "bf16-mixed")[2]

    syncs = _cuda_syncs(run)
    # setup (placing the model, the optimiser's first step) and the end-of-epoch read included
    assert syncs <= counts["result"].optimizer_steps + 8, syncs


def test_the_device_joins_micro_batches_on_a_gpu():
    _, _, result = _train("cuda", "bf16-mixed")
    assert result.device_batch == 8  # the tiny model: both micro-batches of a step in one pass


def test_own_constrained_search_equals_transformers_on_a_gpu():
    from methods.llm.decode import constrained_beam_search

    split = make_split()
    loaded = tiny_model(split)
    model = loaded.model.to("cuda").eval()
    prompts = [f"Title {i}" for i in range(6)]
    got = {
        search: constrained_beam_search(
            model,
            PromptFormat(loaded.tokenizer, split.card, "quoted", 1024),
            prompts,
            split.items.titles,
            num_beams=5,
            max_new_tokens=16,
            batch_size=3,
            search=search,
        )[0]
        for search in ("own", "transformers")
    }
    assert (got["own"] == got["transformers"]).all()


def test_nccl_group_gathers_python_objects(tmp_path):
    """One process under torchrun with a CUDA run: NCCL default group, object gathers over gloo."""
    import subprocess
    import sys

    script = tmp_path / "worker.py"
    script.write_text(
        "from bench import distributed\n"
        "import torch.distributed as dist\n"
        "distributed.init_group('cuda')\n"
        "assert dist.get_backend() == 'nccl'\n"
        "assert distributed.gather({'rank': dist.get_rank()}) == [{'rank': 0}]\n"
        "distributed.destroy_group()\n"
        "assert not dist.is_initialized()\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", str(script)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_fit_cached_on_the_gpu_decodes_as_in_memory_and_loads_on_a_cpu(tmp_path):
    """The fit cache keeps the weights as decoding uses them (bf16 on a GPU): loaded on the GPU they
    give the lists the fitted model gave in memory (not a fresh fit's: CUDA's embedding backward
    adds in any order); a CPU can load the same entry and decode."""
    import shutil

    import numpy as np
    from test_fitcache import tiny_bigrec

    from bench.store import RunStore

    fitted, later, on_cpu = (RunStore(tmp_path / name) for name in ("fitted", "later", "cpu"))
    _, in_memory = tiny_bigrec(fitted, [], "cuda", grid=["bigrec.num_beams=5,3"])  # 3 beams: the fit in memory
    for store in (later, on_cpu):
        shutil.copytree(fitted.root / "fits", store.root / "fits")
    (loaded,) = tiny_bigrec(later, ["bigrec.num_beams=3"], "cuda")
    assert loaded.key == in_memory.key and loaded.reused_fit_of == in_memory.reused_fit_of is not None
    for part in ("topk", "rank"):
        assert np.array_equal(later.load("tiny", "bigrec", loaded.key).arrays()[part],
                              fitted.load("tiny", "bigrec", in_memory.key).arrays()[part])  # fmt: skip
    (cpu,) = tiny_bigrec(on_cpu, ["bigrec.num_beams=3"], "cpu")
    assert cpu.reused_fit_of == in_memory.reused_fit_of and cpu.provenance.device.startswith("cpu")
