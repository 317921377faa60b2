"""Checking an experiment file (bench.experiment) against the project's own vocabularies: method
names and settings from the registry, dataset cards, metrics, tests and corrections. Every
mistake is one sentence, collected with its line (bench.toml_checks) and raised together; the
method settings and grids are checked in bench.experiment_settings.
"""

from __future__ import annotations

from typing import Any

from bench.describe import default_text
from bench.errors import BenchError
from bench.experiment_settings import check_grids, check_settings
from bench.leaderboard.options import PAIRS, SELECT_ON  # the choices of `bench leaderboard --pairs` and `--select-on`
from bench.toml_checks import (
    Mistakes,
    expect_choice,
    expect_int,
    expect_table,
    expect_text,
    kind,
    suggestion,
    text_list,
    toml_text,
    unknown_keys,
)


def method_part(label: str) -> str:
    """ "cft[alpha=0.1]" -> "cft": the method a row label names."""
    return label.split("[", 1)[0].strip()


TOP_KEYS = (
    "name", "description", "datasets", "methods", "seeds", "model", "set", "grid", "test", "valid", "leaderboard",
    "executor", "references",
)  # fmt: skip
TEST_KEYS = ("limit", "subset", "subset_seed")
VALID_KEYS = ("score", "limit")
TABLE_KEYS = (
    "metrics", "test", "correction", "alpha", "baseline", "pairs", "select_on", "select_metric", "all_configs", "seed", "power",
)  # fmt: skip
EXECUTOR_KEYS = ("device", "executor", "jobs", "partition", "gpus_per_job", "time", "cpus_per_job", "sbatch")
REFERENCE_KEYS = ("row", "dataset", "values", "source", "table", "doi", "url")


def check_experiment(raw: dict, m: Mistakes) -> dict[str, Any]:
    """The fields of an Experiment read from a parsed file; the mistakes found go to `m`."""
    from bench.experiment import ALL

    unknown_keys(m, (), raw, TOP_KEYS)
    name = _check_name(m, raw.get("name"))
    description = _check_description(m, raw.get("description"))
    datasets = _check_datasets(m, raw.get("datasets"))
    classes = _check_methods(m, raw.get("methods"))
    seeds = _check_seeds(m, raw.get("seeds", [0]))
    settings = check_settings(m, raw, classes, ALL)
    grids = check_grids(
        m, expect_table(m, ("grid",), raw.get("grid"), "[grid.cft] with alpha = [0.05, 0.1]"), classes, settings, ALL
    )
    test = _check_test(m, expect_table(m, ("test",), raw.get("test"), "[test] with limit = 200"))
    table = _check_table(m, expect_table(m, ("leaderboard",), raw.get("leaderboard"), "[leaderboard]"), list(classes))
    valid = _check_valid(m, expect_table(m, ("valid",), raw.get("valid"), "[valid] with score = true"), test, bool(grids), table)
    return {
        "name": name,
        "description": description,
        "datasets": tuple(datasets),
        "methods": tuple(classes),
        "settings": settings,
        "grids": grids,
        "seeds": tuple(seeds),
        "test_subset": test,
        "valid_subset": valid,
        "table": table,
        "executor": _check_executor(m, expect_table(m, ("executor",), raw.get("executor"), '[executor] with device = "cuda"')),
        "references": tuple(_check_references(m, raw.get("references"), list(classes), datasets)),
    }


def _check_name(m: Mistakes, value: Any) -> str | None:
    from bench.store import check_experiment_name

    if value is None:
        m.add(("name",), 'name is missing; every run is stored under it, write e.g. name = "my-experiment".')
        return None
    name = expect_text(m, ("name",), value, 'name = "my-experiment"')
    if name is None:
        return None
    try:
        return check_experiment_name(name)
    except BenchError:
        m.add(("name",), f"name = {toml_text(name)} cannot name runs; give 1 to 64 letters, digits, '.', '_' or '-' starting with a letter or digit.")  # fmt: skip
        return None


def _check_description(m: Mistakes, value: Any) -> str | None:
    if value is None:
        m.add(
            ("description",),
            'description is missing; it is printed above the tables, write e.g. description = "What this shows."',
        )
        return None
    text = expect_text(m, ("description",), value, 'description = "What this experiment shows."')
    if text is None:
        return None
    if "\n\n" in text.strip().replace("\r", ""):
        m.add(("description",), "description must be one paragraph (it is printed above the tables); remove the blank lines.")
    return " ".join(text.split())


def _check_datasets(m: Mistakes, value: Any) -> list[str]:
    from bench.data.cards import list_cards

    known = list_cards()
    names = text_list(m, ("datasets",), value, 'datasets = ["ml-100k"]')
    for name in names:
        if name not in known:
            m.add(("datasets",), f"Unknown dataset '{name}'.{suggestion(name, known)} Known datasets: {', '.join(known)} (`bench data list`).", name)  # fmt: skip
    return [n for n in names if n in known]


