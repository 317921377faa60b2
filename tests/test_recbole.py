"""The RecBole adapter: shims, atomic files, configuration, agreement with RecBole's own evaluator,
the generic path for any sequential model, and one end-to-end run the leaderboard reads.
Models are tiny (hidden 16, 1-2 epochs, a few hundred samples): these tests check plumbing, not quality."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("recbole")

from conftest import make_split

from bench import evaluate, registry
from bench.data.cards import DatasetCard
from bench.data.split import Catalogue, Samples, Split
from bench.errors import BenchError
from bench.method import Context
from methods.recbole import shims
from methods.recbole.files import DATASET, write_atomic_files
from methods.recbole.method import load_data
from methods.recbole.settings import build_config, model_class, parse_extra, recbole_settings

PROJECT = Path(__file__).resolve().parent.parent


def sequential_split(n_users: int = 60, n_items: int = 50, length: int = 12, seed: int = 0) -> Split:
    """Users walk the catalogue mostly one step at a time (next = current + 1), so a sequential model
    learns something in one or two epochs. The last catalogue items never occur."""
    rng = np.random.default_rng(seed)
    used = n_items - 3
    rows = []  # (time, user, position, history, target)
    for user in range(n_users):
        seq = [int(rng.integers(used))]
        for _ in range(length - 1):
            step = 1 if rng.random() < 0.8 else int(rng.integers(2, 6))
            seq.append((seq[-1] + step) % used)
        start = int(rng.integers(0, 1000))
        for pos in range(1, length):
            rows.append((start + 10 * pos, user, pos, tuple(seq[max(0, pos - 10) : pos]), seq[pos]))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    n = len(rows)

    def part(chunk) -> Samples:
        return Samples(
            users=np.array([r[1] for r in chunk], dtype=np.int64),
            histories=[r[3] for r in chunk],
            targets=np.array([r[4] for r in chunk], dtype=np.int64),
            times=np.array([r[0] for r in chunk], dtype=np.int64),
        )

    card = DatasetCard(name="walk", source="movielens", noun="movie", noun_plural="movies", verb="watched")
    return Split(
        name="walk",
        card=card,
        items=Catalogue(titles=[f"Item {i}" for i in range(n_items)], sources=[[str(i)] for i in range(n_items)]),
        train=part(rows[: int(0.8 * n)]),
        valid=part(rows[int(0.8 * n) : int(0.9 * n)]),
        test=part(rows[int(0.9 * n) :]),
        hash="1" * 16,
        manifest={},
    )


def context_for(split: Split, work_dir: Path, progress=None) -> Context:
    return Context(
        device="cpu",
        seed=0,
        items=split.items,
        card=split.card,
        work_dir=work_dir,
        cache_dir=work_dir / "cache",
        progress=progress,
    )


def make_method(name: str, **overrides):
    cls = registry.load_class(name)
    return cls(registry.build_config(cls, {k: str(v) for k, v in overrides.items()}))


# --- one fitted SASRec shared by the checks that only read it -----------------------------------


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """SASRec fitted for 2 epochs inside an empty working directory, with a rich Progress attached."""
    from rich.console import Console
    from rich.progress import Progress

    split = sequential_split()
    cwd = tmp_path_factory.mktemp("cwd")
    work = tmp_path_factory.mktemp("work")
    method = make_method("sasrec", epochs=2, hidden_size=16, batch_size=64, dropout=0.1, extra="metric_decimal_place=12")
    progress = Progress(console=Console(file=open(os.devnull, "w")))
    old = os.getcwd()
    os.chdir(cwd)
    try:
        method.fit(split.train, split.valid, context_for(split, work, progress))
    finally:
        os.chdir(old)
    return method, split, cwd, progress, work


def test_sasrec_ranks_agree_with_recboles_own_evaluator(fitted, monkeypatch):
    """RecBole's full-sort NDCG@10/Hit@10 of the best checkpoint, computed by its Trainer.evaluate on
    its validation dataloader, equals the mean of our per-sample metrics from the same model on the same
    samples. In sequential full-sort mode RecBole masks only its padding column (history_index is None),
    and the protocol masks nothing, so both rank the target against every catalogue item. RecBole
    breaks ties by topk order and we count them against the model: the check asserts there are none."""
    method, split, *_ = fitted
    loads = []
    real_load = shims._original_torch_load

    def spy(*args, **kwargs):
        loads.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(shims, "_original_torch_load", spy)
    theirs = method.trainer.evaluate(method.data.valid, load_best_model=True)
    assert loads == [False]  # RecBole's own loader went through the torch.load shim

    samples = split.valid
    ranks = np.empty(len(samples), dtype=np.int64)
    for rows, scores in method._score(samples, batch_size=7):  # several batches on purpose
        assert scores.shape == (len(rows), split.n_items)
        target = scores.gather(1, torch.as_tensor(samples.targets[rows])[:, None])
        assert ((scores == target).sum(dim=1) == 1).all()  # no ties at the target
        ranks[rows] = evaluate.ranks_from_scores(scores, samples.targets[rows])
    ours = evaluate.summarize(ranks, ks=(10,))
    assert ours["HR@10"] > 0  # some hits, so an off-by-one rank would show
    assert ours["NDCG@10"] == pytest.approx(theirs["ndcg@10"], abs=1e-6)
    assert ours["HR@10"] == pytest.approx(theirs["hit@10"], abs=1e-6)
    # the adapter's best score is RecBole's own validation score of the kept checkpoint
    assert method.run_info()["best_valid_ndcg10"] == pytest.approx(ours["NDCG@10"], abs=1e-6)


def test_fit_leaves_no_files_and_reports_progress(fitted):
    method, _, cwd, progress, work = fitted
    assert list(cwd.iterdir()) == []  # no ./saved, ./log, ./log_tensorboard
    assert Path(method.trainer.saved_model_file).is_relative_to(work)  # the best checkpoint lives in work_dir
    (task,) = progress.tasks
    info = method.run_info()
    assert info["epochs_trained"] == 2 and task.completed == task.total == 2
    assert "valid NDCG@10" in task.fields["info"]
    assert info["recbole_model"] == "SASRec" and info["parameters"] > 0


def test_scores_follow_our_item_order_and_ignore_recboles(fitted):
    """Column i of the scores is our item i: equal to RecBole's own full_sort_predict column for that
    item's token, for any Samples (here: made up histories, an unseen user)."""
    method, split, *_ = fitted
    samples = Samples(
        users=np.array([10_000, 3]), histories=[(5, 6, 7), (46,)], targets=np.array([8, 47]), times=np.zeros(2, dtype=np.int64)
    )
    ((rows, scores),) = list(method.score(samples))
    dataset = method.data.dataset
    token_id = dataset.field2token_id["item_id"]
    from recbole.data.interaction import Interaction

    seq = torch.zeros(2, 10, dtype=torch.long)
    seq[0, :3] = torch.tensor([token_id[str(i)] for i in (5, 6, 7)])
    seq[1, 0] = token_id["46"]
    batch = Interaction(
        {
            "item_id_list": seq,
            "item_length": torch.tensor([3, 1]),
            "user_id": torch.tensor([0, dataset.field2token_id["user_id"]["3"]]),
        }
    )
    with torch.no_grad():
        raw = method.model.full_sort_predict(batch)
    expected = raw[:, [token_id[str(i)] for i in range(split.n_items)]]
    assert torch.allclose(scores, expected)


