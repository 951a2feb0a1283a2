r"""QLoRA: LoRA over a frozen 4-bit base (Dettmers et al., 2023, arXiv 2305.14314).

A targeted ``nn.Linear`` (``W0 ∈ R^{out×in}``, bias ``b``) is replaced by a :class:`QuantLinear` holding
``W0`` quantized with :func:`peftlab.quant.quantize_4bit` — NF4 codes packed two per byte, one absmax
constant per 64 weights, the constants double-quantized to 8 bits — and LoRA (``A ∈ R^{r×in}``,
``B ∈ R^{out×r}``, scale ``s = α/r``, as in :mod:`peftlab.methods.lora`) is put on top:

    Ŵ = dequantize(W0^{NF4})  in the compute dtype (fp32 here, BF16 in the paper), formed at every forward
    y = x Ŵᵀ + b + s · (dropout(x) Aᵀ) Bᵀ

The paper's equation (5): ``Y = X · doubleDequant(c1, c2, W^{NF4}) + X L1 L2``. Only ``A`` and ``B`` are
trained; the gradient reaches them through ``Ŵ`` (``∂L/∂x`` is computed with ``Ŵ``), and the base never gets
one. ``QuantLinear`` keeps no fp weight: its packed codes and constants are buffers, its bias a frozen
parameter. LoRA's tensors are fp32 (peft's default for a 4-bit base); ``x`` is cast to their dtype for the
adapter path and the adapter's output back to the layer's, as peft's ``lora.bnb.Linear4bit`` does.

Memory, not speed, is the gain: a step dequantizes every targeted weight once per forward (and once more in
the backward), so on CPU it is slower than LoRA over an fp32 base (``benchmarks/run.py`` measures it).

Merging over a quantized base (:meth:`QLoRALinear.set_base_weight`): ``merge_adapter`` forms
``Ŵ + ΔW`` and **re-quantizes** it (as peft does for a bitsandbytes base), so a merged model stays 4-bit and
its output differs from the unmerged one by one quantization rounding of ``Ŵ + ΔW`` — about a code step
(up to ~14% of a block's absmax for NF4's widest gap) per weight, not 1e-6. Unmerging is exact: each merge
keeps the packed bytes it replaced (4.5 bits/param while merged) and unmerging puts them back.
``merge_and_unload`` leaves a plain ``nn.Linear`` whose weight is ``Ŵ + Σ ΔW`` formed from those kept bytes
(no second rounding), in the dtype the weight had before quantization (``state.dtype``); ``unload`` leaves
the :class:`QuantLinear` (the quantized base without adapters).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.core import argcheck
from peftlab.core.peft_format import register_same_file
from peftlab.core.recipe import Recipe, head, targets
from peftlab.core.targets import LLAMA_LINEARS, find_targets, get_submodule_parent
from peftlab.core.tuner import inject, register_method
from peftlab.methods.lora import LoRAConfig, LoRALinear, lora_family_config
from peftlab.quant.codes import (
    BLOCKSIZE,
    DOUBLE_QUANT_BLOCKSIZE,
    FLOAT_DTYPES,
    QUANT_TYPE,
    QuantState,
    _check_blocksize,
    _check_quant_type,
    _check_weight,
    dequantize_4bit,
    quantize_4bit,
    quantized_nbytes,
)

__all__ = ["QLoRAConfig", "QLoRALinear", "QuantLinear", "apply_qlora", "dequantized_reference"]

_STATE_BUFFERS = ("packed", "absmax", "offset", "absmax2", "code", "code2")


def _check_quant_args(quant_type, blocksize, double_quant, compute_dtype) -> None:
    _check_quant_type(quant_type)
    _check_blocksize(blocksize)
    argcheck.flag("double_quant", double_quant)
    argcheck.one_of("compute_dtype", compute_dtype, FLOAT_DTYPES)


# ---------------------------------------------------------------------- config
@dataclass
class QLoRAConfig(LoRAConfig):
    """LoRA's settings (see :class:`peftlab.LoRAConfig`) plus how the targeted base layers are quantized.

    ``quant_type`` ("nf4", "fp4" or "int4"; peft/transformers: ``bnb_4bit_quant_type``), ``blocksize``
    (a power of two; bitsandbytes uses 64), ``double_quant`` (``bnb_4bit_use_double_quant``),
    ``compute_dtype`` (``bnb_4bit_compute_dtype``: the dtype ``Ŵ`` is dequantized into).
    """

    target_modules: list[str] | str = None  # type: ignore[assignment]
    quant_type: str = QUANT_TYPE
    blocksize: int = BLOCKSIZE
    double_quant: bool = True
    compute_dtype: torch.dtype = torch.float32

    method = "qlora"

    def __post_init__(self) -> None:
        if self.target_modules is None:
            self.target_modules = list(LLAMA_LINEARS)
        super().__post_init__()
        _check_quant_args(self.quant_type, self.blocksize, self.double_quant, self.compute_dtype)

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        return {**super().layer_hparams(module_name, base_layer), "quant_type": self.quant_type,
                "blocksize": self.blocksize, "double_quant": self.double_quant, "compute_dtype": self.compute_dtype}


#: the defaults, read by every signature below (QuantLinear's, the layer's and ``apply_qlora``'s)
_D = QLoRAConfig()


# ---------------------------------------------------------------------- the 4-bit base layer
class _QuantMatmul(torch.autograd.Function):
    """``y = x Ŵᵀ + b`` with ``Ŵ`` dequantized in the forward and *again* in the backward (for ``∂L/∂x = g Ŵ``),
    so autograd keeps no dense copy of the weight between the two (what bitsandbytes' ``MatMul4Bit`` does).
    The weight is frozen: it gets no gradient; the bias gets one only if it requires it."""

    @staticmethod
    def forward(ctx, x, layer, bias):
        ctx.layer = layer
        ctx.has_bias = bias is not None
        return F.linear(x, layer.dequantized_weight(x.dtype), bias)

    @staticmethod
    def backward(ctx, grad):
        grad_x = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = grad @ ctx.layer.dequantized_weight(grad.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(0)
        return grad_x, None, grad_bias


class QuantLinear(nn.Module):
    """A frozen linear layer whose weight is stored 4-bit (:func:`peftlab.quant.quantize_4bit`).

    ``forward(x) = F.linear(x_c, Ŵ_c, b_c).to(x.dtype)`` with ``Ŵ_c`` dequantized straight into
    ``compute_dtype`` and ``x_c``, ``b_c`` cast to it (bitsandbytes' ``Linear4bit`` on CPU computes the same);
    the backward dequantizes once more instead of keeping ``Ŵ_c`` (:class:`_QuantMatmul`).
    Buffers: ``packed`` (uint8, ``(⌈out·in/2⌉, 1)``), ``absmax`` (fp32, or uint8 with double quantization,
    then ``offset`` and ``absmax2`` too), the code books; ``bias`` is a frozen parameter.
    """

    def __init__(self, packed: torch.Tensor, state: QuantState, bias: torch.Tensor | None = None,
                 compute_dtype: torch.dtype = _D.compute_dtype):
        super().__init__()
        if len(state.shape) != 2:
            raise ValueError(f"QuantLinear needs a 2-D (out, in) weight, got shape {tuple(state.shape)}")
        self.out_features, self.in_features = state.shape
        self.compute_dtype = compute_dtype
        self._meta = {"shape": state.shape, "dtype": state.dtype, "blocksize": state.blocksize,
                      "quant_type": state.quant_type, "blocksize2": state.blocksize2}
        self.set_quantized(packed, state)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, quant_type: str = _D.quant_type, blocksize: int = _D.blocksize,
                    double_quant: bool = _D.double_quant, compute_dtype: torch.dtype = _D.compute_dtype) -> QuantLinear:
        """Quantize ``linear``'s weight (``linear`` itself is left as it was)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        _check_quant_args(quant_type, blocksize, double_quant, compute_dtype)
        packed, state = quantize_4bit(linear.weight.detach(), blocksize=blocksize, quant_type=quant_type,
                                      double_quant=double_quant)
        return cls(packed, state, linear.bias, compute_dtype=compute_dtype)

    @classmethod
    def from_bnb(cls, module: nn.Module, compute_dtype: torch.dtype | None = None) -> QuantLinear:
        """Take over a bitsandbytes ``Linear4bit``'s packed weight and quantization state as they are (no
        re-quantization), e.g. from a model loaded with transformers' ``BitsAndBytesConfig(load_in_4bit=True)``."""
        weight = module.weight
        qs = weight.quant_state
        nested = getattr(qs, "nested", False)
        state = QuantState(absmax=qs.absmax, shape=torch.Size(qs.shape), dtype=qs.dtype, blocksize=qs.blocksize,
                           quant_type=qs.quant_type, code=qs.code.float(),
                           offset=qs.offset if nested else None, absmax2=qs.state2.absmax if nested else None,
                           code2=qs.state2.code if nested else None,
                           blocksize2=qs.state2.blocksize if nested else DOUBLE_QUANT_BLOCKSIZE)
        compute = compute_dtype or getattr(module, "compute_dtype", None) or _D.compute_dtype
        return cls(weight.data.view(torch.uint8).reshape(-1, 1).clone(), state, module.bias, compute_dtype=compute)

    # -------------------------------------------------------------- state
    def set_quantized(self, packed: torch.Tensor, state: QuantState) -> None:
        """Replace the stored weight by ``(packed, state)`` (same shape, type and block size)."""
        if tuple(state.shape) != (self.out_features, self.in_features):
            raise ValueError(f"state.shape {tuple(state.shape)} does not match this layer's "
                             f"{(self.out_features, self.in_features)}")
        for name, value in (("packed", packed), ("absmax", state.absmax), ("offset", state.offset),
                            ("absmax2", state.absmax2), ("code", state.code), ("code2", state.code2)):
            self.register_buffer(name, value, persistent=True)
        self._meta.update(dtype=state.dtype, blocksize=state.blocksize, quant_type=state.quant_type,
                          blocksize2=state.blocksize2)

    def _apply(self, fn, recurse=True):
        """``model.to(dtype)`` / ``.half()`` cast floating buffers; the block constants and code books must stay
        fp32 (they are part of the quantized weight), so only their device follows."""
        keep = {name: getattr(self, name) for name in ("absmax", "offset", "absmax2", "code", "code2")
                if getattr(self, name) is not None and getattr(self, name).is_floating_point()}
        super()._apply(fn, recurse)
        for name, before in keep.items():
            after = getattr(self, name)
            if after.dtype != before.dtype:
                setattr(self, name, before.to(after.device))
        return self

    @property
    def quant_state(self) -> QuantState:
        m = self._meta
        return QuantState(absmax=self.absmax, shape=m["shape"], dtype=m["dtype"], blocksize=m["blocksize"],
                          quant_type=m["quant_type"], code=self.code, offset=self.offset, absmax2=self.absmax2,
                          code2=self.code2, blocksize2=m["blocksize2"])

    @property
    def quant_type(self) -> str:
        return self._meta["quant_type"]

    @property
    def blocksize(self) -> int:
        return self._meta["blocksize"]

    @property
    def double_quant(self) -> bool:
        return self.absmax2 is not None

    @property
    def quantized_numel(self) -> int:
        """Elements of the weight held in packed form (:func:`peftlab.count_parameters` counts them as frozen)."""
        return self.out_features * self.in_features

    @property
    def weight_nbytes(self) -> int:
        """Bytes of the stored weight: packed codes plus constants, read from the tensors."""
        return quantized_nbytes(self.packed, self.quant_state)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``Ŵ`` as a dense tensor: ``code[q]·c_b`` in fp32, then cast to ``dtype`` (default: the stored dtype)."""
        state = self.quant_state
        if dtype is not None:
            state.dtype = dtype
        return dequantize_4bit(self.packed, state)

    def to_linear(self, weight: torch.Tensor | None = None) -> nn.Linear:
        """A plain ``nn.Linear`` with ``weight`` (default ``Ŵ``, in the weight's original dtype) and this bias."""
        weight = self.dequantized_weight() if weight is None else weight
        out = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                        device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            out.weight.copy_(weight)
            if self.bias is not None:
                out.bias = nn.Parameter(self.bias.detach().clone(), requires_grad=self.bias.requires_grad)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(self.compute_dtype)
        return _QuantMatmul.apply(x.to(self.compute_dtype), self, bias).to(x.dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"quant_type={self.quant_type}, blocksize={self.blocksize}, double_quant={self.double_quant}, "
                f"compute_dtype={self.compute_dtype}")


# ---------------------------------------------------------------------- the LoRA layer over it
class QLoRALinear(LoRALinear):
    """LoRA over a :class:`QuantLinear`. Given an ``nn.Linear`` it quantizes it first (the original is untouched).

    Only the base-weight hooks differ from :class:`peftlab.LoRALinear`: :meth:`base_weight` dequantizes,
    :meth:`set_base_weight` re-quantizes, and merge / unmerge keep the replaced bytes so unmerge is exact.
    """

    base_types = (QuantLinear, nn.Linear)
    adapter_state_names = LoRALinear.adapter_state_names + ("premerge",)

    def __init__(self, base_layer: QuantLinear | nn.Linear, r: int = _D.r, alpha: float = _D.alpha,
                 dropout: float = _D.dropout, use_rslora: bool = _D.use_rslora, adapter_name: str | None = "default",
                 init: str = _D.init, quant_type: str = _D.quant_type, blocksize: int = _D.blocksize,
                 double_quant: bool = _D.double_quant, compute_dtype: torch.dtype = _D.compute_dtype):
        quant = {"quant_type": quant_type, "blocksize": blocksize, "double_quant": double_quant,
                 "compute_dtype": compute_dtype}
        if isinstance(base_layer, nn.Linear):
            self.check(base_layer, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init, **quant)
            base_layer = QuantLinear.from_linear(base_layer, **quant)
        super().__init__(base_layer, adapter_name=None)
        if adapter_name is not None:
            self.add_adapter(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init,
                             **quant)

    @classmethod
    def check(cls, base_layer: nn.Module, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
              use_rslora: bool = _D.use_rslora, init: str = _D.init, quant_type: str = _D.quant_type,
              blocksize: int = _D.blocksize, double_quant: bool = _D.double_quant,
              compute_dtype: torch.dtype = _D.compute_dtype) -> None:
        super().check(base_layer, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)
        _check_quant_args(quant_type, blocksize, double_quant, compute_dtype)
        if isinstance(base_layer, nn.Linear):
            _check_weight(base_layer.weight, "the base layer's weight")
        elif (base_layer.quant_type, base_layer.blocksize, base_layer.double_quant) != \
                (quant_type, blocksize, double_quant):
            raise ValueError(f"this layer is already quantized as {base_layer.quant_type}/blocksize "
                             f"{base_layer.blocksize}/double_quant={base_layer.double_quant}; a second adapter "
                             f"cannot ask for quant_type={quant_type!r}, blocksize={blocksize}, "
                             f"double_quant={double_quant}")

    def create(self, adapter_name: str, quant_type: str = _D.quant_type, blocksize: int = _D.blocksize,
               double_quant: bool = _D.double_quant, compute_dtype: torch.dtype = _D.compute_dtype, **lora) -> None:
        """LoRA's A (kaiming-uniform) and B (zero), in fp32 whatever the compute dtype (as peft)."""
        super().create(adapter_name, **lora)
        self.premerge[adapter_name] = None

    def adapter_dtype_device(self) -> tuple[torch.dtype, torch.device]:
        return torch.float32, self.base_layer.packed.device

    # -------------------------------------------------------------- base weight hooks
    def base_weight(self) -> torch.Tensor:
        """``Ŵ``, dequantized into the dtype the weight had before quantization."""
        return self.base_layer.dequantized_weight()

    def set_base_weight(self, weight: torch.Tensor) -> None:
        """Re-quantize ``weight`` with this layer's quant type and block size (4-bit precision is what is kept)."""
        base = self.base_layer
        packed, state = quantize_4bit(weight.detach().to(base.quant_state.dtype), blocksize=base.blocksize,
                                      quant_type=base.quant_type, double_quant=base.double_quant)
        base.set_quantized(packed, state)

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``W ← Q(Ŵ + ΔW)``, keeping the replaced bytes for an exact unmerge."""
        base = self.base_layer
        kept = (base.packed, base.quant_state)
        super().merge_one(adapter_name, safe_merge=safe_merge)
        self.premerge[adapter_name] = kept

    def unmerge_one(self, adapter_name: str) -> None:
        """Put back the bytes the merge replaced (exact; unmerging runs newest first)."""
        packed, state = self.premerge[adapter_name]
        self.base_layer.set_quantized(packed, state)
        self.premerge[adapter_name] = None

    def unloaded_base(self, merged: bool) -> nn.Module:
        """``merge_and_unload``: an ``nn.Linear`` with ``Ŵ + Σ ΔW`` (Ŵ from the pre-merge bytes, no second
        rounding), in the weight's original dtype; ``unload``: the :class:`QuantLinear` as it is."""
        if not merged:
            return self.base_layer
        if not self.merged_adapters:
            return self.base_layer.to_linear()
        first = self.merged_adapters[0]
        packed, state = self.premerge[first]
        weight = dequantize_4bit(packed, state)
        with torch.no_grad():
            for name in self.merged_adapters:
                weight = weight + self.delta_weight(name).to(weight.dtype)
        return self.base_layer.to_linear(weight)


# ---------------------------------------------------------------------- model level
def apply_qlora(
    model: nn.Module,
    r: int = _D.r,
    alpha: float = _D.alpha,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    quant_type: str = _D.quant_type,
    blocksize: int = _D.blocksize,
    double_quant: bool = _D.double_quant,
    compute_dtype: torch.dtype = _D.compute_dtype,
    dropout: float = _D.dropout,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
) -> nn.Module:
    """Quantize the target ``nn.Linear`` layers of ``model`` to 4 bits and put LoRA on them, in place; the
    convenient form of ``peftlab.inject(model, QLoRAConfig(...), adapter_name)``.

    The default targets are every linear layer of a Llama block (the paper adapts all of them). Layers not
    targeted stay as they are. Nothing is changed if any argument is invalid. Returns ``model``.
    """
    config = lora_family_config(QLoRAConfig, r=r, alpha=alpha, dropout=dropout, target_modules=target_modules,
                                modules_to_save=modules_to_save, quant_type=quant_type, blocksize=blocksize,
                                double_quant=double_quant, compute_dtype=compute_dtype)
    return inject(model, config, adapter_name)


def dequantized_reference(model: nn.Module, config: QLoRAConfig) -> nn.Module:
    """A copy of ``model`` whose ``config`` targets hold ``Ŵ = dequantize(quantize(W))`` as plain ``nn.Linear``:
    what a fresh QLoRA model computes (with an fp32 compute dtype), so tests compare against it exactly."""
    ref = copy.deepcopy(model)
    for name in find_targets(ref, config.target_modules, allowed=(nn.Linear,)):
        parent, attr = get_submodule_parent(ref, name)
        quant = QuantLinear.from_linear(getattr(parent, attr), quant_type=config.quant_type,
                                        blocksize=config.blocksize, double_quant=config.double_quant,
                                        compute_dtype=config.compute_dtype)
        setattr(parent, attr, quant.to_linear())
    return ref


def _compare_qlora(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: LoRA's recipe (r = 8, α = 16) over an NF4 base (blocks of 64, double quantization)."""
    return apply_qlora(model, r=8, alpha=16, target_modules=targets(task), modules_to_save=head(task))


register_method(
    "qlora", QLoRAConfig, (QLoRALinear,),
    examples=(
        {"model": "mlp", "config": {"r": 4, "alpha": 8, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"r": 2, "alpha": 4, "target_modules": ["0", "2"], "quant_type": "fp4",
                                    "blocksize": 32, "double_quant": False, "dropout": 0.1}},
        {"model": "bert", "config": {"r": 4, "alpha": 8, "target_modules": ["query", "value", "dense"],
                                     "modules_to_save": ["classifier"]}},
    ),
    reference=dequantized_reference,
    # merged = Q(Ŵ + ΔW): one 4-bit rounding of every merged weight (see the module docstring). Measured on
    # these examples' outputs: see tests/methods/test_qlora.py::test_merge_requantizes_and_unmerge_is_exact.
    # max |merged − unmerged| measured 0.063 (NF4), 0.12 (FP4, blocksize 32), 0.002 (BERT) on outputs of size ≲ 0.8
    tolerances={"merged_output": 0.25},
    recipe=Recipe("QLoRA: NF4 base (blocks of 64, double quant) + LoRA r=8", _compare_qlora),
)


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
def _quantized_targets(model: nn.Module, names, where: str) -> dict | None:
    """QLoRA's quantization settings when every named module's base is 4-bit (:class:`QuantLinear`), ``None``
    when none is; a mix, or 4-bit layers quantized differently, is an error (nothing has changed yet)."""
    modules = dict(model.named_modules())
    bases = {n: getattr(m, "base_layer", m) for n in names if (m := modules.get(n)) is not None}
    quant = {n: b for n, b in bases.items() if isinstance(b, QuantLinear)}
    if not quant:
        return None
    if len(quant) != len(bases):
        plain = sorted(set(bases) - set(quant))
        raise ValueError(f"{where}: the adapter targets 4-bit layers ({sorted(quant)[0]!r}, …) and unquantized ones "
                         f"({plain[0]!r}, …); quantize all of its targets or none")
    settings = {(b.quant_type, b.blocksize, b.double_quant, b.compute_dtype) for b in quant.values()}
    if len(settings) > 1:
        raise ValueError(f"{where}: the targeted 4-bit layers are quantized in different ways {sorted(map(str, settings))}; "
                         "one adapter file is loaded with one QLoRA setting")
    quant_type, blocksize, double_quant, compute_dtype = settings.pop()
    return {"quant_type": quant_type, "blocksize": blocksize, "double_quant": double_quant,
            "compute_dtype": compute_dtype}


# QLoRA has no file of its own: peft saves the LoRA of a 4-bit (bitsandbytes) base as a plain LoRA file — the
# quantization belongs to the base model, not to the adapter. A QLoRA model is saved through LoRA's codec, and
# a LoRA file whose targets are 4-bit in the model loads as QLoRA layers with those layers' settings.
register_same_file("qlora", "lora", tensor_keys={QLoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight"}},
                   claims=_quantized_targets)
