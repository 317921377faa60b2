"""The method contract (bench.method), how the registry loads methods (bench.registry) and how the
runner turns recommendations into predictions (bench.runner.predict). Every expected number is
worked out by hand in the comments."""

from __future__ import annotations

import io
import sys
import textwrap
import uuid

import numpy as np
import pytest
from conftest import make_split

from bench import registry
from bench.errors import BenchError
from bench.method import INSPECT, Context, Method, MethodError, Recommendations, ScoreMethod
from bench.predict import Prediction, predict
from bench.request import RunRequest
from bench.runner import run_benchmark
from bench.store import RunStore

MOD = __name__  # the module the test methods below live in, as their messages must name it


# --- helpers ------------------------------------------------------------------------------------


def context_for(split, tmp_path) -> Context:
    return Context(device="cpu", seed=0, items=split.items, card=split.card, work_dir=tmp_path, cache_dir=tmp_path)


def fitted(method, split, tmp_path):
    method.fit(split.train, split.valid, context_for(split, tmp_path))
    return method


def with_targets(samples, targets):
    """`samples` (the first len(targets) rows) with the given targets."""
    part = samples.head(len(targets))
    part.targets = np.asarray(targets, dtype=np.int64)
    return part


def single_sentence(msg: str) -> None:
    assert "\n" not in msg
    assert msg.endswith(".")


class Scripted(Method):
    """Returns whatever the test put in `reply` (a callable of (samples, k))."""

    name = "scripted"
    reply = None

    def _fit(self, train, valid, context):
        self.fit_calls = getattr(self, "fit_calls", 0) + 1

    def _recommend(self, samples, k):
        self.calls = getattr(self, "calls", 0) + 1
        return type(self).reply(samples, k)


WHO = f"Method 'scripted' ({MOD}.Scripted)"


def scripted(reply, split, tmp_path) -> Scripted:
    cls = type("Scripted", (Scripted,), {"reply": staticmethod(reply), "__qualname__": "Scripted", "__module__": MOD})
    return fitted(cls(), split, tmp_path)


class FixedScores(ScoreMethod):
    """Five items, fixed scores per target (row i of `table` for the i-th sample); yields in chunks
    given by `chunks` (lists of row indices), in the given order."""

    name = "fixed"
    table = np.array(
        [
            [0.1, 0.5, 0.5, 0.9, 0.2],  # top: 3 (0.9), then 1 and 2 tie at 0.5 -> 1 first (lower id)
            [0.3, 0.3, 0.3, 0.3, 0.3],  # all tie -> 0, 1, 2, 3, 4
            [0.0, -1.0, 2.0, 1.0, 1.0],  # 2 (2.0), then 3 and 4 tie at 1.0 -> 3 first
        ]
    )
    chunks = ([2], [0, 1])
    width = None  # scores of another width than the catalogue's, to break the contract

    def _fit(self, train, valid, context):
        pass

    def _score(self, samples):
        for rows in self.chunks:
            rows = np.asarray(rows, dtype=np.int64)
            scores = self.table[rows]
            if self.width is not None:
                scores = np.zeros((len(rows), self.width))
            yield rows, scores


WHO_FIXED = f"Method 'fixed' ({MOD}.FixedScores)"


@pytest.fixture
def split5():
    return make_split(n_items=5, n_train=20, n_valid=5, n_test=6)


@pytest.fixture
def split():
    return make_split()


@pytest.fixture(autouse=True)
def single_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)


# --- the contract: refusals ----------------------------------------------------------------------


def test_recommend_before_fit_is_refused(split):
    m = type("Scripted", (Scripted,), {"__qualname__": "Scripted", "__module__": MOD})()
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and "before it was fitted" in msg
    single_sentence(msg)
    assert not hasattr(m, "calls")  # _recommend was never asked


def test_method_error_is_a_bench_error():
    assert issubclass(MethodError, BenchError)


def test_fit_that_raises_leaves_the_method_unfitted(split, tmp_path):
    class Failing(Scripted):
        def _fit(self, train, valid, context):
            raise RuntimeError("boom")

    m = Failing()
    with pytest.raises(RuntimeError):
        m.fit(split.train, split.valid, context_for(split, tmp_path))
    assert not m.fitted
    with pytest.raises(MethodError, match="before it was fitted"):
        m.recommend(split.test, 5)


