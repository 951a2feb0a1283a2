r"""DoRA: Weight-Decomposed Low-Rank Adaptation (Liu et al., 2024, arXiv 2402.09353).

Notation as in :mod:`peftlab.methods.lora` (PyTorch's and peft's): a frozen ``nn.Linear`` holds
``W0 ∈ R^{out×in}`` and bias ``b ∈ R^{out}``; ``x ∈ R^{…×in}``. DoRA splits a weight into a *magnitude*
and a *direction*

    W = diag(m) · V / ‖V‖_row        m ∈ R^{out},  ‖V‖_row ∈ R^{out},  (‖V‖_row)_j = ‖V[j, :]‖₂

and adapts the direction with LoRA (``A ∈ R^{r×in}``, ``B ∈ R^{out×r}``, scale ``s = α/r`` or ``α/√r``
with rsLoRA) while learning the magnitude directly:

    V  = W0 + s · B A                          (out×in, the LoRA-updated direction)
    n  = ‖W0 + s · B A‖_row                    (out,), treated as a constant: no gradient flows through it
    g  = m / n                                 (out,), one factor per output unit
    W' = diag(g) · (W0 + s · B A)              the adapted weight; the bias is not rescaled

The paper writes ``W ∈ R^{d×k}`` with ``m ∈ R^{1×k}`` and a "column-wise norm ‖·‖_c": its columns are
output units, so in PyTorch's out×in layout this is the norm of each *row* (over the input dimension),
``torch.linalg.norm(W, dim=1)``, one scalar per output unit (as peft and the official NVlabs code do).
The magnitude ``m`` is peft's ``lora_magnitude_vector`` (shape ``(out,)``); it is initialised to
``‖W0 + s·B A‖_row``, which is ``‖W0‖_row`` because B starts at zero, so a fresh DoRA layer computes
exactly the base layer. Detaching ``n`` is the paper's §4.3 (gradients reach ``m`` through ``g`` and
``A, B`` only through the ``s·B A x`` term), which saves the memory of differentiating the norm.

Forward, never forming ``W'`` for the product with ``x`` (peft's form; ``y0 = x W0ᵀ + b`` is the base
output)::

    y = y0 + (g − 1) ⊙ (y0 − b) + g ⊙ s · (x Aᵀ) Bᵀ          = b + g ⊙ (x (W0 + s B A)ᵀ)
      = y0 + g ⊙ ((y0 − b) + s · (x Aᵀ) Bᵀ) − (y0 − b)        (as computed: autograd keeps one activation)

With dropout active (training, ``dropout > 0``) the adapter sees ``x_d = dropout(x)`` in *both* extra
terms, and ``x_d W0ᵀ`` is recomputed instead of reusing ``y0`` (as peft does)::

    y = y0 + (g − 1) ⊙ (x_d W0ᵀ) + g ⊙ s · (x_d Aᵀ) Bᵀ

The forward computes ``n`` without forming the out×in matrix ``W0 + s·B A``:
``‖W0 + s·BA‖²_row = ‖W0‖²_row + 2s·rowsum((W0 Aᵀ) ⊙ B) + s²·rowsum((B A Aᵀ) ⊙ B)`` (O(out·in·r) work,
O(out·r) memory; peft forms the matrix every step), equal to the direct norm to a few ulps
(:meth:`DoRALinear.forward_norm`). Merging forms the matrix anyway and uses the direct norm, as peft.

Several active DoRA adapters on one layer are applied in turn, each rescaling the output so far (as in
peft); merging them in the same order gives the same weight.

Merge: ``W ← diag(m/n) · (W + s·B A)`` with ``n`` taken from the *unmerged* base weight and cached, so that
unmerge ``W ← W / (m/n) − s·B A`` is exact. Merged inference costs exactly what the base layer costs.
Trainable parameters per layer: ``r·(in + out) + out``.

Not built here: **QDoRA** (DoRA over a 4-bit base). The layer reads the base weight only through
``self.base_weight()``, which a quantized base overrides to dequantize, so QDoRA needs that base layer,
not a change here. **DoRA on embeddings** is refused: peft's embedding DoRA is a different formula and
peftlab does not have it (a target that is an ``nn.Embedding`` is an error naming the layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.methods.lora import LoRAConfig, LoRALayer, LoRALinear
from peftlab.tuner import adapter_layers, inject, register_method

__all__ = ["DoRAConfig", "DoRALinear", "apply_dora", "dora_layers"]


@dataclass
class DoRAConfig(LoRAConfig):
    """A DoRA adapter's settings: LoRA's fields, validated the same way (peft: ``LoraConfig(use_dora=True)``).

    ``r`` [r], ``alpha`` [lora_alpha], ``dropout`` [lora_dropout], ``use_rslora``, ``target_modules``
    (``nn.Linear`` layers only: list of name suffixes or one regex), ``modules_to_save``, ``rank_pattern`` /
    ``alpha_pattern``, ``init`` (of A: "kaiming" or "gaussian"; B is zero and m is ``‖W0‖_row``).
    """

    method = "dora"


class DoRALinear(LoRALinear):
    r"""A frozen ``nn.Linear`` plus named DoRA adapters.

    ``y = b + g ⊙ (x (W0 + s·B A)ᵀ)`` with ``g = m / ‖W0 + s·B A‖_row`` (the norm detached), computed as
    ``base_layer(x) + (g − 1) ⊙ (base_layer(x) − b) + g ⊙ s·B A x``.

    Shapes: ``lora_A[a]``: (r, in), ``lora_B[a]``: (out, r), ``lora_magnitude_vector[a]``: (out,).
    :meth:`delta_weight` is LoRA's ``s·B A`` (the update of the direction, the paper's ΔV);
    :meth:`merged_weight` is the adapted weight ``W'``.
    """

    adapter_param_names = ("lora_A", "lora_B", "lora_magnitude_vector")
    adapter_state_names = LoRALayer.adapter_state_names + ("merge_norm",)
    base_types = (nn.Linear,)
    #: smallest weight (out·in) for which the forward computes the norm factored (see :meth:`forward_norm`)
    factored_norm_min_numel = 1 << 18

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = 8, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = cls.dims(base_layer)
        return {"lora_A": (r, n_in), "lora_B": (n_out, r), "lora_magnitude_vector": (n_out,)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = 8, **_) -> int:
        """``r · (in + out) + out``: LoRA's A and B plus one magnitude per output unit."""
        n_in, n_out = cls.dims(base_layer)
        return r * (n_in + n_out) + n_out

    def create(self, adapter_name: str, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               use_rslora: bool = False, init: str = "kaiming") -> None:
        """LoRA's A and B (B = 0), then ``m = ‖W0 + s·B A‖_row`` so the fresh adapter changes nothing."""
        super().create(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)
        norm = self.weight_norm(adapter_name, self.base_weight())
        self.lora_magnitude_vector[adapter_name] = nn.Parameter(norm.clone())

    # ------------------------------------------------------------------ the norm
    def weight_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``‖weight + s·B A‖_row`` (shape (out,)), without gradient: the paper's detached norm.

        Formed directly, as peft does (used at creation and for merging, where ``W + s·B A`` is formed anyway).
        """
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        with torch.no_grad():
            BA = (B @ A).to(weight.dtype)
            return torch.linalg.norm(weight + self.scaling[adapter_name] * BA, dim=1).to(weight.dtype)

    def forward_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        r"""The same norm without forming the out×in matrix ``W + s·B A`` (the forward's cost; no gradient).

        Row j of ``W + s·B A`` has squared norm ``w_j² + 2s·c_j + s²·d_j`` with ``w = ‖W‖_row``,
        ``c = rowsum((W Aᵀ) ⊙ B)`` and ``d = rowsum((B (A Aᵀ)) ⊙ B)``, so
        ``n = w · sqrt(1 + (2s·c + s²·d) / w²)``: O(out·in·r) work and O(out·r) memory instead of an
        out×in temporary. It equals ``w`` exactly while ``B = 0`` (a fresh adapter is exactly the base layer),
        and agrees with :meth:`weight_norm` to a few ulps. Where the rows nearly cancel (``n < 0.3·w``), in
        half precision, and for layers up to ``factored_norm_min_numel`` weights (where forming the matrix is
        as fast: measured crossover on CPU between 512×512 and 512×1024) it uses :meth:`weight_norm`.
        """
        if weight.dtype not in (torch.float32, torch.float64) or weight.numel() < self.factored_norm_min_numel:
            return self.weight_norm(adapter_name, weight)
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        s = self.scaling[adapter_name]
        with torch.no_grad():
            A, B = A.to(weight.dtype), B.to(weight.dtype)
            w = torch.linalg.vector_norm(weight, dim=1)
            c = ((weight @ A.T) * B).sum(dim=1)
            d = ((B @ (A @ A.T)) * B).sum(dim=1)
            q = 1 + (2 * s * c + (s * s) * d) / (w * w)
            if not bool(torch.isfinite(q).all()) or bool((q < 0.09).any()):
                return self.weight_norm(adapter_name, weight)
            return w * q.sqrt()

    def unmerged_base_weight(self) -> torch.Tensor:
        """``W0``: the base weight with every merged adapter taken out again (on a copy when any is merged)."""
        weight = self.base_weight()
        if not self.merged_adapters:
            return weight
        with torch.no_grad():
            weight = weight.detach().clone()
            for name in reversed(self.merged_adapters):
                weight = self._unmerged(name, weight)
        return weight

    def merged_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``W' = diag(m/n) · (W0 + s·B A)``: the weight this adapter alone makes of the unmerged base."""
        weight = self.unmerged_base_weight()
        with torch.no_grad():
            delta = self.delta_weight(adapter_name)
            factor = self.lora_magnitude_vector[adapter_name] / self.weight_norm(adapter_name, weight)
            return factor.view(-1, 1).to(weight.dtype) * (weight + delta)

    # ------------------------------------------------------------------ forward
    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        magnitude = self.lora_magnitude_vector[adapter_name]
        dropout = self.lora_dropout[adapter_name]
        scaling = self.scaling[adapter_name]
        x = x.to(A.dtype)
        weight = self.unmerged_base_weight().to(x.dtype)
        g = magnitude / self.forward_norm(adapter_name, weight)  # (out,); the norm carries no gradient
        if isinstance(dropout, nn.Identity) or not self.training:
            bias = self.base_layer.bias
            base = result if bias is None else result - bias  # the output so far, without the bias
        else:
            x = dropout(x)
            base = F.linear(x, weight)
        lora = F.linear(F.linear(x, A), B)
        # (g − 1)·base + g·s·lora, written so that autograd keeps one activation (base + s·lora) for m's
        # gradient instead of two; exactly 0 while g = 1 and B = 0
        return result + (g * (base + lora * scaling) - base).to(result.dtype)

    # ------------------------------------------------------------------ merging
    def _unmerged(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        factor = self.lora_magnitude_vector[adapter_name] / self.merge_norm[adapter_name]
        return weight / factor.view(-1, 1).to(weight.dtype) - self.delta_weight(adapter_name).to(weight.dtype)

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``W ← diag(m/n) · (W + s·B A)`` with ``n = ‖W0 + s·B A‖_row`` from the unmerged ``W0``, cached."""
        weight = self.base_weight()
        norm = self.weight_norm(adapter_name, self.unmerged_base_weight())
        factor = self.lora_magnitude_vector[adapter_name] / norm
        merged = factor.view(-1, 1).to(weight.dtype) * (weight + self.delta_weight(adapter_name).to(weight.dtype))
        if safe_merge and not torch.isfinite(merged).all():
            raise ValueError(f"merging adapter {adapter_name!r} would put NaN/Inf into the base weight; not merged")
        self.merge_norm[adapter_name] = norm
        self.set_base_weight(merged.to(weight.dtype))

    def unmerge_one(self, adapter_name: str) -> None:
        """``W ← W / (m/n) − s·B A`` with the ``n`` cached at merge time: exact up to rounding."""
        weight = self.base_weight()
        self.set_base_weight(self._unmerged(adapter_name, weight).to(weight.dtype))
        self.merge_norm.pop(adapter_name)


# ---------------------------------------------------------------------- model level
def dora_layers(model: nn.Module) -> dict[str, DoRALinear]:
    """Every DoRA layer of ``model`` by module name."""
    return {name: mod for name, mod in adapter_layers(model).items() if isinstance(mod, DoRALinear)}


def apply_dora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    target_modules: str | Sequence[str] = ("query", "value"),
    dropout: float = 0.0,
    use_rslora: bool = False,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
    init: str = "kaiming",
    rank_pattern: dict[str, int] | None = None,
    alpha_pattern: dict[str, float] | None = None,
) -> nn.Module:
    """Wrap the target ``nn.Linear`` layers of ``model`` with DoRA, in place, and freeze everything else; the
    convenient form of ``peftlab.inject(model, DoRAConfig(...), adapter_name)``. Arguments as
    :func:`peftlab.apply_lora`; an ``nn.Embedding`` target is refused. Nothing changes if any argument is
    invalid. Returns ``model``.
    """
    config = DoRAConfig(r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora,
                        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
                        modules_to_save=list(modules_to_save or []), rank_pattern=dict(rank_pattern or {}),
                        alpha_pattern=dict(alpha_pattern or {}), init=init)
    return inject(model, config, adapter_name)


register_method(
    "dora", DoRAConfig, (DoRALinear,),
    examples=(
        {"model": "mlp", "config": {"r": 4, "alpha": 8, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"r": 2, "alpha": 8, "target_modules": ["0", "2"], "use_rslora": True,
                                    "rank_pattern": {"2": 3}, "alpha_pattern": {"0": 4}}},
        {"model": "bert", "config": {"r": 4, "alpha": 8, "target_modules": ["query", "value", "dense"],
                                     "modules_to_save": ["classifier"]}},
    ),
)
