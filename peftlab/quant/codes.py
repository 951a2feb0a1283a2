r"""Blockwise 4-bit quantization as QLoRA uses it (Dettmers et al., 2023, arXiv 2305.14314), from scratch.

A weight ``W`` (any shape, ``n`` elements) is flattened and cut into blocks of ``blocksize`` consecutive
values (the last block may be shorter). Each block ``b`` keeps one fp32 constant, its absolute maximum
``c_b = max|W_b|``, and each value one 4-bit index ``q`` into a 16-entry code book ``Q ⊂ [−1, 1]``:

    q_i = argmin_k |W_i / c_b − Q_k|          (nearest code; ties go to the lower code)
    Ŵ_i = Q[q_i] · c_b                         (dequantize: table look-up, one multiply, in fp32)

Code books (``code_book(quant_type)``, index order = the stored nibble):

* ``"nf4"`` — NormalFloat4, the paper's §3: quantiles of N(0, 1), so every code is equally likely for
  normally distributed weights. With ``Φ⁻¹`` the standard-normal quantile function and
  ``δ = ½(1 − 1/30 + 1 − 1/32) ≈ 0.9677083`` (the paper's offset; bitsandbytes stores it rounded to seven
  decimals), 8 positive levels ``Φ⁻¹(linspace(δ, ½, 9)[:-1])``, 7 negative ``−Φ⁻¹(linspace(δ, ½, 8)[:-1])``
  and an exact 0, sorted and divided by the largest: asymmetric, exact 0 and ±1.
* ``"fp4"`` — bitsandbytes' 4-bit float: bit 3 is the sign, bits 2–1 an exponent field ``e``, bit 0 a
  mantissa bit ``m``; magnitude ``m/16`` for ``e = 0`` (subnormal) and ``(1 + m/2)·2^{4−e}`` otherwise,
  divided by the largest magnitude (12).
* ``"int4"`` — plain symmetric 4-bit integers ``k/7``, ``k = −7 … 7`` (nibble ``k + 7``; nibble 15 unused),
  for comparison.

Storage (bitsandbytes' layout, byte for byte): the codes of elements ``2i`` and ``2i+1`` share byte ``i``,
**the first in the high nibble**; an odd ``n`` is padded with the *value* 0.0 before coding; the packed
tensor is ``uint8`` of shape ``(⌈n/2⌉, 1)``.

Double quantization (the paper's §3, ``double_quant=True``): the ``⌈n/64⌉`` fp32 constants are themselves
quantized to 8 bits. Their mean ``μ`` is subtracted (they are all positive, so centring them uses the signed
code range), then blocks of 256 constants are absmax-quantized onto bitsandbytes' signed 8-bit *dynamic*
map (:func:`dynamic_map`), keeping one fp32 second-level constant per 256 blocks::

    c_b ≈ D[qc_b] · c2_{⌊b/256⌋} + μ

Memory per parameter with blocksize 64: ``4 + 32/64 = 4.5`` bits without, ``4 + 8/64 + 32/(64·256) ≈ 4.127``
with double quantization (:func:`bits_per_param` reads these off the tensors).

Exactness against bitsandbytes 0.50.2 on CPU (``tests/quant/test_quant.py``): packed bytes, absmax and dequantized
values are identical for NF4 and FP4 (bitsandbytes' own AVX-512 dequantize misreads the block constants of
2-D weights whose rows are not a whole number of blocks; there the comparison is with its flat layout).
With double quantization the 4-bit bytes, ``μ`` and the second-level constants are identical; the 8-bit codes
here are exact nearest rounding, while bitsandbytes' compiled CPU kernel picks the neighbouring code for
about 0.2% of the constants, all within ~2e-5 (of the block's range) of a decision point.

:func:`quantize_absmax` / :func:`dequantize_absmax` are the general uniform blockwise absmax quantizer for
``bits = 2 … 8`` (levels ``k/(2^{bits−1}−1)``), unpacked (one int8 per value).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from peftlab.core import argcheck

__all__ = [
    "BLOCKSIZE",
    "DOUBLE_QUANT_BLOCKSIZE",
    "NF4_OFFSET",
    "QUANT_TYPE",
    "QUANT_TYPES",
    "QuantState",
    "bits_per_param",
    "code_book",
    "dequantize_4bit",
    "dequantize_absmax",
    "dynamic_map",
    "nf4_code",
    "quantize_4bit",
    "quantize_absmax",
    "nf4_nbytes",
    "quantized_nbytes",
]

QUANT_TYPES = ("nf4", "fp4", "int4")
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: the defaults of 4-bit quantization, defined here once (bitsandbytes' and the QLoRA paper's): NF4 codes, one
#: constant per 64 weights, with double quantization one second-level constant per 256 first-level ones.
#: quantize_4bit, QLoRAConfig (and through it QuantLinear, QLoRALinear, apply_qlora), peftlab.analysis.memory
#: and peftlab.qr_adaptor read them.
QUANT_TYPE = "nf4"
BLOCKSIZE = 64
DOUBLE_QUANT_BLOCKSIZE = 256

#: The paper's δ = ½[(1 − 1/30) + (1 − 1/32)], rounded to seven decimals as bitsandbytes stores it: the NF4
#: levels depend on the fp32 ``linspace`` of this number, and 0.96770833… rounds to a different fp32 value.
NF4_OFFSET = round(0.5 * ((1 - 1 / 30) + (1 - 1 / 32)), 7)


# ---------------------------------------------------------------------- code books
def nf4_code(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels (sorted, fp32): standard-normal quantiles at equal-probability points, scaled to [−1, 1].

    ``linspace`` in fp32, ``Φ⁻¹`` (``torch.special.ndtri``) in fp64, cast to fp32, then divided by the largest
    level — the order of operations that makes the table bit-identical to bitsandbytes'.
    """
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())   # 8 levels > 0
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())  # 7 levels < 0
    levels = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg]).float().sort().values
    return levels / levels.max()


