"""The report as one self-contained HTML page: inline stylesheet, pictures embedded as SVG data
(the PNG and SVG files beside the page are linked for download), every text escaped."""

from __future__ import annotations

import base64
import dataclasses
import html

from bench.leaderboard.sections import Entry, Section
from bench.report.model import ABOUT, Picture

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
p.lead { font-size: 1.05rem; max-width: 980px; margin: 0 0 22px; }
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
table.provenance td.label { color: var(--muted); font-family: inherit; font-size: 1em; white-space: nowrap; width: 1%; }
table.provenance td.left { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.84em;
  word-break: break-word; }
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


def entry_html(entry: Entry, left: bool) -> str:
    """A cell: its text (strong when best, coloured by tone), superscript wins, then its interval;
    the page draws a faint bar of the value against its column's best."""
    text = esc(entry.text)
    text = f"<strong>{text}</strong>" if entry.bold else text
    text = f'<span class="{"pos" if entry.tone == "up" else "neg"}">{text}</span>' if entry.tone else text
    if entry.wins:
        text += f'<sup class="wins" title="significantly better than row(s) {esc(entry.wins)}">{esc(entry.wins)}</sup>'
    if entry.detail:
        text += f' <span class="ci">{esc(entry.detail)}</span>'
    classes = ["left" if left else "num"] + (["bar"] if entry.fill is not None else []) + (["best"] if entry.bold else [])
    bar = f' style="--w:{100.0 * entry.fill:.1f}%"' if entry.fill is not None else ""
    return f'<td class="{" ".join(classes)}"{bar}>{text}</td>'


def _key_td(position: int, text: str, keys: int) -> str:
    if keys == 2 and position == 0:
        return f'<td class="letter">{esc(text)}</td>'
    return f'<td class="label{" long" if len(text) > 40 else ""}">{esc(text)}</td>'


def table_html(section: Section) -> str:
    keys = len(section.key_headers)
    head = "".join(f"<th>{esc(h)}</th>" for h in section.key_headers)
    head += "".join(f'<th class="{"left" if h in section.left else "num"}">{esc(h)}</th>' for h in section.headers)
    body = []
    for line in section.lines:
        tds = "".join(_key_td(k, text, keys) for k, text in enumerate(line.keys))
        tds += "".join(entry_html(e, h in section.left) for e, h in zip(line.entries, section.headers))
        body.append(f"<tr>{tds}</tr>")
    return f'<div class="scroll"><table class="{section.kind}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def section_html(section: Section, anchor: str, heading: bool = True) -> str:
    """A section: heading, table, caption, and what its columns mean."""
    out = [f'<h3 id="{esc(anchor)}">{esc(section.title)}</h3>' if heading else f'<div id="{esc(anchor)}"></div>']
    out.append(table_html(section) + f'<p class="caption">{esc(section.caption_text)}</p>')
    if section.legend:
        items = "".join(f"<dt>{esc(name)}</dt><dd>{esc(text)}</dd>" for name, text in section.legend)
        out.append(f'<dl class="legend">{items}</dl>')
    return "\n".join(out)


def figure(picture, anchor: str) -> str:
    data = base64.b64encode(picture.svg_data).decode("ascii")
    narrow = ' class="narrow"' if picture.kind in ("forest", "history") else ""
    return (
        f'<figure id="{esc(anchor)}"{narrow}><img src="data:image/svg+xml;base64,{data}" alt="{esc(picture.title)}">'
        f"<figcaption><strong>{esc(picture.title)}.</strong> {esc(picture.caption)} "
        f'<span class="files">Files: <a href="{esc(picture.png)}">PNG</a> · <a href="{esc(picture.svg)}">SVG</a></span>'
        "</figcaption></figure>"
    )


def provenance_html(section: Section) -> str:
    """One row's runs, folded: the summary names the row, the table lists each run."""
    letter, _, label = section.title.partition(" · ")
    return (
        f'<details><summary><span class="letter">{esc(letter)}</span><span class="mono">{esc(label)}</span>'
        f'<span class="meta">{esc(section.caption_text)}</span></summary><div class="inner">{table_html(section)}</div></details>'
    )


