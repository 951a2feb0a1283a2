"""peftlab layers vs Hugging Face peft layers: forward + backward, side by side in one run.

    python benchmarks/run.py            # or: make bench
    python benchmarks/run.py --quick    # a few repeats, for a smoke test

Each row builds the same base (same weights) twice — once wrapped by peftlab, once by peft, with the
adapter weights copied across — and times one training step (forward, loss, backward) of each,
taking turns so that machine noise hits both alike. Rows marked ``fast=True`` also time a copy of peftlab's
model with the speed-tuned layers (``peftlab.methods.fast.use_fast``: WaveFT, DoRA, VB-LoRA) in the same
turns. Printed: median seconds of each, the median of the per-round ratios to peft — the reference layers'
(goal ≤ 1.50: they compute the paper's formula as written) and the fast layers' (goal ≤ 1.10; DoRA's ≤ 1.00:
the fast layer takes the row norm without forming W0 + sBA, peft pushes an identity matrix through A and B
and forms it; WaveFT's ≤ 0.50 on a single layer) — and the activation memory autograd keeps for the backward
pass (CPU: bytes of saved tensors; CUDA: peak allocated memory). A new method adds a row to ROWS.

COST_ROWS then compare two methods of one library side by side in the same way: DoRA against LoRA on the
same base and targets (the lecture's checkpoint 3), for peftlab and for peft; there the ratio is DoRA/LoRA.

QLoRA: the ROWS entry times a training step of peftlab's QuantLinear + LoRA against peft's LoRA over
bitsandbytes' Linear4bit holding the same packed bytes (train mode throughout: on CPUs with AVX512-BF16,
bitsandbytes repacks a 4-bit weight the first time it runs in eval mode without grad, and computes differently
from then on). QUANT_ROWS time peftlab.quant against bitsandbytes.functional on the same weight (ratio
peftlab/bitsandbytes), and QLORA_COST_ROWS the cost of the 4-bit base: QLoRA/LoRA step time of one library.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from peft import LoraConfig, VBLoRAConfig, WaveFTConfig, get_peft_model
from torch import nn

import peftlab
import peftlab.device
from peftlab.methods.fast import use_fast


@dataclass
class Row:
    name: str
    build: Callable[[torch.device], tuple[nn.Module, nn.Module, Callable[[], tuple]]]
    eval_diff: bool = True  # compare outputs in eval mode (False: train mode, no grad; see QLoRA above)
    fast: bool = False  # also time peftlab's speed-tuned layers (peftlab.methods.fast.use_fast) in the same run


def _copy_lora(theirs: nn.Module, ours: nn.Module) -> None:
    with torch.no_grad():
        for name, param in theirs.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
            elif "lora_magnitude_vector" in name:
                param.mul_(torch.empty_like(param).uniform_(0.5, 1.5))
    peftlab.copy_from_peft(theirs, ours)


def _lora_pair(base: nn.Module, targets, r: int, alpha: int, dora: bool = False):
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                            use_dora=dora))
    apply = peftlab.apply_dora if dora else peftlab.apply_lora
    ours = apply(copy.deepcopy(base), r=r, alpha=alpha, target_modules=targets)
    _copy_lora(theirs, ours)
    return ours, theirs


def _linear_4096(device):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4096, 4096)).to(device)
    x = torch.randn(4, 128, 4096, device=device)
    return base, x


def _tiny_encoder(device):
    from peftlab.models import load_encoder_classifier

    base = load_encoder_classifier(num_labels=2).to(device)
    ids = torch.randint(5, base.config.vocab_size, (32, 48), generator=torch.Generator().manual_seed(0)).to(device)
    return base, ids


ENCODER_TARGETS = ["query", "key", "value", "dense"]


def lora_4096(device):
    base, x = _linear_4096(device)
    ours, theirs = _lora_pair(base, ["0"], r=16, alpha=32)
    return ours, theirs, lambda: (x,)


def lora_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _lora_pair(base, ENCODER_TARGETS, r=8, alpha=16)
    return ours, theirs, lambda: (ids,)


def dora_4096(device):
    base, x = _linear_4096(device)
    ours, theirs = _lora_pair(base, ["0"], r=16, alpha=32, dora=True)
    return ours, theirs, lambda: (x,)


def dora_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _lora_pair(base, ENCODER_TARGETS, r=8, alpha=16, dora=True)
    return ours, theirs, lambda: (ids,)


def _waveft_pair(base: nn.Module, targets, n_frequency: int, family: str):
    """peft's WaveFT (ΔW by a 4-channel conv_transpose2d over the padded grid at every forward) and peftlab's
    reference (ΔW = s·R_H Q R_Wᵀ, two products with the banded synthesis matrices, sparse on the CPU; its fast twin takes ΔW from
    their n·L² non-zero terms, folded into one product with W0)."""
    theirs = get_peft_model(copy.deepcopy(base), WaveFTConfig(n_frequency=n_frequency, wavelet_family=family,
                                                              target_modules=targets))
    with torch.no_grad():
        for name, param in theirs.named_parameters():
            if "waveft_spectrum" in name:
                param.normal_(std=0.01)
    ours = peftlab.apply_waveft(copy.deepcopy(base), n_frequency=n_frequency, wavelet_family=family,
                                target_modules=targets)
    peftlab.copy_from_peft(theirs, ours)
    return ours, theirs


def _linear_384x1536(device):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(1536, 384)).to(device)  # W0: 384×1536 (out×in)
    x = torch.randn(4, 128, 1536, device=device)
    return base, x


def waveft_tiny_encoder(device, family="db1"):
    base, ids = _tiny_encoder(device)
    ours, theirs = _waveft_pair(base, ENCODER_TARGETS, n_frequency=2048, family=family)
    return ours, theirs, lambda: (ids,)


def waveft_256x128(device):
    """One layer at the tiny encoder's FFN shape (intermediate.dense: 256×128), its 32×48 tokens."""
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(128, 256)).to(device)
    x = torch.randn(32, 48, 128, device=device)
    ours, theirs = _waveft_pair(base, ["0"], n_frequency=2048, family="db1")
    return ours, theirs, lambda: (x,)


