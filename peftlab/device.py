"""Pick the device and the training dtype the way the course recommends.

* ``cuda`` if available, else Apple ``mps``, else ``cpu`` (override with ``PEFTLAB_DEVICE``).
* bf16 only where the hardware supports it (Ampere or newer: A100, L4, H100 …). A Colab T4 has no
  bf16, so it gets fp16 (with a GradScaler in training). CPU and MPS train in fp32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

__all__ = ["DeviceInfo", "pick_device", "pick_dtype", "describe", "bf16_supported", "configure_threads"]

_ALLOWED = ("cuda", "mps", "cpu")


def pick_device(prefer: str | None = None) -> torch.device:
    """The best available device, or ``prefer`` / ``$PEFTLAB_DEVICE`` if given (checked)."""
    choice = prefer or os.environ.get("PEFTLAB_DEVICE")
    if choice:
        if choice not in _ALLOWED:
            raise ValueError(f"device must be one of {_ALLOWED}, got {choice!r} (argument prefer or PEFTLAB_DEVICE)")
        if choice == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but torch.cuda.is_available() is False")
        if choice == "mps" and not _mps_available():
            raise ValueError("device 'mps' was requested but torch.backends.mps.is_available() is False")
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def bf16_supported(device: torch.device | str | None = None) -> bool:
    """True only on a CUDA device with native bf16 (compute capability ≥ 8.0)."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type != "cuda":
        return False
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8 and torch.cuda.is_bf16_supported()


def pick_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """Mixed-precision dtype for training on ``device``: bf16 > fp16 on CUDA, fp32 elsewhere."""
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return torch.bfloat16 if bf16_supported(device) else torch.float16
    return torch.float32


@dataclass(frozen=True)
class DeviceInfo:
    device: str
    name: str
    dtype: str
    bf16: bool
    memory_gb: float | None


def describe(device: torch.device | str | None = None) -> DeviceInfo:
    device = torch.device(device) if device is not None else pick_device()
    name, memory = "CPU", None
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name, memory = props.name, round(props.total_memory / 2**30, 1)
    elif device.type == "mps":
        name = "Apple MPS"
    dtype = pick_dtype(device)
    return DeviceInfo(str(device), name, str(dtype).replace("torch.", ""), bf16_supported(device), memory)


def configure_threads(profile: str | None = None, device: torch.device | str | None = None) -> int:
    """Set torch's intra-op CPU threads for this process the way the kit runs its notebooks; return the count.

    * ``$PEFTLAB_THREADS`` (a positive integer) wins when set;
    * otherwise, when ``$OMP_NUM_THREADS`` is set, torch already follows it and nothing changes;
    * otherwise the embedded ``tiny`` profile on the CPU runs on **one** thread: the stored outputs then do not
      depend on the core count, and ``make test`` (two notebooks at once, ``-n 2``) does not oversubscribe the
      cores. A notebook alone gains a little from two threads: on the 2-core course machine, Week 01 under
      nbval (``pytest --nbval-lax solutions/01_lora_review.ipynb``) took 61–62 s on one thread and 46–48 s
      with ``PEFTLAB_THREADS=2`` (2026-12-03; the Week 01 before its revision took 116 s vs 167 s);
    * any other profile or device keeps torch's default.
    """
    env = os.environ.get("PEFTLAB_THREADS")
    if env is not None:
        if not env.strip().isdigit() or int(env) < 1:
            raise ValueError(f"PEFTLAB_THREADS must be a positive integer (torch CPU threads), got {env!r}")
        torch.set_num_threads(int(env))
    elif "OMP_NUM_THREADS" not in os.environ:
        profile = profile or os.environ.get("PEFTLAB_PROFILE", "tiny")
        device = torch.device(device) if device is not None else pick_device()
        if profile == "tiny" and device.type == "cpu":
            torch.set_num_threads(1)
    return torch.get_num_threads()

