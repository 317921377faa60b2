"""Which stored runs form which table.

stored runs of a dataset
  └─ chosen by method, setting (model=smollm2-135m) and experiment name, when asked
       └─ newest split (or the one asked for)
            └─ one table per experiment (`bench run --name`; runs without a name together)
                 └─ and per evaluation set (limit_test, n_test)
                      └─ one row per config_key; one run per seed (the newest when stored twice)
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.record import RunRecord
from bench.store import StoredRun
from bench.subsets import SampleChoice


@dataclass(frozen=True)
class Selection:
    """What the user asked the leaderboard to show; empty fields select everything."""

    methods: tuple[str, ...] = ()
    where: dict[str, str] = field(default_factory=dict)  # setting -> value, as written on the command line
    name: str | None = None  # one experiment only
    split_hash: str | None = None  # None: the split of the most recently created run

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))

    @property
    def empty(self) -> bool:
        return not (self.methods or self.where or self.name)

    def describe(self) -> str:
        parts = [f"methods {','.join(self.methods)}"] if self.methods else []
        parts += [f"{k}={v}" for k, v in sorted(self.where.items())]
        parts += [f"experiment '{self.name}'"] if self.name else []
        return ", ".join(parts)


def parse_where(pairs: list[str]) -> dict[str, str]:
    """["model=smollm2-135m"] -> {"model": "smollm2-135m"}."""
    from bench.options import parse_mapping

    return parse_mapping(pairs, "--where", "model=smollm2-135m")


def _matches(value, wanted: str) -> bool:
    if isinstance(value, bool):
        return wanted.lower() in (("true", "1", "yes", "on") if value else ("false", "0", "no", "off"))
    return (
        str(value) == wanted or json.dumps(value) == wanted or (isinstance(value, (int, float)) and _as_number(wanted) == value)
    )


def _as_number(text: str):
    try:
        return float(text)
    except ValueError:
        return None


def select(runs: list[StoredRun], selection: Selection) -> list[StoredRun]:
    """The runs the selection names. A run lacking a --where setting (pop has no model) is left out."""
    chosen = []
    for run in runs:
        record = run.record
        if selection.methods and record.method not in selection.methods:
            continue
        if selection.name and selection.name not in record.experiments:
            continue
        settings = record.config | record.overrides
        if all(k in settings and _matches(settings[k], v) for k, v in selection.where.items()):
            chosen.append(run)
    return chosen


def current_split(runs: list[StoredRun], dataset: str, split_hash: str | None) -> tuple[str, list[StoredRun]]:
    """The asked-for split, or the split of the most recently created run."""
    if split_hash is None:
        split_hash = max(runs, key=lambda r: (r.record.created_at or "", r.record.split_hash)).record.split_hash
    chosen = [r for r in runs if r.record.split_hash == split_hash]
    if not chosen:
        known = ", ".join(sorted({r.record.split_hash for r in runs}))
        raise BenchError(f"No stored runs for dataset '{dataset}' on split '{split_hash}'; stored splits: {known}.")
    return split_hash, chosen


NUMBER = re.compile(r"(\d+(?:\.\d+)?)([kKmM]?)(?![A-Za-z])")  # 128, 0.5, 1k, 2M
SCALE = {"": 1, "k": 1_000, "m": 1_000_000}


def natural_key(name: str) -> tuple:
    """Experiment names in the order a reader expects: digits compared as numbers, with a k or M
    suffix as thousands or millions (smollm2-128, smollm2-512, smollm2-1k)."""
    parts, at = [], 0
    for match in NUMBER.finditer(name):
        parts.append((1, name[at : match.start()].lower()))
        parts.append((0, float(match.group(1)) * SCALE[match.group(2).lower()]))
        at = match.end()
    parts.append((1, name[at:].lower()))
    return tuple(parts), name


def experiment_groups(runs: list[StoredRun], name: str | None) -> list[tuple[str | None, list[StoredRun]]]:
    """(experiment, runs): the one asked for, or every experiment (runs without a name first, then
    names in natural order; a run asked for under two names is in both)."""
    if name is not None:
        return [(name, runs)]
    groups: dict[str | None, list[StoredRun]] = defaultdict(list)
    for run in runs:
        for experiment in run.record.experiments or [None]:
            groups[experiment].append(run)
    return sorted(groups.items(), key=lambda kv: (kv[0] is not None, natural_key(kv[0] or "")))


def test_choice(record: RunRecord) -> SampleChoice:
    """The test samples a stored run scored (runs stored before random subsets used the first n)."""
    return SampleChoice.from_record(record.limit_test, record.test_subset)


def evaluation_sets(runs: list[StoredRun]) -> list[tuple[tuple[SampleChoice, int], list[StoredRun]]]:
    """Runs grouped by the test samples they scored (all, the first n, n random with a seed): the
    full test set first, then larger sets first."""
    groups: dict[tuple, list[StoredRun]] = defaultdict(list)
    for run in runs:
        if run.record.n_test > 0:  # an empty evaluation has nothing to show or compare
            groups[(test_choice(run.record), run.record.n_test)].append(run)
    return sorted(groups.items(), key=lambda kv: (kv[0][0].limit is not None, -kv[0][1], kv[0][0].mode, kv[0][0].seed))


def valid_score(runs: list[StoredRun], metric: str) -> float | None:
    """Mean over seeds of a configuration's validation metric; None when a seed was not scored."""
    values = [r.record.valid.metrics.get(metric) if r.record.valid else None for r in runs]
    return None if any(v is None for v in values) else float(sum(values) / len(values))


