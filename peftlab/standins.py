"""Offline stand-ins for the ``colab`` profile's Hub models and data (a rehearsal of the Colab path on any machine).

With ``PEFTLAB_COLAB_STANDINS=1`` the ``colab`` profile loads, instead of the Hub,

* ``klue/bert-base`` → a ``bert`` checkpoint with bert-base's layout (12 layers, 12 heads, 512 positions,
  32000-row vocabulary, pooler) but a tiny width and random weights, and a WordPiece tokenizer with klue's special
  tokens at klue's ids ([PAD] 0, [UNK] 1, [CLS] 2, [SEP] 3, [MASK] 4), loaded as ``BertTokenizer``;
* ``Qwen/Qwen2.5-0.5B`` → a ``qwen2`` checkpoint with Qwen2.5-0.5B's layout (24 layers, 14 query heads, 2 key/value
  heads (GQA), q/k/v biases, tied embeddings, 151936-row vocabulary, 32768 positions) at a tiny width, and a small
  byte-level BPE tokenizer loaded as ``Qwen2Tokenizer`` with Qwen's special tokens at Qwen's ids
  (``<|endoftext|>`` 151643 as eos and pad, no bos, right padding);
* NSMC (``e9t/nsmc``) → a parquet folder with NSMC's schema (``id``, ``document``, ``label``; a few empty documents,
  as NSMC has), read by the same ``datasets.load_dataset`` call, with smaller sample sizes (:data:`NSMC_SIZES`).

Everything is generated locally on first use into a cache folder (``$PEFTLAB_STANDIN_DIR``, else
``<tmp>/peftlab-standins``), from the embedded data under ``data/``: nothing is downloaded and nothing big is
committed. The size is ``$PEFTLAB_COLAB_STANDIN_SIZE``, the width of one attention head of the bert stand-in (an even
integer >= 2, default 16): the bert stand-in is 12 × size wide (default 192, which 64 divides, as it divides bert-base's
768: Weeks 04 and 07 cut widths into VB-LoRA pieces of 64), the Qwen2 stand-in 14 × (size / 8) (default 28: its
151936-row vocabulary already makes every token cost 151936 × width; Week 00 fine-tunes it twice). Only the source of weights and rows changes; every other
code path is the colab profile's own. :data:`REAL_CONFIGS` holds the values of the real ``config.json`` files that
the code depends on (tests/test_standins.py compares the stand-ins with them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "NSMC_SIZES", "REAL_CONFIGS", "REAL_TOKENIZERS", "SIZE_ENV", "STANDINS_ENV", "STANDIN_DIR_ENV",
    "enabled", "ensure", "hub_cache", "nsmc_dir", "size",
]

STANDINS_ENV = "PEFTLAB_COLAB_STANDINS"
SIZE_ENV = "PEFTLAB_COLAB_STANDIN_SIZE"
STANDIN_DIR_ENV = "PEFTLAB_STANDIN_DIR"
DEFAULT_SIZE = 16
#: bump when the generated files change, so an old cache is not reused
VERSION = 2

#: What the kit depends on in the real checkpoints' config.json (Hub files of klue/bert-base and
#: Qwen/Qwen2.5-0.5B); widths (hidden_size, intermediate_size) are the only values a stand-in changes.
REAL_CONFIGS = {
    "encoder": {
        "model_type": "bert", "num_hidden_layers": 12, "num_attention_heads": 12, "hidden_size": 768,
        "intermediate_size": 3072, "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 32000,
        "pad_token_id": 0, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
    },
    "causal_lm": {
        "model_type": "qwen2", "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
        "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768, "vocab_size": 151936,
        "tie_word_embeddings": True, "bos_token_id": 151643, "eos_token_id": 151643, "hidden_act": "silu",
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "use_sliding_window": False, "max_window_layers": 24,
    },
}
#: The real tokenizers' special tokens (tokenizer_config.json / vocab of the same checkpoints).
REAL_TOKENIZERS = {
    "encoder": {"pad": ("[PAD]", 0), "unk": ("[UNK]", 1), "cls": ("[CLS]", 2), "sep": ("[SEP]", 3),
                "mask": ("[MASK]", 4), "model_max_length": 512, "do_lower_case": False},
    "causal_lm": {"eos": ("<|endoftext|>", 151643), "pad": ("<|endoftext|>", 151643), "bos": None,
                  "extra": (("<|im_start|>", 151644), ("<|im_end|>", 151645)), "model_max_length": 131072,
                  "padding_side": "right"},
}
#: NSMC stand-in rows (train, test) and the colab sample sizes read from them (validation is cut from train).
NSMC_ROWS = {"train": 1500, "test": 700}
NSMC_SIZES = {"train": 1200, "validation": 200, "test": 600}


def enabled() -> bool:
    """True when ``$PEFTLAB_COLAB_STANDINS`` is ``1`` (``0`` or unset: False; anything else is a ValueError)."""
    value = os.environ.get(STANDINS_ENV, "0").strip()
    if value not in ("0", "1", ""):
        raise ValueError(f"{STANDINS_ENV}={value!r}: expected 1 (use the offline stand-ins) or 0")
    return value == "1"


def size() -> int:
    """The bert stand-in's per-head width: ``$PEFTLAB_COLAB_STANDIN_SIZE``, default 16 (an even integer >= 2)."""
    value = os.environ.get(SIZE_ENV, str(DEFAULT_SIZE)).strip()
    if not value.isdigit() or int(value) < 2 or int(value) % 2:
        raise ValueError(f"{SIZE_ENV}={value!r}: expected an even integer >= 2 (the width of one attention head)")
    return int(value)


