"""The adapter contract, checked for every method in the registry (docs/architecture.md, "Add a method").

A method gets all of it by registering: ``register_method(..., examples=...)`` names configs to try on
the two small models below. Where peftlab has a peft codec for the method, parity with peft is checked
through the adapter files, both ways.

"The base" is ``spec.reference_model(base, config)``: the base model itself, or for a method that changes
the base (QLoRA quantizes it) the base as the method sees it — the checks against it stay exact. Where an
invariant holds only approximately by construction, the method registers a named tolerance
(``spec.tolerance(name, default)``; QLoRA's ``"merged_output"``: merging re-quantizes ``W + ΔW``; VB-LoRA's
``"fresh_output"``: its fresh adapter is small but not zero).
"""

from __future__ import annotations

import copy
import re

import pytest
import torch
from helpers import mlp, tiny_bert
from torch import nn

import peftlab
from peftlab.core.interop import codecs
from peftlab.core.tuner import adapter_layers, get_method, registry
from peftlab.methods.fast import TWINS, use_fast

MODELS = {"mlp": mlp, "bert": tiny_bert}
#: methods with speed-tuned layers (peftlab.methods.fast): their examples run on both the reference and the twin
FAST = {name for name, spec in registry().items() if any(cls in TWINS for cls in spec.layers)}
CASES = [(name, i, variant) for name, spec in sorted(registry().items()) for i in range(len(spec.examples))
         for variant in (("reference", "fast") if name in FAST else ("reference",))]
IDS = [f"{name}-{i}" + ("-fast" if variant == "fast" else "") for name, i, variant in CASES]


