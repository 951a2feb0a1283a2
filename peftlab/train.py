"""The package's one training loop, its one learning-rate schedule and its one answer-only batcher.

* :func:`fit` — the loop every trainer of the kit runs (:func:`train_classifier` here, ``peftlab.compare``'s
  cells, ``peftlab.qr_adaptor``'s fine-tuning evaluator, the data build's probes in ``peftlab.datagen``):
  for each batch, forward through ``loss_fn``, ``zero_grad``, backward, optimizer step, schedule step. The
  callers keep what is theirs (the model, the loss, the batches, the seeds) and pass it in.
* :func:`warmup_decay` — linear warm-up to the full rate over ``warmup`` steps, then linear decay to 0 at
  ``total`` steps; :func:`warmup_steps` turns a warm-up ratio into a step count.
* :func:`index_batches` — the order of the training examples, batch by batch, from a seeded generator (whole
  epochs, or a number of steps that reshuffles or carries over at the end of a pass).
* :func:`encode_answer_pairs` / :func:`answer_batch` — ``질문: …\n답: …`` rows as (prompt + answer + [EOS] ids,
  prompt length), and right-padded batches whose labels are −100 on the prompt and the padding, so that the
  loss counts the answer tokens only; :func:`answer_loss` is that loss on held-out pairs.

:func:`train_classifier` is the textbook loop the course teaches for sequence classification — tokenize once,
shuffle with a seeded generator, AdamW on the parameters that require grad, cross-entropy, optional linear
warm-up/decay — so that two models with the same trainable weights, the same seed and the same data see exactly
the same batches. That is what lets Week 01 train the same LoRA once with peftlab and once with peft and overlay
the loss curves. On the Colab profile the same function runs on the GPU with autocast (bf16 where supported,
else fp16 with a GradScaler).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.core import argcheck
from peftlab.device import pick_device, pick_dtype

__all__ = ["EncodedSplit", "TrainResult", "answer_batch", "answer_loss", "encode", "encode_answer_pairs",
           "evaluate_accuracy", "fit", "greedy_answers", "index_batches", "labels_loss", "linear_probe", "make_optimizer", "mean_pooled_features",
           "per_example_correct", "predict_logits", "train_classifier", "warmup_decay", "warmup_steps"]


@dataclass
class EncodedSplit:
    """A tokenized split: ``input_ids``/``attention_mask`` (N, L) and ``labels`` (N,)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return self.labels.shape[0]


def encode(split, tokenizer, max_length: int = 64) -> EncodedSplit:
    """Tokenize a split with ``text``/``label`` columns (a ``datasets.Dataset`` or a dict of lists)."""
    texts, labels = list(split["text"]), list(split["label"])
    if len(texts) != len(labels):
        raise ValueError(f"split has {len(texts)} texts but {len(labels)} labels")
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
    return EncodedSplit(enc["input_ids"], enc["attention_mask"], torch.tensor(labels, dtype=torch.long))


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)  # one per optimizer step
    valid_accuracy: list[float] = field(default_factory=list)  # one per epoch (if a valid split is given)
    seconds: float = 0.0
    steps: int = 0


# ------------------------------------------------------------------------------------------- the schedule
def warmup_steps(total: int, ratio: float, at_least: int = 0) -> int:
    """Warm-up steps of a run of ``total`` optimizer steps: ``int(ratio · total)`` (rounded down), and no fewer
    than ``at_least``. ``peftlab.compare`` and the data build's probes warm up for at least one step
    (``at_least=1``); :func:`train_classifier` for ``int(ratio · total)`` steps, none when that is 0."""
    argcheck.positive_int("total", total)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise ValueError(f"ratio={ratio!r} is not allowed: expected a warm-up ratio in [0, 1]")
    if isinstance(at_least, bool) or not isinstance(at_least, int) or at_least < 0:
        raise ValueError(f"at_least={at_least!r} is not allowed: expected an int ≥ 0")
    return max(at_least, int(ratio * total))


DECAYS = ("linear", "cosine")


def warmup_decay(step: int, total: int, warmup: int, decay: str = "linear") -> float:
    """Learning-rate factor at optimizer step ``step`` (0-based) of ``total``: ``(step + 1) / warmup`` while
    warming up (``step < warmup``), then down to 0 at ``total``, never below: ``decay="linear"``,
    ``(total − step) / (total − warmup)``; ``decay="cosine"``, ``½ (1 + cos(π (step − warmup) / (total −
    warmup)))`` (the data build's pretraining).

    With ``warmup = 0`` the first step already takes the full rate and the decay runs over all ``total``
    steps. It is ``torch.optim.lr_scheduler.LambdaLR``'s factor: the rate of step ``step`` is ``lr · factor``."""
    if decay == "linear":
        return min((step + 1) / max(warmup, 1), max(0.0, (total - step) / max(total - warmup, 1)))
    if decay == "cosine":
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))))
    raise ValueError(f"decay={decay!r} is not allowed: expected one of {DECAYS}")