def _fp4_code() -> torch.Tensor:
    values = []
    for nibble in range(16):
        sign, e, m = -1.0 if nibble & 8 else 1.0, (nibble >> 1) & 3, nibble & 1
        magnitude = m / 16 if e == 0 else (1 + m / 2) * 2.0 ** (4 - e)
        values.append(sign * magnitude)
    code = torch.tensor(values, dtype=torch.float32)
    return code / code.abs().max()


def _int4_code() -> torch.Tensor:
    code = torch.arange(-7, 8, dtype=torch.float32) / 7
    return torch.cat([code, code[-1:]])  # nibble 15 is never written; it repeats +1 so every nibble decodes


_CODES: dict[str, torch.Tensor] = {}


def code_book(quant_type: str) -> torch.Tensor:
    """The 16 levels of ``quant_type`` ("nf4", "fp4" or "int4") in nibble order, fp32 on the CPU."""
    _check_quant_type(quant_type)
    if quant_type not in _CODES:
        _CODES[quant_type] = {"nf4": nf4_code, "fp4": _fp4_code, "int4": _int4_code}[quant_type]()
    return _CODES[quant_type]


def dynamic_map() -> torch.Tensor:
    """bitsandbytes' signed 8-bit dynamic map (256 sorted fp32 values in [−0.99297, 1]).

    The code after the sign bit is a run of zeros (a decimal exponent ``10^{−k}``, ``k = 0 … 6``), a one,
    then the remaining ``6 − k`` bits split ``[0.1, 1]`` linearly; each code stands for the middle of its
    interval. Plus 0 and 1: 2·127 + 2 = 256 values.
    """
    data: list[float] = []
    for i in range(7):
        edges = torch.linspace(0.1, 1, 2 ** i + 1, dtype=torch.float32)
        means = (edges[:-1] + edges[1:]) / 2.0
        scale = 10 ** (i - 6)
        data += (scale * means).tolist() + (-scale * means).tolist()
    data += [0.0, 1.0]
    return torch.tensor(sorted(data), dtype=torch.float32)


_DYNAMIC: list[torch.Tensor] = []


def _dynamic() -> torch.Tensor:
    if not _DYNAMIC:
        _DYNAMIC.append(dynamic_map())
    return _DYNAMIC[0]


