"""Jobs (bench/jobs.py): every (method, configuration, seed) of a command run as a job of its own,
locally (N processes at a time) or on Slurm through submitit, recorded in a job book and resumed
like any run.

The local grid runs real `python -m bench.cli run` processes with a test plugin (a package with a
`bench.methods` entry point under a temporary folder on PYTHONPATH) that kills itself on demand.
The Slurm path runs here against a fake `submitit` module (and fake `squeue` and `nvidia-smi`
programs): what a real cluster cannot show, such as Slurm that cannot be asked or a refused sbatch.
tests/test_slurm.py runs the same path on a real single-node Slurm cluster.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import make_split, prepare_ml100k
from rich.console import Console
from typer.testing import CliRunner

from bench import cli, paths
from bench import jobs as jobs_module
from bench.errors import BenchError
from bench.jobs import Cluster, Job, JobBook, gpu_slots, job_command, run_local, status, submit_slurm, visible_gpus
from bench.request import RunRequest, _texts
from bench.runner import Evaluation
from bench.store import RunStore
from bench.subsets import SampleChoice

# ---- a method plugin that subprocesses can load ----------------------------------------------------

PLUGIN_CODE = """
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from bench.method import Method, Recommendations

FIXED = [5, 3, 8, 1, 0, 9, 2, 7, 4, 6]  # every sample gets this list: a target's rank is its place in it


@dataclass
class Config:
    level: int = 0
    rate: float = 0.5
    flag: bool = False
    tags: list[str] = field(default_factory=list)
    note: Optional[str] = None
    shown: int = 0  # a decode-time setting: a grid over it shares one fit (through the fit cache across jobs)


class Fake(Method):
    name = "fake"
    description = "a test plugin whose jobs die on demand"
    version = "1"
    Config = Config
    decode_settings = frozenset({"shown"})

    def _fit(self, train, valid, context):
        markers = Path(os.environ.get("JOBSFAKE_MARKERS", "/nonexistent"))
        if (markers / f"kill-level-{self.config.level}").exists():
            os.kill(os.getpid(), signal.SIGKILL)  # a job killed from outside (OOM killer, scancel -9)
        if self.config.shown:
            (markers / f"fit-{os.getpid()}").touch()
            time.sleep(2)  # long enough for a parallel job of the same fit to find it being fitted

    def _save_fit(self, folder):
        (folder / "fitted").write_text(str(os.getpid()))

    def _load_fit(self, folder, train, valid, context):
        markers = Path(os.environ.get("JOBSFAKE_MARKERS", "/nonexistent"))
        (markers / f"load-{os.getpid()}").write_text((folder / "fitted").read_text())

    def _recommend(self, samples, k):
        return Recommendations(items=np.tile(np.array(FIXED[:k], dtype=np.int64), (len(samples), 1)))
