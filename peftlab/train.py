"""A small, explicit training loop for sequence classification (the loop the course teaches).

The loop is the textbook one — tokenize once, shuffle with a seeded generator, AdamW on the
parameters that require grad, cross-entropy, optional linear warm-up/decay — so that two models
with the same trainable weights, the same seed and the same data see exactly the same batches. That
is what lets Week 01 train the same LoRA once with peftlab and once with peft and overlay the loss
curves. On the Colab profile the same function runs on the GPU with autocast (bf16 where supported,
else fp16 with a GradScaler).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.device import pick_device, pick_dtype

__all__ = ["EncodedSplit", "TrainResult", "encode", "evaluate_accuracy", "linear_probe", "mean_pooled_features", "per_example_correct",
           "predict_logits", "train_classifier"]


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


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _trim(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop padding columns that no sequence in the batch uses (faster on CPU)."""
    length = int(mask.sum(dim=1).max())
    return ids[:, :length], mask[:, :length]


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
    """Train every parameter with ``requires_grad`` of a ``…ForSequenceClassification`` model.

    ``lr_by_name`` (optional) gives some parameters their own learning rate: ``{substring: lr}``, the first
    substring found in a parameter's name wins, every other parameter uses ``lr`` (VB-LoRA's paper trains the
    logits and the vector bank with different rates). The schedule scales every group alike.
    """
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs ≥ 1, batch_size ≥ 1, lr > 0; got epochs={epochs}, batch_size={batch_size}, lr={lr}")
    if lr_by_name is not None and (not isinstance(lr_by_name, dict)
                                   or any(not isinstance(k, str) or not isinstance(v, (int, float)) or v <= 0
                                          for k, v in lr_by_name.items())):
        raise ValueError(f"lr_by_name must map name substrings to learning rates > 0, got {lr_by_name!r}")
    device = torch.device(device) if device is not None else pick_device()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (did you freeze everything?)")
    model.to(device).train()
    if lr_by_name:
        groups: dict[float, list] = {}
        for name, p in model.named_parameters():
            if p.requires_grad:
                rate = next((v for k, v in lr_by_name.items() if k in name), lr)
                groups.setdefault(float(rate), []).append(p)
        optimizer = torch.optim.AdamW([{"params": ps, "lr": rate} for rate, ps in groups.items()], lr=lr,
                                      weight_decay=weight_decay)
    else:
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    total = epochs * ((len(train) + batch_size - 1) // batch_size)
    warmup = int(warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / max(warmup, 1), max(0.0, (total - step) / max(total - warmup, 1)))
    )
    amp_dtype = pick_dtype(device) if device.type == "cuda" else None
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    generator = torch.Generator().manual_seed(seed)  # batch order
    torch.manual_seed(seed)  # dropout masks: same seed, same model → same masks
    result = TrainResult()
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        for idx in _batches(len(train), batch_size, generator):
            ids, mask = _trim(train.input_ids[idx], train.attention_mask[idx])
            ids, mask, labels = ids.to(device), mask.to(device), train.labels[idx].to(device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(input_ids=ids, attention_mask=mask).logits
            loss = F.cross_entropy(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            scheduler.step()
            result.losses.append(loss.item())
            result.steps += 1
        if valid is not None:
            result.valid_accuracy.append(evaluate_accuracy(model, valid, device=device))
    result.seconds = time.perf_counter() - t0
    model.eval()
    return result


@torch.no_grad()
def predict_logits(model: nn.Module, split: EncodedSplit, batch_size: int = 256, device=None) -> torch.Tensor:
    """Logits for every example of ``split`` (eval mode), on the CPU."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    out = []
    for idx in _batches(len(split), batch_size, None):
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
    for idx in _batches(len(split), batch_size, None):
        ids, mask = _trim(split.input_ids[idx], split.attention_mask[idx])
        mask = mask.to(device)
        hidden = model(input_ids=ids.to(device), attention_mask=mask, output_hidden_states=True).hidden_states[-1]
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        out.append(((hidden * weights).sum(1) / weights.sum(1).clamp(min=1)).float().cpu())
    return torch.cat(out)


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
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            loss = F.cross_entropy(probe(xtr), train_y)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        correct = (probe(xte).argmax(-1) == test_y).float()
    return correct if per_example else correct.mean().item()
