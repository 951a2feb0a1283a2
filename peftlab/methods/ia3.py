r"""IA³: Infused Adapter by Inhibiting and Amplifying Inner Activations (Liu et al., 2022, "Few-Shot
Parameter-Efficient Fine-Tuning is Better and Cheaper than In-Context Learning", T-Few, arXiv 2205.05638).

IA³ learns one vector per targeted layer that rescales an activation element-wise, nothing else. The
paper rescales the attention keys and values and the feed-forward block's intermediate activation:

    softmax(Q (l_k ⊙ K)ᵀ / √d) (l_v ⊙ V)          and          (l_ff ⊙ γ(W_1 x)) W_2

peft (and peftlab) express this per ``nn.Linear`` with a frozen weight ``W0 ∈ R^{out×in}``, bias
``b ∈ R^{out}`` and input ``x ∈ R^{…×in}``; a target is one of two kinds:

* not a feed-forward module (``k_proj``, ``v_proj``, BERT's ``key``/``value``): ``l ∈ R^{out×1}``
  (peft's ``ia3_l`` shape), the *output* is scaled, bias included::

      y = (x W0ᵀ + b) ⊙ l                 merge:  W ← diag(l) W0,   b ← l ⊙ b

* a feed-forward module (``feedforward_modules``, e.g. ``down_proj`` / BERT's ``output.dense``, the
  second linear of the FFN): ``l ∈ R^{1×in}``, the *input* is scaled (that input is the FFN's
  intermediate activation ``γ(W_1 x)``)::

      y = (x ⊙ l) W0ᵀ + b                 merge:  W ← W0 diag(l),   b unchanged

``l`` starts at ones (peft's ``init_ia3_weights=True``), so a fresh adapter computes the base model
exactly; ``init_ia3_weights=False`` draws ``l ~ N(0, 1)`` as peft does. Several active adapters on one
layer multiply their vectors. Unmerging divides by ``l`` again (exact unless an entry of ``l`` is 0; peft
divides by ``l + 1e-8``). Trainable parameters per layer: ``out`` (output scaling) or ``in`` (input
scaling) — no matrix at all, which is why IA³ is the smallest of the classic methods.

Which targets are feed-forward follows peft's rule exactly: a regex ``feedforward_modules`` must match
the whole module name; a list entry ``f`` matches a module name that *ends with* the string ``f`` (plain
``str.endswith``, not the dotted suffix rule of ``target_modules``: so ``"output.dense"`` also selects
BERT's ``attention.output.dense``, as in peft's default BERT mapping). When both ``target_modules`` and
``feedforward_modules`` are lists, every feed-forward entry must also be a ``target_modules`` entry.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from peftlab.core import argcheck
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.layer import AdapterLayer
from peftlab.core.peft_format import Codec, register_codec
from peftlab.core.recipe import Recipe, head
from peftlab.core.tuner import adapter_layers, inject, register_method

__all__ = ["IA3Config", "IA3Linear", "apply_ia3", "ia3_layers", "is_feedforward"]


def is_feedforward(module_name: str, feedforward_modules: str | Sequence[str]) -> bool:
    """peft's rule: a regex matches the whole name; a list entry matches names ending with it."""
    if isinstance(feedforward_modules, str):
        return re.fullmatch(feedforward_modules, module_name) is not None
    return any(module_name.endswith(key) for key in feedforward_modules)


@dataclass
class IA3Config(AdapterConfig):
    """An IA³ adapter's settings (peft's ``IA3Config`` names in brackets).

    ``target_modules`` (``nn.Linear`` layers: name suffixes or one regex), ``feedforward_modules`` (the
    targets whose *input* is scaled: names or one regex; the rest scale their output),
    ``init_ia3_weights`` (ones when True, N(0, 1) when False), ``modules_to_save``.
    """

    target_modules: list[str] | str = names_field("key", "value", "output.dense")
    feedforward_modules: list[str] | str = names_field("output.dense")
    modules_to_save: list[str] = names_field()
    init_ia3_weights: bool = True

    method = "ia3"

    def __post_init__(self) -> None:
        for attr in ("target_modules", "feedforward_modules"):
            value = getattr(self, attr)
            if isinstance(value, (tuple, list, set)):
                value = list(value)
                if not all(isinstance(k, str) and k for k in value):
                    raise TypeError(f"{attr} entries must be non-empty strings, got {value!r}")
                setattr(self, attr, value)
            elif not isinstance(value, str):
                raise TypeError(f"{attr} must be a list of names or one regex string, got {value!r}")
        if isinstance(self.target_modules, list) and isinstance(self.feedforward_modules, list):
            stray = [k for k in self.feedforward_modules if k not in self.target_modules]
            if stray:
                raise ValueError(f"feedforward_modules={self.feedforward_modules!r}: {stray} not among "
                                 f"target_modules={self.target_modules!r}; every feed-forward module must also be "
                                 "a target (as in peft)")
        super().__post_init__()  # target_modules (a list or one regex by now), modules_to_save
        argcheck.flag("init_ia3_weights", self.init_ia3_weights)

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        return {"is_feedforward": is_feedforward(module_name, self.feedforward_modules),
                "init_ia3_weights": self.init_ia3_weights}