"""
FIXED = [5, 3, 8, 1, 0, 9, 2, 7, 4, 6]


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "jobsfake").mkdir()
    (root / "jobsfake" / "__init__.py").write_text("")
    (root / "jobsfake" / "mod.py").write_text(PLUGIN_CODE)
    info = root / "jobsfake-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jobsfake\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[bench.methods]\nfake = jobsfake.mod:Fake\n")
    return root


@pytest.fixture
def fake_plugin(plugin_dir, monkeypatch, tmp_path):
    """The plugin on the path of this process and of its subprocesses; returns the marker folder."""
    monkeypatch.syspath_prepend(str(plugin_dir))
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", str(plugin_dir) + (os.pathsep + old if old else ""))
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setenv("JOBSFAKE_MARKERS", str(markers))
    yield markers
    for name in [n for n in sys.modules if n == "jobsfake" or n.startswith("jobsfake.")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory) -> Path:
    """ml-100k prepared once for this file (about 3 s); tests point BENCH_DATA_DIR at it."""
    return prepare_ml100k(tmp_path_factory, "prepared")


@pytest.fixture
def ml100k(prepared_dir, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(prepared_dir))
    return prepared_dir


def invoke(monkeypatch, *args: str):
    """Run the CLI with its console on a string; (result, console text)."""
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=250, color_system=None))
    result = CliRunner().invoke(cli.app, list(args))
    return result, out.getvalue()


def row_pattern(label: str, seed: int, state: str, executor: str, job_id: str, log: str) -> re.Pattern:
    """One row of the `bench jobs` table: letter, method, seed, state, executor, id, log."""
    return re.compile(
        rf"^\s*[a-z]+\s+{re.escape(label)}\s+{seed}\s+{re.escape(state)}\s+{executor}\s+{re.escape(job_id)}\s+{re.escape(log)}\s*$",
        re.M,
    )


# ---- a fake submitit --------------------------------------------------------------------------------


def install_fake_submitit(monkeypatch, fail_on_call: int | None = None) -> SimpleNamespace:
    """A `submitit` module that records what would be submitted. Job ids count up from 1001; a
    job's Slurm state is `rec.states[job_id]` (PENDING when submitted). `fail_on_call`: that
    submit() (1-based) raises, as sbatch refusing a job does."""
    rec = SimpleNamespace(executors=[], parameters=[], commands=[], states={}, asked=[], calls=0, next_id=1000)

    class CommandFunction:
        def __init__(self, command, verbose=False, **kwargs):
            self.command = list(command)
            self.verbose = verbose

    class AutoExecutor:
        def __init__(self, folder, cluster=None, **kwargs):
            self.folder = Path(folder)
            rec.executors.append((str(folder), cluster))

        def update_parameters(self, **kwargs):
            rec.parameters.append(kwargs)

        def submit(self, fn, *args, **kwargs):
            rec.calls += 1
            if fail_on_call is not None and rec.calls == fail_on_call:
                raise RuntimeError("sbatch: error: Batch job submission failed")
            rec.next_id += 1
            job_id = str(rec.next_id)
            rec.commands.append(fn.command)
            rec.states[job_id] = "PENDING"
            return SimpleNamespace(job_id=job_id, paths=SimpleNamespace(stdout=self.folder / f"{job_id}_0_log.out"))

    class SlurmJob:
        def __init__(self, folder, job_id, tasks=(0,)):
            rec.asked.append((Path(folder), str(job_id)))
            self.job_id = str(job_id)

        @property
        def state(self) -> str:
            return rec.states[self.job_id]

    module = types.ModuleType("submitit")
    helpers = types.ModuleType("submitit.helpers")
    helpers.CommandFunction = CommandFunction
    module.AutoExecutor, module.SlurmJob, module.helpers = AutoExecutor, SlurmJob, helpers
    monkeypatch.setitem(sys.modules, "submitit", module)
    monkeypatch.setitem(sys.modules, "submitit.helpers", helpers)
    return rec


def value_after(command: list[str], option: str) -> str:
    """The value given to `option` in a command (exactly once)."""
    at = [i for i, part in enumerate(command) if part == option]
    assert len(at) == 1, f"{option} appears {len(at)} times in {command}"
    return command[at[0] + 1]


# ---- 1. a local grid, one job killed, resumed -------------------------------------------------------


def test_local_grid_with_a_killed_job_resumes_only_that_job(fake_plugin, ml100k, monkeypatch):
    from bench.data.prepare import load_split
    from bench.store import RunStore

    result, text = invoke(monkeypatch, "methods", "--json")
    assert result.exit_code == 0, result.output
    listed = {m["name"]: m for m in json.loads(result.output)}
    assert listed["fake"] == {"name": "fake", "description": "(plugin from jobsfake)", "origin": "plugin"}
    result, text = invoke(monkeypatch, "methods")
    assert re.search(r"^\s*fake\s+\(plugin from jobsfake\)\s+plugin\s*$", text, re.M), text

    (fake_plugin / "kill-level-3").touch()
    command = ["run", "--methods", "fake", "--grid", "fake.level=0,1,2,3", "--dataset", "ml-100k", "--limit-test", "20",
               "--executor", "local", "--jobs", "2", "--device", "cpu"]  # fmt: skip
    result, text = invoke(monkeypatch, *command)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "4 job(s) to run, 0 stored already." in text
    assert text.count("started ") == 4

    store = RunStore()
    runs = store.runs("ml-100k")
    assert sorted(r.record.config["level"] for r in runs) == [0, 1, 2]
    split = load_split("ml-100k")
    chosen = SampleChoice(20, "random", 0).indices(len(split.test))
    for run in runs:
        assert run.record.n_test == 20 and run.record.valid is not None  # a grid scores validation
        arrays = run.arrays("test")
        assert np.array_equal(arrays["sample_index"], chosen)
        targets = split.test.targets[arrays["sample_index"]]
        expected = [FIXED.index(t) if t in FIXED else -1 for t in targets.tolist()]
        assert arrays["rank"].tolist() == expected

    found = {job.label: job for job in status("ml-100k", store)}
    assert sorted(found) == ["fake", "fake[level=1]", "fake[level=2]", "fake[level=3]"]
    assert {label: job.state for label, job in found.items()} == {
        "fake": "finished", "fake[level=1]": "finished", "fake[level=2]": "finished", "fake[level=3]": "failed",
    }  # fmt: skip
    killed = found["fake[level=3]"]
    assert killed.executor == "local" and killed.returncode == -signal.SIGKILL
    assert Path(killed.log).is_file() and Path(killed.log).parent == JobBook("ml-100k").folder
    assert all(job.returncode == 0 for label, job in found.items() if label != "fake[level=3]")
    assert "ml-100k: 4 job(s)" in text
    for job in found.values():
        assert row_pattern(job.label, 0, job.state, "local", job.job_id, job.log).search(text), (job.label, text)

    # the same command again, without the marker: only the killed job runs
    (fake_plugin / "kill-level-3").unlink()
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert "1 job(s) to run, 3 stored already." in text
    assert text.count("started ") == 1
    started = next(line for line in text.splitlines() if "started " in line)
    assert killed.log in started
    assert sorted(r.record.config["level"] for r in store.runs("ml-100k")) == [0, 1, 2, 3]
    after = status("ml-100k", store)
    assert [(j.label, j.state) for j in after] == [(label, "finished") for label in sorted(found)]
    assert "fake[level=3] seed 0" in Path(killed.log).read_text()  # the log now holds the resumed job's output
    for job in after:
        assert row_pattern(job.label, 0, "finished", "local", job.job_id, job.log).search(text), (job.label, text)

    # and a third time: nothing is left to run
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert "0 job(s) to run, 4 stored already." in text
    assert "started " not in text
    assert len(store.runs("ml-100k")) == 4

    # `bench jobs` shows the same four finished jobs
    result, text = invoke(monkeypatch, "jobs", "--dataset", "ml-100k")
    assert result.exit_code == 0, (result.output, text)
    assert "ml-100k: 4 job(s)" in text
    for job in after:
        assert row_pattern(job.label, 0, "finished", "local", job.job_id, job.log).search(text), (job.label, text)


def test_a_grid_over_a_decode_setting_is_one_job_that_fits_once(fake_plugin, ml100k, monkeypatch):
    command = ["run", "--methods", "fake", "--grid", "fake.shown=1,2,3", "--grid", "fake.rate=0.5,0.25", "--dataset",
               "ml-100k", "--limit-test", "5", "--no-valid", "--executor", "local", "--jobs", "3", "--device", "cpu"]  # fmt: skip
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    # rate changes the fit, shown does not: two jobs of three runs, one fit each, nothing loaded
    assert "2 job(s) to run (6 runs: configurations that share a fit run in one job), 0 stored already." in text
    assert text.count("started ") == 2 and "fake[rate=0.25,shown=1] and 2 more sharing its fit seed 0" in text
    assert len(list(fake_plugin.glob("fit-*"))) == 2 and not list(fake_plugin.glob("load-*"))
    records = [r.record for r in RunStore().runs("ml-100k")]
    assert len(records) == 6 and sum(r.reused_fit_of is None for r in records) == 2
    book = JobBook("ml-100k").read()
    assert len(book) == 6 and len({job.job_id for job in book.values()}) == 2  # one record per run, two processes
    assert {job.state for job in status("ml-100k", RunStore())} == {"finished"}
    result, text = invoke(monkeypatch, *command)
    assert "0 job(s) to run, 6 stored already." in text


def test_two_commands_of_one_training_key_at_once_fit_once(fake_plugin, ml100k, monkeypatch):
    """Two `bench run` processes started together (as two Slurm jobs of one grid given separately):
    one fits and stores the fit, the other waits for it and loads it."""
    base = [sys.executable, "-m", "bench.cli", "run", "--methods", "fake", "--dataset", "ml-100k", "--limit-test", "5",
            "--no-valid", "--device", "cpu"]  # fmt: skip
    procs = [subprocess.Popen([*base, "--set", f"fake.shown={i}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in (1, 2)]  # fmt: skip
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    fitted, loads = list(fake_plugin.glob("fit-*")), list(fake_plugin.glob("load-*"))
    assert len(fitted) == 1 and len(loads) == 1
    assert loads[0].read_text() == fitted[0].name.split("-")[1]  # it loaded what the other process stored
    records = [r.record for r in RunStore().runs("ml-100k")]
    (first,) = [r for r in records if r.reused_fit_of is None]
    assert sorted(r.reused_fit_of or "" for r in records) == ["", first.key]


# ---- 2. `bench jobs` ----------------------------------------------------------------------------------


def test_bench_jobs_lists_every_state_with_its_log(tmp_path, monkeypatch):
    """One job per state: finished (stored), failed (ended badly or ended without storing), lost
    (its submitting process died), running, and Slurm jobs whose state comes from Slurm."""
    from bench.runner import run_benchmark

    rec = install_fake_submitit(monkeypatch)
    split = dataclasses.replace(make_split(), name="ml-100k")
    (record,) = run_benchmark(
        RunRequest(["pop"], "ml-100k", [0], device="cpu"), split=split, show_progress=False, console=Console(file=io.StringIO())
    )
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that has ended: its pid is no one's

    def job(label, key, state, executor="local", job_id="", seed=0):
        return Job(key=key, label=label, seed=seed, command=["true"], executor=executor, log=str(tmp_path / f"{key}.log"),
                   state=state, job_id=job_id)  # fmt: skip

    jobs = [
        job("pop", record.key, "running", job_id=str(gone.pid)),  # stored: finished, whatever the book says
        job("pop[case=done-unstored]", "k2", "finished", job_id="11"),
        job("pop[case=failed]", "k3", "failed", job_id="12"),
        job("pop[case=lost]", "k4", "running", job_id=str(gone.pid)),
        job("pop[case=running]", "k5", "running", job_id=str(os.getpid())),
        job("pop[case=slurm-pending]", "k6", "pending", "slurm", "1001", seed=1),
        job("pop[case=slurm-running]", "k7", "pending", "slurm", "1002", seed=2),
        job("pop[case=slurm-completed]", "k8", "running", "slurm", "1003"),
        job("pop[case=slurm-failed]", "k9", "failed", "slurm", "1004"),
    ]
    rec.states.update({"1001": "PENDING", "1002": "RUNNING", "1003": "COMPLETED", "1004": "RUNNING"})
    JobBook("ml-100k").update(*jobs)
    expected = {
        "pop": "finished",
        "pop[case=done-unstored]": "failed",
        "pop[case=failed]": "failed",
        "pop[case=lost]": "lost",
        "pop[case=running]": "running",
        "pop[case=slurm-pending]": "pending",
        "pop[case=slurm-running]": "running",
        "pop[case=slurm-completed]": "failed (COMPLETED)",  # Slurm's word for why it ended without a run
        "pop[case=slurm-failed]": "failed",  # a failed Slurm job is not asked again
    }

    result, text = invoke(monkeypatch, "jobs", "--dataset", "ml-100k")
    assert result.exit_code == 0, (result.output, text)
    assert "ml-100k: 9 job(s)" in text
    for j in jobs:
        assert row_pattern(j.label, j.seed, expected[j.label], j.executor, j.job_id, j.log).search(text), (j.label, text)
    assert sorted(job_id for _, job_id in rec.asked) == ["1001", "1002", "1003"]
    assert {folder for folder, _ in rec.asked} == {tmp_path}  # Slurm is asked in the folder of the job's log
    # the book itself is not rewritten by looking at it
    assert {k: j.state for k, j in JobBook("ml-100k").read().items()} == {j.key: j.state for j in jobs}

    empty, text = invoke(monkeypatch, "jobs", "--dataset", "toys")
    assert empty.exit_code == 0 and "toys: 0 job(s)" in text


def test_a_damaged_job_book_is_one_sentence(monkeypatch):
    book = JobBook("ml-100k")
    book.folder.mkdir(parents=True)
    book.path.write_text("{not json")
    with pytest.raises(BenchError, match=r"cannot be read .*delete that file \(the runs stay stored\)\."):
        book.read()
    result, text = invoke(monkeypatch, "jobs", "--dataset", "ml-100k")
    assert result.exit_code == 2 and text.startswith("error: The job records") and "Traceback" not in text


# ---- 3. Slurm, through a fake submitit ----------------------------------------------------------------


def test_slurm_submission_and_resubmission(ml100k, monkeypatch):
    rec = install_fake_submitit(monkeypatch)
    command = ["run", "--methods", "pop", "--seeds", "0,1", "--dataset", "ml-100k", "--executor", "slurm", "--partition", "gpu",
               "--gpus-per-job", "2", "--time", "90", "--sbatch", "account=abc", "--limit-test", "10"]  # fmt: skip
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text, result.exception)
    assert "2 job(s) to run, 0 stored already." in text
    book = JobBook("ml-100k")
    assert rec.executors == [(str(book.folder / "slurm"), "slurm")]
    assert rec.parameters == [
        {"timeout_min": 90, "tasks_per_node": 1, "nodes": 1, "slurm_additional_parameters": {"account": "abc"},
         "slurm_partition": "gpu", "gpus_per_node": 2}
    ]  # fmt: skip
    assert len(rec.commands) == 2
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "bench.cli"]
    for seed, cmd in zip(("0", "1"), rec.commands):
        assert cmd[: len(launcher)] == launcher
        assert value_after(cmd, "--methods") == "pop" and value_after(cmd, "--seeds") == seed
        assert value_after(cmd, "--limit-test") == "10" and value_after(cmd, "--dataset") == "ml-100k"
        assert cmd[len(launcher)] != "run" and "run" in cmd  # the locations come before the command
        for option, where in (("--results-dir", paths.results_dir()), ("--data-dir", paths.data_dir()),
                              ("--cache-dir", paths.cache_dir())):  # fmt: skip
            assert f"{option}={where}" in cmd[: cmd.index("run")]
        assert "--executor" not in cmd and "--sbatch" not in cmd  # a job runs its one run itself
    recorded = sorted(book.read().values(), key=lambda j: j.seed)
    assert [(j.seed, j.state, j.executor, j.job_id, j.label) for j in recorded] == [
        (0, "pending", "slurm", "1001", "pop"), (1, "pending", "slurm", "1002", "pop"),
    ]  # fmt: skip
    assert [j.log for j in recorded] == [str(book.folder / "slurm" / f"{i}_0_log.out") for i in ("1001", "1002")]
    assert [j.command for j in recorded] == rec.commands
    assert "Slurm job 1001" in text and "Slurm job 1002" in text

    # again while both are pending: nothing is submitted
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert "0 job(s) to run, 0 stored already." in text
    assert "already submitted (job 1001)" in text and "already submitted (job 1002)" in text
    assert len(rec.commands) == 2 and len(rec.parameters) == 1
    assert sorted(rec.asked) == [(book.folder / "slurm", "1001"), (book.folder / "slurm", "1002")]

    # seed 0 runs, seed 1 failed: only seed 1 is submitted again
    rec.states.update({"1001": "RUNNING", "1002": "FAILED"})
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert "1 job(s) to run, 0 stored already." in text
    assert "already submitted (job 1001)" in text and "already submitted (job 1002)" not in text
    assert len(rec.commands) == 3 and value_after(rec.commands[2], "--seeds") == "1"
    recorded = sorted(book.read().values(), key=lambda j: j.seed)
    assert [(j.seed, j.state, j.job_id) for j in recorded] == [(0, "pending", "1001"), (1, "pending", "1003")]


def test_one_gpu_per_slurm_job_runs_without_torchrun(ml100k, monkeypatch):
    rec = install_fake_submitit(monkeypatch)
    result, text = invoke(monkeypatch, "run", "--methods", "pop", "--dataset", "ml-100k", "--executor", "slurm",
                          "--gpus-per-job", "1", "--cpus-per-job", "8", "--limit-test", "10")  # fmt: skip
    assert result.exit_code == 0, (result.output, text)
    (cmd,) = rec.commands
    assert cmd[:3] == [sys.executable, "-m", "bench.cli"] and "torch.distributed.run" not in cmd
    assert rec.parameters == [{"timeout_min": 240, "tasks_per_node": 1, "nodes": 1, "slurm_additional_parameters": {},
                               "gpus_per_node": 1, "cpus_per_task": 8}]  # fmt: skip


def test_slurm_without_submitit_is_one_sentence(ml100k, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    result, text = invoke(monkeypatch, "run", "--methods", "pop", "--dataset", "ml-100k", "--executor", "slurm")
    assert result.exit_code == 2
    assert text.strip() == "error: --executor slurm needs submitit; install it with `pip install submitit`."
    assert not (paths.results_dir() / "jobs").exists()  # said before anything was recorded: no job claimed


def program(folder: Path, name: str, script: str) -> Path:
    """An executable `name` in `folder` (a stand-in for squeue or nvidia-smi) running `script` (sh)."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def slurm_job(key: str, job_id: str, state: str = "pending", seed: int = 0) -> Job:
    return Job(key=key, label=f"pop[case={key}]", seed=seed, command=["true"], executor="slurm", job_id=job_id,
               log=str(JobBook("ml-100k").folder / "slurm" / f"{job_id}_0_log.out"), state=state)  # fmt: skip