def cache_root() -> Path:
    env = os.environ.get(STANDIN_DIR_ENV)
    return Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "peftlab-standins"


def _folder(name: str) -> Path:
    return cache_root() / f"v{VERSION}-size{size()}" / name


def _build_atomically(target: Path, build) -> Path:
    """Build into a sibling temporary folder, then rename: concurrent kernels never see a half-written folder."""
    if (target / ".complete").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(work)
        (work / ".complete").write_text("ok\n", encoding="utf-8")
        try:
            os.rename(work, target)
        except OSError:  # another process won the race: its folder is complete
            if not (target / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _seeded():
    import torch

    torch.manual_seed(0)


def _build_encoder(out: Path) -> None:
    from transformers import BertConfig, BertForPreTraining

    from peftlab.profile import data_root

    real, width = REAL_CONFIGS["encoder"], size()
    hidden = real["num_attention_heads"] * width
    config = BertConfig(
        vocab_size=real["vocab_size"], hidden_size=hidden, num_hidden_layers=real["num_hidden_layers"],
        num_attention_heads=real["num_attention_heads"], intermediate_size=4 * hidden,
        max_position_embeddings=real["max_position_embeddings"], type_vocab_size=real["type_vocab_size"],
        pad_token_id=real["pad_token_id"], hidden_act=real["hidden_act"], layer_norm_eps=real["layer_norm_eps"],
        architectures=["BertForMaskedLM"],
    )
    _seeded()
    BertForPreTraining(config).save_pretrained(out)  # with the pooler, as klue/bert-base ships it
    # the embedded WordPiece vocabulary already has klue's five special tokens at klue's ids
    tiny = data_root() / "models" / "tiny-ko-bert" / "tokenizer.json"
    shutil.copyfile(tiny, out / "tokenizer.json")
    spec = REAL_TOKENIZERS["encoder"]
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": spec["do_lower_case"], "do_basic_tokenize": True,
        "tokenize_chinese_chars": True, "strip_accents": None, "model_max_length": spec["model_max_length"],
        **{f"{k}_token": spec[k][0] for k in ("unk", "sep", "pad", "cls", "mask")},
    }, indent=1), encoding="utf-8")


#: Qwen2's pre-tokenizer split (tokenizer.json of Qwen2.5): contractions, letters, single digits, punctuation, spaces.
_QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
               r"|\s+(?!\S)|\s+")


def _qwen_tokenizer_json(texts: list[str], vocab_size: int = 1500) -> dict:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    spec = json.loads(tok.to_str())
    specials = [REAL_TOKENIZERS["causal_lm"]["eos"], *REAL_TOKENIZERS["causal_lm"]["extra"]]
    for content, token_id in specials:  # Qwen's ids, far above the small vocabulary, as in the real file
        spec["model"]["vocab"][content] = token_id
    spec["added_tokens"] = [dict(id=token_id, content=content, single_word=False, lstrip=False, rstrip=False,
                                 normalized=False, special=True) for content, token_id in specials]
    return spec


