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

Dropout acts on the input of A only; the frozen path never sees it. Merging folds ``W0 ← W0 + s·B A``
into the base weight so inference costs exactly what the base model costs; unmerging subtracts it again.
Trainable parameters per layer: ``r·(in + out)``.

Embeddings (peft's ``lora.Embedding``): a table ``E ∈ R^{V×d}`` gets ``A ∈ R^{r×V}`` (init **0**) and
``B ∈ R^{d×r}`` (init N(0, 1)) — the zero and the random factor swap roles, because looking up a row of
a zero A already makes the update zero — and ``ΔE = s · (B A)ᵀ ∈ R^{V×d}``; ``r·(V + d)`` parameters.
peft applies no dropout to embeddings, so a config's dropout is ignored there.

The lecture writes ``W0 ∈ R^{d×k}``, ``ΔW = A B`` with ``A ∈ R^{d×r}``: the same thing in the
transposed (in×out) convention. Here, as in peft and the LoRA paper's code, ``A`` reads the input
and ``B`` writes the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.core import argcheck
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.layer import AdapterLayer
from peftlab.core.peft_format import Codec, register_codec
from peftlab.core.recipe import Recipe, head, targets
from peftlab.core.targets import pattern_key
from peftlab.core.tuner import (
    adapter_layers,
    inject,
    register_method,
)

__all__ = [
    "LoRAConfig",
    "LoRAEmbedding",
    "LoRALayer",
    "LoRALinear",
    "apply_lora",
    "lora_family_config",
    "lora_from_peft",
    "lora_layers",
    "lora_to_peft",
]

INITS = ("kaiming", "gaussian")


# ---------------------------------------------------------------------- config
@dataclass
class LoRAConfig(AdapterConfig):
    """A LoRA adapter's settings, validated at construction (peft's ``LoraConfig`` names in brackets).

    ``r`` [r], ``alpha`` [lora_alpha], ``dropout`` [lora_dropout], ``use_rslora``, ``target_modules``
    (list of name suffixes or one regex), ``modules_to_save`` (modules kept fully trainable and saved, e.g. a
    new ``classifier``), ``rank_pattern`` / ``alpha_pattern`` (per-layer r and α: a key is a regex matched
    at the end of the module name, first match wins, as in peft), ``init`` ("kaiming" or "gaussian").
    """

    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    use_rslora: bool = False
    target_modules: list[str] | str = names_field("query", "value")
    modules_to_save: list[str] = names_field()
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    init: str = "kaiming"

    method = "lora"

    def __post_init__(self) -> None:
        argcheck.positive_int("r", self.r)
        self.alpha = float(argcheck.number("alpha", self.alpha, above=0, allowed="a positive number"))
        self.dropout = float(argcheck.number("dropout", self.dropout, at_least=0.0, below=1.0,
                                             allowed="a number in [0, 1)"))
        argcheck.flag("use_rslora", self.use_rslora)
        super().__post_init__()  # target_modules, modules_to_save
        for attr, check in (("rank_pattern", lambda k, v: argcheck.positive_int(f"rank_pattern[{k!r}]", v)),
                            ("alpha_pattern", lambda k, v: argcheck.number(f"alpha_pattern[{k!r}]", v, above=0,
                                                                           allowed="a positive number"))):
            pattern = getattr(self, attr)
            if not isinstance(pattern, dict):
                raise TypeError(f"{attr} must be a dict of module-name pattern → value, got {pattern!r}")
            for key, value in pattern.items():
                if not isinstance(key, str) or not key:
                    raise TypeError(f"{attr} keys must be non-empty strings, got {key!r}")
                check(key, value)
        argcheck.one_of("init", self.init, INITS)

    def rank_for(self, module_name: str) -> int:
        key = pattern_key(self.rank_pattern, module_name)
        return self.r if key is None else self.rank_pattern[key]

    def alpha_for(self, module_name: str) -> float:
        key = pattern_key(self.alpha_pattern, module_name)
        return self.alpha if key is None else float(self.alpha_pattern[key])

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        """Keyword arguments of ``add_adapter`` for the layer called ``module_name``."""
        return {"r": self.rank_for(module_name), "alpha": self.alpha_for(module_name), "dropout": self.dropout,
                "use_rslora": self.use_rslora, "init": self.init}


#: the defaults, read by every signature below (the layers' and ``apply_lora``'s)
_D = LoRAConfig()


# ---------------------------------------------------------------------- layers
class LoRALayer(AdapterLayer):
    """What LoRA's two layer kinds share: the per-adapter rank, α and scale, and their validation."""

    adapter_state_names = ("r", "lora_alpha", "use_rslora", "scaling")

    @classmethod
    def check(cls, base_layer: nn.Module, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
              use_rslora: bool = _D.use_rslora, init: str = _D.init) -> None:
        n_in, n_out = cls.dims(base_layer)
        argcheck.positive_int("r", r)
        if r > min(n_in, n_out):
            raise ValueError(f"r={r} is not allowed for a {n_out}×{n_in} layer: need 1 ≤ r ≤ min(in, out) = "
                             f"{min(n_in, n_out)}")
        argcheck.number("alpha", alpha, above=0, allowed="a positive number")
        argcheck.number("dropout", dropout, at_least=0.0, below=1.0, allowed="a number in [0, 1)")
        argcheck.one_of("init", init, INITS)

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = _D.r, **_) -> int:
        """``r · (in + out)``."""
        n_in, n_out = cls.dims(base_layer)
        return r * (n_in + n_out)

    def adapter_dtype_device(self) -> tuple[torch.dtype, torch.device]:
        """dtype and device of new adapter tensors: the base weight's (a quantized base says fp32)."""
        weight = self.base_layer.weight
        return weight.dtype, weight.device

    def _set_scale(self, adapter_name: str, r: int, alpha: float, use_rslora: bool) -> None:
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = float(alpha)
        self.use_rslora[adapter_name] = bool(use_rslora)
        self.scaling[adapter_name] = float(alpha) / (math.sqrt(r) if use_rslora else r)

    def _product(self, adapter_name: str, B: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """``s · B A`` in the base weight's dtype (half precision on CPU is multiplied in fp32)."""
        dtype = self.base_weight().dtype
        if A.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16):
            B, A = B.float(), A.float()
        return (self.scaling[adapter_name] * (B @ A)).to(dtype)

    def extra_repr(self) -> str:
        parts = [f"{n}: r={self.r[n]}, alpha={self.lora_alpha[n]:g}, scaling={self.scaling[n]:g}"
                 for n in self.adapter_names]
        return f"adapters=[{'; '.join(parts)}]"


