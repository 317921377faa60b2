"""Running a command's runs as separate jobs: N local processes, or one Slurm job each through
submitit. Every job is one (method, configuration, seed) and runs the ordinary `bench run` for it,
so it is keyed, stored and resumed like any run; the store's per-key locks keep two jobs of one key
from computing it twice.

    bench run --methods cft,sasrec --grid cft.alpha=0.05,0.1 --executor local --jobs 2
    bench run ... --executor slurm --partition gpu --gpus-per-job 1 --time 240 --sbatch 'account=abc'
    bench jobs                      # pending, running, finished and failed jobs with their logs

Submitting again submits only what is neither stored nor pending/running. Job records and logs
live under <results>/jobs/<dataset>/; a Slurm job's state is asked from Slurm (through submitit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from rich.markup import escape

from bench import paths
from bench.atomic import write_text
from bench.errors import BenchError
from bench.locks import lock_for

EXECUTORS = ("local", "slurm")
DONE, FAILED, PENDING, RUNNING, LOST = "finished", "failed", "pending", "running", "lost"


@dataclass
class Job:
    key: str  # the run key: one job per key
    label: str  # method and settings, as in tables
    seed: int
    command: list[str]  # what the job runs
    executor: str
    log: str
    state: str = PENDING
    job_id: str = ""  # the process id (local) or the Slurm job id
    returncode: int | None = None
    submitted_at: str = ""
    ended_at: str = ""


@dataclass
class Cluster:
    """Slurm settings of a submission (ignored by the local executor)."""

    partition: str | None = None
    gpus_per_job: int = 0
    time_min: int = 240
    cpus_per_job: int | None = None
    sbatch: dict = field(default_factory=dict)  # any other sbatch parameter


def job_command(request, gpus: int) -> list[str]:
    """The `bench run` of one request (one configuration, one seed); under torchrun with several GPUs."""
    locations = [f"--results-dir={paths.results_dir()}", f"--data-dir={paths.data_dir()}", f"--cache-dir={paths.cache_dir()}"]
    args = ["run", *request.to_argv()]
    if gpus > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(gpus), "-m", "bench.cli"]
        return launcher + locations + args
    return [sys.executable, "-m", "bench.cli", *locations, *args]


class JobBook:
    """The job records of one dataset (a JSON file guarded by a lock)."""

    def __init__(self, dataset: str, root: Path | None = None):
        self.folder = (Path(root) if root is not None else paths.results_dir()) / "jobs" / dataset
        self.path = self.folder / "jobs.json"

    def read(self) -> dict[str, Job]:
        if not self.path.is_file():
            return {}
        try:
            return {key: Job(**job) for key, job in json.loads(self.path.read_text(encoding="utf-8")).items()}
        except (OSError, ValueError, TypeError) as exc:
            raise BenchError(
                f"The job records {self.path} cannot be read ({exc}); delete that file (the runs stay stored)."
            ) from exc

    def update(self, *jobs: Job) -> None:
        with lock_for(self.folder / ".jobs.lock"):
            book = self.read()
            book.update({job.key: job for job in jobs})
            write_text(self.path, json.dumps({k: asdict(j) for k, j in book.items()}, indent=2, sort_keys=True))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def refresh(job: Job, stored: bool) -> Job:
    """The job's state now: a stored key is finished; otherwise ask the process or Slurm."""
    if stored:
        job.state = DONE
    elif job.state in (PENDING, RUNNING) and job.executor == "slurm" and job.job_id:
        job.state = _slurm_state(job)
    elif job.state == RUNNING and job.executor == "local" and job.job_id and not _alive(int(job.job_id)):
        job.state = LOST  # the submitting process died with its jobs
    elif job.state == DONE:
        job.state = FAILED  # finished without storing: its log says why
    return job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _slurm_state(job: Job) -> str:
    import submitit

    state = submitit.SlurmJob(folder=Path(job.log).parent, job_id=job.job_id).state.upper()
    if state in ("PENDING", "REQUEUED", "CONFIGURING"):
        return PENDING
    if state in ("RUNNING", "COMPLETING", "UNKNOWN"):
        return RUNNING
    return FAILED  # finished states without a stored run (COMPLETED but not stored counts as failed)


