"""The embedded tiny-profile data: integrity, balance, difficulty, determinism, and the build itself."""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from peftlab import data as pdata  # noqa: E402
from peftlab.datagen import make_corpus, make_instructions, make_splits  # noqa: E402
from peftlab.datagen.build import BuildConfig, generate_text, sha256, split_sentences  # noqa: E402


@pytest.fixture(scope="module")
def root():
    return pdata.data_root()


@pytest.fixture(scope="module")
def manifest(root):
    return json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def sentiment(root):
    return {s: pdata.read_jsonl(root / "sentiment" / f"{s}.jsonl") for s in ("train", "valid", "test")}


def test_every_file_matches_the_manifest(root, manifest):
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert on_disk == set(manifest["files"]), "data/ and MANIFEST.json list different files"
    for rel, info in manifest["files"].items():
        assert (root / rel).stat().st_size == info["bytes"], rel
        assert sha256(root / rel) == info["sha256"], f"{rel} changed since the build"
    assert manifest["total_bytes"] < 8_500_000


def test_manifest_records_the_proof_that_pretraining_helps(manifest):
    proof = manifest["metrics"]["finetune_proof"]
    assert len(proof["runs"]) == 3
    for run in proof["runs"]:
        assert run["pretrained"]["accuracy"] > run["scratch"]["accuracy"], run
    assert proof["mean_pretrained"] >= 0.85
    mlm, clm = manifest["metrics"]["mlm"], manifest["metrics"]["clm"]
    assert mlm["end"]["loss"] < mlm["start"]["loss"] and mlm["end"]["accuracy"] > 0.3
    assert clm["end"]["perplexity"] < clm["start"]["perplexity"] / 20
    assert len(proof["low_label"]["runs"]) == len(proof["lora"]["runs"]) == 3


def test_manifest_proof_used_the_current_recipe(manifest):
    from peftlab.datagen.probe import LORA, RECIPE

    proof = manifest["metrics"]["finetune_proof"]
    assert proof["recipe"] == RECIPE
    assert proof["lora"]["config"] == LORA
    assert proof["low_label"]["train_examples"] == BuildConfig().low_label_n
    cfg = {k: (list(v) if isinstance(v, tuple) else v) for k, v in BuildConfig().__dict__.items()}
    assert manifest["config"] == cfg


