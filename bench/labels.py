"""How rows are named. A row's full label is the method and its --set overrides
(`cft[alpha=0.2,epochs=1]`); an override that every row having that setting shares is said once
under the table and left out of the labels; equal labels get the first characters of their config
key; rows get letters a, b, ... (aa, ab, ... past 26) in label order."""

from __future__ import annotations

import json
import string
from collections import defaultdict

from bench.errors import BenchError


def run_label(method: str, overrides: dict) -> str:
    """How a run is named in tables: the method, then its --set overrides, `sft[epochs=1,lr=0.001]`."""
    if not overrides:
        return method
    return f"{method}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"


def letters(n: int) -> list[str]:
    alphabet = string.ascii_lowercase
    if n <= len(alphabet):
        return list(alphabet[:n])
    return [x + y for x in alphabet for y in alphabet][:n]


def _dumped(value) -> str:
    return json.dumps(value, sort_keys=True)


def shared_overrides(records: list) -> dict:
    """Overrides (field, value) that every row having that setting has, when two rows or more
    have it: `epochs=1` is shared by three LLM rows even beside pop (no epochs) but not beside a
    sasrec row with epochs=3 (or its default). A row has a setting when its resolved config or
    its overrides name it."""
    settings = [r.config | r.overrides for r in records]
    shared = {}
    for field, value in {(k, _dumped(v)) for r in records for k, v in r.overrides.items()}:
        having = [s[field] for s in settings if field in s]
        if len(having) >= 2 and all(_dumped(v) == value for v in having):
            shared[field] = json.loads(value)
    return dict(sorted(shared.items()))


def table_labels(records: list, shared: dict) -> list[str]:
    """Each row's label without the shared overrides; equal labels get their config key's start."""
    labels = []
    for r in records:
        rest = {k: v for k, v in r.overrides.items() if k not in shared}
        labels.append(run_label(r.method, rest) if shared else r.label)
    counts = defaultdict(int)
    for label in labels:
        counts[label] += 1
    return [f"{label} ({(r.config_key or r.key)[:8]})" if counts[label] > 1 else label for label, r in zip(labels, records)]


def names(row, label: str | None) -> bool:
    """Whether `label` names this row: its table label or its full label (method and every override)."""
    return label is not None and label in (row.label, run_label(row.method, row.overrides))


def baseline_row(board, baseline: str):
    """The row of this table that `baseline` names (each table is compared with its own row)."""
    named = [r for r in board.rows if names(r, baseline)]
    if len(named) > 1:
        shown = "; ".join(r.label for r in named)
        raise BenchError(
            f"Baseline '{baseline}' names {len(named)} rows of the table '{board.title}' ({shown}); "
            "give the label as the table shows it."
        )
    return named[0] if named else None


def short_name(label: str, method: str, limit: int) -> str:
    """The name a narrow column shows: the label when it fits in `limit`, else the method with a
    mark that the legend under the table spells the rest out."""
    if len(label) <= limit:
        return label
    return f"{method}[…]" if label.startswith(method + "[") else f"{method}…"
