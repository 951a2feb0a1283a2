"""DoRA: the paper's definitions, parity with peft ``LoraConfig(use_dora=True)``, interop, bad input.

Parity recipe: the same base twice, peft's B and magnitude randomised (B ~ N(0, 0.1²),
m scaled by U(0.5, 1.5)), copied into peftlab by peft's state-dict names, compared in fp32.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import mlp, tiny_bert, tiny_llama
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from torch import nn

import peftlab
from peftlab.core.interop import CONFIG_NAME, WEIGHTS_NAME, codecs
from peftlab.core.tuner import adapter_layers
from peftlab.methods.dora import DoRAConfig, DoRAEmbedding, DoRALinear, dora_layers
from peftlab.methods.fast import use_fast
from peftlab.methods.fast.dora import FactoredNorm, FastDoRALinear

ATOL = 1e-5  # fp32; measured differences are ≤ 3e-7, see the asserts' messages
BERT_TARGETS = ["word_embeddings", "query", "key", "value", "dense"]


MODELS = {"mlp": (mlp, ["0", "2"]), "bert": (tiny_bert, BERT_TARGETS),
          "llama": (tiny_llama, ["embed_tokens", "q_proj", "v_proj", "o_proj", "down_proj"])}


def _inputs(kind: str):
    gen = torch.Generator().manual_seed(0)
    if kind == "mlp":
        return torch.randn(5, 12, generator=gen)
    return torch.randint(0, 50, (2, 7), generator=gen)


def _out(model, kind, x):
    return model(x) if kind == "mlp" else model(input_ids=x).logits


def randomize_dora(model: nn.Module, seed: int = 1) -> None:
    """B ~ N(0, 0.1²) and m ← m · U(0.5, 1.5) on peft's or peftlab's tensors."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name or "lora_embedding_A" in name:  # the factor that starts at zero
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif "lora_magnitude_vector" in name:
                p.mul_(torch.rand(p.shape, generator=gen) + 0.5)


