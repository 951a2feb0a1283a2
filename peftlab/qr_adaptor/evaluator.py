"""The gradient-free evaluation: a short LoRA fine-tune of the quantized model, scored on held-out lines."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence

import torch
from torch import nn

from peftlab.core import argcheck
from peftlab.qr_adaptor.space import Config, LayerChoice
from peftlab.quant.lowbit import (
    check_bits,
    roundtrip,
)
from peftlab.train import (
    answer_batch,
    answer_loss,
    encode_answer_pairs,
    fit,
    index_batches,
    labels_loss,
    make_optimizer,
)


class LoRAFinetuneEvaluator:
    """``evaluate(config, fidelity)`` for a causal LM: quantize each unit's Linears to its bit-width, put LoRA of
    its rank on them (α = 2r, the authors' code; ranks reach LoRA through ``rank_pattern``/``alpha_pattern``),
    fine-tune ``steps[fidelity]`` AdamW steps on the answer tokens of ``train_rows``, and return the mean answer
    loss (nats per answer token, [EOS] included) on ``calib_rows``.

    The quantized base is simulated exactly: each Linear's weight is replaced by ``Ŵ`` (:func:`roundtrip`), which
    is what a quantized layer computes with (for 4 bits the same ``Ŵ`` as ``apply_qlora``'s
    ``QuantLinear``); storage is what :class:`MemoryModel` counts. Same seed, same batches and same LoRA
    initialisation for every configuration; results are cached per (configuration, fidelity), and
    ``evaluations``/``seconds`` count what was really computed.
    """

    def __init__(self, model: nn.Module, tokenizer, groups: dict[str, list[str]], train_rows, calib_rows, *,
                 steps: dict[str, int] | None = None, lr: float = 5e-3, batch_size: int = 16, seed: int = 0):
        self.model = model
        self.groups = groups
        self.layers = tuple(groups)
        self.pad_id = tokenizer.pad_token_id
        self._tok = tokenizer
        self.train = encode_answer_pairs(tokenizer, train_rows)
        self.calib = encode_answer_pairs(tokenizer, calib_rows)
        if not self.train or not self.calib:
            raise ValueError("train_rows and calib_rows must not be empty")
        self.steps = dict(steps or {"low": 8, "high": 24})
        for k, v in self.steps.items():
            argcheck.positive_int(f"steps[{k!r}]", v)
        self.lr, self.batch_size, self.seed = lr, batch_size, seed
        mods = dict(model.named_modules())
        self._original = {n: mods[n].weight.detach().clone() for names in groups.values() for n in names}
        self._quantized: dict[tuple[str, int], torch.Tensor] = {}
        self.cache: dict[tuple[Config, str], float] = {}
        self.line_cache: dict[tuple[Config, str], list[float]] = {}
        self.evaluations = {k: 0 for k in self.steps}
        self.seconds = 0.0

    # -- helpers
    def quantized(self, name: str, bits: int) -> torch.Tensor:
        key = (name, bits)
        if key not in self._quantized:
            self._quantized[key] = roundtrip(self._original[name], bits)
        return self._quantized[key]

    def build(self, config: Sequence[LayerChoice], ranks: bool = True) -> nn.Module:
        """A copy of the model with every unit's Linears at their bit-width and (``ranks``) LoRA of their rank."""
        from peftlab.methods.lora import apply_lora

        model = copy.deepcopy(self.model)
        mods = dict(model.named_modules())
        rank_pattern, alpha_pattern = {}, {}
        for unit, (bits, rank) in zip(self.layers, config, strict=True):
            for name in self.groups[unit]:
                if bits is not None:  # None: keep the weight as loaded
                    with torch.no_grad():
                        mods[name].weight.copy_(self.quantized(name, bits))
                rank_pattern[re.escape(name)] = rank
                alpha_pattern[re.escape(name)] = 2.0 * rank
        if ranks:
            targets = [n for names in self.groups.values() for n in names]
            torch.manual_seed(self.seed)
            apply_lora(model, r=config[0][1], alpha=2.0 * config[0][1], target_modules=targets,
                       rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
        return model

    def finetune(self, model: nn.Module, steps: int) -> nn.Module:
        """``steps`` AdamW steps at the constant rate ``lr`` on the answer tokens of the training rows (batches in
        a seeded order that carries a pass's leftover rows into the next batch); ``model`` in eval mode after."""
        gen = torch.Generator().manual_seed(self.seed)
        batches = (answer_batch([self.train[i] for i in idx], self.pad_id)
                   for idx in index_batches(len(self.train), self.batch_size, gen, steps=steps, leftover="carry"))
        fit(model, batches, labels_loss, make_optimizer(model, self.lr))
        return model

    def loss(self, model: nn.Module, answer_only: bool = True, pairs=None) -> float:
        """Mean next-token loss on the calibration set: the answer tokens (default) or every token."""
        return answer_loss(model, self.calib if pairs is None else pairs, self.pad_id, 128, answer_only)

    @torch.no_grad()
    def row_losses(self, model: nn.Module, answer_only: bool = True, pairs=None) -> list[float]:
        """Per row of the calibration set (default ``pairs``): its mean next-token loss (nats per target token
        of that row) — the per-example scores a paired comparison of two configurations needs."""
        model.eval()
        pairs = self.calib if pairs is None else pairs
        out: list[float] = []
        for i in range(0, len(pairs), 128):
            ids, attn, labels = answer_batch(pairs[i: i + 128], self.pad_id, answer_only)
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
            tgt = labels[:, 1:]
            nll = nn.functional.cross_entropy(logits.float().transpose(1, 2), tgt, reduction="none")  # (rows, T)
            sel = (tgt != -100).to(nll.dtype)
            out += ((nll * sel).sum(dim=1) / sel.sum(dim=1)).tolist()
        return out

    # -- the objective
    def _check_fidelity(self, config, fidelity: str):
        if fidelity not in self.steps:
            raise ValueError(f"fidelity={fidelity!r} is not allowed: expected one of {tuple(self.steps)}")
        return tuple((int(b), int(r)) for b, r in config)

    def __call__(self, config: Sequence[LayerChoice], fidelity: str = "high") -> float:
        config = self._check_fidelity(config, fidelity)
        key = (config, fidelity)
        if key not in self.cache:
            t0 = time.perf_counter()
            model = self.finetune(self.build(config), self.steps[fidelity])
            self.cache[key] = self.loss(model)
            self.evaluations[fidelity] += 1
            self.seconds += time.perf_counter() - t0
        return self.cache[key]

    def line_losses(self, config: Sequence[LayerChoice], fidelity: str = "high") -> list[float]:
        """The fine-tune of ``evaluate(config, fidelity)``, scored per calibration row (:meth:`row_losses`):
        one loss per row, in the rows' order, so two configurations can be compared row by row (paired). Fills
        the scalar cache too (the same fine-tune gives the same mean loss) and is cached itself."""
        config = self._check_fidelity(config, fidelity)
        key = (config, fidelity)
        if key not in self.line_cache:
            t0 = time.perf_counter()
            model = self.finetune(self.build(config), self.steps[fidelity])
            if key not in self.cache:
                self.cache[key] = self.loss(model)
                self.evaluations[fidelity] += 1
            self.line_cache[key] = self.row_losses(model)
            self.seconds += time.perf_counter() - t0
        return list(self.line_cache[key])

    # -- Phase I
    def quant_sensitivity(self, bits: int = 2, texts: Sequence[str] | None = None, steps: int | None = None,
                          rank: int | None = None) -> list[float]:
        """``I_q(ℓ)``: loss increase when unit ℓ alone is stored at ``bits`` (every other unit as loaded).

        ``steps=None``: the *base model's* next-token loss on ``texts`` (every token; the paper's calibration
        text, WikiText-2 there), no adapter, no training. ``steps=k``: the answer loss on the calibration
        rows after ``k`` fine-tuning steps with LoRA of ``rank`` on every unit (early-training loss, the
        quantity the search optimises)."""
        check_bits(bits)
        if (steps is None) == (texts is None):
            raise ValueError("give either texts (base-model loss) or steps (early-training loss), not both")
        t0 = time.perf_counter()
        pairs = None if texts is None else [(self._tok(t)["input_ids"], 0) for t in texts]

        mods = dict(self.model.named_modules())

        def measure(cfg):
            if steps is not None:
                return self.loss(self.finetune(self.build(cfg), steps))
            swapped = [n for (b, _), u in zip(cfg, self.layers, strict=True) if b is not None for n in self.groups[u]]
            bits_of = {n: b for (b, _), u in zip(cfg, self.layers, strict=True) for n in self.groups[u]}
            try:  # forward only: swap the weights in place (no copy of the model), then put them back
                with torch.no_grad():
                    for n in swapped:
                        mods[n].weight.copy_(self.quantized(n, bits_of[n]))
                return self.loss(self.model, answer_only=False, pairs=pairs)
            finally:
                with torch.no_grad():
                    for n in swapped:
                        mods[n].weight.copy_(self._original[n])

        r = rank or 1
        ref = measure([(None, r)] * len(self.layers))
        out = []
        for i in range(len(self.layers)):
            cfg: list = [(None, r)] * len(self.layers)
            cfg[i] = (bits, r)
            out.append(measure(cfg) - ref)
        self.seconds += time.perf_counter() - t0
        return out

    def rank_sensitivity(self, rank: int, steps: int) -> list[float]:
        """``I_r(ℓ)``: drop of the calibration answer loss after ``steps`` fine-tuning steps with LoRA of
        ``rank`` on unit ℓ alone (unquantized base), from the untuned model's loss."""
        from peftlab.methods.lora import apply_lora

        t0 = time.perf_counter()
        ref = self.loss(self.model)
        out = []
        for unit in self.layers:
            model = copy.deepcopy(self.model)
            torch.manual_seed(self.seed)
            apply_lora(model, r=rank, alpha=2.0 * rank, target_modules=list(self.groups[unit]))
            out.append(ref - self.loss(self.finetune(model, steps)))
        self.seconds += time.perf_counter() - t0
        return out
