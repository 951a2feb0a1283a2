"""The speed-tuned layers (peftlab/methods/fast/) against their reference layers: the same values and gradients.

For every registered example of a method with a twin, a randomised reference model and a copy turned fast by
``use_fast`` compute the output (training mode, dropout off), its gradient with respect to every adapter tensor
and to the input, and ΔW per layer; each speed-tuned path is forced in turn. Tolerance: relative to the largest
entry, 1e-5 in float32 and 1e-10 in float64 (the twins reorder sums, nothing else).
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import mlp, tiny_bert
from torch import nn

import peftlab
from peftlab.core.tuner import adapter_layers, registry
from peftlab.methods.fast import TWINS, use_fast
from peftlab.methods.fast.dora import FactoredNorm
from peftlab.methods.fast.waveft import FastWaveFTLinear

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
FAST = sorted(name for name, spec in registry().items() if any(cls in TWINS for cls in spec.layers))
# each way a twin can compute: WaveFT's sparse terms / dense product / factored forward, DoRA's factored norm
PATHS = {
    "auto": {},
    "waveft-sparse-fused": {FastWaveFTLinear: {"dense_product_factor": 0, "forward_mode": "fused"}},
    "waveft-dense-fused": {FastWaveFTLinear: {"dense_product_factor": 10**12, "forward_mode": "fused"}},
    "waveft-factored": {FastWaveFTLinear: {"forward_mode": "factored"}},
    "dora-factored-norm": {FactoredNorm: {"factored_norm_min_numel": 0}},
}
CASES = [(name, i, path) for name in FAST for i in range(len(registry()[name].examples))
         for path in PATHS if path == "auto" or path.startswith(name + "-")]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    scale = b.abs().max().item()
    return (a - b).abs().max().item() / (scale if scale else 1.0)


def _model(name: str, i: int, dtype: torch.dtype):
    example = registry()[name].examples[i]
    base = (mlp() if example["model"] == "mlp" else tiny_bert()).to(dtype)
    model = peftlab.inject(base, registry()[name].config_cls(**example["config"]))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for p in layer.adapter_parameters("default").values():
                p.add_(torch.randn(p.shape, generator=gen, dtype=dtype) * 0.1)
    if example["model"] == "mlp":
        x = torch.randn(5, 12, generator=torch.Generator().manual_seed(0), dtype=dtype, requires_grad=True)
        return model, lambda m, x=x: m(x), x
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    return model, lambda m: m(input_ids=ids).logits, None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("name, i, path", CASES, ids=[f"{n}-{i}-{p}" for n, i, p in CASES])
def test_fast_equals_reference_values_and_gradients(name, i, dtype, path, monkeypatch):
    for cls, values in PATHS[path].items():
        for attr, value in values.items():
            monkeypatch.setattr(cls, attr, value)
    reference, run, x = _model(name, i, dtype)
    fast = use_fast(copy.deepcopy(reference))
    layers = adapter_layers(reference)
    twins = adapter_layers(fast)
    assert all(type(twins[n]) is TWINS.get(type(layer), type(layer)) for n, layer in layers.items())
    assert any(type(layer) in TWINS for layer in layers.values())
    reference.eval(), fast.eval()  # BERT's own dropout off; gradients are still taken
    outputs, grads = [], []
    for model in (reference, fast):
        if x is not None:
            x.grad = None
        y = run(model)
        y.pow(2).sum().backward()
        outputs.append(y.detach())
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad}
                     | ({"input": x.grad.clone()} if x is not None else {}))
    tol = TOL[dtype]
    assert _rel(outputs[1], outputs[0]) <= tol
    assert grads[0].keys() == grads[1].keys()
    for key, g in grads[0].items():
        assert _rel(grads[1][key], g) <= tol, key
    with torch.no_grad():
        for n, layer in layers.items():
            assert _rel(twins[n].delta_weight("default"), layer.delta_weight("default")) <= tol, n


def test_use_fast_round_trip_and_bad_argument():
    model = peftlab.apply_waveft(nn.Sequential(nn.Linear(8, 6)), n_frequency=10, target_modules=["0"])
    assert type(use_fast(model)[0]) is FastWaveFTLinear
    assert type(use_fast(model, False)[0]) is peftlab.WaveFTLinear
    lora = peftlab.apply_lora(mlp(), r=2, target_modules=["0"])
    assert type(use_fast(lora)[0]) is peftlab.LoRALinear  # no twin: left alone
    with pytest.raises(TypeError, match="fast must be True or False"):
        use_fast(model, "yes")


def test_a_fast_model_saves_merges_and_takes_a_second_adapter(tmp_path):
    model = use_fast(peftlab.apply_dora(mlp(), r=2, alpha=4, target_modules=["0"]))
    peftlab.apply_dora(model, r=2, alpha=4, target_modules=["0"], adapter_name="other")  # same layer, same method
    with pytest.raises(ValueError, match="does not mix methods"):
        peftlab.apply_lora(model, r=2, target_modules=["0"], adapter_name="lora")
    peftlab.save_peft_adapter(model, tmp_path)
    again = peftlab.load_peft_adapter(mlp(), tmp_path)
    x = torch.randn(3, 12)
    peftlab.set_adapter(model, "default")
    assert torch.allclose(again(x), model(x), atol=1e-6)
    merged = peftlab.merge_and_unload(model)
    assert torch.allclose(merged(x), again(x), atol=1e-5)
