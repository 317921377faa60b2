"""What a paper's table adds to a leaderboard, as plain records on it:

    published_rows  each published value of an experiment file ([[references]], bench.published)
                    beside the row it names: our mean with its 95 % t interval over the test
                    samples, the difference, and whether the published value lies inside
    power_rows      each tested pair's minimum detectable effect at the table's corrected level
                    and 80 % power, and the test samples a target effect needs (bench.power)

Both use the per-sample values the table's tests use: averaged over a row's seeds, on the samples
its seeds share (a pair: on the samples both rows share).
"""

from __future__ import annotations

import math

from bench import labels
from bench.leaderboard.model import Row
from bench.leaderboard.rows import RowData, family_pairs, paired


def reference_rows(rows: list[Row], name: str) -> list[Row]:
    """The rows a reference's `row` names: by table or full label as --baseline does, else by method."""
    named = [r for r in rows if labels.names(r, name)]
    return named or [r for r in rows if r.method == name]


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # JSON holds no nan or inf


def published_rows(data: list[RowData], rows: list[Row], references) -> tuple[list[dict], list[str]]:
    """(one record per reference matched to a single row, in row order; a note per row name that
    matches no row or several)."""
    from bench.published import reproduce

    found, notes = [], []
    for name in dict.fromkeys(r.row for r in references):
        matched = reference_rows(rows, name)
        if len(matched) != 1:
            said = f"name {len(matched)} rows ({'; '.join(r.label for r in matched)}); name one by its full label in the experiment file" if matched else "name no row of this table"  # fmt: skip
            notes.append(f"The published values for '{name}' {said}, so they are not shown.")
            continue
        row = matched[0]
        values = data[rows.index(row)].values
        for ref in (r for r in references if r.row == name):
            ours = reproduce(values[ref.metric], ref)
            found.append(dict(letter=row.letter, label=row.label, metric=ref.metric, n=ours.n, mean=ours.mean,
                              low=_finite(ours.low), high=_finite(ours.high), confidence=ours.confidence,
                              published=ours.published, difference=ours.difference, inside=ours.inside,
                              source=ours.source))  # fmt: skip
    order = {r.letter: k for k, r in enumerate(rows)}
    found.sort(key=lambda e: order[e["letter"]])  # stable: a row's metrics stay in the file's order
    return found, notes


def power_rows(data: list[RowData], rows: list[Row], metrics: list[str], o, base: int | None) -> tuple[list[dict], str]:
    """(per metric and pair of the table's family: n, observed difference, MDE, samples needed;
    the note saying how the MDE was found, or why there is none)."""
    from bench import power

    pairs = family_pairs(len(rows), base)
    if not pairs:
        return [], "No pair of rows is tested in this table, so it has no minimum detectable effects."
    found = []
    for metric in metrics:
        differences = {}
        for i, j in pairs:
            a, b = paired(data[i], data[j], metric)
            differences[rows[i].letter, rows[j].letter] = a - b
        try:
            result = power.table_power(differences, o.test, o.correction, o.alpha, target_effect=o.target_effect, seed=o.seed)
        except ValueError as exc:  # fewer than 2 shared samples
            return [], f"No minimum detectable effects: {exc}."
        found += [dict(metric=metric, a=p.row, b=p.other, n=p.n, observed=p.observed, sd=p.sd, level=p.level, mde=_finite(p.mde),
                       method=p.method, needed=p.needed, needed_note=p.needed_note) for p in result]  # fmt: skip
    return found, power.power_note(o.test, o.correction, o.alpha, len(pairs))
