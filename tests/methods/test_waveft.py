"""WaveFT (peftlab/methods/waveft.py) against its definition, pywt, and Hugging Face peft's WaveFT.

The adapter contract (fresh == base, merge/unmerge, counts, two adapters, save/load) is checked for the
registered examples by tests/core/test_contract.py; here: what is particular to WaveFT.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from helpers import mlp, tiny_bert
from torch import nn

import peftlab
from peftlab.core.tuner import adapter_layers
from peftlab.methods.fast import use_fast
from peftlab.methods.waveft import (
    FAMILIES,
    WaveFTConfig,
    WaveFTLinear,
    coefficient_locations,
    filter_taps,
    idwt2,
    matrix_positions,
    padded_shape,
    synthesis_matrix,
)

pywt = pytest.importorskip("pywt")
peft = pytest.importorskip("peft")
from peft import PeftModel, get_peft_model  # noqa: E402
from peft import WaveFTConfig as PeftWaveFTConfig  # noqa: E402
from peft.tuners.waveft.waverec2d import waverec2d  # noqa: E402

# (out, in, family, n): square, odd, non-square both ways, short and long filters
SHAPES = [
    (16, 8, "db1", 40), (15, 9, "db1", 50), (16, 8, "db2", 40), (17, 11, "db3", 60), (20, 12, "sym4", 100),
    (13, 10, "coif1", 70), (9, 14, "haar", 30), (6, 20, "sym10", 80), (31, 7, "coif3", 100), (12, 12, "db10", 144),
    (24, 40, "coif2", 300),
]
IDS = [f"{o}x{i}-{f}" for o, i, f, _ in SHAPES]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def _pair(n_out, n_in, family, n, dtype, seed=777, use_idwt=True, dense=None, forward_mode=None, fast=False):
    """The same Linear wrapped by peft's WaveFT and by peftlab's (the reference layer, or with ``fast`` the
    speed-tuned one), spectrum N(0, 1) copied across."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(n_in, n_out)).to(dtype)
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(
        n_frequency=n, wavelet_family="db1" if family == "haar" else family, random_loc_seed=seed,
        use_idwt=use_idwt, target_modules=["0"]))
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=n, wavelet_family=family, random_loc_seed=seed,
                                use_idwt=use_idwt, target_modules=["0"])
    if fast or dense is not None or forward_mode is not None:
        use_fast(ours)
        if dense is not None:  # force one way of forming ΔW: the dense product, or the n·L² sparse terms
            ours[0].dense_product_factor = 10**12 if dense else 0
        ours[0].forward_mode = forward_mode  # None: by cost; "fused" (W0 + ΔW) or "factored" (never forms ΔW)
    layer_t, layer_o = theirs.base_model.model[0], ours[0]
    with torch.no_grad():
        layer_t.waveft_spectrum["default"].normal_(generator=torch.Generator().manual_seed(seed + 1))
        layer_o.waveft_spectrum["default"].copy_(layer_t.waveft_spectrum["default"])
    return theirs, ours, layer_t, layer_o


# the reference layer (ΔW by idwt2, base(x) + x ΔWᵀ), and each way the speed-tuned layer can take
PATHS = {"reference": (None, None), "fast-sparse-terms": (False, "fused"), "fast-dense-product": (True, "fused"),
         "fast-factored-forward": (False, "factored")}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["fp64", "fp32"])
