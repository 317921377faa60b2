"""`bench run --executor slurm` and `bench jobs` against a real single-node Slurm cluster
(tests/slurm_cluster.py): runs submitted through submitit, run by Slurm and stored; every state
`bench jobs` shows checked against what Slurm says, with accounting (sacct answers) and without
(sacct fails, the controller answers); cancelled, killed and lost jobs submitted again by the next
`bench run`; two GPUs per job under torchrun. A job is made to wait, deterministically, by holding
its run key's lock in this process (a job's `bench run` waits for a key another process computes).
What a real cluster cannot show (a refused sbatch, Slurm unreachable) is in tests/test_jobs.py.
"""

from __future__ import annotations

import io
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import slurm_cluster
from conftest import prepare_ml100k
from rich.console import Console
from slurm_cluster import SlurmCluster
from typer.testing import CliRunner

from bench import cli
from bench import jobs as jobs_module
from bench.jobs import Job, JobBook, status
from bench.request import RunRequest
from bench.store import RunStore
from bench.subsets import SampleChoice

pytestmark = pytest.mark.slow
pytest.importorskip("submitit", reason="submitit is not installed: pip install -e '.[slurm]' runs these tests")
slurm, slurm_accounting = slurm_cluster.slurm, slurm_cluster.slurm_accounting  # the fixtures, one cluster each per module

POP = ["--methods", "pop", "--dataset", "ml-100k", "--limit-test", "20", "--executor", "slurm"]
TINY_SASREC = [x for s in ("epochs=1", "n_layers=1", "n_heads=1", "batch_size=2048") for x in ("--set", f"sasrec.{s}")]


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> Path:
    return prepare_ml100k(tmp_path_factory, "prepared")


@pytest.fixture
def ml100k(prepared_dir, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(prepared_dir))
    return prepared_dir


@pytest.fixture
def use(monkeypatch, request):
    """use(cluster): point this process's Slurm commands (submitit's sbatch and sacct, squeue) at
    the cluster; the test's jobs are cancelled when it ends, passed or failed, so that none holds
    the node's CPUs for the next test."""

    def point(cluster: SlurmCluster) -> SlurmCluster:
        monkeypatch.setenv("SLURM_CONF", cluster.conf)
        request.addfinalizer(cluster.cancel_all)
        return cluster

    return point


@pytest.fixture
def held():
    """held(key): hold a run key's lock, so that a job computing that key waits (running) until
    the lock is released; every lock is released when the test ends."""
    locks = []

    def hold(key: str):
        lock = RunStore().lock(key)
        lock.acquire()
        locks.append(lock)
        return lock

    yield hold
    for lock in locks:
        lock.release()


def invoke(monkeypatch, *args: str) -> str:
    """Run the CLI with its console on a string; its text (a failing command fails the test)."""
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=250, color_system=None))
    result = CliRunner().invoke(cli.app, list(args))
    assert result.exit_code == 0, (out.getvalue(), result.output, result.exception)
    return out.getvalue()


def shown_states(monkeypatch) -> dict[tuple[str, int], tuple[str, str]]:
    """`bench jobs` as printed: (label, seed) -> (state, job id); a label too long for its column is
    read from the legend under the table."""
    text = invoke(monkeypatch, "jobs", "--dataset", "ml-100k")
    legend = dict(re.findall(r"^\s*([a-z]+) = (\S+)\s*$", text, re.M))
    # a failed, lost or unknown state is followed by Slurm's word for it, e.g. "failed (CANCELLED by 0)"
    rows = re.findall(r"^\s*([a-z]+)\s+(\S+)\s+(\d+)\s+(\w+)(?:\s+\([^)]*\))?\s+slurm\s+(\S+)\s", text, re.M)
    return {(legend.get(mark, label), int(seed)): (state, job_id) for mark, label, seed, state, job_id in rows}


def wait_for_states(expected: dict[tuple[str, int], str], timeout: float = 120) -> dict[tuple[str, int], Job]:
    """Poll `status` until every (label, seed) has its expected state; the jobs then."""
    end = time.monotonic() + timeout
    while True:
        found = {(job.label, job.seed): job for job in status("ml-100k", RunStore())}
        now = {k: found[k].state if k in found else None for k in expected}
        if now == expected:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"after {timeout} s the jobs are {now}, not {expected}")
        time.sleep(0.3)


