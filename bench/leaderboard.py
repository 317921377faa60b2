"""Leaderboard tables, rebuilt from the run store alone (no model, no GPU).

    stored runs of a dataset
      └─ newest split (or the one asked for)
           └─ one table per evaluation set (limit_test, n_test)
                └─ one row per config_key; its seeds give mean ± std per metric
                     pairs of rows: paired test on per-sample values averaged over seeds,
                     aligned by sample_index; p-values of a metric corrected together
                     └─ a cell carries the letters of the rows it beats; best mean in bold

Outputs: <dataset>.md, .tex, .csv, .json (reloadable with load_leaderboards), each written
atomically, every evaluation set's table one after another in the same file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import string
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tabulate import DataRow, Line, TableFormat, tabulate

from bench import paths, stats
from bench.errors import BenchError
from bench.evaluate import metric_names, per_sample_metrics
from bench.store import RunStore, StoredRun, run_label, wrappable_label

DEFAULT_METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
FORMATS = ("md", "tex", "csv", "json")
CI_CONFIDENCE = 0.95
JSON_SCHEMA = 2  # 2: tables list the overrides left out of their labels ("shared"); version 1 files still load


@dataclass
class Interval:
    """Paired bootstrap interval of mean(row - baseline)."""

    diff: float
    low: float
    high: float


@dataclass
class Cell:
    mean: float  # mean over seeds of the per-seed metric
    std: float | None  # sample standard deviation over seeds (ddof=1); None with one seed
    wins: list[str] = field(default_factory=list)  # letters of the rows this cell beats
    best: bool = False
    vs_baseline: Interval | None = None


@dataclass
class Row:
    letter: str
    label: str
    method: str
    config_key: str
    overrides: dict
    seeds: list[int]
    run_keys: list[str]
    cells: dict[str, Cell]


@dataclass
class Comparison:
    metric: str
    a: str  # letters of the two rows
    b: str
    p: float
    p_adjusted: float
    winner: str | None


@dataclass
class Leaderboard:
    dataset: str
    split_hash: str
    limit_test: int | None
    n_samples: int
    metrics: list[str]
    test: str
    correction: str
    alpha: float
    seed: int
    n_resamples: int
    baseline: str | None
    rows: list[Row]
    comparisons: list[Comparison]
    shared: dict = field(default_factory=dict)  # overrides every row having the setting shares, left out of the labels

    @property
    def title(self) -> str:
        return f"{self.dataset}: {self.n_samples:,} test samples"

    @property
    def caption(self) -> str:
        counts = sorted({len(r.seeds) for r in self.rows})
        if counts == [1]:
            seeds = "one seed per row"
        elif len(counts) == 1:
            seeds = f"mean ± std over {counts[0]} seeds"
        else:
            seeds = f"mean ± std over {counts[0]} to {counts[-1]} seeds"
        return (
            f"Superscript letters mark significant wins ({stats.TESTS[self.test]}, "
            f"{stats.CORRECTIONS[self.correction]}, p < {self.alpha:g}) over the row with that letter; "
            f"{seeds}; {self.n_samples:,} test samples."
            + (f" Every row with these settings: {', '.join(f'{k}={v}' for k, v in sorted(self.shared.items()))}."
               if self.shared else "")
        )

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    @property
    def baseline_label(self) -> str | None:
        """The baseline's label in this table (the user may have named it by its full label)."""
        row = _baseline_row(self, self.baseline) if self.baseline else None
        return row.label if row is not None else self.baseline

    def has_intervals(self) -> bool:
        return any(c.vs_baseline is not None for r in self.rows for c in r.cells.values())

    def to_dict(self) -> dict:
        return dict(asdict(self), title=self.title, caption=self.caption)

    @classmethod
    def from_dict(cls, data: dict) -> Leaderboard:
        data = {k: v for k, v in data.items() if k not in ("title", "caption")}
        data["rows"] = [_row_from_dict(r) for r in data["rows"]]
        data["comparisons"] = [Comparison(**c) for c in data["comparisons"]]
        return cls(**data)


def _row_from_dict(data: dict) -> Row:
    cells = {}
    for metric, c in data["cells"].items():
        interval = Interval(**c["vs_baseline"]) if c.get("vs_baseline") else None
        cells[metric] = Cell(**dict(c, vs_baseline=interval))
    return Row(**dict(data, cells=cells))