def test_a_job_sacct_cannot_tell_about_is_asked_of_squeue(tmp_path, monkeypatch):
    """Without Slurm's accounting database sacct fails and submitit says UNKNOWN: the controller
    (squeue) is asked instead, in one call; a job it has no record of is lost, and a job nobody can
    be asked about is unknown, never running."""
    rec = install_fake_submitit(monkeypatch)
    rec.states.update({"1005": "UNKNOWN", "1006": "UNKNOWN", "1007": "UNKNOWN", "1008": "CANCELLED by 1000"})
    JobBook("ml-100k").update(slurm_job("k5", "1005"), slurm_job("k6", "1006"), slurm_job("k7", "1007", "running"),
                              slurm_job("k8", "1008"))  # fmt: skip
    bin_dir = tmp_path / "bin"
    squeue = program(bin_dir, "squeue", 'echo "$@" >>"$0.args"\nprintf "1005|RUNNING\\n1007|CANCELLED\\n"\n')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def told() -> dict[str, tuple[str, str]]:
        return {job.job_id: (job.state, job.detail) for job in status("ml-100k", RunStore())}

    assert told() == {
        "1005": ("running", "RUNNING"), "1006": ("lost", "Slurm has no record of it"), "1007": ("failed", "CANCELLED"),
        "1008": ("failed", "CANCELLED by 1000"),
    }  # fmt: skip
    assert sorted(rec.asked) == [(JobBook("ml-100k").folder / "slurm", i) for i in ("1005", "1006", "1007", "1008")]
    assert Path(f"{squeue}.args").read_text() == "--noheader --states=all --jobs=1005,1006,1007 --format=%i|%T\n"

    # squeue refuses the lone id it has never had, as Slurm does
    program(bin_dir, "squeue", 'echo "slurm_load_jobs error: Invalid job id specified" >&2\nexit 1\n')
    assert told()["1006"] == ("lost", "Slurm has no record of it")
    # the controller cannot be reached: nobody knows
    program(bin_dir, "squeue", 'echo "slurm_load_jobs error: Unable to contact slurm controller" >&2\nexit 1\n')
    assert told() == {"1005": ("unknown", "Slurm could not be asked"), "1006": ("unknown", "Slurm could not be asked"),
                      "1007": ("unknown", "Slurm could not be asked"), "1008": ("failed", "CANCELLED by 1000")}  # fmt: skip
    # no squeue at all (a machine without Slurm's commands)
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert told()["1005"] == ("unknown", "Slurm could not be asked")


