"""QLoRA (peftlab.methods.qlora): QuantLinear, LoRA over it, parity with transformers + bitsandbytes + peft on CPU."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import mlp
from torch import nn

import peftlab
from peftlab.core.targets import LLAMA_LINEARS
from peftlab.methods.qlora import QLoRAConfig, QLoRALinear, QuantLinear, dequantized_reference
from peftlab.quant import bits_per_param, dequantize_4bit, quantize_4bit

bnb = pytest.importorskip("bitsandbytes")

LLAMA_TARGETS = list(LLAMA_LINEARS)


@pytest.fixture(autouse=True, scope="module")
def _eager_bitsandbytes():
    import torch._dynamo

    before = torch._dynamo.config.disable
    torch._dynamo.config.disable = True
    yield
    torch._dynamo.config.disable = before


def _tiny_llama(seed=0, hidden=64, inter=128):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32)
    return LlamaForCausalLM(cfg)


def _bnb_peft(base, tmp_path, quant_type, double_quant, compute_dtype, r=4, alpha=8):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    base.save_pretrained(tmp_path)
    q = AutoModelForCausalLM.from_pretrained(
        tmp_path, device_map="cpu", quantization_config=BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quant_type, bnb_4bit_use_double_quant=double_quant,
            bnb_4bit_compute_dtype=compute_dtype))
    theirs = get_peft_model(q, LoraConfig(r=r, lora_alpha=alpha, target_modules=LLAMA_TARGETS))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in sorted(theirs.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
    return theirs


def _copy_lora(theirs, ours):
    n = 0
    for name, mod in theirs.base_model.model.named_modules():
        if hasattr(mod, "lora_A") and isinstance(mod.lora_A, nn.ModuleDict) and "default" in mod.lora_A:
            layer = ours.get_submodule(name)
            with torch.no_grad():
                layer.lora_A["default"].copy_(mod.lora_A["default"].weight)
                layer.lora_B["default"].copy_(mod.lora_B["default"].weight)
            n += 1
    return n


# ---------------------------------------------------------------------- parity with bitsandbytes + peft
@pytest.mark.parametrize("quant_type, double_quant, compute_dtype", [
    ("nf4", False, torch.float32), ("fp4", False, torch.float32), ("nf4", True, torch.float32),
    ("nf4", True, torch.bfloat16)])
def test_parity_with_transformers_bitsandbytes_and_peft(tmp_path, quant_type, double_quant, compute_dtype):
    """Same fp32 model, quantized by transformers' BitsAndBytesConfig (bitsandbytes, CPU) and by peftlab.

    Hidden sizes are multiples of the block size: bitsandbytes 0.50.2's CPU dequantize misreads rows that
    straddle blocks (see tests/quant/test_quant.py). With double quantization bitsandbytes' CPU 8-bit kernel rounds a
    few block constants differently (≤ 0.5%); taking bitsandbytes' own state (``QuantLinear.from_bnb``) is exact.
    """
    base = _tiny_llama()
    theirs = _bnb_peft(base, tmp_path, quant_type, double_quant, compute_dtype)
    ours = peftlab.apply_qlora(copy.deepcopy(base), r=4, alpha=8, target_modules=LLAMA_TARGETS,
                               quant_type=quant_type, double_quant=double_quant, compute_dtype=compute_dtype)
    assert _copy_lora(theirs, ours) == 14
    bnb_layers = {n: m for n, m in theirs.base_model.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    assert len(bnb_layers) == 14
    for name, mod in bnb_layers.items():
        q = ours.get_submodule(name.removesuffix(".base_layer")).base_layer
        assert torch.equal(q.packed, mod.weight.data.view(torch.uint8).reshape(-1, 1)), name
        if double_quant:
            assert torch.equal(q.absmax2, mod.weight.quant_state.state2.absmax), name
            assert (q.absmax != mod.weight.quant_state.absmax).float().mean() <= 0.05, name  # tiny layers: 2–4 blocks
            ours.get_submodule(name.removesuffix(".base_layer")).base_layer = QuantLinear.from_bnb(mod)
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    theirs.train(), ours.train()  # dropout is 0; bitsandbytes' eval path on AVX512-BF16 CPUs repacks the weight
    y_theirs, y_ours = theirs(input_ids=ids).logits, ours(input_ids=ids).logits
    assert torch.equal(y_ours, y_theirs)
    y_theirs.pow(2).mean().backward()
    y_ours.pow(2).mean().backward()
    compared = 0
    for name, mod in theirs.base_model.model.named_modules():
        if isinstance(mod, bnb.nn.Linear4bit):
            continue
        if hasattr(mod, "lora_A") and isinstance(mod.lora_A, nn.ModuleDict) and "default" in mod.lora_A:
            layer = ours.get_submodule(name)
            for ga, gb in ((layer.lora_A["default"].grad, mod.lora_A["default"].weight.grad),
                           (layer.lora_B["default"].grad, mod.lora_B["default"].weight.grad)):
                assert torch.equal(ga, gb), name
            compared += 1
    assert compared == 14


@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16])
def test_quant_linear_matches_bnb_linear4bit(tmp_path, compute_dtype):
    base = _tiny_llama()
    theirs = _bnb_peft(base, tmp_path, "nf4", True, compute_dtype)
    mod = theirs.base_model.model.model.layers[0].mlp.down_proj.base_layer
    ours = QuantLinear.from_bnb(mod)
    assert ours.compute_dtype == compute_dtype
    x = torch.randn(3, 5, 128, generator=torch.Generator().manual_seed(0))
    mod.train()
    assert torch.equal(ours(x), mod(x))
    own = QuantLinear.from_linear(base.model.layers[0].mlp.down_proj, compute_dtype=compute_dtype)
    assert torch.equal(own.packed, ours.packed)


# ---------------------------------------------------------------------- the layer
def test_forward_is_lora_over_the_dequantized_weight_and_gradients_reach_lora_only():
    torch.manual_seed(0)
    lin = nn.Linear(96, 40)
    layer = QLoRALinear(lin, r=4, alpha=8)
    assert isinstance(layer.base_layer, QuantLinear) and torch.equal(lin.weight, lin.weight)  # original kept
    with torch.no_grad():
        layer.lora_B["default"].normal_(std=0.1)
    x = torch.randn(7, 96, requires_grad=True)
    w_hat = layer.base_weight()
    A, B = layer.lora_A["default"], layer.lora_B["default"]
    expected = x @ w_hat.T + lin.bias + 2.0 * (x @ A.T) @ B.T
    y = layer(x)
    assert torch.allclose(y, expected, atol=1e-6)
    y.pow(2).sum().backward()
    assert A.grad is not None and B.grad is not None and A.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in layer.base_layer.parameters())
    # input gradient goes through Ŵ (not through the original W)
    ref = x.detach().clone().requires_grad_(True)
    (ref @ w_hat.T + lin.bias.detach() + 2.0 * (ref @ A.detach().T) @ B.detach().T).pow(2).sum().backward()
    assert torch.allclose(x.grad, ref.grad, atol=1e-5)


def test_training_matches_lora_on_the_dequantized_model():
    base = mlp()
    cfg = QLoRAConfig(r=4, alpha=8, target_modules=["0", "2"])
    ours = peftlab.inject(copy.deepcopy(base), cfg)
    ref = peftlab.apply_lora(dequantized_reference(base, cfg), r=4, alpha=8, target_modules=["0", "2"])
    for name in ("0", "2"):
        for attr in ("lora_A", "lora_B"):
            with torch.no_grad():
                getattr(ref.get_submodule(name), attr)["default"].copy_(getattr(ours.get_submodule(name), attr)["default"])
    opts = [torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2) for m in (ours, ref)]
    x, t = torch.randn(16, 12), torch.randn(16, 6)
    for _ in range(5):
        for m, opt in zip((ours, ref), opts, strict=True):
            opt.zero_grad()
            (m(x) - t).pow(2).mean().backward()
            opt.step()
    for name in ("0", "2"):
        assert torch.allclose(ours.get_submodule(name).lora_B["default"], ref.get_submodule(name).lora_B["default"],
                              atol=1e-6)


def test_merge_requantizes_and_unmerge_is_exact():
    base = mlp()
    model = peftlab.apply_qlora(copy.deepcopy(base), r=4, alpha=8, target_modules=["0", "2"])
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for layer in peftlab.adapter_layers(model).values():
            layer.lora_B["default"].copy_(torch.randn(layer.lora_B["default"].shape, generator=gen) * 0.1)
    layers = peftlab.adapter_layers(model)
    before = {n: (layer.base_layer.packed.clone(), layer.base_layer.absmax.clone()) for n, layer in layers.items()}
    w_hat = {n: layer.base_weight() for n, layer in layers.items()}
    x = torch.randn(5, 12)
    y = model(x)
    peftlab.merge_adapter(model)
    for n, layer in peftlab.adapter_layers(model).items():
        expected, _ = quantize_4bit(w_hat[n] + layer.delta_weight("default"), blocksize=64, double_quant=True)
        assert torch.equal(layer.base_layer.packed, expected)  # W ← Q(Ŵ + ΔW), bit for bit
    assert not torch.allclose(model(x), y, atol=1e-5) and torch.allclose(model(x), y, atol=0.25)
    peftlab.unmerge_adapter(model)
    for n, layer in peftlab.adapter_layers(model).items():
        assert torch.equal(layer.base_layer.packed, before[n][0]) and torch.equal(layer.base_layer.absmax, before[n][1])
    assert torch.equal(model(x), y)
    plain = peftlab.merge_and_unload(copy.deepcopy(model))
    assert isinstance(plain[0], nn.Linear) and plain[0].weight.dtype == torch.float32
    layer0 = peftlab.adapter_layers(model)["0"]
    assert torch.equal(plain[0].weight, w_hat["0"] + layer0.delta_weight("default"))
    assert torch.allclose(plain(x), y, atol=1e-6)
    kept = peftlab.unload(model)
    assert isinstance(kept[0], QuantLinear)


def test_memory_and_parameter_count_from_the_tensors():
    torch.manual_seed(0)
    lin = nn.Linear(1024, 1024, bias=False)
    q = QuantLinear.from_linear(lin)
    assert q.weight_nbytes == q.packed.numel() + q.absmax.numel() + 4 * q.absmax2.numel() + 4
    assert round(8 * q.weight_nbytes / lin.weight.numel(), 3) == 4.127
    plain = QuantLinear.from_linear(lin, double_quant=False)
    assert 8 * plain.weight_nbytes / lin.weight.numel() == 4.5
    assert bits_per_param(plain.packed, plain.quant_state) == 4.5
    model = peftlab.apply_qlora(nn.Sequential(lin), r=8, target_modules=["0"])
    count = peftlab.count_parameters(model)
    assert count.trainable == 8 * 2048 and count.total == 1024 * 1024 + 8 * 2048


def test_no_dense_weight_is_kept_for_the_backward_and_casts_keep_the_constants():
    base = mlp()
    cfg = QLoRAConfig(r=4, alpha=8, target_modules=["0", "2"])
    x = torch.randn(5, 12)

    def saved_bytes(model):
        own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
        seen = {}

        def pack(t):
            if t.untyped_storage().data_ptr() not in own:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).pow(2).sum().backward()
        return sum(seen.values())

    qlora = peftlab.inject(copy.deepcopy(base), cfg)
    lora = peftlab.apply_lora(dequantized_reference(base, cfg), r=4, alpha=8, target_modules=["0", "2"])
    assert saved_bytes(qlora) == saved_bytes(lora)  # Ŵ is dequantized again in the backward, not saved
    q = qlora[0].base_layer
    absmax2, y = q.absmax2.clone(), q(x)
    qlora.to(torch.bfloat16)
    assert q.absmax2.dtype == torch.float32 and torch.equal(q.absmax2, absmax2) and q.code.dtype == torch.float32
    assert q.bias.dtype == torch.bfloat16 and torch.allclose(q(x), y, atol=1e-2)


def test_fp16_bf16_weights_and_compute():
    torch.manual_seed(0)
    for dtype in (torch.float16, torch.bfloat16):
        lin = nn.Linear(64, 32).to(dtype)
        q = QuantLinear.from_linear(lin, compute_dtype=dtype)
        x = torch.randn(4, 64, dtype=dtype)
        packed, state = quantize_4bit(lin.weight, double_quant=True)
        assert torch.equal(q.dequantized_weight(), dequantize_4bit(packed, state))
        assert q(x).dtype == dtype
        assert torch.equal(q(x), nn.functional.linear(x, dequantize_4bit(packed, state), lin.bias))


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, exc, word", [
    ({"quant_type": "int3"}, ValueError, "quant_type"),
    ({"blocksize": 100}, ValueError, "blocksize"),
    ({"double_quant": 1}, TypeError, "double_quant"),
    ({"compute_dtype": torch.int8}, ValueError, "compute_dtype"),
    ({"r": 0}, ValueError, "r"),
])
def test_bad_arguments_change_nothing(kwargs, exc, word):
    base = mlp()
    model = copy.deepcopy(base)
    with pytest.raises(exc, match=word):
        peftlab.apply_qlora(model, target_modules=["0", "2"], **{"r": 2, **kwargs})
    assert not peftlab.adapter_layers(model) and isinstance(model[0], nn.Linear)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values(), strict=True))


def test_non_finite_weight_quantizes_nothing():
    model = mlp()
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        peftlab.apply_qlora(model, r=2, target_modules=["0", "2"])
    assert isinstance(model[0], nn.Linear) and isinstance(model[2], nn.Linear)


def test_second_adapter_must_use_the_same_quantization():
    model = peftlab.apply_qlora(mlp(), r=2, target_modules=["0"])
    with pytest.raises(ValueError, match="already quantized"):
        peftlab.apply_qlora(model, r=2, target_modules=["0"], quant_type="fp4", adapter_name="other")
    assert peftlab.adapter_layers(model)["0"].adapter_names == ["default"]
    peftlab.apply_qlora(model, r=2, target_modules=["0"], adapter_name="other")
    assert peftlab.adapter_layers(model)["0"].adapter_names == ["default", "other"]


# ---------------------------------------------------------------------- adapter files (peft's format)
def _quantized_llama(base, **quant):
    """``base`` with every Llama Linear 4-bit and no adapter (what a 4-bit loaded base model is)."""
    return peftlab.unload(peftlab.apply_qlora(copy.deepcopy(base), r=2, target_modules=LLAMA_TARGETS, **quant))


def test_peft_adapter_of_a_4bit_model_is_a_lora_file_both_ways(tmp_path):
    """peft saves LoRA over a bitsandbytes 4-bit base as a plain LoRA file. peftlab reads it onto its own 4-bit
    base (QLoRA layers) and writes one that peft loads onto transformers' 4-bit model; outputs are identical."""
    import json

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    base = _tiny_llama()
    theirs = _bnb_peft(base, tmp_path / "base", "nf4", False, torch.float32)
    theirs.save_pretrained(tmp_path / "peft")
    saved = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert saved["peft_type"] == "LORA" and not saved.get("use_dora")

    ours = peftlab.load_peft_adapter(_quantized_llama(base, double_quant=False), tmp_path / "peft")
    layers = peftlab.adapter_layers(ours)
    assert len(layers) == 14 and all(type(layer) is QLoRALinear for layer in layers.values())
    assert type(ours.peftlab_config["default"]) is QLoRAConfig
    assert not ours.peftlab_config["default"].double_quant
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    theirs.train(), ours.train()  # see test_parity_with_transformers_bitsandbytes_and_peft
    y = ours(input_ids=ids).logits
    assert torch.equal(y, theirs(input_ids=ids).logits)

    # copy_from_peft into an existing QLoRA adapter (same targets): the same values
    fresh = peftlab.apply_qlora(copy.deepcopy(base), r=4, alpha=8, target_modules=LLAMA_TARGETS, double_quant=False)
    peftlab.copy_from_peft(theirs, fresh)
    assert torch.equal(fresh.train()(input_ids=ids).logits, y)

    # peftlab → peft: the same tensors under the same names, read onto a fresh transformers 4-bit model
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    q = AutoModelForCausalLM.from_pretrained(tmp_path / "base", device_map="cpu", quantization_config=BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
        bnb_4bit_compute_dtype=torch.float32))
    again = PeftModel.from_pretrained(q, tmp_path / "ours").train()
    assert torch.equal(again(input_ids=ids).logits, y)
    # the same file onto an unquantized model is plain LoRA (what peft does with a 16/32-bit base)
    plain = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "ours")
    assert {type(layer) for layer in peftlab.adapter_layers(plain).values()} == {peftlab.LoRALinear}