def _pair(kind: str, r=4, alpha=8, dropout=0.0, use_rslora=False, rank_pattern=None, alpha_pattern=None):
    build, targets = MODELS[kind]
    base = build()
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, use_rslora=use_rslora, target_modules=targets,
        rank_pattern=rank_pattern or {}, alpha_pattern=alpha_pattern or {}, use_dora=True))
    ours = peftlab.apply_dora(copy.deepcopy(base), r=r, alpha=alpha, dropout=dropout, use_rslora=use_rslora,
                              target_modules=targets, rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
    randomize_dora(theirs)
    peftlab.copy_from_peft(theirs, ours)
    return base, ours, theirs


def _peft_param(theirs, name: str, attr: str, adapter="default"):
    params = dict(theirs.named_parameters())
    key = f"base_model.model.{name}.{attr}.{adapter}"
    return params[key] if key in params else params[key + ".weight"]


def _factor_names(layer):
    return layer.factor_names + ("lora_magnitude_vector",)


def _max_grad_diff(ours, theirs, which: int, adapter="default") -> float:
    """Gradient check of factor ``which`` (0: A, 1: B, 2: magnitude) of every DoRA layer."""
    worst = 0.0
    for name, layer in dora_layers(ours).items():
        attr = _factor_names(layer)[which]
        mine = getattr(layer, attr)[adapter].grad
        peft_grad = _peft_param(theirs, name, attr, adapter).grad
        assert mine is not None and peft_grad is not None and peft_grad.abs().sum() > 0, (name, attr)
        # fp32 tolerance 1e-5 relative to the tensor's scale (a large loss gives gradients in the hundreds)
        diff, scale = (mine - peft_grad).abs().max().item(), max(1.0, peft_grad.abs().max().item())
        assert diff <= ATOL * scale, (name, attr, diff, scale)
        worst = max(worst, diff / scale)
    return worst


# --------------------------------------------------------------------------- the paper's definitions
def test_magnitude_is_the_per_output_unit_norm():
    base = nn.Linear(16, 8)
    layer = DoRALinear(copy.deepcopy(base), r=4, alpha=8)
    m = layer.lora_magnitude_vector["default"]
    assert m.shape == (8,)  # one scalar per output unit, not one Frobenius scalar
    assert torch.allclose(m, base.weight.norm(dim=1), atol=1e-7)  # norm over the input dimension
    assert not torch.allclose(m, base.weight.norm(dim=0)[:8], atol=1e-3)
    assert m.requires_grad and layer.lora_A["default"].requires_grad and layer.lora_B["default"].requires_grad


@pytest.mark.parametrize("kind", ["mlp", "bert"])
@pytest.mark.parametrize("use_rslora", [False, True])
def test_fresh_adapter_equals_base_exactly(kind, use_rslora):
    build, targets = MODELS[kind]
    base = build()
    x = _inputs(kind)
    ours = peftlab.apply_dora(copy.deepcopy(base), r=4, alpha=8, target_modules=targets, use_rslora=use_rslora)
    assert torch.equal(_out(ours.eval(), kind, x), _out(base, kind, x))


def test_embedding_magnitude_is_per_embedding_dimension_and_the_formula():
    torch.manual_seed(0)
    emb = nn.Embedding(30, 8)
    layer = DoRAEmbedding(copy.deepcopy(emb), r=3, alpha=6)
    m = layer.lora_magnitude_vector["default"]
    assert m.shape == (8,) and torch.allclose(m, emb.weight.norm(dim=0), atol=1e-6)  # a column's norm over V
    ids = torch.tensor([[1, 4, 29], [0, 0, 7]])
    assert torch.equal(layer(ids), emb(ids))
    randomize_dora(layer)
    A, B, s = layer.lora_embedding_A["default"], layer.lora_embedding_B["default"], layer.scaling["default"]
    E = emb.weight + s * (B @ A).T
    E = E * (m / E.norm(dim=0))
    assert torch.allclose(layer(ids), E[ids], atol=1e-6)
    assert torch.allclose(layer.merged_weight(), E, atol=1e-6)
    assert DoRAEmbedding.num_trainable(emb, r=3) == 3 * (30 + 8) + 8


def test_forward_is_the_formula_and_the_bias_is_not_scaled():
    torch.manual_seed(0)
    layer = DoRALinear(nn.Linear(12, 10), r=3, alpha=6)
    randomize_dora(layer)
    A, B = layer.lora_A["default"], layer.lora_B["default"]
    m, s = layer.lora_magnitude_vector["default"], layer.scaling["default"]
    W0, b = layer.base_layer.weight, layer.base_layer.bias
    V = W0 + s * B @ A
    W = (m / V.norm(dim=1)).unsqueeze(1) * V
    x = torch.randn(4, 12)
    assert torch.allclose(layer(x), x @ W.T + b, atol=1e-6)
    assert torch.allclose(layer.merged_weight(), W, atol=1e-6)
    # with B = 0 and m = 2·‖W0‖ the output is 2·xW0ᵀ + b: the bias is not doubled
    with torch.no_grad():
        B.zero_()
        m.copy_(2 * W0.norm(dim=1))
    assert torch.allclose(layer(x), 2 * (x @ W0.T) + b, atol=1e-6)


def test_norm_is_detached_in_the_gradient():
    """Gradients equal the detached-norm reference (paper §4.3) and differ from the non-detached one."""
    torch.manual_seed(0)
    layer = DoRALinear(nn.Linear(12, 10), r=3, alpha=6)
    randomize_dora(layer)
    A, B = layer.lora_A["default"], layer.lora_B["default"]
    m, s = layer.lora_magnitude_vector["default"], layer.scaling["default"]
    W0, b = layer.base_layer.weight, layer.base_layer.bias
    x = torch.randn(6, 12)
    layer(x).pow(2).sum().backward()
    ours = [p.grad.clone() for p in (A, B, m)]
    for detach, same in ((True, True), (False, False)):
        for p in (A, B, m):
            p.grad = None
        V = W0 + s * B @ A
        n = V.norm(dim=1)
        n = n.detach() if detach else n
        (x @ ((m / n).unsqueeze(1) * V).T + b).pow(2).sum().backward()
        close = all(torch.allclose(g, p.grad, atol=1e-4, rtol=1e-4) for g, p in zip(ours, (A, B, m), strict=True))
        assert close is same, f"detach={detach}"


@pytest.fixture
def factored_norm(monkeypatch):
    """Make apply_dora build the speed-tuned layers and every one of them use the factored norm of the forward
    (by default only layers from 512×512 on do)."""
    monkeypatch.setattr(FactoredNorm, "factored_norm_min_numel", 0)
    apply_dora = peftlab.apply_dora
    monkeypatch.setattr(peftlab, "apply_dora", lambda *a, **k: use_fast(apply_dora(*a, **k)))


def test_forward_norm_is_the_direct_norm_without_forming_the_matrix(factored_norm):
    """The forward's factored norm equals ‖W0 + s·B A‖_row; near cancellation it falls back to forming it."""
    torch.manual_seed(0)
    layer = FastDoRALinear(nn.Linear(64, 32), r=4, alpha=8)
    W0 = layer.base_layer.weight
    assert torch.equal(layer.forward_norm("default", W0), W0.norm(dim=1))  # B = 0: exactly ‖W0‖_row
    with torch.no_grad():
        layer.lora_B["default"].normal_(std=0.5)
    direct = layer.weight_norm("default", W0)
    assert torch.allclose(layer.forward_norm("default", W0), direct, rtol=2e-6, atol=0)
    double = FastDoRALinear(nn.Linear(64, 32).double(), r=4, alpha=8)
    with torch.no_grad():
        double.lora_B["default"].normal_(std=0.5)
    Wd = double.base_layer.weight
    assert torch.allclose(double.forward_norm("default", Wd), double.weight_norm("default", Wd), rtol=1e-13, atol=0)
    with torch.no_grad():  # row 0 of W0 + s·B A nearly cancels
        W0[0] = -layer.delta_weight()[0] + 1e-4 * torch.randn(64)
    assert torch.equal(layer.forward_norm("default", W0), layer.weight_norm("default", W0))


def test_trainable_count_closed_form_and_peft():
    base, ours, theirs = _pair("bert")
    expected = 0
    for lay in dora_layers(ours).values():
        A, B = lay.factors("default")  # (r, in) and (out, r) of the out×in oriented weight
        expected += A.shape[0] * (A.shape[1] + B.shape[0]) + B.shape[0]
    assert peftlab.count_parameters(ours).trainable == expected == theirs.get_nb_trainable_parameters()[0]


# --------------------------------------------------------------------------- parity with peft
@pytest.mark.parametrize("kind", ["mlp", "bert", "llama"])
@pytest.mark.parametrize("use_rslora", [False, True])
def test_parity_forward_and_gradients(kind, use_rslora):
    base, ours, theirs = _pair(kind, use_rslora=use_rslora)
    x = _inputs(kind)
    ours.eval(), theirs.eval()
    y_ours, y_theirs = _out(ours, kind, x), _out(theirs, kind, x)
    assert not torch.allclose(y_ours, _out(base, kind, x), atol=1e-3), "the randomised adapter must matter"
    assert torch.allclose(y_ours, y_theirs, atol=ATOL, rtol=1e-5), (y_ours - y_theirs).abs().max()
    y_ours.pow(2).sum().backward()
    y_theirs.pow(2).sum().backward()
    for which in range(3):
        _max_grad_diff(ours, theirs, which)


@pytest.mark.parametrize("kind", ["mlp", "bert"])
def test_parity_forward_and_gradients_with_the_factored_norm(kind, factored_norm):
    test_parity_forward_and_gradients(kind, use_rslora=False)
    test_parity_dropout_path_in_training(kind)


def test_parity_large_layer_uses_the_factored_norm():
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(768, 1024))
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=16, target_modules=["0"], use_dora=True))
    ours = peftlab.apply_dora(copy.deepcopy(base), r=8, alpha=16, target_modules=["0"])
    randomize_dora(theirs)
    peftlab.copy_from_peft(theirs, ours)
    use_fast(ours)
    layer = dora_layers(ours)["0"]
    assert layer.base_weight().numel() >= layer.factored_norm_min_numel
    x = torch.randn(3, 5, 768)
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.allclose(y_ours, y_theirs, atol=ATOL, rtol=1e-5), (y_ours - y_theirs).abs().max()
    y_ours.pow(2).sum().backward()
    y_theirs.pow(2).sum().backward()
    for which in range(3):
        _max_grad_diff(ours, theirs, which)


