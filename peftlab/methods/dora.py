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

The forward forms ``W0 + s·B A`` to take its row norm, as peft does (:meth:`DoRALayer.weight_norm`).
:mod:`peftlab.methods.fast.dora` computes the same norm without the out×in matrix,
``‖W0 + s·BA‖²_row = ‖W0‖²_row + 2s·rowsum((W0 Aᵀ) ⊙ B) + s²·rowsum((B A Aᵀ) ⊙ B)``; selected by
``peftlab.methods.fast.use_fast(model)``.

Several active DoRA adapters on one layer are applied in turn, each rescaling the output so far (as in
peft); merging them in the same order gives the same weight.

Merge: ``W ← diag(m/n) · (W + s·B A)`` with ``n`` taken from the *unmerged* base weight and cached, so that
unmerge ``W ← W / (m/n) − s·B A`` is exact. Merged inference costs exactly what the base layer costs.
Trainable parameters per layer: ``r·(in + out) + out``.

Embeddings (peft's ``DoraEmbeddingLayer``, :class:`DoRAEmbedding`): everything above applies to the
transposed table ``Eᵀ ∈ R^{d×V}`` with LoRA's embedding factors (``A ∈ R^{r×V}``, init 0;
``B ∈ R^{d×r}``), so the magnitude ``m ∈ R^d`` holds one scalar per *embedding dimension*, the norm of a
column of ``E + ΔE`` over the vocabulary, and the looked-up row is ``g ⊙ (E[x] + s·(Aᵀ[x]) Bᵀ)`` (no bias,
no dropout; an embedding's output is rescaled as a whole). Trainable: ``r·(V + d) + d``.

Not built here: **QDoRA** (DoRA over a 4-bit base). The layers read the base weight only through
``self.base_weight()``, which a quantized base overrides to dequantize, so QDoRA needs that base layer,
not a change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.methods.lora import (
    LoRAConfig,
    LoRAEmbedding,
    LoRALayer,
    LoRALinear,
    lora_family_config,
    lora_from_peft,
    lora_to_peft,
)
from peftlab.peft_format import Codec, register_codec
from peftlab.recipe import Recipe, head, targets
from peftlab.tuner import adapter_layers, inject, register_method

__all__ = ["DoRAConfig", "DoRAEmbedding", "DoRALayer", "DoRALinear", "apply_dora", "dora_layers"]


@dataclass
class DoRAConfig(LoRAConfig):
    """A DoRA adapter's settings: LoRA's fields, validated the same way (peft: ``LoraConfig(use_dora=True)``).

    ``r`` [r], ``alpha`` [lora_alpha], ``dropout`` [lora_dropout], ``use_rslora``, ``target_modules``
    (``nn.Linear`` / ``nn.Embedding`` layers: list of name suffixes or one regex), ``modules_to_save``,
    ``rank_pattern`` / ``alpha_pattern``, ``init`` (LoRA's, for A and B; m starts at ``‖W0‖``).
    """

    method = "dora"


#: the defaults, read by every signature below (the layers' and ``apply_dora``'s)
_D = DoRAConfig()


class DoRALayer(LoRALayer):
    """What DoRA's layer kinds share: the magnitude, the detached norm, and merging by rescaling.

    Every formula is written for the weight *oriented* as out×in (``oriented(W)``): the Linear weight itself,
    the transposed table ``Eᵀ`` (d×V) of an embedding. There ``A`` is (r, in), ``B`` (out, r), ``m`` (out,).
    """

    adapter_state_names = LoRALayer.adapter_state_names + ("merge_norm",)
    #: the adapter's factors and the magnitude, by attribute name (set by each layer kind)
    factor_names: tuple[str, str] = ("lora_A", "lora_B")

    @classmethod
    def oriented_dims(cls, base_layer: nn.Module) -> tuple[int, int]:
        """``(in, out)`` of the oriented weight."""
        return cls.dims(base_layer)

    @staticmethod
    def oriented(weight: torch.Tensor) -> torch.Tensor:
        """The weight as out×in (a view)."""
        return weight

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = cls.oriented_dims(base_layer)
        name_A, name_B = cls.factor_names
        return {name_A: (r, n_in), name_B: (n_out, r), "lora_magnitude_vector": (n_out,)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = _D.r, **_) -> int:
        """``r · (in + out) + out``: LoRA's A and B plus one magnitude per output unit."""
        n_in, n_out = cls.oriented_dims(base_layer)
        return r * (n_in + n_out) + n_out

    def create(self, adapter_name: str, **hparams) -> None:
        """LoRA's A and B, then ``m = ‖W0 + s·B A‖`` (= ``‖W0‖`` as B A = 0): the fresh adapter changes nothing.

        ``m`` is computed exactly as the forward computes the norm, so a fresh layer returns the base output
        bit for bit.
        """
        super().create(adapter_name, **hparams)
        norm = self.forward_norm(adapter_name, self.base_weight())
        self.lora_magnitude_vector[adapter_name] = nn.Parameter(norm.clone())

    def factors(self, adapter_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of the oriented weight: (r, in) and (out, r)."""
        name_A, name_B = self.factor_names
        return getattr(self, name_A)[adapter_name], getattr(self, name_B)[adapter_name]

    # ------------------------------------------------------------------ the norm
    def weight_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``‖W + s·B A‖`` per output unit (shape (out,)), no gradient: the paper's detached norm.

        Formed directly, as peft does.
        """
        A, B = self.factors(adapter_name)
        W = self.oriented(weight)
        with torch.no_grad():
            BA = (B @ A).to(W.dtype)
            return torch.linalg.norm(W + self.scaling[adapter_name] * BA, dim=1).to(W.dtype)

    def forward_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """The norm the forward divides by: :meth:`weight_norm`. (:mod:`peftlab.methods.fast.dora` computes it
        without forming the out×in matrix.)"""
        return self.weight_norm(adapter_name, weight)

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

    def _rescaled(self, weight: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        """``diag(factor) · W`` on the oriented weight, returned in the base layout."""
        return self.oriented(factor.view(-1, 1).to(weight.dtype) * self.oriented(weight))

    def merged_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``W' = diag(m/n) · (W0 + ΔW)`` (base layout): the weight this adapter alone makes of the unmerged base."""
        weight = self.unmerged_base_weight()
        with torch.no_grad():
            factor = self.lora_magnitude_vector[adapter_name] / self.weight_norm(adapter_name, weight)
            return self._rescaled(weight + self.delta_weight(adapter_name).to(weight.dtype), factor)

    # ------------------------------------------------------------------ merging
    def _unmerged(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        factor = self.lora_magnitude_vector[adapter_name] / self.merge_norm[adapter_name]
        divided = self.oriented(self.oriented(weight) / factor.view(-1, 1).to(weight.dtype))
        return divided - self.delta_weight(adapter_name).to(weight.dtype)

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``W ← diag(m/n) · (W + ΔW)`` with ``n = ‖W0 + ΔW‖`` from the unmerged ``W0``, cached for unmerge."""
        weight = self.base_weight()
        norm = self.weight_norm(adapter_name, self.unmerged_base_weight())
        factor = self.lora_magnitude_vector[adapter_name] / norm
        merged = self._rescaled(weight + self.delta_weight(adapter_name).to(weight.dtype), factor)
        if safe_merge and not torch.isfinite(merged).all():
            raise ValueError(f"merging adapter {adapter_name!r} would put NaN/Inf into the base weight; not merged")
        self.merge_norm[adapter_name] = norm
        self.set_base_weight(merged.to(weight.dtype))

    def unmerge_one(self, adapter_name: str) -> None:
        """``W ← W / (m/n) − ΔW`` with the ``n`` cached at merge time: exact up to rounding."""
        weight = self.base_weight()
        self.set_base_weight(self._unmerged(adapter_name, weight).to(weight.dtype))
        self.merge_norm.pop(adapter_name)


class DoRALinear(DoRALayer, LoRALinear):
    r"""A frozen ``nn.Linear`` plus named DoRA adapters.

    ``y = b + g ⊙ (x (W0 + s·B A)ᵀ)`` with ``g = m / ‖W0 + s·B A‖_row`` (the norm detached), computed as
    ``base_layer(x) + (g − 1) ⊙ (base_layer(x) − b) + g ⊙ s·B A x``.

    Shapes: ``lora_A[a]``: (r, in), ``lora_B[a]``: (out, r), ``lora_magnitude_vector[a]``: (out,).
    :meth:`delta_weight` is LoRA's ``s·B A`` (the update of the direction, the paper's ΔV);
    :meth:`merged_weight` is the adapted weight ``W'``.
    """

    adapter_param_names = ("lora_A", "lora_B", "lora_magnitude_vector")
    factor_names = ("lora_A", "lora_B")
    base_types = (nn.Linear,)

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


class DoRAEmbedding(DoRALayer, LoRAEmbedding):
    r"""A frozen ``nn.Embedding`` (table ``E ∈ R^{V×d}``) plus named DoRA adapters, as peft does it.

    The oriented weight is ``Eᵀ ∈ R^{d×V}``: one magnitude per *embedding dimension* (``m ∈ R^d``), the
    norm of each column of ``E + ΔE`` over the vocabulary, with LoRA's embedding factors
    ``A = lora_embedding_A[a] ∈ R^{r×V}`` (init 0) and ``B = lora_embedding_B[a] ∈ R^{d×r}`` (init N(0, 1)),
    ``ΔE = s·(B A)ᵀ``. Output: ``g ⊙ (E[x] + s·(Aᵀ[x]) Bᵀ)`` with ``g = m / ‖Eᵀ + s·B A‖_row``, i.e. the
    looked-up rows of ``E' = (E + ΔE) diag(g)``. No dropout (peft applies none to embeddings).
    """

    adapter_param_names = ("lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")
    factor_names = ("lora_embedding_A", "lora_embedding_B")
    base_types = (nn.Embedding,)

    @classmethod
    def oriented_dims(cls, base_layer: nn.Module) -> tuple[int, int]:
        return cls.dims(base_layer)  # (V, d): "in" is the vocabulary, "out" the embedding dimension

    @staticmethod
    def oriented(weight: torch.Tensor) -> torch.Tensor:
        return weight.T

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        A, B = self.lora_embedding_A[adapter_name], self.lora_embedding_B[adapter_name]
        magnitude = self.lora_magnitude_vector[adapter_name]
        base = self.base_layer
        weight = self.unmerged_base_weight()
        g = magnitude / self.forward_norm(adapter_name, weight)  # (d,); the norm carries no gradient
        rows = F.embedding(x, A.T, padding_idx=base.padding_idx, max_norm=base.max_norm,
                           norm_type=base.norm_type, scale_grad_by_freq=base.scale_grad_by_freq,
                           sparse=base.sparse)  # (..., r)
        # g·result + g·s·(rows Bᵀ) with one activation kept for m's gradient; the output so far is rescaled
        return (g * (result + (rows @ B.T) * self.scaling[adapter_name])).to(result.dtype)


# ---------------------------------------------------------------------- model level
def dora_layers(model: nn.Module) -> dict[str, DoRALayer]:
    """Every DoRA layer of ``model`` (:class:`DoRALinear` and :class:`DoRAEmbedding`) by module name."""
    return adapter_layers(model, DoRALayer)


def apply_dora(
    model: nn.Module,
    r: int = _D.r,
    alpha: float = _D.alpha,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    dropout: float = _D.dropout,
    use_rslora: bool = _D.use_rslora,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
    init: str = _D.init,
    rank_pattern: dict[str, int] | None = None,
    alpha_pattern: dict[str, float] | None = None,
) -> nn.Module:
    """Wrap the target ``nn.Linear`` / ``nn.Embedding`` layers of ``model`` with DoRA, in place, and freeze
    everything else; the convenient form of ``peftlab.inject(model, DoRAConfig(...), adapter_name)``.
    Arguments as :func:`peftlab.apply_lora`. Nothing changes if any argument is invalid. Returns ``model``.
    """
    config = lora_family_config(DoRAConfig, r=r, alpha=alpha, target_modules=target_modules, dropout=dropout,
                                use_rslora=use_rslora, modules_to_save=modules_to_save, init=init,
                                rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
    return inject(model, config, adapter_name)


def _compare_dora(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: LoRA's recipe (r = 8, α = 16, the same targets) with DoRA's magnitude vector."""
    return apply_dora(model, r=8, alpha=16, target_modules=targets(task), modules_to_save=head(task))


register_method(
    "dora", DoRAConfig, (DoRALinear, DoRAEmbedding),
    examples=(
        {"model": "mlp", "config": {"r": 4, "alpha": 8, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"r": 2, "alpha": 8, "target_modules": ["0", "2"], "use_rslora": True,
                                    "rank_pattern": {"2": 3}, "alpha_pattern": {"0": 4}}},
        {"model": "bert", "config": {"r": 4, "alpha": 8, "target_modules": ["word_embeddings", "query", "value",
                                                                              "dense"],
                                     "modules_to_save": ["classifier"]}},
    ),
    recipe=Recipe("DoRA r=8, alpha=16 (LoRA's targets)", _compare_dora),
)


# ---------------------------------------------------------------------- peft's file (peftlab.peft_format)
def _dora_to_peft(cfg: DoRAConfig) -> dict:
    return {**lora_to_peft(cfg), "use_dora": True}


# DoRA is peft's LoRA with use_dora=true; the magnitude is saved without peft's ".weight" suffix
# (peft strips it on save and appends it again on load).
register_codec(
    Codec(
        method="dora", peft_type="LORA",
        tensor_keys={DoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight",
                                  "lora_magnitude_vector": ".lora_magnitude_vector"},
                     DoRAEmbedding: {"lora_embedding_A": ".lora_embedding_A",
                                     "lora_embedding_B": ".lora_embedding_B",
                                     "lora_magnitude_vector": ".lora_magnitude_vector"}},
        accepts=lambda cfg: cfg.get("peft_type") == "LORA" and bool(cfg.get("use_dora")),
        to_peft=_dora_to_peft, from_peft=lora_from_peft,
    ),
    label="LORA (use_dora=true)",
)
