r"""Training-memory estimate for full fine-tuning, LoRA and QLoRA, from a Hugging Face config.

    total = weights + gradients + optimizer states + activations        (bytes; no allocator slack, no CUDA context)

For a decoder of ``L`` layers (hidden ``h``, MLP width ``i``, ``a`` heads, ``kv`` key/value width, vocabulary
``V``; Llama/Qwen/Mistral-style: q, k, v, o, gate, up, down, two RMSNorms per layer):

* **weights** — every parameter in the weight dtype (bf16: 2 bytes). QLoRA stores the targeted linear weights
  as :func:`peftlab.quant.quantize_4bit` does: ``⌈n/2⌉`` bytes of codes plus the block constants (4 bytes per
  64 weights, or with double quantization 1 byte per 64 + 4 per 64·256 + 4), i.e. 4.5 or ≈ 4.127 bits/param;
  adapters (``r·(in + out)`` per targeted layer) are fp32 (peft's default).
* **gradients** — one per trainable parameter, in its dtype (full FT: the weight dtype; adapters: fp32).
* **optimizer** — AdamW: two fp32 moments per trainable parameter plus a 4-byte step count per tensor.
* **activations** — what autograd keeps for the backward, per token (``b·s`` tokens), counted from the tensors
  a Llama block saves (transformers' eager block with torch SDPA, whose CPU and CUDA flash kernels keep a
  log-sum-exp per head instead of the ``s×s`` score matrix), in the compute dtype:

      full FT:         L·(10h + 4i + a) + 3h + V
      LoRA / QLoRA:    L·(8h + 4i + a + n_t·r) + V        (n_t adapted linears per layer; the frozen base
                                                             saves no input for a weight gradient)
      + checkpointing: L·h + … instead (each layer keeps only its input and recomputes the rest)

  ``V`` (the log-softmax of the logits for the loss) is counted in fp32. The coefficients are checked against
  the bytes autograd actually saves on tiny Llama models (``tests/analysis/test_memory.py``); at 7B scale they are an
  extrapolation of the same count (no fused cross-entropy, no activation offloading, no paged optimizer).

What the estimate is for: comparing the three methods and the effect of each choice (dtype, double
quantization, checkpointing, rank, batch × sequence) — the lecture's "65B on one 48 GB GPU" arithmetic —
not predicting a framework's peak to the megabyte.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peftlab.core import argcheck
from peftlab.core.targets import LLAMA_LINEARS
from peftlab.methods.qlora import QLoRAConfig
from peftlab.quant import nf4_nbytes

__all__ = [
    "GPUS",
    "LLAMA_PRESETS",
    "MemoryEstimate",
    "ModelShape",
    "estimate_training_memory",
    "format_estimates",
    "memory_table",
    "model_shape",
    "quantized_weight_bytes",
]

GiB = 2**30
#: memory of common training GPUs in bytes, as nvidia-smi reports it (a GPU's "GB" are GiB; the T4's 16 GB
#: shows as 15360 MiB). No room is left for the CUDA context (~0.5 GiB) or allocator fragmentation.
GPUS = {"T4 16 GB": 15360 * 2**20, "A100 40 GB": 40960 * 2**20, "A100/H100 80 GB": 81920 * 2**20}
DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2}
#: QLoRA's quantization defaults (blocksize, double quantization), read from its config
_QLORA = QLoRAConfig()

#: LLaMA-1 shapes (Touvron et al., 2023), the models of the QLoRA paper
LLAMA_PRESETS = {
    "7B": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, vocab_size=32000),
    "13B": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                vocab_size=32000),
    "33B": dict(hidden_size=6656, intermediate_size=17920, num_hidden_layers=60, num_attention_heads=52,
                vocab_size=32000),
    "65B": dict(hidden_size=8192, intermediate_size=22016, num_hidden_layers=80, num_attention_heads=64,
                vocab_size=32000),
}


@dataclass(frozen=True)
class ModelShape:
    """The numbers of a decoder config the estimate needs."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_width: int
    vocab: int
    tied: bool = False
    attention_bias: bool = False
    head_dim: int = 0

    @property
    def buffer_bytes(self) -> int:
        """transformers' rotary buffers: ``inv_freq`` and ``original_inv_freq``, head_dim/2 fp32 values each."""
        return 2 * (self.head_dim // 2) * 4

    def linears(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each linear layer of one block, by peft/transformers name."""
        h, i, kv = self.hidden, self.intermediate, self.kv_width
        return {"q_proj": (h, h), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (h, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def parameter_count(self) -> int:
        per_layer = sum(a * b for a, b in self.linears().values()) + 2 * self.hidden
        if self.attention_bias:
            per_layer += self.hidden + 2 * self.kv_width
        heads = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * per_layer + self.hidden + heads


def model_shape(config) -> ModelShape:
    """A :class:`ModelShape` from a transformers config, a dict, a ``config.json`` path/folder or a preset
    name ("7B", "13B", "33B", "65B")."""
    if isinstance(config, str) and config.upper() in LLAMA_PRESETS:
        config = LLAMA_PRESETS[config.upper()]
    elif isinstance(config, (str, Path)):
        path = Path(config)
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise ValueError(f"config={str(config)!r} is neither a preset {sorted(LLAMA_PRESETS)} nor a config.json")
        config = json.loads(path.read_text())
    get = (lambda k, d=None: config.get(k, d)) if isinstance(config, dict) else (lambda k, d=None: getattr(config, k, d))
    missing = [k for k in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                           "vocab_size") if get(k) is None]
    if missing:
        raise ValueError(f"config lacks {missing}: the estimate covers Llama-style decoders")
    h, heads = int(get("hidden_size")), int(get("num_attention_heads"))
    head_dim = int(get("head_dim") or h // heads)
    kv_heads = int(get("num_key_value_heads") or heads)
    return ModelShape(hidden=h, intermediate=int(get("intermediate_size")), layers=int(get("num_hidden_layers")),
                      heads=heads, kv_width=kv_heads * head_dim, vocab=int(get("vocab_size")),
                      tied=bool(get("tie_word_embeddings", False)), attention_bias=bool(get("attention_bias", False)),
                      head_dim=head_dim)


def quantized_weight_bytes(numel: int, blocksize: int = _QLORA.blocksize, double_quant: bool = _QLORA.double_quant) -> int:
    """Bytes :func:`peftlab.quant.quantize_4bit` stores for ``numel`` weights (codes + constants):
    :func:`peftlab.quant.nf4_nbytes`."""
    return nf4_nbytes(numel, blocksize, double_quant)


@dataclass
class MemoryEstimate:
    """Bytes of each part of a training step's memory."""

    method: str
    weights: int
    gradients: int
    optimizer: int
    activations: int
    trainable: int
    settings: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.weights + self.gradients + self.optimizer + self.activations

    def fits(self) -> dict[str, bool]:
        return {gpu: self.total <= size for gpu, size in GPUS.items()}

    def as_dict(self) -> dict:
        return {**asdict(self), "total": self.total}


def estimate_training_memory(config, method: str = "qlora", *, batch: int = 1, seq: int = 512, r: int = 16,
                             target_modules=LLAMA_LINEARS, dtype: str = "bf16", gradient_checkpointing: bool = False,
                             blocksize: int = _QLORA.blocksize, double_quant: bool = _QLORA.double_quant) -> MemoryEstimate:
    """Estimate one training step's memory (see the module docstring for what is counted and how).

    ``method``: "full", "lora" or "qlora". ``dtype``: the weights' and activations' dtype ("bf16", "fp16",
    "fp32"; QLoRA's compute dtype). ``target_modules``: the adapted linears of each block.
    """
    if method not in ("full", "lora", "qlora"):
        raise ValueError(f"method={method!r} is not supported: expected 'full', 'lora' or 'qlora'")
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype={dtype!r} is not supported: expected one of {sorted(DTYPE_BYTES)}")
    for name, value in (("batch", batch), ("seq", seq), ("r", r), ("blocksize", blocksize)):
        argcheck.positive_int(name, value)
    shape = model_shape(config)
    linears = shape.linears()
    targets = [t for t in target_modules if t in linears]
    if method != "full" and not targets:
        raise ValueError(f"target_modules={list(target_modules)!r} names none of {sorted(linears)}")
    wb = DTYPE_BYTES[dtype]
    total_params = shape.parameter_count()
    adapter = shape.layers * sum(r * sum(linears[t]) for t in targets) if method != "full" else 0
    if method == "full":
        weights, trainable = total_params * wb, total_params
        tensors = shape.layers * (len(linears) + 2 + (3 if shape.attention_bias else 0)) + 1 + (1 if shape.tied else 2)
        grads = trainable * wb
    else:
        quantized = shape.layers * sum(a * b for t, (a, b) in linears.items() if t in targets)
        if method == "qlora":
            per_layer = sum(quantized_weight_bytes(a * b, blocksize, double_quant)
                            for t, (a, b) in linears.items() if t in targets)
            base = (total_params - quantized) * wb + shape.layers * per_layer
            base += 4 * (16 + (256 if double_quant else 0))  # the two code books, shared by every layer
        else:
            base = total_params * wb
        weights, trainable = base + 4 * adapter, adapter
        tensors = 2 * shape.layers * len(targets)
        grads = 4 * adapter
    weights += shape.buffer_bytes
    optimizer = 8 * trainable + 4 * tensors
    h, i, a, V, L = shape.hidden, shape.intermediate, shape.heads, shape.vocab, shape.layers
    tokens = batch * seq
    if gradient_checkpointing:
        per_token = L * h * wb
    elif method == "full":
        per_token = L * (10 * h + 4 * i + a) * wb
    else:
        per_token = L * (8 * h + 4 * i + a + len(targets) * r) * wb
    head = (3 * h * wb if method == "full" else 0) + 4 * V
    if gradient_checkpointing and method != "full":
        head += h * wb
    activations = tokens * (per_token + head)
    settings = {"batch": batch, "seq": seq, "r": r, "dtype": dtype, "gradient_checkpointing": gradient_checkpointing,
                "targets": targets, "blocksize": blocksize, "double_quant": double_quant,
                "parameters": total_params}
    return MemoryEstimate(method, int(weights), int(grads), int(optimizer), int(activations), int(trainable),
                          settings)


def memory_table(models=("7B", "13B", "65B"), methods=("full", "lora", "qlora"), **kwargs) -> list[MemoryEstimate]:
    """Estimates for each preset model and method (keyword arguments as :func:`estimate_training_memory`)."""
    return [estimate_training_memory(m, method, **kwargs) for m in models for method in methods]


def format_estimates(estimates, names=None) -> str:
    """A plain-text table in GiB with a fits-on verdict per GPU."""
    gpus = list(GPUS)
    head = (f"{'model':<8} {'method':<6} {'weights':>8} {'grads':>8} {'optim':>8} {'activ':>8} {'total':>8}  "
            + "  ".join(f"{g:>15}" for g in gpus))
    lines = [head + "   (GiB)", "-" * len(head)]
    for k, e in enumerate(estimates):
        name = names[k] if names else f"{e.settings['parameters'] / 1e9:.1f}B"
        parts = [e.weights, e.gradients, e.optimizer, e.activations, e.total]
        fits = e.fits()
        lines.append(f"{name:<8} {e.method:<6} " + " ".join(f"{p / GiB:8.2f}" for p in parts) + "  "
                     + "  ".join(f"{'fits' if fits[g] else 'no':>15}" for g in gpus))
    return "\n".join(lines)