@pytest.fixture(autouse=True)
def _variant(request, monkeypatch):
    """With ``variant="fast"``, every model the test injects into gets the speed-tuned layers."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("variant") == "fast":
        for name in ("inject", "load_peft_adapter"):
            build = getattr(peftlab, name)
            monkeypatch.setattr(peftlab, name, lambda *a, build=build, **k: use_fast(build(*a, **k)))


def _inputs(kind: str):
    gen = torch.Generator().manual_seed(0)
    if kind == "mlp":
        return {"x": torch.randn(5, 12, generator=gen)}
    return {"input_ids": torch.randint(0, 64, (2, 7), generator=gen)}


def _out(model, inputs):
    model.eval()
    if "x" in inputs:
        return model(inputs["x"])
    return model(**inputs).logits


def _case(method: str, i: int):
    spec = get_method(method)
    example = spec.examples[i]
    base = MODELS[example["model"]]()
    return spec, example, base, _inputs(example["model"])


def _config(spec, example, **over):
    return spec.config_cls(**{**example["config"], **over})


def _randomize(model, seed=1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in adapter_layers(model).values():
            for name in layer.adapter_names:
                for p in layer.adapter_parameters(name).values():
                    p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def _adapted(spec, example, base, name="default", **over):
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example, **over), name)
    _randomize(model)
    return model


def _base_types(spec):
    return spec.base_types


def _reference(spec, example, base):
    return spec.reference_model(base, _config(spec, example))


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_fresh_adapter_equals_base(method, i, variant):
    spec, example, base, inputs = _case(method, i)
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example))
    assert torch.allclose(_out(model, inputs), _out(_reference(spec, example, base), inputs),
                          atol=spec.tolerance("fresh_output", 1e-6), rtol=0)


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_merge_unmerge_and_unload(method, i, variant):
    spec, example, base, inputs = _case(method, i)
    model = _adapted(spec, example, base)
    y = _out(model, inputs)
    reference = _out(_reference(spec, example, base), inputs)
    assert not torch.allclose(y, reference, atol=1e-4), "randomised adapter should change the output"
    if not spec.mergeable:  # e.g. the Houlsby adapter: merging is refused and changes nothing
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        for merge in (peftlab.merge_adapter, peftlab.merge_and_unload):
            with pytest.raises(ValueError, match="cannot be merged"):
                merge(model)
            assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
        assert torch.allclose(_out(model, inputs), y, atol=1e-6)
        with peftlab.disable_adapter(model):
            assert torch.allclose(_out(model, inputs), reference, atol=1e-6)
        plain = peftlab.unload(model)
        assert not adapter_layers(plain) and all(type(m) in (type(b) for b in base.modules()) for m in plain.modules())
        assert torch.allclose(_out(plain, inputs), reference, atol=1e-6)
        return
    weights = {n: layer.base_weight().clone() for n, layer in adapter_layers(model).items()}
    peftlab.merge_adapter(model)
    assert torch.allclose(_out(model, inputs), y, atol=spec.tolerance("merged_output", 1e-5))
    assert any(not torch.equal(layer.base_weight(), weights[n]) for n, layer in adapter_layers(model).items())
    peftlab.unmerge_adapter(model)
    for n, layer in adapter_layers(model).items():
        assert torch.allclose(layer.base_weight(), weights[n], atol=1e-6), n
    assert torch.allclose(_out(model, inputs), y, atol=1e-5)
    with peftlab.disable_adapter(model):
        assert torch.allclose(_out(model, inputs), reference, atol=1e-6)
    plain = peftlab.merge_and_unload(model)
    assert not adapter_layers(plain) and not hasattr(plain, "peftlab_config")
    assert all(type(m) in (type(b) for b in base.modules()) for m in plain.modules())
    assert torch.allclose(_out(plain, inputs), y, atol=1e-5)


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_trainable_count_is_the_closed_form(method, i, variant):
    spec, example, base, _ = _case(method, i)
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example))
    config = model.peftlab_config["default"]  # the model's copy, bound to its targets
    expected = 0
    for name, layer in adapter_layers(model).items():
        expected += type(layer).num_trainable(layer.base_layer, **config.layer_hparams(name, layer.base_layer))
    if spec.shared_trainable is not None:  # model-level shared tensors (VB-LoRA's bank), counted once
        expected += spec.shared_trainable(config)
    for key in config.modules_to_save:
        expected += sum(p.numel() for n, m in base.named_modules() if n == key or n.endswith("." + key)
                        for p in m.parameters())
    count = peftlab.count_parameters(model)
    assert count.trainable == expected
    assert count.total == sum(p.numel() for p in base.parameters()) + expected - sum(
        p.numel() for key in config.modules_to_save for n, m in base.named_modules()
        if n == key or n.endswith("." + key) for p in m.parameters())


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_gradients_reach_adapter_parameters_only(method, i, variant):
    spec, example, base, inputs = _case(method, i)
    model = _adapted(spec, example, base)
    model.train()
    (model(inputs["x"]) if "x" in inputs else model(**inputs).logits).pow(2).sum().backward()
    adapter_ids = {id(p) for lay in adapter_layers(model).values() for a in lay.adapter_names
                   for p in lay.adapter_parameters(a).values()}
    for name, p in model.named_parameters():
        if id(p) in adapter_ids:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        elif not p.requires_grad:
            assert p.grad is None, name
        else:  # modules_to_save
            assert any(k in name for k in example["config"].get("modules_to_save", [])), name


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_bad_input_changes_nothing(method, i, variant):
    spec, example, base, inputs = _case(method, i)
    for over, exc in (({"target_modules": ["no_such_layer"]}, ValueError),
                      ({"modules_to_save": ["no_such_head"]}, ValueError)):
        model = copy.deepcopy(base)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(exc):
            peftlab.inject(model, _config(spec, example, **over))
        assert not adapter_layers(model) and not hasattr(model, "peftlab_config")
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="already has an adapter named"):
        peftlab.inject(model, _config(spec, example))
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    broken = copy.deepcopy(base)
    target = next(m for m in broken.modules() if isinstance(m, _base_types(spec)) and hasattr(m, "weight"))
    with torch.no_grad():
        target.weight.view(-1)[0] = float("nan")
    targets = [n for n, m in broken.named_modules() if m is target]
    with pytest.raises(ValueError, match="NaN"):
        peftlab.inject(broken, _config(spec, example, target_modules=targets))
    assert not adapter_layers(broken)
    with pytest.raises(TypeError, match="config must be one of"):
        peftlab.inject(copy.deepcopy(base), example["config"])


def _split_targets(spec, example, base):
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example))
    names = sorted(adapter_layers(model))
    if len(names) < 2:
        pytest.skip("example has a single target layer")
    exact = lambda ns: "(" + "|".join(re.escape(n) for n in ns) + ")"  # noqa: E731
    return exact(names[: len(names) // 2]), exact(names[len(names) // 2:])


@pytest.mark.parametrize("method, i, variant", CASES, ids=IDS)
def test_two_adapters_on_different_targets(method, i, variant):
    spec, example, base, inputs = _case(method, i)
    first, second = _split_targets(spec, example, base)
    model = peftlab.inject(copy.deepcopy(base), _config(spec, example, target_modules=first, modules_to_save=[]), "a")
    peftlab.inject(model, _config(spec, example, target_modules=second, modules_to_save=[]), "b")
    _randomize(model)
    # after "a" is deleted, its layers still compute their base as the method sees it (QLoRA: quantized)
    base_a = spec.reference_model(base, _config(spec, example, target_modules=first, modules_to_save=[]))
    only_b = peftlab.inject(copy.deepcopy(base_a), _config(spec, example, target_modules=second, modules_to_save=[]),
                            "b")
    for n, layer in adapter_layers(only_b).items():
        for attr, p in layer.adapter_parameters("b").items():
            with torch.no_grad():
                p.copy_(model.get_submodule(n).adapter_parameters("b")[attr])
    weights = {n: layer.base_weight().clone() for n, layer in adapter_layers(model).items()}
    y_ab = _out(model, inputs)
    peftlab.set_adapter(model, ["a"])
    y_a = _out(model, inputs)
    if spec.mergeable:
        peftlab.merge_adapter(model)  # layers without "a" are left alone
        assert torch.allclose(_out(model, inputs), y_a, atol=spec.tolerance("merged_output", 1e-5))
        peftlab.unmerge_adapter(model)  # ... and there is nothing to undo there
    for n, layer in adapter_layers(model).items():
        assert torch.allclose(layer.base_weight(), weights[n], atol=1e-6), n
    with peftlab.disable_adapter(model):
        assert torch.allclose(_out(model, inputs), _out(_reference(spec, example, base), inputs), atol=1e-6)
    peftlab.set_adapter(model, ["a", "b"])
    assert torch.allclose(_out(model, inputs), y_ab, atol=1e-6)
    # exactly the tensors of the active adapters "a" and "b" are trainable (each layer has one of them)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    of = {name: {id(p) for layer in adapter_layers(model).values() if layer.has_adapter(name)
                 for p in layer.adapter_parameters(name).values()} for name in ("a", "b")}
    assert of["a"] and of["b"] and trainable == of["a"] | of["b"]
    if spec.mergeable:
        peftlab.merge_adapter(model, adapter_names=["b"])
        with pytest.raises(RuntimeError, match="unmerge"):
            peftlab.delete_adapter(model, "b")
        peftlab.unmerge_adapter(model)
    peftlab.delete_adapter(model, "a")
    assert set(model.peftlab_config) == {"b"}
    assert torch.allclose(_out(model, inputs), _out(only_b, inputs), atol=1e-6)
    with pytest.raises(ValueError, match="unknown adapter"):
        peftlab.set_adapter(model, ["a"])


@pytest.mark.parametrize("method, i, variant", [c for c in CASES if c[0] in codecs()], ids=[
    n for n, c in zip(IDS, CASES, strict=True) if c[0] in codecs()])
def test_save_load_and_peft_parity_both_ways(method, i, variant, tmp_path):
    from peft import PeftModel, get_peft_config, get_peft_model

    spec, example, base, inputs = _case(method, i)
    codec = codecs()[method]
    ours = _adapted(spec, example, base)
    y = _out(ours, inputs)
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    again = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "ours")
    assert torch.equal(_out(again, inputs), y)
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours")
    assert torch.allclose(_out(theirs, inputs), y, atol=1e-5)
    # peft → peftlab: a peft model built from the same config, with random adapter values
    config = _config(spec, example)
    peft_cfg = get_peft_config({"peft_type": codec.peft_type, **codec.to_peft(config),
                                "target_modules": config.target_modules,
                                "modules_to_save": config.modules_to_save or None})
    theirs = get_peft_model(copy.deepcopy(base), peft_cfg)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in theirs.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
    theirs.save_pretrained(tmp_path / "peft")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft")
    assert torch.allclose(_out(ours, inputs), _out(theirs, inputs), atol=1e-5)
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]


def test_every_method_has_an_example():
    """Every layer method has contract examples; the model-level ones (prompt/prefix tuning: a wrapper, no layers)
    have none and are checked in their own test file (tests/methods/test_prompts.py)."""
    for name, spec in registry().items():
        if spec.model_level:
            assert not spec.examples and not spec.layers and not spec.mergeable, name
            continue
        assert spec.examples, f"method {name!r} registers no example for the contract test"
        assert all(isinstance(cls.base_types, tuple) and cls.base_types for cls in spec.layers)
    assert sorted(name for name, spec in registry().items() if spec.model_level) == ["prefix_tuning", "prompt_tuning"]


def test_layer_types_are_plain_after_unload():
    base = mlp()
    model = peftlab.apply_lora(copy.deepcopy(base), r=2, alpha=4, target_modules=["0", "2"])
    plain = peftlab.unload(model)
    assert isinstance(plain[0], nn.Linear) and torch.equal(plain[0].weight, base[0].weight)
