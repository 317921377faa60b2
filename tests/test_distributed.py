"""Sharded inference, owned by the runner for every method: contiguous slices per process,
gathered in rank order, identical to one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench import distributed
from bench.errors import BenchError
from bench.seeding import resolve_device

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    "n, world, expected",
    [
        (10, 3, [(0, 4), (4, 7), (7, 10)]),
        (1, 3, [(0, 1), (1, 1), (1, 1)]),  # more processes than samples: empty slices
        (6, 2, [(0, 3), (3, 6)]),
        (5, 1, [(0, 5)]),
    ],
)
def test_shard_slices_cover_every_sample_once(n, world, expected):
    slices = [distributed.shard(n, r, world) for r in range(world)]
    assert [(s.start, s.stop) for s in slices] == expected
    assert [i for s in slices for i in range(n)[s]] == list(range(n))


def test_shard_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError):
        distributed.shard(4, 2, 2)


def test_one_process_gathers_itself():
    assert distributed.rank_and_world() == (0, 1)
    assert distributed.gather({"a": 1}) == [{"a": 1}]


def test_launched_processes_use_their_own_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == "cuda"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert resolve_device("auto") == resolve_device("cuda") == "cuda:1"
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(BenchError, match=r"--device cuda:0 names one GPU for every process of a launched job; use --device cuda"):
        resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(BenchError, match=r"local rank 2\) has no GPU of its own: 2 visible"):
        resolve_device("cuda")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, timeout: int) -> None:
    """Two processes on this machine (gloo), tests/ and the project importable; must exit 0."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        *args,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, n_test, slices",
    [
        ("sft", 7, (4, 3)),
        ("bigrec", 3, (2, 1)),  # rank 0 holds 2 rows: the third inspected row comes from rank 1
        ("sft", 1, (1, 0)),  # more processes than samples: rank 1 decodes nothing
    ],
)
def test_two_processes_recommend_what_one_does(name, n_test, slices, tmp_path, monkeypatch):
    """Two gloo processes (as `accelerate launch` on two devices) split the test samples and both
    end with the lists one process computes, in sample order: constrained decoding and grounding."""
    monkeypatch.syspath_prepend(str(HERE))
    from distributed_worker import recommend

    cache = Path(os.environ["BENCH_CACHE_DIR"])
    single = recommend(name, n_test, cache, tmp_path / "single")
    assert single["world"] == 1 and single["decoded"] == n_test and len(single["items"]) == n_test
    assert len(single["generations"]) == min(3, n_test)
    assert single["order"] == single["order_invalid"] == single["expected_order"]

    torchrun(str(HERE / "distributed_worker.py"), name, str(n_test), str(cache), str(tmp_path), timeout=300)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["world"] == 2 and got["decoded"] == slices[rank]  # each process decoded its own slice only
        for key in ("items", "invalid", "generations", "order_generations"):
            assert got[key] == single[key], key
        assert got["order"] == got["order_invalid"] == got["expected_order"]
        assert got["order_generations"] == [[f"row {r}"] for r in got["expected_order"][:3]]


@pytest.mark.slow
def test_two_processes_score_what_one_does(tmp_path, monkeypatch):
    """A score method (pop) is sharded by the runner like the LLM methods: same lists, same ranks."""
    monkeypatch.syspath_prepend(str(HERE))
    from distributed_worker import recommend

    cache = Path(os.environ["BENCH_CACHE_DIR"])
    single = recommend("pop", 7, cache, tmp_path / "single")
    assert single["world"] == 1 and len(single["items"]) == len(single["ranks"]) == 7
    torchrun(str(HERE / "distributed_worker.py"), "pop", "7", str(cache), str(tmp_path), timeout=300)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["world"] == 2 and got["items"] == single["items"] and got["ranks"] == single["ranks"]


def test_a_failing_process_stops_every_process(monkeypatch):
    """One process's error reaches every process as one sentence naming the process (simulated
    gather: process 1 failed, this one, process 0, succeeded)."""
    from conftest import make_split

    from bench import runner
    from methods.pop import Pop

    split = make_split()
    method = Pop()
    method.fit(split.train, split.valid, _context(split))
    monkeypatch.setattr(distributed, "rank_and_world", lambda: (0, 2))
    monkeypatch.setattr(distributed, "gather", lambda obj: [obj, (None, "RuntimeError: CUDA error on purpose")])
    with pytest.raises(BenchError, match=r"Inference of 'pop' failed on process 1 of 2 \(RuntimeError: CUDA error on purpose\)"):
        runner.predict(method, split.test, 10)


def _context(split):
    from bench.method import Context

    return Context(device="cpu", seed=0, items=split.items, card=split.card, work_dir=Path("."), cache_dir=Path("."))