def waveft_384x1536(device, family="db1"):
    base, x = _linear_384x1536(device)
    ours, theirs = _waveft_pair(base, ["0"], n_frequency=2592, family=family)
    return ours, theirs, lambda: (x,)


def _vblora_pair(base: nn.Module, targets, r: int, num_vectors: int, vector_length: int, topk: int = 2):
    """peft's VB-LoRA (top-k, softmax and gather once for A and once for B, per layer) and peftlab's (one
    top-k, softmax and gather for A's and B's logits together), with the same bank and logits."""
    theirs = get_peft_model(copy.deepcopy(base), VBLoRAConfig(r=r, num_vectors=num_vectors, topk=topk,
                                                              vector_length=vector_length, target_modules=targets))
    ours = peftlab.apply_vblora(copy.deepcopy(base), r=r, num_vectors=num_vectors, vector_length=vector_length,
                                topk=topk, target_modules=targets)
    peftlab.copy_from_peft(theirs, ours)
    return ours, theirs


def vblora_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _vblora_pair(base, ENCODER_TARGETS, r=4, num_vectors=256, vector_length=64)
    return ours, theirs, lambda: (ids,)


def vblora_4096(device):
    base, x = _linear_4096(device)
    ours, theirs = _vblora_pair(base, ["0"], r=4, num_vectors=256, vector_length=256)
    return ours, theirs, lambda: (x,)


def _bnb_linear4bit(linear: nn.Linear, device, quant_type="nf4", double_quant=True) -> nn.Module:
    import bitsandbytes as bnb

    q = bnb.nn.Linear4bit(linear.in_features, linear.out_features, bias=linear.bias is not None,
                          compute_dtype=torch.float32, compress_statistics=double_quant, quant_type=quant_type)
    q.weight = bnb.nn.Params4bit(data=linear.weight.detach().cpu().clone(), requires_grad=False,
                                 quant_type=quant_type, compress_statistics=double_quant, blocksize=64)
    if linear.bias is not None:
        q.bias = nn.Parameter(linear.bias.detach().cpu().clone(), requires_grad=False)
    return q.to(device)  # quantizes


