"""peftlab.quant.lowbit: a weight stored at 2, 3, 4, 8 or 16 bits — the closed-form bytes equal the stored
tensors', the round trips are the kit's quantizers, and NF4's byte formula is the one of peftlab.quant."""

from __future__ import annotations

import pytest
import torch

from peftlab.methods.qlora import QuantLinear
from peftlab.quant import dequantize_absmax, nf4_nbytes, quantize_4bit, quantize_absmax, quantized_nbytes
from peftlab.quant import lowbit as lb


def test_weight_nbytes_hand_values():
    # 128 weights = 2 blocks of 64
    assert lb.weight_nbytes(128, 2) == 32 + 8          # 2 bits each + fp32 absmax per block
    assert lb.weight_nbytes(128, 3) == 48 + 8
    assert lb.weight_nbytes(128, 4) == 64 + 2 + 4 + 4  # nibbles + uint8 constants + their mean + 1 second-level
    assert lb.weight_nbytes(128, 8) == 128 + 8
    assert lb.weight_nbytes(128, 16) == 256
    # bits per weight at large n: 2.5, 3.5, ≈ 4.127 (QLoRA's double quantization), 8.5, 16
    n = 64 * 256 * 40
    assert [round(8 * lb.weight_nbytes(n, b) / n, 3) for b in (2, 3, 4, 8, 16)] == [2.5, 3.5, 4.127, 8.5, 16.0]
    with pytest.raises(ValueError, match="bits=5"):
        lb.weight_nbytes(128, 5)


@pytest.mark.parametrize("shape", [(48, 80), (33, 17), (64, 300), (1, 5)])
@pytest.mark.parametrize("bits", lb.SUPPORTED_BITS)
def test_memory_model_equals_the_stored_tensors(shape, bits):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(bits)) * 0.05
    stored = lb.quantize_weight(w, bits)
    assert lb.stored_nbytes(stored) == lb.weight_nbytes(w.numel(), bits)
    w_hat = lb.dequantize_weight(stored, bits, w.shape)
    assert w_hat.shape == w.shape and torch.isfinite(w_hat).all()


def test_roundtrips_are_the_kits_quantizers():
    w = torch.randn(40, 96, generator=torch.Generator().manual_seed(0)) * 0.1
    lin = torch.nn.Linear(96, 40, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w)
    # 4 bits = apply_qlora's storage (NF4, double quantization): the same Ŵ, bit for bit
    assert torch.equal(lb.roundtrip(w, 4), QuantLinear.from_linear(lin).dequantized_weight(torch.float32))
    for bits in (2, 3, 8):
        q, st = quantize_absmax(w, bits=bits)
        assert torch.equal(lb.roundtrip(w, bits), dequantize_absmax(q, st))
    assert torch.equal(lb.roundtrip(w, 16), w.to(torch.bfloat16).float())
    errs = [float((lb.roundtrip(w, b) - w).pow(2).mean()) for b in (2, 3, 4, 8, 16)]
    assert errs == sorted(errs, reverse=True)  # more bits, less error
    # 2-bit symmetric absmax is ternary
    assert set(torch.unique(quantize_absmax(w, bits=2)[0]).tolist()) <= {-1, 0, 1}


def test_pack_bits_roundtrip():
    for bits in (1, 2, 3, 5, 8):
        codes = torch.randint(0, 2 ** bits, (37,), generator=torch.Generator().manual_seed(bits))
        packed = lb.pack_bits(codes, bits)
        assert packed.dtype == torch.uint8 and packed.numel() == -(-37 * bits // 8)
        assert torch.equal(lb.unpack_bits(packed, bits, 37), codes)
    assert lb.pack_bits(torch.tensor([3, 0, 1, 2]), 2).tolist() == [0b11000110]
    with pytest.raises(ValueError, match="codes"):
        lb.pack_bits(torch.tensor([4]), 2)



@pytest.mark.parametrize("numel", [1, 63, 64, 65, 64 * 256, 64 * 256 + 1, 100_000])
@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4_nbytes_is_what_quantize_4bit_stores(numel, double_quant):
    w = torch.randn(numel, generator=torch.Generator().manual_seed(numel)).view(1, numel)
    packed, state = quantize_4bit(w, double_quant=double_quant)
    assert nf4_nbytes(numel, double_quant=double_quant) == quantized_nbytes(packed, state)
    with pytest.raises(ValueError, match="numel"):
        nf4_nbytes(0)
