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
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .corpus import make_corpus
from .instructions import format_instruction, make_instructions
from .reviews import make_splits
from .world import heldout_world_lines, make_people, make_world_corpus

COMMAND = "python -m peftlab.datagen --out data"


@dataclass
class BuildConfig:
    """Every size, seed and hyper-parameter of a build."""

    sentiment_sizes: dict = field(default_factory=lambda: {"train": 3000, "valid": 500, "test": 2000})
    #: share of the labelled reviews in the harder shapes (reviews.ReviewGenerator._hard_review)
    sentiment_hard_share: float = 0.4
    corpus_lines: int = 28000
    #: share of movie talk in the corpus, and share of it that carries a verdict (추천합니다. / 별점 1점.)
    corpus_movie_share: float = 0.75
    corpus_verdict_share: float = 0.6
    heldout_lines: int = 1000
    #: reviews in the held-out-lexicon test split (sentiment/heldout_lexicon.jsonl)
    heldout_lexicon_size: int = 1000
    #: people of the synthetic world, and lines of knowledge text about it (corpus/ko_world.txt)
    people: int = 96
    world_lines: int = 40000
    instruction_sizes: dict = field(default_factory=lambda: {"train": 470, "test": 326})
    vocab_size: int = 3000
    seeds: dict = field(default_factory=lambda: {
        "sentiment": 13, "corpus": 7, "world": 3, "instructions": 11, "mlm": 0, "clm": 0, "lm_text_order": 5})
    zipf: float = 1.0
    encoder: dict = field(default_factory=lambda: {
        "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256,
        "max_position_embeddings": 128})
    causal_lm: dict = field(default_factory=lambda: {
        "hidden_size": 96, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
        "intermediate_size": 256, "max_position_embeddings": 256})
    #: encoder pretraining (masked LM + verdict MLM + continuation through the pooler + verdict family from
    #: mean-pooled token states, see pretrain.pretrain_encoder)
    mlm: dict = field(default_factory=lambda: {"steps": 2000, "batch_size": 128, "lr": 1.5e-3, "mask_prob": 0.15})
    #: causal LM pretraining. ``corpus_repeats``: the corpus lines enter the LM's text that many times (with the
    #: knowledge lines once): a model that has to share its capacity between corpus and knowledge text sits where
    #: the held-out *corpus* loss still has a gradient (p_corpus·g_corpus = −p_world·g_world at the optimum), and
    #: that first-order term, not the weight error, decided the sign of NF4's held-out change at 1 repeat /
    #: 1,800 steps (−0.09 %); 2 repeats and 2,700 steps shrink it and enlarge the second-order (error-driven) part
    clm: dict = field(default_factory=lambda: {"steps": 2700, "batch_size": 32, "lr": 2e-3, "block": 64,
                                               "corpus_repeats": 2})
    probe_seeds: tuple = (0, 1, 2)
    #: the encoder table trains on the first N training reviews (a few-label subset, ``select(range(N))``, like
    #: the first-1,000 subsets most weeks train on); None = the whole train split. On all 3,000 full fine-tuning
    #: learns the last-clause rule to 0.99 and the methods cannot differ (target encoder.full_range).
    probe_train_size: int | None = 600
    probe_recipe: dict | None = None  # overrides of probe.RECIPE (encoder fine-tuning)
    lm_recipe: dict | None = None  # overrides of lmprobe.LM_LORA (instruction tuning)
    qr_setup: dict | None = None  # overrides of lmprobe.QR_SETUP (room for a per-layer bit search, Week 05)
    #: torch intra-op threads. 1 keeps results identical across machines and avoids the
    #: oversubscription slow-down (10x+) of 2 threads on a busy 2-core machine.
    threads: int = 1
    #: processes: 2 pretrains and measures the two models at once (same results as 1)
    workers: int = 2

    @classmethod
    def quick(cls) -> BuildConfig:
        return cls(
            sentiment_sizes={"train": 200, "valid": 40, "test": 100}, corpus_lines=1500, heldout_lines=100,
            heldout_lexicon_size=60, people=24, world_lines=600,
            instruction_sizes={"train": 100, "test": 30}, vocab_size=600,
            encoder={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
                     "max_position_embeddings": 64},
            causal_lm={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2,
                       "intermediate_size": 64, "max_position_embeddings": 128},
            mlm={"steps": 20, "batch_size": 32, "lr": 1e-3, "mask_prob": 0.15},
            clm={"steps": 20, "batch_size": 8, "lr": 2e-3, "block": 32, "corpus_repeats": 2},
            probe_seeds=(0,), probe_recipe={"epochs": 1},
            lm_recipe={"epochs": 1}, qr_setup={"train_lines": 100, "test_lines": 60}, workers=1,
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
    """All generated text, in memory: sentiment splits (the labelled ones without the held-out
    lexicon, and the held-out-lexicon test split), corpus lines, knowledge lines, instruction splits."""
    splits = make_splits(cfg.sentiment_sizes, seed=cfg.seeds["sentiment"], zipf=cfg.zipf, lexicon="main",
                         hard_share=cfg.sentiment_hard_share)
    heldout = make_splits({"heldout_lexicon": cfg.heldout_lexicon_size}, seed=cfg.seeds["sentiment"] + 1, zipf=0.0,
                          lexicon="heldout", seen={r.text for rows in splits.values() for r in rows})
    splits.update(heldout)
    protected: set[str] = set()
    for name in ("valid", "test", "heldout_lexicon"):
        for rev in splits[name]:
            protected.add(rev.text)
            protected.update(split_sentences(rev.text))
    corpus = make_corpus(cfg.corpus_lines, seed=cfg.seeds["corpus"], exclude=protected,
                         movie_share=cfg.corpus_movie_share, verdict_share=cfg.corpus_verdict_share)
    people = make_people(cfg.people, seed=cfg.seeds["world"])
    world = make_world_corpus(cfg.world_lines, people, seed=cfg.seeds["world"] + 1)
    instructions = make_instructions(cfg.instruction_sizes, seed=cfg.seeds["instructions"], people=people)
    # candidates for the held-out knowledge lines (new sentences about the same facts); how many are kept is
    # decided by tokens once the tokenizer exists (select_heldout_world)
    world_heldout = heldout_world_lines(people, set(world), 4 * cfg.heldout_lines, seed=cfg.seeds["world"] + 2)
    return {"sentiment": splits, "corpus": corpus, "world": world, "instructions": instructions,
            "world_heldout": world_heldout}


def select_heldout_world(tokenizer, lm_lines: list[str], world: list[str], held_corpus: list[str],
                         candidates: list[str]) -> tuple[list[str], dict]:
    """The held-out text of the causal LM: the corpus's held-out lines plus the first knowledge ``candidates``
    whose tokens make knowledge text the same share of the held-out tokens as of the LM's training tokens.

    Why both: the LM minimises its loss on the *mixture* of corpus and knowledge text, so at its optimum the two
    gradients cancel (p·g_corpus + (1 − p)·g_world = 0) while neither is zero alone; a loss on corpus lines only
    keeps a first-order term (g_corpus · Δ) that decides the sign of a small weight change by chance. On the
    training mixture that term averages out and the weight error's own (second-order) cost is what is measured.
    """
    count = lambda lines: sum(len(ids) for ids in tokenizer(lines)["input_ids"])  # noqa: E731
    world_set = set(world)
    train_world = sum(len(ids) for line, ids in zip(lm_lines, tokenizer(lm_lines)["input_ids"], strict=True) if line in world_set)
    train_total = count(lm_lines)
    share = train_world / train_total
    need = share / (1 - share) * count(held_corpus)
    chosen, have = [], 0
    for line, ids in zip(candidates, tokenizer(candidates)["input_ids"], strict=True):
        if have >= need:
            break
        chosen.append(line)
        have += len(ids)
    if have < need:
        raise RuntimeError(f"only {len(candidates)} held-out knowledge candidates ({have} of {need:.0f} tokens); "
                           "raise the candidate count in generate_text")
    return chosen, {"train_knowledge_token_share": round(share, 4),
                    "heldout_knowledge_token_share": round(have / (have + count(held_corpus)), 4)}


def write_text(out: Path, text: dict) -> None:
    for name, rows in text["sentiment"].items():
        write_jsonl(out / "sentiment" / f"{name}.jsonl", [{"text": r.text, "label": r.label} for r in rows])
    write_lines(out / "corpus" / "ko_corpus.txt", text["corpus"])
    write_lines(out / "corpus" / "ko_world.txt", text["world"])
    for name, rows in text["instructions"].items():
        write_jsonl(out / "instructions" / f"{name}.jsonl", rows)


# ---- models ---------------------------------------------------------------------------------------
def _setup_torch(threads: int) -> None:
    import torch
    import transformers

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _log(prefix: str):
    return lambda s: print(f"{prefix}{s}", flush=True)


def encoder_branch(out: str, cfg: BuildConfig, train_lines: list[str], held_lines: list[str],
                   sentiment: dict[str, list[tuple[str, int]]], log=None) -> dict:
    """Pretrain the encoder (masked LM + verdict objectives), save it, measure its table."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForPreTraining

    from . import lexicon as L
    from .pretrain import evaluate_mlm, pretrain_encoder, verdict_accuracy
    from .probe import measure_encoder

    _setup_torch(cfg.threads)
    log = log or _log("[encoder] ")
    enc_dir = Path(out) / "models" / "tiny-ko-bert"
    tok = AutoTokenizer.from_pretrained(enc_dir)
    torch.manual_seed(cfg.seeds["mlm"])
    model = BertForPreTraining(BertConfig(vocab_size=len(tok), pad_token_id=tok.pad_token_id, **cfg.encoder))
    mp = cfg.mlm["mask_prob"]
    start = evaluate_mlm(model, tok, held_lines, mask_prob=mp)
    v_start = verdict_accuracy(model, tok, held_lines, L.VERDICTS)
    run = pretrain_encoder(model, tok, train_lines, L.VERDICTS, seed=cfg.seeds["mlm"], log=log, **cfg.mlm)
    end = evaluate_mlm(model, tok, held_lines, mask_prob=mp)
    v_end = verdict_accuracy(model, tok, held_lines, L.VERDICTS)
    start["verdict_accuracy"], end["verdict_accuracy"] = v_start["accuracy"], v_end["accuracy"]
    log(f"MLM held-out: loss {start['loss']} → {end['loss']}, accuracy {start['accuracy']} → {end['accuracy']}; "
        f"masked verdict of the right polarity {v_start['accuracy']} → {v_end['accuracy']} ({v_end['lines']} lines)")
    model.save_pretrained(enc_dir)
    table = measure_encoder(enc_dir, sentiment["train"][: cfg.probe_train_size], sentiment["test"],
                            sentiment["heldout_lexicon"], cfg.probe_seeds, recipe=cfg.probe_recipe, log=log)
    return {"mlm": {"heldout_lines": len(held_lines), "start": start, "end": end, **run}, "encoder": table}


def lm_branch(out: str, cfg: BuildConfig, train_lines: list[str], held_lines: list[str],
              instructions: dict[str, list[dict]], world_lines: list[str], held_world: list[str],
              held_shares: dict, log=None) -> dict:
    """Pretrain the causal LM on corpus + knowledge text (no instruction text), save it, measure its table."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from .lmprobe import heldout_quantization, measure_lm, qr_headroom
    from .pretrain import evaluate_clm, pack_blocks, pretrain_clm

    _setup_torch(cfg.threads)
    log = log or _log("[causal LM] ")
    lm_dir = Path(out) / "models" / "tiny-ko-llama"
    tok = AutoTokenizer.from_pretrained(lm_dir)
    torch.manual_seed(cfg.seeds["clm"])
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, tie_word_embeddings=True, **cfg.causal_lm))
    block = cfg.clm["block"]
    train_blocks, held_blocks = pack_blocks(tok, train_lines, block), pack_blocks(tok, held_lines, block)
    start = evaluate_clm(model, held_blocks)
    run = pretrain_clm(model, train_blocks, seed=cfg.seeds["clm"], log=log,
                       **{k: v for k, v in cfg.clm.items() if k not in ("block", "corpus_repeats")})
    end = evaluate_clm(model, held_blocks)
    log(f"LM held-out corpus: perplexity {start['perplexity']} → {end['perplexity']}")
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(lm_dir)
    log(f"held-out text: {len(held_lines)} corpus + {len(held_world)} knowledge lines")
    heldout = {**heldout_quantization(model, tok, held_lines + held_world, log=log),
               "corpus_lines": len(held_lines), "knowledge_lines": len(held_world), **held_shares}
    log("held-out corpus lines alone (the first-order account)")
    heldout_corpus = heldout_quantization(model, tok, held_lines, log=log)
    table = measure_lm(lm_dir, instructions["train"], instructions["test"], cfg.probe_seeds, recipe=cfg.lm_recipe,
                       log=log)
    table["heldout"] = heldout
    table["heldout_corpus"] = heldout_corpus
    table["qr_headroom"] = qr_headroom(lm_dir, world_lines, cfg.qr_setup, log=log)
    return {"clm": {"block": block, "train_blocks": len(train_blocks), "heldout_blocks": len(held_blocks),
                    "start": start, "end": end, **run}, "causal_lm": table}


