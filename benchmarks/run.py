"""peftlab layers vs Hugging Face peft layers: forward + backward, side by side in one run.

    python benchmarks/run.py            # or: make bench
    python benchmarks/run.py --quick    # a few repeats, for a smoke test

Each row builds the same base (same weights) twice — once wrapped by peftlab, once by peft, with the
adapter weights copied across — and times one training step (forward, loss, backward) of each,
alternating the two so that machine noise hits both alike. Printed: median seconds of each, the
median of the per-pair ratios peftlab/peft (goal ≤ 1.10), and the activation memory autograd keeps
for the backward pass (CPU: bytes of saved tensors; CUDA: peak allocated memory).
Later weeks add their method as another row in ROWS.
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
from peft import LoraConfig, get_peft_model
from torch import nn

import peftlab


@dataclass
class Row:
    name: str
    build: Callable[[torch.device], tuple[nn.Module, nn.Module, Callable[[], tuple]]]


def _copy_lora(theirs: nn.Module, ours: nn.Module) -> None:
    with torch.no_grad():
        for name, param in theirs.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    peftlab.copy_from_peft(theirs, ours)


def _lora_pair(base: nn.Module, targets, r: int, alpha: int):
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets))
    ours = peftlab.apply_lora(copy.deepcopy(base), r=r, alpha=alpha, target_modules=targets)
    _copy_lora(theirs, ours)
    return ours, theirs


def lora_4096(device):
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(4096, 4096)).to(device)
    ours, theirs = _lora_pair(base, ["0"], r=16, alpha=32)
    x = torch.randn(4, 128, 4096, device=device)
    return ours, theirs, lambda: (x,)


def lora_tiny_encoder(device):
    from peftlab.models import load_encoder_classifier

    base = load_encoder_classifier(num_labels=2).to(device)
    targets = ["query", "key", "value", "dense"]
    ours, theirs = _lora_pair(base, targets, r=8, alpha=16)
    ids = torch.randint(5, base.config.vocab_size, (32, 48), generator=torch.Generator().manual_seed(0)).to(device)
    return ours, theirs, lambda: (ids,)


ROWS = [
    Row("LoRA r=16, Linear 4096×4096, x: 4×128 tokens", lora_4096),
    Row("LoRA r=8, tiny encoder q/k/v/dense, 32×48 tokens", lora_tiny_encoder),
]


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
    ours, theirs, make_args = row.build(device)
    ours.train(), theirs.train()
    args = make_args()
    with torch.no_grad():
        diff = (_output(ours.eval(), args) - _output(theirs.eval(), args)).abs().max().item()
    ours.train(), theirs.train()
    for _ in range(warmup):
        _step(ours, args), _step(theirs, args)
    t_ours, t_theirs, ratios = [], [], []
    for i in range(repeats):
        pair = [(ours, t_ours), (theirs, t_theirs)]
        for model, store in (pair if i % 2 == 0 else pair[::-1]):
            store.append(_timed(model, args, device))
        ratios.append(t_ours[-1] / t_theirs[-1])
    return {
        "row": row.name,
        "peftlab_s": statistics.median(t_ours),
        "peft_s": statistics.median(t_theirs),
        "ratio": statistics.median(ratios),
        "mem_ours": _activation_bytes(ours, args, device),
        "mem_theirs": _activation_bytes(theirs, args, device),
        "max_abs_diff": diff,
    }


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
    print(f"{'row':<52} {'peftlab':>9} {'peft':>9} {'ratio':>6} {'act. MiB ours/peft':>19} {'max|Δy|':>8}")
    worst = 0.0
    for row in ROWS:
        if args.rows and args.rows not in row.name:
            continue
        r = bench(row, device, repeats, warmup)
        worst = max(worst, r["ratio"])
        mem = f"{r['mem_ours'] / 2**20:.1f}/{r['mem_theirs'] / 2**20:.1f}"
        print(f"{r['row']:<52} {r['peftlab_s'] * 1e3:7.2f}ms {r['peft_s'] * 1e3:7.2f}ms {r['ratio']:6.3f} {mem:>19} {r['max_abs_diff']:8.1e}")
    print(f"worst median ratio peftlab/peft: {worst:.3f} (goal ≤ 1.10)")
    return 0


if __name__ == "__main__":
    import peftlab.device  # noqa: F401

    sys.exit(main())