# ---------------------------------------------------------------- options and run selection


def _check_options(metrics, test: str, correction: str, alpha: float) -> list[str]:
    valid = metric_names()
    chosen = []
    for name in metrics or DEFAULT_METRICS:
        canonical = name.upper()
        if canonical not in valid:
            raise BenchError(f"Unknown metric '{name}'; choose from {', '.join(valid)}.")
        if canonical not in chosen:
            chosen.append(canonical)
    if test not in stats.TESTS:
        raise BenchError(f"Unknown test '{test}'; choose one of {', '.join(stats.TESTS)}.")
    if correction not in stats.CORRECTIONS:
        raise BenchError(f"Unknown correction '{correction}'; choose one of {', '.join(stats.CORRECTIONS)}.")
    if not 0.0 < alpha < 1.0:
        raise BenchError(f"The p threshold alpha must lie strictly between 0 and 1, not {alpha}.")
    return chosen


def _current_split(runs: list[StoredRun], dataset: str, split_hash: str | None) -> tuple[str, list[StoredRun]]:
    """The asked-for split, or the split of the most recently created run."""
    if split_hash is None:
        split_hash = max(runs, key=lambda r: (str(r.record.get("created_at", "")), r.record["split_hash"])).record["split_hash"]
    chosen = [r for r in runs if r.record["split_hash"] == split_hash]
    if not chosen:
        known = ", ".join(sorted({r.record["split_hash"] for r in runs}))
        raise BenchError(f"No stored runs for dataset '{dataset}' on split '{split_hash}'; stored splits: {known}.")
    return split_hash, chosen


def _evaluation_sets(runs: list[StoredRun]) -> list[tuple[tuple[int | None, int], list[StoredRun]]]:
    """Runs grouped by (limit_test, n_test): the full test set first, then larger sets first."""
    groups: dict[tuple, list[StoredRun]] = defaultdict(list)
    for run in runs:
        if int(run.record["n_test"]) > 0:  # an empty evaluation has nothing to show or compare
            groups[(run.record.get("limit_test"), int(run.record["n_test"]))].append(run)
    return sorted(groups.items(), key=lambda kv: (kv[0][0] is not None, -kv[0][1], kv[0][0] or 0))


def _config_groups(runs: list[StoredRun]) -> list[list[StoredRun]]:
    """Runs of one config_key, one per seed (the newest when a seed was stored twice)."""
    by_config: dict[str, dict[int, StoredRun]] = defaultdict(dict)
    for run in sorted(runs, key=lambda r: str(r.record.get("created_at", ""))):
        config_key = run.record.get("config_key") or run.key
        by_config[config_key][int(run.record["seed"])] = run
    return [[seeds[s] for s in sorted(seeds)] for seeds in by_config.values()]


# ---------------------------------------------------------------- per-row values


@dataclass
class _RowData:
    label: str
    runs: list[StoredRun]
    sample_index: np.ndarray  # sorted, common to all seeds of the row
    per_seed: dict[str, list[float]]  # metric -> mean of each seed over its own samples
    values: dict[str, np.ndarray]  # metric -> per-sample value averaged over seeds


def _read_arrays(run: StoredRun) -> dict[str, np.ndarray]:
    try:
        return run.arrays()
    except (OSError, ValueError, KeyError) as exc:
        raise BenchError(f"Stored run {run.folder} cannot be read ({exc}); delete that folder and run it again.") from exc