# ---------------------------------------------------------------------------------------------- batches
LEFTOVERS = ("reshuffle", "carry")


def _order(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)


def index_batches(n: int, batch_size: int, generator: torch.Generator | None = None, *, epochs: int | None = None,
                  steps: int | None = None, leftover: str = "reshuffle") -> Iterator[list[int]]:
    """The example indices of each batch, ``0 ≤ i < n``, in a shuffled order drawn from ``generator`` (every
    pass a new ``torch.randperm``; ``generator=None``: ``0, 1, …, n − 1``). Give ``epochs`` or ``steps``:

    * ``epochs=E`` — E passes over the data; the last batch of a pass may be shorter (:func:`train_classifier`,
      the data build's probes).
    * ``steps=S`` — S batches of ``batch_size`` (all ``n`` when ``n < batch_size``) across passes. What is left
      at the end of a pass when it cannot fill a batch: ``leftover="reshuffle"`` drops it and starts a new
      pass (``peftlab.compare``, the data build's pretraining; the first pass is drawn before the first
      batch); ``leftover="carry"`` keeps it and fills the batch from the next pass (``peftlab.qr_adaptor``'s
      evaluator).

    The arguments are checked when called; the permutations are drawn as the batches are taken.
    """
    argcheck.positive_int("n", n)
    argcheck.positive_int("batch_size", batch_size)
    if (epochs is None) == (steps is None):
        raise ValueError(f"give either epochs or steps, not both nor neither (epochs={epochs!r}, steps={steps!r})")
    if epochs is not None:
        argcheck.positive_int("epochs", epochs)
    else:
        argcheck.positive_int("steps", steps)
        argcheck.one_of("leftover", leftover, LEFTOVERS)
    return _index_batches(n, batch_size, generator, epochs, steps, leftover)  # checked now, drawn lazily


