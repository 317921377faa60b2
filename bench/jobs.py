"""Running a command's runs as separate jobs: N local processes, or one Slurm job each through
submitit. Every job is one (method, configuration, seed), or the configurations of one method and
seed that share a fit (they differ in decode-time settings only: bench.job_groups), and runs the
ordinary `bench run` for them, so each run is keyed, stored and resumed like any run; the store's
per-key locks keep two jobs of one key from computing it twice, and the fit cache
(bench.fitcache) lets a later job load a fit an earlier one stored. The job book keeps one record
per run; the runs of one job share its command, id and log.

    bench run --methods cft,sasrec --grid cft.alpha=0.05,0.1 --executor local --jobs 2
    bench run ... --executor slurm --partition gpu --gpus-per-job 1 --time 240 --sbatch 'account=abc'
    bench jobs                      # pending, running, finished, failed and lost jobs with their logs

Submitting again submits only what is neither stored nor pending/running; records and logs live
under <results>/jobs/<dataset>/. A job's state is what its executor says now: a stored run is
finished; a Slurm job is what Slurm reports (sacct through submitit, else squeue), lost once Slurm
has no record of it; a local job is running while its process lives, lost once it has gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
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
from bench.job_groups import job_groups, job_units, named
from bench.local_gpus import gpu_slots, visible_gpus
from bench.locks import lock_for

EXECUTORS = ("local", "slurm")
DONE, FAILED, PENDING, RUNNING, LOST = "finished", "failed", "pending", "running", "lost"
UNKNOWN = "unknown"  # its executor cannot be asked from here (Slurm unreachable, a process on another machine)
IN_FLIGHT = (PENDING, RUNNING, UNKNOWN)  # not submitted again: it may still store its run

# Slurm's job states (sacct, squeue) by what they mean for a run not stored yet; every other state
# (COMPLETED, FAILED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, PREEMPTED, ...) has ended
SLURM_QUEUED = {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "CONFIGURING"}
SLURM_ACTIVE = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED"}
NOT_KNOWN = ""  # what Slurm says of a job id it has no record of


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
    host: str = ""  # the machine that submitted it (a local job's process id means something there only)
    submitter: int = 0  # the process id of the submitting `bench run` (a local job waits in it)
    gpus: str = ""  # a local job's CUDA_VISIBLE_DEVICES
    detail: str = ""  # what its executor said when asked, e.g. Slurm's "CANCELLED by 0" (filled when asked, not kept)


@dataclass
class Cluster:
    """Slurm settings of a submission (ignored by the local executor). Checked when made, so a
    mistake is one sentence before anything is submitted."""

    partition: str | None = None
    gpus_per_job: int = 0
    time_min: int = 240
    cpus_per_job: int | None = None
    sbatch: dict = field(default_factory=dict)  # any other sbatch parameter

    def __post_init__(self):
        if self.gpus_per_job < 0:
            raise BenchError(f"--gpus-per-job must be 0 (no GPU) or more, not {self.gpus_per_job}.")
        if self.time_min < 1:
            raise BenchError(f"--time must be at least 1 minute, not {self.time_min}.")
        if self.cpus_per_job is not None and self.cpus_per_job < 1:
            raise BenchError(f"--cpus-per-job must be at least 1, not {self.cpus_per_job}.")


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


def refresh(job: Job, stored: bool, slurm: dict[str, str] | None = None) -> Job:
    """The job's state now: a stored key is finished; otherwise what its executor says (`slurm`:
    what Slurm said of the Slurm jobs, from ask_slurm; a job missing there could not be asked)."""
    if stored:
        job.state = DONE
    elif _asks_slurm(job):
        job.state, job.detail = _slurm_meaning((slurm or {}).get(job.job_id))
    elif job.state == PENDING and not job.job_id:  # waits in the process that submitted it, while that one lives
        job.state = UNKNOWN if not _on_this_host(job) else PENDING if _waits_in_submitter(job) else LOST
    elif job.state == RUNNING and job.executor == "local" and job.job_id:
        if not _on_this_host(job):
            job.state = UNKNOWN
        elif not _alive(int(job.job_id)):
            job.state = LOST  # the submitting process died with its jobs
    elif job.state == DONE:
        job.state = FAILED  # finished without storing: its log says why
    return job


def _asks_slurm(job: Job) -> bool:
    return job.executor == "slurm" and bool(job.job_id) and job.state in (PENDING, RUNNING)


def _waits_in_submitter(job: Job) -> bool:
    """Whether the submitting process lives and is not this one (which asks, so runs no submission)."""
    return bool(job.submitter) and job.submitter != os.getpid() and _alive(job.submitter)


def _on_this_host(job: Job) -> bool:
    return not job.host or job.host == socket.gethostname()  # records without a host came from here


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _slurm_meaning(said: str | None) -> tuple[str, str]:
    """(state, detail) of what Slurm said of a job not stored yet."""
    if said is None:
        return UNKNOWN, "Slurm could not be asked"
    if said == NOT_KNOWN:
        return LOST, "Slurm has no record of it"
    word = said.split()[0].upper()  # sacct writes e.g. "CANCELLED by 1000"
    if word in SLURM_QUEUED:
        return PENDING, said
    if word in SLURM_ACTIVE:
        return RUNNING, said
    return FAILED, said  # ended without a stored run (COMPLETED but not stored counts as failed)


def ask_slurm(jobs: list[Job]) -> dict[str, str]:
    """What Slurm says of each job id: its state, or NOT_KNOWN; an id Slurm could not be asked
    about is left out. Its accounting first (sacct, through submitit: one call for all); where that
    has no answer (no accounting database, a job not recorded yet) its controller (squeue), which
    knows queued and running jobs and those that ended in the last minutes (MinJobAge)."""
    ids = list(dict.fromkeys(job.job_id for job in jobs))
    said: dict[str, str] = {}
    if not ids:
        return said
    try:
        import submitit
    except ImportError:
        submitit = None
    if submitit is not None:
        with _quiet_submitit():
            handles = {job.job_id: submitit.SlurmJob(folder=Path(job.log).parent, job_id=job.job_id) for job in jobs}
            states = {job_id: str(handle.state) for job_id, handle in handles.items()}
        said.update({job_id: state for job_id, state in states.items() if state.upper() != "UNKNOWN"})
    rest = [job_id for job_id in ids if job_id not in said]
    return {**said, **_ask_controller(rest)} if rest else said


def _ask_controller(ids: list[str]) -> dict[str, str]:
    """squeue's state of each job id (NOT_KNOWN for ids it has no record of); {} when it cannot answer."""
    command = ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if done.returncode != 0:  # one id it has never had (or no longer has) is an error, not an empty answer
        return {job_id: NOT_KNOWN for job_id in ids} if "invalid job id" in done.stderr.lower() else {}
    found = dict(line.split("|", 1) for line in done.stdout.split() if "|" in line)
    return {job_id: found.get(job_id, NOT_KNOWN) for job_id in ids}


