"""`bench methods NAME` shows every setting of a method with its type, default and meaning, whole at
60, 80 and 200 columns and in a pipe; `--json` gives the same to scripts."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from rich.console import Console
from typer.testing import CliRunner

from bench import cli, registry
from bench.describe import default_text, describe, settings_of, type_text
from bench.method import Method

BUILTINS = ["pop", "sasrec", "gru4rec", "caser", "bert4rec", "sft", "bigrec", "cft", "cft-no-cf", "cft-no-tw"]
WIDTHS = (60, 80, 200)


def by_name(method: str) -> dict:
    return {s.name: s for s in settings_of(registry.load_class(method))}


def invoke(monkeypatch, width: int, *args: str):
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=width, color_system=None))
    result = CliRunner().invoke(cli.app, list(args))
    return result, out.getvalue()


# ---- settings_of ---------------------------------------------------------------------------------


def test_cft_alpha_and_beta():
    s = by_name("cft")
    assert (s["alpha"].type, s["alpha"].default) == ("float", 0.1)
    assert (s["beta"].type, s["beta"].default) == ("float", 0.25)
    assert "counterfactual" in s["alpha"].help
    assert "last label token" in s["beta"].help
    assert (s["lr"].type, s["lr"].default) == ("float | None", None)
    assert s["lr"].help.startswith("None: 1e-4")  # LLMConfig's comment, two classes up the MRO


def test_ablations_keep_their_own_defaults_and_a_help():
    no_cf, no_tw = by_name("cft-no-cf"), by_name("cft-no-tw")
    assert (no_cf["alpha"].default, no_cf["beta"].default) == (0.0, 0.25)
    assert (no_tw["alpha"].default, no_tw["beta"].default) == (0.1, 1.0)
    assert no_cf["alpha"].help and no_tw["beta"].help
    assert no_cf["grounding"].help == by_name("cft")["grounding"].help  # inherited from LLMConfig
    assert no_cf["weighting"].help == by_name("cft")["weighting"].help  # inherited from CFTConfig


def test_llm_defaults_and_their_help():
    for method in ("sft", "bigrec", "cft", "cft-no-cf", "cft-no-tw"):
        s = by_name(method)
        assert (s["model"].type, s["model"].default) == ("str", "Qwen/Qwen2-0.5B")
        assert "tiny" in s["model"].help and "smollm2-135m" in s["model"].help
        assert s["label_layout"].default == "quoted" and "title-close" in s["label_layout"].help
        assert s["decoding"].default == ("constrained" if method == "sft" else "grounded")
        assert "constrained" in s["decoding"].help and "grounded" in s["decoding"].help
        assert s["grounding"].default == "interleaved" and s["max_train_samples"].default == 0
    bigrec = by_name("bigrec")
    assert "1024" in bigrec["max_train_samples"].help  # BIGRec's few-shot setting, one --set away
    cft = by_name("cft")
    assert cft["weighting"].default == "linear" and "reciprocal" in cft["weighting"].help
    assert "weighting" not in by_name("sft")


def test_recbole_defaults_and_help_from_recboleconfig():
    sasrec = by_name("sasrec")
    assert sasrec["n_layers"].default == 2
    assert sasrec["dropout"].default == 0.5
    assert sasrec["dropout"].type == "float | None"
    assert "valid NDCG@10" in sasrec["patience"].help  # RecBoleConfig's comment, through __help_from__
    assert by_name("gru4rec")["n_layers"].default == 1
    caser = by_name("caser")
    assert (caser["nh"].type, caser["nh"].default) == ("int", 8)
    assert (caser["nv"].type, caser["nv"].default) == ("int", 4)
    assert "horizontal" in caser["nh"].help and "vertical" in caser["nv"].help
    assert caser["reg_weight"].default == 1e-4 and caser["reg_weight"].help
    assert by_name("bert4rec")["mask_ratio"].help
    assert list(caser)[-1] == "extra"


def test_pop_has_no_settings():
    assert settings_of(registry.load_class("pop")) == []


@pytest.mark.parametrize("method", BUILTINS)
def test_every_builtin_setting_has_a_help(method):
    missing = [s.name for s in settings_of(registry.load_class(method)) if not s.help.strip()]
    assert missing == []


# help lookup on classes of this module (inspect reads this file)


@dataclass
class ParentConfig:
    rate: float = 0.5  # how fast it goes
    depth: int = 3  # how deep it digs
    bare: str = "x"
    told: int = field(default=1, metadata={"help": "said in metadata"})  # and in a comment

    def check(self):
        inner: int = 1  # a local variable, not a field
        return inner


@dataclass
class ChildConfig(ParentConfig):
    rate: float = 0.7
    depth: int = 4  # deeper here
    names: tuple[str, ...] = ("a", "b")  # a tuple default
    limit: int | None = None  # none means no limit


class Child(Method):
    name = "child"
    description = "A method of the tests."
    version = "7"
    Config = ChildConfig

    def _fit(self, train, valid, context):
        pass

    def _recommend(self, samples, k):
        raise NotImplementedError


def test_help_preference_and_inheritance():
    s = {x.name: x for x in settings_of(Child)}
    assert s["rate"].help == "how fast it goes"  # overridden without a comment: the parent's
    assert s["rate"].default == 0.7
    assert s["depth"].help == "deeper here"  # the nearest comment wins
    assert s["told"].help == "said in metadata"  # metadata before comments
    assert s["bare"].help == ""
    assert "inner" not in s
    assert (s["names"].type, s["names"].default) == ("tuple[str, ...]", ["a", "b"])
    assert (s["limit"].type, s["limit"].default) == ("int | None", None)
    json.dumps([dataclasses.asdict(x) for x in s.values()])


def test_type_and_default_text():
    assert type_text(int) == "int"
    assert type_text(float | None) == "float | None"
    assert type_text(list[str]) == "list[str]"
    assert [default_text(v) for v in (None, True, False, "", "tiny", 0.001, 1e-4, [1, 2])] == [
        "none",
        "true",
        "false",
        '""',
        "tiny",
        "0.001",
        "0.0001",
        "1,2",
    ]


def test_runtime_method_is_described(monkeypatch):
    monkeypatch.setitem(
        registry.BUILTIN, "child", registry.MethodSpec("child", f"{__name__}:Child", "A child.", origin="runtime")
    )
    info = describe("child")
    assert (info["name"], info["description"], info["version"], info["origin"]) == ("child", "A child.", "7", "runtime")
    assert [s["name"] for s in info["settings"]] == [f.name for f in dataclasses.fields(ChildConfig)]
    result, text = invoke(monkeypatch, 80, "methods", "child")
    assert result.exit_code == 0, text
    assert "bare: (no description)" in text


# ---- the command ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", BUILTINS)
def test_json_lists_every_field(monkeypatch, method):
    result, _ = invoke(monkeypatch, 80, "methods", method, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    cls = registry.load_class(method)
    assert [s["name"] for s in info["settings"]] == [f.name for f in dataclasses.fields(cls.Config)]
    assert {s["name"]: s["default"] for s in info["settings"]} == json.loads(json.dumps(dataclasses.asdict(cls.Config())))
    assert all(set(s) == {"name", "type", "default", "help", "acts"} for s in info["settings"])
    decode = getattr(cls, "decode_settings", frozenset())
    assert {s["name"] for s in info["settings"] if s["acts"] == "decode"} == decode & {
        f.name for f in dataclasses.fields(cls.Config)
    }
    spec = registry.get_spec(method)
    assert (info["name"], info["description"], info["origin"], info["version"]) == (
        method,
        spec.description,
        "builtin",
        cls.version,
    )


def test_unknown_method_is_one_sentence(monkeypatch):
    for args in (["methods", "cfx"], ["methods", "cfx", "--json"]):
        result, text = invoke(monkeypatch, 80, *args)
        assert result.exit_code == 2
        flat = " ".join(text.split())
        assert "Unknown method 'cfx'" in flat and "Did you mean cft" in flat
        assert "Traceback" not in text + result.output
        assert result.output == ""  # nothing half-printed on stdout


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("method", BUILTINS)
def test_settings_whole_at_every_width(monkeypatch, method, width):
    result, text = invoke(monkeypatch, width, "methods", method)
    assert result.exit_code == 0, text + result.output
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    flat = " ".join(text.split())
    info = describe(method)
    assert f"{method} (version {info['version']}, builtin): {info['description']}" in flat
    for s in info["settings"]:
        row = re.compile(
            rf"^\s*{re.escape(s['name'])}\s+{re.escape(s['type'])}\s+{re.escape(default_text(s['default']))}(\s+{s['acts']})?\s*$"
        )
        assert any(row.match(line) for line in lines), (s, text)
        help_text = s["help"] or "(no description)"
        assert f"{s['name']}: {' '.join(help_text.split())}" in flat  # notes wrap at spaces only
    if not info["settings"]:
        assert f"{method} has no settings." in flat


def test_pipe_uses_no_terminal(tmp_path):
    """Through a pipe (no terminal, no COLUMNS) every row is still whole."""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "methods", "bigrec"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s*max_train_samples\s+int\s+0\s+fit\s*$", proc.stdout, re.M)
    assert re.search(r"^\s*lora_targets\s+str\s+q_proj,v_proj\s+fit\s*$", proc.stdout, re.M)


def test_listing_without_a_name_is_unchanged(monkeypatch):
    result, text = invoke(monkeypatch, 80, "methods")
    assert result.exit_code == 0
    for name in BUILTINS:
        assert re.search(rf"^\s*{re.escape(name)}\s", text, re.M), name
    result, _ = invoke(monkeypatch, 80, "methods", "--json")
    assert result.exit_code == 0
    assert [m["name"] for m in json.loads(result.output)] == sorted(registry.all_specs())


def test_describing_loads_nothing_heavy():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from bench import cli\n"
        "for m in ('sft', 'cft', 'sasrec', 'caser'):\n"
        "    assert CliRunner().invoke(cli.app, ['methods', m]).exit_code == 0\n"
        "print(sorted(m for m in ('torch', 'transformers', 'recbole', 'peft', 'yaml') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_a_built_in_method_is_described_once_in_the_registry():
    from bench.registry import BUILTIN, load_class

    for name, spec in BUILTIN.items():
        assert spec.description, name
        written = [k.__qualname__ for k in load_class(name).__mro__ if k.__dict__.get("description")]
        assert written == [], f"{name}: a second description in {written}; the registry's is the one"