def run_local(jobs: list[Job], n_parallel: int, book: JobBook, console) -> None:
    """Run the jobs as `n_parallel` processes at a time, splitting the CPU threads between them."""
    threads = max(1, (os.cpu_count() or 1) // n_parallel)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    waiting, running = list(jobs), []
    while waiting or running:
        while waiting and len(running) < n_parallel:
            job = waiting.pop(0)
            log = open(job.log, "w", encoding="utf-8")  # noqa: SIM115 (closed when the job ends)
            proc = subprocess.Popen(job.command, stdout=log, stderr=subprocess.STDOUT, env=env)
            job.state, job.job_id, job.submitted_at = RUNNING, str(proc.pid), _now()
            book.update(job)
            running.append((job, proc, log))
            console.print(f"[dim]started {escape(job.label)} seed {job.seed} (log {job.log})[/]", highlight=False)
        time.sleep(0.2)
        for entry in list(running):
            job, proc, log = entry
            if proc.poll() is None:
                continue
            log.close()
            running.remove(entry)
            job.returncode, job.ended_at = proc.returncode, _now()
            job.state = DONE if proc.returncode == 0 else FAILED
            book.update(job)
            console.print(
                f"{'finished' if job.state == DONE else '[red]failed[/]'} {escape(job.label)} seed {job.seed}", highlight=False
            )


def submit_slurm(jobs: list[Job], cluster: Cluster, book: JobBook, console) -> None:
    try:
        import submitit
    except ImportError as exc:
        raise BenchError("--executor slurm needs submitit; install it with `pip install submitit`.") from exc
    executor = submitit.AutoExecutor(folder=str(book.folder / "slurm"), cluster="slurm")
    params = dict(timeout_min=cluster.time_min, tasks_per_node=1, nodes=1, slurm_additional_parameters=dict(cluster.sbatch))
    if cluster.partition:
        params["slurm_partition"] = cluster.partition
    if cluster.gpus_per_job:
        params["gpus_per_node"] = cluster.gpus_per_job
    if cluster.cpus_per_job:
        params["cpus_per_task"] = cluster.cpus_per_job
    executor.update_parameters(**params)
    for job in jobs:
        submitted = executor.submit(submitit.helpers.CommandFunction(job.command, verbose=True))
        job.job_id, job.submitted_at, job.state = str(submitted.job_id), _now(), PENDING
        job.log = str(submitted.paths.stdout)
        book.update(job)
        console.print(f"submitted {escape(job.label)} seed {job.seed}: Slurm job {job.job_id} (log {job.log})", highlight=False)


def check_executor(executor: str, n_parallel: int) -> None:
    if executor not in EXECUTORS:
        raise BenchError(f"Unknown executor '{executor}'; choose local or slurm.")
    if n_parallel < 1:
        raise BenchError(f"--jobs must be at least 1, not {n_parallel}.")


def submit(request, planned, split, store, executor: str, n_parallel: int, cluster: Cluster, console) -> list[Job]:
    """One job per (configuration, seed) of the request not stored yet and not already pending or running."""
    check_executor(executor, n_parallel)
    book = JobBook(split.name, store.root)
    book.folder.mkdir(parents=True, exist_ok=True)
    known = book.read()
    todo, skipped = [], 0
    evaluation, force = request.evaluation, request.force
    for p in planned:
        for seed in request.seeds:
            key = evaluation.key(p, split.hash, seed)
            stored, _ = store.find(split.name, p.name, key)
            if stored is not None and evaluation.valid_done(stored) and not force:
                skipped += 1
                continue
            previous = known.get(key)
            if previous is not None and _in_flight(previous):
                shown = f"{escape(p.label)} seed {seed}: already submitted (job {previous.job_id}), not again"
                console.print(f"[dim]{shown}[/]", highlight=False)
                continue
            log = str(book.folder / f"{key}.log")
            command = job_command(request.for_job(p, seed), cluster.gpus_per_job if executor == "slurm" else 0)
            todo.append(Job(key=key, label=p.label, seed=seed, command=command, executor=executor, log=log))
    console.print(f"{len(todo)} job(s) to run, {skipped} stored already.")
    if todo:
        book.update(*todo)
        if executor == "local":
            run_local(todo, n_parallel, book, console)
        else:
            submit_slurm(todo, cluster, book, console)
    failed = [job for job in todo if job.state == FAILED]
    if failed:
        shown = "; ".join(f"{job.label} seed {job.seed} (log {job.log})" for job in failed)
        raise BenchError(f"{len(failed)} job(s) failed: {shown}; fix the cause and run the same command again to retry them.")
    return todo


def _in_flight(job: Job) -> bool:
    """Whether a recorded job is still queued or running somewhere. A job never handed to an
    executor (no id: the submission was interrupted or refused) is not; a local one is only while
    its process lives."""
    if not job.job_id:
        return False
    return refresh(job, False).state in (PENDING, RUNNING)


def status(dataset: str, store) -> list[Job]:
    """Every recorded job of a dataset with its state now."""
    book = JobBook(dataset, store.root)
    jobs = []
    for job in book.read().values():
        method = job.label.split("[")[0]
        stored, _ = store.find(dataset, method, job.key)
        jobs.append(refresh(job, stored is not None))
    return sorted(jobs, key=lambda j: (j.label, j.seed))
