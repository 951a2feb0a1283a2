"""Houlsby bottleneck adapter against the paper's definition (peft has no such method): the module
``A(h) = h + W_up f(W_down h + b_down) + b_up``, its placement after each sublayer's output projection before
the residual add and LayerNorm (two per BERT layer), the near-identity init, what is trained, bad input."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import tiny_bert
from torch import nn

import peftlab
from peftlab.methods.adapters import HoulsbyConfig, HoulsbyLinear, houlsby_layers


def _ids():
    return torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


def _randomize(model, std=0.2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in houlsby_layers(model).values():
            for p in layer.adapter_parameters("default").values():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


def test_module_is_the_formula():
    torch.manual_seed(0)
    base = nn.Linear(10, 8)
    layer = HoulsbyLinear(copy.deepcopy(base), bottleneck_size=3)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in layer.adapter_parameters("default").values():
            p.copy_(torch.randn(p.shape, generator=gen))
    Wd, bd = layer.adapter_down_weight["default"], layer.adapter_down_bias["default"]
    Wu, bu = layer.adapter_up_weight["default"], layer.adapter_up_bias["default"]
    assert Wd.shape == (3, 8) and Wu.shape == (8, 3)  # the bottleneck reads the layer's *output* (d = 8)
    x = torch.randn(4, 10)
    h = base(x)
    expected = h + nn.functional.gelu(h @ Wd.T + bd) @ Wu.T + bu
    assert torch.allclose(layer(x), expected, atol=1e-6)
    assert HoulsbyLinear.num_trainable(base, bottleneck_size=3) == 2 * 3 * 8 + 8 + 3
    relu = HoulsbyLinear(copy.deepcopy(base), bottleneck_size=3, non_linearity="relu")
    with torch.no_grad():
        for attr, p in relu.adapter_parameters("default").items():
            p.copy_(layer.adapter_parameters("default")[attr])
    assert torch.allclose(relu(x), h + torch.relu(h @ Wd.T + bd) @ Wu.T + bu, atol=1e-6)


def test_zero_up_projection_is_the_base_model():
    base = tiny_bert()
    model = peftlab.apply_houlsby_adapter(copy.deepcopy(base), bottleneck_size=4)  # default init: std 1e-3
    with torch.no_grad():
        for layer in houlsby_layers(model).values():
            layer.adapter_up_weight["default"].zero_()
            layer.adapter_up_bias["default"].zero_()
    assert torch.equal(model(input_ids=_ids()).logits, base(input_ids=_ids()).logits)


def test_default_init_is_near_identity():
    base = tiny_bert()
    model = peftlab.apply_houlsby_adapter(copy.deepcopy(base), bottleneck_size=4)
    for layer in houlsby_layers(model).values():
        for attr in ("adapter_down_weight", "adapter_up_weight"):
            w = getattr(layer, attr)["default"]
            assert w.abs().max() <= 2e-3 and w.abs().max() > 0  # truncated at 2σ, σ = 1e-3
        assert not layer.adapter_down_bias["default"].any() and not layer.adapter_up_bias["default"].any()
    diff = (model(input_ids=_ids()).logits - base(input_ids=_ids()).logits).abs().max().item()
    assert diff < 1e-4


def test_placement_two_per_layer_before_residual_and_layernorm():
    """LN(x + A(Proj(Attn(x)))) and LN(y + A(Proj(FFN(y)))): checked sublayer by sublayer in eval mode."""
    base = tiny_bert()
    model = peftlab.apply_houlsby_adapter(copy.deepcopy(base), bottleneck_size=4)
    _randomize(model)
    names = sorted(houlsby_layers(model))
    assert names == sorted(f"bert.encoder.layer.{i}.{part}.dense" for i in range(2) for part in ("attention.output",
                                                                                                   "output"))
    seen = {}

    def hook(module, args, out):
        seen[module] = (args, out)

    subs = [m for m in model.modules() if type(m).__name__ in ("BertSelfOutput", "BertOutput")]
    assert len(subs) == 4
    handles = [m.register_forward_hook(hook) for m in subs]
    model(input_ids=_ids())
    for h in handles:
        h.remove()
    for sub in subs:
        (hidden, residual), out = seen[sub]
        layer = sub.dense
        proj = layer.base_layer(hidden)
        Wd, bd = layer.adapter_down_weight["default"], layer.adapter_down_bias["default"]
        Wu, bu = layer.adapter_up_weight["default"], layer.adapter_up_bias["default"]
        adapted = proj + nn.functional.gelu(proj @ Wd.T + bd) @ Wu.T + bu
        assert torch.allclose(out, sub.LayerNorm(residual + adapted), atol=1e-6)


def test_what_is_trained_and_the_count():
    base = tiny_bert()
    model = peftlab.apply_houlsby_adapter(copy.deepcopy(base), bottleneck_size=4)
    L, d, m = 2, 32, 4
    layer_norms = (1 + 2 * L) * 2 * d  # embedding LayerNorm + two per layer, γ and β
    head = d * 2 + 2
    assert peftlab.count_parameters(model).trainable == 2 * L * (2 * m * d + d + m) + layer_norms + head
    model.train()
    _randomize(model)
    model(input_ids=_ids()).logits.pow(2).sum().backward()
    for name, p in model.named_parameters():
        trained = "adapter_" in name or "LayerNorm" in name or "classifier" in name
        assert p.requires_grad is trained, name
        if trained:
            assert p.grad is not None, name


def test_merge_is_refused_and_unload_restores():
    base = tiny_bert()
    model = peftlab.apply_houlsby_adapter(copy.deepcopy(base), bottleneck_size=4)
    _randomize(model)
    with pytest.raises(ValueError, match="cannot be merged"):
        peftlab.merge_and_unload(model)
    assert len(houlsby_layers(model)) == 4
    plain = peftlab.unload(model)
    assert not houlsby_layers(plain)
    assert torch.equal(plain(input_ids=_ids()).logits, base(input_ids=_ids()).logits)


@pytest.mark.parametrize("size", [0, -2, 32, 40])
def test_bottleneck_must_be_between_one_and_the_hidden_size(size):
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="bottleneck_size"):
        peftlab.apply_houlsby_adapter(model, bottleneck_size=size)
    assert not houlsby_layers(model) and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(p.requires_grad is False for p in model.parameters())


@pytest.mark.parametrize("field, value, exc", [("bottleneck_size", 2.5, TypeError), ("non_linearity", "sigmoid",
                                                                                       ValueError),
                                               ("init_std", -1.0, ValueError), ("modules_to_save", "LayerNorm",
                                                                                TypeError)])
def test_bad_fields(field, value, exc):
    with pytest.raises(exc, match=field):
        HoulsbyConfig(**{field: value})