class TargetsMissed(SystemExit):
    """``make data`` exits non-zero: a model missed a target of peftlab/datagen/targets.py."""


def build(out: str | Path, quick: bool = False, cfg: BuildConfig | None = None, log=print) -> dict:
    """Run the whole pipeline into ``out``; returns the manifest (also written to MANIFEST.json).

    The two models are pretrained and measured in two worker processes at once (one torch thread
    each, so the weights do not depend on how the work is spread); ``cfg.workers = 1`` runs them one
    after the other in this process. After README and MANIFEST are written, a full build raises
    :class:`TargetsMissed` (exit status 1) naming every target a model missed; a ``--quick`` build
    (miniature models, for tests) records the same checks but does not enforce them.
    """
    import random

    from . import lexicon as L
    from .tokenizer import causal_tokenizer, encoder_tokenizer, train_wordpiece

    cfg = cfg or (BuildConfig.quick() if quick else BuildConfig())
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    _setup_torch(cfg.threads)
    metrics: dict = {}

    log(f"[1/5] text → {out}")
    t0 = time.perf_counter()
    text = generate_text(cfg)
    write_text(out, text)
    metrics["text_seconds"] = round(time.perf_counter() - t0, 1)
    metrics["instructions"] = {name: {"rows": len(rows), "by_task": dict(sorted(Counter(r["task"] for r in rows).items())),
                                      **({"by_phrasing": dict(sorted(Counter(r["phrasing"] for r in rows).items()))}
                                         if rows and "phrasing" in rows[0] else {})}
                               for name, rows in text["instructions"].items()}

    log("[2/5] tokenizer")
    corpus = text["corpus"]
    train_lines, held_lines = corpus[: -cfg.heldout_lines], corpus[-cfg.heldout_lines:]
    instr_train = [format_instruction(r["instruction"], r["output"]) for r in text["instructions"]["train"]]
    people = make_people(cfg.people, seed=cfg.seeds["world"])
    wp = train_wordpiece(train_lines + text["world"] + instr_train, cfg.vocab_size,
                         keep_words=[*L.ENTITY_WORDS, *(p.name for p in people)], suffixes=L.ENTITY_SUFFIXES)
    enc_tok, lm_tok = encoder_tokenizer(wp), causal_tokenizer(wp)
    enc_tok.save_pretrained(out / "models" / "tiny-ko-bert")
    lm_tok.save_pretrained(out / "models" / "tiny-ko-llama")
    # the LM reads corpus (repeated) and knowledge lines interleaved (a fixed shuffle), never instruction text
    lm_lines = text["world"] + train_lines * cfg.clm.get("corpus_repeats", 1)
    random.Random(cfg.seeds["lm_text_order"]).shuffle(lm_lines)
    held_world, held_shares = select_heldout_world(lm_tok, lm_lines, text["world"], held_lines, text["world_heldout"])
    write_lines(out / "corpus" / "ko_world_heldout.txt", held_world)
    sentiment = {k: [(r.text, r.label) for r in rows] for k, rows in text["sentiment"].items()}

    log("[3/5] pretraining and measuring both models" + (" (two processes)" if cfg.workers > 1 else ""))
    enc_args = (str(out), cfg, train_lines, held_lines, sentiment)
    lm_args = (str(out), cfg, lm_lines, held_lines, text["instructions"], text["world"], held_world, held_shares)
    if cfg.workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=2, mp_context=mp.get_context("spawn")) as pool:
            f_enc, f_lm = pool.submit(encoder_branch, *enc_args), pool.submit(lm_branch, *lm_args)
            enc_res, lm_res = f_enc.result(), f_lm.result()
    else:
        enc_res = encoder_branch(*enc_args, log=_log("  [encoder] "))
        lm_res = lm_branch(*lm_args, log=_log("  [causal LM] "))
    metrics.update(enc_res)
    metrics.update(lm_res)

    log("[4/5] targets")
    from .targets import NOT_ENFORCED, check, describe, missed

    rows = check(metrics["encoder"], metrics["causal_lm"])
    metrics["targets"] = {"enforced": not quick, "rows": rows, "missed": len(missed(rows)),
                          "not_enforced": {k: v for k, v in NOT_ENFORCED.items()}}
    for r in rows:
        tag = "ok    " if r["ok"] else ("MISSED" if r["enforced"] else "missed (reported, not enforced)")
        log(f"  {tag} {r['target']:26s} seed {r['seed']}: {r['value']} ({r['bound']})")

    log("[5/5] README + MANIFEST")
    metrics["wall_seconds"] = round(time.perf_counter() - t_all, 1)
    from .readme import render

    (out / "README.md").write_text(render(cfg, metrics, quick), encoding="utf-8", newline="\n")
    manifest = make_manifest(out, cfg, metrics, quick)
    for path in [out, *out.rglob("*")]:  # save_pretrained writes 0600 files; graders read them as another uid
        path.chmod(0o755 if path.is_dir() else 0o644)
    log(f"done in {metrics['wall_seconds']} s; {manifest['total_bytes'] / 1e6:.2f} MB in {len(manifest['files'])} files")
    if missed(rows) and not quick:
        raise TargetsMissed("make data: the tiny models missed targets of peftlab/datagen/targets.py:\n" + describe(missed(rows)))
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
