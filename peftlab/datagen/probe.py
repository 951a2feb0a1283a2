"""The encoder's behaviour table, measured after every build with Hugging Face ``peft``'s LoRA (none of
peftlab's adapter code), trained by the package's one training loop (:func:`peftlab.train.fit` and its
warm-up/decay schedule).

Per seed, trained on the reviews given (the build passes the first ``BuildConfig.probe_train_size`` of the
train split, a few-label subset), on the sentiment test split and on the held-out-lexicon split (reviews
whose every polar word never occurs in the labelled train split):

* linear probe: logistic regression on frozen, standardised, mean-pooled last-layer features;
* the classifier as loaded, its new head untrained (one head per seed): near chance when the pretrained
  pooler does not carry the label;
* head only: the classifier trained, encoder and pooler frozen (``HEAD_ONLY_LR``);
* full fine-tuning (``RECIPE``) of the pretrained encoder, and of the same architecture from scratch;
* LoRA via peft (``LORA``) on every encoder ``Linear`` (peft's ``"all-linear"``: attention, FFN and the
  pretrained pooler; embeddings and LayerNorms frozen; new classifier trained), and on query, value only.

The same recipe is the one the Week 01 notebook should use on this encoder.
"""

from __future__ import annotations

import itertools
import time

import torch
from torch import nn

from peftlab.train import fit, index_batches, labels_loss, make_optimizer, warmup_steps

from .pretrain import _pad

#: Fine-tuning recipe for the tiny encoder on the sentiment set (AdamW, linear warm-up and decay).
RECIPE = {"epochs": 5, "lr": 1e-3, "batch_size": 32, "max_length": 32, "weight_decay": 0.01, "warmup_ratio": 0.1}
#: head only (encoder and pooler frozen): the recipe above with this learning rate
HEAD_ONLY_LR = 1e-2
#: LoRA via peft on the frozen pretrained encoder: the recipe above with this learning rate.
LORA = {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "lr": 3e-3,
        "targets": {"all_linear": "all-linear", "query_value": ["query", "value"]}}


def lora_model(model: nn.Module, target_modules, lora: dict | None = None) -> nn.Module:
    """``model`` wrapped by peft: LoRA on ``target_modules``, classifier trained, the rest frozen."""
    from peft import LoraConfig, get_peft_model

    lo = lora or LORA
    cfg = LoraConfig(task_type="SEQ_CLS", r=lo["r"], lora_alpha=lo["lora_alpha"], lora_dropout=lo["lora_dropout"],
                     target_modules=target_modules)
    return get_peft_model(model, cfg)


def finetune_classifier(model: nn.Module, tokenizer, train: list[tuple[str, int]], test: list[tuple[str, int]],
                        *, seed: int, epochs: int, lr: float, batch_size: int, max_length: int,
                        weight_decay: float = 0.01, warmup_ratio: float = 0.1,
                        extra_tests: dict | None = None) -> dict:
    """Train every parameter that requires grad; returns test accuracy (and on ``extra_tests``) and seconds."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer([t for t, _ in train], truncation=True, max_length=max_length)["input_ids"]
    y = torch.tensor([lab for _, lab in train])
    steps = epochs * ((len(enc) + batch_size - 1) // batch_size)
    batches = ((*_pad([enc[j] for j in idx], tokenizer.pad_token_id), y[idx])
               for idx in index_batches(len(enc), batch_size, gen, epochs=epochs))
    t0 = time.perf_counter()
    fit(model, batches, labels_loss, make_optimizer(model, lr, weight_decay), total_steps=steps,
        warmup=warmup_steps(steps, warmup_ratio, at_least=1))
    train_s = time.perf_counter() - t0
    out = {"accuracy": accuracy(model, tokenizer, test, max_length), "train_seconds": round(train_s, 1)}
    for name, rows in (extra_tests or {}).items():
        out[name] = accuracy(model, tokenizer, rows, max_length)
    return out


@torch.no_grad()
def accuracy(model: nn.Module, tokenizer, rows: list[tuple[str, int]], max_length: int, batch: int = 256) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(rows), batch):
        chunk = rows[i: i + batch]
        enc = tokenizer([t for t, _ in chunk], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt")
        pred = model(**enc).logits.argmax(-1)
        correct += (pred == torch.tensor([lab for _, lab in chunk])).sum().item()
    return round(correct / len(rows), 4)


@torch.no_grad()
def mean_pooled(encoder: nn.Module, tokenizer, texts: list[str], max_length: int, batch: int = 256) -> torch.Tensor:
    """Mean of the last layer's hidden states over the real tokens ([CLS], [SEP] included)."""
    encoder.eval()
    feats = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i: i + batch], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        h = encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])[0]
        m = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
        feats.append((h * m).sum(1) / m.sum(1))
    return torch.cat(feats)