#: the defaults, read by every signature below (the layer's and ``apply_ia3``'s)
_D = IA3Config()


class IA3Linear(AdapterLayer):
    r"""A frozen ``nn.Linear`` plus named IA³ vectors ``ia3_l[a]``.

    Output scaling: ``ia3_l[a]`` (out, 1), ``y = base(x) ⊙ l``; input scaling (feed-forward):
    ``ia3_l[a]`` (1, in), ``y = base(x ⊙ l)``. Active adapters multiply (input and output scalings apart).
    """

    adapter_param_names = ("ia3_l",)
    adapter_state_names = ("is_feedforward",)
    base_types = (nn.Linear,)

    @classmethod
    def check(cls, base_layer: nn.Module, is_feedforward: bool = False,
              init_ia3_weights: bool = _D.init_ia3_weights) -> None:
        argcheck.flag("is_feedforward", is_feedforward)
        argcheck.flag("init_ia3_weights", init_ia3_weights)

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, is_feedforward: bool = False, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = cls.dims(base_layer)
        return {"ia3_l": (1, n_in) if is_feedforward else (n_out, 1)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, is_feedforward: bool = False, **_) -> int:
        """``in`` for a feed-forward target (input scaling), ``out`` otherwise."""
        n_in, n_out = cls.dims(base_layer)
        return n_in if is_feedforward else n_out

    def __init__(self, base_layer: nn.Module, adapter_name: str = "default", **hparams):
        super().__init__(base_layer)
        self.add_adapter(adapter_name, **hparams)

    def create(self, adapter_name: str, is_feedforward: bool = False,
               init_ia3_weights: bool = _D.init_ia3_weights) -> None:
        weight = self.base_weight()
        shape = self.param_shapes(self.base_layer, is_feedforward=is_feedforward)["ia3_l"]
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        values = torch.ones(shape, dtype=dtype, device=weight.device)
        if not init_ia3_weights:
            values = torch.randn(shape, device=weight.device).to(dtype)
        self.ia3_l[adapter_name] = nn.Parameter(values)
        self.is_feedforward[adapter_name] = is_feedforward

    # ------------------------------------------------------------------ forward
    def scalings(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The product of the active, unmerged adapters' vectors: ``(input scale (in,), output scale (out,))``."""
        scale_in = scale_out = None
        for name in self.active_adapters:
            if name in self.merged_adapters:
                continue
            vec = self.ia3_l[name].flatten()
            if self.is_feedforward[name]:
                scale_in = vec if scale_in is None else scale_in * vec
            else:
                scale_out = vec if scale_out is None else scale_out * vec
        return scale_in, scale_out

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        if not self.adapters_enabled:
            return self.base_layer(x, *args, **kwargs)
        scale_in, scale_out = self.scalings()
        if scale_in is not None:
            x = (x.to(scale_in.dtype) * scale_in).to(x.dtype)
        result = self.base_layer(x, *args, **kwargs)
        if scale_out is not None:
            result = (result.to(scale_out.dtype) * scale_out).to(result.dtype)
        return result

    # ------------------------------------------------------------------ merging
    def _factor(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``l`` shaped to multiply the out×in weight: (out, 1) scales rows, (1, in) scales columns."""
        return self.ia3_l[adapter_name].detach().to(weight.dtype)

    def delta_weight(self, adapter_name: str) -> torch.Tensor:
        """The additive form of the merge, ``W' − W``: ``(l − 1) ⊙ W`` (rows or columns); the bias is not in it."""
        weight = self.base_weight()
        return (self._factor(adapter_name, weight) - 1) * weight

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        """``W ← diag(l) W, b ← l ⊙ b`` (output scaling) or ``W ← W diag(l)`` (input scaling)."""
        weight = self.base_weight()
        factor = self._factor(adapter_name, weight)
        merged = weight * factor
        bias = self.base_layer.bias
        new_bias = None
        if bias is not None and not self.is_feedforward[adapter_name]:
            new_bias = bias * factor.flatten().to(bias.dtype)
        if safe_merge and (not torch.isfinite(merged).all()
                           or (new_bias is not None and not torch.isfinite(new_bias).all())):
            raise ValueError(f"merging adapter {adapter_name!r} would put NaN/Inf into the base weight; not merged")
        if bool((factor == 0).any()):
            warnings.warn(f"adapter {adapter_name!r} has zero entries in ia3_l: unmerging it cannot restore the "
                          "base weight", stacklevel=3)
        self.set_base_weight(merged)
        if new_bias is not None:
            bias.copy_(new_bias)

    def unmerge_one(self, adapter_name: str) -> None:
        """Divide by ``l`` again (rows or columns; the bias too for output scaling)."""
        weight = self.base_weight()
        factor = self._factor(adapter_name, weight)
        self.set_base_weight(weight / factor)
        bias = self.base_layer.bias
        if bias is not None and not self.is_feedforward[adapter_name]:
            bias.copy_(bias / factor.flatten().to(bias.dtype))


def ia3_layers(model: nn.Module) -> dict[str, IA3Linear]:
    """Every IA³ layer of ``model`` by module name."""
    return adapter_layers(model, IA3Linear)


def apply_ia3(
    model: nn.Module,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    feedforward_modules: str | Sequence[str] = tuple(_D.feedforward_modules),
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
    init_ia3_weights: bool = _D.init_ia3_weights,
) -> nn.Module:
    """Add IA³ vectors to the target ``nn.Linear`` layers of ``model`` in place and freeze everything else.

    The defaults are peft's BERT mapping (keys, values, and the FFN's second linear as feed-forward);
    for a Llama-like model use ``target_modules=["k_proj", "v_proj", "down_proj"]``,
    ``feedforward_modules=["down_proj"]``. Nothing changes if an argument is invalid. Returns ``model``.
    """
    config = IA3Config(
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        feedforward_modules=feedforward_modules if isinstance(feedforward_modules, str) else list(feedforward_modules),
        modules_to_save=list(modules_to_save or []), init_ia3_weights=init_ia3_weights)
    return inject(model, config, adapter_name)


def _compare_ia3(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: peft's default IA³ targets for BERT / LLaMA (keys, values, the FFN's second linear,
    scaled on its input side)."""
    if task == "sentiment":  # peft's BERT mapping: keys, values, and the FFN's second linear (feed-forward: input side)
        return apply_ia3(model, target_modules=["key", "value", "output.dense"], feedforward_modules=["output.dense"],
                         modules_to_save=head(task))
    return apply_ia3(model, target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])


register_method(
    "ia3", IA3Config, (IA3Linear,),
    examples=(
        # feed-forward modules as a regex here: the contract test narrows target_modules to single layers, and a
        # feed-forward *list* must stay a subset of a target *list* (peft's rule, tested in tests/methods/test_ia3.py)
        {"model": "mlp", "config": {"target_modules": ["0", "2"], "feedforward_modules": "2"}},
        {"model": "bert", "config": {"target_modules": ["key", "value", "output.dense", "pooler.dense"],
                                     "feedforward_modules": r".*\.output\.dense", "modules_to_save": ["classifier"]}},
        {"model": "bert", "config": {"target_modules": r".*\.(query|intermediate\.dense|pooler\.dense)",
                                     "feedforward_modules": r".*\.intermediate\.dense"}},
    ),
    recipe=Recipe("IA3: scaling vectors on keys, values and the FFN input", _compare_ia3),
)


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
def _ia3_to_peft(cfg: IA3Config) -> dict:
    return {"feedforward_modules": cfg.feedforward_modules, "fan_in_fan_out": False,
            "init_ia3_weights": cfg.init_ia3_weights}


def _ia3_from_peft(cfg: dict, where: str) -> dict:
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    ff = cfg.get("feedforward_modules")
    if ff is None:
        raise ValueError(f"{where}: missing feedforward_modules (peft fills it in from the model type when saving; "
                         "peftlab needs it in the file)")
    return {"feedforward_modules": ff if isinstance(ff, str) else sorted(ff),
            "init_ia3_weights": bool(cfg.get("init_ia3_weights", _D.init_ia3_weights))}


# IA³: one vector per layer, (out, 1) for output scaling, (1, in) for feed-forward (input) targets.
register_codec(Codec(
    method="ia3", peft_type="IA3",
    tensor_keys={IA3Linear: {"ia3_l": ".ia3_l"}},
    accepts=lambda cfg: cfg.get("peft_type") == "IA3",
    to_peft=_ia3_to_peft, from_peft=_ia3_from_peft,
))
