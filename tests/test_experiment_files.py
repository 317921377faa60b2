"""Experiment files (bench.experiment): the shipped files encode what they claim, every mistake in a
file is one sentence with its line, and a published value is compared with our interval."""

from __future__ import annotations

import argparse
import math
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bench import experiment
from bench.errors import BenchError
from bench.experiment_checks import PAIRS, SELECT_ON
from bench.plan import parse_grid, plan_methods
from bench.published import compare_with_published, reproduce, t_interval
from bench.registry import parse_overrides
from bench.toml_checks import TomlLines

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "experiments").glob("*.toml"))


def _write(tmp_path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def _planned(spec) -> list[tuple[str, dict]]:
    return [
        (p.name, p.resolved)
        for p in plan_methods(list(spec.methods), parse_overrides(spec.set_args()), parse_grid(spec.grid_args()))
    ]


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_file_loads_and_its_runs_plan(path):
    exp = experiment.load(path)
    assert exp.name == path.stem and exp.description and "\n" not in exp.description
    for spec in exp.runs():
        assert _planned(spec)  # every setting and grid value resolves as on a command line


# `make run` before it read experiments/make-run.toml: its runs are stored under keys of this command
# line, which the file must keep giving
MAKE_RUN_BEFORE = (
    "--dataset ml-100k --name make-run --methods pop,sasrec,gru4rec,sft,bigrec,cft --seeds 0 --limit-test 200 --model tiny "
    "--set sasrec.epochs=3 --set gru4rec.epochs=3 "
    + " ".join(f"--set {m}.{c}" for m in ("sft", "bigrec", "cft")
               for c in ("max_train_samples=1024", "max_valid_samples=256", "epochs=1", "max_new_tokens=32"))
)  # fmt: skip


def _previous_make_run_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for option in ("--dataset", "--name", "--methods", "--seeds", "--limit-test", "--model"):
        parser.add_argument(option)
    parser.add_argument("--test-subset", default="random")
    parser.add_argument("--subset-seed", default="0")
    parser.add_argument("--set", action="append", default=[])
    return parser.parse_args(shlex.split(MAKE_RUN_BEFORE))


def test_make_run_file_gives_the_runs_make_run_gave_before():
    args = _previous_make_run_args()
    exp = experiment.load(ROOT / "experiments" / "make-run.toml")
    (spec,) = exp.runs()
    assert (spec.dataset, spec.name, ",".join(spec.methods)) == (args.dataset, args.name, args.methods)
    assert ",".join(map(str, spec.seeds)) == args.seeds
    assert (spec.test.limit, spec.test.mode, spec.test.seed) == (int(args.limit_test), args.test_subset, int(args.subset_seed))
    assert spec.valid is None  # make run scores no validation split
    overrides = parse_overrides(args.set)
    overrides.setdefault("*", {})["model"] = args.model
    expected = [(p.name, p.resolved) for p in plan_methods(args.methods.split(","), overrides, {})]
    assert _planned(spec) == expected  # the same resolved configurations, so the same run keys
    from bench.request import RunRequest

    assert spec.to_request() == RunRequest.from_options(
        args.methods, seeds=args.seeds, sets=args.set, model=args.model, limit_test=int(args.limit_test),
        test_subset=args.test_subset, subset_seed=int(args.subset_seed), dataset=args.dataset, name=args.name,
    )  # fmt: skip
    # `bench leaderboard --dataset ml-100k --name make-run`: the leaderboard's defaults
    assert exp.table_options().as_kwargs() == {
        "metrics": ("NDCG@10", "HR@10", "NDCG@20", "HR@20"), "test": "t", "correction": "holm", "alpha": 0.05,
        "baseline": None, "pairs": "all", "select_on": None, "select_metric": "NDCG@10", "all_configs": False, "seed": 0,
        "power": False,
    }  # fmt: skip


def test_make_run_runs_and_shows_the_make_run_file():
    """The Makefile's `run` target: `bench run` and `bench leaderboard` of experiments/make-run.toml."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    printed = subprocess.run(
        ["make", "-s", "--no-print-directory", "-C", str(ROOT), "--eval", "print-experiment: ; @echo $(EXPERIMENT)", "print-experiment"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()  # fmt: skip
    assert printed == "experiments/make-run.toml"
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nrun: ") :].split("\n\n", 1)[0]
    assert "bench run --experiment $(EXPERIMENT)" in recipe and "bench leaderboard --experiment $(EXPERIMENT)" in recipe


def test_make_run_description_says_it_is_a_smoke_test():
    text = experiment.load(ROOT / "experiments" / "make-run.toml").heading()
    assert text.startswith("Experiment make-run: ")
    for words in ("smoke test", "not a comparison of methods", "tiny model", "randomly", "one epoch"):
        assert words in text


def test_smollm2_file_has_the_stored_runs_settings():
    exp = experiment.load(ROOT / "experiments" / "smollm2-1k.toml")
    (spec,) = exp.runs()
    assert (spec.name, spec.test.limit, spec.test.mode, spec.executor.device) == ("smollm2-1k", 200, "first", "cpu")
    # README: --set m.max_train_samples=1024 ... for m in sft bigrec cft, --model smollm2-135m
    readme = {"model": "smollm2-135m", "max_train_samples": 1024, "max_valid_samples": 64, "epochs": 1, "micro_batch": 8,
              "grad_accum": 2, "warmup_steps": 3, "max_new_tokens": 24}  # fmt: skip
    planned = _planned(spec)
    assert [name for name, _ in planned] == ["cft", "bigrec", "sft"]
    for _, resolved in planned:
        assert {k: resolved[k] for k in readme} == readme
    assert exp.baseline == "bigrec"


def test_cft_paper_file_searches_the_papers_grid_on_validation():
    exp = experiment.load(ROOT / "experiments" / "cft-paper.toml")
    assert exp.datasets == ("toys", "sports", "cds", "games", "books") and exp.seeds == (0, 1, 2)
    spec = exp.run_spec("toys")
    counts = {}
    for name, resolved in _planned(spec):
        counts[name] = counts.get(name, 0) + 1
        if name in ("cft", "cft-no-cf"):
            assert resolved["weighting"] == "reciprocal"
    assert counts == {"cft": 56, "cft-no-cf": 8, "cft-no-tw": 7, "bigrec": 1, "sft": 1, "sasrec": 1}
    assert spec.valid is not None and spec.valid.limit is None and spec.test.limit is None
    assert (exp.select_on, exp.table.select_metric) == ("valid", "NDCG@10")
    assert "--grid cft.beta=0.09,0.16,0.29,0.38,0.5,0.66,0.9,0.96" in spec.command()


def test_cft_paper_file_carries_d3s_published_values_with_their_source():
    exp = experiment.load(ROOT / "experiments" / "cft-paper.toml")
    d3 = {
        "toys": (0.053, 0.096),
        "cds": (0.077, 0.109),
        "games": (0.052, 0.085),
        "sports": (0.099, 0.120),
        "books": (0.018, 0.027),
    }
    found = {(r.dataset, r.metric): r for r in exp.references}
    assert len(found) == 10
    for dataset, (ndcg, hr) in d3.items():
        assert (found[dataset, "NDCG@10"].value, found[dataset, "HR@10"].value) == (ndcg, hr)
        assert found[dataset, "NDCG@10"].row == "sft"
        assert "github.com/SAI990323/DecodingMatters" in found[dataset, "HR@10"].url
    assert [r.metric for r in exp.references_for("books")] == ["NDCG@10", "HR@10"]


def test_the_local_choices_are_the_leaderboards():
    import importlib

    for module in ("bench.leaderboard.options", "bench.leaderboard.compare"):
        try:
            found = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(found, "PAIRS"):
            assert (PAIRS, SELECT_ON) == (found.PAIRS, found.SELECT_ON)
            return
    pytest.fail("the leaderboard's PAIRS and SELECT_ON were not found; point this test and bench.experiment_checks at them")


BAD = """
name = "bad name!"
datasets = ["ml-100k", "toyz"]
methods = ["pop", "cftt", "cft"]
seeds = [0, -1]
colour = "blue"

[set.cft]
alphaa = 0.2
beta = "0.5"
epochs = 1

[set.sasrec]
epochs = 3

[grid.cft]
alpha = [0.05, "x"]

[leaderboard]
test = "ttest"
metrics = ["NDCG@10", "NDCG@11"]
baseline = "bigrec"

[[references]]
row = "cft"
dataset = "ml-100k"
values = { "NDCG@10" = 1.5 }
source = "Someone 2024"
"""


def test_every_mistake_is_one_sentence_with_its_line(tmp_path):
    with pytest.raises(BenchError) as caught:
        experiment.load(_write(tmp_path, BAD))
    message = str(caught.value)
    head, *lines = message.splitlines()
    assert head.startswith("15 mistakes in ") and head.endswith("fix and load it again:")
    where = {int(line.split(":")[1]) for line in lines if line.split(":")[1].isdigit()}
    expected = {
        1: 'name = "bad name!" cannot name runs',
        2: "Unknown dataset 'toyz'. Did you mean toys?",
        3: "Unknown method 'cftt'. Did you mean cft",
        4: "seeds holds -1",
        5: "Unknown key 'colour' at the top level",
        8: "set.cft.alphaa is not a setting of cft. Did you mean alpha or lora_alpha?",
        9: 'set.cft.beta is a setting of type float, but "0.5" is text; write it as that type, e.g. beta = 0.25.',
        12: "[set.sasrec] names 'sasrec', which is not among methods",
        16: 'grid.cft.alpha is a setting of type float, but "x" is text; write it as that type, e.g. alpha = 0.1.',
        19: 'leaderboard.test = "ttest" is not known. Choose one of t, wilcoxon, randomization.',
        20: 'Unknown metric "NDCG@11".',
        21: 'leaderboard.baseline "bigrec" names no listed method',
        23: "A reference needs a doi or a url",
        26: "The published NDCG@10 must be a number between 0 and 1, not 1.5.",
    }
    for number, words in expected.items():
        assert any(line.startswith(f"{tmp_path / 'exp.toml'}:{number}: ") and words in line for line in lines), (number, message)
    assert where == set(expected)
    assert (
        lines[-1]
        == f'{tmp_path / "exp.toml"}: description is missing; it is printed above the tables, write e.g. description = "What this shows."'
    )


def test_a_valid_file_with_every_section(tmp_path):
    path = _write(
        tmp_path,
        """
        name = "all-sections"
        description = '''
        Two lines
        of one paragraph.'''
        datasets = ["ml-100k", "toys"]
        methods = ["pop", "cft"]
        seeds = [2, 0]
        model = "tiny"
        [set.cft]
        epochs = 1
        lora = true
        [grid.cft]
        alpha = [0.05, 0.1]
        [test]
        limit = 500
        subset_seed = 3
        [valid]
        limit = 100
        [leaderboard]
        metrics = ["ndcg@10"]
        baseline = "cft[alpha=0.1]"
        pairs = "baseline"
        select_on = "valid"
        [executor]
        device = "cuda:1"
        executor = "slurm"
        gpus_per_job = 2
        time = 60
        sbatch = { account = "abc", mem = 64 }
        [[references]]
        row = "cft"
        dataset = "toys"
        values = { "HR@10" = 0.1 }
        source = "Paper"
        table = "Table 2"
        doi = "10.1/x"
    """,
    )
    exp = experiment.load(path)
    assert exp.description == "Two lines of one paragraph."
    spec = exp.run_spec("toys")
    assert spec.overrides == {"*.model": "tiny", "cft.epochs": 1, "cft.lora": True}
    assert spec.set_args() == ["*.model=tiny", "cft.epochs=1", "cft.lora=true"]
    assert spec.grid_args() == ["cft.alpha=0.05,0.1"]
    assert (spec.seeds, spec.test.limit, spec.test.seed, spec.valid.limit, spec.valid.seed) == ((2, 0), 500, 3, 100, 3)
    assert exp.table.metrics == ("NDCG@10",) and exp.executor.sbatch == {"account": "abc", "mem": "64"}
    assert (exp.executor.device, exp.executor.gpus_per_job, exp.executor.time_min) == ("cuda:1", 2, 60)
    assert exp.references[0].citation() == "Paper (Table 2, doi:10.1/x)"
    assert spec.command().startswith("bench run --methods pop,cft --dataset toys --seeds 2,0 --name all-sections")
    request = spec.to_request(force=True)
    assert request.grid == {"cft": {"alpha": ["0.05", "0.1"]}} and request.overrides["cft"] == {"epochs": "1", "lora": "true"}
    assert (request.device, request.force, request.name, request.seeds) == ("cuda:1", True, "all-sections", (2, 0))
    assert (request.evaluation.test.limit, request.evaluation.valid.limit, request.evaluation.valid.seed) == (500, 100, 3)
    cluster = spec.cluster()
    assert (cluster.gpus_per_job, cluster.time_min, cluster.sbatch) == (2, 60, {"account": "abc", "mem": "64"})
    with pytest.raises(BenchError, match="does not use dataset 'books'"):
        exp.run_spec("books")


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('model = "tiny"\n[set."*"]\nmodel = "smollm2-135m"\n', 7, "The model is given twice"),
        (
            '[valid]\nscore = false\n[leaderboard]\nselect_on = "valid"\n',
            6,
            'valid.score = false, but leaderboard.select_on = "valid"',
        ),
        ('[leaderboard]\npairs = "baseline"\n', 6, 'pairs = "baseline" compares each row with the baseline'),
        ("[set.cft]\nalpha = 0.2\n[grid.cft]\nalpha = [0.1]\n", 8, "cft.alpha is both set"),
        ('[set."*"]\nwarmup = 3\n', 6, "set.*.warmup matches no method"),
        ('description = """\none\n\ntwo"""\n', 4, "description must be one paragraph"),
        ('[leaderboard]\npower = "yes"\n', 6, 'leaderboard.power must be true or false, not "yes".'),
    ],
)
def test_single_mistakes(tmp_path, text, line, words):
    base = 'name = "x"\ndatasets = ["ml-100k"]\nmethods = ["pop", "cft"]\n'
    if not text.startswith("description"):
        base = 'description = "d"\n' + base
    else:
        line -= 3  # the description opens the file
        base = text + base
        text = ""
    with pytest.raises(BenchError) as caught:
        experiment.load(_write(tmp_path, base + text))
    (mistake,) = str(caught.value).splitlines()[1:]
    assert mistake.startswith(f"{tmp_path / 'exp.toml'}:{line}: ") and words in mistake, mistake


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(BenchError, match=r"is not valid TOML: .*line 2"):
        experiment.load(_write(tmp_path, 'name = "x"\nmethods = [1,,]\n'))
    with pytest.raises(BenchError, match="does not exist; give the path of a .toml file"):
        experiment.load(tmp_path / "nothing.toml")


def test_toml_lines_follow_tables_arrays_and_multiline_values():
    lines = TomlLines(
        textwrap.dedent('''
        a = """
        x = 1
        """
        b = [
          "one",
          "two",
        ]
        [t."*"]
        c.d = 1
        [[r]]
        e = { f = 1 }
        [[r]]
        e = 2
        ''').lstrip("\n")
    )
    assert lines.line_of(("x",)) is None  # inside a string, not a key
    assert lines.line_of(("b",), "two") == 6
    assert lines.spans[("b",)] == (4, 7)
    assert lines.line_of(("t", "*", "c", "d")) == 9
    assert lines.line_of(("r", 0, "e", "f")) == 11  # an inline table's key: the line of its table
    assert lines.line_of(("r", 1, "e")) == 13


def test_loading_a_file_imports_no_torch():
    code = "import sys; from bench import experiment; print('torch' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert out == ["False", "False"]
    code = "import sys; from bench import experiment; experiment.load('experiments/make-run.toml'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split() == [
        "False"
    ]


# ---- published values ----------------------------------------------------------------------------


def test_t_interval_worked_by_hand():
    # mean 0.6; s^2 = (4 * 0.16 + ... ) = 1.2 / 4 = 0.3; se = sqrt(0.3 / 5) = 0.2449490; t(0.975, 4) = 2.7764451
    mean, low, high = t_interval([0, 1, 0, 1, 1])
    half = 2.7764451052 * math.sqrt(0.3 / 5)
    assert (
        mean == pytest.approx(0.6) and low == pytest.approx(0.6 - half, abs=1e-9) and high == pytest.approx(0.6 + half, abs=1e-9)
    )
    inside = compare_with_published([0, 1, 0, 1, 1], 0.5, metric="HR@10", source="a paper")
    assert (inside.difference, inside.inside, inside.n) == (pytest.approx(0.1), True, 5)
    outside = compare_with_published([0, 1, 0, 1, 1], 1.3)
    assert outside.inside is False and outside.difference == pytest.approx(-0.7)
    assert "[-0.0801, 1.2801]" in inside.sentence() and "lies inside our interval" in inside.sentence()
    assert "(a paper)" in inside.sentence() and "lies outside" in outside.sentence()


def test_one_sample_has_no_interval_and_constant_values_a_point():
    one = compare_with_published([0.2], 0.2)
    assert math.isnan(one.low) and one.inside is False and "too few for an interval" in one.sentence()
    same = compare_with_published([0.25] * 4, 0.25)
    assert (same.low, same.high, same.inside) == (0.25, 0.25, True)


def test_t_interval_agrees_with_a_bootstrap_on_skewed_values():
    from bench.stats import paired_bootstrap_ci

    rng = np.random.default_rng(0)
    ranks = rng.geometric(0.02, 5000) - 1
    values = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)  # NDCG@10-like: about 4 in 5 zero
    _, low, high = t_interval(values)
    _, boot_low, boot_high = paired_bootstrap_ci(values, np.zeros_like(values), n_resamples=10_000, seed=0)
    half = (high - low) / 2
    assert abs(low - boot_low) < 0.05 * half and abs(high - boot_high) < 0.05 * half


def test_reproduce_uses_the_reference():
    ref = experiment.Reference("sft", "toys", "NDCG@10", 0.053, "D3 README", url="https://example.org")
    result = reproduce(np.full(100, 0.05), ref)
    assert (result.metric, result.published, result.source) == ("NDCG@10", 0.053, "D3 README (https://example.org)")
    assert result.difference == pytest.approx(-0.003) and result.inside is False


def test_bench_run_with_an_experiment_file_runs_what_is_missing(tmp_path, monkeypatch):
    from test_store import assert_one_sentence_error, cli

    from bench.store import RunStore

    path = _write(
        tmp_path,
        """
        name = "pop-smoke"
        description = "Popularity on 20 random test samples, two seeds."
        datasets = ["ml-100k"]
        methods = ["pop"]
        seeds = [0, 1]
        [test]
        limit = 20
        [executor]
        device = "cpu"
        """,
    )
    code, text, _ = cli(monkeypatch, ["run", "--experiment", str(path)])
    assert code == 0, text
    assert "Experiment pop-smoke: Popularity on 20 random test samples, two seeds." in text
    runs = RunStore().runs("ml-100k")
    assert sorted(r.record.seed for r in runs) == [0, 1]
    assert all(r.record.experiments == ["pop-smoke"] and r.record.n_test == 20 for r in runs)
    code, text, _ = cli(monkeypatch, ["run", "--experiment", str(path)])  # resumable: nothing is computed again
    assert code == 0 and text.count("stored already") == 2, text
    code, text, result = cli(monkeypatch, ["run", "--experiment", str(path), "--methods", "sasrec"])
    assert assert_one_sentence_error(code, text, result) == (
        "--methods cannot be given with --experiment, which fixes it; change the experiment file instead."
    )