def test_parity_rank_and_alpha_patterns():
    base, ours, theirs = _pair("bert", r=4, alpha=8, rank_pattern={"value": 2}, alpha_pattern={"query": 3})
    x = _inputs("bert")
    assert torch.allclose(_out(ours.eval(), "bert", x), _out(theirs.eval(), "bert", x), atol=ATOL)


@pytest.mark.parametrize("kind", ["mlp", "bert"])
def test_parity_dropout_path_in_training(kind):
    """Training with dropout: x_d = dropout(x) feeds both extra terms and x_d W0ᵀ is recomputed (as peft)."""
    base, ours, theirs = _pair(kind, dropout=0.3)
    x = _inputs(kind)
    ours.train(), theirs.train()
    torch.manual_seed(7)
    y_theirs = _out(theirs, kind, x)
    torch.manual_seed(7)
    y_ours = _out(ours, kind, x)
    assert torch.allclose(y_ours, y_theirs, atol=ATOL, rtol=1e-5), (y_ours - y_theirs).abs().max()
    torch.manual_seed(8)
    assert not torch.allclose(_out(ours, kind, x), y_ours, atol=1e-4), "dropout must be active"
    y_ours.pow(2).sum().backward()
    y_theirs.pow(2).sum().backward()
    for which in range(3):
        _max_grad_diff(ours, theirs, which)
    # the dropout path is not the eval path: the (g − 1) term sees x_d, not x
    ours.eval()
    assert not torch.allclose(_out(ours, kind, x), y_ours, atol=1e-4)


