"""One cell: train one method with one seed and measure it (:func:`run_cell`).

Step time, peak training memory (CUDA's allocator, or on the CPU the bytes of the live tensors of one step) and
the bytes of what ships for the task (:func:`_adapter_bytes`) are measured here.
"""

from __future__ import annotations

import time
from pathlib import Path

from peftlab.compare.config import CompareConfig
from peftlab.compare.methods import METHODS
from peftlab.compare.tasks import _task


def _tensor_bytes(model, optimizer) -> int:
    """Bytes of every live tensor a training step holds besides activations: parameters and buffers once
    each (quantized weights included), gradients, optimizer states."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
        if getattr(t, "grad", None) is not None:
            total += t.grad.numel() * t.grad.element_size()
    for state in optimizer.state.values():
        for v in state.values():
            if hasattr(v, "numel") and v.dim() > 0:
                total += v.numel() * v.element_size()
    return total


def _activation_bytes(task, model, inputs, labels) -> int:
    """Bytes autograd saves for the backward pass of one step (each storage counted once, parameters excluded)."""
    import torch

    params = {p.data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = [0]

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen and ptr not in params:
            seen.add(ptr)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.loss(model, inputs, labels)
    return total[0]


def _adapter_bytes(method: str, model, folder: Path, task: str) -> tuple[int, str]:
    """Bytes on disk of what ships for this task, and the format written."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if method != "full":
        from peftlab.core.interop import save_peft_adapter

        try:
            save_peft_adapter(model, folder, task_type="SEQ_CLS" if task == "sentiment" else "CAUSAL_LM")
            return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()), "peft"
        except (ValueError, TypeError, KeyError):  # no peft format for this method (prefix, Houlsby adapter)
            for f in folder.iterdir():
                f.unlink()
    tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    if method == "full":  # the whole model is the checkpoint: count its bytes, don't write a copy per seed
        return sum(t.numel() * t.element_size() for t in tensors.values()), "full-model"
    save_file(tensors, str(folder / "adapter.safetensors"))
    return (folder / "adapter.safetensors").stat().st_size, "safetensors"


def run_cell(cfg: CompareConfig, method: str, seed: int, out: Path | None = None, task=None) -> dict:
    """Train ``method`` with ``seed`` under ``cfg`` and measure it; returns the cell's record."""
    import torch

    from peftlab.core.targets import count_parameters
    from peftlab.device import pick_device
    from peftlab.methods.fast import use_fast
    from peftlab.train import fit, index_batches, make_optimizer, warmup_steps

    spec = METHODS[method]
    task = task or _task(cfg)
    device = pick_device() if cfg.profile == "colab" else torch.device("cpu")
    torch.manual_seed(seed)
    model = use_fast(spec.build(task.model(), cfg.task))  # the speed-tuned layers: the same numbers, sooner
    model.to(device)
    counts = count_parameters(model)
    lr = cfg.lr(method)
    opt = make_optimizer(model, lr)
    gen = torch.Generator().manual_seed(seed)
    # data preparation outside the timer: every step's batch first (a pass that cannot fill a batch is reshuffled)
    batches = [task.batch(idx) for idx in index_batches(task.n_train(), cfg.batch_size, gen, steps=cfg.steps)]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    peak, paused = 0, [0.0]

    def measure(step, batch):
        nonlocal peak
        if step == 1 and not cuda:  # one step's activations, measured once the optimizer holds its states
            t_pause = time.perf_counter()
            peak = _tensor_bytes(model, opt) + _activation_bytes(task, model, *batch)
            paused[0] += time.perf_counter() - t_pause

    t0 = time.perf_counter()
    losses = fit(model, batches, lambda model, batch: task.loss(model, *batch), opt, total_steps=cfg.steps,
                 warmup=warmup_steps(cfg.steps, cfg.warmup_ratio, at_least=1), device=device, before_step=measure)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0 - paused[0]
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    elif cfg.steps == 1:
        peak = _tensor_bytes(model, opt)
    per_example = task.evaluate(model)
    metric = sum(per_example) / len(per_example)
    folder = (out or Path(".")) / "adapters" / f"{method}-seed{seed}"
    nbytes, fmt = _adapter_bytes(method, model, folder, cfg.task)
    return {"method": method, "seed": seed, "status": "ok", "error": "", "lr": lr, "lr_source": cfg.lr_source(method)[1],
            "trainable": counts.trainable, "total": counts.total,
            "trainable_pct": round(100 * counts.trainable / counts.total, 4),
            "adapter_bytes": nbytes, "adapter_format": fmt,
            "seconds_per_step": round(seconds / cfg.steps, 5), "peak_memory_bytes": int(peak),
            "memory_source": "cuda.max_memory_allocated" if cuda else "tensor bytes (params+grads+optimizer+activations)",
            "metric": task.metric, "value": round(float(metric), 4), "final_loss": round(losses[-1], 4),
            "device": device.type, "per_example": "".join(str(int(v)) for v in per_example)}