def _check_methods(m: Mistakes, value: Any) -> dict[str, type]:
    """{name: method class} of the listed methods that exist and load."""
    from bench import registry

    specs = registry.all_specs()
    classes = {}
    for name in text_list(m, ("methods",), value, 'methods = ["pop", "sasrec"]'):
        if name not in specs:
            m.add(("methods",), f"Unknown method '{name}'.{suggestion(name, specs)} Run `bench methods` to list them.", name)
            continue
        try:
            classes[name] = registry.load_class(name)
        except BenchError as exc:
            m.add(("methods",), str(exc), name)
    return classes


def _check_seeds(m: Mistakes, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        m.add(
            ("seeds",), f"seeds must be a non-empty array of whole numbers, not {toml_text(value)}; write e.g. seeds = [0, 1, 2]."
        )
        return []
    seeds = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            m.add(("seeds",), f"seeds holds {toml_text(item)}, which is not a whole number of at least 0; write e.g. seeds = [0, 1, 2].", item)  # fmt: skip
        elif item in seeds:
            m.add(("seeds",), f"seeds names {item} twice; keep one.", item)
        else:
            seeds.append(item)
    return seeds


def _check_test(m: Mistakes, table: dict):
    from bench.subsets import MODES, SampleChoice

    unknown_keys(m, ("test",), table, TEST_KEYS)
    limit = expect_int(m, ("test", "limit"), table.get("limit"), 1, "limit = 200")
    mode = expect_choice(m, ("test", "subset"), table.get("subset", "random"), MODES)
    seed = expect_int(m, ("test", "subset_seed"), table.get("subset_seed", 0), 0, "subset_seed = 0")
    return SampleChoice(limit, mode or "random", seed or 0)


def _check_valid(m: Mistakes, table: dict, test, has_grid: bool, options):
    from bench.subsets import SampleChoice

    unknown_keys(m, ("valid",), table, VALID_KEYS)
    score = table.get("score")
    if score is not None and not isinstance(score, bool):
        m.add(("valid", "score"), f"valid.score must be true or false, not {toml_text(score)}.")
        score = None
    limit = expect_int(m, ("valid", "limit"), table.get("limit"), 1, "limit = 1000")
    selects = options is not None and options.select_on == "valid"
    if score is False and selects:
        m.add(("valid", "score"), 'valid.score = false, but leaderboard.select_on = "valid" chooses configurations on validation scores; remove one of them.')  # fmt: skip
    if score is False and limit is not None:
        m.add(
            ("valid", "limit"),
            "valid.limit limits a validation split that valid.score = false does not score; remove one of them.",
        )
    scored = score if score is not None else (has_grid or selects)
    return SampleChoice(limit, "random", test.seed) if scored else None


def _check_metric(m: Mistakes, where: tuple, value: Any) -> str | None:
    from bench.evaluate import metric_names

    known = metric_names()
    if not isinstance(value, str) or value.upper() not in known:
        m.add(where, f"Unknown metric {toml_text(value)}.{suggestion(str(value).upper(), known)} Choose from {', '.join(known)}.", value)  # fmt: skip
        return None
    return value.upper()


def _check_table(m: Mistakes, table: dict, methods: list[str]):
    from bench import stats
    from bench.experiment import TableOptions

    unknown_keys(m, ("leaderboard",), table, TABLE_KEYS)
    where = ("leaderboard",)
    metrics = table.get("metrics", list(TableOptions.metrics))
    if not isinstance(metrics, list) or not metrics:
        m.add(where + ("metrics",), f"leaderboard.metrics must be a non-empty array, not {toml_text(metrics)}; write e.g. metrics = [\"NDCG@10\", \"HR@10\"].")  # fmt: skip
        metrics = []
    chosen = list(dict.fromkeys(c for c in (_check_metric(m, where + ("metrics",), v) for v in metrics) if c))
    alpha = table.get("alpha", 0.05)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 < alpha < 1.0:
        m.add(where + ("alpha",), f"leaderboard.alpha must be a number strictly between 0 and 1, not {toml_text(alpha)}; write e.g. alpha = 0.05.")  # fmt: skip
        alpha = 0.05
    baseline = expect_text(m, where + ("baseline",), table.get("baseline"), 'baseline = "sasrec"')
    if baseline is not None and method_part(baseline) not in methods:
        m.add(where + ("baseline",), f"leaderboard.baseline {toml_text(baseline)} names no listed method; choose one of {', '.join(methods)}.")  # fmt: skip
    pairs = expect_choice(m, where + ("pairs",), table.get("pairs", "all"), PAIRS) or "all"
    if pairs == "baseline" and baseline is None:
        m.add(
            where + ("pairs",),
            'leaderboard.pairs = "baseline" compares each row with the baseline; name it with baseline = "METHOD".',
        )
    select_metric = _check_metric(m, where + ("select_metric",), table.get("select_metric", "NDCG@10"))
    flags = {}
    for key in ("all_configs", "power"):
        flags[key] = table.get(key, False)
        if not isinstance(flags[key], bool):
            m.add(where + (key,), f"leaderboard.{key} must be true or false, not {toml_text(flags[key])}.")
    return TableOptions(
        metrics=tuple(chosen),
        test=expect_choice(m, where + ("test",), table.get("test", "t"), tuple(stats.TESTS)) or "t",
        correction=expect_choice(m, where + ("correction",), table.get("correction", "holm"), tuple(stats.CORRECTIONS)) or "holm",
        alpha=float(alpha),
        baseline=baseline,
        pairs=pairs,
        select_on=expect_choice(m, where + ("select_on",), table.get("select_on"), SELECT_ON),
        select_metric=select_metric or "NDCG@10",
        all_configs=flags["all_configs"] is True,
        seed=expect_int(m, where + ("seed",), table.get("seed", 0), 0, "seed = 0") or 0,
        power=flags["power"] is True,
    )


def _check_executor(m: Mistakes, table: dict):
    import re

    from bench.experiment import ExecutorHints
    from bench.jobs import EXECUTORS

    unknown_keys(m, ("executor",), table, EXECUTOR_KEYS)
    where = ("executor",)
    device = table.get("device", "auto")
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", device):
        m.add(where + ("device",), f"executor.device = {toml_text(device)} is not a device; write auto, cpu, cuda or cuda:N.")
        device = "auto"
    sbatch = expect_table(m, where + ("sbatch",), table.get("sbatch"), '[executor.sbatch] with account = "abc"')
    for key, value in sbatch.items():
        if isinstance(value, (dict, list)):
            m.add(where + ("sbatch", key), f"executor.sbatch.{key} must be one value, not {kind(value)}.")
    return ExecutorHints(
        device=device,
        executor=expect_choice(m, where + ("executor",), table.get("executor"), EXECUTORS),
        jobs=expect_int(m, where + ("jobs",), table.get("jobs", 1), 1, "jobs = 4") or 1,
        partition=expect_text(m, where + ("partition",), table.get("partition"), 'partition = "gpu"'),
        gpus_per_job=expect_int(m, where + ("gpus_per_job",), table.get("gpus_per_job", 0), 0, "gpus_per_job = 1") or 0,
        time_min=expect_int(m, where + ("time",), table.get("time", 240), 1, "time = 240") or 240,
        cpus_per_job=expect_int(m, where + ("cpus_per_job",), table.get("cpus_per_job"), 1, "cpus_per_job = 8"),
        sbatch={k: default_text(v) for k, v in sbatch.items() if not isinstance(v, (dict, list))},
    )


def _check_references(m: Mistakes, value: Any, methods: list[str], datasets: list[str]) -> list:
    from bench.experiment import Reference

    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        m.add(("references",), "references must be written as [[references]] tables, one per row and dataset.")
        return []
    found = []
    for index, entry in enumerate(value):
        where = ("references", index)
        unknown_keys(m, where, entry, REFERENCE_KEYS)
        row = expect_text(m, where + ("row",), entry.get("row", ""), 'row = "cft"')
        if row is not None and method_part(row) not in methods:
            m.add(
                where + ("row",), f"references row {toml_text(row)} names no listed method; choose one of {', '.join(methods)}."
            )
        dataset = expect_choice(m, where + ("dataset",), entry.get("dataset"), tuple(datasets))
        source = expect_text(m, where + ("source",), entry.get("source", ""), 'source = "Author et al. 2024, Title"')
        extra = {k: expect_text(m, where + (k,), entry.get(k), f'{k} = "..."') or "" for k in ("table", "doi", "url")}
        if not (extra["doi"] or extra["url"]):
            m.add(where, 'A reference needs a doi or a url saying where the value was published; add doi = "..." or url = "...".')
        values = expect_table(m, where + ("values",), entry.get("values"), '{ "NDCG@10" = 0.05 }')
        if entry.get("values") in (None, {}):
            m.add(
                where + ("values",),
                'A reference needs its published values, e.g. values = { "NDCG@10" = 0.053, "HR@10" = 0.096 }.',
            )
        for metric, number in values.items():
            name = _check_metric(m, where + ("values", metric), metric)
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0.0 <= number <= 1.0:
                m.add(
                    where + ("values", metric),
                    f"The published {metric} must be a number between 0 and 1, not {toml_text(number)}.",
                )
            elif name and row and dataset and source:
                found.append(Reference(row, dataset, name, float(number), source, **extra))
    return found
