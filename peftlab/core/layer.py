r"""``AdapterLayer``: the base of every weight-space adapter layer (LoRA, DoRA, WaveFT, VB-LoRA, IA³ …).

An adapter layer wraps one frozen layer of the model, kept as ``base_layer`` (peft's name), and holds
one or more *named* adapters side by side. Every method declares only what is different about it:

* ``adapter_param_names``: its trainable tensors, each an ``nn.ParameterDict`` keyed by adapter name
  (LoRA: ``("lora_A", "lora_B")``; DoRA adds ``"lora_magnitude_vector"``);
* ``adapter_module_names``: per-adapter sub-modules without trainable weights (LoRA's dropout);
* ``adapter_state_names``: per-adapter plain values (LoRA: ``r``, ``lora_alpha``, ``scaling``);
* ``base_types``: the layer types it can wrap (``nn.Linear``, ``nn.Embedding``);
* :meth:`check` (validation before anything changes), :meth:`create` (make the tensors),
  :meth:`num_trainable` (the closed-form parameter count), :meth:`param_shapes`;
* :meth:`delta_weight` — ``ΔW`` with the base weight's shape — and :meth:`adapter_forward`.

Everything else is generic and lives here: add / delete / set adapters, enable / disable, and merging.
With ``W`` the base weight (``base_weight()``), merging adapter ``a`` is ``W ← W + ΔW_a`` and
unmerging subtracts the same ``ΔW_a`` in reverse order, so ``unmerge()`` restores ``W`` (up to
rounding). A method whose merge is not additive (DoRA rescales rows by ``m/‖W + ΔW‖``) overrides the
two hooks :meth:`merge_one` / :meth:`unmerge_one`. A quantized base (QLoRA) overrides
:meth:`base_weight` / :meth:`set_base_weight`, so merging works over it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AdapterLayer", "check_adapter_name"]

def check_adapter_name(adapter_name) -> None:
    """An adapter name is a non-empty string without '.' (it becomes part of parameter names)."""
    if not isinstance(adapter_name, str) or not adapter_name or "." in adapter_name:
        raise ValueError(f"adapter_name must be a non-empty string without '.', got {adapter_name!r}")


class AdapterLayer(nn.Module):
    """A frozen ``base_layer`` plus named adapters. Subclasses declare the method-specific parts."""

    #: names of the ``nn.ParameterDict`` attributes holding each adapter's trainable tensors
    adapter_param_names: tuple[str, ...] = ()
    #: names of ``nn.ModuleDict`` attributes with per-adapter modules (dropout, …)
    adapter_module_names: tuple[str, ...] = ()
    #: names of plain ``dict`` attributes with per-adapter values (rank, scale, …)
    adapter_state_names: tuple[str, ...] = ()
    #: layer types this adapter can wrap
    base_types: tuple[type, ...] = (nn.Linear,)

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        if not isinstance(base_layer, self.base_types):
            kinds = ", ".join(f"nn.{k.__name__}" for k in self.base_types)
            raise TypeError(f"base_layer must be one of {kinds}, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        for param in base_layer.parameters():
            param.requires_grad_(False)
        for name in self.adapter_param_names:
            setattr(self, name, nn.ParameterDict())
        for name in self.adapter_module_names:
            setattr(self, name, nn.ModuleDict())
        for name in self.adapter_state_names:
            setattr(self, name, {})
        self.adapter_names: list[str] = []
        self.active_adapters: list[str] = []
        self.merged_adapters: list[str] = []
        self.adapters_enabled = True

    # ------------------------------------------------------------------ what a method provides
    @classmethod
    def dims(cls, base_layer: nn.Module) -> tuple[int, int]:
        """``(in, out)`` of the wrapped layer (``(num_embeddings, embedding_dim)`` for an embedding)."""
        if isinstance(base_layer, nn.Embedding):
            return base_layer.num_embeddings, base_layer.embedding_dim
        return base_layer.in_features, base_layer.out_features

    @classmethod
    def check(cls, base_layer: nn.Module, **hparams) -> None:
        """Raise ``ValueError``/``TypeError`` naming the argument when ``hparams`` can't apply to ``base_layer``."""

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, **hparams) -> dict[str, tuple[int, ...]]:
        """Shape of each adapter tensor (by ``adapter_param_names`` entry) for ``base_layer``."""
        raise NotImplementedError

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, **hparams) -> int:
        """The method's closed-form count of trainable parameters added to ``base_layer``."""
        raise NotImplementedError

    def create(self, adapter_name: str, **hparams) -> None:
        """Make the tensors and per-adapter state of a new adapter (already validated)."""
        raise NotImplementedError

    def delta_weight(self, adapter_name: str) -> torch.Tensor:
        """``ΔW`` of ``adapter_name``, with the base weight's shape and dtype."""
        raise NotImplementedError

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """``result`` (the output so far) plus this adapter's contribution for input ``x``.

        The default forms ``ΔW`` and applies it; methods with a cheaper factored form override it.
        """
        delta = self.delta_weight(adapter_name)
        if isinstance(self.base_layer, nn.Embedding):
            base = self.base_layer
            extra = F.embedding(x, delta, padding_idx=base.padding_idx, max_norm=base.max_norm,
                                norm_type=base.norm_type, scale_grad_by_freq=base.scale_grad_by_freq,
                                sparse=base.sparse)
        else:
            extra = F.linear(x.to(delta.dtype), delta)
        return result + extra.to(result.dtype)

    # ------------------------------------------------------------------ base weight (quantized bases override)
    def base_weight(self) -> torch.Tensor:
        """The base layer's weight as a dense tensor (a quantized base returns it dequantized)."""
        return self.base_layer.weight

    def set_base_weight(self, weight: torch.Tensor) -> None:
        """Overwrite the base weight in place (a quantized base re-quantizes)."""
        with torch.no_grad():
            self.base_layer.weight.copy_(weight)

    def unloaded_base(self, merged: bool) -> nn.Module:
        """The layer ``merge_and_unload`` (``merged=True``, after merging) or ``unload`` puts back in the model.

        The base layer itself; a quantized base (QLoRA) returns a plain ``nn.Linear`` when merged.
        """
        return self.base_layer

    # ------------------------------------------------------------------ adapters
    def add_adapter(self, adapter_name: str, **hparams) -> None:
        """Validate, create and activate a new adapter (alongside those already active)."""
        check_adapter_name(adapter_name)
        if adapter_name in self.adapter_names:
            raise ValueError(f"adapter {adapter_name!r} already exists on this layer; pick another adapter_name")
        self.check(self.base_layer, **hparams)
        self.create(adapter_name, **hparams)
        self.adapter_names.append(adapter_name)
        self.active_adapters.append(adapter_name)

    def has_adapter(self, adapter_name: str) -> bool:
        return adapter_name in self.adapter_names

    def set_adapter(self, names: str | Sequence[str]) -> None:
        """Make exactly ``names`` active (their contributions add up); only active adapters are trainable."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self.adapter_names]
        if unknown:
            raise ValueError(f"unknown adapter(s) {unknown}; this layer has {self.adapter_names}")
        self.active_adapters = names
        for attr in self.adapter_param_names:
            for key, param in getattr(self, attr).items():
                param.requires_grad_(key in names)

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name not in self.adapter_names:
            raise ValueError(f"unknown adapter {adapter_name!r}; this layer has {self.adapter_names}")
        if adapter_name in self.merged_adapters:
            raise RuntimeError(f"adapter {adapter_name!r} is merged; unmerge before deleting it")
        for attr in self.adapter_param_names + self.adapter_module_names:
            store = getattr(self, attr)
            if adapter_name in store:
                del store[adapter_name]
        for attr in self.adapter_state_names:
            getattr(self, attr).pop(adapter_name, None)
        self.adapter_names.remove(adapter_name)
        if adapter_name in self.active_adapters:
            self.active_adapters.remove(adapter_name)

    def adapter_parameters(self, adapter_name: str) -> dict[str, nn.Parameter]:
        """This layer's tensors of ``adapter_name``, by ``adapter_param_names`` entry."""
        return {attr: getattr(self, attr)[adapter_name] for attr in self.adapter_param_names
                if adapter_name in getattr(self, attr)}

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        result = self.base_layer(x, *args, **kwargs)
        if not self.adapters_enabled:
            return result
        for name in self.active_adapters:
            if name not in self.merged_adapters:  # a merged adapter is already inside the base weight
                result = self.adapter_forward(name, x, result)
        return result

    # ------------------------------------------------------------------ merging
    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """Fold one adapter into the base weight: ``W ← W + ΔW``. Methods may override."""
        weight = self.base_weight()
        merged = weight + self.delta_weight(adapter_name).to(weight.dtype)
        if safe_merge and not torch.isfinite(merged).all():
            raise ValueError(f"merging adapter {adapter_name!r} would put NaN/Inf into the base weight; not merged")
        self.set_base_weight(merged)

    def unmerge_one(self, adapter_name: str) -> None:
        """Undo :meth:`merge_one`: ``W ← W − ΔW``. Methods may override."""
        weight = self.base_weight()
        self.set_base_weight(weight - self.delta_weight(adapter_name).to(weight.dtype))

    def merge(self, adapter_names: Iterable[str] | None = None, safe_merge: bool = False) -> None:
        """Fold the active (or the named) adapters into the base weight.

        ``safe_merge`` checks the merged weight for NaN/Inf before writing it. Merging an adapter this
        layer does not have, or one already merged, is an error (the model-level
        :func:`peftlab.merge_adapter` only asks each layer for the adapters it has).
        """
        names = list(self.active_adapters if adapter_names is None else adapter_names)
        for name in names:
            if name not in self.adapter_names:
                raise ValueError(f"unknown adapter {name!r}; this layer has {self.adapter_names}")
            if name in self.merged_adapters:
                raise RuntimeError(f"adapter {name!r} is already merged; unmerge before merging again")
        with torch.no_grad():
            for name in names:
                self.merge_one(name, safe_merge=safe_merge)
                self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """Subtract every merged adapter again, newest first, restoring the base weight. No-op if none."""
        with torch.no_grad():
            while self.merged_adapters:
                self.unmerge_one(self.merged_adapters[-1])
                self.merged_adapters.pop()

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)
