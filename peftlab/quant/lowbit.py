"""Low-bit storage of a weight matrix at 2, 3, 4, 8 or 16 bits: the tensors, their bytes, and the round trip.

What QR-Adaptor (:mod:`peftlab.qr_adaptor`) stores per layer and counts in its memory model ``M(C)``. With
``n = out·in`` weights and blocks of ``b`` (default :data:`peftlab.quant.BLOCKSIZE` = 64):

* 2 and 3 bits: symmetric blockwise absmax integers (:func:`peftlab.quant.quantize_absmax`: levels
  ``k/(2^{q−1}−1)``, so 2-bit is *ternary* {−1, 0, 1}·c, one code of four unused), packed into a bit stream
  (:func:`pack_bits`), one fp32 absmax per block: ``⌈n·q/8⌉ + 4·⌈n/b⌉`` bytes;
* 4 bits: NF4 with double quantization, what :func:`peftlab.quant.quantize_4bit` (and ``apply_qlora``) stores:
  :func:`peftlab.quant.nf4_nbytes`, the one closed form of it;
* 8 bits: INT8 blockwise absmax: ``n + 4·⌈n/b⌉`` bytes;
* 16 bits: the weight in bf16, ``2n`` bytes.

:func:`weight_nbytes` is the closed form; :func:`stored_nbytes` of :func:`quantize_weight`'s tensors equals it
(``tests/quant/test_lowbit.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from peftlab.core import argcheck
from peftlab.quant.codes import (
    BLOCKSIZE,
    QuantState,
    code_book,
    dequantize_4bit,
    dequantize_absmax,
    dynamic_map,
    nf4_nbytes,
    quantize_4bit,
    quantize_absmax,
)

__all__ = ["SUPPORTED_BITS", "check_bits", "dequantize_weight", "pack_bits", "quantize_weight", "roundtrip",
           "stored_nbytes", "unpack_bits", "weight_nbytes"]

#: Bit-widths a weight may be stored at: 2/3 = blockwise absmax integers, 4 = NF4 (double-quantized), 8 = INT8,
#: 16 = bf16.
SUPPORTED_BITS = (2, 3, 4, 8, 16)


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned ``bits``-bit codes (values in ``[0, 2^bits)``) into a dense uint8 bit stream, most
    significant bit first: ``⌈n·bits/8⌉`` bytes."""
    if bits not in range(1, 9):
        raise ValueError(f"bits={bits!r} is not allowed: expected 1 … 8")
    flat = codes.reshape(-1).to(torch.int64)
    if flat.numel() and (flat.min() < 0 or flat.max() >= 2 ** bits):
        raise ValueError(f"codes must lie in [0, {2 ** bits}) for bits={bits}")
    shifts = torch.arange(bits - 1, -1, -1, device=flat.device)
    stream = ((flat[:, None] >> shifts) & 1).reshape(-1)
    pad = (-stream.numel()) % 8
    stream = torch.cat([stream, stream.new_zeros(pad)]).view(-1, 8)
    return (stream << torch.arange(7, -1, -1, device=flat.device)).sum(1).to(torch.uint8)


def unpack_bits(packed: torch.Tensor, bits: int, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``n`` codes as int64."""
    stream = ((packed.reshape(-1, 1).to(torch.int64) >> torch.arange(7, -1, -1, device=packed.device)) & 1).reshape(-1)
    stream = stream[: n * bits].view(n, bits)
    return (stream << torch.arange(bits - 1, -1, -1, device=packed.device)).sum(1)


def check_bits(bits) -> None:
    """Refuse a bit-width this module cannot store, naming the ones it can."""
    if isinstance(bits, bool) or bits not in SUPPORTED_BITS:
        raise ValueError(f"bits={bits!r} is not supported: expected one of {SUPPORTED_BITS}")


def quantize_weight(w: torch.Tensor, bits: int, blocksize: int = BLOCKSIZE) -> dict[str, torch.Tensor]:
    """The tensors a ``bits``-bit base weight is stored as (what :func:`weight_nbytes` counts).

    2/3: ``codes`` (bit stream of ``q + L``) and ``absmax`` (fp32 per block); 4: NF4 ``packed``, ``absmax``
    (uint8, double-quantized), ``offset``, ``absmax2`` (as ``apply_qlora``); 8: ``codes`` (int8) and ``absmax``;
    16: ``weight`` (bf16).
    """
    check_bits(bits)
    if bits == 16:
        return {"weight": w.detach().to(torch.bfloat16)}
    if bits == 4:
        packed, st = quantize_4bit(w, blocksize=blocksize, quant_type="nf4", double_quant=True)
        return {"packed": packed, "absmax": st.absmax, "offset": st.offset.reshape(1), "absmax2": st.absmax2}
    q, st = quantize_absmax(w, bits=bits, blocksize=blocksize)
    if bits == 8:
        return {"codes": q, "absmax": st.absmax}
    levels = 2 ** (bits - 1) - 1
    return {"codes": pack_bits(q.to(torch.int64) + levels, bits), "absmax": st.absmax}


def dequantize_weight(stored: dict[str, torch.Tensor], bits: int, shape, dtype: torch.dtype = torch.float32,
                      blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """``Ŵ`` from :func:`quantize_weight`'s tensors (fp32 arithmetic, cast to ``dtype``)."""
    check_bits(bits)
    shape = torch.Size(shape)
    if bits == 16:
        return stored["weight"].to(dtype).view(shape)
    if bits == 4:
        st = QuantState(absmax=stored["absmax"], shape=shape, dtype=dtype, blocksize=blocksize, quant_type="nf4",
                        code=code_book("nf4"), offset=stored["offset"].reshape(()), absmax2=stored["absmax2"],
                        code2=dynamic_map())
        return dequantize_4bit(stored["packed"], st)
    levels = 2 ** (bits - 1) - 1
    code = torch.arange(-levels, levels + 1, dtype=torch.float32) / levels
    st = QuantState(absmax=stored["absmax"], shape=shape, dtype=dtype, blocksize=blocksize,
                    quant_type=f"int{bits}", code=code)
    if bits == 8:
        q = stored["codes"]
    else:
        q = (unpack_bits(stored["codes"], bits, math.prod(shape)) - levels).to(torch.int8).view(shape)
    return dequantize_absmax(q, st)


def roundtrip(w: torch.Tensor, bits: int, blocksize: int = BLOCKSIZE) -> torch.Tensor:
    """``Ŵ = dequantize(quantize(W))`` at ``bits``, in ``w``'s dtype: what the layer computes with."""
    return dequantize_weight(quantize_weight(w, bits, blocksize), bits, w.shape, w.dtype, blocksize)


def stored_nbytes(tensors: Iterable[torch.Tensor] | dict[str, torch.Tensor]) -> int:
    """Bytes the tensors occupy (``numel · element_size``), summed."""
    values = tensors.values() if isinstance(tensors, dict) else tensors
    return sum(t.numel() * t.element_size() for t in values)


def weight_nbytes(numel: int, bits: int, blocksize: int = BLOCKSIZE) -> int:
    """Closed-form bytes of one ``numel``-weight matrix stored at ``bits`` (see the module docstring)."""
    check_bits(bits)
    argcheck.positive_int("numel", numel)
    if bits == 16:
        return 2 * numel
    if bits == 4:
        return nf4_nbytes(numel, blocksize, double_quant=True)
    return -(-numel * bits // 8) + 4 * -(-numel // blocksize)