# ---------------------------------------------------------------------- state
@dataclass
class QuantState:
    """What dequantization needs, besides the packed codes.

    ``absmax``: one fp32 constant per block — or, with double quantization, their uint8 codes ``qc``;
    ``offset`` (fp32 scalar ``μ``), ``absmax2`` (fp32, one per ``blocksize2`` blocks) and ``code2`` (the
    dynamic map) are then set. ``shape`` / ``dtype`` are the original weight's. ``code`` is the 16-entry code
    book (shared by every tensor of a type, so not counted in :attr:`nbytes`).
    """

    absmax: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    blocksize: int
    quant_type: str
    code: torch.Tensor
    offset: torch.Tensor | None = None
    absmax2: torch.Tensor | None = None
    code2: torch.Tensor | None = None
    blocksize2: int = DOUBLE_QUANT_BLOCKSIZE

    @property
    def nested(self) -> bool:
        return self.absmax2 is not None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the per-tensor constants (``absmax`` or ``qc``, ``μ``, ``absmax2``), read from the tensors."""
        return sum(t.numel() * t.element_size() for t in (self.absmax, self.offset, self.absmax2) if t is not None)

    def block_absmax(self) -> torch.Tensor:
        """The fp32 constant of every block (double quantization undone: ``D[qc]·c2 + μ``)."""
        if not self.nested:
            return self.absmax
        return _dequantize_blocks(self.code2.to(self.absmax.device)[self.absmax.long()], self.absmax2,
                                  self.blocksize2) + self.offset

    def to(self, device) -> QuantState:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return QuantState(move(self.absmax), self.shape, self.dtype, self.blocksize, self.quant_type,
                          move(self.code), move(self.offset), move(self.absmax2), move(self.code2), self.blocksize2)


def quantized_nbytes(packed: torch.Tensor, state: QuantState) -> int:
    """Bytes a quantized weight occupies: packed codes plus its constants (from the tensors themselves)."""
    return packed.numel() * packed.element_size() + state.nbytes


def nf4_nbytes(numel: int, blocksize: int = BLOCKSIZE, double_quant: bool = True) -> int:
    """Closed-form bytes :func:`quantize_4bit` stores for ``numel`` weights (what :func:`quantized_nbytes` counts on
    the tensors): ``⌈n/2⌉`` bytes of 4-bit codes plus, per block of ``blocksize``, an fp32 absmax (``4·⌈n/b⌉``) or,
    double-quantized, an 8-bit code of it (``⌈n/b⌉``) with one fp32 second-level absmax per
    :data:`DOUBLE_QUANT_BLOCKSIZE` of those and their fp32 mean (``4·⌈⌈n/b⌉/256⌉ + 4``). The one formula of it:
    :mod:`peftlab.quant.lowbit` (QR-Adaptor's memory model) and :mod:`peftlab.analysis.memory` use it."""
    argcheck.positive_int("numel", numel)
    blocks = -(-numel // blocksize)
    if not double_quant:
        return -(-numel // 2) + 4 * blocks
    return -(-numel // 2) + blocks + 4 * -(-blocks // DOUBLE_QUANT_BLOCKSIZE) + 4


def bits_per_param(packed: torch.Tensor, state: QuantState) -> float:
    """``8 · quantized_nbytes / numel``: 4.5 for blocksize 64, ≈ 4.127 with double quantization."""
    return 8.0 * quantized_nbytes(packed, state) / state.numel


# ---------------------------------------------------------------------- validation
def _check_quant_type(quant_type) -> None:
    if quant_type not in QUANT_TYPES:
        raise ValueError(f"quant_type={quant_type!r} is not supported: expected one of {QUANT_TYPES}")


def _check_blocksize(blocksize, name: str = "blocksize", low: int = 2) -> None:
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < low \
            or blocksize & (blocksize - 1):
        raise ValueError(f"{name}={blocksize!r} is not allowed: expected a power of two ≥ {low} (e.g. 64)")


def _check_weight(w, name: str = "w") -> None:
    if not isinstance(w, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(w).__name__}")
    if w.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {w.dtype}; quantization needs a floating weight "
                        f"(float32, float16 or bfloat16)")
    if w.numel() == 0:
        raise ValueError(f"{name} is empty; nothing to quantize")
    if not torch.isfinite(w).all():
        raise ValueError(f"{name} contains NaN or Inf; refusing to quantize it")


# ---------------------------------------------------------------------- blockwise helpers
def _block_absmax(flat: torch.Tensor, blocksize: int) -> torch.Tensor:
    """``max|x|`` of every block of the fp32 vector ``flat`` (the last block may be partial)."""
    n = flat.numel()
    full = n - n % blocksize
    absmax = flat[:full].view(-1, blocksize).abs().amax(dim=1)
    if full < n:
        absmax = torch.cat([absmax, flat[full:].abs().amax().view(1)])
    return absmax


def _dequantize_blocks(values: torch.Tensor, absmax: torch.Tensor, blocksize: int,
                       inplace: bool = False) -> torch.Tensor:
    """``values · absmax`` block by block (fp32 in, fp32 out; ``inplace`` reuses ``values`` when it can)."""
    n = values.numel()
    full = n - n % blocksize
    if inplace and full == n and values.is_contiguous():
        return values.view(-1, blocksize).mul_(absmax[:, None]).view(-1)
    out = torch.empty(n, dtype=torch.float32, device=values.device)
    out[:full] = (values[:full].view(-1, blocksize) * absmax[: full // blocksize, None]).view(-1)
    if full < n:
        out[full:] = values[full:] * absmax[-1]
    return out


def _scale_4bit(flat: torch.Tensor, absmax: torch.Tensor, blocksize: int) -> torch.Tensor:
    """``x / c_b`` clamped to [−1, 1], rounded as bitsandbytes' CPU kernel rounds it.

    Full blocks are multiplied by the reciprocal ``1/max(c_b, 1e-38)`` (an all-zero block keeps ``c_b = 0``
    and codes to 0); a trailing partial block is divided by ``max(c_b, 1e-38)`` — and *stores* that
    clamped value as its constant. Multiplying and dividing round differently in the last bit, which can
    change a code, so both are reproduced.
    """
    n = flat.numel()
    full = n - n % blocksize
    recip = 1.0 / absmax[: full // blocksize].clamp(min=1e-38)
    scaled = torch.clamp(flat[:full].view(-1, blocksize) * recip[:, None], -1, 1).view(-1)
    if full < n:
        absmax[-1] = absmax[-1].clamp(min=1e-38)
        scaled = torch.cat([scaled, torch.clamp(flat[full:] / absmax[-1], -1, 1)])
    return scaled


def _nearest_code(scaled: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Index of the nearest entry of ``code`` (nibble order), ties to the lower *value*: midpoint bucketize.

    FP4 has +0 and −0; which of the two a 0 gets is decided by ``argsort``'s order, as in bitsandbytes.
    """
    order = torch.argsort(code)
    ordered = code[order]
    bounds = (ordered[:-1] + ordered[1:]) / 2
    q = torch.bucketize(scaled, bounds, out_int32=True)
    sorted_already = bool(torch.equal(order, torch.arange(code.numel(), device=code.device)))
    return q if sorted_already else order.to(torch.int32)[q]


def _pack(q: torch.Tensor) -> torch.Tensor:
    q = q.to(torch.uint8)
    return ((q[0::2] << 4) | q[1::2]).unsqueeze(1)


def _decode(packed: torch.Tensor, code: torch.Tensor, n: int) -> torch.Tensor:
    """``code[q]`` for the ``n`` packed nibbles, fp32: one look-up per *byte* in a 256-entry table of
    (high, low) value pairs (read as one 64-bit word each), instead of two per value."""
    code = code.to(device=packed.device, dtype=torch.float32)
    pairs = torch.stack([code.repeat_interleave(16), code.repeat(16)], dim=1).contiguous()  # byte → (hi, lo)
    words = torch.index_select(pairs.view(torch.int64).view(-1), 0, packed.reshape(-1).to(torch.int32))
    return words.view(torch.float32)[:n]


# ---------------------------------------------------------------------- 4-bit
def quantize_4bit(w: torch.Tensor, blocksize: int = BLOCKSIZE, quant_type: str = QUANT_TYPE,
                  double_quant: bool = False) -> tuple[torch.Tensor, QuantState]:
    """Quantize ``w`` blockwise to 4 bits; returns ``(packed, state)``.

    ``packed``: uint8 ``(⌈n/2⌉, 1)`` in bitsandbytes' layout (first element in the high nibble).
    ``blocksize``: a power of two ≥ 2 (bitsandbytes accepts 32 … 4096). ``quant_type``: "nf4", "fp4" or
    "int4". ``double_quant``: quantize the block constants to 8 bits as well (QLoRA's double quantization).
    Raises ``TypeError``/``ValueError`` naming the argument, before anything is computed, for a non-floating
    or non-finite ``w``, an unknown ``quant_type`` or a bad ``blocksize``.
    """
    _check_weight(w)
    _check_quant_type(quant_type)
    _check_blocksize(blocksize)
    argcheck.flag("double_quant", double_quant)
    flat = w.detach().reshape(-1).float()
    code = code_book(quant_type).to(w.device)
    absmax = _block_absmax(flat, blocksize)
    scaled = _scale_4bit(flat, absmax, blocksize)
    if scaled.numel() % 2:
        scaled = torch.cat([scaled, scaled.new_zeros(1)])  # pad with the value 0.0, not the code 0
    used = code[:15] if quant_type == "int4" else code  # int4's nibble 15 is not a level
    packed = _pack(_nearest_code(scaled, used))
    state = QuantState(absmax=absmax, shape=w.shape, dtype=w.dtype, blocksize=blocksize, quant_type=quant_type,
                       code=code)
    if double_quant:
        offset = absmax.mean()
        qabsmax, absmax2 = _quantize_dynamic(absmax - offset, DOUBLE_QUANT_BLOCKSIZE)
        state.absmax, state.offset, state.absmax2 = qabsmax, offset, absmax2
        state.code2 = _dynamic().to(w.device)
    return packed, state


def dequantize_4bit(packed: torch.Tensor, state: QuantState) -> torch.Tensor:
    """``Ŵ = code[q] · c_b`` in fp32, cast to ``state.dtype`` and reshaped to ``state.shape``."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise TypeError(f"packed must be a uint8 tensor, got {getattr(packed, 'dtype', type(packed).__name__)}")
    if not isinstance(state, QuantState):
        raise TypeError(f"state must be a QuantState, got {type(state).__name__}")
    n = state.numel
    if packed.numel() != (n + 1) // 2:
        raise ValueError(f"packed has {packed.numel()} bytes; a {tuple(state.shape)} weight needs {(n + 1) // 2}")
    values = _decode(packed, state.code, n)
    out = _dequantize_blocks(values, state.block_absmax(), state.blocksize, inplace=True)
    return out.to(state.dtype).view(state.shape)


# ---------------------------------------------------------------------- 8-bit dynamic (double quantization)
def _quantize_dynamic(x: torch.Tensor, blocksize: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise absmax quantization of fp32 ``x`` onto the 8-bit dynamic map: nearest code, ties to the lower.

    Per block (as bitsandbytes' CPU source describes it): ``t = x / c`` (a division), ``k`` = the last code
    ≤ t, then ``k + 1`` if ``|t − D[k+1]|`` is strictly smaller than ``|t − D[k]|`` (both in fp32); the search
    runs with ``D[0]`` set to −1 (the map's lowest code is −0.99297 and ``t`` can be −1).
    """
    code = _dynamic().to(x.device).clone()
    code[0] = -1.0
    absmax = _block_absmax(x, blocksize)
    n = x.numel()
    full = n - n % blocksize
    scaled = torch.empty_like(x)
    scaled[:full] = (x[:full].view(-1, blocksize) / absmax[: full // blocksize, None]).view(-1)
    if full < n:
        scaled[full:] = x[full:] / absmax[-1]
    left = (torch.searchsorted(code, scaled, right=True) - 1).clamp(0, code.numel() - 1)
    right = (left + 1).clamp(max=code.numel() - 1)
    step = (scaled - code[right]).abs() < (scaled - code[left]).abs()
    q = torch.where(step & (left < code.numel() - 1), right, left)
    return q.to(torch.uint8), absmax


# ---------------------------------------------------------------------- uniform k-bit
def quantize_absmax(w: torch.Tensor, bits: int = 4, blocksize: int = BLOCKSIZE) -> tuple[torch.Tensor, QuantState]:
    """Symmetric uniform blockwise absmax quantization to ``bits`` ∈ {2, …, 8}; returns ``(q, state)``.

    ``L = 2^{bits−1} − 1`` levels each side of 0: ``q = round(W/c_b · L)`` as int8 in ``[−L, L]`` (one per
    value, same shape as ``w``; not packed), ``Ŵ = q/L · c_b``. ``bits=4`` is plain INT4, ``bits=8`` INT8.
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits={bits!r} is not supported: expected an int from 2 to 8")
    _check_weight(w)
    _check_blocksize(blocksize)
    levels = 2 ** (bits - 1) - 1
    flat = w.detach().reshape(-1).float()
    absmax = _block_absmax(flat, blocksize)
    scaled = _dequantize_blocks(flat, 1.0 / absmax.clamp(min=1e-38), blocksize)
    q = torch.round(scaled.clamp(-1, 1) * levels).to(torch.int8).view(w.shape)
    code = torch.arange(-levels, levels + 1, dtype=torch.float32, device=w.device) / levels
    return q, QuantState(absmax=absmax, shape=w.shape, dtype=w.dtype, blocksize=blocksize,
                         quant_type=f"int{bits}", code=code)


def dequantize_absmax(q: torch.Tensor, state: QuantState) -> torch.Tensor:
    """Inverse of :func:`quantize_absmax`: ``q/L · c_b`` in ``state.dtype``."""
    levels = (state.code.numel() - 1) // 2
    values = q.reshape(-1).float() / levels
    return _dequantize_blocks(values, state.absmax, state.blocksize).to(state.dtype).view(state.shape)
