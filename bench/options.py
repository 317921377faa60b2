"""Reading what a user types: comma-separated lists and key=value pairs, one parser for every
option that takes them (--set, --grid, --sbatch, --where, RecBole's extra settings), each mistake
answered with one sentence that shows the form and an example."""

from __future__ import annotations

from bench.errors import BenchError


def split_list(text: str, sep: str = ",") -> list[str]:
    """ "a, b,,c" -> ["a", "b", "c"]."""
    return [part.strip() for part in (text or "").split(sep) if part.strip()]


def parse_pairs(items: list[str], option: str, example: str, *, dotted: bool = False, many: bool = False) -> list[tuple]:
    """Read `key=value` items in order, as (key, value) pairs.

    dotted: the key is `method.field` and comes back as a (method, field) tuple.
    many: the value is a comma-separated list and comes back as a list (duplicates dropped, order
    kept), never empty.
    """
    form = ("method.field" if dotted else "key") + ("=v1,v2,..." if many else "=value")
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        parsed_key: str | tuple[str, str] = key
        ok = bool(eq and key)
        if dotted:
            method, dot, field = key.partition(".")
            parsed_key = (method.strip(), field.strip())
            ok = ok and bool(dot and method.strip() and field.strip())
        parsed_value: str | list[str] = value
        if many:
            parsed_value = list(dict.fromkeys(split_list(value)))
            ok = ok and bool(parsed_value)
        if not ok:
            raise BenchError(f"Cannot read {option} '{item}'; write it as {form}, e.g. {option} {example}.")
        out.append((parsed_key, parsed_value))
    return out


def parse_table(items: list[str], option: str, example: str, *, many: bool = False) -> dict[str, dict]:
    """Dotted pairs as {method: {field: value}}: ["cft.alpha=0.2"] -> {"cft": {"alpha": "0.2"}}."""
    out: dict[str, dict] = {}
    for (method, field), value in parse_pairs(items, option, example, dotted=True, many=many):
        out.setdefault(method, {})[field] = value
    return out


def parse_mapping(items: list[str], option: str, example: str) -> dict[str, str]:
    """Plain pairs as a mapping: ["account=abc"] -> {"account": "abc"}."""
    return dict(parse_pairs(items, option, example))
