r"""LoRA: Low-Rank Adaptation (Hu et al., 2021, arXiv 2106.09685), and rsLoRA (Kalajdzievski, 2023).

Notation (PyTorch's, which is also peft's): a frozen ``nn.Linear`` holds ``W0 ∈ R^{out×in}`` and bias
``b ∈ R^{out}``; an input ``x ∈ R^{…×in}`` gives ``x W0ᵀ + b``. LoRA learns

    A ∈ R^{r×in}   (``lora_A[name]``, init U(−1/√in, 1/√in), i.e. kaiming_uniform(a=√5))
    B ∈ R^{out×r}  (``lora_B[name]``, init 0, so a fresh adapter leaves the model unchanged)

and adds the low-rank update ``ΔW = s · B A ∈ R^{out×in}`` with scale

    s = α / r        (LoRA)
    s = α / √r       (rsLoRA, ``use_rslora=True``: keeps the update's size stable as r grows)

Forward, never forming ΔW (two thin matmuls, O(r·(in+out)) per token instead of O(in·out)):

    y = x W0ᵀ + b + Σ_{a ∈ active} s_a · (dropout_a(x) A_aᵀ) B_aᵀ

Dropout acts on the input of A only; the frozen path never sees it. ``merge()`` folds
``W0 ← W0 + s·B A`` into the base weight so inference costs exactly what the base model costs;
``unmerge()`` subtracts it again. Trainable parameters per layer: ``r·(in + out)``.

The lecture writes ``W0 ∈ R^{d×k}``, ``ΔW = A B`` with ``A ∈ R^{d×r}``: the same thing in the
transposed (in×out) convention. Here, as in peft and the LoRA paper's code, ``A`` reads the input
and ``B`` writes the output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.inject import find_targets, freeze_except, replace_modules

__all__ = [
    "LoRAConfig",
    "LoRAEmbedding",
    "LoRALinear",
    "apply_lora",
    "disable_adapters",
    "lora_layers",
    "merge_lora",
    "set_active_adapters",
    "unmerge_lora",
]


def _check_hparams(in_features: int, out_features: int, r, alpha, dropout, adapter_name) -> None:
    if not isinstance(adapter_name, str) or not adapter_name or "." in adapter_name:
        raise ValueError(f"adapter_name must be a non-empty string without '.', got {adapter_name!r}")
    if isinstance(r, bool) or not isinstance(r, int):
        raise TypeError(f"r must be an int, got {type(r).__name__} ({r!r})")
    if not 0 < r <= min(in_features, out_features):
        raise ValueError(
            f"r={r} is not allowed for a {out_features}×{in_features} layer: need 1 ≤ r ≤ min(in, out) = "
            f"{min(in_features, out_features)}"
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a positive number, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {dropout!r}")


class LoRALinear(nn.Module):
    r"""A frozen ``nn.Linear`` plus one or more named LoRA adapters.

    ``y = base_layer(x) + Σ_{a active, not merged} scaling[a] · lora_B[a]( lora_A[a]( dropout_a(x) ) )``

    Shapes: ``lora_A[a]``: (r, in), ``lora_B[a]``: (out, r), ``delta_weight(a)``: (out, in).
    """

    def __init__(
        self,
        base_layer: nn.Linear,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        adapter_name: str = "default",
        init: str = "kaiming",
    ):
        super().__init__()
        if not isinstance(base_layer, self._BASE):
            raise TypeError(f"base_layer must be an nn.{self._BASE.__name__}, got {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.in_features, self.out_features = self._dims(base_layer)
        setattr(self, self._A_NAME, nn.ParameterDict())
        setattr(self, self._B_NAME, nn.ParameterDict())
        self.lora_dropout = nn.ModuleDict()
        self.r: dict[str, int] = {}
        self.lora_alpha: dict[str, float] = {}
        self.use_rslora: dict[str, bool] = {}
        self.scaling: dict[str, float] = {}
        self.active_adapters: list[str] = []
        self.merged_adapters: list[str] = []
        self.adapters_enabled = True
        for param in base_layer.parameters():
            param.requires_grad_(False)
        self.add_adapter(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)

    _BASE: type = nn.Linear
    _A_NAME, _B_NAME = "lora_A", "lora_B"

    @staticmethod
    def _dims(base_layer: nn.Module) -> tuple[int, int]:
        return base_layer.in_features, base_layer.out_features

    @property
    def _A(self) -> nn.ParameterDict:
        return getattr(self, self._A_NAME)

    @property
    def _B(self) -> nn.ParameterDict:
        return getattr(self, self._B_NAME)

    def _new_pair(self, r: int, init: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Initial (A, B): A (r, in) kaiming-uniform (or N(0, 1/r²) with init='gaussian'), B (out, r) zero."""
        weight = self.base_layer.weight
        A = torch.empty(r, self.in_features, dtype=weight.dtype, device=weight.device)
        if init == "kaiming":
            nn.init.kaiming_uniform_(A, a=math.sqrt(5))  # U(-1/sqrt(in), 1/sqrt(in))
        else:
            nn.init.normal_(A, std=1.0 / r)
        B = torch.zeros(self.out_features, r, dtype=weight.dtype, device=weight.device)
        return A, B

    # ------------------------------------------------------------------ adapters
    def add_adapter(
        self,
        adapter_name: str,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        use_rslora: bool = False,
        init: str = "kaiming",
    ) -> None:
        """Add a new adapter and make it active (alongside those already active)."""
        _check_hparams(self.in_features, self.out_features, r, alpha, dropout, adapter_name)
        if adapter_name in self._A:
            raise ValueError(f"adapter {adapter_name!r} already exists on this layer; pick another adapter_name")
        if init not in ("kaiming", "gaussian"):
            raise ValueError(f"init must be 'kaiming' or 'gaussian', got {init!r}")
        A, B = self._new_pair(r, init)
        self._A[adapter_name] = nn.Parameter(A)
        self._B[adapter_name] = nn.Parameter(B)
        self.lora_dropout[adapter_name] = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = float(alpha)
        self.use_rslora[adapter_name] = bool(use_rslora)
        self.scaling[adapter_name] = float(alpha) / (math.sqrt(r) if use_rslora else r)
        self.active_adapters.append(adapter_name)

    def set_adapter(self, names: str | Sequence[str]) -> None:
        """Make exactly ``names`` active; their contributions add up."""
        names = [names] if isinstance(names, str) else list(names)
        unknown = [n for n in names if n not in self._A]
        if unknown:
            raise ValueError(f"unknown adapter(s) {unknown}; this layer has {list(self._A)}")
        self.active_adapters = names

    def delete_adapter(self, adapter_name: str) -> None:
        if adapter_name not in self._A:
            raise ValueError(f"unknown adapter {adapter_name!r}; this layer has {list(self._A)}")
        if adapter_name in self.merged_adapters:
            raise RuntimeError(f"adapter {adapter_name!r} is merged; unmerge() before deleting it")
        for store in (self._A, self._B, self.lora_dropout):
            del store[adapter_name]
        for store in (self.r, self.lora_alpha, self.use_rslora, self.scaling):
            store.pop(adapter_name)
        if adapter_name in self.active_adapters:
            self.active_adapters.remove(adapter_name)

    # ------------------------------------------------------------------ math
    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔW = s · B A`` with shape (out, in), in the base weight's dtype.

        Half-precision weights on CPU are multiplied in fp32 and cast back (CPU half matmul is slow and
        imprecise).
        """
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        dtype = self.base_layer.weight.dtype
        if A.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16):
            return (self.scaling[adapter_name] * (B.float() @ A.float())).to(dtype)
        return (self.scaling[adapter_name] * (B @ A)).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if not self.adapters_enabled:
            return result
        for name in self.active_adapters:
            if name in self.merged_adapters:
                continue  # already inside base_layer.weight
            A, B = self.lora_A[name], self.lora_B[name]
            h = self.lora_dropout[name](x.to(A.dtype))
            result = result + (self.scaling[name] * F.linear(F.linear(h, A), B)).to(result.dtype)
        return result

    # ------------------------------------------------------------------ merging
    def merge(self, adapter_names: Iterable[str] | None = None, safe_merge: bool = False) -> None:
        """Fold the active (or the named) adapters into the base weight: ``W0 ← W0 + s·B A``.

        ``safe_merge`` computes the merged weight on a copy first and refuses to merge if it holds
        NaN or Inf. Merging an adapter that is already merged is an error.
        """
        names = list(self.active_adapters if adapter_names is None else adapter_names)
        for name in names:
            if name not in self._A:
                raise ValueError(f"unknown adapter {name!r}; this layer has {list(self._A)}")
            if name in self.merged_adapters:
                raise RuntimeError(f"adapter {name!r} is already merged; call unmerge() before merging again")
        weight = self.base_layer.weight
        with torch.no_grad():
            for name in names:
                delta = self.delta_weight(name)
                if safe_merge and not torch.isfinite(weight + delta).all():
                    raise ValueError(f"merging adapter {name!r} would put NaN/Inf into the base weight; not merged")
                weight.add_(delta)
                self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """Subtract every merged adapter again, newest first, restoring ``W0``."""
        if not self.merged_adapters:
            raise RuntimeError("nothing to unmerge: no adapter is merged into this layer")
        with torch.no_grad():
            while self.merged_adapters:
                name = self.merged_adapters.pop()
                self.base_layer.weight.sub_(self.delta_weight(name))

    @property
    def merged(self) -> bool:
        return bool(self.merged_adapters)

    def extra_repr(self) -> str:
        parts = [f"{n}: r={self.r[n]}, alpha={self.lora_alpha[n]:g}, scaling={self.scaling[n]:g}" for n in self._A]
        return f"in={self.in_features}, out={self.out_features}, adapters=[{'; '.join(parts)}]"


class LoRAEmbedding(LoRALinear):
    r"""A frozen ``nn.Embedding`` (table ``E ∈ R^{V×d}``) plus named LoRA adapters, as peft does it.

    ``out = E[x] + s · (Aᵀ[x]) Bᵀ`` with ``A = lora_embedding_A[a] ∈ R^{r×V}`` (init **0**) and
    ``B = lora_embedding_B[a] ∈ R^{d×r}`` (init N(0, 1)): the roles of the zero and random factor are
    swapped compared with a Linear, because a row lookup in a zero A already makes the update zero.
    ``ΔE = s · (B A)ᵀ ∈ R^{V×d}``; trainable parameters ``r·(V + d)``. No dropout (peft has none here).
    """

    _BASE = nn.Embedding
    _A_NAME, _B_NAME = "lora_embedding_A", "lora_embedding_B"

    @staticmethod
    def _dims(base_layer: nn.Module) -> tuple[int, int]:
        return base_layer.num_embeddings, base_layer.embedding_dim

    def _new_pair(self, r: int, init: str) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.base_layer.weight
        A = torch.zeros(r, self.in_features, dtype=weight.dtype, device=weight.device)
        B = torch.empty(self.out_features, r, dtype=weight.dtype, device=weight.device)
        nn.init.normal_(B)
        return A, B

    def add_adapter(self, adapter_name: str, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                    use_rslora: bool = False, init: str = "kaiming") -> None:
        if dropout:
            raise ValueError(f"dropout must be 0 for an embedding adapter (peft applies none), got {dropout!r}")
        super().add_adapter(adapter_name, r=r, alpha=alpha, dropout=0.0, use_rslora=use_rslora, init=init)

    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔE = s · (B A)ᵀ`` with the table's shape (V, d)."""
        A, B = self._A[adapter_name], self._B[adapter_name]
        dtype = self.base_layer.weight.dtype
        if A.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16):
            return (self.scaling[adapter_name] * (B.float() @ A.float()).T).to(dtype)
        return (self.scaling[adapter_name] * (B @ A).T).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        if not self.adapters_enabled:
            return result
        base = self.base_layer
        for name in self.active_adapters:
            if name in self.merged_adapters:
                continue
            A, B = self._A[name], self._B[name]
            rows = F.embedding(x, A.T, padding_idx=base.padding_idx, max_norm=base.max_norm,
                               norm_type=base.norm_type, scale_grad_by_freq=base.scale_grad_by_freq,
                               sparse=base.sparse)  # (..., r): the columns of A picked by the token ids
            result = result + (self.scaling[name] * (rows @ B.T)).to(result.dtype)
        return result