def test_lost_slurm_jobs_are_submitted_again_and_unknown_ones_are_not(ml100k, tmp_path, monkeypatch):
    rec = install_fake_submitit(monkeypatch)
    command = ["run", "--methods", "pop", "--seeds", "0,1", "--dataset", "ml-100k", "--limit-test", "5", "--executor", "slurm"]
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0 and "2 job(s) to run, 0 stored already." in text
    rec.states.update({"1001": "UNKNOWN", "1002": "UNKNOWN"})  # sacct cannot tell
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # and there is no squeue to ask
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0 and "0 job(s) to run, 0 stored already." in text
    assert "pop seed 0: job 1001 cannot be asked about (Slurm could not be asked), not submitted again" in text
    assert [(j.job_id, j.state) for j in status("ml-100k", RunStore())] == [("1001", "unknown"), ("1002", "unknown")]

    program(tmp_path / "bin", "squeue", "printf '1002|PENDING\\n'\n")  # 1001 is no longer known to Slurm
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0 and "1 job(s) to run, 0 stored already." in text
    assert "pop seed 1: already submitted (job 1002), not again" in text
    assert [value_after(cmd, "--seeds") for cmd in rec.commands] == ["0", "1", "0"]
    assert [(j.seed, j.job_id, j.state) for j in status("ml-100k", RunStore())] == [
        (0, "1003", "pending"),
        (1, "1002", "pending"),
    ]


