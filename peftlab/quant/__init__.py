"""4-bit codes and low-bit storage, as bitsandbytes and the QLoRA paper define them.

* :mod:`peftlab.quant.codes` — the NF4 / FP4 / INT4 code books, blockwise absmax quantization with double
  quantization of the constants (``quantize_4bit`` / ``dequantize_4bit``, bit for bit bitsandbytes'), the k-bit
  absmax integers (``quantize_absmax``), and the one closed form of the bytes NF4 stores (``nf4_nbytes``);
* :mod:`peftlab.quant.lowbit` — a weight stored at 2, 3, 4, 8 or 16 bits (QR-Adaptor's per-layer choices): the
  tensors, the round trip and their bytes.

``QuantLinear`` (a Linear layer over a 4-bit weight) lives with QLoRA in :mod:`peftlab.methods.qlora`.
"""

from peftlab.quant.codes import (
    BLOCKSIZE,
    DOUBLE_QUANT_BLOCKSIZE,
    NF4_OFFSET,
    QUANT_TYPE,
    QUANT_TYPES,
    QuantState,
    bits_per_param,
    code_book,
    dequantize_4bit,
    dequantize_absmax,
    dynamic_map,
    nf4_code,
    nf4_nbytes,
    quantize_4bit,
    quantize_absmax,
    quantized_nbytes,
)
from peftlab.quant.lowbit import (
    SUPPORTED_BITS,
    dequantize_weight,
    pack_bits,
    quantize_weight,
    roundtrip,
    stored_nbytes,
    unpack_bits,
    weight_nbytes,
)

__all__ = [
    "BLOCKSIZE",
    "DOUBLE_QUANT_BLOCKSIZE",
    "NF4_OFFSET",
    "QUANT_TYPE",
    "QUANT_TYPES",
    "SUPPORTED_BITS",
    "QuantState",
    "bits_per_param",
    "code_book",
    "dequantize_4bit",
    "dequantize_absmax",
    "dequantize_weight",
    "dynamic_map",
    "nf4_code",
    "nf4_nbytes",
    "pack_bits",
    "quantize_4bit",
    "quantize_absmax",
    "quantize_weight",
    "quantized_nbytes",
    "roundtrip",
    "stored_nbytes",
    "unpack_bits",
    "weight_nbytes",
]