@pytest.mark.parametrize("n_out, n_in, family, n", SHAPES, ids=IDS)
def test_parity_with_peft_delta_forward_gradients_merge(n_out, n_in, family, n, dtype, tol, path):
    dense, forward_mode = PATHS[path]
    theirs, ours, layer_t, layer_o = _pair(n_out, n_in, family, n, dtype, dense=dense, forward_mode=forward_mode)
    assert torch.equal(layer_o.waveft_indices["default"], layer_t.waveft_indices["default"])
    assert _rel(layer_o.delta_weight("default"), layer_t.get_delta_weight("default")) <= tol
    x = torch.randn(2, 5, n_in, dtype=dtype, generator=torch.Generator().manual_seed(2), requires_grad=True)
    x_t = x.detach().clone().requires_grad_(True)
    w0 = layer_o.base_layer.weight.detach().clone()
    y_o, y_t = ours(x), theirs(x_t)
    assert _rel(y_o, y_t) <= tol
    y_o.pow(2).sum().backward()
    y_t.pow(2).sum().backward()
    assert _rel(layer_o.waveft_spectrum["default"].grad, layer_t.waveft_spectrum["default"].grad) <= tol
    assert _rel(x.grad, x_t.grad) <= tol
    assert torch.equal(layer_o.base_layer.weight, w0)  # the fused forward folds ΔW into a copy, never into W0
    peftlab.merge_adapter(ours)
    theirs.merge_adapter()
    assert _rel(layer_o.base_layer.weight, layer_t.base_layer.weight) <= tol
    with torch.no_grad():
        assert _rel(ours(x), theirs(x_t)) <= tol
    peftlab.unmerge_adapter(ours)
    assert (layer_o.base_layer.weight - w0).abs().max() <= 10 * tol * w0.abs().max()


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["fp64", "fp32"])
def test_parity_without_idwt_and_other_seeds(dtype, tol):
    for seed, use_idwt, mode, fast in ((0, False, None, False), (0, False, "fused", True), (0, False, "factored", True),
                                       (12345, True, None, True), (12345, True, None, False),
                                       (2**40 + 3, True, "factored", True)):
        theirs, ours, layer_t, layer_o = _pair(14, 22, "db2", 90, dtype, seed=seed, use_idwt=use_idwt,
                                               forward_mode=mode, fast=fast)
        assert torch.equal(layer_o.waveft_indices["default"], layer_t.waveft_indices["default"])
        assert _rel(layer_o.delta_weight("default"), layer_t.get_delta_weight("default")) <= tol
        x = torch.randn(6, 22, dtype=dtype)
        y_o, y_t = ours(x), theirs(x)
        assert _rel(y_o, y_t) <= tol
        y_o.pow(2).sum().backward()
        y_t.pow(2).sum().backward()
        assert _rel(layer_o.waveft_spectrum["default"].grad, layer_t.waveft_spectrum["default"].grad) <= tol
    # without the transform ΔW is the sparse coefficient matrix itself: exactly n non-zeros, s·q at the positions
    _, ours, _, layer_o = _pair(14, 22, "db2", 90, dtype, use_idwt=False)
    delta = layer_o.delta_weight("default")
    rows, cols = layer_o.waveft_indices["default"]
    assert int((delta != 0).sum()) == 90
    assert torch.equal(delta[rows, cols], 25.0 * layer_o.waveft_spectrum["default"].detach())


def test_fast_forward_path_is_chosen_by_cost_and_adapters_mix():
    torch.manual_seed(0)
    big = use_fast(peftlab.apply_waveft(nn.Sequential(nn.Linear(1536, 384)), n_frequency=64, target_modules=["0"]))[0]
    small = use_fast(peftlab.apply_waveft(mlp(), n_frequency=64, target_modules=["0"]))[0]
    assert big.factored("default") and not small.factored("default")  # large sparse layer: never form ΔW
    with torch.no_grad():
        assert not big.factored("default")  # without gradients, folding ΔW into W0 costs one product only
    # two adapters on one layer, one applied factored and one folded into the weight: their sum either way
    model = peftlab.apply_waveft(nn.Sequential(nn.Linear(64, 64)), n_frequency=5, target_modules=["0"],
                                 adapter_name="a", wavelet_family="db2")
    peftlab.apply_waveft(model, n_frequency=200, target_modules=["0"], adapter_name="b", wavelet_family="db2")
    peftlab.set_adapter(model, ["a", "b"])
    layer = use_fast(model)[0]
    layer.factored_cost_factor = 7  # a: 7·(4·128 + 10) < 64·64: factored; b: 7·(4·128 + 400) ≥ 64·64: fused
    with torch.no_grad():
        for name in ("a", "b"):
            layer.waveft_spectrum[name].normal_(generator=torch.Generator().manual_seed(len(name)))
    assert layer.factored("a") and not layer.factored("b")
    x = torch.randn(3, 64)
    expected = layer.base_layer(x) + x @ (layer.delta_weight("a") + layer.delta_weight("b")).T
    assert torch.allclose(model(x), expected, atol=1e-5)