def _align(sample_index: np.ndarray, values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """values (ordered like sample_index) at the sorted indices `wanted`, all present."""
    order = np.argsort(sample_index, kind="stable")
    return values[order[np.searchsorted(sample_index[order], wanted)]]


def _load_row(runs: list[StoredRun], metrics: list[str]) -> _RowData:
    loaded = []
    for run in runs:
        arrays = _read_arrays(run)
        loaded.append((np.asarray(arrays["sample_index"]), per_sample_metrics(arrays["rank"])))
    common = loaded[0][0]
    for index, _ in loaded[1:]:
        common = np.intersect1d(common, index)
    common = np.unique(common)
    per_seed = {m: [float(v[m].mean()) for _, v in loaded] for m in metrics}
    values = {m: np.mean([_align(i, v[m], common) for i, v in loaded], axis=0) for m in metrics}
    label = runs[0].record.get("label") or runs[0].record["method"]
    return _RowData(label, runs, common, per_seed, values)


def _shared_overrides(rows: list[_RowData]) -> dict:
    """Overrides (field, value) that every row having that setting has, when two rows or more
    have it: `epochs=1` is shared by three LLM rows even beside pop (no epochs) but not beside a
    sasrec row with epochs=3 (or its default). A row has a setting when its resolved config or
    its overrides name it."""
    def dumped(value) -> str:
        return json.dumps(value, sort_keys=True)

    settings = []
    for r in rows:
        record = r.runs[0].record
        settings.append((record.get("config") or {}) | (record.get("overrides") or {}))
    shared = {}
    for field, value in {(k, dumped(v)) for r in rows for k, v in (r.runs[0].record.get("overrides") or {}).items()}:
        having = [s[field] for s in settings if field in s]
        if len(having) >= 2 and all(dumped(v) == value for v in having):
            shared[field] = json.loads(value)
    return dict(sorted(shared.items()))


def _shorten(rows: list[_RowData], shared: dict) -> None:
    for r in rows:
        record = r.runs[0].record
        rest = {k: v for k, v in (record.get("overrides") or {}).items() if k not in shared}
        r.label = run_label(record["method"], rest)


def _names(row: Row, label: str | None) -> bool:
    """Whether `label` names this row: its table label or its full label (method and every override)."""
    return label is not None and label in (row.label, run_label(row.method, row.overrides))


def _disambiguate(rows: list[_RowData]) -> None:
    counts = defaultdict(int)
    for r in rows:
        counts[r.label] += 1
    for r in rows:
        if counts[r.label] > 1:
            r.label = f"{r.label} ({(r.runs[0].record.get('config_key') or r.runs[0].key)[:8]})"


def _letters(n: int) -> list[str]:
    alphabet = string.ascii_lowercase
    if n <= len(alphabet):
        return list(alphabet[:n])
    return [x + y for x in alphabet for y in alphabet][:n]


def _paired(a: _RowData, b: _RowData, metric: str) -> tuple[np.ndarray, np.ndarray]:
    common = np.intersect1d(a.sample_index, b.sample_index)
    return _align(a.sample_index, a.values[metric], common), _align(b.sample_index, b.values[metric], common)


# ---------------------------------------------------------------- building a table


def _make_rows(data: list[_RowData], metrics: list[str]) -> list[Row]:
    rows = []
    for letter, d in zip(_letters(len(data)), data):
        cells = {}
        for m in metrics:
            seeds = np.asarray(d.per_seed[m])
            std = float(seeds.std(ddof=1)) if len(seeds) > 1 else None
            cells[m] = Cell(mean=float(seeds.mean()), std=std)
        record = d.runs[0].record
        rows.append(
            Row(
                letter=letter,
                label=d.label,
                method=record["method"],
                config_key=record.get("config_key") or d.runs[0].key,
                overrides=dict(record.get("overrides") or {}),
                seeds=[int(r.record["seed"]) for r in d.runs],
                run_keys=[r.key for r in d.runs],
                cells=cells,
            )
        )
    return rows


def _compare(data, rows, metric, test, correction, alpha, seed, n_resamples) -> list[Comparison]:
    """Every pair of rows on one metric, corrected together; the winner has the higher mean."""
    pairs = [(i, j) for i in range(len(rows)) for j in range(i + 1, len(rows))]
    found = []
    for i, j in pairs:
        a, b = _paired(data[i], data[j], metric)
        found.append((a.mean() - b.mean(), stats.paired_pvalue(a, b, test, seed=seed, n_resamples=n_resamples)))
    adjusted = stats.adjust([p for _, p in found], correction)
    comparisons = []
    for (i, j), (diff, p), p_adj in zip(pairs, found, adjusted):
        winner = None
        if p_adj < alpha and diff != 0:
            winner = rows[i].letter if diff > 0 else rows[j].letter
        comparisons.append(Comparison(metric, rows[i].letter, rows[j].letter, float(p), float(p_adj), winner))
    return comparisons


def _mark(rows: list[Row], comparisons: list[Comparison], metrics: list[str]) -> None:
    by_letter = {r.letter: r for r in rows}
    for c in comparisons:
        if c.winner is not None:
            loser = c.b if c.winner == c.a else c.a
            by_letter[c.winner].cells[c.metric].wins.append(loser)
    order = {r.letter: k for k, r in enumerate(rows)}
    for m in metrics:
        top = max(r.cells[m].mean for r in rows)
        for r in rows:
            r.cells[m].wins.sort(key=order.get)
            r.cells[m].best = bool(np.isclose(r.cells[m].mean, top, rtol=0.0, atol=1e-12))


def _add_intervals(data, rows, base_key: str, metrics, seed: int, n_resamples: int) -> None:
    base = next((k for k, r in enumerate(rows) if r.config_key == base_key), None)
    if base is None:
        return
    for k, row in enumerate(rows):
        if k == base:
            continue
        for m in metrics:
            a, b = _paired(data[k], data[base], m)
            diff, low, high = stats.paired_bootstrap_ci(a, b, n_resamples=n_resamples, confidence=CI_CONFIDENCE, seed=seed)
            row.cells[m].vs_baseline = Interval(diff, low, high)


def build_leaderboards(
    dataset: str,
    metrics: list[str] | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    baseline: str | None = None,
    seed: int = 0,
    split_hash: str | None = None,
    store: RunStore | None = None,
    n_resamples: int = 10_000,
) -> list[Leaderboard]:
    """One Leaderboard per evaluation set of the dataset's current split."""
    metrics = _check_options(metrics, test, correction, alpha)
    store = store if store is not None else RunStore()
    runs = store.runs(dataset)
    if not runs:
        raise BenchError(f"No stored runs for dataset '{dataset}'; run `bench run --dataset {dataset} --methods ...` first.")
    split_hash, runs = _current_split(runs, dataset, split_hash)
    boards, tables = [], []
    for (limit_test, n_test), group in _evaluation_sets(runs):
        data = [_load_row(g, metrics) for g in _config_groups(group)]
        shared = _shared_overrides(data)
        if shared:
            _shorten(data, shared)
        _disambiguate(data)
        data.sort(key=lambda d: (d.label, d.runs[0].record.get("config_key") or ""))
        rows = _make_rows(data, metrics)
        comparisons = [c for m in metrics for c in _compare(data, rows, m, test, correction, alpha, seed, n_resamples)]
        _mark(rows, comparisons, metrics)
        boards.append(
            Leaderboard(dataset, split_hash, limit_test, n_test, metrics, test, correction, alpha, seed, n_resamples,
                        baseline, rows, comparisons, shared)  # fmt: skip
        )
        tables.append(data)
    if baseline is not None:
        found = False
        for board, data in zip(boards, tables):
            base = _baseline_row(board, baseline)
            if base is not None:
                _add_intervals(data, board.rows, base.config_key, metrics, seed, n_resamples)
                found = True
        if not found:
            labels = ", ".join(sorted({r.label for b in boards for r in b.rows}))
            raise BenchError(f"Baseline '{baseline}' is not a row of the '{dataset}' leaderboard; choose one of {labels}.")
    return boards


def _baseline_row(board: Leaderboard, baseline: str) -> Row | None:
    """The row of this table that `baseline` names (each table is compared with its own row)."""
    named = [r for r in board.rows if _names(r, baseline)]
    if len(named) > 1:
        shown = "; ".join(r.label for r in named)
        raise BenchError(
            f"Baseline '{baseline}' names {len(named)} rows of the table '{board.title}' ({shown}); "
            "give the label as the table shows it."
        )
    return named[0] if named else None


# ---------------------------------------------------------------- rendering


def _value(cell: Cell) -> str:
    return f"{cell.mean:.4f}" if cell.std is None else f"{cell.mean:.4f} ± {cell.std:.4f}"


def _wins(cell: Cell) -> str:
    return ("," if any(len(w) > 1 for w in cell.wins) else "").join(cell.wins)


def _interval(iv: Interval | None) -> str:
    return "" if iv is None else f"{iv.diff:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _markdown_table(board: Leaderboard) -> str:
    body = []
    for r in board.rows:
        cells = []
        for m in board.metrics:
            c = r.cells[m]
            text = f"**{_value(c)}**" if c.best else _value(c)
            cells.append(text + (f"<sup>{_wins(c)}</sup>" if c.wins else ""))
        body.append([r.letter, _md_escape(r.label), *cells])
    return tabulate(body, headers=["", "Method", *board.metrics], tablefmt="github", disable_numparse=True)


def _markdown_intervals(board: Leaderboard) -> str:
    others = [r for r in board.rows if r.label != board.baseline_label]
    body = [[_md_escape(r.label), *(_interval(r.cells[m].vs_baseline) for m in board.metrics)] for r in others]
    return tabulate(body, headers=["Method", *board.metrics], tablefmt="github", disable_numparse=True)


def to_markdown(boards: list[Leaderboard]) -> str:
    parts = [f"# Leaderboard: {boards[0].dataset}", "", f"Split `{boards[0].split_hash}`.", ""]
    for board in boards:
        parts += [f"## {board.title}", "", _markdown_table(board), "", board.caption, ""]
        if board.has_intervals():
            parts += [
                f"### Difference from {board.baseline_label}",
                "",
                f"Mean of (row - {_md_escape(board.baseline_label)}) with its paired bootstrap {CI_CONFIDENCE:.0%} interval "
                f"({board.n_resamples:,} resamples, seed {board.seed}).",
                "",
                _markdown_intervals(board),
                "",
            ]
    return "\n".join(parts)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}", "±": r"$\pm$",
}  # fmt: skip

