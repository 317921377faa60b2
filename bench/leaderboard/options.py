"""How the leaderboard and the report are asked for, as one validated object.

The CLI reads `bench leaderboard` and `bench report` options into a `LeaderboardOptions` once;
`build_leaderboards(dataset, options, store=...)`, `leaderboard_command` and the report take it
whole. Every mistake a user can make in it is one sentence, raised when the object is made, so
nothing is computed before it is known to be valid:

    bench leaderboard --metrics NDCG@10,HR@10 --baseline sasrec --pairs baseline --beyond 10
        -> LeaderboardOptions.from_options(metrics="NDCG@10,HR@10", baseline="sasrec", ...)
        -> LeaderboardOptions(metrics=("NDCG@10", "HR@10"), baseline="sasrec", pairs="baseline", beyond=10, ...)

A new option is a new field here (with its check in `_check`) and, when the CLI offers it, a new
typer option in bench/cli/board.py; no other signature changes. `dataclasses.replace(options,
field=value)` makes a changed copy, checked again.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import BenchError
from bench.leaderboard.select import Selection, parse_where
from bench.options import split_list
from bench.store import TOP_N, check_experiment_name

DEFAULT_METRICS = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
FORMATS = ("md", "tex", "csv", "json")
PAIRS = ("all", "baseline")
SELECT_ON = ("valid",)
# what `bench report` shows beside the tables unless told otherwise (power: in "About the numbers")
REPORT = {"cost": True, "history": True, "beyond": 10, "power": True}


@dataclass(frozen=True)
class LeaderboardOptions:
    """What the tables show and how they are tested; `formats` and `out_dir` say where the
    files go (read by the write step only; out_dir None: the command's default folder)."""

    metrics: tuple[str, ...] = DEFAULT_METRICS  # columns, as written (case-insensitive); kept upper-case
    test: str = "t"  # bench.stats.TESTS
    correction: str = "holm"  # bench.stats.CORRECTIONS
    alpha: float = 0.05
    baseline: str | None = None  # a row's label (short or full): intervals of every row's difference to it
    pairs: str = "all"  # the family one correction covers: every pair of rows, or each row against the baseline
    seed: int = 0  # of the randomisation test and every bootstrap
    n_resamples: int = 10_000  # of the randomisation test and the bootstrap intervals
    selection: Selection = field(default_factory=Selection)  # which runs: methods, settings, experiment, split
    select_on: str | None = None  # "valid": one row per method, its configuration chosen on validation
    select_metric: str = "NDCG@10"
    all_configs: bool = False  # with select_on, also the table of every configuration
    cost: bool = False  # show what each row cost
    history: bool = False  # show the metric with the history removed, shuffled or cut
    beyond: int | None = None  # K of the beyond-accuracy metrics; None: not shown
    beyond_resamples: int = 1000  # list-level metrics are recomputed per resample: 1,000 keeps a table fast
    power: bool = False  # each tested pair's minimum detectable effect (bench.power)
    target_effect: float | None = None  # with power: the test samples a difference of this size needs
    references: tuple = ()  # bench.experiment.Reference: published values shown beside the rows they name
    formats: tuple[str, ...] = FORMATS
    out_dir: Path | None = None

    def __post_init__(self):
        _check(self)

    @classmethod
    def from_options(
        cls,
        metrics: str = ",".join(DEFAULT_METRICS),
        methods: str | None = None,
        where: list[str] = (),
        name: str | None = None,
        formats: str = ",".join(FORMATS),
        **fields,
    ) -> LeaderboardOptions:
        """The options as the CLI reads them: comma-separated texts and setting=value pairs."""
        selection = Selection(
            methods=tuple(split_list(methods or "")),
            where=parse_where(list(where)),
            name=check_experiment_name(name) if name is not None else None,
        )
        return cls(metrics=tuple(split_list(metrics)), selection=selection, formats=tuple(split_list(formats)), **fields)

    @classmethod
    def for_report(cls, **fields) -> LeaderboardOptions:
        """The options of `bench report`: cost, history and beyond-accuracy @10 shown unless told otherwise."""
        return cls(**(REPORT | fields))

    def file_stem(self, dataset: str) -> str:
        """<dataset>, or <dataset>-<experiment> for one experiment's tables."""
        return f"{dataset}-{self.selection.name}" if self.selection.name else dataset

    def describe(self) -> list[tuple[str, str]]:
        """(name, text) of what a reader of the tables needs to know about how they were made."""
        from bench import stats

        facts = [("Test", f"{stats.TESTS[self.test]}, {stats.CORRECTIONS[self.correction]}, p < {self.alpha:g}")]
        facts += [("Baseline", self.baseline)] if self.baseline else []
        facts += [("Selection", self.selection.describe())] if not self.selection.empty else []
        facts += [("Chosen on", f"validation {self.select_metric}")] if self.select_on else []
        facts += [("Target effect", f"{self.target_effect:g}")] if self.target_effect is not None else []
        return facts


def _set(options: LeaderboardOptions, name: str, value) -> None:
    object.__setattr__(options, name, value)  # normalising a frozen object while it is made


def _whole(value, least: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def _check(o: LeaderboardOptions) -> None:
    """Each mistake one sentence; names are normalised (metrics upper-case, duplicates dropped)."""
    from bench import stats
    from bench.evaluate import metric_names

    known = metric_names()
    for name in ("metrics", "formats"):  # "NDCG@10,HR@10" as well as ("NDCG@10", "HR@10")
        if isinstance(getattr(o, name), str):
            _set(o, name, tuple(split_list(getattr(o, name))))
    metrics = tuple(dict.fromkeys(m.strip().upper() for m in o.metrics))
    if not metrics:
        raise BenchError("--metrics names no metric; give at least one, e.g. --metrics NDCG@10,HR@10.")
    unknown = [name for name in o.metrics if name.strip().upper() not in known]
    if unknown:
        raise BenchError(f"Unknown metric '{unknown[0]}'; choose from {', '.join(known)}.")
    _set(o, "metrics", metrics)
    if o.test not in stats.TESTS:
        raise BenchError(f"Unknown test '{o.test}'; choose one of {', '.join(stats.TESTS)}.")
    if o.correction not in stats.CORRECTIONS:
        raise BenchError(f"Unknown correction '{o.correction}'; choose one of {', '.join(stats.CORRECTIONS)}.")
    if isinstance(o.alpha, bool) or not isinstance(o.alpha, numbers.Real) or not 0.0 < o.alpha < 1.0:
        raise BenchError(f"The p threshold alpha must lie strictly between 0 and 1, not {o.alpha}.")
    if o.pairs not in PAIRS:
        raise BenchError(
            f"Unknown family of tests '{o.pairs}'; choose all (every pair) or baseline (each row against --baseline)."
        )
    if o.pairs == "baseline" and o.baseline is None:
        raise BenchError("--pairs baseline compares each row with the baseline; name it with --baseline.")
    if not _whole(o.seed, 0):
        raise BenchError(f"--seed must be a whole number from 0, not {o.seed}.")
    for name in ("n_resamples", "beyond_resamples"):
        if not _whole(getattr(o, name), 1):
            raise BenchError(f"{name} must be a whole number of resamples from 1, not {getattr(o, name)}.")
    if o.select_on is not None and o.select_on not in SELECT_ON:
        raise BenchError(f"Configurations can be chosen on valid only, not '{o.select_on}' (never on test).")
    if o.select_metric.upper() not in known:
        raise BenchError(f"Unknown metric '{o.select_metric}' to choose on; choose from {', '.join(known)}.")
    _set(o, "select_metric", o.select_metric.upper())
    if o.beyond is not None and not (_whole(o.beyond, 1) and o.beyond <= TOP_N):
        raise BenchError(
            f"--beyond must be a list length from 1 to {TOP_N}, since each run stores its top {TOP_N} items only, not {o.beyond}."
        )
    _check_power(o)
    formats = tuple(dict.fromkeys(o.formats))
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BenchError(f"Unknown output format '{bad[0]}'; choose from {', '.join(FORMATS)}.")
    _set(o, "formats", formats)
    if o.out_dir is not None:
        _set(o, "out_dir", Path(o.out_dir))


def _check_power(o: LeaderboardOptions) -> None:
    from bench.experiment import Reference

    effect = o.target_effect
    if effect is not None:
        if isinstance(effect, bool) or not isinstance(effect, numbers.Real) or not 0.0 < effect < 1.0:
            raise BenchError(
                f"--target-effect is a difference of metric means, strictly between 0 and 1 (e.g. 0.01), not {effect}."
            )
        _set(o, "power", True)  # asking how many samples an effect needs asks for the power table
    _set(o, "references", tuple(o.references))
    if not all(isinstance(r, Reference) for r in o.references):
        raise BenchError("Published values come from an experiment file's [[references]]; give them with --experiment.")
