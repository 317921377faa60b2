"""A lazy registry of methods: names map to "module:Class" strings and one-line descriptions, so
listing methods imports nothing heavy. Out-of-tree methods join through the `bench.methods`
entry-point group (name = "package.module:Class")."""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import typing
from dataclasses import dataclass
from importlib.metadata import entry_points

from bench.errors import BenchError

ENTRY_POINT_GROUP = "bench.methods"


@dataclass(frozen=True)
class MethodSpec:
    name: str
    target: str  # "module:Class"
    description: str
    # class attributes set on a generated subclass, so one class serves several names
    # (e.g. {"recbole_model": "Caser"})
    options: dict | None = None
    origin: str = "builtin"


_RECBOLE = "methods.recbole.method:RecBoleMethod"

# Built-in methods. Adding one is one line here plus its module.
BUILTIN: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in [
        MethodSpec("pop", "methods.pop:Pop", "Most popular items among the training targets (sanity floor)."),
        # classic sequential models through RecBole; any RecBole sequential model is one line like these
        MethodSpec(
            "sasrec",
            _RECBOLE,
            "SASRec (RecBole): self-attention over the history, CE over all items.",
            {"recbole_model": "SASRec"},
        ),
        MethodSpec(
            "gru4rec", _RECBOLE, "GRU4Rec (RecBole): a GRU over the history, CE over all items.", {"recbole_model": "GRU4Rec"}
        ),
        MethodSpec("caser", _RECBOLE, "Caser (RecBole): convolutional sequence embedding.", {"recbole_model": "Caser"}),
        MethodSpec(
            "bert4rec",
            _RECBOLE,
            "BERT4Rec (RecBole): bidirectional self-attention, cloze training.",
            {"recbole_model": "BERT4Rec"},
        ),
        # LLM methods on one shared engine (methods/llm)
        MethodSpec(
            "sft", "methods.llm.sft:SFT", "LLM fine-tuned on title generation; beam search constrained to catalogue titles."
        ),
        MethodSpec(
            "bigrec", "methods.llm.bigrec:BIGRec", "BIGRec: LLM SFT, free beam search grounded to items by L2 embedding distance."
        ),
        MethodSpec("cft", "methods.llm.cft:CFT", "Counterfactual fine-tuning (alpha 0.1, beta 0.25) + L2 grounding."),
        MethodSpec("cft-no-cf", "methods.llm.cft:CFTNoCF", "CFT ablation without the counterfactual term (alpha 0, beta 0.25)."),
        MethodSpec("cft-no-tw", "methods.llm.cft:CFTNoTW", "CFT ablation with uniform token weights (alpha 0.1, beta 1)."),
        MethodSpec(
            "d3", "methods.llm.d3:D3", "D3: LLM SFT, constrained beam search mixed with a SASRec text-free assistant (gamma 0.5)."
        ),
        MethodSpec(
            "d3-cft", "methods.llm.d3:D3CFT", "CFT applied to D3: the CFT loss, D3's constrained decoding and SASRec assistant."
        ),
    ]
}


def register(name: str, target: str, description: str, options: dict | None = None) -> None:
    """Register a method at run time (tests, notebooks)."""
    BUILTIN[name] = MethodSpec(name, target, description, options, origin="runtime")


def _plugins() -> dict[str, MethodSpec]:
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = MethodSpec(ep.name, ep.value, f"(plugin from {ep.dist.name if ep.dist else 'unknown'})", origin="plugin")
    return found


def all_specs() -> dict[str, MethodSpec]:
    specs = dict(_plugins())
    specs.update(BUILTIN)  # built-in names win over a plugin that reuses one
    return specs


def get_spec(name: str) -> MethodSpec:
    specs = all_specs()
    if name not in specs:
        close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise BenchError(f"Unknown method '{name}'.{hint} Run `bench methods` to list them all.")
    return specs[name]


def load_class(name: str):
    spec = get_spec(name)
    module_name, _, attr = spec.target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise BenchError(
            f"Method '{name}' cannot be loaded from {spec.target} ({exc}); check that its package is installed."
        ) from exc
    except TypeError as exc:  # the method contract refused a class while its module was imported
        raise BenchError(f"Method '{name}' cannot be loaded from {spec.target}: {exc}") from exc
    from bench.method import Method

    if not (isinstance(cls, type) and issubclass(cls, Method)):
        what = f"the class {cls.__qualname__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise BenchError(
            f"Method '{name}' ({spec.target}) is {what}, not a subclass of bench.method.Method; "
            "subclass Method (or ScoreMethod) and implement _fit and _recommend (or _score)."
        )
    if spec.options or getattr(cls, "name", "") != name:
        # a subclass per registered name keeps class attributes (name, options) apart
        cls = type(cls.__name__, (cls,), dict(spec.options or {}, name=name, __module__=cls.__module__))
    return cls


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    """["cft.alpha=0.2", "sft.epochs=1"] -> {"cft": {"alpha": "0.2"}, "sft": {"epochs": "1"}}."""
    from bench.options import parse_table

    return parse_table(pairs, "--set", "cft.alpha=0.2")


def _convert(value: str, annotation, where: str):
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() in ("none", "null", "") and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except BenchError:
                continue
        raise BenchError(f"Cannot read {where}={value!r} as {annotation}.")
    if origin in (list, tuple):
        inner = args[0] if args else str
        items = [_convert(v.strip(), inner, where) for v in value.split(",") if v.strip()]
        return items if origin is list else tuple(items)
    try:
        if annotation is bool:
            low = value.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if annotation in (int, float, str):
            return annotation(value)
    except ValueError as exc:
        raise BenchError(f"Cannot read {where}={value!r} as {annotation.__name__}; give a valid value.") from exc
    return value


def build_config(cls, overrides: dict[str, str]):
    """The method's Config with overrides applied, each converted to its field's type."""
    config_cls = cls.Config
    hints = typing.get_type_hints(config_cls)
    known = {f.name for f in dataclasses.fields(config_cls)}
    values = {}
    for field, raw in overrides.items():
        if field not in known:
            close = difflib.get_close_matches(field, sorted(known), n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise BenchError(
                f"Method '{cls.name}' has no setting '{field}'.{hint} Its settings: {', '.join(sorted(known)) or 'none'}."
            )
        values[field] = _convert(raw, hints[field], f"{cls.name}.{field}")
    try:
        return config_cls(**values)
    except ValueError as exc:  # a Config's own check (__post_init__) of its values
        raise BenchError(f"Method '{cls.name}': {exc}; change its --set value.") from exc