def linear_probe(encoder: nn.Module, tokenizer, train, tests: dict, *, seed: int, max_length: int = 32,
                 epochs: int = 200, lr: float = 0.05, weight_decay: float = 1e-3) -> dict:
    """Logistic regression (full-batch AdamW from a seeded init) on standardised frozen features."""
    x = mean_pooled(encoder, tokenizer, [t for t, _ in train], max_length)
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mu) / sd
    y = torch.tensor([lab for _, lab in train])
    torch.manual_seed(seed)
    head = nn.Linear(x.shape[1], 2)
    fit(head, itertools.repeat((x, y), epochs), lambda head, b: nn.functional.cross_entropy(head(b[0]), b[1]),
        make_optimizer(head, lr, weight_decay))
    out = {}
    with torch.no_grad():
        for name, rows in tests.items():
            xt = (mean_pooled(encoder, tokenizer, [t for t, _ in rows], max_length) - mu) / sd
            pred = head(xt).argmax(-1)
            out[name] = round((pred == torch.tensor([lab for _, lab in rows])).float().mean().item(), 4)
    return out


def measure_encoder(enc_dir, train, test, heldout, seeds, recipe: dict | None = None, lora: dict | None = None,
                    log=print) -> dict:
    """The encoder table for every seed."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    rc = dict(RECIPE, **(recipe or {}))
    lo = dict(LORA, **(lora or {}))
    tok = AutoTokenizer.from_pretrained(enc_dir)
    extra = {"heldout_lexicon": heldout}

    def pretrained():
        return AutoModelForSequenceClassification.from_pretrained(enc_dir, num_labels=2)

    def scratch():
        return AutoModelForSequenceClassification.from_config(AutoConfig.from_pretrained(enc_dir, num_labels=2))

    runs = []
    for seed in seeds:
        probe = linear_probe(AutoModel.from_pretrained(enc_dir, add_pooling_layer=False), tok, train,
                             {"accuracy": test, **extra}, seed=seed, max_length=rc["max_length"])
        row = {"seed": seed, "linear_probe": probe}
        torch.manual_seed(seed)
        untrained = pretrained()
        row["random_head"] = {"accuracy": accuracy(untrained, tok, test, rc["max_length"]),
                              "heldout_lexicon": accuracy(untrained, tok, heldout, rc["max_length"])}
        torch.manual_seed(seed)
        head_only = pretrained()
        for name, param in head_only.named_parameters():
            param.requires_grad_(name.startswith("classifier."))
        row["head_only"] = finetune_classifier(head_only, tok, train, test, seed=seed, extra_tests=extra,
                                               **{**rc, "lr": HEAD_ONLY_LR})
        for name, make, lr in (("full", pretrained, rc["lr"]), ("scratch", scratch, rc["lr"])):
            torch.manual_seed(seed)
            row[name] = finetune_classifier(make(), tok, train, test, seed=seed, extra_tests=extra, **{**rc, "lr": lr})
        for name, targets in lo["targets"].items():
            torch.manual_seed(seed)
            model = lora_model(pretrained(), targets, lo)
            row[f"lora_{name}"] = finetune_classifier(model, tok, train, test, seed=seed, extra_tests=extra,
                                                      **{**rc, "lr": lo["lr"]})
        runs.append(row)
        log(f"  encoder seed {seed}: " + "  ".join(
            f"{k} {v['accuracy']:.3f}/{v['heldout_lexicon']:.3f}" for k, v in row.items() if k != "seed")
            + "  (test/held-out lexicon)")
    return {"recipe": rc, "lora": lo, "train_size": len(train), "test_size": len(test), "runs": runs}
