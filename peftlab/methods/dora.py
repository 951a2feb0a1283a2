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

The forward forms ``W0 + s·B A`` to take its row norm, as peft does (:func:`direction_norm`).
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

The file reads in that order: the formulas as functions of out×in tensors (:func:`direction_norm` for
``n``, :func:`merged_direction` for ``W'``, :func:`rescale_rows` for ``diag(g)·``), then the two layers, each
with one base: ``DoRALinear(LoRALinear)`` and ``DoRAEmbedding(LoRAEmbedding)`` add the magnitude to LoRA's
layer, and their shared steps (the magnitude's initialisation, merging) are written once, as functions of the
layer, below them. ``DoRALayer`` is the pair ``(DoRALinear, DoRAEmbedding)``, for ``isinstance``.

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

from peftlab.core.peft_format import Codec, register_codec
from peftlab.core.recipe import Recipe, head, targets
from peftlab.core.tuner import adapter_layers, inject, register_method
from peftlab.methods.lora import (
    LoRAConfig,
    LoRAEmbedding,
    LoRALinear,
    lora_family_config,
    lora_from_peft,
    lora_to_peft,
)

__all__ = ["DoRAConfig", "DoRAEmbedding", "DoRALayer", "DoRALinear", "apply_dora", "direction_norm", "dora_layers",
           "merged_direction", "rescale_rows", "unmerged_direction"]


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


# ---------------------------------------------------------------------- the paper's formulas
# Every formula below is written for the weight *oriented* as out×in: a Linear's weight itself, an embedding
# table's transpose ``Eᵀ`` (d×V). There ``A`` is (r, in), ``B`` (out, r), ``m`` and ``n`` (out,).
def direction_norm(W: torch.Tensor, A: torch.Tensor, B: torch.Tensor, scaling: float) -> torch.Tensor:
    """``n = ‖W + s·B A‖_c``, shape (out,): for each output unit (row of the out×in ``W``) the 2-norm over the
    input dimension, with no gradient (the paper's §4.3: the norm is a constant in the backward pass).

    ``W``: (out, in), ``A``: (r, in), ``B``: (out, r), ``scaling`` = s. Formed directly, as peft does.
    """
    with torch.no_grad():
        BA = (B @ A).to(W.dtype)
        return torch.linalg.norm(W + scaling * BA, dim=1).to(W.dtype)


def rescale_rows(W: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``diag(g) · W``: row j of the out×in ``W`` times ``g[j]`` (``g``: (out,))."""
    return g.view(-1, 1).to(W.dtype) * W


def merged_direction(W: torch.Tensor, delta: torch.Tensor, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The paper's ``W' = m · (W + ΔV) / ‖W + ΔV‖_c`` = ``diag(m / n) · (W + ΔV)`` (out×in), with the direction's
    update ``ΔV = s·B A`` (out, in), ``m`` (out,) and ``n`` (out,) from :func:`direction_norm`."""
    return rescale_rows(W + delta, m / n)


def unmerged_direction(W: torch.Tensor, delta: torch.Tensor, m: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`merged_direction` for the same ``n``: ``W'/(m/n) − ΔV``."""
    return W / (m / n).view(-1, 1).to(W.dtype) - delta


# ---------------------------------------------------------------------- layers
class DoRALinear(LoRALinear):
    r"""A frozen ``nn.Linear`` plus named DoRA adapters: LoRA's layer with a magnitude per output unit.

    ``y = b + g ⊙ (x (W0 + s·B A)ᵀ)`` with ``g = m / ‖W0 + s·B A‖_row`` (the norm detached), computed as
    ``base_layer(x) + (g − 1) ⊙ (base_layer(x) − b) + g ⊙ s·B A x``.

    Shapes: ``lora_A[a]``: (r, in), ``lora_B[a]``: (out, r), ``lora_magnitude_vector[a]``: (out,).
    :meth:`delta_weight` is LoRA's ``s·B A`` (the update of the direction, the paper's ΔV);
    :meth:`merged_weight` is the adapted weight ``W'``.
    """

    adapter_param_names = ("lora_A", "lora_B", "lora_magnitude_vector")
    adapter_state_names = LoRALinear.adapter_state_names + ("merge_norm",)
    #: the adapter's factors ``A``, ``B`` by attribute name
    factor_names: tuple[str, str] = ("lora_A", "lora_B")
    base_types = (nn.Linear,)

    @staticmethod
    def oriented(weight: torch.Tensor) -> torch.Tensor:
        """The weight as out×in: a Linear's weight is already."""
        return weight

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, **_) -> dict[str, tuple[int, ...]]:
        return {**super().param_shapes(base_layer, r), "lora_magnitude_vector": (cls.dims(base_layer)[1],)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = _D.r, **_) -> int:
        """``r · (in + out) + out``: LoRA's A and B plus one magnitude per output unit."""
        return super().num_trainable(base_layer, r) + cls.dims(base_layer)[1]

    def create(self, adapter_name: str, **hparams) -> None:
        """LoRA's A and B, then ``m = ‖W0 + s·B A‖_row`` (= ``‖W0‖_row`` as B = 0): the fresh adapter changes
        nothing. ``m`` is computed exactly as the forward computes the norm, so a fresh layer returns the base
        output bit for bit."""
        super().create(adapter_name, **hparams)
        _create_magnitude(self, adapter_name)

    def factors(self, adapter_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)``: (r, in) and (out, r)."""
        return self.lora_A[adapter_name], self.lora_B[adapter_name]

    def weight_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``‖W + s·B A‖_row`` (out,), no gradient: :func:`direction_norm`."""
        return _weight_norm(self, adapter_name, weight)

    def forward_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """The norm the forward divides by: :meth:`weight_norm` (:mod:`peftlab.methods.fast.dora` computes it
        without forming the out×in matrix)."""
        return self.weight_norm(adapter_name, weight)

    def unmerged_base_weight(self) -> torch.Tensor:
        """``W0``: the base weight with every merged adapter taken out again (a copy when any is merged)."""
        return _unmerged_base_weight(self)

    def merged_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``W' = diag(m/n) · (W0 + s·B A)`` (out, in): the weight this adapter alone makes of the unmerged base."""
        return _merged_weight(self, adapter_name)

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``W ← diag(m/n) · (W + s·B A)`` with ``n = ‖W0 + s·B A‖_row`` from the unmerged ``W0``, cached for
        :meth:`unmerge_one`."""
        _merge_one(self, adapter_name, safe_merge)

    def unmerge_one(self, adapter_name: str) -> None:
        """``W ← W / (m/n) − s·B A`` with the ``n`` cached at merge time: exact up to rounding."""
        _unmerge_one(self, adapter_name)

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


class DoRAEmbedding(LoRAEmbedding):
    r"""A frozen ``nn.Embedding`` (table ``E ∈ R^{V×d}``) plus named DoRA adapters, as peft does it.

    The oriented weight is ``Eᵀ ∈ R^{d×V}``: one magnitude per *embedding dimension* (``m ∈ R^d``), the
    norm of each column of ``E + ΔE`` over the vocabulary, with LoRA's embedding factors
    ``A = lora_embedding_A[a] ∈ R^{r×V}`` (init 0) and ``B = lora_embedding_B[a] ∈ R^{d×r}`` (init N(0, 1)),
    ``ΔE = s·(B A)ᵀ``. Output: ``g ⊙ (E[x] + s·(Aᵀ[x]) Bᵀ)`` with ``g = m / ‖Eᵀ + s·B A‖_row``, i.e. the
    looked-up rows of ``E' = (E + ΔE) diag(g)``. No dropout (peft applies none to embeddings).
    """

    adapter_param_names = ("lora_embedding_A", "lora_embedding_B", "lora_magnitude_vector")
    adapter_state_names = LoRAEmbedding.adapter_state_names + ("merge_norm",)
    #: the adapter's factors ``A``, ``B`` (of the oriented weight) by attribute name
    factor_names: tuple[str, str] = ("lora_embedding_A", "lora_embedding_B")
    base_types = (nn.Embedding,)

    @staticmethod
    def oriented(weight: torch.Tensor) -> torch.Tensor:
        """The table as out×in, ``Eᵀ`` (d×V, a view): "out" is the embedding dimension, "in" the vocabulary."""
        return weight.T

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, **_) -> dict[str, tuple[int, ...]]:
        return {**super().param_shapes(base_layer, r), "lora_magnitude_vector": (cls.dims(base_layer)[1],)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = _D.r, **_) -> int:
        """``r · (V + d) + d``: LoRA's A and B plus one magnitude per embedding dimension."""
        return super().num_trainable(base_layer, r) + cls.dims(base_layer)[1]

    def create(self, adapter_name: str, **hparams) -> None:
        """LoRA's A and B, then ``m = ‖Eᵀ + s·B A‖_row`` (= ``‖Eᵀ‖_row`` as A = 0): the fresh adapter changes
        nothing."""
        super().create(adapter_name, **hparams)
        _create_magnitude(self, adapter_name)

    def factors(self, adapter_name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of the oriented weight: (r, V) and (d, r)."""
        return self.lora_embedding_A[adapter_name], self.lora_embedding_B[adapter_name]

    def weight_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``‖Eᵀ + s·B A‖_row`` (d,), no gradient: :func:`direction_norm` of the oriented table."""
        return _weight_norm(self, adapter_name, weight)

    def forward_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """The norm the forward divides by: :meth:`weight_norm` (the fast twin computes it factored)."""
        return self.weight_norm(adapter_name, weight)

    def unmerged_base_weight(self) -> torch.Tensor:
        """``E``: the table with every merged adapter taken out again (a copy when any is merged)."""
        return _unmerged_base_weight(self)

    def merged_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``E' = (E + ΔE) diag(m/n)`` (V, d): the table this adapter alone makes of the unmerged base."""
        return _merged_weight(self, adapter_name)

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``Eᵀ ← diag(m/n) · (Eᵀ + s·B A)`` with ``n`` from the unmerged table, cached for :meth:`unmerge_one`."""
        _merge_one(self, adapter_name, safe_merge)

    def unmerge_one(self, adapter_name: str) -> None:
        """``Eᵀ ← Eᵀ / (m/n) − s·B A`` with the ``n`` cached at merge time."""
        _unmerge_one(self, adapter_name)

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


#: the DoRA layer classes (for ``isinstance``); their speed-tuned twins subclass them
DoRALayer = (DoRALinear, DoRAEmbedding)


# The two layer kinds' shared steps, written once on the oriented weight (``layer.oriented``); each class's
# method of the same name calls them.
def _create_magnitude(layer, adapter_name: str) -> None:
    norm = layer.forward_norm(adapter_name, layer.base_weight())
    layer.lora_magnitude_vector[adapter_name] = nn.Parameter(norm.clone())


def _weight_norm(layer, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
    A, B = layer.factors(adapter_name)
    return direction_norm(layer.oriented(weight), A, B, layer.scaling[adapter_name])


def _unmerged_base_weight(layer) -> torch.Tensor:
    weight = layer.base_weight()
    if not layer.merged_adapters:
        return weight
    with torch.no_grad():
        weight = weight.detach().clone()
        for name in reversed(layer.merged_adapters):
            weight = _unmerged(layer, name, weight)
    return weight


def _merged_weight(layer, adapter_name: str) -> torch.Tensor:
    weight = layer.unmerged_base_weight()
    with torch.no_grad():
        norm = layer.weight_norm(adapter_name, weight)
        return _merged(layer, adapter_name, weight, norm)


def _merged(layer, adapter_name: str, weight: torch.Tensor, norm: torch.Tensor) -> torch.Tensor:
    """``diag(m/n) · (W + ΔV)`` on the oriented weight, returned in the base layout."""
    delta = layer.oriented(layer.delta_weight(adapter_name).to(weight.dtype))
    return layer.oriented(merged_direction(layer.oriented(weight), delta, layer.lora_magnitude_vector[adapter_name],
                                           norm))


def _unmerged(layer, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
    delta = layer.oriented(layer.delta_weight(adapter_name).to(weight.dtype))
    return layer.oriented(unmerged_direction(layer.oriented(weight), delta, layer.lora_magnitude_vector[adapter_name],
                                             layer.merge_norm[adapter_name]))


def _merge_one(layer, adapter_name: str, safe_merge: bool) -> None:
    weight = layer.base_weight()
    norm = layer.weight_norm(adapter_name, layer.unmerged_base_weight())
    merged = _merged(layer, adapter_name, weight, norm)
    if safe_merge and not torch.isfinite(merged).all():
        raise ValueError(f"merging adapter {adapter_name!r} would put NaN/Inf into the base weight; not merged")
    layer.merge_norm[adapter_name] = norm
    layer.set_base_weight(merged.to(weight.dtype))


def _unmerge_one(layer, adapter_name: str) -> None:
    weight = layer.base_weight()
    layer.set_base_weight(_unmerged(layer, adapter_name, weight).to(weight.dtype))
    layer.merge_norm.pop(adapter_name)


# ---------------------------------------------------------------------- model level
def dora_layers(model: nn.Module) -> dict[str, DoRALinear | DoRAEmbedding]:
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


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
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
