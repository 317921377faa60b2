"""The run record: what `bench run` stores for one run in run.json, and what every reader gets back.

The runner builds a `RunRecord`, the store saves `record.to_json()` and reads it back with
`RunRecord.from_json(data)`, which checks every field's type (a hand-edited or damaged run.json is
named as damaged, never a traceback further down) and migrates older schemas in one place,
`migrate()`. Readers use the attributes; none guards a field with `.get(...) or ...`.

Schema history:
    1   the first stored runs; fields were added without a version bump (test_subset, valid,
        history, resources, experiments, config_key, label), so any of them may be absent.
        `timing` had evaluate_s (the metrics) and its total_s left out validation scoring and
        the history conditions (not timed at all then).
    2   timing names every step (fit_s, recommend_s, metrics_s, valid_s, history_s) and total_s
        is their sum; GPU-hours come from that total.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

SCHEMA_VERSION = 2


class RecordError(ValueError):
    """A run.json whose content is not a run record; the message says which field is wrong, as
    the rest of a sentence starting "run.json ..."."""


REQUIRED = ("key", "method", "dataset", "split_hash", "seed", "n_test", "metrics")


@dataclass(frozen=True)
class Timing:
    """Seconds a run spent, by step. `total_s` is everything the run spent: the sum of the steps."""

    fit_s: float = 0.0
    recommend_s: float = 0.0  # the test set's recommendations
    metrics_s: float = 0.0  # metrics from the ranks
    valid_s: float = 0.0  # the validation set's recommendations and metrics
    history_s: float | None = 0.0  # the history conditions; None: not timed (schema 1)
    total_s: float = 0.0

    @classmethod
    def of(cls, fit_s: float, recommend_s: float, metrics_s: float, valid_s: float = 0.0, history_s: float = 0.0) -> Timing:
        return cls(fit_s, recommend_s, metrics_s, valid_s, history_s, fit_s + recommend_s + metrics_s + valid_s + history_s)


@dataclass(frozen=True)
class Resources:
    """What a run cost beside its time (None: not measured, e.g. GPU memory on a CPU)."""

    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None  # what tensors held at the peak
    peak_gpu_reserved_mb: float | None = None  # what the caching allocator took from the GPU
    gpu_hours: float | None = None


@dataclass(frozen=True)
class Provenance:
    """Where a run came from: the code, the libraries, the machine, the seed and the split."""

    git_commit: str | None = None
    git_dirty: bool | None = None
    packages: dict = field(default_factory=dict)
    python: str | None = None
    platform: str | None = None
    device: str | None = None
    seed: int | None = None
    split_hash: str | None = None
    processes: int = 1


@dataclass(frozen=True)
class Score:
    """Metrics of one scored set: the validation set (with its subset) or a history condition."""

    metrics: dict[str, float]
    invalid_total: int = 0
    n: int | None = None
    subset: dict | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class RunRecord:
    key: str
    method: str
    dataset: str
    split_hash: str
    seed: int
    n_test: int
    metrics: dict[str, float]
    label: str
    method_version: str = "1"
    config: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)
    config_key: str | None = None
    experiments: list[str] = field(default_factory=list)
    limit_test: int | None = None
    test_subset: dict | None = None
    invalid_total: int = 0
    valid: Score | None = None
    history: dict[str, Score] = field(default_factory=dict)
    timing: Timing = field(default_factory=Timing)
    resources: Resources = field(default_factory=Resources)
    provenance: Provenance = field(default_factory=Provenance)
    info: dict = field(default_factory=dict)  # what the method reports about its fit (free form)
    train_samples: dict | None = None  # {"n", "sha256"} of the training samples the fit learned from
    # the run whose fit this run decoded with (decode-time settings differ only), in memory within one
    # command (timing.fit_s 0) or loaded from the fit cache (timing.fit_s: the loading); None: fitted
    reused_fit_of: str | None = None
    # other methods used: method, label, key and fit_s, what fitting or loading it cost in this run
    # (0 when an earlier run of the command had it); an assistant fitted inside the fit is in
    # timing.fit_s too
    assistants: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # what the method returned beside the ranking
    started_at: str | None = None
    created_at: str | None = None
    arrays: dict[str, str] = field(default_factory=dict)  # part -> file, once replaced in place
    schema: int = SCHEMA_VERSION

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["schema"] = SCHEMA_VERSION
        return data

    @classmethod
    def from_json(cls, data) -> RunRecord:
        """The record of a run.json's content, of any schema; RecordError names a wrong field."""
        if not isinstance(data, dict):
            raise RecordError("holds no run record")
        missing = [name for name in REQUIRED if name not in data]
        if missing:
            raise RecordError(f"lacks {', '.join(missing)}")
        data = migrate(data)
        if "label" not in data:
            data = dict(data, label=_label(_text(data, "method"), _mapping(data, "overrides")))
        return cls(
            key=_text(data, "key"),
            method=_text(data, "method"),
            dataset=_text(data, "dataset"),
            split_hash=_text(data, "split_hash"),
            seed=_whole(data, "seed"),
            n_test=_whole(data, "n_test", minimum=0),
            metrics=_metrics(data.get("metrics"), "metrics"),
            label=_text(data, "label"),
            method_version=str(data.get("method_version", "1")),
            config=_mapping(data, "config"),
            overrides=_mapping(data, "overrides"),
            config_key=_optional_text(data, "config_key"),
            experiments=sorted(_texts(data, "experiments")),
            limit_test=_optional_whole(data, "limit_test"),
            test_subset=_optional_mapping(data, "test_subset"),
            invalid_total=_whole(data, "invalid_total", default=0, minimum=0),
            valid=_score(data.get("valid"), "valid"),
            history={str(k): _score(v, f"history.{k}") for k, v in _mapping(data, "history").items()},
            timing=_timing(data),
            resources=_part(Resources, data, "resources"),
            provenance=_part(Provenance, data, "provenance"),
            info=_mapping(data, "info"),
            train_samples=_optional_mapping(data, "train_samples"),
            reused_fit_of=_optional_text(data, "reused_fit_of"),
            assistants=_assistants(data),
            extra=_mapping(data, "extra"),
            started_at=_optional_text(data, "started_at"),
            created_at=_optional_text(data, "created_at"),
            arrays={str(k): str(v) for k, v in _mapping(data, "arrays").items()},
            schema=SCHEMA_VERSION,
        )

    def with_experiment(self, name: str) -> RunRecord:
        return dataclasses.replace(self, experiments=sorted(set(self.experiments) | {name}))


