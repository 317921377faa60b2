"""What `bench run` is asked to do, as one validated object.

The CLI reads its options into a `RunRequest` once; `run_benchmark` runs it here, and an executor
splits it into one request per (method configuration, seed) and hands each to a job as the
arguments `to_argv()` writes, which the job's CLI reads back into an equal request:

    bench run --methods cft,pop --grid cft.alpha=0.1,0.2 --seeds 0,1
        -> RunRequest(methods=("cft", "pop"), grid={"cft": {"alpha": [...]}}, seeds=(0, 1), ...)
        -> .plan()            three configurations (cft alpha 0.1, cft alpha 0.2, pop)
        -> .for_job(p, seed)  six requests of one configuration and one seed each
        -> .to_argv()         ["--methods", "cft", "--seeds", "0", "--set", "cft.alpha=0.1", ...]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bench.errors import BenchError
from bench.history import check_conditions
from bench.options import parse_mapping, split_list
from bench.plan import ALL
from bench.store import check_experiment_name, run_key
from bench.subsets import SampleChoice

BUSY = ("wait", "skip")


@dataclass(frozen=True)
class Evaluation:
    """What a run scores: test samples (all, or a subset for smoke runs), and optionally the
    validation split (per sample, stored beside the test results; used to choose configurations)."""

    test: SampleChoice = SampleChoice()
    valid: SampleChoice | None = None  # None: the validation split is not scored
    history: tuple[str, ...] = ()  # conditions the test samples are evaluated again under (bench.history)

    def __post_init__(self):
        object.__setattr__(self, "history", check_conditions(list(self.history)))

    def key(self, p, split_hash: str, seed: int) -> str:
        return run_key(p.name, p.cls.version, p.key_config, split_hash, seed, self.test.limit, self.test.tag)

    def valid_done(self, stored) -> bool:
        """Whether a stored run already holds the validation scores and history conditions asked for."""
        valid = self.valid is None or (stored.has_valid and stored.record.valid.subset == self.valid.as_record())
        return valid and all(stored.has_part(f"history_{c}") for c in self.history)

    def to_argv(self) -> list[str]:
        test = self.test
        argv = ["--test-subset", test.mode, "--subset-seed", str(test.seed)]
        argv += ["--limit-test", str(test.limit)] if test.limit is not None else []
        argv += ["--valid"] if self.valid is not None else ["--no-valid"]
        if self.valid is not None and self.valid.limit is not None:
            argv += ["--limit-valid", str(self.valid.limit)]
        return argv + (["--history", ",".join(self.history)] if self.history else [])


@dataclass(frozen=True)
class RunRequest:
    """Methods (with --set overrides and --grid axes), a dataset, seeds, what is scored, and how
    stored runs are treated. Validated when made: a mistake is one sentence before anything runs."""

    methods: tuple[str, ...]
    dataset: str = "ml-100k"
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    overrides: dict = field(default_factory=dict)  # {method or "*": {field: text}}
    grid: dict = field(default_factory=dict)  # {method or "*": {field: [texts]}}
    evaluation: Evaluation = Evaluation()
    force: bool = False
    busy: str = "wait"
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        if not self.methods:
            raise BenchError("--methods names no method; give at least one, e.g. --methods pop,sasrec.")
        if not self.seeds:
            raise BenchError("--seeds names no seed; give at least one, e.g. --seeds 0 or --seeds 0,1,2.")
        bad = [s for s in self.seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad:
            raise BenchError(f"--seeds holds {bad[0]!r}; seeds are whole numbers from 0, e.g. --seeds 0,1,2.")
        if self.busy not in BUSY:
            raise BenchError(
                f"Unknown --busy '{self.busy}'; choose wait (for the other process) or skip (go on with other runs)."
            )
        if self.name is not None:
            check_experiment_name(self.name)

    @classmethod
    def from_options(
        cls,
        methods: str,
        seeds: str = "0",
        sets: list[str] = (),
        grid: list[str] = (),
        model: str | None = None,
        limit_test: int | None = None,
        test_subset: str = "random",
        subset_seed: int = 0,
        valid: bool | None = None,
        limit_valid: int | None = None,
        history: str | None = None,
        **fields,
    ) -> RunRequest:
        """The request of `bench run`'s options as typed (texts, lists of key=value texts)."""
        from bench.plan import parse_grid
        from bench.registry import parse_overrides

        try:
            seed_list = [int(s) for s in split_list(seeds)]
        except ValueError:
            raise BenchError(f"--seeds '{seeds}' is not a list of integers; write e.g. --seeds 0,1,2.") from None
        overrides = parse_overrides(list(sets))
        if model is not None:
            overrides.setdefault(ALL, {})["model"] = model
        grid_points = parse_grid(list(grid))
        score_valid = bool(grid_points) if valid is None else valid
        if limit_valid is not None and not score_valid:
            raise BenchError("--limit-valid needs validation scoring; add --valid (or a --grid).")
        if history is not None and not split_list(history):
            raise BenchError("--history names no condition; give some of none,shuffled,last, or leave the option out.")
        evaluation = Evaluation(
            test=SampleChoice(limit_test, test_subset, subset_seed),
            valid=SampleChoice(limit_valid, "random", subset_seed) if score_valid else None,
            history=tuple(split_list(history or "")),
        )
        return cls(split_list(methods), seeds=seed_list, overrides=overrides, grid=grid_points, evaluation=evaluation, **fields)

    def plan(self):
        """One Planned per (method, grid point), in the order of --methods then of the grid values."""
        from bench.plan import plan_methods

        return plan_methods(list(self.methods), self.overrides, self.grid)

    def for_job(self, p, seed: int) -> RunRequest:
        """The request of one planned configuration and one seed: what one job runs."""
        return dataclasses.replace(self, methods=(p.name,), seeds=(seed,), overrides={p.name: _texts(p.overrides)}, grid={})

    def to_argv(self) -> list[str]:
        """`bench run` arguments that read back (from_options) to an equal request."""
        argv = ["--methods", ",".join(self.methods), "--dataset", self.dataset, "--seeds", ",".join(map(str, self.seeds))]
        argv += ["--device", self.device, *self.evaluation.to_argv(), "--busy", self.busy]
        for method, values in self.overrides.items():
            argv += [x for f, v in values.items() for x in ("--set", f"{method}.{f}={v}")]
        for method, axes in self.grid.items():
            argv += [x for f, vs in axes.items() for x in ("--grid", f"{method}.{f}={','.join(vs)}")]
        argv += ["--name", self.name] if self.name else []
        return argv + (["--force"] if self.force else [])


def _texts(overrides: dict) -> dict[str, str]:
    """A configuration's settings written back as `--set` texts that read back to the same values."""

    def text(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if v is None:
            return "none"
        if isinstance(v, (list, tuple)):
            return ",".join(map(str, v))
        return str(v)

    return {k: text(v) for k, v in sorted(overrides.items())}


def parse_sbatch(items: list[str]) -> dict[str, str]:
    return parse_mapping(items, "--sbatch", "account=abc")
