"""VB-LoRA: the paper's definitions, parity with peft's VBLoRA (forward, gradients, merge, files both ways,
top-k-only files included), the shared bank, and bad input."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import mlp, tiny_bert
from safetensors.torch import load_file, save_file
from torch import nn

import peftlab
from peftlab.core.tuner import adapter_layers
from peftlab.methods.vblora import (
    VBLoRAConfig,
    VBLoRALinear,
    assemble_A,
    assemble_B,
    index_dtype,
    storage_bytes,
    topk_admixture,
    vblora_layers,
    vector_bank,
)


def _peft(base, **kw):
    from peft import VBLoRAConfig as PeftVBLoRAConfig
    from peft import get_peft_model

    return get_peft_model(copy.deepcopy(base), PeftVBLoRAConfig(**kw))


def _pair(base, seed=0, **kw):
    """peft's and peftlab's VB-LoRA on copies of ``base`` with identical (random) values."""
    torch.manual_seed(seed)
    theirs = _peft(base, **kw)
    with torch.no_grad():  # logits spread out, so top-k ties are impossible
        for name, p in theirs.named_parameters():
            if "vblora_logits" in name:
                p.normal_(0, 1.0)
            elif "vblora_vector_bank" in name:
                p.uniform_(-0.5, 0.5)
    cfg = {k: v for k, v in kw.items() if k not in ("task_type",)}
    ours = peftlab.apply_vblora(copy.deepcopy(base), **cfg)
    peftlab.copy_from_peft(theirs, ours)
    return ours, theirs


SHAPES = [
    # (in, out, r, N, b, k)
    (12, 20, 4, 10, 2, 2),
    (32, 48, 3, 16, 8, 3),
    (64, 16, 2, 300, 16, 1),
]


def _linear(n_in, n_out):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(n_in, n_out))


# ---------------------------------------------------------------------- the paper's definitions
def test_topk_admixture_is_the_softmax_weighted_sum_of_the_top_k_bank_vectors():
    g = torch.Generator().manual_seed(0)
    bank = torch.randn(7, 3, generator=g)
    z = torch.randn(5, 7, generator=g)
    got = topk_admixture(z, bank, 3)
    for row in range(5):
        order = z[row].argsort(descending=True)[:3]
        w = torch.softmax(z[row, order], 0)
        assert torch.allclose(got[row], sum(w[j] * bank[order[j]] for j in range(3)), atol=1e-6)


def test_A_and_B_are_assembled_piece_by_piece():
    g = torch.Generator().manual_seed(1)
    r, n_in, n_out, N, b, k = 3, 8, 12, 6, 4, 2
    bank = torch.randn(N, b, generator=g)
    la, lb = torch.randn(r, n_in // b, N, generator=g), torch.randn(n_out // b, r, N, generator=g)
    A, B = assemble_A(la, bank, k), assemble_B(lb, bank, k)
    assert A.shape == (r, n_in) and B.shape == (n_out, r)
    for i in range(r):
        for j in range(n_in // b):
            assert torch.allclose(A[i, j * b:(j + 1) * b], topk_admixture(la[i, j], bank, k))
    for j in range(n_out // b):
        for i in range(r):
            assert torch.allclose(B[j * b:(j + 1) * b, i], topk_admixture(lb[j, i], bank, k))


def test_forward_is_base_plus_BA_without_scaling_and_fresh_update_is_bounded():
    base = _linear(16, 8)
    model = peftlab.apply_vblora(copy.deepcopy(base), r=3, num_vectors=5, vector_length=4, target_modules=["0"])
    layer = model[0]
    x = torch.randn(6, 16)
    A, B = layer.lora_matrices("default")
    assert torch.allclose(model(x), base(x) + x @ A.T @ B.T, atol=1e-6)
    assert torch.allclose(layer.delta_weight(), B @ A)
    # a fresh adapter is small, not zero: every entry of A and B is a convex mix of bank entries in [−β, β]
    assert 0 < layer.delta_weight().abs().max() <= 3 * 0.02**2


# ---------------------------------------------------------------------- parity with peft
@pytest.mark.parametrize("n_in, n_out, r, N, b, k", SHAPES)
def test_forward_gradients_and_merge_match_peft(n_in, n_out, r, N, b, k):
    base = _linear(n_in, n_out)
    ours, theirs = _pair(base, r=r, num_vectors=N, vector_length=b, topk=k, target_modules=["0"])
    x = torch.randn(4, 5, n_in, generator=torch.Generator().manual_seed(2))
    ours.eval(), theirs.eval()
    assert torch.equal(ours(x), theirs(x))  # the same top-k, softmax and gather: no difference at all
    ours.train(), theirs.train()
    ours(x).pow(2).sum().backward()
    theirs(x).pow(2).sum().backward()
    layer = ours[0]
    peft_layer = theirs.base_model.model[0]
    for attr in ("vblora_logits_A", "vblora_logits_B"):
        ga, gb = getattr(layer, attr)["default"].grad, getattr(peft_layer, attr)["default"].grad
        assert torch.allclose(ga, gb, atol=1e-6, rtol=1e-5), attr
    bank_grad = vector_bank(ours).grad
    assert torch.allclose(bank_grad, theirs.base_model.vblora_vector_bank["default"].grad, atol=1e-6, rtol=1e-5)
    # merge: W ← W + B A, the same weight as peft's merge
    ours.eval(), theirs.eval()
    y = ours(x)
    peftlab.merge_adapter(ours)
    theirs.merge_adapter()
    assert torch.allclose(layer.base_layer.weight, peft_layer.base_layer.weight, atol=1e-7)
    assert torch.allclose(ours(x), y, atol=1e-5)


def test_only_the_k_selected_logits_and_bank_rows_get_gradient():
    base = _linear(32, 48)
    ours, _ = _pair(base, r=3, num_vectors=40, vector_length=8, topk=2, target_modules=["0"])
    ours.train()
    ours(torch.randn(3, 32)).pow(2).sum().backward()
    layer = ours[0]
    picked = set()
    for attr in ("vblora_logits_A", "vblora_logits_B"):
        logits = getattr(layer, attr)["default"]
        top = logits.detach().topk(2, dim=-1).indices
        mask = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, top, True)
        assert (logits.grad[~mask] == 0).all(), attr
        assert (logits.grad[mask] != 0).float().mean() > 0.9, attr
        picked |= set(top.flatten().tolist())
    rows = (vector_bank(ours).grad.abs().sum(1) > 0).nonzero().flatten().tolist()
    assert set(rows) <= picked and len(picked) < 40


def test_dropout_path_matches_peft():
    base = _linear(12, 20)
    ours, theirs = _pair(base, r=2, num_vectors=6, vector_length=4, vblora_dropout=0.3, target_modules=["0"])
    ours.train(), theirs.train()
    x = torch.randn(4, 12)
    torch.manual_seed(5)
    y_theirs = theirs(x)
    torch.manual_seed(5)
    assert torch.equal(ours(x), y_theirs)


def test_trainable_and_savable_counts_match_peft():
    base = tiny_bert()
    kw = dict(r=2, num_vectors=20, vector_length=8, topk=2, target_modules=["query", "value", "dense"])
    ours, theirs = _pair(base, **kw)
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]
    bank = 20 * 8
    logits = sum(layer.vblora_logits_A["default"].numel() + layer.vblora_logits_B["default"].numel()
                 for layer in vblora_layers(ours).values())
    assert peftlab.count_parameters(ours).trainable == bank + logits
    assert theirs.get_nb_savable_parameters()[0] == storage_bytes(ours)["full"] // 4
    top = _peft(base, save_only_topk_weights=True, **kw)
    # peft counts top-k-only storage in float32-equivalents: bytes / 4
    assert top.get_nb_savable_parameters()[0] == storage_bytes(ours)["topk_only"] // 4


# ---------------------------------------------------------------------- one bank, shared
def test_the_bank_is_one_shared_parameter_saved_once():
    model = peftlab.apply_vblora(tiny_bert(), r=2, num_vectors=12, vector_length=8,
                                 target_modules=["query", "value"])
    bank = vector_bank(model)
    layers = vblora_layers(model)
    assert len(layers) == 4 and all(layer.vblora_vector_bank["default"] is bank for layer in layers.values())
    keys = [k for k in model.state_dict() if "vblora_vector_bank" in k]
    assert keys == ["peftlab_shared.vblora_vector_bank_default"]
    assert sum(1 for p in model.parameters() if p is bank) == 1 and bank.requires_grad
    clone = copy.deepcopy(model)  # a copy keeps the sharing
    assert all(layer.vblora_vector_bank["default"] is vector_bank(clone) for layer in vblora_layers(clone).values())


def test_two_adapters_two_banks_set_and_delete():
    model = peftlab.apply_vblora(mlp(), r=2, num_vectors=6, vector_length=2, target_modules=["0", "2"])
    peftlab.inject(model, VBLoRAConfig(r=2, num_vectors=4, vector_length=2, target_modules=["0"]), "other")
    a, b = vector_bank(model), vector_bank(model, "other")
    assert a is not b and a.shape == (6, 2) and b.shape == (4, 2)
    peftlab.set_adapter(model, "other")
    assert b.requires_grad and not a.requires_grad
    peftlab.set_adapter(model, "default")
    peftlab.delete_adapter(model, "other")
    assert list(model.peftlab_shared.keys()) == ["vblora_vector_bank_default"]
    with pytest.raises(ValueError, match="no VB-LoRA vector bank"):
        vector_bank(model, "other")


# ---------------------------------------------------------------------- files, both ways
def _tensor_bytes(folder):
    return sum(t.numel() * t.element_size() for k, t in load_file(str(folder / "adapter_model.safetensors")).items())


@pytest.mark.parametrize("topk_only", [False, True])
def test_files_both_ways_full_and_topk_only(tmp_path, topk_only):
    from peft import PeftModel

    base = tiny_bert()
    kw = dict(r=2, num_vectors=20, vector_length=8, topk=3, target_modules=["query", "value", "dense"],
              save_only_topk_weights=topk_only)
    ours, theirs = _pair(base, **kw)
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))
    ours.eval(), theirs.eval()
    y = ours(input_ids=ids).logits
    # peftlab → file → peft and peftlab
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    state = load_file(str(tmp_path / "ours" / "adapter_model.safetensors"))
    assert sum("vblora_vector_bank" in k for k in state) == 1 and "base_model.vblora_vector_bank" in state
    if topk_only:
        idx = [t for k, t in state.items() if k.endswith("_topk_indices")]
        assert idx and all(t.dtype == torch.uint8 and t.shape[-1] == 3 for t in idx)
        assert all(t.shape[-1] == 2 for k, t in state.items() if k.endswith("_topk_weights"))
        assert not any(k.endswith(("vblora_logits_A", "vblora_logits_B")) for k in state)
    assert _tensor_bytes(tmp_path / "ours") == storage_bytes(ours)["topk_only" if topk_only else "full"]
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.allclose(loaded(input_ids=ids).logits, y, atol=1e-6)
    again = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.allclose(again(input_ids=ids).logits, y, atol=1e-6)
    # peft → file → peftlab
    theirs.save_pretrained(tmp_path / "peft")
    assert set(load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))) == set(state)
    mine = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    assert torch.allclose(mine(input_ids=ids).logits, theirs(input_ids=ids).logits, atol=1e-6)
    assert vector_bank(mine).shape == (20, 8)


def test_topk_only_file_loads_for_inference_and_merge_but_refuses_training(tmp_path):
    base = tiny_bert()
    ours, _ = _pair(base, r=2, num_vectors=20, vector_length=8, target_modules=["query", "value"],
                    save_only_topk_weights=True)
    ids = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(1))
    y = ours.eval()(input_ids=ids).logits
    peftlab.save_peft_adapter(ours, tmp_path / "top")
    model = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "top").eval()
    assert (model(input_ids=ids).logits - y).abs().max() < 1e-6  # measured: 7e-9
    model.train()
    with torch.no_grad():
        model(input_ids=ids)  # no gradient: inference in train mode is fine
    with pytest.raises(RuntimeError, match="top-k-only"):
        model(input_ids=ids)
    model.eval()
    peftlab.merge_adapter(model)
    assert (model(input_ids=ids).logits - y).abs().max() < 1e-5


def test_index_dtype_is_the_smallest_that_fits():
    assert index_dtype(255) == torch.uint8 and index_dtype(256) == torch.int16
    assert index_dtype(2**15 - 1) == torch.int16 and index_dtype(2**15) == torch.int32
    assert index_dtype(2**31) == torch.int64


def test_topk_only_file_with_300_vectors_uses_int16(tmp_path):
    from peft import PeftModel

    base = _linear(64, 16)
    ours, _ = _pair(base, r=2, num_vectors=300, vector_length=16, target_modules=["0"], save_only_topk_weights=True)
    peftlab.save_peft_adapter(ours, tmp_path / "a")
    state = load_file(str(tmp_path / "a" / "adapter_model.safetensors"))
    assert {t.dtype for k, t in state.items() if k.endswith("_topk_indices")} == {torch.int16}
    x = torch.randn(3, 64)
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "a").eval()
    assert torch.allclose(theirs(x), ours.eval()(x), atol=1e-6)


def _saved(tmp_path, **over):
    base = mlp()
    model = peftlab.apply_vblora(copy.deepcopy(base), r=2, num_vectors=6, vector_length=2, target_modules=["0", "2"],
                                 **over)
    peftlab.save_peft_adapter(model, tmp_path)
    return base, load_file(str(tmp_path / "adapter_model.safetensors"))


@pytest.mark.parametrize("damage, match", [
    (lambda s: s.pop("base_model.vblora_vector_bank"), "vector bank"),
    (lambda s: s.__setitem__("base_model.model.0.vblora_logits_A_topk_indices",
                             torch.full_like(s["base_model.model.0.vblora_logits_A_topk_indices"], 9)), "outside"),
    (lambda s: s.pop("base_model.model.2.vblora_logits_B_topk_weights"), "missing"),
    (lambda s: s.__setitem__("base_model.vblora_vector_bank", torch.zeros(6, 3)), r"vblora_vector_bank has shape \(6, 3\)"),
])
def test_bad_topk_files_name_the_tensor_and_change_nothing(tmp_path, damage, match):
    base, state = _saved(tmp_path, save_only_topk_weights=True)
    damage(state)
    save_file(state, str(tmp_path / "adapter_model.safetensors"))
    model = copy.deepcopy(base)
    with pytest.raises(ValueError, match=match) as info:
        peftlab.load_peft_adapter(model, tmp_path)
    assert "adapter_model.safetensors" in str(info.value)
    assert not adapter_layers(model) and not hasattr(model, "peftlab_shared")


def test_config_round_trip_through_peft_json(tmp_path):
    _saved(tmp_path, topk=3, vblora_dropout=0.1)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "VBLORA" and cfg["num_vectors"] == 6 and cfg["vector_length"] == 2
    assert cfg["topk"] == 3 and cfg["vblora_dropout"] == 0.1 and cfg["save_only_topk_weights"] is False


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kw, exc, match", [
    ({"vector_length": 3}, ValueError, r"layer '0'.*vector_length=3.*in_features=4.*"),
    ({"topk": 7}, ValueError, r"topk=7.*num_vectors=6"),
    ({"topk": 0}, ValueError, "topk=0"),
    ({"topk": -1}, ValueError, "topk=-1"),
    ({"num_vectors": 0}, ValueError, "num_vectors=0"),
    ({"num_vectors": -3, "topk": 1}, ValueError, "num_vectors=-3"),
    ({"r": 0}, ValueError, "r=0"),
    ({"topk": 2.0}, TypeError, "topk must be an int"),
    ({"vblora_dropout": 1.0}, ValueError, "vblora_dropout"),
    ({"init_vector_bank_bound": -1.0}, ValueError, "init_vector_bank_bound"),
])
def test_bad_input_names_the_argument_and_changes_nothing(kw, exc, match):
    base = nn.Sequential(nn.Linear(4, 6))
    model = copy.deepcopy(base)
    args = {"r": 2, "num_vectors": 6, "vector_length": 2, "target_modules": ["0"], **kw}
    with pytest.raises(exc, match=match):
        peftlab.apply_vblora(model, **args)
    assert isinstance(model[0], nn.Linear) and not hasattr(model, "peftlab_shared")
    assert torch.equal(model[0].weight, base[0].weight)


def test_width_error_names_the_layer_and_both_sizes():
    model = tiny_bert()
    with pytest.raises(ValueError) as info:
        peftlab.apply_vblora(model, num_vectors=8, vector_length=32, target_modules=["query", "intermediate.dense"])
    msg = str(info.value)
    assert "intermediate.dense" in msg and "out_features=48" in msg and "vector_length=32" in msg
    assert not adapter_layers(model)


def test_layer_used_alone_needs_a_bank():
    layer = VBLoRALinear(nn.Linear(4, 6), r=2, num_vectors=5, vector_length=2)
    with pytest.raises(RuntimeError, match="no vector bank"):
        layer(torch.randn(1, 4))
    with pytest.raises(ValueError, match=r"\(5, 2\)"):
        layer.set_vector_bank("default", nn.Parameter(torch.zeros(4, 2)))
    layer.set_vector_bank("default", nn.Parameter(torch.zeros(5, 2)))
    assert torch.equal(layer(torch.ones(1, 4)), layer.base_layer(torch.ones(1, 4)))