def migrate(data: dict) -> dict:
    """A run.json's content in the current schema: the one place that knows older schemas."""
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise RecordError(f"field schema is {schema!r}, not a number")
    if schema > SCHEMA_VERSION:
        raise RecordError(f"was written with schema {schema}, newer than this bench's {SCHEMA_VERSION}: update bench to read it")
    if schema == 1:
        data = _from_schema_1(data)
    return data


def _from_schema_1(data: dict) -> dict:
    data = dict(data)
    old = data.get("timing")
    if isinstance(old, dict):
        valid = data.get("valid") if isinstance(data.get("valid"), dict) else None
        valid_s = _number(valid.get("seconds", 0.0), "valid.seconds") if valid else 0.0
        timing = {
            "fit_s": old.get("fit_s", 0.0),
            "recommend_s": old.get("recommend_s", 0.0),
            "metrics_s": old.get("evaluate_s", 0.0),
            "valid_s": valid_s,
            "history_s": None if data.get("history") else 0.0,
        }
        parts = [_number(timing[k], f"timing.{k}") for k in ("fit_s", "recommend_s", "metrics_s")]
        timing["total_s"] = sum(parts) + valid_s  # the history conditions were not timed
        data["timing"] = timing
        resources = data.get("resources")
        if isinstance(resources, dict) and resources.get("gpu_hours") is not None:
            processes = (data.get("provenance") or {}).get("processes", 1) if isinstance(data.get("provenance"), dict) else 1
            data["resources"] = dict(resources, gpu_hours=round(timing["total_s"] * processes / 3600, 4))
    return data


