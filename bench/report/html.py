"""The report as one self-contained HTML page: inline stylesheet, pictures embedded as SVG data
(the PNG and SVG files beside the page are linked for download), every text escaped."""

from __future__ import annotations

import base64
import html
import math

from bench import beyond, stats
from bench.leaderboard import cells
from bench.leaderboard.model import CI_CONFIDENCE, Leaderboard

STYLE = """
:root {
  --ink: #1d2530; --muted: #5b6675; --line: #dde2e8; --soft: #f5f7fa; --accent: #0072B2; --accent-2: #D55E00;
  --good: #009E73;
}
* { box-sizing: border-box; }
html { font-size: 15px; }
body { margin: 0; color: var(--ink); background: #fbfcfd;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; line-height: 1.5; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 0.88em; }
a { color: var(--accent); }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 28px; }
header.top { background: linear-gradient(120deg, #0b3954 0%, #0072B2 100%); color: white; padding: 30px 0 26px; }
header.top .kicker { margin: 0; letter-spacing: 0.14em; text-transform: uppercase; font-size: 0.78rem; opacity: 0.8; }
header.top h1 { margin: 4px 0 16px; font-size: 2.1rem; font-weight: 700; }
header.top h1 .exp { font-weight: 400; opacity: 0.85; }
.facts { display: flex; flex-wrap: wrap; gap: 10px 28px; margin: 0; }
.facts div { min-width: 120px; }
.facts dt { font-size: 0.72rem; text-transform: uppercase; letter-spacing: 0.08em; opacity: 0.75; }
.facts dd { margin: 0; font-weight: 600; }
.facts code { background: rgba(255,255,255,0.15); padding: 1px 6px; border-radius: 4px; font-size: 0.9em; }
main.wrap { padding-top: 26px; padding-bottom: 40px; }
nav.toc { background: white; border: 1px solid var(--line); border-radius: 10px; padding: 14px 22px; margin-bottom: 26px; }
nav.toc h2 { font-size: 0.8rem; text-transform: uppercase; letter-spacing: 0.1em; color: var(--muted); margin: 0 0 6px; }
nav.toc ol { margin: 0; padding-left: 20px; }
nav.toc ol ol { list-style: none; padding-left: 0; display: flex; flex-wrap: wrap; gap: 0 14px; font-size: 0.9rem; }
nav.toc li { margin: 2px 0; }
nav.toc a { text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
section.board, section.about { background: white; border: 1px solid var(--line); border-radius: 12px; padding: 22px 26px 10px;
  margin-bottom: 28px; box-shadow: 0 1px 3px rgba(20, 30, 45, 0.05); }
h2 { font-size: 1.35rem; margin: 0 0 4px; }
h2 .num { color: var(--accent); margin-right: 6px; }
h3 { font-size: 1.05rem; margin: 26px 0 8px; padding-top: 10px; border-top: 1px solid var(--line); }
p.sub { color: var(--muted); margin: 0 0 16px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 8px; font-size: 0.92rem; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: middle; }
thead th { background: var(--soft); font-weight: 600; border-bottom: 2px solid #c7ced7; white-space: nowrap; }
tbody tr:hover { background: #f0f5fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.letter { color: var(--accent); font-weight: 700; width: 1.5em; }
td.label { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.86em; white-space: nowrap; }
td.label.long { white-space: normal; word-break: break-word; min-width: 18em; }
th.group { text-align: center; border-bottom: 1px solid var(--line); background: white; }
td.bar { background-image: linear-gradient(to right, rgba(0, 114, 178, 0.45) var(--w), transparent var(--w));
  background-size: 100% 3px; background-position: 0 100%; background-repeat: no-repeat; }
td.best { font-weight: 700; }
.sd { color: var(--muted); font-weight: 400; font-size: 0.88em; }
sup.wins { color: var(--accent-2); font-weight: 700; margin-left: 2px; font-size: 0.75em; }
.ci { display: block; color: var(--muted); font-size: 0.8em; }
.pos { color: var(--good); } .neg { color: var(--accent-2); }
p.caption { color: var(--muted); font-size: 0.88rem; margin: 4px 0 10px; max-width: 980px; }
.note { background: #fff8e6; border-left: 4px solid #E69F00; padding: 8px 12px; border-radius: 4px; font-size: 0.9rem; margin: 8px 0; }
.figures { display: grid; grid-template-columns: 1fr; gap: 18px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px 10px; background: white; }
figure img { width: 100%; height: auto; display: block; }
figure.narrow img { max-width: 760px; margin: 0 auto; }
figcaption { font-size: 0.86rem; color: var(--muted); margin-top: 6px; }
figcaption strong { color: var(--ink); }
.files { white-space: nowrap; }
dl.legend { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 0.86rem; color: var(--muted); margin: 6px 0 12px; }
dl.legend dt { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; color: var(--ink); }
dl.legend dd { margin: 0; }
details { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; background: var(--soft); }
details[open] { background: white; }
summary { cursor: pointer; padding: 8px 12px; font-size: 0.92rem; }
summary .letter { color: var(--accent); font-weight: 700; margin-right: 6px; }
summary .meta { color: var(--muted); font-size: 0.86em; margin-left: 8px; }
details .inner { padding: 0 12px 10px; }
table.kv td:first-child { color: var(--muted); white-space: nowrap; width: 1%; }
.pkgs { display: flex; flex-wrap: wrap; gap: 4px 6px; }
.pkg { background: var(--soft); border: 1px solid var(--line); border-radius: 4px; padding: 0 6px; font-size: 0.82em; }
.dirty { color: var(--accent-2); font-weight: 600; }
footer { color: var(--muted); font-size: 0.82rem; text-align: center; padding: 10px 0 30px; }
@media print {
  body { background: white; } header.top { background: none; color: black; border-bottom: 2px solid black; }
  header.top .facts code { background: none; }
  section.board, section.about, nav.toc { box-shadow: none; border-color: #999; break-inside: avoid-page; }
  figure { break-inside: avoid; } details { border: none; } details .inner { display: block; }
  tbody tr:hover { background: none; }
}
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _bar_width(value: float, top: float) -> str:
    if not top or top <= 0 or value is None or math.isnan(value) or value <= 0:
        return "0%"
    return f"{min(100.0, 100.0 * value / top):.1f}%"


def _label_td(label: str) -> str:
    """A label cell: kept on one line unless it is long."""
    return f'<td class="label{" long" if len(label) > 40 else ""}">{esc(label)}</td>'


def board_table(board: Leaderboard) -> str:
    """The leaderboard: letter, label, one cell per metric (mean ± std, bold best, superscript wins,
    a faint bar of the value against the column's best)."""
    head = "".join(f'<th class="num">{esc(m)}</th>' for m in board.metrics)
    tops = {m: max((r.cells[m].mean for r in board.rows), default=0.0) for m in board.metrics}
    body = []
    for r in board.rows:
        tds = []
        for m in board.metrics:
            c = r.cells[m]
            sd = f' <span class="sd">± {esc(_num(c.std))}</span>' if c.std is not None else ""
            wins = f'<sup class="wins" title="significantly better than row(s) {esc(cells.wins(c))}">{esc(cells.wins(c))}</sup>' if c.wins else ""  # fmt: skip
            value = f"<strong>{esc(_num(c.mean))}</strong>" if c.best else esc(_num(c.mean))
            cls = "num bar best" if c.best else "num bar"
            tds.append(f'<td class="{cls}" style="--w:{_bar_width(c.mean, tops[m])}">{value}{sd}{wins}</td>')
        body.append(f'<tr><td class="letter">{esc(r.letter)}</td>{_label_td(r.label)}{"".join(tds)}</tr>')
    return (
        f'<div class="scroll"><table class="leaderboard"><thead><tr><th></th><th>Method</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def intervals_table(board: Leaderboard) -> str:
    base = board.baseline_label
    rows = []
    for r in board.rows:
        if r.label == base:
            continue
        tds = []
        for m in board.metrics:
            iv = r.cells[m].vs_baseline
            if iv is None:
                tds.append('<td class="num">–</td>')
                continue
            cls = "pos" if iv.low > 0 else "neg" if iv.high < 0 else ""
            tds.append(f'<td class="num"><span class="{cls}">{iv.diff:+.4f}</span><span class="ci">[{iv.low:+.4f}, {iv.high:+.4f}]</span></td>')  # fmt: skip
        rows.append(f'<tr><td class="letter">{esc(r.letter)}</td>{_label_td(r.label)}{"".join(tds)}</tr>')
    head = "".join(f'<th class="num">{esc(m)}</th>' for m in board.metrics)
    return f'<div class="scroll"><table><thead><tr><th></th><th>Method</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


def history_table(board: Leaderboard) -> str:
    """Per row: the full-history value, then per condition its value, the change with its interval
    (* significant) and the share of samples whose target rank moved."""
    conditions = [c for c in ("none", "shuffled", "last") if any(e["condition"] == c for e in board.history)]
    top = "".join(f'<th class="num group" colspan="3">history: {esc(c)}</th>' for c in conditions)
    head = "".join('<th class="num">value</th><th class="num">Δ [95% CI]</th><th class="num">rank moved</th>' for _ in conditions)
    body = []
    for letter in dict.fromkeys(e["letter"] for e in board.history):
        entries = {e["condition"]: e for e in board.history if e["letter"] == letter}
        first = next(iter(entries.values()))
        tds = [f'<td class="num">{_num(first["full"])}</td>']
        for c in conditions:
            e = entries.get(c)
            if e is None:
                tds.append('<td class="num">–</td>' * 3)
                continue
            cls = "" if not e.get("significant") else "pos" if e["diff"] > 0 else "neg"
            star = "*" if e.get("significant") else ""
            tds.append(
                f'<td class="num">{_num(e["mean"])}</td><td class="num"><span class="{cls}">{e["diff"]:+.4f}{star}</span>'
                f'<span class="ci">[{e["low"]:+.4f}, {e["high"]:+.4f}]</span></td><td class="num">{e["changed"]:.0%}</td>'
            )
        body.append(f'<tr><td class="letter">{esc(letter)}</td>{_label_td(first["label"])}{"".join(tds)}</tr>')
    return (
        f'<div class="scroll"><table><thead><tr><th class="group" colspan="3"></th>{top}</tr>'
        f'<tr><th></th><th>Method</th><th class="num">full history</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def cost_table(board: Leaderboard) -> str:
    head = "".join(f'<th class="num">{esc(h)}</th>' for _, h in cells.COST)
    body = "".join(
        f'<tr><td class="letter">{esc(r.letter)}</td>{_label_td(r.label)}'
        + "".join(f'<td class="num">{esc(v)}</td>' for v in cells.cost(r))
        + "</tr>"
        for r in board.rows
    )
    return f'<div class="scroll"><table><thead><tr><th></th><th>Method</th>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def beyond_table(rows, k: int) -> str:
    names = beyond.metric_names(k)
    head = "".join(f'<th class="num">{esc(n)}</th>' for n in names)
    body = []
    for row in rows:
        tds = []
        for n in names:
            value = row.values.get(n)
            digits = 1 if n.startswith("avg_pop") else 4 if not n.startswith("novelty") else 2
            iv = row.intervals.get(n)
            ci = f'<span class="ci">[{_num(iv[0], digits)}, {_num(iv[1], digits)}]</span>' if iv else ""
            tds.append(f'<td class="num">{esc(_num(value, digits))}{ci}</td>')
        body.append(f'<tr><td class="letter">{esc(row.letter)}</td>{_label_td(row.label)}{"".join(tds)}</tr>')
    return f'<div class="scroll"><table><thead><tr><th></th><th>Method</th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def beyond_legend(k: int) -> str:
    items = "".join(f"<dt>{esc(name.replace('@K', f'@{k}'))}</dt><dd>{esc(text)}</dd>" for name, text in beyond.METRICS)
    return f'<dl class="legend">{items}</dl>'


def figure(picture, anchor: str) -> str:
    data = base64.b64encode(picture.svg_data).decode("ascii")
    narrow = ' class="narrow"' if picture.kind in ("forest", "cost", "history") else ""
    return (
        f'<figure id="{esc(anchor)}"{narrow}><img src="data:image/svg+xml;base64,{data}" alt="{esc(picture.title)}">'
        f"<figcaption><strong>{esc(picture.title)}.</strong> {esc(picture.caption)} "
        f'<span class="files">Files: <a href="{esc(picture.png)}">PNG</a> · <a href="{esc(picture.svg)}">SVG</a></span>'
        "</figcaption></figure>"
    )


def _commit(p: dict) -> str:
    if not p.get("commit"):
        return "not recorded"
    dirty = ' <span class="dirty">(uncommitted changes)</span>' if p.get("dirty") else ""
    return f'<code title="{esc(p["commit"])}">{esc(p["commit"][:12])}</code>{dirty}'


def _packages(p: dict) -> str:
    shown = "".join(f'<span class="pkg">{esc(k)} {esc(v)}</span>' for k, v in sorted(p["packages"].items()))
    return f'<div class="pkgs">{shown}</div>' if shown else "not recorded"


def _seconds(value) -> str:
    return "–" if value is None else f"{value:,.1f} s"


def provenance_block(row, runs: list[dict]) -> str:
    commits = sorted({(p.get("commit") or "")[:8] for p in runs} - {""})
    devices = sorted({p.get("device") for p in runs if p.get("device")})
    meta = " · ".join(
        filter(None, [f"{len(runs)} run{'s' * (len(runs) != 1)}", f"commit {', '.join(commits)}" if commits else "", *devices])
    )
    fields = [
        ("run key", lambda p: f"<code>{esc(p['key'])}</code>"),
        ("created", lambda p: esc(p.get("created_at") or "–")),
        ("commit", _commit),
        ("device", lambda p: esc(p.get("device") or "not recorded")),
        ("split hash", lambda p: f"<code>{esc(p.get('split_hash'))}</code>"),
        ("method version", lambda p: esc(p.get("method_version") or "–")),
        ("python", lambda p: esc(p.get("python") or "–")),
        ("platform", lambda p: esc(p.get("platform") or "–")),
        ("processes", lambda p: esc(p.get("processes") or "–")),
        ("fit / total", lambda p: f"{esc(_seconds(p.get('fit_s')))} / {esc(_seconds(p.get('total_s')))}"),
        ("packages", _packages),
        ("stored in", lambda p: f"<code>{esc(p['folder'])}</code>"),
    ]
    head = "".join(f"<th>seed {esc(p['seed'])}</th>" for p in runs)
    body = "".join(f"<tr><td>{name}</td>{''.join(f'<td>{shown(p)}</td>' for p in runs)}</tr>" for name, shown in fields)
    parts = [f'<div class="scroll"><table class="kv"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table></div>']
    return (
        f'<details><summary><span class="letter">{esc(row.letter)}</span><span class="mono">{esc(row.label)}</span>'
        f'<span class="meta">{esc(meta)}</span></summary><div class="inner">{"".join(parts)}</div></details>'
    )


def _parts(section) -> list[tuple[str, str]]:
    """(anchor, heading) of a section's parts, in page order (the table of contents)."""
    a = section.anchor
    out = [(f"{a}-table", "Table")]
    if section.board.has_intervals():
        out.append((f"{a}-baseline", f"Intervals against {section.board.baseline_label}"))
    out += [(f"{a}-{p.kind}-{i}", p.title) for i, p in enumerate(section.pictures)]
    if section.board.history:
        out.append((f"{a}-history-table", "History influence"))
    out += [(f"{a}-cost-table", "Cost"), (f"{a}-beyond", "Beyond accuracy"), (f"{a}-provenance", "Provenance")]
    return out


def section_html(report, section) -> str:
    board, a = section.board, section.anchor
    out = [f'<section class="board" id="{a}"><h2><span class="num">{section.number}</span>{esc(board.title)}</h2>']
    out.append(
        f'<p class="sub">{len(board.rows)} rows · {esc(board.samples_text)} · {esc(stats.TESTS[board.test])}, '
        f"{esc(stats.CORRECTIONS[board.correction])}, p &lt; {board.alpha:g}</p>"
    )
    out.append(f'<div id="{a}-table">{board_table(board)}</div><p class="caption">{esc(board.caption)}</p>')
    for note in section.notes:
        out.append(f'<p class="note">{esc(note)}</p>')
    if board.has_intervals():
        out.append(f'<h3 id="{a}-baseline">Intervals against {esc(board.baseline_label)}</h3>')
        out.append(
            f'<p class="caption">Mean of (row − {esc(board.baseline_label)}) with its paired bootstrap {CI_CONFIDENCE:.0%} '
            f"interval ({board.n_resamples:,} resamples, seed {board.seed}); green: the interval lies above zero, red: below.</p>"
        )
        out.append(intervals_table(board))
    if section.pictures:
        out.append(f'<h3 id="{a}-pictures">Pictures</h3><div class="figures">')
        out += [figure(p, f"{a}-{p.kind}-{i}") for i, p in enumerate(section.pictures)]
        out.append("</div>")
    if board.history:
        out.append(f'<h3 id="{a}-history-table">History influence on {esc(board.history_metric)}</h3>')
        out.append(history_table(board) + f'<p class="caption">{esc(cells.history_caption(board))}</p>')
    out.append(f'<h3 id="{a}-cost-table">Cost</h3>{cost_table(board)}')
    out.append('<p class="caption">Mean over seeds; GPU-hours summed over seeds; peak memory is the GPU\'s, or the process\'s on a CPU.</p>')  # fmt: skip
    out.append(f'<h3 id="{a}-beyond">Beyond accuracy @{report.beyond_k}</h3>')
    if section.beyond is None:
        out.append(f'<p class="note">{esc(report.beyond_note)}</p>')
    else:
        out.append(beyond_table(section.beyond, report.beyond_k))
        out.append(
            '<p class="caption">From each run\'s stored top-50 lists (first '
            f"{report.beyond_k}) and the training split's targets. avg_pop, tail and novelty: mean over samples, then seeds; "
            "coverage, gini and pop_ratio: mean over seeds with a percentile bootstrap 95% interval over test samples "
            "(the same samples for every seed; coverage's lies at or below its value, as a resample repeats samples and so shows "
            "fewer distinct items). Long tail: the least popular items holding 20% of the training interactions.</p>"
        )
        out.append(beyond_legend(report.beyond_k))
    out.append(f'<h3 id="{a}-provenance">Provenance</h3>')
    out += [provenance_block(r, section.provenance.get(r.letter, [])) for r in board.rows]
    out.append("</section>")
    return "\n".join(out)


def _when(iso: str) -> str:
    return iso.replace("T", " ").replace("+00:00", " UTC")


def to_html(report) -> str:
    title = f"{report.dataset}" + (f" · {report.experiment}" if report.experiment else "")
    o = report.options
    facts = [
        ("Dataset", esc(report.dataset)),
        ("Experiment", esc(report.experiment or "all")),
        ("Split hash", f"<code>{esc(report.split_hash)}</code>"),
        ("Generated", esc(_when(report.generated_at))),
        ("Tables", str(len(report.sections))),
        ("Runs", str(report.n_runs)),
        ("Test", esc(f"{stats.TESTS[o['test']]}, {stats.CORRECTIONS[o['correction']]}, p < {o['alpha']:g}")),
    ]
    if o.get("baseline"):
        facts.append(("Baseline", esc(o["baseline"])))
    if o.get("selection"):
        facts.append(("Selection", esc(o["selection"])))
    toc = []
    for s in report.sections:
        subs = "".join(f'<li><a href="#{esc(anchor)}">{esc(text)}</a></li>' for anchor, text in _parts(s))
        toc.append(f'<li><a href="#{s.anchor}">{esc(s.board.title)}</a><ol>{subs}</ol></li>')
    toc.append('<li><a href="#about">About the numbers</a></li>')
    damaged = "".join(f'<p class="note">Left out: {esc(d.sentence())}</p>' for d in report.damaged)
    about = (
        '<section class="about" id="about"><h2>About the numbers</h2>'
        '<p class="caption">Full ranking over the whole catalogue, no negative sampling. Rank r (0-based) is a hit at K '
        "when r &lt; K; NDCG@K = 1/log2(r + 2) for a hit. Cells are the mean over seeds of each seed's mean over its test "
        "samples (± the standard deviation across seeds); tests are paired over the test samples rows share, on per-sample "
        "values averaged over seeds. Everything on this page is rebuilt from the stored runs alone.</p></section>"
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>bench report · {esc(title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            '<header class="top"><div class="wrap"><p class="kicker">bench report</p>',
            f"<h1>{esc(report.dataset)}"
            + (f' <span class="exp">· {esc(report.experiment)}</span>' if report.experiment else "")
            + "</h1>",
            '<dl class="facts">' + "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in facts) + "</dl></div></header>",
            '<main class="wrap">',
            f'<nav class="toc"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>',
            damaged,
            *(section_html(report, s) for s in report.sections),
            about,
            "</main>",
            f"<footer>bench report · {esc(report.dataset)} · split {esc(report.split_hash)} · {esc(_when(report.generated_at))}</footer>",
            "</body></html>",
            "",
        ]
    )