def _qlora_pair(base: nn.Sequential, device, r: int, alpha: int):
    """peft's LoRA over bitsandbytes' Linear4bit vs peftlab's QLoRA, same packed bytes, same adapter values."""
    from peftlab.methods.qlora import QuantLinear

    quantized = nn.Sequential(*[_bnb_linear4bit(m, device) if isinstance(m, nn.Linear) else m for m in base])
    quantized.is_loaded_in_4bit = True  # what peft reads to dispatch its lora.bnb.Linear4bit
    theirs = get_peft_model(quantized, LoraConfig(r=r, lora_alpha=alpha, target_modules=["0"]))
    ours = peftlab.apply_qlora(copy.deepcopy(base), r=r, alpha=alpha, target_modules=["0"])
    layer, peft_layer = ours[0], theirs.base_model.model[0]
    layer.base_layer = QuantLinear.from_bnb(peft_layer.base_layer)
    with torch.no_grad():
        peft_layer.lora_B["default"].weight.normal_(std=0.02)
        layer.lora_A["default"].copy_(peft_layer.lora_A["default"].weight)
        layer.lora_B["default"].copy_(peft_layer.lora_B["default"].weight)
    return ours, theirs


def qlora_4096(device):
    base, x = _linear_4096(device)
    ours, theirs = _qlora_pair(base, device, r=16, alpha=32)
    return ours, theirs, lambda: (x,)


def _ia3_pair(base: nn.Module, targets, feedforward):
    from peft import IA3Config

    theirs = get_peft_model(copy.deepcopy(base), IA3Config(target_modules=targets, feedforward_modules=feedforward))
    ours = peftlab.apply_ia3(copy.deepcopy(base), target_modules=targets, feedforward_modules=feedforward)
    with torch.no_grad():
        for p in theirs.parameters():
            if p.requires_grad:
                p.add_(0.1)
    peftlab.copy_from_peft(theirs, ours)
    return ours, theirs


def ia3_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _ia3_pair(base, ["key", "value", "output.dense"], ["output.dense"])
    return ours, theirs, lambda: (ids,)


def ia3_4096(device):
    base, x = _linear_4096(device)
    ours, theirs = _ia3_pair(base, ["0"], ["0"])
    return ours, theirs, lambda: (x,)


def _prompt_pair(base: nn.Module, prefix: bool, tokens: int):
    from peft import PrefixTuningConfig, PromptTuningConfig

    if prefix:
        theirs = get_peft_model(copy.deepcopy(base), PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=tokens))
        ours = peftlab.apply_prefix_tuning(copy.deepcopy(base), num_virtual_tokens=tokens, modules_to_save=["classifier"])
        ours.prefix_encoder.load_state_dict(theirs.prompt_encoder["default"].state_dict())
    else:
        theirs = get_peft_model(copy.deepcopy(base), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=tokens))
        ours = peftlab.apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=tokens,
                                           modules_to_save=["classifier"])
        with torch.no_grad():
            ours.prompt_embeddings.copy_(theirs.prompt_encoder["default"].embedding.weight)
    return ours, theirs


def prompt_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _prompt_pair(base, prefix=False, tokens=20)
    return ours, theirs, lambda: (ids,)


def prefix_tiny_encoder(device):
    base, ids = _tiny_encoder(device)
    ours, theirs = _prompt_pair(base, prefix=True, tokens=20)
    return ours, theirs, lambda: (ids,)


