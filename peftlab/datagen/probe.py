"""The proof that pretraining helps: fine-tune the encoder for sentiment, pretrained vs random init.

The same recipe (``RECIPE``) is used by the Week 01 notebook; keep them in sync.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from .pretrain import _pad

#: Fine-tuning recipe for the tiny encoder on the sentiment set (full fine-tuning, AdamW).
RECIPE = {"epochs": 6, "lr": 1e-3, "batch_size": 32, "max_length": 32, "weight_decay": 0.01, "warmup_ratio": 0.1}
#: LoRA on the frozen pretrained encoder (embeddings, LayerNorms frozen; new classifier trained); same
#: recipe as ``RECIPE`` except the learning rate.
LORA = {"r": 8, "alpha": 16, "target_modules": ["query", "key", "value", "dense"], "modules_to_save": ["classifier"],
        "lr": 3e-3}


def lora_model(model: nn.Module, lora: dict | None = None) -> nn.Module:
    """``model`` with LoRA adapters (``LORA`` without ``lr``), everything else frozen."""
    from peftlab.lora import apply_lora

    kw = {k: v for k, v in (lora or LORA).items() if k != "lr"}
    return apply_lora(model, **kw)


def finetune_classifier(model: nn.Module, tokenizer, train: list[tuple[str, int]], test: list[tuple[str, int]],
                        *, seed: int, epochs: int, lr: float, batch_size: int, max_length: int,
                        weight_decay: float = 0.01, warmup_ratio: float = 0.1) -> dict:
    """Full fine-tuning with a linear warm-up/decay schedule; returns test accuracy and seconds."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer([t for t, _ in train], truncation=True, max_length=max_length)["input_ids"]
    y = torch.tensor([lab for _, lab in train])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(enc) + batch_size - 1) // batch_size)
    warm = max(1, int(warmup_ratio * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (steps - s) / max(1, steps - warm)))
    t0 = time.perf_counter()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(enc), generator=gen).tolist()
        for i in range(0, len(order), batch_size):
            idx = order[i: i + batch_size]
            ids, attn = _pad([enc[j] for j in idx], tokenizer.pad_token_id)
            loss = model(input_ids=ids, attention_mask=attn, labels=y[idx]).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_s = time.perf_counter() - t0
    return {"accuracy": accuracy(model, tokenizer, test, max_length), "train_seconds": round(train_s, 1)}


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