def test_positions_are_peft_draw_regenerated_from_the_seed():
    rows, cols = coefficient_locations(20, 12, 50, 777)
    idx = torch.randperm(240, generator=torch.Generator().manual_seed(777))[:50]
    assert torch.equal(rows, idx // 12) and torch.equal(cols, idx % 12)
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) == 50  # drawn without replacement
    model = peftlab.apply_waveft(mlp(), n_frequency=30, target_modules=["0"])
    state = model.state_dict()
    assert not any("indices" in k or "terms" in k for k in state)  # not saved: regenerated on load


# ---------------------------------------------------------------------- the transform
@pytest.mark.parametrize("family", ["db1", "db2", "db3", "sym4", "coif1", "haar", "sym10", "coif5"])
@pytest.mark.parametrize("shape", [(8, 12), (10, 10), (14, 6)])
def test_idwt_as_matrices_equals_pywt_waverec2(family, shape):
    H, Wd = shape
    L = len(pywt.Wavelet(family).rec_lo)
    H, Wd = max(H, L), max(Wd, L)  # at least one filter length, so pywt and the matrices have output
    H, Wd = H + H % 2, Wd + Wd % 2
    gen = torch.Generator().manual_seed(0)
    cA, cH, cV, cD = (torch.randn(H // 2, Wd // 2, dtype=torch.float64, generator=gen) for _ in range(4))
    Q = torch.cat([torch.cat([cA, cV], 1), torch.cat([cH, cD], 1)], 0)  # the matrix form: off-diagonals swapped
    ours = idwt2(Q, family)
    for mode in ("zero", "symmetric", "periodic", "reflect", "smooth", "constant"):
        ref = pywt.waverec2([cA.numpy(), (cH.numpy(), cV.numpy(), cD.numpy())], family, mode=mode)
        assert ours.shape == ref.shape == (H - L + 2, Wd - L + 2)
        assert (ours - torch.from_numpy(ref)).abs().max() < 1e-12, mode
    periodized = pywt.waverec2([cA.numpy(), (cH.numpy(), cV.numpy(), cD.numpy())], family, mode="periodization")
    if L > 2:  # the one mode that wraps around the boundary is a different transform
        assert periodized.shape != ours.shape or (ours - torch.from_numpy(periodized)).abs().max() > 1e-6


@pytest.mark.parametrize("family", ["db1", "db2", "sym4", "coif1", "db10"])
def test_idwt_as_matrices_equals_peft_waverec2d_in_peft_layout(family):
    L = len(pywt.Wavelet(family).rec_lo)
    H, Wd = 2 * L + 4, 2 * L + 8
    gen = torch.Generator().manual_seed(1)
    dense = torch.randn(H, Wd, dtype=torch.float64, generator=gen)  # peft's layout [[cA, cH], [cV, cD]]
    h2, w2 = H // 2, Wd // 2
    theirs = waverec2d((dense[:h2, :w2], (dense[:h2, w2:], dense[h2:, :w2], dense[h2:, w2:])), family)
    Q = torch.cat([torch.cat([dense[:h2, :w2], dense[h2:, :w2]], 1), torch.cat([dense[:h2, w2:], dense[h2:, w2:]], 1)])
    assert _rel(idwt2(Q, family), theirs) < 1e-11  # db3's taps in peft differ from pywt's by 3.6e-12


def test_synthesis_matrix_is_the_inverse_transform():
    haar = synthesis_matrix(8, "haar")
    assert torch.allclose(haar @ haar.T, torch.eye(8, dtype=torch.float64), atol=1e-15)  # orthogonal
    assert torch.allclose(haar.T @ haar, torch.eye(8, dtype=torch.float64), atol=1e-15)
    x = torch.randn(16, dtype=torch.float64)
    cA, cD = pywt.dwt(x.numpy(), "haar")  # analysis by pywt, synthesis by the matrix: x back
    assert torch.allclose(synthesis_matrix(16, "haar") @ torch.from_numpy(np.concatenate([cA, cD])), x, atol=1e-12)
    for family in ("db2", "sym4", "coif1"):
        R = synthesis_matrix(24, family)
        L = len(filter_taps(family)[0])
        assert R.shape == (24 - L + 2, 24)
        assert torch.allclose(R @ R.T, torch.eye(R.shape[0], dtype=torch.float64), atol=1e-10)  # orthonormal rows
        assert not torch.allclose(R.T @ R, torch.eye(24, dtype=torch.float64), atol=1e-3)  # but not square-orthogonal
    with pytest.raises(ValueError, match="even length"):
        synthesis_matrix(7, "db1")


def test_layout_and_padding_follow_peft():
    assert padded_shape(15, 9, "db1") == (16, 10)
    assert padded_shape(16, 8, "db2") == (18, 10)
    assert padded_shape(17, 11, "coif1") == (22, 16)  # 17+4 = 21 → 22, 11+4 = 15 → 16
    # top-right of peft's grid (its cH) is bottom-left of the matrix form, and the other way round
    r, c = matrix_positions(torch.tensor([0, 9, 0, 9]), torch.tensor([0, 0, 5, 5]), 16, 8, "db1")
    assert r.tolist() == [0, 1, 8, 9] and c.tolist() == [0, 4, 1, 5]


def test_update_is_no_larger_than_its_coefficients():
    """The inverse transform is a co-isometry (orthonormal rows): ‖ΔW‖_F ≤ s·‖q‖."""
    for family in ("db1", "db4", "coif2"):
        model = peftlab.apply_waveft(mlp(), n_frequency=100, scaling=3.0, wavelet_family=family, target_modules=["0"])
        layer = model[0]
        with torch.no_grad():
            layer.waveft_spectrum["default"].normal_()
        norm = layer.delta_weight("default").norm()
        bound = 3.0 * layer.waveft_spectrum["default"].norm()
        assert norm <= bound * (1 + 1e-6)
        if family == "db1":  # Haar is orthogonal and no coefficient is lost to the crop: equality
            assert torch.isclose(norm, bound, rtol=1e-5)


# ---------------------------------------------------------------------- config, counts, init
def test_fresh_adapter_is_zero_and_init_weights_false_matches_peft():
    base = tiny_bert()
    model = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=50, target_modules=["query", "value"])
    for layer in adapter_layers(model).values():
        assert not layer.waveft_spectrum["default"].any() and not layer.delta_weight("default").any()
    torch.manual_seed(5)
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(n_frequency=50, target_modules=["query"],
                                                                    init_weights=False))
    torch.manual_seed(5)
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=50, target_modules=["query"], init_weights=False)
    sd_t = peft.get_peft_model_state_dict(theirs)
    sd_o = peftlab.core.interop.adapter_state_dict(ours)
    assert sd_t.keys() == sd_o.keys() and all(torch.equal(sd_t[k], sd_o[k]) for k in sd_t)


