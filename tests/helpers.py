"""Small models and utilities shared by the unit tests (no downloads)."""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn


@contextmanager
def skip_if_peft_fails():
    """Run a reference computation of Hugging Face peft; when peft itself raises (the innermost frame of the
    error is in peft's own code, e.g. a peft release that does not support the installed transformers), skip
    the test and say why. An error anywhere else (our code, transformers, the test) still fails the test."""
    import peft
    import pytest
    import transformers

    try:
        yield
    except Exception as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        peft_dir = Path(peft.__file__).resolve().parent
        if frames and Path(frames[-1].filename).resolve().is_relative_to(peft_dir):
            pytest.skip(f"peft {peft.__version__} fails on transformers {transformers.__version__} "
                        f"({type(exc).__name__}: {exc}); peftlab's side is tested without it")
        raise


def mlp(seed: int = 0) -> nn.Module:
    """The 12 → 20 → 6 MLP every method test uses (layers "0" and "2" are the targets)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6))


def tiny_bert(seed: int = 0, num_labels: int = 2):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=32, num_labels=num_labels)
    return BertForSequenceClassification(cfg).eval()


def tiny_llama(seed: int = 0):
    """A 2-layer Llama (32 wide, grouped-query attention: 4 heads, 2 key/value heads)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()


def randomize_lora(model: nn.Module, seed: int = 1, std: float = 0.1) -> None:
    """Give every LoRA B (peft's or peftlab's) random values so adapters change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
