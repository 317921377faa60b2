"""The report as Markdown for a repository: the same sections and captions as the page (laid out
by bench.leaderboard.markdown), the pictures linked as the PNG files beside it, provenance in
<details> blocks (GitHub renders them folded)."""

from __future__ import annotations

import dataclasses
import html

from bench.leaderboard.markdown import md, section_md, table_md
from bench.report.model import ABOUT, Picture


def _anchor(anchor: str) -> str:
    return f'<a id="{html.escape(anchor)}"></a>'


def chapter_md(chapter) -> list[str]:
    board, a = chapter.board, chapter.anchor
    out = [_anchor(a), f"## {chapter.number}. {md(board.title)}", "", f"{len(board.rows)} rows · {md(board.samples_text)}", ""]
    for anchor, item in chapter.page():
        if isinstance(item, Picture):
            out += [_anchor(anchor), f"### {md(item.title)}", "", f"![{md(item.title)}]({item.png})", "",
                    f"{md(item.caption)} ([SVG]({item.svg}))", ""]  # fmt: skip
            continue
        lines = section_md(item)
        out += [_anchor(anchor), *(lines[2:] if item.kind == "board" else lines)]  # the chapter's heading names the board
        if item.kind == "board":
            out += [f"> {md(note)}\n" for note in chapter.notes]
    out += [_anchor(f"{a}-provenance"), "### Provenance", ""]
    for section in chapter.provenance:
        summary = html.escape(f"{section.title} ({section.caption_text})")
        out += [f"<details><summary>{summary}</summary>", "", table_md(section), "", "</details>", ""]
    return out


def across_md(across) -> list[str]:
    """An experiment's summary across datasets: its tables and diagram, or why it is absent."""
    out = [_anchor(across.anchor), f"## {md(across.title)}", ""]
    out += [f"> {md(across.sentence)}", ""] if across.sentence else []
    for section in across.sections:
        out += [_anchor(f"{across.anchor}-{section.kind}"), *section_md(section)]
    for p in across.pictures:
        out += [f"### {md(p.title)}", "", f"![{md(p.title)}]({p.png})", "", f"{md(p.caption)} ([SVG]({p.svg}))", ""]
    return out


def about_md(report) -> list[str]:
    """How the numbers are made, and the power of every table's tests."""
    out = [_anchor("about"), "## About the numbers", "", md(ABOUT), "", _anchor("about-power"), "### Statistical power", ""]
    for chapter, section, note in report.power_parts():
        title = f"{chapter.number}. {chapter.board.title}"
        if section is None:
            out += [f"**{md(title)}**: {md(note)}", ""]
        else:
            out += section_md(dataclasses.replace(section, title=title), "####")
    return out


def to_markdown(report) -> str:
    title = report.dataset + (f" · {report.experiment}" if report.experiment else "")
    out = [f"# bench report: {md(title)}", "", *([md(report.heading), ""] if report.heading else [])]
    out += [f"- **{md(k)}**: {f'`{v}`' if k == 'Split hash' else md(v)}" for k, v in report.facts] + ["", "## Contents", ""]
    for c in report.chapters:
        out.append(f"{c.number}. [{md(c.board.title)}](#{c.anchor})")
        out += [f"   - [{md(text)}](#{anchor})" for anchor, text in c.contents()]
    if report.across is not None:
        out.append(f"{len(report.chapters) + 1}. [{md(report.across.title)}](#{report.across.anchor})")
    out.append(f"{len(report.chapters) + 1 + (report.across is not None)}. [About the numbers](#about)")
    out += ["", *(f"> Left out: {md(d.sentence())}\n" for d in report.damaged), *(f"> {md(p)}\n" for p in report.problems)]
    for c in report.chapters:
        out += chapter_md(c)
    out += across_md(report.across) if report.across is not None else []
    out += about_md(report)
    return "\n".join(out).rstrip() + "\n"