@pytest.mark.parametrize("extra", [{"proportional_parameters": True},
                                   {"n_frequency_pattern": {"value": 7, "layer\\.1\\..*query": 11}},
                                   {"proportional_parameters": True, "n_frequency_pattern": {"value": 7}}],
                         ids=["proportional", "pattern", "proportional-wins"])
def test_per_layer_counts_equal_peft(extra):
    base = tiny_bert()
    targets = ["query", "value", "dense"]
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(n_frequency=40, target_modules=targets, **extra))
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=40, target_modules=targets, **extra)
    n_t = {n[len("base_model.model."):]: m.waveft_n_frequency["default"] for n, m in theirs.named_modules()
           if hasattr(m, "waveft_n_frequency")}
    n_o = {n: layer.waveft_n_frequency["default"] for n, layer in adapter_layers(ours).items()}
    assert n_o == n_t and len(set(n_o.values())) > 1
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0] == sum(n_o.values())
    config = ours.peftlab_config["default"]
    for name, layer in adapter_layers(ours).items():
        assert WaveFTLinear.num_trainable(layer.base_layer, **config.layer_hparams(name, layer.base_layer)) == n_o[name]


def test_bad_input_raises_before_anything_changes():
    cases = [
        ({"n_frequency": 0}, ValueError, "n_frequency=0"),
        ({"n_frequency": -3}, ValueError, "n_frequency=-3"),
        ({"n_frequency": 241}, ValueError, "in·out = 240"),  # layer "0" is 20×12
        ({"n_frequency": 2.5}, TypeError, "n_frequency must be an int"),
        ({"n_frequency_pattern": {"0": 0}}, ValueError, "n_frequency_pattern"),
        ({"wavelet_family": "db99"}, ValueError, "allowed: db1…db10, sym2…sym10, coif1…coif5 or haar"),
        ({"wavelet_family": "bior2.2"}, ValueError, "not orthogonal"),
        ({"wavelet_family": "db12"}, ValueError, "no filter taps in peft"),
        ({"wavelet_family": "coif17"}, ValueError, "no filter taps in peft"),
        ({"wavelet_family": "dmey"}, ValueError, "not one of peft's WaveFT families.*allowed"),
        ({"wavelet_family": "Haar"}, ValueError, "not a known wavelet"),
        ({"wavelet_family": None}, TypeError, "wavelet_family"),
        ({"scaling": float("inf")}, ValueError, "scaling=inf"),
        ({"scaling": float("nan")}, ValueError, "scaling=nan"),
        ({"scaling": "25"}, ValueError, "finite number"),
        ({"random_loc_seed": True}, TypeError, "random_loc_seed"),
        ({"use_idwt": 1}, TypeError, "use_idwt"),
    ]
    for over, exc, match in cases:
        model = mlp()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(exc, match=match):
            peftlab.apply_waveft(model, **{"n_frequency": 10, "target_modules": ["0", "2"], **over})
        assert not adapter_layers(model) and not hasattr(model, "peftlab_config")
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # n_frequency fits layer "0" (240) but not layer "2" (6×20 = 120): nothing is wrapped
    model = mlp()
    with pytest.raises(ValueError, match="layer '2'.*in·out = 120"):
        peftlab.apply_waveft(model, n_frequency=200, target_modules=["0", "2"])
    assert not adapter_layers(model)
    # a second adapter with a bad value leaves the first one as it was
    model = peftlab.apply_waveft(mlp(), n_frequency=10, target_modules=["0"])
    with pytest.raises(ValueError):
        peftlab.apply_waveft(model, n_frequency=0, target_modules=["0"], adapter_name="b")
    assert model[0].adapter_names == ["default"] and set(model.peftlab_config) == {"default"}
    assert set(FAMILIES) >= {"db1", "db10", "sym2", "sym10", "coif1", "coif5", "haar"} and len(FAMILIES) == 25