_BOOKTABS = TableFormat(
    lineabove=Line(r"\toprule", "", "", ""),
    linebelowheader=Line(r"\midrule", "", "", ""),
    linebetweenrows=None,
    linebelow=Line(r"\bottomrule", "", "", ""),
    headerrow=DataRow("", " & ", r" \\"),
    datarow=DataRow("", " & ", r" \\"),
    padding=0,
    with_header_hide=None,
)  # tabulate's own latex_booktabs escapes every cell, which would break \textbf and $^{}$


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex_table(board: Leaderboard, index: int) -> str:
    body = []
    for r in board.rows:
        cells = []
        for m in board.metrics:
            c = r.cells[m]
            text = latex_escape(_value(c))
            text = rf"\textbf{{{text}}}" if c.best else text
            cells.append(text + (f"$^{{{_wins(c)}}}$" if c.wins else ""))
        body.append([r.letter, latex_escape(r.label), *cells])
    headers = ["", "Method", *(latex_escape(m) for m in board.metrics)]
    tabular = tabulate(body, headers=headers, tablefmt=_BOOKTABS, disable_numparse=True)
    return "\n".join(
        [
            r"\begin{table}[t]",
            r"\centering",
            rf"\caption{{{latex_escape(board.caption)}}}",
            rf"\label{{tab:{re.sub('[^A-Za-z0-9]+', '-', board.dataset)}-{index}}}",
            rf"\begin{{tabular}}{{ll{'r' * len(board.metrics)}}}",
            tabular,
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def to_latex(boards: list[Leaderboard]) -> str:
    return "\n\n".join(_latex_table(b, k + 1) for k, b in enumerate(boards)) + "\n"


def to_csv(boards: list[Leaderboard]) -> str:
    columns = ["table", "split_hash", "limit_test", "n_samples", "letter", "label", "full_label", "method", "config_key",
               "metric", "mean", "std", "n_seeds", "wins", "best"]  # fmt: skip
    with_ci = any(b.has_intervals() for b in boards)
    if with_ci:
        columns += ["baseline", "diff", "ci_low", "ci_high"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for k, b in enumerate(boards, start=1):
        for r in b.rows:
            for m in b.metrics:
                c = r.cells[m]
                line = dict(table=k, split_hash=b.split_hash, limit_test="" if b.limit_test is None else b.limit_test,
                            n_samples=b.n_samples, letter=r.letter, label=r.label,
                            full_label=run_label(r.method, r.overrides), method=r.method,
                            config_key=r.config_key, metric=m, mean=repr(c.mean), std="" if c.std is None else repr(c.std),
                            n_seeds=len(r.seeds), wins=_wins(c), best=int(c.best))  # fmt: skip
                if with_ci:
                    iv = c.vs_baseline
                    line.update(baseline=b.baseline_label if iv else "", diff=repr(iv.diff) if iv else "",
                                ci_low=repr(iv.low) if iv else "", ci_high=repr(iv.high) if iv else "")  # fmt: skip
                writer.writerow(line)
    return out.getvalue()


def to_json(boards: list[Leaderboard]) -> str:
    payload = {"schema": JSON_SCHEMA, "dataset": boards[0].dataset, "tables": [b.to_dict() for b in boards]}
    return json.dumps(payload, indent=2, allow_nan=False) + "\n"


def load_leaderboards(path: Path) -> list[Leaderboard]:
    """The tables of a <dataset>.json written by leaderboard_command."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return [Leaderboard.from_dict(t) for t in payload["tables"]]


_SUPERSCRIPT = dict(zip(string.ascii_lowercase + ",", "ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖᑫʳˢᵗᵘᵛʷˣʸᶻ˒"))


def to_rich(board: Leaderboard, width: int = 80):
    """The table for a terminal `width` columns wide: numbers and their letters are never cut,
    labels wrap after each override in the room left."""
    from rich.table import Table
    from rich.text import Text

    rows = []
    for r in board.rows:
        cells = []
        for m in board.metrics:
            c = r.cells[m]
            sup = "".join(_SUPERSCRIPT[ch] for ch in _wins(c))
            cells.append(Text.assemble((_value(c), "bold" if c.best else ""), (sup, "cyan")))
        rows.append((r.letter, Text(wrappable_label(r.label)), cells))
    table = Table(title=board.title, caption=board.caption)
    table.add_column("")
    widths = [max([len(m)] + [cells[k].cell_len for *_, cells in rows]) for k, m in enumerate(board.metrics)]
    room = width - sum(w + 3 for w in widths) - (len(_letters(len(rows))[-1]) + 3 if rows else 4) - 4
    longest = max((len(label.plain) for _, label, _ in rows), default=6)
    table.add_column("Method", overflow="fold", min_width=max(10, min(longest, room)))
    for m, w in zip(board.metrics, widths):
        table.add_column(m, justify="right", no_wrap=True, min_width=w)
    for letter, label, cells in rows:
        table.add_row(letter, label, *cells)
    return table


def _rich_intervals(board: Leaderboard):
    from rich.table import Table

    table = Table(title=f"Difference from {board.baseline_label} (paired bootstrap {CI_CONFIDENCE:.0%} interval)")
    table.add_column("Method", overflow="fold")
    for m in board.metrics:
        table.add_column(m, justify="right")
    for r in board.rows:
        if r.label != board.baseline_label:
            table.add_row(wrappable_label(r.label), *(_interval(r.cells[m].vs_baseline) for m in board.metrics))
    return table


# ---------------------------------------------------------------- writing


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_RENDERERS = {"md": to_markdown, "tex": to_latex, "csv": to_csv, "json": to_json}


def leaderboard_command(
    dataset: str,
    metrics: list[str] | None = None,
    test: str = "t",
    correction: str = "holm",
    alpha: float = 0.05,
    baseline: str | None = None,
    out_dir: Path | None = None,
    formats: tuple[str, ...] = FORMATS,
    seed: int = 0,
    split_hash: str | None = None,
    store: RunStore | None = None,
    console=None,
) -> list[Path]:
    """Print the dataset's leaderboard tables and write them as <out_dir>/<dataset>.<format>."""
    unknown = [f for f in formats if f not in _RENDERERS]
    if unknown:
        raise BenchError(f"Unknown output format '{unknown[0]}'; choose from {', '.join(FORMATS)}.")
    store = store if store is not None else RunStore()
    boards = build_leaderboards(dataset, metrics, test, correction, alpha, baseline, seed, split_hash, store)
    if console is None:
        from rich.console import Console

        console = Console()
    for board in boards:
        console.print(to_rich(board, console.width))
        if board.has_intervals():
            console.print(_rich_intervals(board))
    out_dir = Path(out_dir) if out_dir is not None else paths.results_dir() / "leaderboard"
    written = []
    for fmt in dict.fromkeys(formats):
        path = out_dir / f"{dataset}.{fmt}"
        _write_atomic(path, _RENDERERS[fmt](boards))
        written.append(path)
    return written  # the caller reports the paths