ROWS = [
    Row("LoRA r=16, Linear 4096×4096, x: 4×128 tokens", lora_4096),
    Row("LoRA r=8, tiny encoder q/k/v/dense, 32×48 tokens", lora_tiny_encoder),
    Row("DoRA r=16, Linear 4096×4096, x: 4×128 tokens", dora_4096, fast=True),
    Row("DoRA r=8, tiny encoder q/k/v/dense, 32×48 tokens", dora_tiny_encoder, fast=True),
    # WaveFT's goal is ≤ 0.50: peft rebuilds ΔW by a convolutional inverse DWT on every forward and adds
    # x ΔWᵀ as a second product (3 matmuls per training step and the convolution); peftlab scatters ΔW's
    # non-zero terms and runs one product with W0 + ΔW (2 matmuls: forward and ΔW's gradient). The
    # whole-model row also carries the encoder's own cost (attention, dropout, layer norms), the same in both.
    # That shared cost alone puts 0.50 out of reach on the tiny-encoder row: the same base with no Linear weight
    # gradient at all (only the word embeddings trainable, so the backward still runs through the encoder) took
    # 0.57 of peft's WaveFT step, and with the targets' weights trainable (full FT of them) 0.63–0.66 (2-core CPU).
    Row("WaveFT n=2048 db1, tiny encoder q/k/v/dense, 32×48", waveft_tiny_encoder, fast=True),
    Row("WaveFT n=2048 db1, Linear 256×128, x: 32×48 tokens", waveft_256x128, fast=True),
    Row("WaveFT n=2592 db1, Linear 384×1536, x: 4×128 tokens", waveft_384x1536, fast=True),
    Row("WaveFT n=2592 sym4, Linear 384×1536, x: 4×128 tokens", lambda d: waveft_384x1536(d, "sym4"), fast=True),
    Row("QLoRA r=16 NF4+DQ, Linear 4096×4096, 4×128 tokens", qlora_4096, eval_diff=False),
    # Week 00's classic methods (goal ≤ 1.00). Prompt/prefix tuning: peftlab's wrapper against peft's
    # PeftModelForSequenceClassification, 20 virtual tokens, the classifier trained in both.
    Row("IA3 k/v/ff, tiny encoder, 32×48 tokens", ia3_tiny_encoder),
    Row("IA3 ff (input scaling), Linear 4096×4096, 4×128 tokens", ia3_4096),
    Row("Prompt tuning T=20, tiny encoder, 32×48 tokens", prompt_tiny_encoder),
    Row("Prefix tuning T=20, tiny encoder, 32×48 tokens", prefix_tiny_encoder),
    # VB-LoRA's goal is ≤ 1.00 (the same two thin products as peft; A and B assembled in one pass).
    Row("VB-LoRA r=4 N=256 b=64, tiny encoder q/k/v/dense, 32×48", vblora_tiny_encoder, fast=True),
    Row("VB-LoRA r=4 N=256 b=256, Linear 4096×4096, 4×128", vblora_4096, fast=True),
]


def _dora_vs_lora(make_base, targets, r, alpha, library):
    """DoRA against LoRA on the same base and targets, both from ``library`` ("peftlab", "peftlab fast" (DoRA's
    speed-tuned layers) or "peft")."""

    def build(device):
        base, inputs = make_base(device)
        pick = 1 if library == "peft" else 0
        dora = _lora_pair(base, targets, r=r, alpha=alpha, dora=True)[pick]
        lora = _lora_pair(base, targets, r=r, alpha=alpha)[pick]
        return use_fast(dora) if library == "peftlab fast" else dora, lora, lambda: (inputs,)

    return build


# The lecture's checkpoint 3: what DoRA costs over LoRA per training step (same run, alternating).
# "ratio" here is DoRA/LoRA step time of one library, not peftlab/peft.
COST_ROWS = [
    Row(f"DoRA/LoRA {lib}, Linear 4096×4096 r=16", _dora_vs_lora(_linear_4096, ["0"], 16, 32, lib))
    for lib in ("peftlab", "peftlab fast", "peft")
] + [
    Row(f"DoRA/LoRA {lib}, tiny encoder q/k/v/dense r=8", _dora_vs_lora(_tiny_encoder, ENCODER_TARGETS, 8, 16, lib))
    for lib in ("peftlab", "peftlab fast", "peft")
]


def _qlora_vs_lora(library):
    """QLoRA against LoRA over the fp32 base, both from ``library``: what the 4-bit base costs per step."""

    def build(device):
        base, x = _linear_4096(device)
        pick = 0 if library == "peftlab" else 1
        qlora = _qlora_pair(base, device, r=16, alpha=32)[pick]
        lora = _lora_pair(base, ["0"], r=16, alpha=32)[pick]
        return qlora, lora, lambda: (x,)

    return build


QLORA_COST_ROWS = [Row(f"QLoRA/LoRA {lib}, Linear 4096×4096 r=16", _qlora_vs_lora(lib), eval_diff=False)
                   for lib in ("peftlab", "peft")]


@dataclass
class QuantRow:
    """A pair of functions on the same input: peftlab's and bitsandbytes'; ``check`` says they agree."""

    name: str
    build: Callable[[torch.device], tuple[Callable[[], object], Callable[[], object], Callable[[], bool]]]


def _weight_4096(device):
    return torch.randn(4096, 4096, generator=torch.Generator().manual_seed(0)).mul_(0.02).to(device)


