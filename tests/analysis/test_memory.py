"""peftlab.analysis.memory: the estimate against bytes measured on tiny Llama models, and the CLI."""

from __future__ import annotations

import copy

import pytest
import torch

import peftlab
from peftlab.analysis.memory import (
    LLAMA_PRESETS,
    estimate_training_memory,
    format_estimates,
    memory_table,
    model_shape,
    quantized_weight_bytes,
)
from peftlab.methods.qlora import LLAMA_LINEARS
from peftlab.quant import quantize_4bit


def _llama(hidden=64, inter=128, layers=2, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256)
    return LlamaForCausalLM(cfg)


def _storages(tensors):
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}


def _measure(model, ids, checkpointing=False):
    """Bytes of weights (parameters + buffers), gradients, AdamW states and saved activations of one step."""
    own = _storages(list(model.parameters()) + list(model.buffers()))
    saved = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in own:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    model.train()
    if checkpointing:
        model.config.use_cache = False
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    opt.step()
    states = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values())
    return {"weights": sum(own.values()), "gradients": grads, "optimizer": states, "activations": sum(saved.values())}


def _model(method, base):
    model = copy.deepcopy(base)
    if method == "lora":
        return peftlab.apply_lora(model, r=8, alpha=16, target_modules=list(LLAMA_LINEARS))
    if method == "qlora":
        return peftlab.apply_qlora(model, r=8, alpha=16)
    return model


@pytest.mark.parametrize("hidden, inter, batch, seq", [(64, 128, 2, 32), (128, 256, 2, 64), (64, 256, 4, 48)])
@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
def test_estimate_matches_measured_bytes(method, hidden, inter, batch, seq):
    base = _llama(hidden, inter)
    ids = torch.randint(0, 50, (batch, seq), generator=torch.Generator().manual_seed(0))
    for ckpt in (False, True):
        measured = _measure(_model(method, base), ids, checkpointing=ckpt)
        est = estimate_training_memory(base.config, method, batch=batch, seq=seq, r=8, dtype="fp32",
                                       gradient_checkpointing=ckpt)
        case = (method, hidden, inter, ckpt)
        assert est.weights == measured["weights"], case
        assert est.gradients == measured["gradients"], case
        assert est.optimizer == measured["optimizer"], case
        assert abs(est.activations - measured["activations"]) <= 0.10 * measured["activations"], (case, est, measured)


def test_quantized_bytes_are_what_quantize_4bit_stores():
    w = torch.randn(300, 70)
    for dq in (False, True):
        packed, state = quantize_4bit(w, blocksize=64, double_quant=dq)
        assert quantized_weight_bytes(w.numel(), 64, dq) == packed.numel() + state.nbytes


def test_paper_scale_table():
    assert model_shape("7B").parameter_count() == pytest.approx(6.74e9, rel=0.01)
    assert model_shape("65B").parameter_count() == pytest.approx(65.2e9, rel=0.01)
    rows = {(e.settings["parameters"] // 10**9, e.method): e for e in
            memory_table(batch=1, seq=512, r=64, dtype="bf16", gradient_checkpointing=True)}
    q65 = rows[(65, "qlora")]
    # the paper: 65B QLoRA fine-tunes on one 48 GB GPU (4-bit base ≈ 35 GB with double quantization)
    assert 32 * 2**30 < q65.weights < 36 * 2**30 and q65.total < 48 * 2**30
    assert not rows[(65, "full")].fits()["A100/H100 80 GB"] and rows[(6, "qlora")].fits()["T4 16 GB"]
    assert rows[(6, "full")].total > rows[(6, "lora")].total > rows[(6, "qlora")].total
    text = format_estimates(memory_table(models=("7B",)))
    assert "qlora" in text and "fits" in text


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        estimate_training_memory("7B", "dora")
    with pytest.raises(ValueError, match="dtype"):
        estimate_training_memory("7B", "lora", dtype="int8")
    with pytest.raises(ValueError, match="batch"):
        estimate_training_memory("7B", "lora", batch=0)
    with pytest.raises(ValueError, match="target_modules"):
        estimate_training_memory("7B", "lora", target_modules=["query"])
    with pytest.raises(ValueError, match="config"):
        model_shape("no/such/config.json")
    assert set(LLAMA_PRESETS) >= {"7B", "13B", "65B"}


def test_cli(tmp_path, capsys):
    from peftlab.cli import main

    assert main(["memory", "--table"]) == 0
    out = capsys.readouterr().out
    assert "65" in out and "T4 16 GB" in out
    _llama().config.save_pretrained(tmp_path)
    assert main(["memory", str(tmp_path), "--method", "qlora", "--batch", "2", "--seq", "32", "--dtype", "fp32"]) == 0
    assert "qlora" in capsys.readouterr().out