def test_score_before_fit_is_refused(split5):
    m = FixedScores()
    with pytest.raises(MethodError) as info:
        list(m.score(split5.test.head(3)))
    msg = str(info.value)
    assert WHO_FIXED in msg and "score before it was fitted" in msg
    single_sentence(msg)


def test_recommend_of_a_score_method_before_fit_is_refused(split5):
    with pytest.raises(MethodError, match="recommend before it was fitted"):
        FixedScores().recommend(split5.test.head(3), 3)


@pytest.mark.parametrize("value", [{"items": [[1]]}, np.zeros((10, 5), dtype=np.int64), None])
def test_recommend_returning_no_recommendations_is_refused(split, tmp_path, value):
    m = scripted(lambda s, k: value, split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and f"returned {type(value).__name__} from _recommend instead of Recommendations" in msg
    single_sentence(msg)


@pytest.mark.parametrize(
    "shape, shown",
    [((9, 5), "(9, 5)"), ((11, 5), "(11, 5)"), ((10,), "(10,)"), ((10, 5, 1), "(10, 5, 1)")],
)
def test_one_list_per_sample_is_required(split, tmp_path, shape, shown):
    m = scripted(lambda s, k: Recommendations(items=np.zeros(shape, dtype=np.int64)), split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)  # 10 test samples
    msg = str(info.value)
    assert WHO in msg and f"lists of shape {shown} for 10 samples" in msg
    single_sentence(msg)


def test_more_than_k_items_per_list_is_refused(split, tmp_path):
    m = scripted(lambda s, k: Recommendations(items=np.zeros((len(s), k + 1), dtype=np.int64)), split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 4)
    msg = str(info.value)
    assert WHO in msg and "returned 5 items per sample where at most k=4" in msg
    single_sentence(msg)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, object, bool])