def test_manifest_proof_reproduces(root, manifest, sentiment):
    """One real run of the proof (seed 0, pretrained, low-label regime: ~5 s) gives the recorded number."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from peftlab.datagen.probe import RECIPE, finetune_classifier

    low = manifest["metrics"]["finetune_proof"]["low_label"]
    run = next(r for r in low["runs"] if r["seed"] == 0)
    enc_dir = root / "models" / "tiny-ko-bert"
    tok = AutoTokenizer.from_pretrained(enc_dir)
    train = [(r["text"], r["label"]) for r in sentiment["train"][: low["train_examples"]]]
    test = [(r["text"], r["label"]) for r in sentiment["test"]]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = BertForSequenceClassification.from_pretrained(enc_dir, num_labels=2)
        got = finetune_classifier(model, tok, train, test, seed=0, **RECIPE)
    finally:
        torch.set_num_threads(threads)
    assert abs(got["accuracy"] - run["pretrained"]["accuracy"]) <= 0.02, (got, run)


def test_sentiment_splits_are_balanced_disjoint_and_short(sentiment):
    sizes = {s: len(rows) for s, rows in sentiment.items()}
    assert sizes == {"train": 3000, "valid": 500, "test": 1000}
    texts = [r["text"] for rows in sentiment.values() for r in rows]
    assert len(set(texts)) == len(texts), "a text occurs twice (within or across splits)"
    for split, rows in sentiment.items():
        counts = Counter(r["label"] for r in rows)
        assert counts[0] == counts[1] == len(rows) // 2, (split, counts)
        assert all(set(r) == {"text", "label"} for r in rows)
        assert all(5 <= len(r["text"].split()) <= 25 for r in rows)


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text))


def _best_single_token_accuracy(rows, tokenize) -> tuple[float, str]:
    """Accuracy of the best rule 'label = [token present]' or 'label = [token absent]' on ``rows``."""
    n = len(rows)
    pos = sum(r["label"] for r in rows)
    present_pos, present_all = Counter(), Counter()
    for r in rows:
        for t in tokenize(r["text"]):
            present_all[t] += 1
            present_pos[t] += r["label"]
    best, best_tok = 0.5, ""
    for t, k in present_all.items():
        # "present → 1": correct = present&pos + absent&neg
        acc = (present_pos[t] + (n - pos) - (k - present_pos[t])) / n
        for a in (acc, 1 - acc):
            if a > best:
                best, best_tok = a, t
    return best, best_tok


def test_no_single_token_solves_the_task(sentiment, root):
    from transformers import AutoTokenizer

    # Even the best token chosen on the test set itself (an upper bound for any rule picked on train).
    acc, tok = _best_single_token_accuracy(sentiment["test"], _words)
    assert acc < 0.75, f"word {tok!r} alone reaches {acc:.3f}"
    wp = AutoTokenizer.from_pretrained(root / "models" / "tiny-ko-bert")
    acc, tok = _best_single_token_accuracy(sentiment["test"], lambda t: set(wp.tokenize(t)))
    assert acc < 0.75, f"WordPiece token {tok!r} alone reaches {acc:.3f}"


def test_negation_and_contrast_are_present(sentiment):
    texts = [r["text"] for r in sentiment["train"]]
    share = lambda pat: sum(bool(re.search(pat, t)) for t in texts) / len(texts)  # noqa: E731
    assert share(r"지 (않|못)|(^| )안 ") > 0.2
    assert share(r"지만|는데") > 0.3


def test_text_generators_are_deterministic():
    a = make_splits({"train": 50, "test": 20}, seed=5)
    b = make_splits({"train": 50, "test": 20}, seed=5)
    assert a == b
    assert make_corpus(300, seed=3) == make_corpus(300, seed=3)
    assert make_instructions({"train": 40}, seed=2) == make_instructions({"train": 40}, seed=2)
    assert make_splits({"train": 50}, seed=6)["train"] != a["train"]


def test_shipped_text_is_what_the_generator_makes(root, manifest):
    cfg = BuildConfig()
    text = generate_text(cfg)
    assert [r["text"] for r in pdata.read_jsonl(root / "sentiment" / "test.jsonl")] == \
        [r.text for r in text["sentiment"]["test"]]
    assert pdata.load_corpus() == text["corpus"]
    assert pdata.read_jsonl(root / "instructions" / "train.jsonl") == text["instructions"]["train"]


def test_corpus_never_contains_a_test_sentence(sentiment):
    corpus = set(pdata.load_corpus())
    assert 20_000 <= len(corpus) <= 60_000
    for r in sentiment["test"] + sentiment["valid"]:
        assert r["text"] not in corpus
        for s in split_sentences(r["text"]):
            assert s not in corpus, s


def test_instruction_answers_are_right():
    ds = pdata.load_instructions()
    assert set(ds) == {"train", "test"}
    assert not set(ds["train"]["instruction"]) & set(ds["test"]["instruction"])
    for row in ds["train"]:
        q, a = row["instruction"], row["output"]
        m = re.search(r"(\d+) (?:\+|더하기) (\d+)", q) or re.search(r"(\d+)에 (\d+)[을를] 더하면", q)
        if row["task"] == "add":
            assert int(a) == int(m.group(1)) + int(m.group(2)), q
        if row["task"] == "sentiment":
            assert a in ("긍정", "부정")
    assert pdata.format_instruction("3 더하기 4는?", "7") == "질문: 3 더하기 4는?\n답: 7"


def test_load_sentiment_as_datasetdict():
    ds = pdata.load_sentiment()
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].column_names == ["text", "label"]
    assert ds.num_rows == {"train": 3000, "validation": 500, "test": 1000}


def test_missing_data_root_names_path_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTLAB_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=r"nowhere.*make data"):
        pdata.load_sentiment()


def test_quick_build_end_to_end(tmp_path, monkeypatch):
    from peftlab import models
    from peftlab.datagen.__main__ import main

    assert main(["--out", str(tmp_path), "--quick"]) == 0
    manifest = json.loads((tmp_path / "MANIFEST.json").read_text(encoding="utf-8"))
    assert "--quick" in manifest["command"]
    monkeypatch.setenv("PEFTLAB_DATA", str(tmp_path))
    monkeypatch.setenv("PEFTLAB_PROFILE", "tiny")
    assert pdata.load_sentiment().num_rows["test"] == 100
    tok = models.load_tokenizer("encoder")
    clf = models.load_encoder_classifier(num_labels=2)
    out = clf(**tok(["연기가 좋았다.", "지루했다."], padding=True, return_tensors="pt"))
    assert tuple(out.logits.shape) == (2, 2)
    lm = models.load_causal_lm()
    ltok = models.load_tokenizer("causal_lm")
    assert lm(**ltok(["질문: 1 더하기 2는?"], return_tensors="pt")).logits.shape[-1] == len(ltok)
