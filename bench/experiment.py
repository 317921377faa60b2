"""Experiment files: one small TOML file in `experiments/` says what a paper's table is made of,
so that `bench run --experiment FILE` runs what is missing and `bench leaderboard --experiment FILE`
and `bench report --experiment FILE` build its tables.

    name = "make-run"                          every run is stored under this name (bench run --name)
    description = "..."                        one paragraph, printed above the tables
    datasets = ["ml-100k"]                     dataset cards (bench data list)
    methods = ["pop", "sasrec", "cft"]         registered methods (bench methods)
    seeds = [0]
    model = "tiny"                             --model: the backbone of every LLM method
    [set.sasrec]                               --set sasrec.epochs=3 ...
    epochs = 3
    [set."*"]                                  --set '*.field=value': every method that has the field
    [grid.cft]                                 --grid cft.alpha=0.05,0.1 ...
    alpha = [0.05, 0.1]
    [test]       limit, subset ("random" or "first"), subset_seed (also the validation subset's seed)
    [valid]      score (true/false; on by default with a grid or select_on), limit
    [leaderboard] metrics, test, correction, alpha, baseline, pairs, select_on, select_metric, all_configs, seed,
                 power (true: each comparison's minimum detectable effect under the tables)
    [executor]   device, executor, jobs, partition, gpus_per_job, time (minutes), cpus_per_job, sbatch
    [[references]] row, dataset, values = {"NDCG@10" = 0.053}, source, table, doi, url

`load(path)` checks the file against the project's own vocabularies (method names and settings
from the registry, dataset cards, metrics, tests and corrections) and reports every mistake at
once, one sentence each with its line number. `Experiment.runs()` gives, per dataset, what one
`bench run` needs; `Experiment.table_options()` what `bench leaderboard` needs.

Nothing heavy is imported here: checking a file imports the method classes' modules (no torch)
and bench.stats (scipy) only when `load` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from bench.describe import default_text
from bench.errors import BenchError
from bench.subsets import SampleChoice

ALL = "*"  # as in `--set '*.field=value'` (bench.plan.ALL)


@dataclass(frozen=True)
class ExecutorHints:
    """How the runs may be executed; the options of `bench run` with the same names."""

    device: str = "auto"
    executor: str | None = None  # None: in this process; "local" or "slurm": one job per run
    jobs: int = 1
    partition: str | None = None
    gpus_per_job: int = 0
    time_min: int = 240
    cpus_per_job: int | None = None
    sbatch: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TableOptions:
    """The options of `bench leaderboard` (and `bench report`) an experiment fixes."""

    metrics: tuple[str, ...] = ("NDCG@10", "HR@10", "NDCG@20", "HR@20")
    test: str = "t"
    correction: str = "holm"
    alpha: float = 0.05
    baseline: str | None = None
    pairs: str = "all"
    select_on: str | None = None
    select_metric: str = "NDCG@10"
    all_configs: bool = False
    seed: int = 0
    power: bool = False  # show each comparison's minimum detectable effect (bench leaderboard --power)

    def as_kwargs(self) -> dict[str, Any]:
        """The fields of bench.leaderboard.options.LeaderboardOptions the experiment fixes, to feed
        `LeaderboardOptions(**table.as_kwargs())` (or `dataclasses.replace` of the command's options);
        the experiment's name and methods select its runs (LeaderboardOptions.selection)."""
        return {
            "metrics": tuple(self.metrics),
            "test": self.test,
            "correction": self.correction,
            "alpha": self.alpha,
            "baseline": self.baseline,
            "pairs": self.pairs,
            "select_on": self.select_on,
            "select_metric": self.select_metric,
            "all_configs": self.all_configs,
            "seed": self.seed,
            "power": self.power,
        }


@dataclass(frozen=True)
class Reference:
    """A published value of one metric for one row on one dataset, with where it was published."""

    row: str  # a method name or a full row label, matched as `--baseline` is
    dataset: str
    metric: str
    value: float
    source: str  # who published it, and where: paper, repository
    table: str = ""  # which table or section of the source
    doi: str = ""
    url: str = ""

    def citation(self) -> str:
        where = ", ".join(part for part in (self.table, f"doi:{self.doi}" if self.doi else "", self.url) if part)
        return f"{self.source} ({where})" if where else self.source


@dataclass(frozen=True)
class RunSpec:
    """What one `bench run` of the experiment needs, for one dataset.

    `overrides` and `grid` are keyed "method.field" (or "*.field") with values as typed in the file;
    `set_args()` and `grid_args()` write them as the CLI's `--set` and `--grid` texts, so that
    bench.registry.parse_overrides and bench.plan.parse_grid read them exactly as on a command line
    and the run keys are those of the equivalent command."""

    dataset: str
    methods: tuple[str, ...]
    overrides: dict[str, Any]
    grid: dict[str, list]
    seeds: tuple[int, ...]
    test: SampleChoice
    valid: SampleChoice | None  # None: the validation split is not scored
    name: str
    executor: ExecutorHints

    def set_args(self) -> list[str]:
        return [f"{key}={default_text(value)}" for key, value in self.overrides.items()]

    def grid_args(self) -> list[str]:
        return [f"{key}={','.join(default_text(v) for v in values)}" for key, values in self.grid.items()]

    def to_request(self, **fields):
        """The bench.request.RunRequest of this run, read from the texts a command line would give
        (so its run keys are the equivalent command's); `fields` are the options the file does not
        fix (force, busy, history) or overrides (device)."""
        from bench.request import RunRequest

        fields.setdefault("device", self.executor.device)
        return RunRequest.from_options(
            ",".join(self.methods), seeds=",".join(map(str, self.seeds)), sets=self.set_args(), grid=self.grid_args(),
            limit_test=self.test.limit, test_subset=self.test.mode, subset_seed=self.test.seed,
            valid=self.valid is not None, limit_valid=self.valid.limit if self.valid is not None else None,
            dataset=self.dataset, name=self.name, **fields,
        )  # fmt: skip

    def cluster(self):
        """The bench.jobs.Cluster of the executor hints (used with executor = "slurm")."""
        from bench.jobs import Cluster

        e = self.executor
        return Cluster(e.partition, e.gpus_per_job, e.time_min, e.cpus_per_job, dict(e.sbatch))

    def command(self) -> str:
        """The equivalent command line, to show (quoted for a POSIX shell)."""
        import shlex

        parts = ["bench", "run", "--methods", ",".join(self.methods), "--dataset", self.dataset]
        parts += ["--seeds", ",".join(map(str, self.seeds)), "--name", self.name]
        if self.test.limit is not None:
            parts += ["--limit-test", str(self.test.limit), "--test-subset", self.test.mode]
        if self.test.seed != 0:  # one --subset-seed for the test and the validation subsets
            parts += ["--subset-seed", str(self.test.seed)]
        if self.valid is not None:
            parts += ["--valid"] + (["--limit-valid", str(self.valid.limit)] if self.valid.limit is not None else [])
        elif self.grid:
            parts += ["--no-valid"]
        for text in self.set_args():
            parts += ["--set", text]
        for text in self.grid_args():
            parts += ["--grid", text]
        if self.executor.device != "auto":
            parts += ["--device", self.executor.device]
        return " ".join(shlex.quote(p) for p in parts)


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str  # one paragraph
    datasets: tuple[str, ...]
    methods: tuple[str, ...]
    settings: dict[str, dict[str, Any]]  # method (or "*") -> field -> value
    grids: dict[str, dict[str, list]]  # method (or "*") -> field -> values
    seeds: tuple[int, ...]
    test_subset: SampleChoice
    valid_subset: SampleChoice | None  # None: validation is not scored
    table: TableOptions
    executor: ExecutorHints = field(default_factory=ExecutorHints)
    references: tuple[Reference, ...] = ()
    path: str = ""

    @property
    def select_on(self) -> str | None:
        return self.table.select_on

    @property
    def baseline(self) -> str | None:
        return self.table.baseline

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.table.metrics

    @property
    def pairs(self) -> str:
        return self.table.pairs

    def run_spec(self, dataset: str) -> RunSpec:
        if dataset not in self.datasets:
            raise BenchError(
                f"Experiment '{self.name}' does not use dataset '{dataset}'; choose one of {', '.join(self.datasets)}."
            )
        overrides = {f"{method}.{name}": value for method, fields in self.settings.items() for name, value in fields.items()}
        grid = {f"{method}.{name}": list(values) for method, fields in self.grids.items() for name, values in fields.items()}
        return RunSpec(
            dataset, self.methods, overrides, grid, self.seeds, self.test_subset, self.valid_subset, self.name, self.executor
        )

    def runs(self) -> list[RunSpec]:
        """One RunSpec per dataset, in the file's order."""
        return [self.run_spec(dataset) for dataset in self.datasets]

    def table_options(self) -> TableOptions:
        return self.table

    def references_for(self, dataset: str) -> list[Reference]:
        return [r for r in self.references if r.dataset == dataset]

    def heading(self) -> str:
        """What is printed above the experiment's tables."""
        return f"Experiment {self.name}: {self.description}"


def load(path: str | Path) -> Experiment:
    """Read and check an experiment file; every mistake is reported at once, with its line."""
    from bench.experiment_checks import check_experiment
    from bench.toml_checks import Mistakes, TomlLines

    path = Path(path)
    if not path.is_file():
        near = sorted(p.name for p in path.parent.glob("*.toml")) if path.parent.is_dir() else []
        hint = f" Files there: {', '.join(near)}." if near else ""
        raise BenchError(
            f"Experiment file {path} does not exist; give the path of a .toml file, e.g. experiments/make-run.toml.{hint}"
        )
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)"
        raise BenchError(f"{path} is not valid TOML: {exc}; fix the file there.") from exc
    mistakes = Mistakes(str(path), TomlLines(text))
    values = check_experiment(raw, mistakes)
    mistakes.raise_if_any()
    return Experiment(**values, path=str(path))
