"""The method settings and grids of an experiment file ([set.METHOD], [set."*"], model, and
[grid.METHOD]), checked as the command line would read them: each value goes through
bench.registry.build_config, the conversion `--set` and `--grid` use, and must come back as
written, so that text is never taken for a number nor a number for a flag.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from bench.describe import default_text, type_text
from bench.errors import BenchError
from bench.toml_checks import Mistakes, expect_table, expect_text, kind, suggestion, toml_text


def setting_problem(cls, name: str, value: Any, label: str) -> str | None:
    """Why `value` cannot be the setting `name` of method class `cls`, or None when it can. The
    value goes through the command line's own conversion (bench.registry.build_config), and must
    come back as written, so that text is never taken for a number or a number for a flag."""
    from bench import registry

    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    if name not in fields:
        return f"{label} is not a setting of {cls.name}.{suggestion(name, fields)} `bench methods {cls.name}` lists its settings."
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, (list, dict)) for v in value)):
        return f"{label} cannot be {kind(value)} of that shape; give one value (or an array of plain values for a list setting)."
    try:
        config = registry.build_config(cls, {name: default_text(value)})
    except BenchError as exc:
        if str(exc).startswith("Cannot read"):  # the value is not of the setting's type
            return _type_problem(cls, name, value, label)
        reason = str(exc).removesuffix("; change its --set value.").rstrip(".")
        return f"{label} = {toml_text(value)} is refused ({reason}); change the value."
    got = getattr(config, name)
    got = list(got) if isinstance(got, tuple) else got
    if got is None and isinstance(value, str) and value.lower() in ("none", "null", ""):
        return None
    if isinstance(got, bool) != isinstance(value, bool) or got != value:
        return _type_problem(cls, name, value, label)
    return None


def _type_problem(cls, name: str, value: Any, label: str) -> str:
    annotation = type_text(typing.get_type_hints(cls.Config).get(name, object))
    default = getattr(cls.Config(), name, None) if _has_defaults(cls) else None
    example = f", e.g. {name} = {toml_text(default)}" if default is not None else ""
    return f"{label} is a setting of type {annotation}, but {toml_text(value)} is {kind(value)}; write it as that type{example}."


def _has_defaults(cls) -> bool:
    try:
        cls.Config()
        return True
    except Exception:  # a Config without defaults for every field
        return False


def _targets(m: Mistakes, where: tuple, method: str, classes: dict, all_key: str) -> bool:
    """Whether a [set.X] or [grid.X] table names a listed method (or "*")."""
    if method == all_key or method in classes:
        return True
    m.add(where, f"[{'.'.join(where)}] names '{method}', which is not among methods; add it to methods or remove the table.")
    return False


def _value_problem(method: str, name: str, value: Any, classes: dict, all_key: str, section: str) -> str | None:
    label = f"{section}.{method}.{name}"
    if method != all_key:
        return setting_problem(classes[method], name, value, label)
    having = [cls for cls in classes.values() if name in {f.name for f in dataclasses.fields(cls.Config)}]
    if not having:
        return (
            f"{label} matches no method: none of {', '.join(classes)} has a setting '{name}'; check it with `bench methods NAME`."
        )
    return next((p for p in (setting_problem(cls, name, value, label) for cls in having) if p), None)


def check_settings(m: Mistakes, raw: dict, classes: dict, all_key: str) -> dict[str, dict[str, Any]]:
    settings: dict[str, dict[str, Any]] = {}
    model = expect_text(m, ("model",), raw.get("model"), 'model = "tiny"')
    if model is not None:
        problem = _value_problem(all_key, "model", model, classes, all_key, "set")
        if problem:
            m.add(("model",), problem.replace(f"set.{all_key}.model", "model"))
        else:
            settings[all_key] = {"model": model}
    for method, fields in expect_table(m, ("set",), raw.get("set"), "[set.sasrec] with epochs = 3").items():
        if not _targets(m, ("set", method), method, classes, all_key):
            continue
        for name, value in expect_table(m, ("set", method), fields, f"[set.{method}] with one setting a line").items():
            if method == all_key and name == "model" and model is not None:
                m.add(("set", method, name), 'The model is given twice, as model and in [set."*"]; keep one of them.')
                continue
            problem = _value_problem(method, name, value, classes, all_key, "set")
            if problem:
                m.add(("set", method, name), problem)
            else:
                settings.setdefault(method, {})[name] = value
    _check_together(m, settings, classes, all_key)
    return settings


def _check_together(m: Mistakes, settings: dict, classes: dict, all_key: str) -> None:
    """Each method's settings checked as one configuration (a Config may refuse a combination)."""
    from bench import registry

    for method, cls in classes.items():
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        chosen = {k: v for k, v in settings.get(all_key, {}).items() if k in fields}
        chosen.update(settings.get(method, {}))
        try:
            registry.build_config(cls, {k: default_text(v) for k, v in chosen.items()})
        except BenchError as exc:
            m.add(("set", method), f"The settings of {method} are refused together: {str(exc).rstrip('.')}.")


def check_grids(m: Mistakes, table: dict, classes: dict, settings: dict, all_key: str) -> dict[str, dict[str, list]]:
    grids: dict[str, dict[str, list]] = {}
    for method, fields in table.items():
        if not _targets(m, ("grid", method), method, classes, all_key):
            continue
        for name, values in expect_table(m, ("grid", method), fields, f"[grid.{method}] with alpha = [0.05, 0.1]").items():
            where = ("grid", method, name)
            if not isinstance(values, list) or not values:
                m.add(where, f"grid.{method}.{name} must be a non-empty array of values, e.g. {name} = [0.05, 0.1].")
                continue
            if name in settings.get(method, {}):
                m.add(where, f"{method}.{name} is both set in [set.{method}] and searched in [grid.{method}]; keep one of them.")
                continue
            problems = [(v, _value_problem(method, name, v, classes, all_key, "grid")) for v in values]
            for value, problem in problems:
                if problem:
                    m.add(where, problem, value)
            if not any(p for _, p in problems):
                grids.setdefault(method, {})[name] = list(values)
    return grids
