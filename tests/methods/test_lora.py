"""LoRA / rsLoRA: invariants, parity with Hugging Face peft, bad input."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from helpers import mlp, randomize_lora, tiny_bert
from peft import LoraConfig, get_peft_model
from torch import nn

import peftlab
from peftlab.core.tuner import disable_adapter, merge_adapter, set_adapter, unmerge_adapter
from peftlab.methods.lora import LoRALinear, lora_layers

ATOL = 1e-5


def copy_from_peft(peft_model, ours, adapter="default"):
    """Copy peft's A/B into peftlab's layers, matched by module name."""
    peft_sd = {k: v for k, v in peft_model.named_parameters()}
    for name, layer in lora_layers(ours).items():
        with torch.no_grad():
            layer.lora_A[adapter].copy_(peft_sd[f"base_model.model.{name}.lora_A.{adapter}.weight"])
            layer.lora_B[adapter].copy_(peft_sd[f"base_model.model.{name}.lora_B.{adapter}.weight"])


# --------------------------------------------------------------------------- invariants
@pytest.mark.parametrize("use_rslora", [False, True])
def test_fresh_adapter_equals_base(use_rslora):
    base = mlp()
    x = torch.randn(5, 12)
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=["0", "2"], use_rslora=use_rslora)
    assert torch.equal(ours(x), base(x))


def test_scaling_formula():
    layer = LoRALinear(nn.Linear(16, 8), r=4, alpha=8)
    assert layer.scaling["default"] == 2.0
    layer = LoRALinear(nn.Linear(16, 8), r=4, alpha=8, use_rslora=True)
    assert layer.scaling["default"] == 8 / math.sqrt(4)


def test_init_distribution_and_shapes():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(400, 30), r=8)
    A, B = layer.lora_A["default"], layer.lora_B["default"]
    assert A.shape == (8, 400) and B.shape == (30, 8)
    assert torch.all(B == 0)
    bound = 1 / math.sqrt(400)
    assert A.abs().max() <= bound and A.abs().max() > 0.9 * bound


def test_trainable_count_closed_form():
    model = peftlab.apply_lora(mlp(), r=4, alpha=8, target_modules=["0", "2"])
    expected = 4 * (12 + 20) + 4 * (20 + 6)
    assert peftlab.count_parameters(model).trainable == expected
    assert peftlab.count_parameters(model).total == expected + (12 * 20 + 20 + 20 * 6 + 6)


def test_gradients_reach_adapters_only():
    model = peftlab.apply_lora(mlp(), r=4, alpha=8, target_modules=["0", "2"])
    randomize_lora(model)
    model(torch.randn(3, 12)).pow(2).sum().backward()
    for name, p in model.named_parameters():
        if "lora_" in name:
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


@pytest.mark.parametrize("use_rslora", [False, True])
def test_merge_unmerge(use_rslora):
    model = peftlab.apply_lora(mlp(), r=4, alpha=8, target_modules=["0", "2"], use_rslora=use_rslora)
    randomize_lora(model)
    x = torch.randn(7, 12)
    W0 = model[0].base_layer.weight.clone()
    y = model(x)
    merge_adapter(model)
    assert torch.allclose(model(x), y, atol=1e-6)
    assert not torch.allclose(model[0].base_layer.weight, W0)
    unmerge_adapter(model)
    assert torch.allclose(model[0].base_layer.weight, W0, atol=1e-7)
    assert torch.allclose(model(x), y, atol=1e-6)


def test_delta_weight_is_scaled_BA():
    layer = LoRALinear(nn.Linear(10, 6), r=3, alpha=6)
    randomize_lora(layer)
    dw = layer.delta_weight()
    assert dw.shape == (6, 10)
    assert torch.allclose(dw, 2.0 * layer.lora_B["default"] @ layer.lora_A["default"])
    x = torch.randn(4, 10)
    assert torch.allclose(layer(x), layer.base_layer(x) + x @ dw.T, atol=1e-6)


def test_dropout_only_on_adapter_input():
    layer = LoRALinear(nn.Linear(10, 6), r=3, alpha=3, dropout=0.5)
    randomize_lora(layer)
    layer.train()
    x = torch.randn(4, 10)
    torch.manual_seed(3)
    y = layer(x)
    torch.manual_seed(3)
    xd = nn.Dropout(0.5)(x)
    expected = layer.base_layer(x) + xd @ layer.lora_A["default"].T @ layer.lora_B["default"].T
    assert torch.allclose(y, expected, atol=1e-6)


def test_two_adapters_add_and_switch():
    model = peftlab.apply_lora(mlp(), r=2, alpha=2, target_modules=["0"])
    peftlab.apply_lora(model, r=4, alpha=8, target_modules=["0"], adapter_name="second")
    randomize_lora(model)
    layer = model[0]
    x = torch.randn(3, 12)
    expected = layer.base_layer(x) + x @ (layer.delta_weight("default") + layer.delta_weight("second")).T
    assert torch.allclose(layer(x), expected, atol=1e-6)
    set_adapter(model, "second")
    assert torch.allclose(layer(x), layer.base_layer(x) + x @ layer.delta_weight("second").T, atol=1e-6)
    assert set(model.peftlab_config) == {"default", "second"}


def test_disable_adapters_restores_base():
    base = mlp()
    model = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=["0", "2"])
    randomize_lora(model)
    x = torch.randn(3, 12)
    y = model(x)
    merge_adapter(model)
    with disable_adapter(model):
        assert torch.allclose(model(x), base(x), atol=1e-6)
    assert torch.allclose(model(x), y, atol=1e-6) and model[0].merged


def test_regex_targets_like_peft():
    model = tiny_bert()
    names_ours = sorted(peftlab.find_targets(model, r".*layer\.0\.attention\.self\.(query|value)"))
    assert names_ours == ["bert.encoder.layer.0.attention.self.query", "bert.encoder.layer.0.attention.self.value"]


# --------------------------------------------------------------------------- parity with peft
@pytest.mark.parametrize("use_rslora", [False, True])
@pytest.mark.parametrize("targets", [["query", "value"], ["query", "key", "value", "dense"]])
def test_parity_with_peft_bert(use_rslora, targets):
    base = tiny_bert()
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, use_rslora=use_rslora)
    theirs = get_peft_model(copy.deepcopy(base), cfg)
    randomize_lora(theirs)
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=targets, use_rslora=use_rslora)
    copy_from_peft(theirs, ours)
    assert sorted(lora_layers(ours)) == sorted(
        n.removeprefix("base_model.model.") for n, m in theirs.named_modules() if hasattr(m, "lora_A") and m.lora_A
    )
    ids = torch.randint(0, 64, (3, 9))
    theirs.eval(), ours.eval()
    out_t, out_o = theirs(input_ids=ids).logits, ours(input_ids=ids).logits
    assert torch.allclose(out_o, out_t, atol=ATOL, rtol=1e-5)
    # gradients of every adapter tensor
    out_t.pow(2).sum().backward()
    out_o.pow(2).sum().backward()
    grads_t = {n: p.grad for n, p in theirs.named_parameters() if "lora_" in n}
    for name, layer in lora_layers(ours).items():
        for part in ("lora_A", "lora_B"):
            g_t = grads_t[f"base_model.model.{name}.{part}.default.weight"]
            g_o = getattr(layer, part)["default"].grad
            assert torch.allclose(g_o, g_t, atol=1e-5, rtol=1e-4), (name, part)
    # merge / unmerge
    theirs.merge_adapter()
    merge_adapter(ours)
    for name, layer in lora_layers(ours).items():
        w_t = theirs.get_submodule(f"base_model.model.{name}").base_layer.weight
        assert torch.allclose(layer.base_layer.weight, w_t, atol=1e-6)
    assert torch.allclose(ours(input_ids=ids).logits, theirs(input_ids=ids).logits, atol=ATOL)
    theirs.unmerge_adapter()
    unmerge_adapter(ours)
    assert torch.allclose(ours(input_ids=ids).logits, out_t, atol=ATOL)


def test_parity_with_peft_dropout_training():
    base = mlp()
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["0"], lora_dropout=0.3))
    randomize_lora(theirs)
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=["0"], dropout=0.3)
    copy_from_peft(theirs, ours)
    theirs.train(), ours.train()
    x = torch.randn(6, 12)
    torch.manual_seed(11)
    y_t = theirs(x)
    torch.manual_seed(11)
    y_o = ours(x)
    assert torch.allclose(y_o, y_t, atol=ATOL)


def test_trainable_count_matches_peft():
    base = tiny_bert()
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"]))
    ours = peftlab.apply_lora(copy.deepcopy(base), r=8, alpha=16, target_modules=["query", "value"])
    t_train, t_all = theirs.get_nb_trainable_parameters()
    c = peftlab.count_parameters(ours)
    assert (c.trainable, c.total) == (t_train, t_all)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"r": 0}, ValueError, "r=0"),
        ({"r": -2}, ValueError, "r=-2"),
        ({"r": 7}, ValueError, "min(in, out) = 6"),
        ({"r": 2.5}, TypeError, "r must be an int"),
        ({"alpha": 0}, ValueError, "alpha"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"dropout": -0.1}, ValueError, "dropout"),
        ({"target_modules": ["nope"]}, ValueError, "matched no module"),
        ({"target_modules": ["1"]}, TypeError, "ReLU"),
        ({"target_modules": []}, ValueError, "at least one"),
        ({"target_modules": "(("}, ValueError, "regular expression"),
        ({"modules_to_save": ["head"]}, ValueError, "modules_to_save"),
        ({"adapter_name": "a.b"}, ValueError, "adapter_name"),
    ],
)
def test_bad_input_is_clear_and_leaves_model_untouched(kwargs, exc, words):
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    args = {"r": 2, "alpha": 4, "target_modules": ["0", "2"], **kwargs}
    with pytest.raises(exc) as info:
        peftlab.apply_lora(model, **args)
    assert words in str(info.value)
    assert not lora_layers(model) and not hasattr(model, "peftlab_config")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_target_lists_existing_names():
    with pytest.raises(ValueError) as info:
        peftlab.apply_lora(tiny_bert(), target_modules=["q_proj"])
    assert "query" in str(info.value) and "classifier" in str(info.value)


def test_nan_weight_refused():
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        peftlab.apply_lora(model, r=2, alpha=2, target_modules=["0", "2"])
    assert not lora_layers(model)


def test_merge_twice_and_unmerge_nothing_are_no_ops():
    """As in peft: merging a merged adapter skips it, unmerging an unmerged model does nothing."""
    model = peftlab.apply_lora(mlp(), r=2, alpha=2, target_modules=["0"])
    randomize_lora(model)
    W0 = model[0].base_layer.weight.clone()
    merge_adapter(model)
    W = model[0].base_layer.weight.clone()
    merge_adapter(model)
    assert torch.equal(W, model[0].base_layer.weight) and model[0].merged_adapters == ["default"]
    with pytest.raises(RuntimeError, match="already merged"):
        model[0].merge(["default"])  # asking one layer explicitly is an error
    unmerge_adapter(model)
    assert torch.allclose(model[0].base_layer.weight, W0, atol=1e-7)
    unmerge_adapter(model)
    assert torch.allclose(model[0].base_layer.weight, W0, atol=1e-7)


def test_safe_merge_refuses_nan():
    layer = LoRALinear(nn.Linear(4, 4), r=2, alpha=2)
    with torch.no_grad():
        layer.lora_B["default"].fill_(float("inf"))
    W = layer.base_layer.weight.clone()
    with pytest.raises(ValueError, match="NaN/Inf"):
        layer.merge(safe_merge=True)
    assert torch.equal(W, layer.base_layer.weight) and not layer.merged


def test_duplicate_adapter_name():
    model = peftlab.apply_lora(mlp(), r=2, alpha=2, target_modules=["0"])
    with pytest.raises(ValueError, match="already has an adapter named 'default'"):
        peftlab.apply_lora(model, r=2, alpha=2, target_modules=["0"])


def test_base_layer_type_checked():
    with pytest.raises(TypeError, match="nn.Linear"):
        LoRALinear(nn.Conv1d(3, 3, 1))


# --------------------------------------------------------------------------- embeddings (peft's lora.Embedding)
def test_embedding_adapter_init_and_formula():
    from peftlab.methods.lora import LoRAEmbedding

    torch.manual_seed(0)
    emb = nn.Embedding(20, 6, padding_idx=0)
    layer = LoRAEmbedding(emb, r=3, alpha=6)
    A, B = layer.lora_embedding_A["default"], layer.lora_embedding_B["default"]
    assert A.shape == (3, 20) and B.shape == (6, 3) and torch.all(A == 0) and B.abs().sum() > 0
    ids = torch.tensor([[0, 3, 7], [19, 3, 1]])
    assert torch.equal(layer(ids), emb(ids))
    with torch.no_grad():
        A.normal_()
    assert layer.delta_weight().shape == (20, 6)
    assert torch.allclose(layer(ids), emb(ids) + (emb.weight + layer.delta_weight())[ids] - emb.weight[ids], atol=1e-6)


@pytest.mark.parametrize("use_rslora", [False, True])
def test_parity_with_peft_embedding_targets(use_rslora):
    base = tiny_bert()
    targets = ["word_embeddings", "query", "value"]
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=targets, use_rslora=use_rslora))
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=targets, use_rslora=use_rslora)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_embedding_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    params = dict(theirs.named_parameters())
    peftlab.copy_from_peft(theirs, ours)
    ids = torch.randint(0, 64, (3, 9), generator=gen)
    theirs.eval(), ours.eval()
    y_t, y_o = theirs(input_ids=ids).logits, ours(input_ids=ids).logits
    assert torch.allclose(y_o, y_t, atol=ATOL)
    y_t.pow(2).sum().backward()
    y_o.pow(2).sum().backward()
    emb = ours.bert.embeddings.word_embeddings
    g_t = params["base_model.model.bert.embeddings.word_embeddings.lora_embedding_A.default"].grad
    assert torch.allclose(emb.lora_embedding_A["default"].grad, g_t, atol=1e-5)
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]
    theirs.merge_adapter()
    merge_adapter(ours)
    w_t = theirs.get_submodule("base_model.model.bert.embeddings.word_embeddings").base_layer.weight
    assert torch.allclose(emb.base_layer.weight, w_t, atol=1e-6)
    unmerge_adapter(ours)
    assert torch.allclose(ours(input_ids=ids).logits, y_o, atol=ATOL)


def test_embedding_target_accepts_dropout_like_peft():
    """Regression: peft accepts lora_dropout with an embedding target and applies no dropout there."""
    base = tiny_bert()
    model = peftlab.apply_lora(copy.deepcopy(base), r=2, alpha=2, target_modules=["word_embeddings", "query"],
                               dropout=0.1)
    emb = model.bert.embeddings.word_embeddings
    with torch.no_grad():
        emb.lora_embedding_A["default"].normal_()
    emb.train()
    ids = torch.randint(0, 64, (2, 5))
    assert torch.equal(emb(ids), emb(ids))  # deterministic: no dropout on the embedding path
    assert isinstance(model.bert.encoder.layer[0].attention.self.query.lora_dropout["default"], nn.Dropout)


def test_regression_merge_unmerge_with_adapters_on_different_targets():
    """Regression (a): "a" on query, "b" on value; merging "a" must skip the value layers, and unmerge
    must undo exactly what was merged (it raised 'nothing to unmerge' before)."""
    base = tiny_bert()
    model = peftlab.apply_lora(copy.deepcopy(base), r=2, alpha=4, target_modules=["query"], adapter_name="a")
    peftlab.apply_lora(model, r=2, alpha=4, target_modules=["value"], adapter_name="b")
    randomize_lora(model)
    ids = torch.randint(0, 64, (2, 6))
    weights = {n: layer.base_layer.weight.clone() for n, layer in lora_layers(model).items()}
    set_adapter(model, ["a"])
    y = model(input_ids=ids).logits
    merge_adapter(model)
    assert torch.allclose(model(input_ids=ids).logits, y, atol=1e-5)
    unmerge_adapter(model)
    for n, layer in lora_layers(model).items():
        assert torch.allclose(layer.base_layer.weight, weights[n], atol=1e-7), n
