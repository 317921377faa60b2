"""Markdown (GitHub tables): a board's sections (bench.leaderboard.sections), each as a heading,
its table and its caption. The report's Markdown lays its tables out with the same functions."""

from __future__ import annotations

import re

from tabulate import tabulate

from bench.leaderboard.model import Leaderboard
from bench.leaderboard.sections import Entry, Section, board_sections

# characters that would start markup: a table break, code, emphasis, an escape, an HTML tag
_SPECIAL = re.compile(r"[\\|`*>]|<(?=[A-Za-z/!?])")


def md(text) -> str:
    """Text that Markdown shows as written (no table break, code, emphasis or HTML)."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(0), str(text))


def entry_md(entry: Entry) -> str:
    text = f"**{md(entry.text)}**" if entry.bold else md(entry.text)
    text += f"<sup>{md(entry.wins)}</sup>" if entry.wins else ""
    return text + (f" {md(entry.detail)}" if entry.detail else "")


def table_md(section: Section) -> str:
    headers = [md(h) for h in (*section.key_headers, *section.headers)]
    body = [[md(k) for k in line.keys] + [entry_md(e) for e in line.entries] for line in section.lines]
    return tabulate(body, headers=headers, tablefmt="github", disable_numparse=True)


def legend_md(section: Section) -> list[str]:
    return [f"- `{name}`: {md(meaning)}" for name, meaning in section.legend] + ([""] if section.legend else [])


def section_md(section: Section, level: str = "###") -> list[str]:
    """A section as lines: heading, table, caption, legend."""
    return [f"{level} {md(section.title)}", "", table_md(section), "", md(section.caption_text), "", *legend_md(section)]


def to_markdown(boards: list[Leaderboard], heading: str = "") -> str:
    """The boards of one dataset; `heading` (an experiment's description) is printed above their tables."""
    parts = [
        f"# Leaderboard: {boards[0].dataset}",
        "",
        *([md(heading), ""] if heading else []),
        f"Split `{boards[0].split_hash}`.",
        "",
    ]
    for board in boards:
        for k, section in enumerate(board_sections(board)):
            parts += section_md(section, "##" if k == 0 else "###")
    return "\n".join(parts)
