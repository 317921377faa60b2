"""What a leaderboard is, as plain records: rows of cells, the pairwise comparisons behind their
letters, and the settings that describe the table. Built by compare.py, laid out as sections by
sections.py (which the terminal, Markdown, LaTeX and HTML renderers show), reloaded from JSON by
export.py."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench import stats

CI_CONFIDENCE = 0.95


@dataclass
class Interval:
    """Paired bootstrap interval of mean(row - baseline)."""

    diff: float
    low: float
    high: float


@dataclass
class Cell:
    mean: float  # mean over seeds of the per-seed metric
    std: float | None  # sample standard deviation over seeds (ddof=1); None with one seed
    wins: list[str] = field(default_factory=list)  # letters of the rows this cell beats
    best: bool = False
    vs_baseline: Interval | None = None


@dataclass
class Row:
    letter: str
    label: str
    method: str
    config_key: str
    overrides: dict
    seeds: list[int]
    run_keys: list[str]
    cells: dict[str, Cell]
    cost: dict = field(default_factory=dict)  # what the row cost: times, memory, parameters (see cells.COST)


@dataclass
class Comparison:
    metric: str
    a: str  # letters of the two rows
    b: str
    p: float
    p_adjusted: float
    winner: str | None


@dataclass
class Leaderboard:
    dataset: str
    split_hash: str
    limit_test: int | None
    n_samples: int
    metrics: list[str]
    test: str
    correction: str
    alpha: float
    seed: int
    n_resamples: int
    baseline: str | None
    rows: list[Row]
    comparisons: list[Comparison]
    shared: dict = field(default_factory=dict)  # overrides every row having the setting shares, left out of the labels
    experiment: str | None = None  # the `bench run --name` the rows were run under; None: runs without a name
    test_subset: dict | None = None  # how limited test samples were drawn: {"limit", "mode", "seed"}; None: all
    view: str = ""  # "" (every configuration), or how the rows were chosen ("chosen on validation NDCG@10")
    notes: list[str] = field(default_factory=list)  # what the reader must know about the rows (choices made)
    pairs: str = "all"  # the family of tests: every pair of rows, or each row against the baseline
    show_cost: bool = False  # show what each row cost beside its quality
    history: list[dict] = field(default_factory=list)  # per row: the metric with the history changed (analyses.history_rows)
    history_metric: str = ""
    beyond: list[dict] = field(default_factory=list)  # per row: beyond-accuracy metrics of the top-K lists (analyses.beyond_rows)
    published: list[dict] = field(
        default_factory=list
    )  # per row and reference: ours beside the published value (analyses.published_rows)
    published_notes: list[str] = field(default_factory=list)  # references that name no single row of this table
    power: list[dict] = field(default_factory=list)  # per tested pair and metric: minimum detectable effect (analyses.power_rows)
    power_note: str = ""  # how the minimum detectable effects were found (bench.power.power_note); why none, when none
    target_effect: float | None = None  # the effect whose needed test samples the power rows give

    @property
    def samples_text(self) -> str:
        if not self.test_subset:
            return f"{self.n_samples:,} test samples"
        if self.test_subset.get("mode") == "random":
            return f"{self.n_samples:,} random test samples (seed {self.test_subset.get('seed', 0)})"
        return f"the first {self.n_samples:,} test samples"

    @property
    def title(self) -> str:
        name = f" · {self.experiment}" if self.experiment else ""
        view = f", {self.view}" if self.view else ""
        return f"{self.dataset}{name}: {self.samples_text}{view}"

    @property
    def settings_line(self) -> str:
        """What every row shares, said once instead of in every label."""
        if not self.shared:
            return ""
        return "Every row with these settings: " + ", ".join(f"{k}={v}" for k, v in sorted(self.shared.items())) + "."

    @property
    def significance_line(self) -> str:
        counts = sorted({len(r.seeds) for r in self.rows})
        if counts == [1]:
            seeds = "one seed per row"
        elif len(counts) == 1:
            seeds = f"mean ± std over {counts[0]} seeds"
        else:
            seeds = f"mean ± std over {counts[0]} to {counts[-1]} seeds"
        n = len(self.rows) - 1
        family = f" over the {n} comparison{'s' * (n != 1)} with {self.baseline_label}" if self.pairs == "baseline" else ""
        return (
            f"Superscript letters mark significant wins ({stats.TESTS[self.test]}, "
            f"{stats.CORRECTIONS[self.correction]}{family}, p < {self.alpha:g}) over the row with that letter; "
            f"{seeds}; {self.samples_text}."
        )

    @property
    def caption(self) -> str:
        return " ".join(filter(None, [self.significance_line, self.settings_line, *self.notes]))

    def row(self, label: str) -> Row:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)

    @property
    def baseline_label(self) -> str | None:
        """The baseline's label in this table (the user may have named it by its full label)."""
        from bench.labels import baseline_row

        row = baseline_row(self, self.baseline) if self.baseline else None
        return row.label if row is not None else self.baseline

    def has_intervals(self) -> bool:
        return any(c.vs_baseline is not None for r in self.rows for c in r.cells.values())

    def to_dict(self) -> dict:
        return dict(asdict(self), title=self.title, caption=self.caption)

    @classmethod
    def from_dict(cls, data: dict) -> Leaderboard:
        data = {k: v for k, v in data.items() if k not in ("title", "caption")}
        data["rows"] = [_row_from_dict(r) for r in data["rows"]]
        data["comparisons"] = [Comparison(**c) for c in data["comparisons"]]
        return cls(**data)


def _row_from_dict(data: dict) -> Row:
    cells = {}
    for metric, c in data["cells"].items():
        interval = Interval(**c["vs_baseline"]) if c.get("vs_baseline") else None
        cells[metric] = Cell(**dict(c, vs_baseline=interval))
    return Row(**dict(data, cells=cells))
