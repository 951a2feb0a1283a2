"""Pretraining loops for the two tiny base models (masked LM encoder, causal LM decoder).

Plain PyTorch loops on pre-tokenised tensors: deterministic for a given seed and thread count,
and fast enough for a 2-core CPU.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn


def _pad(seqs: list[list[int]], pad_id: int, side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if side == "right":
            ids[i, : len(s)] = torch.tensor(s)
            mask[i, : len(s)] = 1
        else:
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
    return ids, mask


def _schedule(opt: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


# ---- masked LM ------------------------------------------------------------------------------------
def mask_tokens(ids: torch.Tensor, attn: torch.Tensor, tokenizer, gen: torch.Generator, prob: float = 0.15):
    """BERT masking: choose ``prob`` of the real tokens; 80 % → [MASK], 10 % → random, 10 % kept."""
    special = torch.tensor(tokenizer.all_special_ids)
    can = attn.bool() & ~torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & can
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    u = torch.rand(ids.shape, generator=gen)
    inputs = ids.clone()
    inputs[chosen & (u < 0.8)] = tokenizer.mask_token_id
    rand = chosen & (u >= 0.8) & (u < 0.9)
    inputs[rand] = torch.randint(len(special), len(tokenizer), ids.shape, generator=gen)[rand]
    return inputs, labels


@torch.no_grad()
def evaluate_mlm(model: nn.Module, tokenizer, lines: list[str], seed: int = 0, batch: int = 256,
                 mask_prob: float = 0.15) -> dict:
    """Masked-token loss and accuracy on ``lines`` with a fixed masking seed."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(lines, truncation=True, max_length=64)["input_ids"]
    tot_loss, tot_n, correct = 0.0, 0, 0
    for i in range(0, len(enc), batch):
        ids, attn = _pad(enc[i: i + batch], tokenizer.pad_token_id)
        inputs, labels = mask_tokens(ids, attn, tokenizer, gen, mask_prob)
        logits = model(input_ids=inputs, attention_mask=attn).logits
        sel = labels != -100
        tot_loss += nn.functional.cross_entropy(logits[sel], labels[sel], reduction="sum").item()
        correct += (logits[sel].argmax(-1) == labels[sel]).sum().item()
        tot_n += sel.sum().item()
    return {"loss": round(tot_loss / tot_n, 4), "accuracy": round(correct / tot_n, 4)}


def _update(model, loss, opt, sched, step: int, steps: int, t0: float, log, tag: str) -> None:
    """One optimizer step with gradient clipping at 1.0, and a log line every tenth of the run."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    if log and (step % max(1, steps // 10) == 0 or step == steps - 1):
        log(f"  {tag} step {step:5d}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - t0:6.1f}s")


def pretrain_mlm(model: nn.Module, tokenizer, lines: list[str], *, steps: int, batch_size: int, lr: float,
                 seed: int, mask_prob: float = 0.15, log=print) -> dict:
    """Masked-LM pretraining with AdamW, linear warm-up and cosine decay."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(lines, truncation=True, max_length=64)["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = _schedule(opt, steps, max(1, steps // 20))
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(len(enc), generator=gen).tolist()
    pos = 0
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(enc), generator=gen).tolist(), 0
        ids, attn = _pad([enc[j] for j in order[pos: pos + batch_size]], tokenizer.pad_token_id)
        pos += batch_size
        inputs, labels = mask_tokens(ids, attn, tokenizer, gen, mask_prob)
        loss = model(input_ids=inputs, attention_mask=attn, labels=labels).loss
        _update(model, loss, opt, sched, step, steps, t0, log, "mlm")
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


# ---- causal LM ------------------------------------------------------------------------------------
def pack_blocks(tokenizer, texts: list[str], block: int) -> torch.Tensor:
    """Concatenate ``[BOS] text [EOS]`` for every text and cut into rows of ``block`` tokens."""
    enc = tokenizer(texts)["input_ids"]
    flat: list[int] = []
    for ids in enc:
        flat.extend(ids + [tokenizer.eos_token_id])
    n = len(flat) // block
    return torch.tensor(flat[: n * block]).view(n, block)


@torch.no_grad()
def evaluate_clm(model: nn.Module, blocks: torch.Tensor, batch: int = 64) -> dict:
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(blocks), batch):
        x = blocks[i: i + batch]
        out = model(input_ids=x, labels=x)
        k = x.numel() - x.shape[0]
        tot += out.loss.item() * k
        n += k
    loss = tot / n
    return {"loss": round(loss, 4), "perplexity": round(math.exp(loss), 2)}


def pretrain_clm(model: nn.Module, blocks: torch.Tensor, *, steps: int, batch_size: int, lr: float, seed: int,
                 log=print) -> dict:
    """Next-token pretraining on packed blocks."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    sched = _schedule(opt, steps, max(1, steps // 20))
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(len(blocks), generator=gen)
    pos = 0
    for step in range(steps):
        if pos + batch_size > len(order):
            order, pos = torch.randperm(len(blocks), generator=gen), 0
        x = blocks[order[pos: pos + batch_size]]
        pos += batch_size
        loss = model(input_ids=x, labels=x).loss
        _update(model, loss, opt, sched, step, steps, t0, log, "clm")
    model.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}