def key_of(seed: int) -> str:
    """The run key a job of `bench run --methods pop --limit-test 20 --seeds SEED` computes."""
    from bench.data.prepare import load_split

    request = RunRequest.from_options("pop", seeds=str(seed), limit_test=20, dataset="ml-100k")
    (p,) = request.plan()
    return request.evaluation.key(p, load_split("ml-100k").hash, seed)


# ---- a grid through Slurm -----------------------------------------------------------------------------


def test_a_grid_of_pop_and_sasrec_runs_as_slurm_jobs_and_is_stored(slurm, use, ml100k, monkeypatch, tmp_path):
    from bench.data.prepare import load_split

    use(slurm)
    command = ["run", "--methods", "pop,sasrec", "--dataset", "ml-100k", "--grid", "sasrec.hidden_size=8,16", *TINY_SASREC,
               "--limit-test", "30", "--limit-valid", "30", "--device", "cpu", "--executor", "slurm"]  # fmt: skip
    text = invoke(monkeypatch, *command)
    assert "3 job(s) to run, 0 stored already." in text
    submitted = {job.label: job for job in JobBook("ml-100k").read().values()}
    labels = ["pop", "sasrec[batch_size=2048,epochs=1,hidden_size=8,n_heads=1,n_layers=1]",
              "sasrec[batch_size=2048,epochs=1,hidden_size=16,n_heads=1,n_layers=1]"]  # fmt: skip
    assert sorted(submitted) == sorted(labels)
    for job in submitted.values():  # Slurm knows each job, queued or running or done already
        assert slurm.state(job.job_id) in ("PENDING", "RUNNING", "COMPLETING", "COMPLETED"), job

    found = wait_for_states({(label, 0): "finished" for label in labels}, timeout=180)
    for job in found.values():
        assert slurm.wait_for_state(job.job_id, "COMPLETED") == "COMPLETED"
        log = Path(job.log).read_text()
        assert log.count("The following command is sent") == 1 and "bench.cli" in log  # submitit ran the job's command
    assert {k: v[0] for k, v in shown_states(monkeypatch).items()} == {(label, 0): "finished" for label in labels}

    runs = {run.record.label: run for run in RunStore().runs("ml-100k")}
    assert sorted(runs) == sorted(labels)
    split = load_split("ml-100k")
    chosen = SampleChoice(30, "random", 0).indices(len(split.test))
    for run in runs.values():
        assert run.record.n_test == 30 and run.record.valid.n == 30 and run.record.provenance.processes == 1
        assert np.array_equal(run.arrays("test")["sample_index"], chosen)
    assert [runs[label].record.config["hidden_size"] for label in labels[1:]] == [8, 16]

    # pop computed here, into another results folder, is the same to the last sample
    from bench.runner import run_benchmark

    with monkeypatch.context() as elsewhere:
        elsewhere.setenv("BENCH_RESULTS_DIR", str(tmp_path / "here"))
        request = RunRequest.from_options("pop", limit_test=30, limit_valid=30, valid=True, dataset="ml-100k", device="cpu")
        (here,) = run_benchmark(request, split=split, show_progress=False, console=Console(file=io.StringIO()))
    assert here.key == runs["pop"].record.key and here.metrics == runs["pop"].record.metrics
    (here_run,) = RunStore(tmp_path / "here").runs("ml-100k")
    assert np.array_equal(here_run.arrays("test")["rank"], runs["pop"].arrays("test")["rank"])

    # the same command again: everything is stored, nothing is submitted
    text = invoke(monkeypatch, *command)
    assert "0 job(s) to run, 3 stored already." in text