@contextlib.contextmanager
def _quiet_submitit():
    """Without an accounting database sacct fails, writing to this process's stderr, and submitit
    warns: expected (the controller is asked next), so both are kept off the terminal."""
    logger = logging.getLogger("submitit")
    level, saved, devnull = logger.level, os.dup(2), os.open(os.devnull, os.O_WRONLY)
    logger.setLevel(logging.ERROR)
    sys.stderr.flush()
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        logger.setLevel(level)


def run_local(jobs: list[Job], n_parallel: int, book: JobBook, console, gpus: list[str] = ()) -> None:
    """Run the jobs as `n_parallel` processes at a time, splitting the CPU threads between them
    and, with several GPUs, the GPUs (gpu_slots)."""
    threads = max(1, (os.cpu_count() or 1) // n_parallel)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    slots, split = gpu_slots(list(gpus), n_parallel)
    if split:
        console.print(split, highlight=False)
        if "CUDA_VISIBLE_DEVICES" not in os.environ:
            env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # CUDA's numbering, as nvidia-smi's
    free, waiting, running = list(range(n_parallel)), job_units(jobs), []
    while waiting or running:
        while waiting and free:
            unit, slot = waiting.pop(0), free.pop(0)
            first, gpus = unit[0], slots[slot] if slots else ""
            job_env = dict(env, CUDA_VISIBLE_DEVICES=gpus) if gpus else env
            log = open(first.log, "w", encoding="utf-8")  # noqa: SIM115 (closed when the job ends)
            proc = subprocess.Popen(first.command, stdout=log, stderr=subprocess.STDOUT, env=job_env)
            for job in unit:
                job.gpus, job.state, job.job_id, job.submitted_at = gpus, RUNNING, str(proc.pid), _now()
            book.update(*unit)
            running.append((unit, proc, log, slot))
            on_gpu = f" on GPU {gpus}" if gpus else ""
            console.print(f"[dim]started {named(unit)}{on_gpu} (log {first.log})[/]", highlight=False)
        time.sleep(0.2)
        for entry in list(running):
            unit, proc, log, slot = entry
            if proc.poll() is None:
                continue
            log.close()
            running.remove(entry)
            free = sorted(free + [slot])
            for job in unit:
                job.returncode, job.ended_at = proc.returncode, _now()
                job.state = DONE if proc.returncode == 0 else FAILED
            book.update(*unit)
            console.print(f"{'finished' if proc.returncode == 0 else '[red]failed[/]'} {named(unit)}", highlight=False)


def submit_slurm(jobs: list[Job], cluster: Cluster, book: JobBook, console) -> None:
    submitit = _import_submitit()
    executor = submitit.AutoExecutor(folder=str(book.folder / "slurm"), cluster="slurm")
    params = dict(timeout_min=cluster.time_min, tasks_per_node=1, nodes=1, slurm_additional_parameters=dict(cluster.sbatch))
    if cluster.partition:
        params["slurm_partition"] = cluster.partition
    if cluster.gpus_per_job:
        params["gpus_per_node"] = cluster.gpus_per_job
    if cluster.cpus_per_job:
        params["cpus_per_task"] = cluster.cpus_per_job
    executor.update_parameters(**params)
    for unit in job_units(jobs):
        submitted = executor.submit(submitit.helpers.CommandFunction(unit[0].command, verbose=True))
        for job in unit:
            job.job_id, job.submitted_at, job.state = str(submitted.job_id), _now(), PENDING
            job.log = str(submitted.paths.stdout)
        book.update(*unit)
        console.print(f"submitted {named(unit)}: Slurm job {unit[0].job_id} (log {unit[0].log})", highlight=False)


def _import_submitit():
    try:
        import submitit
    except ImportError as exc:
        raise BenchError("--executor slurm needs submitit; install it with `pip install submitit`.") from exc
    return submitit


def check_executor(executor: str, n_parallel: int) -> None:
    """The executor's options, checked before anything is planned, recorded or submitted."""
    if executor not in EXECUTORS:
        raise BenchError(f"Unknown executor '{executor}'; choose local or slurm.")
    if n_parallel < 1:
        raise BenchError(f"--jobs must be at least 1, not {n_parallel}.")
    if executor == "slurm":
        _import_submitit()


def submit(request, planned, split, store, executor: str, n_parallel: int, cluster: Cluster, console) -> list[Job]:
    """The runs of the request not stored yet and not already pending or running, one job per
    configuration and seed, or per group of configurations sharing a fit (bench.job_groups)."""
    check_executor(executor, n_parallel)
    book = JobBook(split.name, store.root)
    book.folder.mkdir(parents=True, exist_ok=True)
    evaluation, force = request.evaluation, request.force
    wanted, skipped = [], 0
    for p in planned:
        for seed in request.seeds:
            key = evaluation.key(p, split.hash, seed)
            stored, _ = store.find(split.name, p.name, key)
            if stored is not None and evaluation.valid_done(stored) and not force:
                skipped += 1
            else:
                wanted.append((p, seed, key))
    known = book.read()
    previous = [known[key] for _, _, key in wanted if key in known]
    slurm = ask_slurm([job for job in previous if _asks_slurm(job)])
    todo, here = [], dict(host=socket.gethostname(), submitter=os.getpid())
    ready = []
    for p, seed, key in wanted:
        earlier = known.get(key)
        if earlier is not None and refresh(earlier, False, slurm).state in IN_FLIGHT:
            console.print(f"[dim]{escape(p.label)} seed {seed}: {_not_again(earlier)}[/]", highlight=False)
        else:
            ready.append((p, seed, key))
    for group, job_request in job_groups(request, ready, split.hash):
        log = str(book.folder / f"{group[0][2]}.log")
        command = job_command(job_request, cluster.gpus_per_job if executor == "slurm" else 0)
        todo += [
            Job(key=key, label=p.label, seed=seed, command=command, executor=executor, log=log, **here) for p, seed, key in group
        ]
    n_jobs = len(job_units(todo))
    shared = f" ({len(todo)} runs: configurations that share a fit run in one job)" if n_jobs < len(todo) else ""
    console.print(f"{n_jobs} job(s) to run{shared}, {skipped} stored already.")
    if todo:
        book.update(*todo)
        if executor == "local":
            # GPUs are split when a job may take any (not on CPU, nor when one is named: cuda:N)
            run_local(todo, n_parallel, book, console, gpus=visible_gpus() if request.device in ("auto", "cuda") else [])
            for job in todo:  # a job that failed after storing some of its runs: those are done
                if job.state == FAILED and store.find(split.name, p_name(job), job.key)[0] is not None:
                    job.state = DONE
        else:
            submit_slurm(todo, cluster, book, console)
    failed = [job for job in todo if job.state == FAILED]
    if failed:
        shown = "; ".join(f"{job.label} seed {job.seed} (log {job.log})" for job in failed)
        raise BenchError(f"{len(failed)} job(s) failed: {shown}; fix the cause and run the same command again to retry them.")
    return todo


def p_name(job: Job) -> str:
    """The method of a job's run (its label's name)."""
    return job.label.split("[")[0]


def _not_again(job: Job) -> str:
    """Why a recorded job is not submitted again."""
    if job.state == UNKNOWN:
        return f"job {job.job_id or '(not started)'} cannot be asked about ({job.detail or 'submitted on ' + job.host}), not submitted again"
    return f"already submitted (job {job.job_id or 'waiting in process ' + str(job.submitter)}), not again"


def status(dataset: str, store) -> list[Job]:
    """Every recorded job of a dataset with its state now (the book itself is left as it is)."""
    jobs = list(JobBook(dataset, store.root).read().values())
    stored = {job.key: store.find(dataset, p_name(job), job.key)[0] is not None for job in jobs}
    slurm = ask_slurm([job for job in jobs if not stored[job.key] and _asks_slurm(job)])
    return sorted((refresh(job, stored[job.key], slurm) for job in jobs), key=lambda j: (j.label, j.seed))
