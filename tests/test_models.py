"""Loading the tiny base models offline through the same from_pretrained path a Hub model uses."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from peftlab import models  # noqa: E402
from peftlab.data import load_sentiment, tokenize_sentiment  # noqa: E402


@pytest.fixture(autouse=True)
def _tiny(monkeypatch):
    monkeypatch.setenv("PEFTLAB_PROFILE", "tiny")


def test_profile_default_env_and_errors(monkeypatch):
    monkeypatch.delenv("PEFTLAB_PROFILE")
    assert models.get_profile() == "tiny"
    monkeypatch.setenv("PEFTLAB_PROFILE", "colab")
    assert models.get_profile() == "colab"
    assert models.model_path("encoder") == "klue/bert-base"
    assert models.get_profile("tiny") == "tiny"
    monkeypatch.setenv("PEFTLAB_PROFILE", "gpu")
    with pytest.raises(ValueError, match=r"PEFTLAB_PROFILE='gpu'.*'tiny', 'colab'"):
        models.get_profile()
    with pytest.raises(ValueError, match=r"profile='big'"):
        models.get_profile("big")


def test_model_path_rejects_unknown_kind():
    with pytest.raises(ValueError, match=r"kind='decoder'.*'encoder', 'causal_lm'"):
        models.model_path("decoder")
    assert models.model_path("encoder").endswith("tiny-ko-bert")
    assert models.model_path("causal_lm").endswith("tiny-ko-llama")


def test_tokenizers_load_offline_with_special_tokens():
    enc = models.load_tokenizer("encoder")
    ids = enc("연기가 정말 좋았다.")["input_ids"]
    assert ids[0] == enc.cls_token_id and ids[-1] == enc.sep_token_id
    assert enc.decode(ids, skip_special_tokens=True) == "연기가 정말 좋았다."
    assert {enc.pad_token, enc.mask_token, enc.unk_token} == {"[PAD]", "[MASK]", "[UNK]"}
    lm = models.load_tokenizer("causal_lm")
    ids = lm("질문: 2 더하기 3는?")["input_ids"]
    assert ids[0] == lm.bos_token_id and lm.eos_token == "[EOS]"
    assert 2000 <= len(enc) == len(lm) <= 4000


def test_encoder_classifier_shapes_and_pretrained_vs_scratch():
    tok = models.load_tokenizer("encoder")
    torch.manual_seed(0)
    pre = models.load_encoder_classifier(num_labels=2)
    torch.manual_seed(0)
    scratch = models.load_encoder_classifier(num_labels=2, pretrained=False)
    batch = tok(["연기가 좋았다.", "스토리가 지루하지 않았지만 결말이 뻔했다."], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert tuple(pre(**batch).logits.shape) == (2, 2)
        assert tuple(scratch(**batch).logits.shape) == (2, 2)
    assert pre.config.to_dict()["hidden_size"] == scratch.config.hidden_size
    sp, ss = pre.state_dict(), scratch.state_dict()
    assert sp.keys() == ss.keys()
    name = "bert.embeddings.word_embeddings.weight"
    assert not torch.equal(sp[name], ss[name]), "pretrained=False must not load the pretrained weights"
    with pytest.raises(ValueError, match="num_labels=1"):
        models.load_encoder_classifier(num_labels=1)


def test_causal_lm_is_llama_shaped_and_runs():
    lm = models.load_causal_lm()
    tok = models.load_tokenizer("causal_lm")
    cfg = lm.config
    assert cfg.model_type == "llama"
    assert cfg.hidden_size % 32 == 0 and cfg.intermediate_size % 32 == 0
    names = {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names
    batch = tok(["질문: 3 더하기 4는?\n답:"], return_tensors="pt")
    with torch.no_grad():
        out = lm(**batch)
        gen = lm.generate(**batch, max_new_tokens=3, do_sample=False)
    assert tuple(out.logits.shape) == (1, batch["input_ids"].shape[1], len(tok))
    assert gen.shape[1] <= batch["input_ids"].shape[1] + 3


def test_tokenize_sentiment_helper():
    tok = models.load_tokenizer("encoder")
    ds = tokenize_sentiment(load_sentiment()["validation"].select(range(8)), tok, max_length=16)
    assert {"input_ids", "attention_mask", "label"} <= set(ds.column_names)
    assert max(len(x) for x in ds["input_ids"]) <= 16
    with pytest.raises(ValueError, match="max_length=0"):
        tokenize_sentiment(ds, tok, max_length=0)


def test_encoder_ships_a_pretrained_pooler():
    """Like real BERT checkpoints: only the classifier is new, so a standard peft recipe (which trains the
    classifier and freezes the rest) does not sit behind a random pooler."""
    torch.manual_seed(0)
    a = models.load_encoder_classifier(num_labels=2).state_dict()
    torch.manual_seed(1)
    b = models.load_encoder_classifier(num_labels=2).state_dict()
    new = {k for k in a if not torch.equal(a[k], b[k])}
    assert "classifier.weight" in new and new <= {"classifier.weight", "classifier.bias"}, new