# ---------------------------------------------------------------------- model level
@dataclass
class LoRAConfig:
    """What :func:`apply_lora` did, per adapter (kept on the model as ``model.peftlab_config``)."""

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    use_rslora: bool = False
    target_modules: list[str] | str = field(default_factory=list)
    modules_to_save: list[str] = field(default_factory=list)
    method: str = "lora"

    def to_dict(self) -> dict:
        return asdict(self)


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every LoRA layer of ``model`` (:class:`LoRALinear` and :class:`LoRAEmbedding`) by module name."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, LoRALinear)}


def _is_trainable(name: str, modules_to_save: Sequence[str]) -> bool:
    if any(f".{part}." in f".{name}" for part in ("lora_A", "lora_B", "lora_embedding_A", "lora_embedding_B")):
        return True
    parts = name.split(".")
    return any(
        ".".join(parts[: i + 1]) == key or ".".join(parts[: i + 1]).endswith("." + key)
        for key in modules_to_save
        for i in range(len(parts))
    )


def apply_lora(
    model: nn.Module,
    r: int = 8,
    alpha: float = 16.0,
    target_modules: str | Sequence[str] = ("query", "value"),
    dropout: float = 0.0,
    use_rslora: bool = False,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
    init: str = "kaiming",
) -> nn.Module:
    """Wrap the target ``nn.Linear`` layers of ``model`` with LoRA, in place, and freeze everything else.

    ``target_modules``: a list of name suffixes or one regex (see :mod:`peftlab.inject`).
    ``modules_to_save``: modules that stay fully trainable and are saved with the adapter, e.g. a new
    ``classifier`` head. Calling it again with another ``adapter_name`` adds a second adapter to the
    layers it targets. Nothing is changed if any argument is invalid. Returns ``model``.

    Note: peft's ``LoraConfig`` defaults to ``lora_alpha=8``; peftlab's default ``alpha=16`` is the common
    "α = 2r" choice for r = 8.
    """
    modules_to_save = list(modules_to_save or [])
    names = find_targets(model, target_modules, allowed=(nn.Linear, nn.Embedding), wrapped=(LoRALinear,))
    for name in names:  # validate every layer before touching any
        mod = model.get_submodule(name)
        base = mod.base_layer if isinstance(mod, LoRALinear) else mod
        layer_cls = LoRAEmbedding if isinstance(base, nn.Embedding) else LoRALinear
        _check_hparams(*layer_cls._dims(base), r, alpha, dropout, adapter_name)
        if layer_cls is LoRAEmbedding and dropout:
            raise ValueError(f"dropout={dropout} cannot apply to embedding target {name!r}: peft uses none there; "
                             "use dropout=0.0 or leave embeddings out of target_modules")
        if isinstance(mod, LoRALinear) and adapter_name in mod._A:
            raise ValueError(f"layer {name!r} already has an adapter named {adapter_name!r}")
        if not base.weight.is_meta and not torch.isfinite(base.weight).all():
            raise ValueError(f"the weight of {name!r} contains NaN or Inf; refusing to add an adapter to it")
    for key in modules_to_save:
        if not any(n == key or n.endswith("." + key) for n, _ in model.named_modules()):
            raise ValueError(f"modules_to_save entry {key!r} matches no module of the model")

    def wrap(name: str, mod: nn.Module) -> nn.Module:
        if isinstance(mod, LoRALinear):
            mod.add_adapter(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)
            return mod
        layer_cls = LoRAEmbedding if isinstance(mod, nn.Embedding) else LoRALinear
        return layer_cls(mod, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora,
                         adapter_name=adapter_name, init=init)

    replace_modules(model, names, wrap)
    configs = dict(getattr(model, "peftlab_config", {}) or {})
    configs[adapter_name] = LoRAConfig(
        r=r, alpha=float(alpha), dropout=float(dropout), use_rslora=use_rslora,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        modules_to_save=modules_to_save,
    )
    model.peftlab_config = configs
    all_saved = sorted({k for cfg in configs.values() for k in cfg.modules_to_save})
    freeze_except(model, lambda n, p: _is_trainable(n, all_saved))
    return model


