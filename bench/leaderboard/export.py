"""Machine-readable outputs: CSV (one line per row and metric) and JSON (every table whole,
reloadable with load_leaderboards)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from bench.labels import run_label
from bench.leaderboard import cells
from bench.leaderboard.model import Leaderboard

# 2: tables list the overrides left out of their labels ("shared"); 3: tables name their experiment.
# Older files still load (tables without published values or power load with none).
JSON_SCHEMA = 3


def to_csv(boards: list[Leaderboard]) -> str:
    columns = ["table", "experiment", "split_hash", "limit_test", "n_samples", "letter", "label", "full_label", "method",
               "config_key", "metric", "mean", "std", "n_seeds", "wins", "best"]  # fmt: skip
    with_ci = any(b.has_intervals() for b in boards)
    if with_ci:
        columns += ["baseline", "diff", "ci_low", "ci_high"]
    with_cost = any(b.show_cost for b in boards)
    if with_cost:
        columns += [key for key, _ in cells.COST]
    with_published = any(b.published for b in boards)
    if with_published:
        columns += ["published", "reproduced_low", "reproduced_high", "published_inside", "published_source"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for k, b in enumerate(boards, start=1):
        published = {(e["letter"], e["metric"]): e for e in b.published}
        for r in b.rows:
            for m in b.metrics:
                c = r.cells[m]
                line = dict(table=k, experiment=b.experiment or "", split_hash=b.split_hash,
                            limit_test="" if b.limit_test is None else b.limit_test,
                            n_samples=b.n_samples, letter=r.letter, label=r.label,
                            full_label=run_label(r.method, r.overrides), method=r.method,
                            config_key=r.config_key, metric=m, mean=repr(c.mean), std="" if c.std is None else repr(c.std),
                            n_seeds=len(r.seeds), wins=cells.wins(c), best=int(c.best))  # fmt: skip
                if with_ci:
                    iv = c.vs_baseline
                    line.update(baseline=b.baseline_label if iv else "", diff=repr(iv.diff) if iv else "",
                                ci_low=repr(iv.low) if iv else "", ci_high=repr(iv.high) if iv else "")  # fmt: skip
                if with_cost:
                    line.update({key: "" if r.cost.get(key) is None else r.cost[key] for key, _ in cells.COST})
                if with_published:
                    line.update(_published_columns(published.get((r.letter, m))))
                writer.writerow(line)
    return out.getvalue()


def _published_columns(e: dict | None) -> dict:
    if e is None:
        return dict.fromkeys(("published", "reproduced_low", "reproduced_high", "published_inside", "published_source"), "")
    low, high = ("", "") if e["low"] is None else (repr(e["low"]), repr(e["high"]))
    return dict(published=repr(e["published"]), reproduced_low=low, reproduced_high=high,
                published_inside=int(e["inside"]) if low else "", published_source=e["source"])  # fmt: skip


def to_json(boards: list[Leaderboard], heading: str = "") -> str:
    payload = {"schema": JSON_SCHEMA, "dataset": boards[0].dataset, "tables": [b.to_dict() for b in boards]}
    if heading:
        payload["description"] = heading
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


def load_leaderboards(path: Path) -> list[Leaderboard]:
    """The tables of a <dataset>.json written by leaderboard_command."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Leaderboard.from_dict(t) for t in payload["tables"]]