def test_haar_is_db1():
    a = peftlab.apply_waveft(mlp(), n_frequency=60, wavelet_family="haar", target_modules=["0"])
    b = peftlab.apply_waveft(mlp(), n_frequency=60, wavelet_family="db1", target_modules=["0"])
    with torch.no_grad():
        a[0].waveft_spectrum["default"].normal_(generator=torch.Generator().manual_seed(0))
        b[0].waveft_spectrum["default"].copy_(a[0].waveft_spectrum["default"])
    assert torch.equal(a[0].delta_weight("default"), b[0].delta_weight("default"))


# ---------------------------------------------------------------------- interop
def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4)).eval()


def _logits(model, ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


MODELS = {
    "bert": (tiny_bert, ["query", "value", "dense"], lambda: torch.randint(0, 64, (2, 9))),
    "llama": (_tiny_llama, ["q_proj", "v_proj", "up_proj", "down_proj"], lambda: torch.randint(0, 50, (2, 9))),
}
INTEROP = [
    ("bert", {"n_frequency": 64, "wavelet_family": "db1"}),
    ("bert", {"n_frequency": 100, "wavelet_family": "db2", "scaling": 7.5, "random_loc_seed": 3}),
    ("bert", {"n_frequency": 80, "wavelet_family": "coif1", "proportional_parameters": True}),
    ("llama", {"n_frequency": 120, "wavelet_family": "sym4", "random_loc_seed": 42}),
    ("llama", {"n_frequency": 90, "wavelet_family": "db3", "n_frequency_pattern": {"down_proj": 33}}),
    ("llama", {"n_frequency": 50, "use_idwt": False, "scaling": 2.0}),
    ("llama", {"n_frequency": 60, "wavelet_family": "db10"}),
]


@pytest.mark.parametrize("kind, cfg", INTEROP, ids=[f"{k}-{i}" for i, (k, _) in enumerate(INTEROP)])
def test_interop_both_ways(kind, cfg, tmp_path):
    make, targets, make_ids = MODELS[kind]
    base = make()
    torch.manual_seed(1)
    ids = make_ids()
    # peft → peftlab
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(target_modules=targets, **cfg))
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for n, p in theirs.named_parameters():
            if "waveft_spectrum" in n:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    theirs.save_pretrained(tmp_path / "peft")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft")
    y = _logits(theirs, ids)
    assert (_logits(ours, ids) - y).abs().max() <= 1e-4
    assert not torch.allclose(y, _logits(base, ids), atol=1e-3), "the adapter should change the logits"
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]
    # peftlab → peft
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    saved = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "WAVEFT" and "waveft_indices" not in str(saved)
    again = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours")
    assert (_logits(again, ids) - y).abs().max() <= 1e-4
    assert (_logits(ours, ids) - y).abs().max() <= 1e-4