def test_a_job_waiting_in_its_submission_is_pending_while_that_process_lives(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = socket.gethostname()

    def job(key, executor, submitter, host=here, state="pending", job_id=""):
        return Job(key=key, label=f"pop[case={key}]", seed=0, command=["true"], executor=executor, log=str(tmp_path / key),
                   state=state, job_id=job_id, host=host, submitter=submitter)  # fmt: skip

    try:
        JobBook("ml-100k").update(
            job("waits", "local", sleeper.pid), job("orphan", "local", gone.pid), job("asker", "slurm", os.getpid()),
            job("old-record", "local", 0), job("elsewhere", "local", sleeper.pid, host="other-machine"),
            job("running-elsewhere", "local", 1, host="other-machine", state="running", job_id=str(sleeper.pid)),
        )  # fmt: skip
        assert {j.label: j.state for j in status("ml-100k", RunStore())} == {
            "pop[case=waits]": "pending", "pop[case=orphan]": "lost", "pop[case=asker]": "lost",
            "pop[case=old-record]": "lost", "pop[case=elsewhere]": "unknown", "pop[case=running-elsewhere]": "unknown",
        }  # fmt: skip
    finally:
        sleeper.kill()
        sleeper.wait()


# ---- 4. the local executor's GPUs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_gpus, n_parallel, slots, line",
    [
        (0, 4, [], ""),
        (1, 4, [], ""),
        (4, 4, ["0", "1", "2", "3"], "4 GPUs, 4 job(s) at a time: one GPU each (CUDA_VISIBLE_DEVICES 0, 1, 2, 3)."),
        (4, 1, ["0"], "4 GPUs, 1 job(s) at a time: one GPU each (CUDA_VISIBLE_DEVICES 0); 3 stay unused (--jobs 4 uses them all)."),
        (8, 3, ["0", "1", "2"],
         "8 GPUs, 3 job(s) at a time: one GPU each (CUDA_VISIBLE_DEVICES 0, 1, 2); 5 stay unused (--jobs 8 uses them all)."),
        (2, 5, ["0", "1", "0", "1", "0"], "2 GPUs, 5 job(s) at a time: up to 3 jobs share each GPU (CUDA_VISIBLE_DEVICES 0, 1)."),
        (3, 6, ["0", "1", "2", "0", "1", "2"], "3 GPUs, 6 job(s) at a time: up to 2 jobs share each GPU (CUDA_VISIBLE_DEVICES 0, 1, 2)."),
    ],
)  # fmt: skip
def test_gpus_are_split_between_local_jobs(n_gpus, n_parallel, slots, line):
    assert gpu_slots([str(i) for i in range(n_gpus)], n_parallel) == (slots, line)