def test_qlora_file_round_trip_second_adapter_and_bad_targets(tmp_path):
    base = _tiny_llama(seed=1)
    model = peftlab.apply_qlora(copy.deepcopy(base), r=4, alpha=8, target_modules=LLAMA_TARGETS, quant_type="fp4",
                                blocksize=32)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in peftlab.adapter_layers(model).values():
            layer.lora_B["default"].copy_(torch.randn(layer.lora_B["default"].shape, generator=gen) * 0.1)
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(3))
    y = model(input_ids=ids).logits
    peftlab.save_peft_adapter(model, tmp_path / "a")
    from peftlab.core.interop import adapter_state_dict

    state = adapter_state_dict(model)
    assert len(state) == 28 and all(k.endswith((".lora_A.weight", ".lora_B.weight")) for k in state)

    again = peftlab.load_peft_adapter(_quantized_llama(base, quant_type="fp4", blocksize=32), tmp_path / "a")
    cfg = again.peftlab_config["default"]
    assert (cfg.quant_type, cfg.blocksize, cfg.double_quant) == ("fp4", 32, True)
    assert torch.equal(again(input_ids=ids).logits, y)

    # a second adapter from the file on the QLoRA model itself: same quantization, adapter "b" equal to "default"
    peftlab.load_peft_adapter(model, tmp_path / "a", adapter_name="b")
    peftlab.set_adapter(model, "b")
    assert torch.equal(model(input_ids=ids).logits, y)

    # load_adapter_state into an existing QLoRA adapter
    fresh = peftlab.apply_qlora(copy.deepcopy(base), r=4, alpha=8, target_modules=LLAMA_TARGETS, quant_type="fp4",
                                blocksize=32)
    peftlab.load_adapter_state(fresh, state)
    assert torch.equal(fresh(input_ids=ids).logits, y)

    # targets partly 4-bit: refused, nothing changed
    mixed = _quantized_llama(base, quant_type="fp4", blocksize=32)
    mixed.model.layers[0].self_attn.q_proj = base.model.layers[0].self_attn.q_proj
    before = {k: v.clone() for k, v in mixed.state_dict().items()}
    with pytest.raises(ValueError, match="4-bit layers .* and unquantized"):
        peftlab.load_peft_adapter(mixed, tmp_path / "a")
    assert not peftlab.adapter_layers(mixed) and not getattr(mixed, "peftlab_config", None)
    assert all(torch.equal(v, mixed.state_dict()[k]) for k, v in before.items())
