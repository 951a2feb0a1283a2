"""peft twins of one layer, for checks that compare a student's code with Hugging Face peft."""

from __future__ import annotations

import torch
from torch import nn


def peft_linear(W0: torch.Tensor, b: torch.Tensor, A: torch.Tensor, B: torch.Tensor, alpha: float, r: int,
                magnitude: torch.Tensor | None = None, dropout: float = 0.0):
    """``(peft_model, peft_layer)``: one ``nn.Linear(W0, b)`` under peft's LoRA (DoRA when ``magnitude`` is
    given) holding exactly these A, B (and m), in eval mode."""
    from peft import LoraConfig, get_peft_model

    base = nn.Sequential(nn.Linear(W0.shape[1], W0.shape[0], dtype=W0.dtype))
    with torch.no_grad():
        base[0].weight.copy_(W0)
        base[0].bias.copy_(b)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["0"], lora_dropout=dropout,
                        use_dora=magnitude is not None)
    model = get_peft_model(base, config)
    layer = model.base_model.model[0]
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(A)
        layer.lora_B["default"].weight.copy_(B)
        if magnitude is not None:
            layer.lora_magnitude_vector["default"].weight.copy_(magnitude)
    return model.eval(), layer