class LoRALinear(LoRALayer):
    r"""A frozen ``nn.Linear`` plus one or more named LoRA adapters.

    ``y = base_layer(x) + Σ_{a active, not merged} scaling[a] · (dropout_a(x) lora_A[a]ᵀ) lora_B[a]ᵀ``

    Shapes: ``lora_A[a]``: (r, in), ``lora_B[a]``: (out, r), ``delta_weight(a)``: (out, in).
    """

    adapter_param_names = ("lora_A", "lora_B")
    adapter_module_names = ("lora_dropout",)
    base_types = (nn.Linear,)

    def __init__(self, base_layer: nn.Linear, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
                 use_rslora: bool = _D.use_rslora, adapter_name: str | None = "default", init: str = _D.init):
        super().__init__(base_layer)
        self.in_features, self.out_features = self.dims(base_layer)
        if adapter_name is not None:
            self.add_adapter(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = cls.dims(base_layer)
        return {"lora_A": (r, n_in), "lora_B": (n_out, r)}

    def create(self, adapter_name: str, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
               use_rslora: bool = _D.use_rslora, init: str = _D.init) -> None:
        """A (r, in): kaiming-uniform (or N(0, 1/r²) with ``init="gaussian"``); B (out, r): zero."""
        dtype, device = self.adapter_dtype_device()
        A = torch.empty(r, self.in_features, dtype=dtype, device=device)
        if init == "kaiming":
            nn.init.kaiming_uniform_(A, a=math.sqrt(5))  # U(-1/sqrt(in), 1/sqrt(in))
        else:
            nn.init.normal_(A, std=1.0 / r)
        B = torch.zeros(self.out_features, r, dtype=dtype, device=device)
        self.lora_A[adapter_name] = nn.Parameter(A)
        self.lora_B[adapter_name] = nn.Parameter(B)
        self.lora_dropout[adapter_name] = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self._set_scale(adapter_name, r, alpha, use_rslora)

    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔW = s · B A`` with shape (out, in), in the base weight's dtype."""
        return self._product(adapter_name, self.lora_B[adapter_name], self.lora_A[adapter_name])

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        A, B = self.lora_A[adapter_name], self.lora_B[adapter_name]
        h = self.lora_dropout[adapter_name](x.to(A.dtype))
        return result + (self.scaling[adapter_name] * F.linear(F.linear(h, A), B)).to(result.dtype)


class LoRAEmbedding(LoRALayer):
    r"""A frozen ``nn.Embedding`` (table ``E ∈ R^{V×d}``) plus named LoRA adapters, as peft does it.

    ``out = E[x] + s · (Aᵀ[x]) Bᵀ`` with ``A = lora_embedding_A[a] ∈ R^{r×V}`` (init 0) and
    ``B = lora_embedding_B[a] ∈ R^{d×r}`` (init N(0, 1)); ``ΔE = s · (B A)ᵀ ∈ R^{V×d}``.
    ``dropout`` is accepted and not applied (peft applies none to embeddings).
    """

    adapter_param_names = ("lora_embedding_A", "lora_embedding_B")
    base_types = (nn.Embedding,)

    def __init__(self, base_layer: nn.Embedding, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
                 use_rslora: bool = _D.use_rslora, adapter_name: str | None = "default", init: str = _D.init):
        super().__init__(base_layer)
        self.num_embeddings, self.embedding_dim = self.dims(base_layer)
        if adapter_name is not None:
            self.add_adapter(adapter_name, r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora, init=init)

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, **_) -> dict[str, tuple[int, ...]]:
        n_vocab, dim = cls.dims(base_layer)
        return {"lora_embedding_A": (r, n_vocab), "lora_embedding_B": (dim, r)}

    def create(self, adapter_name: str, r: int = _D.r, alpha: float = _D.alpha, dropout: float = _D.dropout,
               use_rslora: bool = _D.use_rslora, init: str = _D.init) -> None:
        """A (r, V): zero; B (d, r): N(0, 1)."""
        weight = self.base_layer.weight
        A = torch.zeros(r, self.num_embeddings, dtype=weight.dtype, device=weight.device)
        B = torch.empty(self.embedding_dim, r, dtype=weight.dtype, device=weight.device)
        nn.init.normal_(B)
        self.lora_embedding_A[adapter_name] = nn.Parameter(A)
        self.lora_embedding_B[adapter_name] = nn.Parameter(B)
        self._set_scale(adapter_name, r, alpha, use_rslora)

    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔE = s · (B A)ᵀ`` with the table's shape (V, d)."""
        return self._product(adapter_name, self.lora_embedding_B[adapter_name],
                             self.lora_embedding_A[adapter_name]).T

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        A, B = self.lora_embedding_A[adapter_name], self.lora_embedding_B[adapter_name]
        base = self.base_layer
        rows = F.embedding(x, A.T, padding_idx=base.padding_idx, max_norm=base.max_norm,
                           norm_type=base.norm_type, scale_grad_by_freq=base.scale_grad_by_freq,
                           sparse=base.sparse)  # (..., r): the columns of A picked by the token ids
        return result + (self.scaling[adapter_name] * (rows @ B.T)).to(result.dtype)


