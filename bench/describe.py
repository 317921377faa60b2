"""What a method's settings are: each field of its Config with its type, default and a short
meaning, for `bench methods NAME` (and its --json), so nobody has to read code to know what a row
was run with.

A setting's help is, in order of preference: the field's `metadata["help"]`; else the trailing
`# comment` on the field's line in the source of the nearest class of the Config's MRO that has
one (a subclass that overrides a default without a comment inherits its parent's); else "".
A Config made by `dataclasses.make_dataclass` has no source: it names the class whose source
holds its comments in `__help_from__` (methods.recbole.settings does so).

Imports nothing heavy; loading a method class is the registry's business (bench.registry).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

_COMMENTED_FIELD = re.compile(r"^(\s+)(\w+)\s*:[^#]*#\s*(.*)$")


@dataclass(frozen=True)
class Setting:
    name: str
    type: str  # readable: "int", "float | None", "list[str]"
    default: Any  # JSON-able
    help: str
    acts: str = "fit"  # "fit": changing it fits the method again; "decode": it acts when recommending only


def type_text(annotation) -> str:
    """An annotation as one would write it: int, float | None, list[str]."""
    if isinstance(annotation, str):
        return annotation
    if annotation is type(None):
        return "None"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(arg) for arg in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", None) or str(origin).replace("typing.", "")
        return f"{name}[{', '.join('...' if a is Ellipsis else type_text(a) for a in args)}]"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def jsonable(value: Any) -> Any:
    """The value as JSON can hold it (tuples become lists; anything else unknown becomes text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def default_text(value: Any) -> str:
    """A default written as `--set method.field=VALUE` reads it: none, true/false, text as is."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, (list, tuple)):
        return ",".join(default_text(v) for v in value)
    return str(value)


@functools.cache
def _source_comments(cls: type) -> dict[str, str]:
    """{field name: trailing comment} for the fields declared directly in the body of `cls`."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):  # generated at run time, built-in, or its file is gone
        return {}
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("class ")), 0)
    body_indent = None
    comments: dict[str, str] = {}
    for line in lines[start + 1 :]:  # the class body, after any decorators and the class line
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if body_indent is None:
            body_indent = indent
        if indent != body_indent:  # inside a method or a continuation line
            continue
        match = _COMMENTED_FIELD.match(line)
        if match and match.group(3).strip():
            comments.setdefault(match.group(2), match.group(3).strip())
    return comments


def _help_sources(config: type) -> list[type]:
    """The Config's MRO, each class followed by the class it takes its comments from, if any."""
    order: list[type] = []
    for klass in config.__mro__:
        for candidate in (klass, klass.__dict__.get("__help_from__")):
            if isinstance(candidate, type) and candidate not in order:
                order.append(candidate)
    return order


def field_help(config: type, field: dataclasses.Field) -> str:
    text = field.metadata.get("help") if field.metadata else None
    if text:
        return str(text)
    for klass in _help_sources(config):
        comment = _source_comments(klass).get(field.name)
        if comment:
            return comment
    return ""


def _defaults(config: type) -> dict[str, Any]:
    try:
        instance = config()
        return {f.name: getattr(instance, f.name) for f in dataclasses.fields(config)}
    except Exception:  # a field without a default, or a Config check that refuses its defaults
        out = {}
        for f in dataclasses.fields(config):
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = None
        return out


def settings_of(cls) -> list[Setting]:
    """Every field of `cls.Config` (a method class), in declaration order."""
    config = cls.Config
    try:
        hints = typing.get_type_hints(config)
    except Exception:  # an annotation that cannot be evaluated here: keep its text
        hints = {}
    defaults = _defaults(config)
    return [
        Setting(
            name=f.name,
            type=type_text(hints.get(f.name, f.type)),
            default=jsonable(defaults[f.name]),
            help=field_help(config, f),
            acts="decode" if f.name in getattr(cls, "decode_settings", ()) else "fit",
        )
        for f in dataclasses.fields(config)
    ]


def describe(name: str) -> dict[str, Any]:
    """A registered method: its name, description, version, origin and settings (JSON-able).
    An unknown or broken name raises the registry's BenchError."""
    from bench.registry import get_spec, load_class

    spec = get_spec(name)
    cls = load_class(name)
    description = spec.description
    if spec.origin == "plugin" and getattr(cls, "description", ""):
        description = cls.description  # the registry only knows the plugin's package
    return {
        "name": name,
        "description": description,
        "version": str(getattr(cls, "version", "")),
        "origin": spec.origin,
        "settings": [dataclasses.asdict(s) for s in settings_of(cls)],
    }
