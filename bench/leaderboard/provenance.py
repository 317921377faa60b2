"""Where each row's runs came from, as one table per row (a column per seed): the run key, when
and from which commit it was made, the machine, the split, the method version, the libraries and
the folder it is stored in."""

from __future__ import annotations

from bench.leaderboard.model import Leaderboard, Row
from bench.leaderboard.sections import Entry, Line, Section
from bench.store import StoredRun


def _seconds(x) -> str:
    return "-" if x is None else f"{x:,.1f} s"


def _commit(run: StoredRun) -> str:
    p = run.record.provenance
    if not p.git_commit:
        return "not recorded"
    return p.git_commit + (" (uncommitted changes)" if p.git_dirty else "")


def _packages(run: StoredRun) -> str:
    found = {k: v for k, v in run.record.provenance.packages.items() if v}
    return ", ".join(f"{k} {v}" for k, v in sorted(found.items())) or "not recorded"


# (field, how it reads for one stored run)
FIELDS = (
    ("run key", lambda run: run.record.key),
    ("created", lambda run: run.record.created_at or "-"),
    ("commit", _commit),
    ("device", lambda run: run.record.provenance.device or "not recorded"),
    ("split hash", lambda run: run.record.split_hash),
    ("method version", lambda run: run.record.method_version or "-"),
    ("python", lambda run: run.record.provenance.python or "-"),
    ("platform", lambda run: run.record.provenance.platform or "-"),
    ("processes", lambda run: str(run.record.provenance.processes)),
    ("fit / total", lambda run: f"{_seconds(run.record.timing.fit_s)} / {_seconds(run.record.timing.total_s)}"),
    ("packages", _packages),
    ("stored in", lambda run: str(run.folder)),
)


def summary(row: Row, runs: list[StoredRun]) -> str:
    """One line about a row's runs: how many, their commits and devices."""
    commits = sorted({(r.record.provenance.git_commit or "")[:8] for r in runs} - {""})
    devices = sorted({r.record.provenance.device for r in runs if r.record.provenance.device})
    parts = [f"{len(runs)} run{'s' * (len(runs) != 1)}", f"commit {', '.join(commits)}" if commits else "", *devices]
    return " · ".join(filter(None, parts))


def provenance_section(row: Row, runs: list[StoredRun]) -> Section:
    lines = tuple(Line((name,), tuple(Entry(shown(run)) for run in runs)) for name, shown in FIELDS)
    headers = tuple(f"seed {run.record.seed}" for run in runs)
    return Section("provenance", f"{row.letter} · {row.label}", ("",), headers, lines, (summary(row, runs),),
                   left=headers)  # fmt: skip


def provenance_sections(board: Leaderboard, runs_by_key: dict[str, StoredRun]) -> list[Section]:
    """One table per row of the board, from its stored runs."""
    return [provenance_section(r, [runs_by_key[k] for k in r.run_keys if k in runs_by_key]) for r in board.rows]