# --- atomic files -------------------------------------------------------------------------------


def test_atomic_files_round_trip_through_recbole(tmp_path):
    """Every train sample becomes exactly one RecBole row, in order, with the same user, the same
    history (its newest max_history items) and the same target; item_length is the history length
    (the pandas shim); every catalogue item has an id, used or not; histories are padded to max_history."""
    split = make_split(n_items=30, n_train=80, n_valid=10, n_test=10)
    split.train.histories[0] = tuple(range(12))  # longer than max_history: the newest 10 are kept
    max_history = 10
    method = make_method("gru4rec")
    settings = recbole_settings("GRU4Rec", method.config, tmp_path, seed=0)
    write_atomic_files(
        tmp_path / DATASET, {"train": split.train, "valid": split.valid, "test": split.test}, split.n_items, max_history
    )
    header = (tmp_path / DATASET / "bench.train.inter").read_text().splitlines()[0]
    assert header == "user_id:token\titem_id_list:token_seq\titem_id:token"
    data = load_data(build_config("GRU4Rec", settings, "cpu"), max_history)

    tokens = data.dataset.field2id_token["item_id"]
    assert sorted(int(t) for t in tokens[1:]) == list(range(split.n_items)) and tokens[0] == "[PAD]"
    users = data.dataset.field2id_token["user_id"]
    for loader, samples in [(data.train, split.train), (data.valid, split.valid), (data.test, split.test)]:
        inter = loader._dataset.inter_feat
        assert len(inter) == len(samples)
        assert inter["item_id_list"].shape[1] == max_history
        for row in range(len(samples)):
            expected = samples.histories[row][-max_history:]
            length = int(inter["item_length"][row])
            got = tuple(int(tokens[i]) for i in inter["item_id_list"][row, :length].tolist())
            assert got == expected
            assert inter["item_id_list"][row, length:].eq(0).all()
            assert int(tokens[int(inter["item_id"][row])]) == samples.targets[row]
            assert int(users[int(inter["user_id"][row])]) == samples.users[row]