def test_configurations_sharing_a_fit_run_as_one_slurm_job(slurm, use, ml100k, monkeypatch):
    use(slurm)
    tiny = ("model=tiny", "epochs=1", "max_train_samples=32", "max_valid_samples=8", "max_new_tokens=16")
    command = ["run", "--methods", "sft", "--dataset", "ml-100k", "--grid", "sft.num_beams=2,3",
               *[x for s in tiny for x in ("--set", f"sft.{s}")], "--limit-test", "5", "--no-valid", "--device", "cpu",
               "--executor", "slurm"]  # fmt: skip
    text = invoke(monkeypatch, *command)
    assert "1 job(s) to run (2 runs: configurations that share a fit run in one job), 0 stored already." in text
    book = JobBook("ml-100k").read()
    (job_id,) = {job.job_id for job in book.values()}
    assert len(book) == 2 and len({job.log for job in book.values()}) == 1
    wait_for_states({(job.label, 0): "finished" for job in book.values()}, timeout=240)
    records = [r.record for r in RunStore().runs("ml-100k")]
    assert sorted(r.config["num_beams"] for r in records) == [2, 3]
    assert sum(r.reused_fit_of is None for r in records) == 1  # one fit, decoded twice
    assert set(shown_states(monkeypatch).values()) == {("finished", job_id)}


# ---- what `bench jobs` says ------------------------------------------------------------------------------


def states_told_truthfully(cluster: SlurmCluster, held, monkeypatch) -> None:
    """Queued behind a job that holds the node, then running (waiting for a held key), then
    finished; a job that fails where it runs; a job Slurm has no record of. Each shown state is
    checked against the controller's, and the failed and lost jobs are submitted again."""
    blocker = cluster.sbatch("--cpus-per-task=2", "--wrap=sleep 300")
    cluster.wait_for_state(blocker, "RUNNING")
    lock = held(key_of(0))
    invoke(monkeypatch, "run", *POP, "--seeds", "0", "--device", "cpu")
    invoke(monkeypatch, "run", *POP, "--seeds", "1", "--device", "cuda:99")  # fails in the job: no such GPU
    gone = Job(key=key_of(2), label="pop", seed=2, command=["true"], executor="slurm", job_id="99999",
               log=str(JobBook("ml-100k").folder / "slurm" / "99999_0_log.out"))  # fmt: skip
    JobBook("ml-100k").update(gone)  # submitted once, unknown to Slurm now
    book = {job.seed: job for job in JobBook("ml-100k").read().values()}
    waiting, failing = book[0].job_id, book[1].job_id
    assert cluster.state(waiting) == cluster.state(failing) == "PENDING" and cluster.state("99999") == ""

    assert shown_states(monkeypatch) == {("pop", 0): ("pending", waiting), ("pop", 1): ("pending", failing),
                                         ("pop", 2): ("lost", "99999")}  # fmt: skip

    cluster.run("scancel", blocker)
    cluster.wait_for_state(waiting, "RUNNING")
    cluster.wait_for_state(failing, "FAILED")
    found = wait_for_states({("pop", 0): "running", ("pop", 1): "failed", ("pop", 2): "lost"})
    assert found[("pop", 1)].detail == "FAILED" and "99999" not in cluster.run("squeue", "-h", "-o", "%i").stdout
    said = Path(found[("pop", 1)].log).read_text()
    assert "error: --device cuda:99 " in said, said  # the job's own sentence, in its log
    assert shown_states(monkeypatch) == {("pop", 0): ("running", waiting), ("pop", 1): ("failed", failing),
                                         ("pop", 2): ("lost", "99999")}  # fmt: skip
    with monkeypatch.context() as unreachable:  # the controller cannot be asked: only sacct answers, if there is one
        unreachable.setattr(jobs_module, "_ask_controller", lambda ids: {})
        told = {(job.label, job.seed): job.state for job in status("ml-100k", RunStore())}
    if cluster.accounting:
        assert told == {("pop", 0): "running", ("pop", 1): "failed", ("pop", 2): "unknown"}
    else:
        assert told == {("pop", 0): "unknown", ("pop", 1): "unknown", ("pop", 2): "unknown"}

    lock.release()
    wait_for_states({("pop", 0): "finished", ("pop", 1): "failed", ("pop", 2): "lost"})
    assert cluster.wait_for_state(waiting, "COMPLETED") == "COMPLETED"

    # the next `bench run` submits the failed and the lost job again, and both finish
    text = invoke(monkeypatch, "run", *POP, "--seeds", "0,1,2", "--device", "cpu")
    assert "2 job(s) to run, 1 stored already." in text
    found = wait_for_states({("pop", 0): "finished", ("pop", 1): "finished", ("pop", 2): "finished"})
    assert found[("pop", 1)].job_id not in (failing, "99999") and found[("pop", 2)].job_id != "99999"
    assert sorted(run.record.seed for run in RunStore().runs("ml-100k")) == [0, 1, 2]