def quantize_rows() -> list[QuantRow]:
    import bitsandbytes.functional as bnbf

    from peftlab.quant import dequantize_4bit, quantize_4bit

    def quant(dq):
        def build(device):
            w = _weight_4096(device)
            ours = lambda: quantize_4bit(w, blocksize=64, quant_type="nf4", double_quant=dq)  # noqa: E731
            theirs = lambda: bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=dq)  # noqa: E731
            return ours, theirs, lambda: torch.equal(ours()[0], theirs()[0])
        return build

    def dequant(device):
        w = _weight_4096(device)
        packed, state = quantize_4bit(w, blocksize=64, quant_type="nf4")
        p, s = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4")
        ours, theirs = (lambda: dequantize_4bit(packed, state)), (lambda: bnbf.dequantize_4bit(p, s))
        return ours, theirs, lambda: torch.equal(ours(), theirs())

    return [QuantRow("quantize_4bit NF4, 4096×4096 fp32", quant(False)),
            QuantRow("quantize_4bit NF4 + double quant, 4096×4096", quant(True)),
            QuantRow("dequantize_4bit NF4, 4096×4096 → fp32", dequant)]


def bench_quant(row: QuantRow, device: torch.device, repeats: int, warmup: int) -> dict:
    ours, theirs, check = row.build(device)
    agree = check()

    def timed(fn):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(warmup):
        ours(), theirs()
    t_ours, t_theirs, ratios = [], [], []
    for i in range(repeats):
        pair = [(ours, t_ours), (theirs, t_theirs)]
        for fn, store in (pair if i % 2 == 0 else pair[::-1]):
            store.append(timed(fn))
        ratios.append(t_ours[-1] / t_theirs[-1])
    return {"row": row.name, "peftlab_s": statistics.median(t_ours), "bnb_s": statistics.median(t_theirs),
            "ratio": statistics.median(ratios), "same_bytes": agree}


def _output(model, args):
    out = model(*args)
    return out.logits if hasattr(out, "logits") else out


def _step(model, args) -> None:
    model.zero_grad(set_to_none=True)
    _output(model, args).float().pow(2).mean().backward()


def _activation_bytes(model, args, device) -> int:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _step(model, args)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = _output(model, args).float().pow(2).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return total