def set_active_adapters(model: nn.Module, names: str | Sequence[str]) -> None:
    """Activate exactly ``names`` in every LoRA layer that has them."""
    names = [names] if isinstance(names, str) else list(names)
    layers = lora_layers(model)
    if not layers:
        raise ValueError("model has no LoRA layers; call apply_lora first")
    for layer in layers.values():
        layer.set_adapter([n for n in names if n in layer._A])


def merge_lora(model: nn.Module, safe_merge: bool = False) -> nn.Module:
    """Merge the active adapters of every LoRA layer into its base weight (in place)."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("model has no LoRA layers to merge")
    for layer in layers.values():
        layer.merge(safe_merge=safe_merge)
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` on every LoRA layer (in place)."""
    for layer in lora_layers(model).values():
        layer.unmerge()
    return model


@contextmanager
def disable_adapters(model: nn.Module):
    """Within the block the model computes the base model's output (merged adapters are unmerged)."""
    layers = list(lora_layers(model).values())
    remerge = {id(layer): list(layer.merged_adapters) for layer in layers}
    for layer in layers:
        if layer.merged_adapters:
            layer.unmerge()
        layer.adapters_enabled = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.adapters_enabled = True
            if remerge[id(layer)]:
                layer.merge(remerge[id(layer)])