def _lines(path: Path) -> list[str]:
    """Non-empty lines of an embedded text file (read here, not through peftlab.data, which imports this module)."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _build_causal_lm(out: Path) -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from peftlab.profile import data_root

    real, width = REAL_CONFIGS["causal_lm"], max(2, 2 * (size() // 16))
    hidden = real["num_attention_heads"] * width
    config = Qwen2Config(
        vocab_size=real["vocab_size"], hidden_size=hidden,
        intermediate_size=8 * round(hidden * real["intermediate_size"] / real["hidden_size"] / 8),
        num_hidden_layers=real["num_hidden_layers"], num_attention_heads=real["num_attention_heads"],
        num_key_value_heads=real["num_key_value_heads"], max_position_embeddings=real["max_position_embeddings"],
        tie_word_embeddings=real["tie_word_embeddings"], bos_token_id=real["bos_token_id"],
        eos_token_id=real["eos_token_id"], hidden_act=real["hidden_act"], rms_norm_eps=real["rms_norm_eps"],
        rope_theta=real["rope_theta"], use_sliding_window=real["use_sliding_window"],
        sliding_window=real["max_position_embeddings"], max_window_layers=real["max_window_layers"],
        architectures=["Qwen2ForCausalLM"],
    )
    _seeded()
    Qwen2ForCausalLM(config).save_pretrained(out)
    corpus = _lines(data_root() / "corpus" / "ko_corpus.txt")[:8000]
    (out / "tokenizer.json").write_text(json.dumps(_qwen_tokenizer_json(corpus), ensure_ascii=False),
                                        encoding="utf-8")
    spec = REAL_TOKENIZERS["causal_lm"]
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen2Tokenizer", "add_bos_token": False, "add_prefix_space": False, "bos_token": None,
        "eos_token": spec["eos"][0], "pad_token": spec["pad"][0], "unk_token": None, "errors": "replace",
        "model_max_length": spec["model_max_length"], "clean_up_tokenization_spaces": False,
        "split_special_tokens": False, "additional_special_tokens": [c for c, _ in spec["extra"]],
    }, indent=1), encoding="utf-8")


def _build_nsmc(out: Path) -> None:
    from datasets import ClassLabel, Dataset, Features, Value

    from peftlab.profile import data_root

    features = Features({"id": Value("string"), "document": Value("string"),
                         "label": ClassLabel(names=["negative", "positive"])})
    (out / "data").mkdir()
    pools = {"train": ["train.jsonl", "valid.jsonl"], "test": ["test.jsonl"]}
    for split, files in pools.items():
        rows = [r for f in files for r in map(json.loads, _lines(data_root() / "sentiment" / f))][:NSMC_ROWS[split]]
        docs = [r["text"] for r in rows]
        for i in range(0, len(docs), 250):  # NSMC has empty documents; the loader filters them out
            docs[i] = "" if i % 500 == 0 else "   "
        table = {"id": [str(9_000_000 + 1000 * (split == "test") + i) for i in range(len(rows))],
                 "document": docs, "label": [int(r["label"]) for r in rows]}
        Dataset.from_dict(table, features=features).to_parquet(str(out / "data" / f"{split}-00000-of-00001.parquet"))


_BUILDERS = {"encoder": _build_encoder, "causal_lm": _build_causal_lm, "nsmc": _build_nsmc}


def ensure(name: str) -> Path:
    """The stand-in folder ``name`` ("encoder", "causal_lm" or "nsmc"), generated on first use."""
    if name not in _BUILDERS:
        raise ValueError(f"name={name!r}: unknown stand-in; allowed: {', '.join(map(repr, _BUILDERS))}")
    return _build_atomically(_folder(name), _BUILDERS[name])


#: the commit name of the stand-ins in the Hub-cache mirror (any 40 hex digits)
_MIRROR_COMMIT = "5ea0d1e5" * 5


def hub_cache() -> Path:
    """A Hugging Face Hub cache folder (the layout of ``HF_HUB_CACHE``) holding the model stand-ins under their Hub ids.

    With ``HF_HUB_CACHE`` pointing here and ``HF_HUB_OFFLINE=1``, code that calls ``from_pretrained("klue/bert-base")``
    or ``AutoConfig.from_pretrained("Qwen/Qwen2.5-0.5B")`` directly (not through :mod:`peftlab.models`) gets the
    stand-ins too; ``make rehearse-colab`` sets both for its kernels."""
    from peftlab.profile import HUB_MODELS

    folders = {kind: ensure(kind) for kind in HUB_MODELS}

    def build(out: Path) -> None:
        for kind, repo in HUB_MODELS.items():
            repo_dir = out / ("models--" + repo.replace("/", "--"))
            snapshot = repo_dir / "snapshots" / _MIRROR_COMMIT
            snapshot.mkdir(parents=True)
            (repo_dir / "refs").mkdir()
            (repo_dir / "refs" / "main").write_text(_MIRROR_COMMIT, encoding="utf-8")
            for f in folders[kind].iterdir():
                if f.is_file() and not f.name.startswith("."):
                    shutil.copyfile(f, snapshot / f.name)

    return _build_atomically(_folder("hub"), build)


def nsmc_dir() -> str:
    """The NSMC stand-in, a folder ``datasets.load_dataset`` reads like the Hub's parquet conversion."""
    return str(ensure("nsmc") / "data")
