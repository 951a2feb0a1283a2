"""Build the embedded ``tiny`` profile: datasets, tokenizer, two pretrained tiny models, manifest.

``python -m peftlab.datagen --out data`` (``make data``) — full build, minutes on a 2-core CPU.
``python -m peftlab.datagen --out DIR --quick`` — a miniature of the same pipeline for tests.

Text files are byte-identical on every run (pure-Python ``random.Random`` seeds); model training is
seeded and deterministic for a given torch version and thread count.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import make_corpus
from .instructions import format_instruction, make_instructions
from .reviews import make_splits

COMMAND = "python -m peftlab.datagen --out data"


@dataclass
class BuildConfig:
    """Every size, seed and hyper-parameter of a build."""

    sentiment_sizes: dict = field(default_factory=lambda: {"train": 3000, "valid": 500, "test": 1000})
    corpus_lines: int = 28000
    #: share of movie talk in the corpus, and share of it that carries a verdict (추천합니다. / 별점 1점.)
    corpus_movie_share: float = 0.75
    corpus_verdict_share: float = 0.6
    heldout_lines: int = 1000
    instruction_sizes: dict = field(default_factory=lambda: {"train": 1800, "test": 200})
    vocab_size: int = 3000
    seeds: dict = field(default_factory=lambda: {
        "sentiment": 13, "corpus": 7, "instructions": 11, "mlm": 0, "clm": 0})
    zipf: float = 1.0
    encoder: dict = field(default_factory=lambda: {
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
        "max_position_embeddings": 128})
    causal_lm: dict = field(default_factory=lambda: {
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "intermediate_size": 256, "max_position_embeddings": 256})
    mlm: dict = field(default_factory=lambda: {"steps": 2500, "batch_size": 128, "lr": 1e-3, "mask_prob": 0.2})
    clm: dict = field(default_factory=lambda: {"steps": 1200, "batch_size": 32, "lr": 2e-3, "block": 64})
    probe_seeds: tuple = (0, 1, 2)
    probe_recipe: dict | None = None  # None: probe.RECIPE
    probe_lora: dict | None = None  # None: probe.LORA
    low_label_n: int = 1000
    #: torch intra-op threads. 1 keeps results identical across machines and avoids the
    #: oversubscription slow-down (10x+) of 2 threads on a busy 2-core machine.
    threads: int = 1

    @classmethod
    def quick(cls) -> BuildConfig:
        return cls(
            sentiment_sizes={"train": 200, "valid": 40, "test": 100}, corpus_lines=1500, heldout_lines=100,
            instruction_sizes={"train": 100, "test": 20}, vocab_size=600,
            encoder={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 64},
            causal_lm={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 128},
            mlm={"steps": 20, "batch_size": 32, "lr": 1e-3}, clm={"steps": 20, "batch_size": 8, "lr": 2e-3, "block": 32},
            probe_seeds=(0,), probe_recipe={"epochs": 1, "lr": 1e-3, "batch_size": 32, "max_length": 32},
            low_label_n=100,
        )


# ---- files ----------------------------------------------------------------------------------------
def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def split_sentences(text: str) -> list[str]:
    """Sentences of a review (split after . ! ~), as the corpus writes them."""
    return [s.strip() for s in re.split(r"(?<=[.!~])\s+", text) if s.strip()]


# ---- text -----------------------------------------------------------------------------------------
def generate_text(cfg: BuildConfig) -> dict:
    """All generated text, in memory: sentiment splits, corpus lines, instruction splits."""
    splits = make_splits(cfg.sentiment_sizes, seed=cfg.seeds["sentiment"], zipf=cfg.zipf)
    protected: set[str] = set()
    for name in ("valid", "test"):
        for rev in splits[name]:
            protected.add(rev.text)
            protected.update(split_sentences(rev.text))
    corpus = make_corpus(cfg.corpus_lines, seed=cfg.seeds["corpus"], exclude=protected,
                         movie_share=cfg.corpus_movie_share, verdict_share=cfg.corpus_verdict_share)
    test_texts = {rev.text for name in ("valid", "test") for rev in splits[name]}
    instructions = make_instructions(cfg.instruction_sizes, seed=cfg.seeds["instructions"], exclude=test_texts)
    return {"sentiment": splits, "corpus": corpus, "instructions": instructions}


def write_text(out: Path, text: dict) -> None:
    for name, rows in text["sentiment"].items():
        write_jsonl(out / "sentiment" / f"{name}.jsonl", [{"text": r.text, "label": r.label} for r in rows])
    write_lines(out / "corpus" / "ko_corpus.txt", text["corpus"])
    for name, rows in text["instructions"].items():
        write_jsonl(out / "instructions" / f"{name}.jsonl", rows)


# ---- models ---------------------------------------------------------------------------------------
def build(out: str | Path, quick: bool = False, cfg: BuildConfig | None = None, log=print) -> dict:
    """Run the whole pipeline into ``out``; returns the manifest (also written to MANIFEST.json)."""
    import torch
    import transformers
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForCausalLM,
    )

    from .pretrain import evaluate_clm, evaluate_mlm, pack_blocks, pretrain_clm, pretrain_mlm
    from .tokenizer import causal_tokenizer, encoder_tokenizer, train_wordpiece

    cfg = cfg or (BuildConfig.quick() if quick else BuildConfig())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(cfg.threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    metrics: dict = {}

    log(f"[1/6] text → {out}")
    t0 = time.perf_counter()
    text = generate_text(cfg)
    write_text(out, text)
    metrics["text_seconds"] = round(time.perf_counter() - t0, 1)

    log("[2/6] tokenizer")
    corpus = text["corpus"]
    train_lines, held_lines = corpus[: -cfg.heldout_lines], corpus[-cfg.heldout_lines:]
    instr_train = [format_instruction(r["instruction"], r["output"]) for r in text["instructions"]["train"]]
    instr_test = [format_instruction(r["instruction"], r["output"]) for r in text["instructions"]["test"]]
    wp = train_wordpiece(train_lines + instr_train, cfg.vocab_size)
    enc_tok, lm_tok = encoder_tokenizer(wp), causal_tokenizer(wp)

    log("[3/6] masked-LM encoder")
    torch.manual_seed(cfg.seeds["mlm"])
    bert_cfg = BertConfig(vocab_size=len(enc_tok), pad_token_id=enc_tok.pad_token_id, **cfg.encoder)
    bert = BertForMaskedLM(bert_cfg)
    mask_prob = cfg.mlm.get("mask_prob", 0.15)
    start = evaluate_mlm(bert, enc_tok, held_lines, mask_prob=mask_prob)
    run = pretrain_mlm(bert, enc_tok, train_lines, seed=cfg.seeds["mlm"], log=log,
                       **{"mask_prob": mask_prob, **cfg.mlm})
    end = evaluate_mlm(bert, enc_tok, held_lines, mask_prob=mask_prob)
    metrics["mlm"] = {"heldout_lines": len(held_lines), "start": start, "end": end, **run}
    log(f"  MLM held-out: loss {start['loss']} → {end['loss']}, accuracy {start['accuracy']} → {end['accuracy']}")
    enc_dir = out / "models" / "tiny-ko-bert"
    bert.save_pretrained(enc_dir)
    enc_tok.save_pretrained(enc_dir)

    log("[4/6] causal LM")
    torch.manual_seed(cfg.seeds["clm"])
    llama_cfg = LlamaConfig(
        vocab_size=len(lm_tok), pad_token_id=lm_tok.pad_token_id, bos_token_id=lm_tok.bos_token_id,
        eos_token_id=lm_tok.eos_token_id, tie_word_embeddings=True, **cfg.causal_lm)
    llama = LlamaForCausalLM(llama_cfg)
    block = cfg.clm["block"]
    train_blocks = pack_blocks(lm_tok, train_lines + instr_train, block)
    held_blocks = pack_blocks(lm_tok, held_lines + instr_test, block)
    start = evaluate_clm(llama, held_blocks)
    run = pretrain_clm(llama, train_blocks, seed=cfg.seeds["clm"], log=log,
                       **{k: v for k, v in cfg.clm.items() if k != "block"})
    end = evaluate_clm(llama, held_blocks)
    metrics["clm"] = {"block": block, "heldout_blocks": len(held_blocks), "start": start, "end": end, **run}
    log(f"  LM held-out: perplexity {start['perplexity']} → {end['perplexity']}")
    lm_dir = out / "models" / "tiny-ko-llama"
    llama.generation_config.pad_token_id = lm_tok.pad_token_id
    llama.save_pretrained(lm_dir)
    lm_tok.save_pretrained(lm_dir)

    log("[5/6] proof: fine-tune pretrained vs from scratch, and LoRA on the frozen pretrained encoder")
    from .probe import LORA, RECIPE, finetune_classifier, lora_model

    recipe = dict(cfg.probe_recipe or RECIPE)
    lora = dict(cfg.probe_lora or LORA)
    train = [(r.text, r.label) for r in text["sentiment"]["train"]]
    test = [(r.text, r.label) for r in text["sentiment"]["test"]]
    low = train[: cfg.low_label_n]

    def pretrained():
        return BertForSequenceClassification.from_pretrained(enc_dir, num_labels=2)

    def scratch():
        return BertForSequenceClassification(BertConfig.from_pretrained(enc_dir, num_labels=2))

    def run_one(make, rows, seed, **over):
        torch.manual_seed(seed)
        model = make()
        return finetune_classifier(model, enc_tok, rows, test, seed=seed, **{**recipe, **over})

    runs, low_runs, lora_runs = [], [], []
    for seed in cfg.probe_seeds:
        r_pre, r_scr = run_one(pretrained, train, seed), run_one(scratch, train, seed)
        r_lora = run_one(lambda: lora_model(pretrained(), lora), train, seed, lr=lora["lr"])
        l_pre, l_scr = run_one(pretrained, low, seed), run_one(scratch, low, seed)
        runs.append({"seed": seed, "pretrained": r_pre, "scratch": r_scr})
        lora_runs.append({"seed": seed, **r_lora})
        low_runs.append({"seed": seed, "pretrained": l_pre, "scratch": l_scr})
        log(f"  seed {seed}: pretrained {r_pre['accuracy']:.3f} ({r_pre['train_seconds']}s)  "
            f"scratch {r_scr['accuracy']:.3f} ({r_scr['train_seconds']}s)  "
            f"LoRA {r_lora['accuracy']:.3f} ({r_lora['train_seconds']}s)  "
            f"| {len(low)} train: pretrained {l_pre['accuracy']:.3f} scratch {l_scr['accuracy']:.3f}")

    def mean(rs, k=None):
        return round(sum((r[k] if k else r)["accuracy"] for r in rs) / len(rs), 4)

    metrics["finetune_proof"] = {
        "task": "sentiment train → test accuracy, full fine-tuning of tiny-ko-bert (pooler+classifier new)",
        "recipe": recipe, "runs": runs, "mean_pretrained": mean(runs, "pretrained"),
        "mean_scratch": mean(runs, "scratch"),
        "gap_points": round(100 * (mean(runs, "pretrained") - mean(runs, "scratch")), 1),
        "low_label": {
            "train_examples": len(low), "runs": low_runs, "mean_pretrained": mean(low_runs, "pretrained"),
            "mean_scratch": mean(low_runs, "scratch"),
            "gap_points": round(100 * (mean(low_runs, "pretrained") - mean(low_runs, "scratch")), 1),
        },
        "lora": {
            "task": "same data and recipe; LoRA adapters on the frozen pretrained encoder, classifier trained",
            "config": lora, "runs": lora_runs, "mean": mean(lora_runs),
        },
    }
    p = metrics["finetune_proof"]
    log(f"  mean: pretrained {p['mean_pretrained']:.3f} vs scratch {p['mean_scratch']:.3f}; "
        f"LoRA {p['lora']['mean']:.3f}; {len(low)} train: {p['low_label']['mean_pretrained']:.3f} vs "
        f"{p['low_label']['mean_scratch']:.3f}")

    log("[6/6] README + MANIFEST")
    metrics["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    from .readme import README

    (out / "README.md").write_text(README, encoding="utf-8", newline="\n")
    manifest = make_manifest(out, cfg, metrics, quick)
    for path in [out, *out.rglob("*")]:  # save_pretrained writes 0600 files; graders read them as another uid
        path.chmod(0o755 if path.is_dir() else 0o644)
    log(f"done in {metrics['wall_seconds']} s; {manifest['total_bytes'] / 1e6:.2f} MB in {len(manifest['files'])} files")
    return manifest


def make_manifest(out: Path, cfg: BuildConfig, metrics: dict, quick: bool) -> dict:
    import datasets
    import safetensors
    import tokenizers
    import torch
    import transformers

    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "MANIFEST.json":
            files[p.relative_to(out).as_posix()] = {"bytes": p.stat().st_size, "sha256": sha256(p)}
    manifest = {
        "name": "peftlab tiny profile" + (" (quick build, for tests)" if quick else ""),
        "command": COMMAND + (" --quick" if quick else ""),
        "license": "Generated by the peftlab kit (Apache-2.0); no third-party text or weights.",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "metrics": metrics,
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "datasets": datasets.__version__,
            "safetensors": safetensors.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "argv": sys.argv[1:],
        },
        "total_bytes": sum(f["bytes"] for f in files.values()),
        "files": files,
    }
    (out / "MANIFEST.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8",
                                       newline="\n")
    return manifest