@pytest.mark.parametrize("kind", ["mlp", "bert"])
def test_parity_merge_unmerge(kind):
    base, ours, theirs = _pair(kind)
    x = _inputs(kind)
    ours.eval(), theirs.eval()
    y = _out(ours, kind, x)
    before = {n: lay.base_weight().clone() for n, lay in dora_layers(ours).items()}
    peftlab.merge_adapter(ours)
    theirs.base_model.merge_adapter()
    for name, layer in dora_layers(ours).items():
        peft_w = theirs.get_submodule(f"base_model.model.{name}").base_layer.weight
        assert torch.allclose(layer.base_weight(), peft_w, atol=1e-6, rtol=0), name
        assert set(layer.merge_norm) == {"default"}
    assert torch.allclose(_out(ours, kind, x), _out(theirs, kind, x), atol=ATOL)
    assert torch.allclose(_out(ours, kind, x), y, atol=ATOL)
    peftlab.unmerge_adapter(ours)
    theirs.base_model.unmerge_adapter()
    for name, layer in dora_layers(ours).items():
        peft_w = theirs.get_submodule(f"base_model.model.{name}").base_layer.weight
        assert torch.allclose(layer.base_weight(), before[name], atol=1e-6, rtol=0), name
        assert torch.allclose(layer.base_weight(), peft_w, atol=1e-6, rtol=0), name
        assert not layer.merge_norm
    assert torch.allclose(_out(ours, kind, x), y, atol=ATOL)


@pytest.mark.parametrize("kind", ["mlp", "bert"])
def test_parity_merge_and_unload(kind):
    base, ours, theirs = _pair(kind)
    x = _inputs(kind)
    y = _out(ours.eval(), kind, x)
    plain_ours = peftlab.merge_and_unload(ours)
    plain_theirs = theirs.merge_and_unload()
    assert not adapter_layers(plain_ours)
    theirs_state = plain_theirs.state_dict()
    for key, value in plain_ours.state_dict().items():
        assert torch.allclose(value, theirs_state[key], atol=1e-6, rtol=0), key
    assert torch.allclose(_out(plain_ours, kind, x), y, atol=ATOL)


def test_two_adapters_on_one_layer_compose_as_peft():
    """Two active DoRA adapters on the same layers: each rescales the output so far; merged in turn."""
    base, ours, theirs = _pair("mlp")
    theirs.add_adapter("second", LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], use_dora=True))
    theirs.base_model.set_adapter(["default", "second"])
    randomize_dora(theirs, seed=5)
    peftlab.inject(ours, DoRAConfig(r=2, alpha=4, target_modules=["0", "2"]), "second")
    peftlab.set_adapter(ours, ["default", "second"])
    peftlab.copy_from_peft(theirs, ours)
    peftlab.copy_from_peft(theirs, ours, "second")
    x = _inputs("mlp")
    y = _out(ours.eval(), "mlp", x)
    assert torch.allclose(y, _out(theirs.eval(), "mlp", x), atol=ATOL)
    weights = {n: lay.base_weight().clone() for n, lay in dora_layers(ours).items()}
    peftlab.merge_adapter(ours)
    theirs.base_model.merge_adapter()
    assert torch.allclose(_out(ours, "mlp", x), y, atol=ATOL)
    for name, layer in dora_layers(ours).items():
        peft_w = theirs.get_submodule(f"base_model.model.{name}").base_layer.weight
        assert torch.allclose(layer.base_weight(), peft_w, atol=1e-6), name
    peftlab.unmerge_adapter(ours)
    for name, layer in dora_layers(ours).items():
        assert torch.allclose(layer.base_weight(), weights[name], atol=1e-6), name