def _label(method: str, overrides: dict) -> str:
    from bench.labels import run_label

    return run_label(method, overrides)


# field checks: each names the field and what is wrong with it, in words a user can act on


def _text(data: dict, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise RecordError(f"field {name} is {value!r}, not a text" if name in data else f"lacks {name}")
    return value


def _optional_text(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"field {name} is {value!r}, not a text")
    return value


def _texts(data: dict, name: str) -> list[str]:
    value = data.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RecordError(f"field {name} is {value!r}, not a list of names")
    return value


def _whole(data: dict, name: str, default: int | None = None, minimum: int | None = None) -> int:
    if name not in data and default is not None:
        return default
    value = data.get(name)
    if name not in data:
        raise RecordError(f"lacks {name}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError(f"field {name} is {value!r}, not a whole number")
    if minimum is not None and value < minimum:
        raise RecordError(f"field {name} is {value}, below {minimum}")
    return value


def _optional_whole(data: dict, name: str) -> int | None:
    return None if data.get(name) is None else _whole(data, name)


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise RecordError(f"field {name} is {value!r}, not a number")
    return float(value)


def _mapping(data: dict, name: str) -> dict:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"field {name} is {value!r}, not a mapping")
    return value


def _optional_mapping(data: dict, name: str) -> dict | None:
    return _mapping(data, name) if data.get(name) is not None else None


def _metrics(value, name: str) -> dict[str, float]:
    if not isinstance(value, dict) or not value:
        raise RecordError(f"field {name} is {value!r}, not a mapping of metric values")
    return {str(k): _number(v, f"{name}.{k}") for k, v in value.items()}


def _score(value, name: str) -> Score | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordError(f"field {name} is {value!r}, not a mapping")
    return Score(
        metrics=_metrics(value.get("metrics"), f"{name}.metrics"),
        invalid_total=_whole(value, "invalid_total", default=0, minimum=0),
        n=_optional_whole(value, "n"),
        subset=_optional_mapping(value, "subset"),
        seconds=None if value.get("seconds") is None else _number(value["seconds"], f"{name}.seconds"),
    )


def _assistants(data: dict) -> list[dict]:
    value = data.get("assistants") or []
    if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("key"), str) for v in value):
        raise RecordError(f"field assistants is {value!r}, not a list of assistants")
    return value


def _timing(data: dict) -> Timing:
    """The timing part; a total left out is the sum of the steps."""
    timing = _part(Timing, data, "timing")
    if "total_s" in _mapping(data, "timing"):
        return timing
    steps = (timing.fit_s, timing.recommend_s, timing.metrics_s, timing.valid_s, timing.history_s or 0.0)
    return dataclasses.replace(timing, total_s=sum(steps))


def _part(cls, data: dict, name: str):
    """A nested dataclass from its mapping: unknown keys are ignored (a newer minor field),
    numbers are checked."""
    value = _mapping(data, name)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, item in value.items():
        if key not in known:
            continue
        hint = str(known[key].type)
        if item is None and "None" in hint:
            pass
        elif "float" in hint:
            item = _number(item, f"{name}.{key}")
        elif hint.startswith("int") and (isinstance(item, bool) or not isinstance(item, int)):
            raise RecordError(f"field {name}.{key} is {item!r}, not a whole number")
        elif hint.startswith("dict") and not isinstance(item, dict):
            raise RecordError(f"field {name}.{key} is {item!r}, not a mapping")
        kwargs[key] = item
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required part is missing
        raise RecordError(f"field {name} is incomplete ({exc})") from None
