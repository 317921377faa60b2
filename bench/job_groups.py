"""Which runs of a command share one job (bench.jobs): the configurations of one method and seed
that share a training key (they differ in decode-time settings only, `Method.decode_settings`) run
in one job, one after the other, so the model is fitted once and no GPU waits for another job's
fit. Every other run is a job of its own.

    --grid d3.assistant_scale=0.2,0.5,1 --seeds 0,1    ->  2 jobs of 3 runs each

A group's job runs `bench run` with the settings the group shares as --set and the ones it varies
as --grid; a group whose configurations that command would not plan exactly (never for a grid as
planned, but checked) runs as one job per configuration instead.
"""

from __future__ import annotations

import dataclasses

from rich.markup import escape

from bench.fits import training_key
from bench.plan import Planned
from bench.request import RunRequest, _texts


def group_runs(wanted: list[tuple[Planned, int, str]], split_hash: str) -> list[list[tuple[Planned, int, str]]]:
    """(configuration, seed, run key) in groups sharing a training key, in the order first seen."""
    groups: dict[str, list] = {}
    for p, seed, key in wanted:
        groups.setdefault(training_key(p, split_hash, seed), []).append((p, seed, key))
    return list(groups.values())


def group_request(request: RunRequest, group: list[tuple[Planned, int, str]], split_hash: str) -> RunRequest | None:
    """The request that runs exactly the group's runs (one method, one seed), or None."""
    (p, seed, _), keys = group[0], {key for _, _, key in group}
    if len(group) == 1:
        return request.for_job(p, seed)
    texts = [_texts(q.resolved) for q, _, _ in group]
    varying = sorted(f for f in texts[0] if len({t.get(f) for t in texts}) > 1)
    shared = {f: v for f, v in _texts(p.overrides).items() if f not in varying}
    axes = {f: list(dict.fromkeys(t[f] for t in texts)) for f in varying}
    job = dataclasses.replace(request, methods=(p.name,), seeds=(seed,), overrides={p.name: shared}, grid={p.name: axes})
    planned = {job.evaluation.key(q, split_hash, seed) for q in job.plan()}
    return job if planned == keys else None


def job_groups(request: RunRequest, ready: list[tuple[Planned, int, str]], split_hash: str) -> list[tuple[list, RunRequest]]:
    """The runs to submit, grouped into jobs, each with the request its job runs: a group the job's
    command would not plan exactly is split into one job per run."""
    out = []
    for group in group_runs(ready, split_hash):
        job = group_request(request, group, split_hash)
        if job is not None:
            out.append((group, job))
        else:
            out += [([run], group_request(request, [run], split_hash)) for run in group]
    return out


def job_units(jobs: list) -> list[list]:
    """The jobs to start: the records of runs that share one log (bench.jobs.submit gives the runs
    of a group one command and one log) run as one job."""
    units: dict[str, list] = {}
    for job in jobs:
        units.setdefault(job.log, []).append(job)
    return list(units.values())


def named(unit: list) -> str:
    """A job in messages: its first run's label, how many more it holds, the seed."""
    more = f" and {len(unit) - 1} more sharing its fit" if len(unit) > 1 else ""
    return f"{escape(unit[0].label)}{more} seed {unit[0].seed}"
