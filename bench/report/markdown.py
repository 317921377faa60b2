"""The report as Markdown for a repository: the same tables and captions as the page, the pictures
linked as the PNG files beside it, provenance in <details> blocks (GitHub renders them folded)."""

from __future__ import annotations

import html

from tabulate import tabulate

from bench import beyond, stats
from bench.leaderboard import cells
from bench.leaderboard.model import CI_CONFIDENCE
from bench.report.html import _parts

MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|*_`[]<>"})


def md(text) -> str:
    """Text that Markdown shows as written (no emphasis, links, HTML or table breaks)."""
    return str(text).translate(MD_SPECIAL)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _num(value, digits: int = 4) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"


def board_table(board) -> str:
    rows = []
    for r in board.rows:
        shown = []
        for m in board.metrics:
            c = r.cells[m]
            text = f"**{cells.value(c)}**" if c.best else cells.value(c)
            shown.append(text + (f"<sup>{md(cells.wins(c))}</sup>" if c.wins else ""))
        rows.append([r.letter, md(r.label), *shown])
    return _table(["", "Method", *board.metrics], rows)


def _anchor(anchor: str) -> str:
    return f'<a id="{html.escape(anchor)}"></a>'


def section_md(report, section) -> list[str]:
    board, a = section.board, section.anchor
    out = [_anchor(a), f"## {section.number}. {md(board.title)}", ""]
    out += [
        f"{len(board.rows)} rows · {md(board.samples_text)} · {stats.TESTS[board.test]}, {stats.CORRECTIONS[board.correction]}, "
        f"p < {board.alpha:g}",
        "",
    ]
    out += [_anchor(f"{a}-table"), board_table(board), "", md(board.caption), ""]
    out += [f"> {md(note)}\n" for note in section.notes]
    if board.has_intervals():
        base = board.baseline_label
        rows = [[r.letter, md(r.label), *(cells.interval(r.cells[m].vs_baseline) for m in board.metrics)]
                for r in board.rows if r.label != base]  # fmt: skip
        out += [_anchor(f"{a}-baseline"), f"### Intervals against {md(base)}", "",
                f"Mean of (row − {md(base)}) with its paired bootstrap {CI_CONFIDENCE:.0%} interval "
                f"({board.n_resamples:,} resamples, seed {board.seed}).", "",
                _table(["", "Method", *board.metrics], rows), ""]  # fmt: skip
    for i, p in enumerate(section.pictures):
        out += [_anchor(f"{a}-{p.kind}-{i}"), f"### {md(p.title)}", "", f"![{md(p.title)}]({p.png})", "",
                f"{md(p.caption)} ([SVG]({p.svg}))", ""]  # fmt: skip
    if board.history:
        headers, entries = cells.history_table(board)
        out += [_anchor(f"{a}-history-table"), f"### History influence on {board.history_metric}", "",
                md(cells.history_caption(board)), "",
                _table(["", "Method", *headers], [[x, md(label), *(v.replace("*", "\\*") for v in shown)] for x, label, shown in entries]), ""]  # fmt: skip
    out += [_anchor(f"{a}-cost-table"), "### Cost", "",
            "Mean over seeds; GPU-hours summed over seeds; peak memory is the GPU's, or the process's on a CPU.", "",
            _table(["", "Method", *(h for _, h in cells.COST)], [[r.letter, md(r.label), *cells.cost(r)] for r in board.rows]),
            ""]  # fmt: skip
    k = report.beyond_k
    out += [_anchor(f"{a}-beyond"), f"### Beyond accuracy @{k}", ""]
    if section.beyond is None:
        out += [f"> {md(report.beyond_note)}", ""]
    else:
        names = beyond.metric_names(k)
        rows = []
        for row in section.beyond:
            shown = []
            for n in names:
                digits = 1 if n.startswith("avg_pop") else 2 if n.startswith("novelty") else 4
                iv = row.intervals.get(n)
                shown.append(_num(row.values.get(n), digits) + (f" [{_num(iv[0], digits)}, {_num(iv[1], digits)}]" if iv else ""))
            rows.append([row.letter, md(row.label), *shown])
        out += [_table(["", "Method", *names], rows), "",
                f"From each run's stored top-50 lists (first {k}) and the training split's targets. avg_pop, tail and novelty: "
                "mean over samples, then seeds; coverage, gini and pop_ratio: mean over seeds with a percentile bootstrap 95% "
                "interval over test samples (coverage's lies at or below its value: a resample repeats samples, so it shows fewer "
                "distinct items). Long tail: the least popular items holding 20% of the training interactions.", ""]  # fmt: skip
        out += [f"- `{name.replace('@K', f'@{k}')}`: {md(text)}" for name, text in beyond.METRICS] + [""]
    out += [_anchor(f"{a}-provenance"), "### Provenance", ""]
    for r in board.rows:
        runs = section.provenance.get(r.letter, [])
        out += [f"<details><summary>{html.escape(r.letter)} · {html.escape(r.label)} ({len(runs)} run{'s' * (len(runs) != 1)})</summary>", ""]  # fmt: skip
        fields = [
            ("run key", lambda p: p["key"]),
            ("created", lambda p: p.get("created_at")),
            ("commit", lambda p: (p.get("commit") or "not recorded") + (" (uncommitted changes)" if p.get("dirty") else "")),
            ("device", lambda p: p.get("device") or "not recorded"),
            ("split hash", lambda p: p.get("split_hash")),
            ("method version", lambda p: p.get("method_version")),
            ("python", lambda p: p.get("python")),
            ("platform", lambda p: p.get("platform")),
            ("packages", lambda p: ", ".join(f"{k} {v}" for k, v in sorted(p["packages"].items())) or "not recorded"),
            ("stored in", lambda p: p["folder"]),
        ]
        body = [[name, *(md(shown(p) if shown(p) is not None else "–") for p in runs)] for name, shown in fields]
        out += [_table(["", *(f"seed {p['seed']}" for p in runs)], body), ""]
        out += ["</details>", ""]
    return out


def to_markdown(report) -> str:
    o = report.options
    title = report.dataset + (f" · {report.experiment}" if report.experiment else "")
    out = [f"# bench report: {md(title)}", ""]
    facts = [("Dataset", md(report.dataset)), ("Experiment", md(report.experiment or "all")), ("Split hash", f"`{report.split_hash}`"),
             ("Generated", report.generated_at.replace("T", " ").replace("+00:00", " UTC")), ("Tables", len(report.sections)), ("Runs", report.n_runs),
             ("Test", f"{stats.TESTS[o['test']]}, {stats.CORRECTIONS[o['correction']]}, p < {o['alpha']:g}")]  # fmt: skip
    if o.get("baseline"):
        facts.append(("Baseline", md(o["baseline"])))
    if o.get("selection"):
        facts.append(("Selection", md(o["selection"])))
    out += [f"- **{k}**: {v}" for k, v in facts] + ["", "## Contents", ""]
    for s in report.sections:
        out.append(f"{s.number}. [{md(s.board.title)}](#{s.anchor})")
        out += [f"   - [{md(text)}](#{anchor})" for anchor, text in _parts(s)]
    out += ["", *(f"> Left out: {md(d.sentence())}\n" for d in report.damaged)]
    for s in report.sections:
        out += section_md(report, s)
    return "\n".join(out).rstrip() + "\n"