def _index_batches(n, batch_size, generator, epochs, steps, leftover) -> Iterator[list[int]]:
    if epochs is not None:
        for _ in range(epochs):
            order = _order(n, generator).tolist()
            for start in range(0, n, batch_size):
                yield order[start: start + batch_size]
    elif leftover == "reshuffle":
        order, pos = _order(n, generator), 0
        for _ in range(steps):
            if pos + batch_size > n:
                order, pos = _order(n, generator), 0
            yield order[pos: pos + batch_size].tolist()
            pos += min(batch_size, n)
    else:
        queue: list[int] = []
        for _ in range(steps):
            if len(queue) < batch_size:  # one new pass when the queue cannot fill a batch (n < batch_size: all n)
                queue += _order(n, generator).tolist()
            idx, queue = queue[:batch_size], queue[batch_size:]
            yield idx


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop padding columns that no sequence in the batch uses (faster on CPU)."""
    length = int(mask.sum(dim=1).max())
    return ids[:, :length], mask[:, :length]


# ------------------------------------------------------------------------------------ answer-only batches
def encode_answer_pairs(tokenizer, rows) -> list[tuple[list[int], int]]:
    """``(ids, k)`` per row: ``ids`` the tokens of the full text and [EOS], ``k`` how many of them the loss
    skips. An instruction row (``{"instruction", "output"}``) is ``format_instruction(instruction, output)``
    with ``k`` the length of its prompt ``질문: …\\n답:`` (the prompt's tokens must be a prefix of the full
    text's); a plain string is text whose every token is a target (``k = 0``)."""
    from peftlab.data import format_instruction

    eos = tokenizer.eos_token_id
    out = []
    for r in rows:
        if isinstance(r, str):
            out.append((tokenizer(r)["input_ids"] + [eos], 0))
            continue
        prompt = tokenizer(format_instruction(r["instruction"]))["input_ids"]
        full = tokenizer(format_instruction(r["instruction"], r["output"]))["input_ids"]
        if full[: len(prompt)] != prompt:
            raise ValueError(f"instruction={r['instruction']!r}: prompt tokens are not a prefix of the full text")
        out.append((full + [eos], len(prompt)))
    return out


def answer_batch(pairs: Sequence[tuple[Sequence[int], int]], pad_id: int,
                 answer_only: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask, labels)`` of ``pairs`` (from :func:`encode_answer_pairs`), right-padded
    with ``pad_id`` so that every sequence starts at position 0 as in pretraining. ``labels`` are the ids
    where the loss counts and −100 elsewhere: on the first ``k`` (prompt) tokens of each pair and on the
    padding; ``answer_only=False`` counts the prompt too. (The model shifts: label ``t`` scores the logit at
    ``t − 1``.)"""
    if not pairs:
        raise ValueError("pairs is empty: an answer batch needs at least one (ids, prompt length) pair")
    width = max(len(seq) for seq, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for i, (seq, k) in enumerate(pairs):
        if not 0 <= k <= len(seq):
            raise ValueError(f"pairs[{i}]: prompt length {k} is outside 0…{len(seq)} (the sequence's length)")
        seq = torch.as_tensor(seq, dtype=torch.long)
        ids[i, : len(seq)] = seq
        attn[i, : len(seq)] = 1
        start = k if answer_only else 0
        labels[i, start: len(seq)] = seq[start:]
    return ids, attn, labels


@torch.no_grad()
def answer_loss(model: nn.Module, pairs, pad_id: int, batch_size: int = 64, answer_only: bool = True) -> float:
    """Mean next-token cross-entropy (nats per target token) of a causal LM on ``pairs``, in eval mode: the
    answer tokens ([EOS] included) by default, every token after the first with ``answer_only=False``."""
    model.eval()
    tot, n = 0.0, 0
    for i in range(0, len(pairs), batch_size):
        ids, attn, labels = answer_batch(pairs[i: i + batch_size], pad_id, answer_only)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
        tgt = labels[:, 1:]
        sel = tgt != -100
        tot += F.cross_entropy(logits[sel].float(), tgt[sel], reduction="sum").item()
        n += int(sel.sum())
    return tot / n


@torch.no_grad()
def greedy_answers(model: nn.Module, tokenizer, instructions: Sequence[str], max_new_tokens: int = 8,
                   batch_size: int = 64) -> list[str]:
    """The answer a causal LM gives to each instruction's prompt ``질문: …\n답:``, greedily: at most
    ``max_new_tokens`` new tokens, stopping at [EOS]; the first line of the decoded text, stripped. In eval mode,
    without a KV cache (short prompts, right padding: every prompt starts at position 0). A model that puts
    virtual positions before the text (prompt tuning, as peft) is read at the text's positions."""
    from peftlab.data import format_instruction

    argcheck.positive_int("max_new_tokens", max_new_tokens)
    argcheck.positive_int("batch_size", batch_size)
    model.eval()
    device = next(model.parameters()).device
    eos, out = tokenizer.eos_token_id, []
    for start in range(0, len(instructions), batch_size):
        seqs = [tokenizer(format_instruction(i))["input_ids"] for i in instructions[start: start + batch_size]]
        new: list[list[int]] = [[] for _ in seqs]
        done = [False] * len(seqs)
        for _ in range(max_new_tokens):
            ids, mask, _ = answer_batch([(s, len(s)) for s in seqs], tokenizer.pad_token_id)
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logits = logits[:, logits.shape[1] - ids.shape[1]:]
            for j, s in enumerate(seqs):
                if done[j]:
                    continue
                t = int(logits[j, len(s) - 1].argmax())
                if t == eos:
                    done[j] = True
                else:
                    s.append(t)
                    new[j].append(t)
            if all(done):
                break
        out += [tokenizer.decode(toks, skip_special_tokens=True).split("\n")[0].strip() for toks in new]
    return out


# ------------------------------------------------------------------------------------------------ the loop
def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.0,
                   lr_by_name: dict[str, float] | None = None) -> torch.optim.AdamW:
    """AdamW over every parameter of ``model`` with ``requires_grad``.

    ``lr_by_name`` (optional) gives some parameters their own learning rate: ``{substring: lr}``, the first
    substring found in a parameter's name wins, every other parameter uses ``lr``."""
    argcheck.number("lr", lr, allowed="a learning rate > 0", above=0.0)
    if lr_by_name is not None and (not isinstance(lr_by_name, dict)
                                   or any(not isinstance(k, str) or not isinstance(v, (int, float)) or v <= 0
                                          for k, v in lr_by_name.items())):
        raise ValueError(f"lr_by_name must map name substrings to learning rates > 0, got {lr_by_name!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (did you freeze everything?)")
    if not lr_by_name:
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    groups: dict[float, list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            rate = next((v for k, v in lr_by_name.items() if k in name), lr)
            groups.setdefault(float(rate), []).append(p)
    return torch.optim.AdamW([{"params": ps, "lr": rate} for rate, ps in groups.items()], lr=lr,
                             weight_decay=weight_decay)


def labels_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The loss a Hugging Face model computes itself from ``labels``, for a batch ``(input_ids,
    attention_mask, labels)`` (an :func:`answer_batch`, or class labels for a classifier): a ``loss_fn`` of
    :func:`fit`."""
    ids, attn, labels = batch
    return model(input_ids=ids, attention_mask=attn, labels=labels).loss


def _to(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to(v, device) for v in batch)
    return batch


def fit(model: nn.Module, batches: Iterable, loss_fn: Callable, optimizer: torch.optim.Optimizer, *,
        total_steps: int | None = None, warmup: int = 0, decay: str = "linear", clip_grad_norm: float | None = None,
        device: torch.device | str | None = None, amp_dtype: torch.dtype | None = None,
        before_step: Callable | None = None, after_step: Callable | None = None) -> list[float]:
    """Train ``model`` on ``batches``: the package's one training loop. Returns the loss of every step.

    For each batch (moved to ``device`` first when one is given: tensors, and tensors inside dicts, tuples and
    lists): ``loss = loss_fn(model, batch)``, ``optimizer.zero_grad(set_to_none=True)``, ``loss.backward()``,
    ``optimizer.step()``, then the schedule's step. The model is in train mode from the start and in eval mode
    at the end. Seeds are the caller's: this function draws no random number itself.

    * ``total_steps`` — the schedule :func:`warmup_decay` over ``total_steps`` steps with ``warmup`` warm-up
      steps (:func:`warmup_steps`) and ``decay``; ``None``: the optimizer's learning rate throughout (no
      scheduler: ``peftlab.qr_adaptor``'s evaluator).
    * ``clip_grad_norm`` — rescale the gradients of the optimizer's parameters to this total norm at most
      before each optimizer step (the data build's pretraining: 1.0); ``None``: no clipping.
    * ``amp_dtype`` — run ``loss_fn`` under ``torch.autocast`` with this dtype (on ``device``'s type); with
      ``torch.float16`` the loss is scaled by a ``GradScaler``. ``None``: no autocast.
    * ``before_step(step, batch)`` — called before the forward of each step (``peftlab.compare`` measures one
      step's activations there); ``after_step(step, loss)`` — called after the schedule's step with the step's
      loss as a float (:func:`train_classifier` evaluates at the end of each epoch there).
    """
    if total_steps is not None:
        argcheck.positive_int("total_steps", total_steps)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r} is not allowed: expected an int ≥ 0 (warm-up steps)")
    argcheck.one_of("decay", decay, DECAYS)
    if clip_grad_norm is not None:
        argcheck.number("clip_grad_norm", clip_grad_norm, allowed="a gradient norm > 0, or None", above=0.0)
    clipped = [p for group in optimizer.param_groups for p in group["params"]]
    device = torch.device(device) if device is not None else None
    scheduler = None if total_steps is None else torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_decay(step, total_steps, warmup, decay))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    device_type = None if amp_dtype is None else (device or next(model.parameters()).device).type
    losses: list[float] = []
    model.train()
    for step, batch in enumerate(batches):
        if device is not None:
            batch = _to(batch, device)
        if before_step is not None:
            before_step(step, batch)
        if amp_dtype is None:
            loss = loss_fn(model, batch)
        else:
            with torch.autocast(device_type, dtype=amp_dtype):
                loss = loss_fn(model, batch)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if clip_grad_norm is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(clipped, clip_grad_norm)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(clipped, clip_grad_norm)
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        losses.append(loss.item())
        if after_step is not None:
            after_step(step, losses[-1])
    model.eval()
    return losses


# ------------------------------------------------------------------------------- sequence classification
def train_classifier(
    model: nn.Module,
    train: EncodedSplit,
    valid: EncodedSplit | None = None,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    warmup_ratio: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    lr_by_name: dict[str, float] | None = None,
) -> TrainResult:
    """Train every parameter with ``requires_grad`` of a ``…ForSequenceClassification`` model (:func:`fit`).

    Epochs of batches in a seeded order, cross-entropy, :func:`warmup_decay` with ``int(warmup_ratio · steps)``
    warm-up steps (none when that is 0). ``lr_by_name`` (optional) gives some parameters their own learning
    rate: ``{substring: lr}``, the first substring found in a parameter's name wins, every other parameter uses
    ``lr`` (VB-LoRA's paper trains the logits and the vector bank with different rates). The schedule scales
    every group alike.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs ≥ 1, batch_size ≥ 1, lr > 0; got epochs={epochs}, batch_size={batch_size}, lr={lr}")
    device = torch.device(device) if device is not None else pick_device()
    model.to(device)
    optimizer = make_optimizer(model, lr, weight_decay, lr_by_name)
    per_epoch = (len(train) + batch_size - 1) // batch_size
    total = epochs * per_epoch
    amp_dtype = pick_dtype(device) if device.type == "cuda" else None
    generator = torch.Generator().manual_seed(seed)  # batch order
    torch.manual_seed(seed)  # dropout masks: same seed, same model → same masks
    result = TrainResult()

    def batches():
        for idx in index_batches(len(train), batch_size, generator, epochs=epochs):
            ids, mask = _trim(train.input_ids[idx], train.attention_mask[idx])
            yield ids, mask, train.labels[idx]

    def loss_fn(model, batch):
        ids, mask, labels = batch
        return F.cross_entropy(model(input_ids=ids, attention_mask=mask).logits.float(), labels)

    def end_of_epoch(step, loss):
        result.steps += 1
        if valid is not None and result.steps % per_epoch == 0:
            result.valid_accuracy.append(evaluate_accuracy(model, valid, device=device))
            model.train()

    t0 = time.perf_counter()
    result.losses = fit(model, batches(), loss_fn, optimizer, total_steps=total,
                        warmup=warmup_steps(total, warmup_ratio), device=device, amp_dtype=amp_dtype,
                        after_step=end_of_epoch)
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def predict_logits(model: nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> torch.Tensor:
    """Logits for every example of ``split`` (eval mode), on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for idx in index_batches(len(split), batch_size, epochs=1):
        ids, mask = _trim(split.input_ids[idx], split.attention_mask[idx])
        out.append(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu())
    return torch.cat(out)


def per_example_correct(model: nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> torch.Tensor:
    """``(N,)`` float tensor, 1.0 where the model classifies example *i* of ``split`` correctly, else 0.0.

    The per-example scores that :func:`peftlab.analysis.stats.paired_comparison` pairs by position: two
    methods evaluated on the same ``split`` give two rows to compare (their mean is the accuracy)."""
    logits = predict_logits(model, split, batch_size=batch_size, device=device)
    return (logits.argmax(dim=-1) == split.labels).float()


def evaluate_accuracy(model: nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> float:
    """Fraction of ``split`` classified correctly (the mean of :func:`per_example_correct`)."""
    return per_example_correct(model, split, batch_size=batch_size, device=device).mean().item()


@torch.no_grad()
def mean_pooled_features(model: nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> torch.Tensor:
    """The last layer's hidden states averaged over each example's real tokens: ``(N, hidden)``, on the CPU.

    Works for any transformers model that returns ``hidden_states`` (a ``…ForSequenceClassification`` too:
    the classifier head is not used)."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for idx in index_batches(len(split), batch_size, epochs=1):
        ids, mask = _trim(split.input_ids[idx], split.attention_mask[idx])
        mask = mask.to(device)
        hidden = model(input_ids=ids.to(device), attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        out.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float().cpu())
    return torch.cat(out)


def _logistic_loss(probe: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return F.cross_entropy(probe(x), y)


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 steps: int = 300, lr: float = 0.05, weight_decay: float = 1e-3, seed: int = 0,
                 per_example: bool = False) -> float | torch.Tensor:
    """Test accuracy of a logistic-regression probe on frozen features (standardised with the train split's
    mean and std; full-batch AdamW). It measures what the features already carry, with no fine-tuning.

    ``per_example=True`` returns the ``(N,)`` 0/1 correctness of each test row instead (as
    :func:`per_example_correct` does for a model), for :func:`peftlab.analysis.stats.paired_comparison`."""
    if train_x.dim() != 2 or test_x.dim() != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, d) with the same d; got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("each feature matrix needs one label per row")
    mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-6)
    xtr, xte = (train_x - mean) / std, (test_x - mean) / std
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    torch.manual_seed(seed)
    probe = nn.Linear(xtr.shape[1], n_classes)
    with torch.enable_grad():  # full batch: the same (features, labels) every step
        fit(probe, itertools.repeat((xtr, train_y), steps), _logistic_loss,
            make_optimizer(probe, lr, weight_decay))
    with torch.no_grad():
        correct = (probe(xte).argmax(-1) == test_y).float()
    return correct if per_example else correct.mean().item()