def test_adapter_on_a_partly_merged_layer_uses_the_unmerged_norm():
    base, ours, _ = _pair("mlp")
    peftlab.inject(ours, DoRAConfig(r=2, alpha=4, target_modules=["0", "2"]), "second")
    randomize_dora(ours, seed=4)
    layer = dora_layers(ours)["0"]
    w0 = layer.base_weight().clone()
    peftlab.set_adapter(ours, ["default", "second"])
    peftlab.merge_adapter(ours, adapter_names=["default"])
    assert torch.allclose(layer.unmerged_base_weight(), w0, atol=1e-6)
    n = layer.weight_norm("second", layer.unmerged_base_weight())
    assert torch.allclose(n, (w0 + layer.delta_weight("second")).norm(dim=1), atol=1e-6)


# --------------------------------------------------------------------------- interop
def test_peft_file_loads_with_peft_logits(tmp_path):
    for kind in ("bert", "llama"):
        base, _, theirs = _pair(kind, r=4, alpha=16, use_rslora=True)
        theirs.save_pretrained(tmp_path / kind)
        names = load_file(tmp_path / kind / WEIGHTS_NAME)
        assert any(k.endswith(".lora_magnitude_vector") for k in names)  # peft's key: no ".weight"
        ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / kind)
        kinds = {type(lay) for lay in adapter_layers(ours).values()}
        assert kinds == {DoRALinear, DoRAEmbedding}
        assert type(ours.peftlab_config["default"]) is DoRAConfig
        x = _inputs(kind)
        assert torch.allclose(_out(ours.eval(), kind, x), _out(theirs.eval(), kind, x), atol=1e-5)


def test_peftlab_file_loads_in_peft_with_the_same_logits(tmp_path):
    base, ours, _ = _pair("bert")
    x = _inputs("bert")
    y = _out(ours.eval(), "bert", x)
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    cfg = json.loads((tmp_path / "ours" / CONFIG_NAME).read_text())
    assert cfg["peft_type"] == "LORA" and cfg["use_dora"] is True
    names = load_file(tmp_path / "ours" / WEIGHTS_NAME)
    key = "base_model.model.bert.encoder.layer.0.attention.self.query.lora_magnitude_vector"
    assert names[key].shape == (32,)
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours")
    assert torch.allclose(_out(theirs.eval(), "bert", x), y, atol=1e-5)
    again = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "ours")
    assert torch.equal(_out(again.eval(), "bert", x), y)


def test_lora_codec_keeps_refusing_dora_files_and_vice_versa():
    lora, dora = codecs()["lora"], codecs()["dora"]
    assert not lora.accepts({"peft_type": "LORA", "use_dora": True})
    assert lora.accepts({"peft_type": "LORA", "use_dora": False})
    assert dora.accepts({"peft_type": "LORA", "use_dora": True})
    assert not dora.accepts({"peft_type": "LORA", "use_dora": False}) and not dora.accepts({"peft_type": "LORA"})


def test_lora_file_still_loads_as_lora(tmp_path):
    base = mlp()
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"]))
    theirs.save_pretrained(tmp_path / "lora")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "lora")
    assert not dora_layers(ours) and adapter_layers(ours)


# --------------------------------------------------------------------------- bad input
def _untouched(model, before):
    assert not adapter_layers(model) and not hasattr(model, "peftlab_config")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"r": 0}, ValueError, "r=0"),
        ({"r": 7}, ValueError, "min(in, out) = 6"),
        ({"r": 2.5}, TypeError, "r must be an int"),
        ({"alpha": 0}, ValueError, "alpha"),
        ({"dropout": 1.0}, ValueError, "dropout"),
        ({"init": "zeros"}, ValueError, "init"),
        ({"target_modules": ["nope"]}, ValueError, "matched no module"),
        ({"target_modules": ["1"]}, TypeError, "ReLU"),
        ({"modules_to_save": ["head"]}, ValueError, "modules_to_save"),
        ({"rank_pattern": {"0": 0}}, ValueError, "rank_pattern"),
        ({"adapter_name": "a.b"}, ValueError, "adapter_name"),
    ],
)
def test_bad_input_is_clear_and_leaves_model_untouched(kwargs, exc, words):
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(exc) as info:
        peftlab.apply_dora(model, **{"r": 2, "alpha": 4, "target_modules": ["0", "2"], **kwargs})
    assert words in str(info.value)
    _untouched(model, before)