def test_bad_samples_are_refused_with_one_sentence(tmp_path):
    split = make_split()
    split.train.histories[3] = ()
    with pytest.raises(BenchError, match="empty history"):
        write_atomic_files(tmp_path, {"train": split.train}, split.n_items, 10)
    split = make_split()
    split.valid.targets[0] = split.n_items
    with pytest.raises(BenchError, match="outside the catalogue"):
        write_atomic_files(tmp_path, {"valid": split.valid}, split.n_items, 10)


# --- shims --------------------------------------------------------------------------------------


def test_numpy_aliases_and_recbole_code_that_uses_them():
    shims.install_shims()
    assert np.float is float and np.int is int and np.float_ is np.float64
    from recbole.data.interaction import _convert_to_tensor  # isinstance(elem, (float, int, np.float, ...))
    from recbole.evaluator.metrics import NDCG  # np.zeros_like(..., dtype=np.float)

    assert _convert_to_tensor([1.5, 2.5]).tolist() == [1.5, 2.5]
    ndcg = NDCG.__new__(NDCG)
    ndcg.topk = [3]
    pos_index = np.array([[False, True, False]])
    assert ndcg.metric_info(pos_index, np.array([1]))[0, 2] == pytest.approx(1 / np.log2(3))


def test_pandas_len_agg_is_per_element_for_recbole_only():
    import pandas as pd

    shims.install_shims()
    series = pd.Series([np.array([1, 2, 3]), np.array([4])])
    assert series.agg(len) == 2  # pandas 3 semantics for everybody else
    namespace = {"__name__": "recbole.data.dataset.fake"}
    exec("def lengths(s):\n    return s.agg(len)", namespace)
    assert namespace["lengths"](series).tolist() == [3, 1]


def test_torch_load_default_changes_for_recbole_callers_only(tmp_path, monkeypatch):
    shims.install_shims()
    seen = []
    monkeypatch.setattr(shims, "_original_torch_load", lambda *a, **k: seen.append(k.get("weights_only", "default")))
    torch.load(tmp_path / "x.pth")
    namespace = {"__name__": "recbole.trainer.fake", "torch": torch}
    exec("def load(path):\n    return torch.load(path)", namespace)
    namespace["load"](tmp_path / "x.pth")
    assert seen == ["default", False]