def test_job_states_without_accounting_come_from_the_controller(slurm, use, held, ml100k, monkeypatch):
    assert slurm.run("sacct", check=False).returncode != 0  # no accounting: submitit's sacct call fails
    states_told_truthfully(use(slurm), held, monkeypatch)


def test_job_states_with_accounting_come_from_sacct(slurm_accounting, use, held, ml100k, monkeypatch):
    states_told_truthfully(use(slurm_accounting), held, monkeypatch)
    sacct = slurm_accounting.run("sacct", "--noheader", "--parsable2", "--format=JobID,State", "--allocations").stdout
    assert re.search(r"^\d+\|FAILED$", sacct, re.M) and re.search(r"^\d+\|COMPLETED$", sacct, re.M), sacct


# ---- cancelled and killed jobs ----------------------------------------------------------------------------


def test_cancelled_and_killed_jobs_are_submitted_again_and_finish(slurm, use, held, ml100k, monkeypatch):
    use(slurm)
    locks = [held(key_of(seed)) for seed in (0, 1)]
    invoke(monkeypatch, "run", *POP, "--seeds", "0,1", "--device", "cpu")
    first = wait_for_states({("pop", 0): "running", ("pop", 1): "running"})
    cancelled, killed = first[("pop", 0)].job_id, first[("pop", 1)].job_id

    slurm.run("scancel", cancelled)
    end = time.monotonic() + 60
    while not (bench := [pid for pid, cmdline in slurm.processes(killed) if "bench.cli" in cmdline and " run " in cmdline]):
        assert time.monotonic() < end, f"job {killed} has no bench process: {slurm.processes(killed)}"
        time.sleep(0.2)
    os.kill(bench[0], signal.SIGKILL)  # as the out-of-memory killer would
    assert slurm.wait_for_state(cancelled, "CANCELLED") == "CANCELLED"
    assert slurm.wait_for_state(killed, "FAILED") == "FAILED"
    ended = wait_for_states({("pop", 0): "failed", ("pop", 1): "failed"})
    assert (ended[("pop", 0)].detail, ended[("pop", 1)].detail) == ("CANCELLED", "FAILED")
    assert shown_states(monkeypatch) == {("pop", 0): ("failed", cancelled), ("pop", 1): ("failed", killed)}
    for lock in locks:
        lock.release()

    text = invoke(monkeypatch, "run", *POP, "--seeds", "0,1", "--device", "cpu")
    assert "2 job(s) to run, 0 stored already." in text
    again = wait_for_states({("pop", 0): "finished", ("pop", 1): "finished"})
    assert {job.job_id for job in again.values()}.isdisjoint({cancelled, killed})
    assert sorted(run.record.seed for run in RunStore().runs("ml-100k")) == [0, 1]


# ---- GPUs ------------------------------------------------------------------------------------------------------


def test_two_gpus_per_job_run_under_torchrun(slurm, use, ml100k, monkeypatch):
    use(slurm)
    invoke(monkeypatch, "run", *POP, "--gpus-per-job", "2", "--device", "cpu")
    (job,) = JobBook("ml-100k").read().values()
    found = wait_for_states({("pop", 0): "finished"}, timeout=180)
    assert slurm.wait_for_state(job.job_id, "COMPLETED") == "COMPLETED"
    shown = slurm.run("scontrol", "show", "job", job.job_id).stdout
    assert re.search(r"TresPerNode=(gres[:/])?gpu:2\b", shown), shown  # Slurm gave the job both GPUs (written so by any version)
    log = Path(found[("pop", 0)].log).read_text()
    sent = re.search(r"The following command is sent: \"\S+ -m torch\.distributed\.run --nproc_per_node 2 -m bench\.cli ", log)
    assert sent, log
    (run,) = RunStore().runs("ml-100k")
    assert run.record.provenance.processes == 2 and run.record.n_test == 20
