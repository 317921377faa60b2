"""A real single-node Slurm cluster for the tests of `bench run --executor slurm` (tests/test_slurm.py).

`start_cluster()` runs tests/cluster/slurm_up.sh (munged, slurmctld and slurmd in a fresh folder,
on free ports; with accounting also MariaDB and slurmdbd, so that sacct answers), `stop_cluster()`
runs tests/cluster/slurm_down.sh, which cancels the cluster's jobs and stops exactly the daemons
the start began. A machine that cannot run one (no root, no apt-get, no reachable Debian mirror)
skips the tests that need it, with the reason.

The node has 2 CPUs and 2 fake GPUs: a job asks for at most 2 of each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).parent / "cluster"
NOT_KNOWN = ""  # what `state` says of a job id the controller has no record of


@dataclass
class SlurmCluster:
    folder: Path
    accounting: bool

    @property
    def conf(self) -> str:
        return str(self.folder / "etc" / "slurm.conf")

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm command (sbatch, squeue, scancel, sacct, ...) against this cluster."""
        env = dict(os.environ, SLURM_CONF=self.conf)
        done = subprocess.run(list(command), env=env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def sbatch(self, *options: str) -> str:
        """Submit a batch job outside bench (e.g. one that holds the node); its job id."""
        return self.run("sbatch", "--parsable", "--output=/dev/null", *options).stdout.strip().split(";")[0]

    def state(self, job_id: str) -> str:
        """The controller's state of a job (PENDING, RUNNING, CANCELLED, ...), NOT_KNOWN without a record."""
        done = self.run("squeue", "--noheader", "--states=all", f"--jobs={job_id}", "--format=%T", check=False)
        return done.stdout.strip() if done.returncode == 0 else NOT_KNOWN

    def wait_for_state(self, job_id: str, *states: str, timeout: float = 120) -> str:
        end = time.monotonic() + timeout
        while (now := self.state(job_id)) not in states:
            if time.monotonic() > end:
                raise AssertionError(f"Slurm job {job_id} is {now or 'not known'} after {timeout} s, not {' or '.join(states)}")
            time.sleep(0.2)
        return now

    def cancel_all(self) -> None:
        """Cancel every job of the cluster and wait until none is left queued or running."""
        self.run("scancel", "--full", f"--user={os.getuid()}")
        end = time.monotonic() + 60
        while self.run("squeue", "--noheader", "--format=%i").stdout.strip() and time.monotonic() < end:
            time.sleep(0.2)

    def processes(self, job_id: str) -> list[tuple[int, str]]:
        """(pid, command line) of the job's processes on the node."""
        done = self.run("scontrol", "listpids", job_id, check=False)
        found = []
        for line in done.stdout.splitlines()[1:]:
            pid = line.split()[0]
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue  # ended meanwhile
            found.append((int(pid), cmdline))
        return found


def start_cluster(accounting: bool = False) -> SlurmCluster:
    """Start a cluster, or skip the test with the reason this machine cannot run one."""
    # --owner: a test run killed midway (no teardown) still leaves no daemon behind
    command = ["bash", str(SCRIPTS / "slurm_up.sh"), "--python", sys.executable, "--owner", str(os.getpid())]
    command += ["--accounting"] if accounting else []
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if done.returncode == 77:
        pytest.skip(done.stderr.strip().splitlines()[-1])
    if done.returncode != 0:
        raise RuntimeError(f"slurm_up.sh failed ({done.returncode}):\n{done.stderr}")
    return SlurmCluster(Path(done.stdout.strip().splitlines()[-1]), accounting)


def stop_cluster(cluster: SlurmCluster) -> None:
    subprocess.run(["bash", str(SCRIPTS / "slurm_down.sh"), str(cluster.folder), "--remove"], timeout=300, check=True)


@pytest.fixture(scope="module")
def slurm() -> SlurmCluster:
    """A cluster without accounting (sacct fails: job states come from the controller), shared by a module."""
    cluster = start_cluster(accounting=False)
    yield cluster
    stop_cluster(cluster)


@pytest.fixture(scope="module")
def slurm_accounting() -> SlurmCluster:
    """A cluster with accounting (slurmdbd and MariaDB: sacct answers), shared by a module."""
    cluster = start_cluster(accounting=True)
    yield cluster
    stop_cluster(cluster)