@pytest.mark.slow
def test_importing_recbole_through_the_adapter_pulls_no_ray_and_no_tensorboard():
    code = (
        "import sys\n"
        "from methods.recbole import settings, shims\n"
        "shims.install_shims()\n"
        "settings.model_class('SASRec')\n"
        "import recbole.config, recbole.data, recbole.trainer, recbole.utils.utils as u\n"
        "assert u.SummaryWriter is shims._NullWriter\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'tensorboard') or m.startswith('torch.utils.tensorboard') or m == 'recbole.quick_start'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_config_ignores_command_line_and_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench", "run", "--epochs=999", "--learning_rate=5"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    method = make_method("sasrec", epochs=3, lr=0.01)
    config = build_config("SASRec", recbole_settings("SASRec", method.config, tmp_path, seed=5), "cpu")
    assert config["epochs"] == 3 and config["learning_rate"] == 0.01 and config["seed"] == 5
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "7" and sys.argv[-1] == "--learning_rate=5"
    assert str(config["device"]) == "cpu"
    assert config["n_layers"] == 2 and config["MAX_ITEM_LIST_LENGTH"] == 10 and config["loss_type"] == "CE"
    assert config["train_neg_sample_args"]["distribution"] == "none"


def test_recbole_log_records_are_dropped_from_the_root_logger(caplog):
    shims.install_shims()
    namespace = {"__name__": "recbole.fake", "logging": logging, "__file__": shims._recbole_dir() + "/fake.py"}
    code = compile("def say():\n    logging.getLogger().warning('spam')\n", shims._recbole_dir() + "/fake.py", "exec")
    exec(code, namespace)
    with caplog.at_level(logging.INFO):
        namespace["say"]()
        logging.getLogger().warning("ours")
    assert [r.getMessage() for r in caplog.records] == ["ours"]


# --- configuration and the generic path ---------------------------------------------------------


def test_per_model_defaults_and_settings():
    sasrec, gru4rec, caser, bert4rec = (registry.load_class(n) for n in ("sasrec", "gru4rec", "caser", "bert4rec"))
    assert (sasrec.Config().n_layers, sasrec.Config().hidden_size, sasrec.Config().lr) == (2, 64, 1e-3)
    assert (sasrec.Config().epochs, sasrec.Config().patience, sasrec.Config().batch_size) == (200, 10, 256)
    assert (sasrec.Config().loss, sasrec.Config().max_history) == ("CE", 10)
    assert gru4rec.Config().n_layers == 1 and gru4rec.Config().dropout == 0.3
    assert caser.Config().nh == 8 and bert4rec.Config().mask_ratio == 0.2
    config = registry.build_config(caser, {"nh": "16", "dropout": "0.25", "extra": "reg_weight=0.001; nv=2"})
    settings = recbole_settings("Caser", config, Path("/tmp/x"), seed=0)
    assert (settings["nh"], settings["dropout_prob"], settings["reg_weight"], settings["nv"]) == (16, 0.25, 0.001, 2)
    with pytest.raises(BenchError, match="no setting 'mask_ratio'"):
        registry.build_config(sasrec, {"mask_ratio": "0.3"})


@pytest.mark.parametrize("model", ["NARM", "TransRec", "CORE"])
def test_one_registry_line_makes_any_sequential_model_a_method(model, tmp_path):
    """Models the project does not register become methods with one `register` call: NARM; TransRec,
    which always trains on sampled negatives; CORE, which sizes a layer by the dataset's history length."""
    registry.register("generic-test", "methods.recbole.method:RecBoleMethod", f"{model} via RecBole", {"recbole_model": model})
    try:
        split = make_split(n_items=20, n_train=60, n_valid=10, n_test=10)
        method = make_method("generic-test", epochs=1, hidden_size=8, n_heads=1, eval_batch_size=4)
        method.fit(split.train, split.valid, context_for(split, tmp_path))
        batches = list(method.score(split.test))
        assert len(batches) == 3 and all(s.shape[1] == split.n_items and torch.isfinite(s).all() for _, s in batches)
        assert method.run_info()["recbole_model"] == model
    finally:
        registry.BUILTIN.pop("generic-test", None)


@pytest.mark.parametrize("name", ["gru4rec", "caser", "bert4rec"])
def test_registered_models_train_and_score(name, tmp_path):
    split = make_split(n_items=20, n_train=60, n_valid=10, n_test=10)
    method = make_method(name, epochs=1, hidden_size=8, n_heads=1)
    method.fit(split.train, split.valid, context_for(split, tmp_path))
    ((rows, scores),) = list(method.score(split.test))
    assert rows.tolist() == list(range(10)) and scores.shape == (10, split.n_items)
    assert torch.isfinite(scores).all()
    assert method.run_info()["epochs_trained"] == 1


def test_user_errors_end_in_a_bench_error(tmp_path):
    with pytest.raises(BenchError, match="no usable model"):
        model_class("SASRek")
    with pytest.raises(BenchError, match="not a sequential"):
        model_class("BPR")
    with pytest.raises(BenchError, match="needs item features"):
        model_class("SASRecF")
    with pytest.raises(BenchError, match="key=value"):
        parse_extra("a=1;oops")
    with pytest.raises(BenchError, match=r"hidden_size \(10\) must be a multiple of n_heads \(3\) for SASRec"):
        make_method("sasrec", hidden_size=10, n_heads=3, epochs=1)  # refused before any data is read
    method = make_method("sasrec", hidden_size=16, n_layers=1, epochs=1, extra="inner_size=-4")
    split = make_split()
    with pytest.raises(BenchError, match=r"SASRec failed while training \(RuntimeError.*check its settings"):
        method.fit(split.train, split.valid, context_for(split, tmp_path))
    with pytest.raises(BenchError, match="before it was fitted"):
        next(make_method("sasrec").score(split.test))


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_short_run_is_stored_and_read_by_the_leaderboard():
    from bench.leaderboard import LeaderboardOptions, build_leaderboards
    from bench.request import Evaluation, RunRequest
    from bench.runner import run_benchmark
    from bench.subsets import SampleChoice

    split = sequential_split(n_users=40)
    records = run_benchmark(
        RunRequest(
            ["sasrec"],
            dataset=split.name,
            seeds=[0],
            device="cpu",
            evaluation=Evaluation(SampleChoice(30, mode="first")),
            overrides={"sasrec": {"epochs": "1", "hidden_size": "16"}},
        ),
        split=split,
        show_progress=False,
    )
    (record,) = records
    assert record.method == "sasrec" and record.n_test == 30
    assert record.info["epochs_trained"] == 1 and record.config["epochs"] == 1
    assert 0.0 <= record.metrics["NDCG@10"] <= record.metrics["HR@10"] <= 1.0
    (board,) = build_leaderboards(split.name, LeaderboardOptions(n_resamples=100))
    (row,) = board.rows
    assert row.method == "sasrec"
    assert row.cells["NDCG@10"].mean == pytest.approx(record.metrics["NDCG@10"])