def test_haar_saves_as_db1_and_peft_loads_it(tmp_path):
    base = mlp()
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=30, wavelet_family="haar", target_modules=["0", "2"])
    with torch.no_grad():
        for layer in adapter_layers(ours).values():
            layer.waveft_spectrum["default"].normal_(generator=torch.Generator().manual_seed(0))
    peftlab.save_peft_adapter(ours, tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["wavelet_family"] == "db1"
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path)
    x = torch.randn(4, 12)
    assert torch.allclose(theirs(x), ours(x), atol=1e-5)


@pytest.mark.parametrize("family", ["coif4", "coif5"])
def test_families_peft_computes_differently_are_refused_both_ways(family, tmp_path):
    """peft 0.21.2's coif4 taps are not coif4's, and its coif5 table has 48 taps: peftlab (pywt's taps) refuses
    to exchange those adapters instead of silently computing another update."""
    from peft.tuners.waveft.wavelet import Wavelet

    theirs_taps = torch.tensor(Wavelet(family).rec_lo, dtype=torch.float64)
    ours_taps = filter_taps(family)[0]
    assert theirs_taps.shape != ours_taps.shape or (theirs_taps - ours_taps).abs().max() > 1e-3
    base = mlp()
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=30, wavelet_family=family, target_modules=["0"])
    with pytest.raises(ValueError, match=f"{family}.*not the {family} wavelet"):
        peftlab.save_peft_adapter(ours, tmp_path / "ours")
    assert not (tmp_path / "ours" / "adapter_config.json").exists()
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(n_frequency=30, wavelet_family=family,
                                                                    target_modules=["0"]))
    theirs.save_pretrained(tmp_path / "peft")
    model = copy.deepcopy(base)
    with pytest.raises(ValueError, match="not the"):
        peftlab.load_peft_adapter(model, tmp_path / "peft")
    assert not adapter_layers(model)


def test_load_refuses_unknown_family_before_anything_changes(tmp_path):
    base = mlp()
    theirs = get_peft_model(copy.deepcopy(base), PeftWaveFTConfig(n_frequency=30, target_modules=["0"]))
    theirs.save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps({**cfg, "wavelet_family": "db12"}))
    model = copy.deepcopy(base)
    with pytest.raises(ValueError, match="adapter_config.json.*db12"):
        peftlab.load_peft_adapter(model, tmp_path)
    assert not adapter_layers(model)


def test_config_round_trip_fields():
    cfg = WaveFTConfig(n_frequency=10, scaling=3, wavelet_family="sym3", target_modules=("a",),
                       n_frequency_pattern={"b": 4}, proportional_parameters=True, use_idwt=False)
    assert cfg.scaling == 3.0 and isinstance(cfg.scaling, float) and cfg.target_modules == ["a"]
    saved = cfg.to_dict()
    assert saved.pop("method") == "waveft" and "_proportional" not in saved
    again = WaveFTConfig(**json.loads(json.dumps(saved)))  # through JSON, as a saved file holds it
    assert again == cfg and again.to_dict() == cfg.to_dict()
    assert WaveFTConfig(**{**saved, "n_frequency": 11}) != cfg  # the comparison sees a changed field
