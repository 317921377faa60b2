"""The report as Markdown for a repository: the same sections and captions as the page (laid out
by bench.leaderboard.markdown), the pictures linked as the PNG files beside it, provenance in
<details> blocks (GitHub renders them folded)."""

from __future__ import annotations

import html

from bench.leaderboard.markdown import md, section_md, table_md
from bench.report.model import Picture


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


def to_markdown(report) -> str:
    title = report.dataset + (f" · {report.experiment}" if report.experiment else "")
    out = [f"# bench report: {md(title)}", ""]
    out += [f"- **{md(k)}**: {f'`{v}`' if k == 'Split hash' else md(v)}" for k, v in report.facts] + ["", "## Contents", ""]
    for c in report.chapters:
        out.append(f"{c.number}. [{md(c.board.title)}](#{c.anchor})")
        out += [f"   - [{md(text)}](#{anchor})" for anchor, text in c.contents()]
    out += ["", *(f"> Left out: {md(d.sentence())}\n" for d in report.damaged)]
    for c in report.chapters:
        out += chapter_md(c)
    return "\n".join(out).rstrip() + "\n"