def test_visible_gpus_without_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 3")
    assert visible_gpus() == ["2", "3"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8a1f,1,-1,2")  # CUDA stops at the first invalid entry
    assert visible_gpus() == ["GPU-8a1f", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    listing = ("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\\n  MIG 3g.40gb     Device  0: (UUID: MIG-bbbb)\\n"
               "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-cccc)\\nGPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-dddd)\\n")  # fmt: skip
    program(tmp_path / "bin", "nvidia-smi", f'[ "$1" = -L ] && printf "{listing}"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    assert visible_gpus() == ["0", "1", "2"]
    program(tmp_path / "bin", "nvidia-smi", 'echo "NVIDIA-SMI has failed: no driver"\nexit 9\n')
    assert visible_gpus() == []
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert visible_gpus() == []
    assert "torch" not in subprocess.run([sys.executable, "-c", "import sys, bench.jobs; print(sorted(sys.modules))"],
                                         capture_output=True, text=True, check=True).stdout  # fmt: skip


def test_each_local_job_runs_on_its_own_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    book = JobBook("ml-100k")
    book.folder.mkdir(parents=True)
    report = "import os, time; print(os.environ.get('CUDA_VISIBLE_DEVICES'), os.environ.get('CUDA_DEVICE_ORDER')); time.sleep(1)"
    jobs = [Job(key=f"k{i}", label=f"fake[level={i}]", seed=0, command=[sys.executable, "-c", report], executor="local",
                log=str(tmp_path / f"k{i}.log")) for i in range(3)]  # fmt: skip
    out = io.StringIO()
    run_local(jobs, 2, book, Console(file=out, width=250, color_system=None), gpus=["0", "1", "2", "3"])
    seen = [Path(job.log).read_text().split() for job in jobs]
    assert seen[0] == ["0", "PCI_BUS_ID"] and seen[1] == ["1", "PCI_BUS_ID"]  # the two running together differ
    assert seen[2] in (["0", "PCI_BUS_ID"], ["1", "PCI_BUS_ID"])  # the third takes the GPU its predecessor freed
    assert (
        [job.gpus for job in jobs] == [s[0] for s in seen] == [j.gpus for j in sorted(book.read().values(), key=lambda j: j.key)]
    )
    text = out.getvalue()
    assert text.count("4 GPUs, 2 job(s) at a time: one GPU each (CUDA_VISIBLE_DEVICES 0, 1); 2 stay unused") == 1
    assert "started fake[level=0] seed 0 on GPU 0" in text and "started fake[level=1] seed 0 on GPU 1" in text


def test_local_jobs_get_gpus_when_a_job_may_take_any(ml100k, tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    program(tmp_path / "bin", "nvidia-smi", 'printf "GPU 0: A (UUID: GPU-a)\\nGPU 1: B (UUID: GPU-b)\\n"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    command = ["run", "--methods", "pop", "--seeds", "0,1", "--dataset", "ml-100k", "--limit-test", "5", "--executor", "local",
               "--jobs", "2"]  # fmt: skip
    monkeypatch.setattr("bench.seeding.resolve_device", lambda device: "cpu")  # this machine's torch sees no GPU
    given = []
    with monkeypatch.context() as m:
        m.setattr(jobs_module, "run_local", lambda jobs, n, book, console, gpus=(): given.append(gpus))
        for device in ("cpu", "cuda:1", "auto"):
            result, text = invoke(monkeypatch, *command, "--device", device)
            assert result.exit_code == 0, text
    assert given == [[], [], ["0", "1"]]  # split only where a job may take any GPU
    result, text = invoke(monkeypatch, *command, "--device", "auto")
    assert result.exit_code == 0, text
    assert "2 GPUs, 2 job(s) at a time: one GPU each (CUDA_VISIBLE_DEVICES 0, 1)." in text
    assert sorted(j.gpus for j in JobBook("ml-100k").read().values()) == ["0", "1"]


# ---- 5. what a job is given ----------------------------------------------------------------------------


def test_settings_are_written_back_as_texts_that_read_back():
    assert _texts({}) == {}
    assert _texts({"z": True, "a": None, "m": [1, 2, 3], "f": 0.5, "b": False, "t": ("x", "y"), "s": "text", "n": 7,
                   "e": 1e-05}) == {
        "a": "none", "b": "false", "e": "1e-05", "f": "0.5", "m": "1,2,3", "n": "7", "s": "text", "t": "x,y", "z": "true",
    }  # fmt: skip


def test_evaluation_arguments_by_hand():
    random20 = Evaluation(test=SampleChoice(20, "random", 3))
    assert random20.to_argv() == ["--test-subset", "random", "--subset-seed", "3", "--limit-test", "20", "--no-valid"]
    first_all_valid = Evaluation(test=SampleChoice(None, "first"), valid=SampleChoice(None, "random", 0), history=("last",))
    assert first_all_valid.to_argv() == ["--test-subset", "first", "--subset-seed", "0", "--valid", "--history", "last"]
    first5_valid30 = Evaluation(test=SampleChoice(5, "first", 2), valid=SampleChoice(30, "random", 2))
    assert first5_valid30.to_argv() == [
        "--test-subset", "first", "--subset-seed", "2", "--limit-test", "5", "--valid", "--limit-valid", "30",
    ]  # fmt: skip


def test_job_command_local_and_torchrun(fake_plugin):
    request = RunRequest(("fake",), dataset="ml-100k", device="cpu", evaluation=Evaluation(), name="exp-1", force=True)
    (p,) = RunRequest(("fake",), overrides={"fake": {"flag": "true", "tags": "a,b", "level": "2"}}).plan()
    command = job_command(request.for_job(p, 3), gpus=0)
    assert command == [
        sys.executable, "-m", "bench.cli",
        f"--results-dir={paths.results_dir()}", f"--data-dir={paths.data_dir()}", f"--cache-dir={paths.cache_dir()}",
        "run", "--methods", "fake", "--dataset", "ml-100k", "--seeds", "3", "--device", "cpu",
        "--test-subset", "random", "--subset-seed", "0", "--no-valid", "--busy", "wait",
        "--set", "fake.flag=true", "--set", "fake.level=2", "--set", "fake.tags=a,b", "--name", "exp-1", "--force",
    ]  # fmt: skip
    assert job_command(request.for_job(p, 3), gpus=1)[:3] == [sys.executable, "-m", "bench.cli"]
    assert job_command(request.for_job(p, 3), gpus=4)[:7] == [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "-m", "bench.cli",
    ]  # fmt: skip


def test_a_job_computes_the_key_it_was_submitted_for(fake_plugin, monkeypatch):
    """Each job's command, read back by `bench run`, is the job's request: it plans the same
    configuration and evaluation, so the job stores the key the submission checks for (else a
    resumed grid would never finish)."""
    request = RunRequest.from_options(
        "fake", seeds="4", sets=["fake.tags=a,b", "fake.note=hi"], grid=["fake.rate=0.1,1e-5", "fake.flag=true,false"],
        limit_test=20, subset_seed=3, limit_valid=7, dataset="ml-100k", device="cpu", name="exp",
    )  # fmt: skip
    planned = request.plan()
    assert len(planned) == 4 and request.evaluation.valid == SampleChoice(7, "random", 3)
    captured = []
    monkeypatch.setattr("bench.runner.run_benchmark", lambda request, **kw: captured.append(request) or [])
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), width=200))
    for p in planned:
        job = request.for_job(p, 4)
        result = CliRunner().invoke(cli.app, job_command(job, gpus=0)[3:])
        assert result.exit_code == 0, (result.output, result.exception)
        read_back = captured[-1]
        assert read_back == job and read_back.evaluation == request.evaluation
        (q,) = read_back.plan()
        assert q.resolved == p.resolved and q.label == p.label
        assert read_back.evaluation.key(q, "0" * 16, 4) == request.evaluation.key(p, "0" * 16, 4)


def test_a_group_job_computes_exactly_the_keys_of_its_group(monkeypatch):
    """Configurations sharing a fit become one job whose command, read back by `bench run`, plans
    exactly their keys: the shared settings as --set, the varied ones as --grid, a grid value that
    is the default (num_beams=10) included."""
    from bench.job_groups import group_request, group_runs

    request = RunRequest.from_options(
        "sft", seeds="0,1", sets=["sft.model=tiny"], grid=["sft.num_beams=4,10", "sft.max_train_samples=8,16",
        "sft.grounding_gamma=0,2"], limit_test=5, dataset="ml-100k", device="cpu",
    )  # fmt: skip
    split_hash = "0" * 16
    wanted = [(p, seed, request.evaluation.key(p, split_hash, seed)) for p in request.plan() for seed in request.seeds]
    groups = group_runs(wanted, split_hash)
    assert len(wanted) == 16 and [len(g) for g in groups] == [4, 4, 4, 4]  # (max_train_samples, seed) each
    captured = []
    monkeypatch.setattr("bench.runner.run_benchmark", lambda request, **kw: captured.append(request) or [])
    monkeypatch.setattr(cli, "console", Console(file=io.StringIO(), width=200))
    for group in groups:
        job = group_request(request, group, split_hash)
        assert job is not None and job.seeds == (group[0][1],)
        result = CliRunner().invoke(cli.app, job_command(job, gpus=0)[3:])
        assert result.exit_code == 0, (result.output, result.exception)
        read_back = captured[-1]
        planned = {read_back.evaluation.key(q, split_hash, group[0][1]) for q in read_back.plan()}
        assert planned == {key for _, _, key in group}


# ---- 6. bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra, sentence",
    [
        (["--executor", "pbs"], "Unknown executor 'pbs'; choose local or slurm."),
        (["--executor", "local", "--jobs", "0"], "--jobs must be at least 1, not 0."),
        (["--executor", "slurm", "--sbatch", "account"],
         "Cannot read --sbatch 'account'; write it as key=value, e.g. --sbatch account=abc."),
        (["--executor", "slurm", "--sbatch", "=abc"], "Cannot read --sbatch '=abc'; write it as key=value, e.g. --sbatch account=abc."),
        (["--executor", "slurm", "--gpus-per-job", "-1"], "--gpus-per-job must be 0 (no GPU) or more, not -1."),
        (["--executor", "slurm", "--time", "0"], "--time must be at least 1 minute, not 0."),
        (["--executor", "slurm", "--cpus-per-job", "0"], "--cpus-per-job must be at least 1, not 0."),
    ],
)  # fmt: skip
def test_bad_job_options_are_one_sentence(ml100k, monkeypatch, extra, sentence):
    install_fake_submitit(monkeypatch)
    result, text = invoke(monkeypatch, "run", "--methods", "pop", "--dataset", "ml-100k", "--device", "cpu", *extra)
    assert result.exit_code == 2, (result.output, text)
    assert text.strip() == f"error: {sentence}"
    assert not (paths.results_dir() / "jobs").exists()  # nothing submitted, nothing recorded