# ---------------------------------------------------------------------- model level
def lora_layers(model: nn.Module) -> dict[str, LoRALayer]:
    """Every LoRA layer of ``model`` (:class:`LoRALinear` and :class:`LoRAEmbedding`) by module name."""
    return adapter_layers(model, LoRALayer)


def lora_family_config(config_cls: type, *, target_modules, modules_to_save=None, rank_pattern=None,
                       alpha_pattern=None, **fields) -> LoRAConfig:
    """A ``LoRAConfig`` (or subclass: DoRA, QLoRA) from ``apply_*``-style keyword arguments (any sequences,
    ``None`` for empty), validated by the config class."""
    return config_cls(target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
                      modules_to_save=list(modules_to_save or []), rank_pattern=dict(rank_pattern or {}),
                      alpha_pattern=dict(alpha_pattern or {}), **fields)


def apply_lora(
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
    """Wrap the target ``nn.Linear`` / ``nn.Embedding`` layers of ``model`` with LoRA, in place, and freeze
    everything else; the convenient form of ``peftlab.inject(model, LoRAConfig(...), adapter_name)``.

    ``target_modules``: a list of name suffixes or one regex (see :mod:`peftlab.core.targets`).
    ``modules_to_save``: modules that stay fully trainable and are saved with the adapter, e.g. a new
    ``classifier`` head. Calling it again with another ``adapter_name`` adds a second adapter. Nothing is
    changed if any argument is invalid. Returns ``model``.

    Note: peft's ``LoraConfig`` defaults to ``lora_alpha=8``; peftlab's default ``alpha=16`` is the common
    "α = 2r" choice for r = 8.
    """
    config = lora_family_config(LoRAConfig, r=r, alpha=alpha, target_modules=target_modules, dropout=dropout,
                                use_rslora=use_rslora, modules_to_save=modules_to_save, init=init,
                                rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
    return inject(model, config, adapter_name)


# ---------------------------------------------------------------------- how peftlab compare builds it
def _compare_lora(model: nn.Module, task: str, **kw) -> nn.Module:
    """``peftlab compare``: r = 8, α = 16 on every attention and MLP linear of the task's model, head trained."""
    return apply_lora(model, r=8, alpha=16, target_modules=targets(task), modules_to_save=head(task), **kw)


def _compare_rslora(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``'s "rslora": LoRA's recipe with α/√r scaling (``use_rslora=True``)."""
    return _compare_lora(model, task, use_rslora=True)


register_method(
    "lora", LoRAConfig, (LoRALinear, LoRAEmbedding),
    examples=(
        {"model": "mlp", "config": {"r": 4, "alpha": 8, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"r": 2, "alpha": 8, "target_modules": ["0", "2"], "use_rslora": True,
                                    "rank_pattern": {"2": 3}, "alpha_pattern": {"0": 4}}},
        {"model": "bert", "config": {"r": 4, "alpha": 8, "target_modules": ["word_embeddings", "query", "value"],
                                     "modules_to_save": ["classifier"]}},
    ),
    recipe=Recipe("LoRA r=8, alpha=16 on every attention and MLP Linear", _compare_lora),
    # rsLoRA is LoRA with another scaling (a LoRAConfig flag, the same layers and file), compared under its own name
    variants={"rslora": Recipe("rsLoRA: LoRA with alpha/sqrt(r) scaling", _compare_rslora)},
)


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
def lora_to_peft(cfg: LoRAConfig) -> dict:
    """peft's ``LoraConfig`` fields for ``cfg`` (DoRA's and QLoRA's files use them too)."""
    return {
        "r": cfg.r, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout, "use_rslora": cfg.use_rslora,
        "rank_pattern": dict(cfg.rank_pattern), "alpha_pattern": dict(cfg.alpha_pattern),
        "bias": "none", "lora_bias": False, "fan_in_fan_out": False, "use_dora": False,
        "init_lora_weights": True if cfg.init == "kaiming" else "gaussian",
    }


def lora_from_peft(cfg: dict, where: str) -> dict:
    """``LoRAConfig`` keyword arguments from a peft ``adapter_config.json`` dict; settings peftlab does not
    implement (a trained bias, ``fan_in_fan_out``) raise, naming ``where``."""
    for key in ("r", "lora_alpha"):
        if key not in cfg:
            raise ValueError(f"{where}: missing required field {key!r}")
    if cfg.get("bias", "none") != "none" or cfg.get("lora_bias"):
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} / lora_bias={cfg.get('lora_bias')!r} are not "
                         "implemented in peftlab; it reads bias='none', lora_bias=false")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    init = cfg.get("init_lora_weights", True)
    return {
        "r": int(cfg["r"]), "alpha": float(cfg["lora_alpha"]), "dropout": float(cfg.get("lora_dropout") or 0.0),
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "rank_pattern": {k: int(v) for k, v in (cfg.get("rank_pattern") or {}).items()},
        "alpha_pattern": {k: float(v) for k, v in (cfg.get("alpha_pattern") or {}).items()},
        "init": "gaussian" if init == "gaussian" else "kaiming",
    }


# peft_type LORA without use_dora; QLoRA (methods/qlora.py) adds its layer's keys, since its file is this one.
register_codec(
    Codec(
        method="lora", peft_type="LORA",
        tensor_keys={LoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight"},
                     LoRAEmbedding: {"lora_embedding_A": ".lora_embedding_A",
                                     "lora_embedding_B": ".lora_embedding_B"}},
        accepts=lambda cfg: cfg.get("peft_type") == "LORA" and not cfg.get("use_dora"),
        to_peft=lora_to_peft, from_peft=lora_from_peft,
    ),
    label="LORA (use_dora=false)",
)