def test_target_of_another_type_refused_naming_the_layer():
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError, match=r"bert\.embeddings\.LayerNorm.*LayerNorm.*Linear, Embedding"):
        peftlab.apply_dora(model, target_modules=["LayerNorm", "query"])
    _untouched(model, before)


def test_wrong_shape_magnitude_on_load_names_file_and_tensor(tmp_path):
    base, ours, _ = _pair("bert")
    peftlab.save_peft_adapter(ours, tmp_path / "a")
    path = tmp_path / "a" / WEIGHTS_NAME
    tensors = load_file(path)
    key = "base_model.model.bert.encoder.layer.1.attention.self.value.lora_magnitude_vector"
    tensors[key] = torch.ones(31)
    save_file(tensors, path)
    model = copy.deepcopy(base)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError) as info:
        peftlab.load_peft_adapter(model, tmp_path / "a")
    assert str(path) in str(info.value) and key in str(info.value) and "(31,)" in str(info.value)
    assert "(32,)" in str(info.value)
    _untouched(model, before)
    # the same tensor into an existing adapter (load_adapter_state) is refused too, nothing copied
    m_before = dora_layers(ours)["bert.encoder.layer.1.attention.self.value"].lora_magnitude_vector["default"].clone()
    with pytest.raises(ValueError, match=r"value\.lora_magnitude_vector has shape \(31,\)"):
        peftlab.load_adapter_state(ours, tensors)
    assert torch.equal(dora_layers(ours)["bert.encoder.layer.1.attention.self.value"]
                       .lora_magnitude_vector["default"], m_before)


def test_dora_file_without_magnitudes_names_the_missing_tensor(tmp_path):
    base, ours, _ = _pair("mlp")
    peftlab.save_peft_adapter(ours, tmp_path / "a")
    path = tmp_path / "a" / WEIGHTS_NAME
    tensors = load_file(path)
    del tensors["base_model.model.2.lora_magnitude_vector"]
    save_file(tensors, path)
    with pytest.raises(ValueError, match=r"2\.lora_magnitude_vector is missing") as info:
        peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "a")
    assert str(path) in str(info.value)


def test_lora_and_dora_do_not_mix_on_one_layer():
    model = peftlab.apply_lora(mlp(), r=2, alpha=4, target_modules=["0"])
    with pytest.raises(ValueError, match="already carries a LoRALinear"):
        peftlab.apply_dora(model, r=2, alpha=4, target_modules=["0"], adapter_name="d")


def test_safe_merge_refuses_a_non_finite_result():
    base, ours, _ = _pair("mlp")
    layer = dora_layers(ours)["2"]
    w = layer.base_weight().clone()
    with torch.no_grad():
        layer.lora_magnitude_vector["default"][0] = float("inf")
    with pytest.raises(ValueError, match="NaN/Inf"):
        peftlab.merge_adapter(ours, safe_merge=True)
    assert torch.equal(layer.base_weight(), w) and not layer.merged
    assert torch.allclose(dora_layers(ours)["0"].base_weight(), base[0].weight, atol=1e-6)
    assert not dora_layers(ours)["0"].merged and not dora_layers(ours)["0"].merge_norm


def test_each_dora_layer_has_one_base_and_is_found_as_dora():
    from peftlab.core.tuner import method_of_layer, registered_layer_class
    from peftlab.methods.lora import LoRAEmbedding, LoRALinear

    assert DoRALinear.__bases__ == (LoRALinear,) and DoRAEmbedding.__bases__ == (LoRAEmbedding,)
    model = peftlab.apply_dora(tiny_bert(), r=2, target_modules=["word_embeddings", "query"])
    layers = dora_layers(model)
    assert {type(layer) for layer in layers.values()} == {DoRALinear, DoRAEmbedding}
    for layer in layers.values():
        assert registered_layer_class(layer) is type(layer) and method_of_layer(layer).name == "dora"