# ---- regressions: jobs interrupted, refused or failed ------------------------------------------


def test_progress_lines_name_the_configuration(tmp_path, monkeypatch):
    install_fake_submitit(monkeypatch)
    out = io.StringIO()
    console = Console(file=out, width=250, color_system=None)
    book = JobBook("ml-100k")
    book.folder.mkdir(parents=True)
    local = Job(key="k1", label="fake[level=1]", seed=0, command=[sys.executable, "-c", "pass"], executor="local",
                log=str(tmp_path / "k1.log"))  # fmt: skip
    run_local([local], 1, book, console)
    assert local.state == "finished"
    slurm = Job(key="k2", label="fake[level=2]", seed=0, command=["true"], executor="slurm", log=str(tmp_path / "k2.log"))
    submit_slurm([slurm], Cluster(), book, console)
    assert slurm.job_id == "1001"
    text = out.getvalue()
    assert "started fake[level=1] seed 0" in text
    assert "finished fake[level=1] seed 0" in text
    assert "submitted fake[level=2] seed 0: Slurm job 1001" in text


def test_jobs_left_waiting_by_an_interrupted_local_submission_run_when_resumed(ml100k, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C before the first job started

    monkeypatch.setattr(jobs_module, "subprocess", SimpleNamespace(Popen=interrupted, STDOUT=subprocess.STDOUT))
    command = ["run", "--methods", "pop", "--seeds", "0,1", "--dataset", "ml-100k", "--limit-test", "5", "--executor", "local",
               "--jobs", "1", "--device", "cpu"]  # fmt: skip
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 130 and "run the same command again to resume" in text
    assert sorted((j.seed, j.state, j.job_id) for j in JobBook("ml-100k").read().values()) == [
        (0, "pending", ""),
        (1, "pending", ""),
    ]
    # recorded as waiting, but the submission that held them has ended: nothing will run them
    assert [(j.seed, j.state) for j in status("ml-100k", RunStore())] == [(0, "lost"), (1, "lost")]
    assert re.search(r"^\s*a\s+pop\s+0\s+lost\s+local\s+-", text, re.M), text

    started = []
    monkeypatch.setattr(jobs_module, "run_local", lambda jobs, n, book, console, **kw: started.extend(jobs))
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert sorted(j.seed for j in started) == [0, 1]
    assert "2 job(s) to run, 0 stored already." in text


def test_slurm_jobs_left_unsubmitted_by_a_failed_submission_are_submitted_again(ml100k, monkeypatch):
    install_fake_submitit(monkeypatch, fail_on_call=2)
    command = ["run", "--methods", "pop", "--seeds", "0,1", "--dataset", "ml-100k", "--limit-test", "5", "--executor", "slurm"]
    result, text = invoke(monkeypatch, *command)
    assert isinstance(result.exception, RuntimeError)
    assert sorted((j.seed, j.state, j.job_id) for j in JobBook("ml-100k").read().values()) == [
        (0, "pending", "1001"), (1, "pending", ""),
    ]  # fmt: skip

    rec = install_fake_submitit(monkeypatch)
    rec.next_id = 2000
    rec.states["1001"] = "PENDING"
    result, text = invoke(monkeypatch, *command)
    assert result.exit_code == 0, (result.output, text)
    assert "1 job(s) to run, 0 stored already." in text
    assert [value_after(cmd, "--seeds") for cmd in rec.commands] == ["1"]


def test_a_failed_local_job_fails_the_command(ml100k, monkeypatch):
    monkeypatch.setattr(jobs_module, "job_command", lambda *args, **kwargs: [sys.executable, "-c", "raise SystemExit(3)"])
    result, text = invoke(monkeypatch, "run", "--methods", "pop", "--dataset", "ml-100k", "--limit-test", "5",
                          "--executor", "local", "--device", "cpu")  # fmt: skip
    (job,) = JobBook("ml-100k").read().values()
    assert job.state == "failed" and job.returncode == 3
    assert re.search(r"^\s*a\s+pop\s+0\s+failed\s+local", text, re.M), text
    assert result.exit_code == 2