def chapter_html(chapter) -> str:
    board, a = chapter.board, chapter.anchor
    out = [f'<section class="board" id="{a}"><h2><span class="num">{chapter.number}</span>{esc(board.title)}</h2>']
    out.append(f'<p class="sub">{len(board.rows)} rows · {esc(board.samples_text)}</p>')
    pictures = False
    for anchor, item in chapter.page():
        if isinstance(item, Picture):
            if not pictures:
                out.append(f'<h3 id="{a}-pictures">Pictures</h3><div class="figures">')
                pictures = True
            out.append(figure(item, anchor))
            continue
        if pictures:
            out.append("</div>")
            pictures = False
        out.append(section_html(item, anchor, heading=item.kind != "board"))
        if item.kind == "board":
            out += [f'<p class="note">{esc(note)}</p>' for note in chapter.notes]
    out.append("</div>" if pictures else "")
    out.append(f'<h3 id="{a}-provenance">Provenance</h3>')
    out += [provenance_html(s) for s in chapter.provenance]
    out.append("</section>")
    return "\n".join(out)


def across_html(across) -> str:
    """An experiment's summary across datasets: its tables and diagram, or why it is absent."""
    out = [f'<section class="board" id="{across.anchor}"><h2>{esc(across.title)}</h2>']
    if across.sentence:
        out.append(f'<p class="note">{esc(across.sentence)}</p>')
    out += [section_html(section, f"{across.anchor}-{section.kind}") for section in across.sections]
    if across.pictures:
        out.append('<div class="figures">' + "".join(figure(p, f"{across.anchor}-{p.kind}") for p in across.pictures) + "</div>")
    out.append("</section>")
    return "\n".join(out)


def about_html(report) -> str:
    """How the numbers are made, and the power of every table's tests."""
    out = ['<section class="about" id="about"><h2>About the numbers</h2>', f'<p class="caption">{esc(ABOUT)}</p>',
           '<h3 id="about-power">Statistical power</h3>']  # fmt: skip
    for chapter, section, note in report.power_parts():
        title = f"{chapter.number}. {chapter.board.title}"
        if section is None:
            out.append(f'<p class="caption"><strong>{esc(title)}</strong>: {esc(note)}</p>')
        else:
            out.append(section_html(dataclasses.replace(section, title=title), f"about-power-{chapter.number}"))
    out.append("</section>")
    return "\n".join(out)


def to_html(report) -> str:
    title = report.dataset + (f" · {report.experiment}" if report.experiment else "")
    facts = "".join(
        f"<div><dt>{esc(k)}</dt><dd>{f'<code>{esc(v)}</code>' if k == 'Split hash' else esc(v)}</dd></div>"
        for k, v in report.facts
    )
    toc = []
    for c in report.chapters:
        subs = "".join(f'<li><a href="#{esc(anchor)}">{esc(text)}</a></li>' for anchor, text in c.contents())
        toc.append(f'<li><a href="#{c.anchor}">{esc(c.board.title)}</a><ol>{subs}</ol></li>')
    if report.across is not None:
        toc.append(f'<li><a href="#{report.across.anchor}">{esc(report.across.title)}</a></li>')
    toc.append('<li><a href="#about">About the numbers</a></li>')
    damaged = "".join(f'<p class="note">Left out: {esc(d.sentence())}</p>' for d in report.damaged)
    damaged += "".join(f'<p class="note">{esc(problem)}</p>' for problem in report.problems)
    lead = f'<p class="lead">{esc(report.heading)}</p>' if report.heading else ""
    exp = f' <span class="exp">· {esc(report.experiment)}</span>' if report.experiment else ""
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>bench report · {esc(title)}</title>",
            f"<style>{STYLE}</style></head><body>",
            '<header class="top"><div class="wrap"><p class="kicker">bench report</p>',
            f"<h1>{esc(report.dataset)}{exp}</h1>",
            f'<dl class="facts">{facts}</dl></div></header>',
            '<main class="wrap">',
            lead,
            f'<nav class="toc"><h2>Contents</h2><ol>{"".join(toc)}</ol></nav>',
            damaged,
            *(chapter_html(c) for c in report.chapters),
            across_html(report.across) if report.across is not None else "",
            about_html(report),
            "</main>",
            f"<footer>bench report · {esc(report.dataset)} · split {esc(report.split_hash)} · {esc(report.generated_at)}</footer>",
            "</body></html>",
            "",
        ]
    )
