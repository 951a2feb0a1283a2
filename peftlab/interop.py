"""Read and write Hugging Face peft's adapter format, so an adapter moves between peft and peftlab.

A peft adapter folder holds two files:

* ``adapter_config.json`` — the config (``peft_type``, ``r``, ``lora_alpha``, ``target_modules`` …);
* ``adapter_model.safetensors`` — the tensors, named after the module path inside the peft wrapper
  with the adapter name left out, e.g. ``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight``
  (A, shape r×in) and ``….lora_B.weight`` (B, shape out×r); modules kept fully trainable
  (``modules_to_save``, such as a classification head) are saved under their own names
  (``base_model.model.classifier.weight``).

:func:`save_peft_adapter` writes that format from a peftlab model, so ``PeftModel.from_pretrained``
loads it; :func:`load_peft_adapter` reads it into peftlab layers. Never pickle: safetensors + JSON only.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from peftlab.lora import LoRAConfig, LoRAEmbedding, LoRALinear, apply_lora, lora_layers

__all__ = ["load_peft_adapter", "save_peft_adapter", "CONFIG_NAME", "WEIGHTS_NAME"]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# how peft names each factor in the file (Linear factors are nn.Linear modules, embedding factors bare tensors)
_KEY_SUFFIX = {
    "lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight",
    "lora_embedding_A": ".lora_embedding_A", "lora_embedding_B": ".lora_embedding_B",
}
_PAIRS = {"lora_A": "lora_B", "lora_embedding_A": "lora_embedding_B"}


def _module_state(model: nn.Module, key: str) -> dict[str, torch.Tensor]:
    """Parameters of every module named ``key`` or ending in ``.key``, by full parameter name."""
    out = {}
    for name, mod in model.named_modules():
        if name == key or name.endswith("." + key):
            for pname, param in mod.named_parameters():
                out[f"{name}.{pname}"] = param
    return out


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_peft_adapter(
    model: nn.Module,
    folder: str | os.PathLike,
    adapter_name: str = "default",
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> Path:
    """Write ``adapter_name`` of a peftlab LoRA model as a peft adapter folder; returns the folder."""
    configs = getattr(model, "peftlab_config", None) or {}
    if adapter_name not in configs:
        raise ValueError(f"model has no peftlab adapter named {adapter_name!r}; it has {sorted(configs)}")
    cfg: LoRAConfig = configs[adapter_name]
    if cfg.method != "lora":
        raise ValueError(f"save_peft_adapter writes LoRA adapters; adapter {adapter_name!r} is {cfg.method!r}")

    tensors: dict[str, torch.Tensor] = {}
    for name, layer in lora_layers(model).items():
        if adapter_name in layer._A:
            for part, store in ((layer._A_NAME, layer._A), (layer._B_NAME, layer._B)):
                tensors[f"{_PREFIX}{name}{_KEY_SUFFIX[part]}"] = store[adapter_name].detach()
    for key in cfg.modules_to_save:
        for pname, param in _module_state(model, key).items():
            tensors[f"{_PREFIX}{pname}"] = param.detach()
    tensors = {k: v.contiguous().cpu().clone() for k, v in tensors.items()}

    config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "r": cfg.r,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "use_rslora": cfg.use_rslora,
        "target_modules": cfg.target_modules,
        "modules_to_save": list(cfg.modules_to_save) or None,
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "use_dora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "inference_mode": True,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    _atomic_write(folder / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(config, indent=2) + "\n"))
    return folder


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise ValueError(f"{path}: peft_type={peft_type!r} is not supported here; load_peft_adapter reads 'LORA'")
    for key in ("use_dora",):
        if config.get(key):
            raise ValueError(f"{path}: {key}=true is not a plain LoRA adapter")
    for key in ("rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise ValueError(f"{path}: per-layer {key} is not supported by peftlab")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        raise ValueError(f"{path}: bias={config.get('bias')!r} / lora_bias are not supported; use bias='none'")
    if config.get("fan_in_fan_out"):
        raise ValueError(f"{path}: fan_in_fan_out=true (Conv1D layers) is not supported by peftlab")
    for key in ("r", "lora_alpha"):
        if key not in config:
            raise ValueError(f"{path}: missing required field {key!r}")
    return config


def _read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None


def load_peft_adapter(model: nn.Module, folder: str | os.PathLike, adapter_name: str = "default") -> nn.Module:
    """Load a peft LoRA adapter folder into ``model`` as peftlab layers (in place); returns ``model``.

    Every tensor is checked against the model before anything changes: a missing module, a layer of the
    wrong kind or a shape that does not fit raises an error naming the tensor, and leaves ``model`` as it was.
    """
    folder = Path(folder)
    config = _read_config(folder)
    tensors = _read_tensors(folder)
    r, alpha = int(config["r"]), float(config["lora_alpha"])

    lora: dict[str, dict[str, torch.Tensor]] = {}
    other: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        for part, suffix in _KEY_SUFFIX.items():
            if name.endswith(suffix):
                lora.setdefault(name[: -len(suffix)], {})[part] = value
                break
        else:
            other[name] = value
    if not lora:
        raise ValueError(f"{folder / WEIGHTS_NAME} holds no lora_A/lora_B tensors")

    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for name, pair in sorted(lora.items()):
        a_part = next((p for p in _PAIRS if p in pair), None) or next(a for a, b in _PAIRS.items() if b in pair)
        b_part = _PAIRS[a_part]
        for part in (a_part, b_part):
            if part not in pair:
                raise ValueError(f"tensor {_PREFIX}{name}{_KEY_SUFFIX[part]} is missing from {folder / WEIGHTS_NAME}")
        first = f"{_PREFIX}{name}{_KEY_SUFFIX[a_part]}"
        mod = modules.get(name)
        if mod is None:
            raise ValueError(f"tensor {first} names module {name!r}, which the model does not have")
        base = mod.base_layer if isinstance(mod, LoRALinear) else mod
        kind = nn.Embedding if a_part == "lora_embedding_A" else nn.Linear
        if not isinstance(base, kind):
            raise ValueError(f"tensor {first} targets {name!r}, a {type(base).__name__}, not an nn.{kind.__name__}")
        layer_cls = LoRAEmbedding if kind is nn.Embedding else LoRALinear
        n_in, n_out = layer_cls._dims(base)
        for part, shape in ((a_part, (r, n_in)), (b_part, (n_out, r))):
            if tuple(pair[part].shape) != shape:
                raise ValueError(
                    f"tensor {_PREFIX}{name}{_KEY_SUFFIX[part]} has shape {tuple(pair[part].shape)}, "
                    f"but layer {name!r} ({n_out}×{n_in}, r={r}) needs {shape}"
                )
    for pname, value in other.items():
        target = params.get(pname)
        if target is None:
            raise ValueError(f"tensor {_PREFIX}{pname} matches no parameter of the model")
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(
                f"tensor {_PREFIX}{pname} has shape {tuple(value.shape)}, the model's parameter has {tuple(target.shape)}"
            )

    saved = [k for k in (config.get("modules_to_save") or []) if any(n == k or n.endswith("." + k) for n in modules)]
    apply_lora(
        model, r=r, alpha=alpha, target_modules=sorted(lora), dropout=float(config.get("lora_dropout", 0.0)),
        use_rslora=bool(config.get("use_rslora", False)), modules_to_save=saved, adapter_name=adapter_name,
    )
    model.peftlab_config[adapter_name].target_modules = config.get("target_modules") or sorted(lora)
    with torch.no_grad():
        for name, pair in lora.items():
            layer = model.get_submodule(name)
            layer._A[adapter_name].copy_(pair[layer._A_NAME])
            layer._B[adapter_name].copy_(pair[layer._B_NAME])
        params = dict(model.named_parameters())
        for pname, value in other.items():
            params[pname].copy_(value)
    return model
