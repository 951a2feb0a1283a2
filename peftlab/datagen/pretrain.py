"""Pretraining loops for the two tiny base models (masked LM encoder, causal LM decoder).

Each runs the package's one training loop (:func:`peftlab.train.fit`: AdamW, linear warm-up over a twentieth
of the steps, cosine decay, gradients clipped to norm 1.0) on pre-tokenised tensors: deterministic for a given
seed and thread count, and fast enough for a 2-core CPU.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from peftlab.train import fit, index_batches, labels_loss


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


def _warmup(steps: int) -> int:
    """Warm-up steps of a pretraining run: a twentieth of it, at least one."""
    return max(1, steps // 20)


def _progress(log, steps: int, t0: float, tag: str):
    """:func:`peftlab.train.fit`'s ``after_step``: a log line every tenth of the run."""
    def after_step(step: int, loss: float) -> None:
        if log and (step % max(1, steps // 10) == 0 or step == steps - 1):
            log(f"  {tag} step {step:5d}/{steps}  loss {loss:.3f}  {time.perf_counter() - t0:6.1f}s")

    return after_step


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
        out = model(input_ids=inputs, attention_mask=attn)
        logits = out.logits if hasattr(out, "logits") else out.prediction_logits
        sel = labels != -100
        tot_loss += nn.functional.cross_entropy(logits[sel], labels[sel], reduction="sum").item()
        correct += (logits[sel].argmax(-1) == labels[sel]).sum().item()
        tot_n += sel.sum().item()
    return {"loss": round(tot_loss / tot_n, 4), "accuracy": round(correct / tot_n, 4)}


def pretrain_mlm(model: nn.Module, tokenizer, lines: list[str], *, steps: int, batch_size: int, lr: float,
                 seed: int, mask_prob: float = 0.15, log=print) -> dict:
    """Masked-LM pretraining with AdamW, linear warm-up and cosine decay."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    enc = tokenizer(lines, truncation=True, max_length=64)["input_ids"]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))

    def batches():
        for idx in index_batches(len(enc), batch_size, gen, steps=steps):
            ids, attn = _pad([enc[j] for j in idx], tokenizer.pad_token_id)
            inputs, labels = mask_tokens(ids, attn, tokenizer, gen, mask_prob)
            yield inputs, attn, labels

    t0 = time.perf_counter()
    fit(model, batches(), labels_loss, opt, total_steps=steps, warmup=_warmup(steps), decay="cosine",
        clip_grad_norm=1.0, after_step=_progress(log, steps, t0, "mlm"))
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
    batches = (blocks[idx] for idx in index_batches(len(blocks), batch_size, gen, steps=steps))
    t0 = time.perf_counter()
    fit(model, batches, lambda model, x: model(input_ids=x, labels=x).loss, opt, total_steps=steps,
        warmup=_warmup(steps), decay="cosine", clip_grad_norm=1.0, after_step=_progress(log, steps, t0, "clm"))
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


# ---- encoder: masked LM + verdict objectives ----------------------------------------------------------
def verdict_spans(tokenizer, lines: list[str], verdicts: list[tuple[str, int]]):
    """Token ids of every line and, per line, (index of the verdict that closes it, first verdict
    token position), or (-1, 0) when the line carries no verdict (or truncation cut it off)."""
    enc = tokenizer(lines, truncation=True, max_length=64)["input_ids"]
    v_ids = [tokenizer(v, add_special_tokens=False)["input_ids"] for v, _ in verdicts]
    spans = []
    for line, ids in zip(lines, enc, strict=True):
        span = (-1, 0)
        for i, (v, _) in enumerate(verdicts):
            start = len(ids) - 1 - len(v_ids[i])
            if line.endswith(" " + v) and ids[start: len(ids) - 1] == v_ids[i]:
                span = (i, start)
                break
        spans.append(span)
    return enc, spans, v_ids


def split_pair(words: list[str], verdict_words: int, rng) -> tuple[str, str]:
    """Cut a line at a random word boundary into (A, B), both non-empty, keeping a closing verdict whole in B."""
    last = max(1, len(words) - max(1, verdict_words))
    k = rng.randint(1, last) if len(words) >= 2 else 1
    return " ".join(words[:k]), " ".join(words[k:]) or words[-1]


def pretrain_encoder(model: nn.Module, tokenizer, lines: list[str], verdicts: list[tuple[str, int]], *, steps: int,
                     batch_size: int, lr: float, seed: int, mask_prob: float = 0.15, log=print) -> dict:
    """Pretraining of a ``BertForPreTraining`` with self-supervised signals of the raw corpus.

    Every example is a sentence pair ``[CLS] A [SEP] B [SEP]``: a corpus line cut at a random word boundary,
    and half of the time B replaced by the tail of another random line.

    * **continuation** (BERT's next-sentence slot): the pooler and ``cls.seq_relationship`` predict whether
      B continues A. Task-neutral like BERT's NSP — register, connective endings and topic decide it, not
      the review's polarity — so a new classification head on the pooled ``[CLS]`` starts near chance
      (embedded default v2's pooler was trained on the verdict itself, and a random head scored 0.906);
    * masked LM: ``mask_prob`` of the tokens (BERT's 80/10/10 rule), plus every token of a verdict that
      closes B (추천합니다. / 별점 1점.), so the model must read the review's polarity to fill it in;
    * verdict family from the mean of the review's token states (true continuations only), through a
      separate linear head that is discarded: it makes the token states carry sentiment (a frozen
      mean-pooled probe reads it) without touching the pooler.

    The MLM head runs on the masked positions only (the vocabulary projection dominates the cost).
    """
    import random

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    v_ids = {v: tokenizer(v, add_special_tokens=False)["input_ids"] for v, _ in verdicts}
    family_of = {v: (0 if pol > 0 else 1) for v, pol in verdicts}
    words = [line.split() for line in lines]
    closing = [next((v for v in v_ids if line.endswith(" " + v)), None) for line in lines]
    family_head = nn.Linear(model.config.hidden_size, 2)
    opt = torch.optim.AdamW([*model.parameters(), *family_head.parameters()], lr=lr, weight_decay=0.01,
                            betas=(0.9, 0.98))
    special = torch.tensor(tokenizer.all_special_ids)

    def batches():
        for _ in range(steps):
            firsts, seconds, is_random, v_len, family = [], [], [], [], []
            for _ in range(batch_size):
                j = rng.randrange(len(words))
                v = closing[j]
                a, b = split_pair(words[j], len(v.split()) if v else 0, rng)
                random_b = rng.random() < 0.5
                if random_b:
                    o = rng.randrange(len(words))
                    v = closing[o]
                    b = split_pair(words[o], len(v.split()) if v else 0, rng)[1]
                firsts.append(a)
                seconds.append(b)
                is_random.append(int(random_b))
                v_len.append(len(v_ids[v]) if v and b.endswith(v) else 0)
                family.append(family_of[v] if v and not random_b else -100)
            enc = tokenizer(firsts, seconds, truncation=True, max_length=64, padding=True, return_tensors="pt")
            ids, attn, types = enc["input_ids"], enc["attention_mask"], enc.get("token_type_ids")
            last_sep = attn.sum(1) - 1
            verdict_pos = torch.zeros_like(attn, dtype=torch.bool)
            for i, n in enumerate(v_len):
                if n:
                    verdict_pos[i, last_sep[i] - n: last_sep[i]] = True
            can = attn.bool() & ~torch.isin(ids, special)
            chosen = ((torch.rand(ids.shape, generator=gen) < mask_prob) & can) | verdict_pos
            labels = torch.where(chosen, ids, torch.full_like(ids, -100))
            uu = torch.rand(ids.shape, generator=gen)
            inputs = ids.clone()
            inputs[chosen & ((uu < 0.8) | verdict_pos)] = tokenizer.mask_token_id
            rand = chosen & ~verdict_pos & (uu >= 0.8) & (uu < 0.9)
            inputs[rand] = torch.randint(len(special), len(tokenizer), ids.shape, generator=gen)[rand]
            yield inputs, attn, types, labels, torch.tensor(is_random), torch.tensor(family), verdict_pos

    stats = {"mlm": 0.0, "continuation": 0.0, "family": 0.0, "n": 0}
    step = 0

    def loss_fn(model, batch):
        nonlocal stats, step
        inputs, attn, types, labels, is_random, fam, verdict_pos = batch
        seq = model.bert(input_ids=inputs, attention_mask=attn, token_type_ids=types)[0]
        sel = labels != -100
        mlm = nn.functional.cross_entropy(model.cls.predictions(seq[sel]), labels[sel])
        cont = nn.functional.cross_entropy(model.cls.seq_relationship(model.bert.pooler(seq)), is_random)
        loss = mlm + cont
        rows = fam != -100
        if rows.any():
            text_mask = (attn.bool() & ~verdict_pos)[rows].unsqueeze(-1).to(seq.dtype)
            mean = (seq[rows] * text_mask).sum(1) / text_mask.sum(1)
            fam_loss = nn.functional.cross_entropy(family_head(mean), fam[rows])
            loss = loss + fam_loss
            stats["family"] += fam_loss.item()
        stats["mlm"] += mlm.item()
        stats["continuation"] += cont.item()
        stats["n"] += 1
        if log and (step % max(1, steps // 10) == 0 or step == steps - 1):
            n = stats.pop("n")
            log(f"  encoder step {step:5d}/{steps}  mlm {stats['mlm'] / n:.3f}  continuation "
                f"{stats['continuation'] / n:.3f}  family {stats['family'] / n:.3f}  {time.perf_counter() - t0:6.1f}s")
            stats = {"mlm": 0.0, "continuation": 0.0, "family": 0.0, "n": 0}
        step += 1
        return loss

    t0 = time.perf_counter()
    fit(model, batches(), loss_fn, opt, total_steps=steps, warmup=_warmup(steps), decay="cosine", clip_grad_norm=1.0)
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1)}


@torch.no_grad()
def verdict_accuracy(model: nn.Module, tokenizer, lines: list[str], verdicts: list[tuple[str, int]],
                     batch: int = 128) -> dict:
    """How often the encoder fills a masked verdict with one of the right polarity: every verdict token
    of a held-out line is masked, each verdict with as many tokens is scored by the sum of its
    tokens' log-probabilities, and the best one's polarity is compared with the line's."""
    model.eval()
    enc, spans, v_ids = verdict_spans(tokenizer, lines, verdicts)
    rows = [(ids, k, s) for ids, (k, s) in zip(enc, spans, strict=True) if k >= 0]
    correct = 0
    for i in range(0, len(rows), batch):
        chunk = rows[i: i + batch]
        ids, attn = _pad([r[0] for r in chunk], tokenizer.pad_token_id)
        for j, (_, k, s) in enumerate(chunk):
            ids[j, s: s + len(v_ids[k])] = tokenizer.mask_token_id
        out = model.bert(input_ids=ids, attention_mask=attn)[0] if hasattr(model, "bert") else None
        for j, (_, k, s) in enumerate(chunk):
            n = len(v_ids[k])
            logp = model.cls.predictions(out[j, s: s + n]).log_softmax(-1)
            best = max((sum(logp[t, tok].item() for t, tok in enumerate(v_ids[c])), c)
                       for c in range(len(verdicts)) if len(v_ids[c]) == n)
            correct += int(verdicts[best[1]][1] == verdicts[k][1])
    return {"lines": len(rows), "accuracy": round(correct / max(1, len(rows)), 4)}