def _timed(model, args, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    _step(model, args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench(row: Row, device: torch.device, repeats: int, warmup: int) -> dict:
    """Time ``ours`` against ``theirs`` (and, for a ``fast`` row, peftlab's speed-tuned copy of ``ours`` too),
    taking turns in a rotating order; ratios are medians of the per-round ratios to ``theirs``."""
    ours, theirs, make_args = row.build(device)
    models = {"ours": ours, "theirs": theirs}
    if row.fast:
        models["fast"] = use_fast(copy.deepcopy(ours))
    args = make_args()
    diffs = {}
    with torch.no_grad():
        for model in models.values():
            model.train(not row.eval_diff)
        for key in models.keys() - {"theirs"}:
            diffs[key] = (_output(models[key], args) - _output(theirs, args)).abs().max().item()
    for model in models.values():
        model.train()
    for _ in range(warmup):
        for model in models.values():
            _step(model, args)
    times = {key: [] for key in models}
    ratios = {key: [] for key in models if key != "theirs"}
    keys = list(models)
    for i in range(repeats):
        for key in keys[i % len(keys):] + keys[: i % len(keys)]:
            times[key].append(_timed(models[key], args, device))
        for key in ratios:
            ratios[key].append(times[key][-1] / times["theirs"][-1])
    out = {"row": row.name, "peftlab_s": statistics.median(times["ours"]), "peft_s": statistics.median(times["theirs"]),
           "ratio": statistics.median(ratios["ours"]), "mem_ours": _activation_bytes(ours, args, device),
           "mem_theirs": _activation_bytes(theirs, args, device), "max_abs_diff": diffs["ours"]}
    if row.fast:
        out.update(fast_s=statistics.median(times["fast"]), fast_ratio=statistics.median(ratios["fast"]),
                   mem_fast=_activation_bytes(models["fast"], args, device), fast_diff=diffs["fast"])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 repeats, 1 warm-up (smoke test)")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--device", default=None, help="cpu / cuda (default: best available)")
    p.add_argument("--rows", default=None, help="substring filter on row names")
    args = p.parse_args(argv)
    device = peftlab.device.pick_device(args.device)
    repeats, warmup = (3, 1) if args.quick else (args.repeats, 3)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} repeats={repeats}")
    print("One training step (forward, loss, backward), median ms; ratios: median of the per-round ratios to peft.\n"
          "  reference: peftlab's layers as written (peftlab/methods/<method>.py), goal ≤ 1.50 × peft\n"
          "  fast:      the same model after peftlab.methods.fast.use_fast (methods with a speed-tuned twin; "
          "– where none), goal ≤ 1.10 × peft")
    width = max(len(row.name) for row in ROWS)
    print(f"{'row':<{width}} {'reference':>9} {'fast':>9} {'peft':>9} {'ref/peft':>8} {'fast/peft':>9} "
          f"{'act. MiB ref/fast/peft':>23} {'max|Δy|':>8}")
    worst = {"reference": 0.0, "fast": 0.0}
    for row in ROWS:
        if args.rows and args.rows not in row.name:
            continue
        r = bench(row, device, repeats, warmup)
        worst["reference"] = max(worst["reference"], r["ratio"])
        worst["fast"] = max(worst["fast"], r.get("fast_ratio", r["ratio"]))
        fast_mem = f"{r['mem_fast'] / 2**20:.1f}" if row.fast else "–"
        mem = f"{r['mem_ours'] / 2**20:.1f}/{fast_mem}/{r['mem_theirs'] / 2**20:.1f}"
        fast_s = f"{r['fast_s'] * 1e3:7.2f}ms" if row.fast else f"{'–':>9}"
        fast_ratio = f"{r['fast_ratio']:9.3f}" if row.fast else f"{'–':>9}"
        diff = max(r["max_abs_diff"], r.get("fast_diff", 0.0))
        print(f"{r['row']:<{width}} {r['peftlab_s'] * 1e3:7.2f}ms {fast_s} {r['peft_s'] * 1e3:7.2f}ms {r['ratio']:8.3f} "
              f"{fast_ratio} {mem:>23} {diff:8.1e}")
    print(f"worst median ratio peftlab/peft: reference {worst['reference']:.3f} (goal ≤ 1.50), "
          f"fast (the reference where a method has no twin) {worst['fast']:.3f} (goal ≤ 1.10)")
    cost = [row for row in COST_ROWS if not args.rows or args.rows in row.name]
    if cost:
        print(f"\n{'cost of DoRA over LoRA (same library)':<52} {'DoRA':>9} {'LoRA':>9} {'ratio':>6} "
              f"{'act. MiB DoRA/LoRA':>19}")
    for row in cost:
        r = bench(row, device, repeats, warmup)
        mem = f"{r['mem_ours'] / 2**20:.1f}/{r['mem_theirs'] / 2**20:.1f}"
        print(f"{r['row']:<52} {r['peftlab_s'] * 1e3:7.2f}ms {r['peft_s'] * 1e3:7.2f}ms {r['ratio']:6.3f} {mem:>19}")
    qcost = [row for row in QLORA_COST_ROWS if not args.rows or args.rows in row.name]
    if qcost:
        print(f"\n{'cost of the 4-bit base (same library)':<52} {'QLoRA':>9} {'LoRA':>9} {'ratio':>6} "
              f"{'act. MiB QLoRA/LoRA':>19}")
    for row in qcost:
        r = bench(row, device, repeats, warmup)
        mem = f"{r['mem_ours'] / 2**20:.1f}/{r['mem_theirs'] / 2**20:.1f}"
        print(f"{r['row']:<52} {r['peftlab_s'] * 1e3:7.2f}ms {r['peft_s'] * 1e3:7.2f}ms {r['ratio']:6.3f} {mem:>19}")
    quant = [row for row in quantize_rows() if not args.rows or args.rows in row.name]
    if quant:
        print(f"\n{'peftlab.quant vs bitsandbytes.functional':<52} {'peftlab':>9} {'bnb':>9} {'ratio':>6} "
              f"{'same bytes':>11}")
    for row in quant:
        r = bench_quant(row, device, repeats, warmup)
        print(f"{r['row']:<52} {r['peftlab_s'] * 1e3:7.2f}ms {r['bnb_s'] * 1e3:7.2f}ms {r['ratio']:6.3f} "
              f"{str(r['same_bytes']):>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
