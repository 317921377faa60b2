"""Where each key of a TOML text is, mistakes reported with their lines, and the checks of plain
values (a table, a whole number, a choice, an array of names) that report them.

Python's tomllib gives no positions for values, so TomlLines reads the text itself: it follows
table headers (`[set.cft]`, `[[references]]`, the n-th one numbered n - 1) and `key = value` lines,
skipping multi-line strings and arrays, and records the lines each key's value spans. A mistake
about a key names the line of that key (or of the nearest enclosing key or table that has one); a
mistake about one element of an array names the line of the array holding that element.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from bench.describe import default_text
from bench.errors import BenchError

_BARE = r"[A-Za-z0-9_-]+"
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'[^']*'"
_PART = rf"(?:{_BARE}|{_QUOTED})"
_KEY = rf"{_PART}(?:\s*\.\s*{_PART})*"
_ARRAY_HEADER = re.compile(rf"^\[\[\s*({_KEY})\s*\]\]")
_TABLE_HEADER = re.compile(rf"^\[\s*({_KEY})\s*\]")
_KEY_VALUE = re.compile(rf"^({_KEY})\s*=\s*(.*)$")


def _key_parts(text: str) -> tuple[str, ...]:
    return tuple(part[1:-1] if part[0] in "\"'" else part for part in re.findall(_PART, text))


def _bracket_depth(text: str) -> int:
    """Opened minus closed [ and { in a line, outside strings and comments."""
    depth, quote, escaped = 0, "", False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            break
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return depth


class TomlLines:
    """Where each key of a TOML text is: {key path: (first line, last line)} of its value."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.spans: dict[tuple, tuple[int, int]] = {}
        self._read()

    def _read(self) -> None:
        table: tuple = ()
        arrays: dict[tuple, int] = {}
        current: tuple | None = None
        closing, depth = "", 0  # inside a multi-line string, or a value's open brackets
        for number, line in enumerate(self.lines, 1):
            if closing or depth > 0:
                if closing and closing in line:
                    closing = ""
                elif not closing:
                    depth += _bracket_depth(line)
                self.spans[current] = (self.spans[current][0], number)
                continue
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if header := _ARRAY_HEADER.match(stripped):
                name = _key_parts(header.group(1))
                arrays[name] = arrays.get(name, -1) + 1
                table = name + (arrays[name],)
                self.spans.setdefault(table, (number, number))
            elif header := _TABLE_HEADER.match(stripped):
                table = _key_parts(header.group(1))
                self.spans.setdefault(table, (number, number))
            elif pair := _KEY_VALUE.match(stripped):
                current = table + _key_parts(pair.group(1))
                self.spans.setdefault(current, (number, number))
                value = pair.group(2)
                opener = next((q for q in ('"""', "'''") if value.startswith(q)), "")
                if opener and value.count(opener) == 1:
                    closing = opener
                else:
                    depth = _bracket_depth(value)

    def line_of(self, path: tuple, item: Any = None) -> int | None:
        """The line of `path` (or of its nearest enclosing key that has one); with `item`, the
        line within that key's value that holds the item."""
        for end in range(len(path), 0, -1):
            span = self.spans.get(tuple(path[:end]))
            if span is not None:
                break
        else:
            return None
        if item is not None:
            needles = [f'"{item}"', f"'{item}'"] if isinstance(item, str) else [default_text(item), repr(item)]
            for number in range(span[0], span[1] + 1):
                if any(n in self.lines[number - 1] for n in needles):
                    return number
        return span[0]


class Mistakes:
    """Every mistake found in a file, each one sentence with its line; raised together."""

    def __init__(self, path: str, lines: TomlLines):
        self.path = path
        self.lines = lines
        self.found: list[tuple[int | None, str]] = []

    def add(self, where: tuple, sentence: str, item: Any = None) -> None:
        self.found.append((self.lines.line_of(where, item), sentence))

    def raise_if_any(self) -> None:
        if not self.found:
            return
        ordered = sorted(self.found, key=lambda f: (f[0] is None, f[0] or 0))
        listed = "\n".join(f"{self.path}:{n}: {s}" if n else f"{self.path}: {s}" for n, s in ordered)
        count = len(ordered)
        raise BenchError(f"{count} mistake{'s' if count > 1 else ''} in {self.path}; fix and load it again:\n{listed}")


def toml_text(value: Any) -> str:
    """A value as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_text(v) for v in value) + "]"
    return str(value)


def kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"


def suggestion(word: str, known) -> str:
    close = difflib.get_close_matches(str(word), [str(k) for k in known], n=3, cutoff=0.5)
    return f" Did you mean {' or '.join(close)}?" if close else ""


def unknown_keys(m: Mistakes, where: tuple, table: dict, allowed) -> None:
    for key in table:
        if key not in allowed:
            place = f"in [{'.'.join(map(str, where))}]" if where else "at the top level"
            m.add(
                where + (key,),
                f"Unknown key '{key}' {place}.{suggestion(key, allowed)} Known keys: {', '.join(allowed)}.",
            )


def expect_table(m: Mistakes, where: tuple, value: Any, example: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        m.add(where, f"{'.'.join(map(str, where))} must be a table, not {kind(value)}; write it as {example}.")
        return {}
    return value


def expect_int(m: Mistakes, where: tuple, value: Any, minimum: int, example: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        m.add(where, f"{'.'.join(map(str, where))} must be a whole number of at least {minimum}, not {toml_text(value)}; write e.g. {example}.")  # fmt: skip
        return None
    return value


def expect_text(m: Mistakes, where: tuple, value: Any, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        m.add(
            where, f"{'.'.join(map(str, where))} must be non-empty text in quotes, not {toml_text(value)}; write e.g. {example}."
        )
        return None
    return value


def expect_choice(m: Mistakes, where: tuple, value: Any, choices) -> str | None:
    if value is None:
        return None
    if value not in choices:
        key = ".".join(map(str, where))
        m.add(where, f"{key} = {toml_text(value)} is not known.{suggestion(value, choices)} Choose one of {', '.join(choices)}.")
        return None
    return value


def text_list(m: Mistakes, where: tuple, value: Any, example: str) -> list[str]:
    """A non-empty array of distinct texts; each bad element is one mistake."""
    key = ".".join(map(str, where))
    if value is None:
        m.add(where, f"{key} is missing; write e.g. {example}.")
        return []
    if not isinstance(value, list) or not value:
        m.add(where, f"{key} must be a non-empty array of names in quotes, not {toml_text(value)}; write e.g. {example}.")
        return []
    out = []
    for item in value:
        if not isinstance(item, str):
            m.add(where, f"{key} holds {toml_text(item)}, which is not a name in quotes; write e.g. {example}.", item)
        elif item in out:
            m.add(where, f"{key} names '{item}' twice; keep one.", item)
        else:
            out.append(item)
    return out
