r"""The Houlsby bottleneck adapter (Houlsby et al., ICML 2019, "Parameter-Efficient Transfer Learning for NLP",
arXiv 1902.00751; reference code google-research/adapter-bert). peft has no such method; the tests check it
against the paper's definition.

An adapter is a small bottleneck MLP with its own skip connection, applied to a sublayer's output
``h ∈ R^{…×d}``::

    A(h) = h + W_up · f(W_down · h + b_down) + b_up

    W_down ∈ R^{m×d}  (``adapter_down_weight[a]``),  b_down ∈ R^m  (``adapter_down_bias[a]``)
    W_up   ∈ R^{d×m}  (``adapter_up_weight[a]``),    b_up   ∈ R^d  (``adapter_up_bias[a]``)
    f: GELU (adapter-bert; "relu", "tanh", "silu" also offered),  m = ``bottleneck_size``, 1 ≤ m < d

"Down → nonlinearity → Up": the same "project to a small space and back" idea as LoRA's ``B A``, but with a
nonlinearity in the middle, so the update is not a weight change and **cannot be merged**: an adapter keeps its
extra cost at inference (two thin matmuls per sublayer). A fresh adapter is near the identity: ``W_down`` and
``W_up`` are drawn from a normal distribution with std ``init_std`` truncated at 2σ (adapter-bert: 1e-3; the
paper: 1e-2), biases are 0; with ``W_up = 0`` and ``b_up = 0`` the model is exactly the base model.

Placement (the paper's Figure 2, post-LN BERT): two adapters per layer, each after a sublayer's output
projection, before the residual add and the LayerNorm::

    LN(x + A(Proj(Attn(x))))            Proj = attention.output.dense  (d → d)
    LN(y + A(Proj(FFN(y))))             Proj = output.dense            (d_ff → d)

peftlab wraps the projection ``nn.Linear`` itself (``target_modules=["output.dense"]`` selects both in a BERT;
``["o_proj", "down_proj"]`` in a Llama), so the layer computes ``A(Proj(·))``. One difference in training mode
only: BERT applies its hidden dropout after the wrapped projection, i.e. to ``A(Proj(·))``, where adapter-bert
applies the adapter after the dropout; in eval mode the two are the same function.

Trained per task (the paper): the adapters, the LayerNorms' γ/β and the task head — pass them as
``modules_to_save`` (``["LayerNorm", "classifier"]`` for a BERT classifier; :func:`apply_houlsby_adapter` does
by default). Trainable parameters per adapter: ``2md + d + m``; a BERT with L layers adds ``2L(2md + d + m)``,
plus ``2L·2d`` for its per-layer LayerNorms (and ``2d`` for the embedding LayerNorm) and the head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from peftlab.core import argcheck
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.layer import AdapterLayer
from peftlab.core.recipe import Recipe
from peftlab.core.tuner import adapter_layers, inject, register_method

__all__ = ["HoulsbyConfig", "HoulsbyLinear", "apply_houlsby_adapter", "houlsby_layers"]

NONLINEARITIES = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass
class HoulsbyConfig(AdapterConfig):
    """A Houlsby adapter's settings.

    ``bottleneck_size`` (m, 1 ≤ m < the wrapped layer's output size), ``non_linearity`` (f: "gelu", "relu",
    "tanh", "silu"), ``init_std`` (std of the 2σ-truncated normal init of W_down and W_up; 0 gives zeros, the
    exact identity), ``target_modules`` (the sublayers' output projections: ``nn.Linear`` name suffixes or one
    regex), ``modules_to_save`` (LayerNorms and the head, trained with the adapters).
    """

    bottleneck_size: int = 64
    non_linearity: str = "gelu"
    init_std: float = 1e-3
    target_modules: list[str] | str = names_field("output.dense")
    modules_to_save: list[str] = names_field()

    method = "houlsby"

    def __post_init__(self) -> None:
        m = self.bottleneck_size
        argcheck.positive_int("bottleneck_size", m, "an int ≥ 1 (and below the hidden size)")
        argcheck.one_of("non_linearity", self.non_linearity, sorted(NONLINEARITIES))
        self.init_std = float(argcheck.number("init_std", self.init_std, at_least=0, allowed="a number ≥ 0"))
        super().__post_init__()  # target_modules, modules_to_save

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        return {"bottleneck_size": self.bottleneck_size, "non_linearity": self.non_linearity,
                "init_std": self.init_std}


#: the defaults, read by every signature below (the layer's and ``apply_houlsby_adapter``'s)
_D = HoulsbyConfig()


class HoulsbyLinear(AdapterLayer):
    r"""A frozen ``nn.Linear`` (a sublayer's output projection, ``h = base(x)`` of size d) followed by named
    bottleneck adapters: ``h + W_up f(W_down h + b_down) + b_up``.

    ``adapter_down_weight[a]`` (m, d), ``adapter_down_bias[a]`` (m,), ``adapter_up_weight[a]`` (d, m),
    ``adapter_up_bias[a]`` (d,). Several active adapters
    are applied one after another (each with its own skip). Not mergeable.
    """

    adapter_param_names = ("adapter_down_weight", "adapter_down_bias", "adapter_up_weight", "adapter_up_bias")
    adapter_state_names = ("non_linearity",)
    base_types = (nn.Linear,)

    def __init__(self, base_layer: nn.Module, adapter_name: str = "default", **hparams):
        super().__init__(base_layer)
        self.add_adapter(adapter_name, **hparams)

    @classmethod
    def check(cls, base_layer: nn.Module, bottleneck_size: int = _D.bottleneck_size,
              non_linearity: str = _D.non_linearity, init_std: float = _D.init_std) -> None:
        d = cls.dims(base_layer)[1]
        if isinstance(bottleneck_size, bool) or not isinstance(bottleneck_size, int) or not 0 < bottleneck_size < d:
            raise ValueError(f"bottleneck_size={bottleneck_size!r} is not allowed for a layer with {d} outputs: expected "
                             f"an int with 1 ≤ bottleneck_size < {d} (a bottleneck smaller than the hidden size)")
        argcheck.one_of("non_linearity", non_linearity, sorted(NONLINEARITIES))

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, bottleneck_size: int = _D.bottleneck_size, **_) -> dict[str, tuple[int, ...]]:
        d, m = cls.dims(base_layer)[1], bottleneck_size
        return {"adapter_down_weight": (m, d), "adapter_down_bias": (m,), "adapter_up_weight": (d, m),
                "adapter_up_bias": (d,)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, bottleneck_size: int = _D.bottleneck_size, **_) -> int:
        """``2md + d + m``: W_down (m×d) + b_down (m) + W_up (d×m) + b_up (d)."""
        d, m = cls.dims(base_layer)[1], bottleneck_size
        return 2 * m * d + d + m

    def create(self, adapter_name: str, bottleneck_size: int = _D.bottleneck_size,
               non_linearity: str = _D.non_linearity, init_std: float = _D.init_std) -> None:
        weight = self.base_weight()
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        shapes = self.param_shapes(self.base_layer, bottleneck_size=bottleneck_size)
        for attr, shape in shapes.items():
            values = torch.zeros(shape, dtype=dtype, device=weight.device)
            if attr.endswith("weight") and init_std > 0:
                nn.init.trunc_normal_(values, std=init_std, a=-2 * init_std, b=2 * init_std)
            getattr(self, attr)[adapter_name] = nn.Parameter(values)
        self.non_linearity[adapter_name] = non_linearity

    def adapter(self, adapter_name: str, h: torch.Tensor) -> torch.Tensor:
        """``A(h) = h + W_up f(W_down h + b_down) + b_up``."""
        f = NONLINEARITIES[self.non_linearity[adapter_name]]()
        down = nn.functional.linear(h, self.adapter_down_weight[adapter_name], self.adapter_down_bias[adapter_name])
        return h + nn.functional.linear(f(down), self.adapter_up_weight[adapter_name],
                                        self.adapter_up_bias[adapter_name])

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        dtype = self.adapter_down_weight[adapter_name].dtype
        return self.adapter(adapter_name, result.to(dtype)).to(result.dtype)

    def delta_weight(self, adapter_name: str) -> torch.Tensor:
        raise ValueError(f"adapter {adapter_name!r}: a Houlsby adapter (a nonlinear bottleneck) has no weight update ΔW")

    def merge_one(self, adapter_name: str, safe_merge: bool = False) -> None:
        raise ValueError(f"adapter {adapter_name!r} cannot be merged: a Houlsby adapter puts a nonlinearity between "
                         "W_down and W_up, so it is no change of the base weight (use unload() to remove it)")


def houlsby_layers(model: nn.Module) -> dict[str, HoulsbyLinear]:
    """Every Houlsby adapter layer of ``model`` by module name."""
    return adapter_layers(model, HoulsbyLinear)


def apply_houlsby_adapter(
    model: nn.Module,
    bottleneck_size: int = _D.bottleneck_size,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    non_linearity: str = _D.non_linearity,
    init_std: float = _D.init_std,
    modules_to_save: Sequence[str] | None = ("LayerNorm", "classifier"),
    adapter_name: str = "default",
) -> nn.Module:
    """Insert Houlsby adapters after the target output projections of ``model`` in place; train them with the
    LayerNorms and the head (``modules_to_save``; the defaults fit a BERT classifier: for a Llama pass
    ``target_modules=["o_proj", "down_proj"]`` and its norms). Returns ``model``."""
    config = HoulsbyConfig(bottleneck_size=bottleneck_size, non_linearity=non_linearity, init_std=init_std,
                           target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
                           modules_to_save=[k for k in (modules_to_save or [])])
    return inject(model, config, adapter_name)


def _compare_houlsby(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: bottleneck 16 after the attention and the FFN output projections, LayerNorms trained."""
    if task == "sentiment":  # after the attention output and the FFN output projections (BERT's *.output.dense)
        return apply_houlsby_adapter(model, bottleneck_size=16, target_modules=["output.dense"],
                                     modules_to_save=["LayerNorm", "classifier"])
    return apply_houlsby_adapter(model, bottleneck_size=16, target_modules=["o_proj", "down_proj"],
                                 modules_to_save=["input_layernorm", "post_attention_layernorm"])


register_method(
    "houlsby", HoulsbyConfig, (HoulsbyLinear,),
    examples=(
        # init_std=0: the exact identity the contract's "fresh adapter == base" check asks for (the default 1e-3
        # init is near the identity; tests/methods/test_adapters.py measures how near)
        {"model": "mlp", "config": {"bottleneck_size": 3, "init_std": 0.0, "target_modules": ["0", "2"]}},
        {"model": "bert", "config": {"bottleneck_size": 4, "init_std": 0.0, "target_modules": ["output.dense"],
                                     "modules_to_save": ["LayerNorm", "classifier"]}},
    ),
    mergeable=False,
    recipe=Recipe("Houlsby adapters, bottleneck 16, after attention and FFN outputs; LayerNorms trained",
                  _compare_houlsby),
)