def test_launched_processes_need_a_prepared_dataset(monkeypatch):
    from bench.errors import BenchError
    from bench.request import RunRequest
    from bench.runner import run_benchmark

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BenchError, match=r"run `bench data prepare ml-100k` once before launching several processes"):
        run_benchmark(RunRequest(["pop"], "ml-100k", [0], device="cpu"), show_progress=False)


@pytest.mark.slow
def test_a_launched_run_trains_data_parallel_and_stores_once(tmp_path):
    """`torchrun --nproc_per_node 2 -m bench.cli run ...` on the CPU (gloo), as on two GPUs: the
    32 training samples are split between the processes (4 optimizer steps of 4 samples each, not
    8), inference is split, and rank 0 alone stores the one run and its fit; a second launched run
    that differs in a decode setting loads that fit in both processes."""
    from bench.data.prepare import prepare
    from bench.store import RunStore

    prepare("ml-100k")
    sets = {
        "model": "tiny",
        "max_train_samples": 32,
        "max_valid_samples": 8,
        "epochs": 1,
        "micro_batch": 4,
        "grad_accum": 1,
        "warmup_steps": 1,
        "max_new_tokens": 16,
        "eval_batch_size": 3,
    }
    args = [
        "-m",
        "bench.cli",
        "run",
        "--methods",
        "sft",
        "--dataset",
        "ml-100k",
        "--seeds",
        "0",
        "--limit-test",
        "6",
        "--device",
        "cpu",
    ]
    for key, value in sets.items():
        args += ["--set", f"sft.{key}={value}"]
    torchrun(*args, timeout=600)
    runs = RunStore().runs("ml-100k")
    assert len(runs) == 1
    record = runs[0].record
    assert record.provenance.processes == 2 and record.n_test == 6
    assert record.info["train_samples"] == 32 and record.info["optimizer_steps"] == 4
    assert len(runs[0].arrays()["rank"]) == 6
    assert not any((Path(os.environ["BENCH_RESULTS_DIR"]) / ".work").glob("*"))  # scratch removed by rank 0

    # a decode setting changed: both processes load the fit rank 0 stored in the fit cache
    torchrun(*args, "--set", "sft.num_beams=3", timeout=600)
    (loaded,) = [r.record for r in RunStore().runs("ml-100k") if r.key != record.key]
    assert loaded.reused_fit_of == record.key and loaded.provenance.processes == 2 and loaded.n_test == 6
    assert loaded.info["optimizer_steps"] == 4 and loaded.config["num_beams"] == 3
    assert len(list((Path(os.environ["BENCH_RESULTS_DIR"]) / "fits" / "sft").iterdir())) == 1


def test_the_group_backend_follows_the_run_device():
    """gloo for a CPU run even where CUDA is visible (NCCL cannot move CPU tensors), NCCL for a
    CUDA run."""
    assert distributed.backend_for("cpu") == "gloo"
    assert distributed.backend_for("cuda") == distributed.backend_for("cuda:3") == "nccl"


def test_a_cuda_run_binds_its_own_gpu_before_joining(monkeypatch):
    """Each process sets its device from LOCAL_RANK and joins with it (device_id), so no
    collective of one process runs on another's GPU; a CPU run binds nothing and joins gloo."""
    torch = pytest.importorskip("torch")
    import torch.distributed as dist

    calls = []
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: calls.append(("init", kw)))
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: calls.append(("set_device", d)))
    distributed.init_group("cuda")
    assert calls == [("set_device", torch.device("cuda", 3)), ("init", {"backend": "nccl", "device_id": torch.device("cuda", 3)})]
    calls.clear()
    distributed.init_group("cpu")
    assert calls == [("init", {"backend": "gloo"})]


def test_leaving_the_group_outside_a_launched_job_does_nothing():
    distributed.destroy_group()  # no group: nothing to leave, no error
    assert distributed.rank_and_world() == (0, 1)


@pytest.mark.slow
def test_two_processes_train_the_weights_one_process_trains(tmp_path, monkeypatch):
    """Data-parallel training: two gloo processes with micro-batches of 4 and no accumulation
    (effective batch 8) end with the weights of one process accumulating 2 micro-batches of 4 over
    the same 32 examples (4 optimiser steps each), within float32 rounding of the summation order
    (gradients are averaged over processes instead of summed in one): absolute 1e-5 on weights of
    about 0.02 moved by about 4e-3."""
    import torch

    monkeypatch.syspath_prepend(str(HERE))
    from distributed_worker import train_tiny

    single = train_tiny(micro_batch=4, grad_accum=2)
    torchrun(str(HERE / "distributed_worker.py"), "train", "4", "1", str(tmp_path), timeout=300)
    for rank in (0, 1):
        got = torch.load(tmp_path / f"trained{rank}.pt")
        assert got["steps"] == single["steps"] == 4
        for name, weight in single["weights"].items():
            torch.testing.assert_close(got["weights"][name], weight, rtol=1e-4, atol=1e-5, msg=f"{name} on rank {rank}")