def choose_on_valid(configs: list[list[StoredRun]], metric: str) -> tuple[list[list[StoredRun]], dict[str, dict], list[str]]:
    """For each method, the configuration with the best validation `metric` (ties: the first in
    config-key order). Returns the chosen configurations, per chosen config_key the settings that
    varied among its method's candidates (the row's label names them), and one note per method."""
    by_method: dict[str, list[list[StoredRun]]] = defaultdict(list)
    for group in configs:
        by_method[group[0].record.method].append(group)
    chosen, varied, notes = [], {}, []
    for method, candidates in by_method.items():
        if len(candidates) == 1:
            chosen.append(candidates[0])
            continue
        scores = [valid_score(c, metric) for c in candidates]
        if any(v is None for v in scores):
            raise BenchError(
                f"{sum(v is None for v in scores)} of the {len(candidates)} configurations of '{method}' have no validation "
                "scores; run them again with --valid (a --grid scores validation by default) to choose on validation."
            )
        subsets = {json.dumps(c[0].record.valid.subset, sort_keys=True) for c in candidates}
        if len(subsets) > 1:
            raise BenchError(
                f"The configurations of '{method}' were scored on different validation samples; "
                "run them again with the same --limit-valid and --subset-seed."
            )
        order = sorted(range(len(candidates)), key=lambda k: (-scores[k], candidates[k][0].record.config_key or ""))
        best = candidates[order[0]]
        configs_of = [c[0].record.config | c[0].record.overrides for c in candidates]
        keys = sorted({k for cfg in configs_of for k in cfg})
        differing = [k for k in keys if len({json.dumps(cfg.get(k), sort_keys=True) for cfg in configs_of}) > 1]
        best_config = configs_of[order[0]]
        varied[best[0].record.config_key or best[0].key] = {k: best_config.get(k) for k in differing}
        chosen.append(best)
        notes.append(f"{method}: best of {len(candidates)} configurations on validation {metric} ({scores[order[0]]:.4f}).")
    return chosen, varied, notes


def config_groups(runs: list[StoredRun]) -> list[list[StoredRun]]:
    """Runs of one config_key, one per seed (the newest when a seed was stored twice)."""
    by_config: dict[str, dict[int, StoredRun]] = defaultdict(dict)
    for run in sorted(runs, key=lambda r: r.record.created_at or ""):
        config_key = run.record.config_key or run.key
        by_config[config_key][run.record.seed] = run
    return [[seeds[s] for s in sorted(seeds)] for seeds in by_config.values()]