def test_non_integer_ids_are_refused(split, tmp_path, dtype):
    m = scripted(lambda s, k: Recommendations(items=np.ones((len(s), 3)).astype(dtype)), split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and "not integers" in msg
    single_sentence(msg)


@pytest.mark.parametrize("bad", [30, 31, -2, -100])
def test_ids_outside_the_catalogue_are_refused(split, tmp_path, bad):
    # the catalogue has 30 items: 0..29 are ids, -1 pads, anything else is a bug
    def reply(s, k):
        items = np.zeros((len(s), 3), dtype=np.int64)
        items[4, 1] = bad
        return Recommendations(items=items)

    m = scripted(reply, split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and "outside the catalogue (0..29, -1 for padding)" in msg
    single_sentence(msg)


def test_ids_at_the_catalogue_edges_pass(split, tmp_path):
    edges = np.array([[0, 29, -1]] * 10, dtype=np.int64)
    m = scripted(lambda s, k: Recommendations(items=edges), split, tmp_path)
    assert m.recommend(split.test, 5).items.tolist() == [[0, 29, -1]] * 10


@pytest.mark.parametrize("field", ["invalid", "ranks"])
@pytest.mark.parametrize("shape", [(9,), (11,), (10, 1), ()])
def test_per_sample_fields_of_the_wrong_shape_are_refused(split, tmp_path, field, shape):
    def reply(s, k):
        return Recommendations(items=np.zeros((len(s), 2), dtype=np.int64), **{field: np.zeros(shape, dtype=np.int64)})

    m = scripted(reply, split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and f"returned {field} of shape {shape} for 10 samples" in msg
    single_sentence(msg)


@pytest.mark.parametrize("examples", [({"a": 1},), {"a": 1}, "text"])
def test_examples_must_be_a_list(split, tmp_path, examples):
    m = scripted(lambda s, k: Recommendations(items=np.zeros((len(s), 2), dtype=np.int64), examples=examples), split, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(split.test, 5)
    msg = str(info.value)
    assert WHO in msg and f"examples of type {type(examples).__name__}, not a list" in msg
    single_sentence(msg)


def test_extra_must_be_a_dict(split, tmp_path):
    m = scripted(lambda s, k: Recommendations(items=np.zeros((len(s), 2), dtype=np.int64), extra=[1]), split, tmp_path)
    with pytest.raises(MethodError, match="extra of type list, not a dict"):
        m.recommend(split.test, 5)


def test_score_method_with_scores_of_the_wrong_width_is_refused(split5, tmp_path):
    class Wide(FixedScores):
        width = 6  # the catalogue has 5 items

    m = fitted(Wide(), split5, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(with_targets(split5.test, [2, 0, 4]), 3)
    msg = str(info.value)
    # the first chunk is one row ([2])
    assert f"Method 'fixed' ({MOD}.{Wide.__qualname__})" in msg
    assert "yielded scores of shape (1, 6) for 1 rows and 5 items" in msg
    single_sentence(msg)


def test_score_method_with_scores_of_the_wrong_height_is_refused(split5, tmp_path):
    class Short(FixedScores):
        def _score(self, samples):
            yield np.array([0, 1]), self.table[:1]  # two rows, one row of scores

    m = fitted(Short(), split5, tmp_path)
    with pytest.raises(MethodError, match=r"yielded scores of shape \(1, 5\) for 2 rows and 5 items"):
        m.recommend(with_targets(split5.test, [2, 0, 4]), 3)


def test_score_method_that_skips_samples_is_refused(split5, tmp_path):
    class Partial(FixedScores):
        chunks = ([2], [0])  # sample 1 is never scored

    m = fitted(Partial(), split5, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(with_targets(split5.test, [2, 0, 4]), 3)
    msg = str(info.value)
    assert f"Method 'fixed' ({MOD}.{Partial.__qualname__})" in msg
    assert "scored 2 of 3 samples; _score must cover every sample" in msg
    single_sentence(msg)


def test_score_method_that_scores_a_sample_twice_is_refused(split5, tmp_path):
    class Twice(FixedScores):
        chunks = ([0, 1], [1, 2])  # sample 1 is scored twice

    m = fitted(Twice(), split5, tmp_path)
    with pytest.raises(MethodError) as info:
        m.recommend(with_targets(split5.test, [2, 0, 4]), 3)
    msg = str(info.value)
    assert f"Method 'fixed' ({MOD}.{Twice.__qualname__})" in msg and "scored sample 1 twice" in msg
    single_sentence(msg)


@pytest.mark.parametrize("public, private", [("fit", "_fit"), ("recommend", "_recommend")])
def test_a_method_that_defines_a_public_method_is_refused_at_class_creation(public, private):
    body = {
        "_fit": lambda self, train, valid, context: None,
        "_recommend": lambda self, samples, k: None,
        public: lambda self, *args: None,
        "__module__": MOD,
    }
    with pytest.raises(TypeError) as info:
        type("OldStyle", (Method,), body)
    msg = str(info.value)
    assert "OldStyle" in msg and f"overrides {public}()" in msg and f"implement {private}() instead" in msg


def test_a_score_method_that_defines_score_is_refused_at_class_creation():
    with pytest.raises(TypeError, match=r"Method class .*OwnScore overrides score\(\); implement _score\(\) instead"):

        class OwnScore(ScoreMethod):
            def _fit(self, train, valid, context): ...
            def _score(self, samples): ...
            def score(self, samples): ...


def test_a_class_statement_defining_fit_is_refused():
    with pytest.raises(TypeError, match=r"Method class .*Old overrides fit\(\); implement _fit\(\) instead"):

        class Old(Method):
            def fit(self, train, valid, context): ...
            def _fit(self, train, valid, context): ...
            def _recommend(self, samples, k): ...


class _FitMixin:
    def fit(self, train, valid, context):  # skips the contract: never marks the method fitted
        pass


def test_a_public_method_from_a_mixin_is_refused_at_class_creation():
    with pytest.raises(TypeError, match=r"overrides fit\(\) \(through _FitMixin\); implement _fit\(\) instead"):

        class Mixed(_FitMixin, Method):
            def _fit(self, train, valid, context): ...
            def _recommend(self, samples, k): ...


# --- the contract: what passes, by hand ----------------------------------------------------------


def test_score_method_top_k_and_pessimistic_ranks_by_hand(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    recs = m.recommend(with_targets(split5.test, [2, 0, 4]), 3)
    # row 0: 0.9 (3), 0.5 (1), 0.5 (2) -> [3, 1, 2]; row 1: all 0.3 -> [0, 1, 2]; row 2: 2.0 (2), 1.0 (3), 1.0 (4)
    assert recs.items.tolist() == [[3, 1, 2], [0, 1, 2], [2, 3, 4]]
    # row 0, target 2 (0.5): items >= 0.5 are 1, 2, 3 -> rank 2
    # row 1, target 0 (0.3): all 5 items tie -> rank 4 (ties count against the model)
    # row 2, target 4 (1.0): items >= 1.0 are 2, 3, 4 -> rank 2 (though item 3 ties and comes first)
    assert recs.ranks.tolist() == [2, 4, 2]
    assert recs.items.dtype == np.int64 and recs.ranks.dtype == np.int64


def test_score_method_ranks_targets_outside_the_top_k(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    recs = m.recommend(with_targets(split5.test, [2, 2, 4]), 2)
    assert recs.items.tolist() == [[3, 1], [0, 1], [2, 3]]
    # row 0, target 2 (0.5) is cut from [3, 1] by the tie-break yet ranks 2 (items 1, 2, 3 >= 0.5);
    # row 1, target 2: all tie -> 4; row 2, target 4 (1.0) is cut from [2, 3]: items 2, 3, 4 >= 1.0 -> 2
    assert recs.ranks.tolist() == [2, 4, 2]


def test_score_method_with_k_beyond_the_catalogue_lists_every_item(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    recs = m.recommend(with_targets(split5.test, [3, 2, 0]), 10)
    assert recs.items.tolist() == [[3, 1, 2, 4, 0], [0, 1, 2, 3, 4], [2, 3, 4, 0, 1]]
    # row 0, target 3 is the strict best -> 0; row 1, target 2 ties with all -> 4;
    # row 2, target 0 (0.0): items >= 0.0 are 0, 2, 3, 4 -> 3
    assert recs.ranks.tolist() == [0, 4, 3]


def test_score_yields_each_chunk_after_the_shape_check(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    chunks = list(m.score(with_targets(split5.test, [2, 0, 4])))
    assert [rows.tolist() for rows, _ in chunks] == [[2], [0, 1]]
    assert chunks[0][1].tolist() == [[0.0, -1.0, 2.0, 1.0, 1.0]]


def test_short_lists_pass_and_come_back_as_int64(split, tmp_path):
    lists = np.array([[i % 30, (i + 7) % 30] for i in range(10)], dtype=np.int32)
    m = scripted(lambda s, k: Recommendations(items=lists), split, tmp_path)
    recs = m.recommend(split.test, 5)
    assert recs.items.dtype == np.int64
    assert recs.items.shape == (10, 2)
    assert recs.items.tolist() == [[i, i + 7] for i in range(10)]


def test_lists_given_as_python_lists_pass(split, tmp_path):
    m = scripted(lambda s, k: Recommendations(items=[[1, 2, 3]] * len(s)), split, tmp_path)
    recs = m.recommend(split.test, 3)
    assert isinstance(recs.items, np.ndarray) and recs.items.dtype == np.int64
    assert recs.items.tolist() == [[1, 2, 3]] * 10


# --- registry -------------------------------------------------------------------------------------


@pytest.fixture
def helper_module(tmp_path, monkeypatch):
    """Write a module under tmp_path with a unique name, importable; return a function that writes
    its source and returns its name. Registrations made through `register` are removed afterwards."""
    made: list[str] = []
    registered: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"bench_test_plugin_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        return name

    def register(name: str, target: str) -> None:
        registry.register(name, target, "a test plugin")
        registered.append(name)

    write.register = register
    yield write
    for name in registered:
        registry.BUILTIN.pop(name, None)
    for name in made:
        sys.modules.pop(name, None)


def test_registered_plain_class_is_refused(helper_module):
    mod = helper_module("class Plain:\n    pass\n")
    helper_module.register("plainplug", f"{mod}:Plain")
    with pytest.raises(BenchError) as info:
        registry.load_class("plainplug")
    msg = str(info.value)
    assert type(info.value) is BenchError
    assert f"Method 'plainplug' ({mod}:Plain) is the class Plain, not a subclass of bench.method.Method" in msg
    single_sentence(msg)


def test_registered_function_is_refused(helper_module):
    mod = helper_module("def make():\n    return None\n")
    helper_module.register("funcplug", f"{mod}:make")
    with pytest.raises(BenchError) as info:
        registry.load_class("funcplug")
    msg = str(info.value)
    assert f"Method 'funcplug' ({mod}:make) is a function, not a subclass of bench.method.Method" in msg
    single_sentence(msg)


def test_module_with_an_old_style_method_is_refused(helper_module):
    mod = helper_module(
        """
        from bench.method import Method

        class OldStyle(Method):
            def _fit(self, train, valid, context): ...
            def _recommend(self, samples, k): ...
            def fit(self, train, valid, context): ...
        """
    )
    helper_module.register("oldplug", f"{mod}:OldStyle")
    with pytest.raises(BenchError) as info:
        registry.load_class("oldplug")
    msg = str(info.value)
    assert f"Method 'oldplug' cannot be loaded from {mod}:OldStyle" in msg
    assert "OldStyle overrides fit(); implement _fit() instead" in msg
    assert "\n" not in msg
    assert isinstance(info.value.__cause__, TypeError)


def test_missing_attribute_is_refused(helper_module):
    mod = helper_module("X = 1\n")
    helper_module.register("missingplug", f"{mod}:Nope")
    with pytest.raises(BenchError, match=f"Method 'missingplug' cannot be loaded from {mod}:Nope"):
        registry.load_class("missingplug")


PLUGIN = """
    import numpy as np
    from bench.method import Method, Recommendations

    class Cheat(Method):
        '''Looks at the targets: rank 0 for rows 0, 3, 6, 9; rank 2 for rows 1, 4, 7; absent otherwise.'''
        name = "cheat"

        def _fit(self, train, valid, context):
            self.n = context.n_items

        def _recommend(self, samples, k):
            rows = []
            for i, t in enumerate(samples.targets.tolist()):
                others = [x for x in range(self.n) if x != t][:4]
                if i % 3 == 0:
                    rows.append([t] + others[:3])
                elif i % 3 == 1:
                    rows.append(others[:2] + [t] + others[2:3])
                else:
                    rows.append(others[:4])
            return Recommendations(items=np.array(rows, dtype=np.int64))

    class TooMany(Cheat):
        def _recommend(self, samples, k):
            return Recommendations(items=np.zeros((len(samples), k + 1), dtype=np.int64))
"""


def test_plugin_runs_end_to_end_with_ranks_from_its_lists(helper_module, tmp_path):
    mod = helper_module(PLUGIN)
    helper_module.register("cheatplug", f"{mod}:Cheat")
    split = make_split()
    store = RunStore(tmp_path / "res")
    records = run_benchmark(RunRequest(["cheatplug"], "tiny", [0], device="cpu"), split=split, store=store, show_progress=False)
    assert len(records) == 1 and records[0].method == "cheatplug"
    runs = store.runs("tiny")
    assert len(runs) == 1
    arrays = runs[0].arrays()
    # rebuild the lists by hand and take the target's position in each, -1 when absent
    targets = split.test.targets.tolist()
    expected = []
    for i, t in enumerate(targets):
        others = [x for x in range(30) if x != t][:4]
        lst = [t] + others[:3] if i % 3 == 0 else others[:2] + [t] + others[2:3] if i % 3 == 1 else others[:4]
        expected.append(lst.index(t) if t in lst else -1)
        assert arrays["topk"][i, :4].tolist() == lst
    assert expected == [0, 2, -1, 0, 2, -1, 0, 2, -1, 0]
    assert arrays["rank"].tolist() == expected
    assert (arrays["topk"][:, 4:] == -1).all()
    assert records[0].metrics["HR@1"] == pytest.approx(4 / 10)
    assert records[0].metrics["HR@3"] == pytest.approx(7 / 10)


def test_plugin_breaking_the_contract_fails_the_run_and_is_named(helper_module, tmp_path):
    from rich.console import Console

    mod = helper_module(PLUGIN)
    helper_module.register("toomanyplug", f"{mod}:TooMany")
    out = io.StringIO()
    store = RunStore(tmp_path / "res")
    with pytest.raises(BenchError, match=r"1 run\(s\) failed"):
        run_benchmark(
            RunRequest(["toomanyplug"], "tiny", [0], device="cpu"),
            split=make_split(),
            store=store,
            show_progress=False,
            console=Console(file=out, width=200),
        )
    printed = " ".join(out.getvalue().split())
    assert "toomanyplug seed 0 failed:" in printed
    assert f"Method 'toomanyplug' ({mod}.TooMany) returned 51 items per sample where at most k=50" in printed
    assert store.runs("tiny") == []


# --- runner.predict -------------------------------------------------------------------------------


def test_predict_pads_topk_to_k_and_ranks_from_lists(split, tmp_path):
    samples = with_targets(split.test, [5, 6, 7, 8])
    lists = np.array([[5, 1], [1, 6], [1, 2], [8, 8]], dtype=np.int64)
    m = scripted(lambda s, k: Recommendations(items=lists), split, tmp_path)
    p = predict(m, samples, 5)
    assert isinstance(p, Prediction)
    assert p.topk.tolist() == [[5, 1, -1, -1, -1], [1, 6, -1, -1, -1], [1, 2, -1, -1, -1], [8, 8, -1, -1, -1]]
    # 5 first, 6 second, 7 absent, 8 first (first occurrence)
    assert p.ranks.tolist() == [0, 1, -1, 0]
    assert p.invalid.tolist() == [0, 0, 0, 0]
    assert p.extra == {} and p.examples == []


def test_predict_uses_a_score_methods_whole_catalogue_ranks(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    p = predict(m, with_targets(split5.test, [0, 4, 3]), 2)
    # the ranks are the whole-catalogue pessimistic ones, not positions in the short lists:
    # row 0, target 0 (0.1): all 5 items >= 0.1 -> 4, though absent from [3, 1];
    # row 1, target 4: all tie -> 4; row 2, target 3 (1.0): items 2, 3, 4 >= 1.0 -> 2 (it is 2nd in the list)
    assert p.topk.tolist() == [[3, 1], [0, 1], [2, 3]]
    assert p.ranks.tolist() == [4, 4, 2]


def test_predict_pads_a_score_method_beyond_the_catalogue(split5, tmp_path):
    m = fitted(FixedScores(), split5, tmp_path)
    p = predict(m, with_targets(split5.test, [3, 2, 0]), 7)
    assert p.topk.tolist() == [[3, 1, 2, 4, 0, -1, -1], [0, 1, 2, 3, 4, -1, -1], [2, 3, 4, 0, 1, -1, -1]]
    assert p.ranks.tolist() == [0, 4, 3]


def test_predict_keeps_invalid_and_extra(split, tmp_path):
    def reply(s, k):
        return Recommendations(items=np.full((len(s), 1), 3, dtype=np.int64), invalid=np.array([0, 2, 1]), extra={"beams": 4})

    p = predict(scripted(reply, split, tmp_path), with_targets(split.test, [3, 4, 3]), 2)
    assert p.topk.tolist() == [[3, -1], [3, -1], [3, -1]]
    assert p.ranks.tolist() == [0, -1, 0]
    assert p.invalid.tolist() == [0, 2, 1]
    assert p.extra == {"beams": 4}


def test_predict_cuts_examples_to_inspect(split, tmp_path):
    assert INSPECT == 3
    examples = [{"row": i} for i in range(5)]
    m = scripted(lambda s, k: Recommendations(items=np.zeros((len(s), 1), dtype=np.int64), examples=examples), split, tmp_path)
    p = predict(m, split.test, 3)
    assert p.examples == [{"row": 0}, {"row": 1}, {"row": 2}]


def test_predict_keeps_fewer_examples_than_inspect(split, tmp_path):
    m = scripted(
        lambda s, k: Recommendations(items=np.zeros((len(s), 1), dtype=np.int64), examples=[{"row": 0}]), split, tmp_path
    )
    assert predict(m, split.test, 3).examples == [{"row": 0}]


def test_predict_on_no_samples_asks_the_method_nothing(split, tmp_path):
    def reply(s, k):
        raise AssertionError("the method was asked")

    m = scripted(reply, split, tmp_path)
    empty = split.test.subset(np.zeros(0, dtype=np.int64))
    p = predict(m, empty, 4)
    assert not hasattr(m, "calls")
    assert p.ranks.shape == (0,) and p.topk.shape == (0, 4) and p.invalid.shape == (0,)
    assert p.extra == {} and p.examples == []


def test_predict_refuses_an_unfitted_method(split):
    m = type("Scripted", (Scripted,), {"__qualname__": "Scripted", "__module__": MOD})()
    with pytest.raises(MethodError, match="before it was fitted"):
        predict(m, split.test, 3)
