"""Planning a command: every method and each of its configurations resolved before anything trains,
so a typo or an impossible value fails at once.

    --methods cft,sasrec
    --set cft.epochs=1            one method's setting
    --set '*.model=smollm2-135m'  every listed method that has the setting (--model is the same for `model`)
    --grid cft.alpha=0.05,0.1 --grid cft.beta=0.25,0.5
        -> cft[alpha=0.05,beta=0.25,epochs=1]  cft[alpha=0.05,beta=0.5,epochs=1]  ...  sasrec

Explicit `method.field` settings win over `*.field`. Each grid point is an ordinary run: keyed by
its resolved config, stored, skipped when stored already.
"""

from __future__ import annotations

import dataclasses
import itertools

from bench import registry
from bench.errors import BenchError
from bench.labels import run_label
from bench.options import parse_table

ALL = "*"


@dataclasses.dataclass
class Planned:
    name: str
    cls: type
    config: object
    resolved: dict
    overrides: dict  # settings that differ from the method's defaults

    @property
    def label(self) -> str:
        return run_label(self.name, self.overrides)

    @property
    def key_config(self) -> dict:
        """The resolved config as the run key hashes it. A method's `key_aliases` ({field: (value,
        keyed as)}) name settings added after runs were stored: at `value` the setting computes
        what the method computed before it existed (up to rounding), so it is keyed as `keyed as`
        (None: left out), and those stored runs keep their keys."""
        out = dict(self.resolved)
        for name, (value, keyed_as) in getattr(self.cls, "key_aliases", {}).items():
            if name in out and out[name] == value:
                if keyed_as is None:
                    del out[name]
                else:
                    out[name] = keyed_as
        assistant = self.assistant
        if assistant is not None:  # the assistant's resolved identity, not the texts that chose it
            for name in getattr(self.cls, "assistant_fields", ()):
                out.pop(name, None)
            out["assistant_key"] = {"method": assistant.name, "version": assistant.cls.version, "config": assistant.key_config}
        return out

    @property
    def fit_key_config(self) -> dict:
        """The part of key_config that fitting depends on: configurations equal here share a fit."""
        decode = getattr(self.cls, "decode_settings", frozenset()) | {"assistant_key"}
        return {k: v for k, v in self.key_config.items() if k not in decode}

    @property
    def assistant(self) -> Planned | None:
        """The planned assistant method of this configuration, if it uses one."""
        wanted = self.cls.assistant_of(self.config) if hasattr(self.cls, "assistant_of") else None
        if wanted is None:
            return None
        name, settings = wanted
        if name == self.name:
            raise BenchError(f"Method '{self.name}' cannot be its own assistant; name another method, e.g. sasrec.")
        try:
            (planned,) = plan_methods([name], {name: dict(settings)})
        except BenchError as exc:
            raise BenchError(f"The assistant of '{self.name}' cannot be planned: {exc}") from None
        return planned


def parse_grid(pairs: list[str]) -> dict[str, dict[str, list[str]]]:
    """["cft.alpha=0.05,0.1"] -> {"cft": {"alpha": ["0.05", "0.1"]}}."""
    return parse_table(pairs, "--grid", "cft.alpha=0.05,0.1,0.2", many=True)


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Config)}


def _spread(table: dict, classes: dict[str, type], option: str) -> dict:
    """Settings under `*` copied to every method that has the field; a method's own entry wins."""
    out = {name: dict(values) for name, values in table.items() if name != ALL}
    for field, value in (table.get(ALL) or {}).items():
        having = [name for name, cls in classes.items() if field in _fields(cls)]
        if not having:
            raise BenchError(
                f"{option} '*.{field}' matches no method: none of {', '.join(classes)} has a setting '{field}'; "
                "check the name with `bench methods NAME`."
            )
        for name in having:
            out.setdefault(name, {}).setdefault(field, value)
    return out


def plan_methods(
    methods: list[str],
    overrides: dict[str, dict[str, str]] | None = None,
    grid: dict[str, dict[str, list[str]]] | None = None,
) -> list[Planned]:
    """One Planned per (method, grid point), in the order of --methods then of the grid values."""
    if not methods:
        raise BenchError("--methods names no method; give at least one, e.g. --methods pop,sasrec.")
    overrides, grid = overrides or {}, grid or {}
    for option, table in (("--set", overrides), ("--grid", grid)):
        unknown = set(table) - set(methods) - {ALL}
        if unknown:
            raise BenchError(
                f"{option} names {', '.join(sorted(unknown))}, which is not among --methods {','.join(methods)}; "
                "fix the method name or add it to --methods."
            )
    classes = {name: registry.load_class(name) for name in dict.fromkeys(methods)}
    overrides = _spread(overrides, classes, "--set")
    grid = _spread(grid, classes, "--grid")
    planned = []
    for name, cls in classes.items():
        fixed = overrides.get(name, {})
        axes = grid.get(name, {})
        default = dataclasses.asdict(cls.Config())
        seen = []
        for point in itertools.product(*axes.values()):
            settings = dict(fixed, **dict(zip(axes, point)))
            config = registry.build_config(cls, settings)
            resolved = dataclasses.asdict(config)
            if resolved in seen:  # `0.1` and `0.10`: one configuration, one run
                continue
            seen.append(resolved)
            changed = {k: v for k, v in resolved.items() if default.get(k) != v}
            planned.append(Planned(name, cls, config, resolved, changed))
    return planned
