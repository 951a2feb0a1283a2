"""Read and write Hugging Face peft's adapter format, so an adapter moves between peft and peftlab.

A peft adapter folder holds two files:

* ``adapter_config.json`` — the config (``peft_type``, ``r``, ``lora_alpha``, ``target_modules`` …);
* ``adapter_model.safetensors`` — the tensors, named after the module path inside the peft wrapper
  with the adapter name left out, e.g. ``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight``
  (A, shape r×in) and ``….lora_B.weight`` (B, shape out×r); modules kept fully trainable
  (``modules_to_save``, such as a classification head) are saved under their own names
  (``base_model.model.classifier.weight``).

The format is generic; what differs per method is small and lives in one :class:`Codec` each: which
``peft_type`` (and flags such as ``use_dora``) it reads, how its config maps to peft's fields, and how
peft names each of its tensors in the file. :func:`save_peft_adapter` writes a folder that
``PeftModel.from_pretrained`` loads; :func:`load_peft_adapter` reads one into peftlab layers, validating
every tensor against the model before anything changes. :func:`copy_from_peft` takes the adapter of a
live peft model. Never pickle: safetensors + JSON only, written atomically.

QLoRA has no format of its own: peft saves LoRA over a 4-bit base as a plain LoRA file, so a QLoRA model is
saved through the LoRA codec, and a LoRA file loaded onto 4-bit targets becomes QLoRA layers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from peftlab.fileio import atomic_write_with
from peftlab.layer import AdapterLayer, check_adapter_name
from peftlab.methods.dora import DoRAConfig, DoRAEmbedding, DoRALinear
from peftlab.methods.ia3 import IA3Config, IA3Linear
from peftlab.methods.lora import LoRAConfig, LoRAEmbedding, LoRALinear
from peftlab.methods.prompts import PromptTuningConfig, PromptTuningModel
from peftlab.methods.qlora import QLoRALinear, QuantLinear
from peftlab.methods.vblora import VBLoRAConfig, VBLoRALinear, index_dtype
from peftlab.methods.waveft import WaveFTConfig, WaveFTLinear, filter_taps
from peftlab.targets import modules_matching
from peftlab.tuner import (
    adapter_layers,
    bind_targets,
    get_method,
    inject,
    method_for_config,
    method_of_layer,
    registered_layer_class,
)

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "Codec",
    "adapter_state_dict",
    "codecs",
    "copy_from_peft",
    "load_adapter_state",
    "load_peft_adapter",
    "save_peft_adapter",
]

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PREFIX = "base_model.model."


# ---------------------------------------------------------------------- codecs
@dataclass(frozen=True)
class Codec:
    """How one peftlab method maps onto peft's adapter format.

    ``tensor_keys``: per layer class, peftlab's tensor attribute → the suffix peft uses in the file.
    ``accepts(cfg)``: whether a peft ``adapter_config.json`` dict is this method's.
    ``to_peft(config)``: peft's config fields (without ``target_modules``/``modules_to_save``).
    ``from_peft(cfg, where)``: keyword arguments of the method's config class; raises ``ValueError``
    naming ``where`` for settings peftlab does not implement.
    ``pack(tensors, config)`` (optional): turns the per-layer tensors into the file's form (VB-LoRA: one
    shared bank, top-k-only logits); ``unpack(state, where)`` (optional) undoes it before anything is
    validated. ``may_be_neg_inf``: tensor attributes where −∞ is a valid value (VB-LoRA's masked logits).
    """

    method: str
    peft_type: str
    tensor_keys: dict[type[AdapterLayer], dict[str, str]]
    accepts: Callable[[dict], bool]
    to_peft: Callable[[object], dict]
    from_peft: Callable[[dict, str], dict]
    pack: Callable[[dict, object], dict] | None = None
    unpack: Callable[[dict, str], dict] | None = None
    may_be_neg_inf: tuple[str, ...] = ()


def _lora_to_peft(cfg: LoRAConfig) -> dict:
    return {
        "r": cfg.r, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout, "use_rslora": cfg.use_rslora,
        "rank_pattern": dict(cfg.rank_pattern), "alpha_pattern": dict(cfg.alpha_pattern),
        "bias": "none", "lora_bias": False, "fan_in_fan_out": False, "use_dora": False,
        "init_lora_weights": True if cfg.init == "kaiming" else "gaussian",
    }


def _lora_from_peft(cfg: dict, where: str) -> dict:
    for key in ("r", "lora_alpha"):
        if key not in cfg:
            raise ValueError(f"{where}: missing required field {key!r}")
    if cfg.get("bias", "none") != "none" or cfg.get("lora_bias"):
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} / lora_bias={cfg.get('lora_bias')!r} are not "
                         "implemented in peftlab; it reads bias='none', lora_bias=false")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    init = cfg.get("init_lora_weights", True)
    return {
        "r": int(cfg["r"]), "alpha": float(cfg["lora_alpha"]), "dropout": float(cfg.get("lora_dropout") or 0.0),
        "use_rslora": bool(cfg.get("use_rslora", False)),
        "rank_pattern": {k: int(v) for k, v in (cfg.get("rank_pattern") or {}).items()},
        "alpha_pattern": {k: float(v) for k, v in (cfg.get("alpha_pattern") or {}).items()},
        "init": "gaussian" if init == "gaussian" else "kaiming",
    }


def _dora_to_peft(cfg: DoRAConfig) -> dict:
    return {**_lora_to_peft(cfg), "use_dora": True}


# peft 0.21.2 ships its own filter table for WaveFT; two entries are not the named wavelet [measured]:
# coif4's taps differ from pywt's by up to 1.2e-2 (Σh² = 1.0099, not orthonormal) and coif5 has 48 taps
# instead of 30 (its ΔW comes out smaller than the layer, and the first forward fails). Used only where
# peft itself cannot be imported to compare.
_PEFT_WAVEFT_BAD_TAPS = ("coif4", "coif5")


def _peft_waveft_taps_differ(family: str) -> bool:
    """Whether the installed peft's WaveFT taps for ``family`` are not pywt's (peftlab computes pywt's)."""
    family = "db1" if family == "haar" else family
    try:
        from peft.tuners.waveft.wavelet import Wavelet
    except ImportError:
        return family in _PEFT_WAVEFT_BAD_TAPS
    try:
        theirs = torch.tensor(Wavelet(family).rec_lo, dtype=torch.float64)
    except ValueError:
        return True
    ours = filter_taps(family)[0]
    return theirs.shape != ours.shape or bool((theirs - ours).abs().max() > 1e-10)


def _check_waveft_family(family: str, where: str) -> None:
    if _peft_waveft_taps_differ(family):
        raise ValueError(f"{where}: wavelet_family={family!r}: peft's WaveFT filter table for {family} is not the "
                         f"{family} wavelet (peft 0.21.2: coif4's taps are off by up to 1.2e-2, coif5's table has 48 "
                         "taps and fails at the first forward), so a peftlab adapter (pywt's taps) and peft's would "
                         "compute different updates; exchange adapters of another family")


def _waveft_to_peft(cfg: WaveFTConfig) -> dict:
    _check_waveft_family(cfg.wavelet_family, "save_peft_adapter")
    return {
        "n_frequency": cfg.n_frequency, "scaling": cfg.scaling,
        "wavelet_family": "db1" if cfg.wavelet_family == "haar" else cfg.wavelet_family,  # peft rejects "haar"
        "use_idwt": cfg.use_idwt, "random_loc_seed": cfg.random_loc_seed,
        "proportional_parameters": cfg.proportional_parameters,
        "n_frequency_pattern": dict(cfg.n_frequency_pattern), "init_weights": cfg.init_weights,
        "fan_in_fan_out": False, "bias": "none",
    }


def _waveft_from_peft(cfg: dict, where: str) -> dict:
    if cfg.get("bias", "none") != "none":
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} is not implemented in peftlab; it reads bias='none'")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    kwargs = {
        "n_frequency": cfg.get("n_frequency", 2592), "scaling": cfg.get("scaling", 25.0),
        "wavelet_family": cfg.get("wavelet_family", "db1"), "use_idwt": cfg.get("use_idwt", True),
        "random_loc_seed": cfg.get("random_loc_seed", 777),
        "proportional_parameters": cfg.get("proportional_parameters", False),
        "n_frequency_pattern": dict(cfg.get("n_frequency_pattern") or {}),
        "init_weights": cfg.get("init_weights", True),
    }
    try:
        WaveFTConfig(**kwargs)  # every field validated, with its name, before anything is read further
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    _check_waveft_family(kwargs["wavelet_family"], where)
    return kwargs


def _ia3_to_peft(cfg: IA3Config) -> dict:
    return {"feedforward_modules": cfg.feedforward_modules, "fan_in_fan_out": False,
            "init_ia3_weights": cfg.init_ia3_weights}


def _ia3_from_peft(cfg: dict, where: str) -> dict:
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    ff = cfg.get("feedforward_modules")
    if ff is None:
        raise ValueError(f"{where}: missing feedforward_modules (peft fills it in from the model type when saving; "
                         "peftlab needs it in the file)")
    return {"feedforward_modules": ff if isinstance(ff, str) else sorted(ff),
            "init_ia3_weights": bool(cfg.get("init_ia3_weights", True))}


# VB-LoRA: the bank is one model-level tensor in peft's file ("base_model.vblora_vector_bank"); inside
# peftlab's generic reader/writer every layer carries it as "<module>.vblora_vector_bank" (the same Parameter).
VBLORA_BANK_KEY = "base_model.vblora_vector_bank"
_VBLORA_LOGITS = (".vblora_logits_A", ".vblora_logits_B")


def _vblora_to_peft(cfg: VBLoRAConfig) -> dict:
    return {
        "r": cfg.r, "num_vectors": cfg.num_vectors, "vector_length": cfg.vector_length, "topk": cfg.topk,
        "vblora_dropout": cfg.vblora_dropout, "save_only_topk_weights": cfg.save_only_topk_weights,
        "init_vector_bank_bound": cfg.init_vector_bank_bound, "init_logits_std": cfg.init_logits_std,
        "fan_in_fan_out": False, "bias": "none",
    }


def _vblora_from_peft(cfg: dict, where: str) -> dict:
    for key in ("num_vectors", "vector_length"):
        if key not in cfg:
            raise ValueError(f"{where}: missing required field {key!r}")
    if cfg.get("bias", "none") != "none":
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} is not implemented in peftlab; it reads bias='none'")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    kwargs = {
        "r": cfg.get("r", 4), "num_vectors": cfg["num_vectors"], "vector_length": cfg["vector_length"],
        "topk": cfg.get("topk", 2), "vblora_dropout": cfg.get("vblora_dropout") or 0.0,
        "save_only_topk_weights": bool(cfg.get("save_only_topk_weights", False)),
        "init_vector_bank_bound": cfg.get("init_vector_bank_bound", 0.02),
        "init_logits_std": cfg.get("init_logits_std", 0.1),
    }
    try:
        VBLoRAConfig(**kwargs)  # every field validated, with its name, before anything is read further
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return kwargs


def _vblora_pack(tensors: dict[str, torch.Tensor], config: VBLoRAConfig) -> dict[str, torch.Tensor]:
    """One bank under peft's key; with ``save_only_topk_weights`` each logit vector becomes its top-k indices
    (smallest integer dtype for N) and the first k−1 of its top-k softmax weights."""
    out: dict[str, torch.Tensor] = {}
    bank = None
    for key, value in tensors.items():
        if key.endswith(".vblora_vector_bank"):
            bank = value
        elif config.save_only_topk_weights and key.endswith(_VBLORA_LOGITS):
            values, indices = value.topk(config.topk, dim=-1)
            out[f"{key}_topk_indices"] = indices.to(index_dtype(config.num_vectors)).contiguous()
            out[f"{key}_topk_weights"] = torch.softmax(values, dim=-1)[..., :-1].contiguous()
        else:
            out[key] = value
    if bank is not None:
        out[VBLORA_BANK_KEY] = bank
    return out


def _vblora_unpack(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The file's form back to per-layer tensors: logits rebuilt from top-k files (``log w`` at the saved
    indices, −∞ elsewhere, as peft does), and the bank given to every layer that has logits."""
    state = dict(state)
    if VBLORA_BANK_KEY not in state:
        raise ValueError(f"{where}: tensor {VBLORA_BANK_KEY} (the shared vector bank) is missing")
    bank = state.pop(VBLORA_BANK_KEY)
    if bank.dim() != 2 or not bank.is_floating_point() or not torch.isfinite(bank).all():
        raise ValueError(f"{where}: tensor {VBLORA_BANK_KEY} must be a finite floating-point (num_vectors, "
                         f"vector_length) matrix, got {bank.dtype} of shape {tuple(bank.shape)}")
    n = bank.shape[0]
    for key in [k for k in state if k.endswith("_topk_indices")]:
        base_key = key[: -len("_topk_indices")]
        wkey = f"{base_key}_topk_weights"
        indices = state.pop(key)
        if wkey not in state:
            raise ValueError(f"{where}: tensor {wkey} is missing (it goes with {key})")
        weights = state.pop(wkey)
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise ValueError(f"{where}: tensor {key} must hold integer indices, got {indices.dtype}")
        if tuple(weights.shape) != (*indices.shape[:-1], indices.shape[-1] - 1):
            raise ValueError(f"{where}: tensor {wkey} has shape {tuple(weights.shape)}; with {key} of shape "
                             f"{tuple(indices.shape)} it must be {(*indices.shape[:-1], indices.shape[-1] - 1)}")
        idx = indices.to(torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{where}: tensor {key} holds indices outside [0, {n}) (the bank has {n} vectors)")
        if not weights.is_floating_point() or not torch.isfinite(weights).all() or (weights < 0).any() \
                or (weights.sum(-1) > 1 + 1e-5).any():
            raise ValueError(f"{where}: tensor {wkey} must hold finite weights ≥ 0 summing to at most 1")
        full = torch.cat([weights, 1 - weights.sum(-1, keepdim=True)], dim=-1)
        logits = torch.full((*idx.shape[:-1], n), float("-inf"), dtype=weights.dtype)
        state[base_key] = logits.scatter(-1, idx, torch.log(full))
    modules = {k[: -len(s)] for k in state for s in _VBLORA_LOGITS if k.endswith(s)}
    for module in modules:
        state[f"{module}.vblora_vector_bank"] = bank
    return state


_CODECS: list[Codec] = [
    Codec(
        method="lora", peft_type="LORA",
        tensor_keys={LoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight"},
                     LoRAEmbedding: {"lora_embedding_A": ".lora_embedding_A",
                                     "lora_embedding_B": ".lora_embedding_B"},
                     QLoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight"}},
        accepts=lambda cfg: cfg.get("peft_type") == "LORA" and not cfg.get("use_dora"),
        to_peft=_lora_to_peft, from_peft=_lora_from_peft,
    ),
    # DoRA is peft's LoRA with use_dora=true; the magnitude is saved without peft's ".weight" suffix
    # (peft strips it on save and appends it again on load).
    Codec(
        method="dora", peft_type="LORA",
        tensor_keys={DoRALinear: {"lora_A": ".lora_A.weight", "lora_B": ".lora_B.weight",
                                  "lora_magnitude_vector": ".lora_magnitude_vector"},
                     DoRAEmbedding: {"lora_embedding_A": ".lora_embedding_A",
                                     "lora_embedding_B": ".lora_embedding_B",
                                     "lora_magnitude_vector": ".lora_magnitude_vector"}},
        accepts=lambda cfg: cfg.get("peft_type") == "LORA" and bool(cfg.get("use_dora")),
        to_peft=_dora_to_peft, from_peft=_lora_from_peft,
    ),
    # WaveFT saves only the spectrum; the coefficient positions are regenerated from random_loc_seed.
    Codec(
        method="waveft", peft_type="WAVEFT",
        tensor_keys={WaveFTLinear: {"waveft_spectrum": ".waveft_spectrum"}},
        accepts=lambda cfg: cfg.get("peft_type") == "WAVEFT",
        to_peft=_waveft_to_peft, from_peft=_waveft_from_peft,
    ),
    # IA³: one vector per layer, (out, 1) for output scaling, (1, in) for feed-forward (input) targets.
    Codec(
        method="ia3", peft_type="IA3",
        tensor_keys={IA3Linear: {"ia3_l": ".ia3_l"}},
        accepts=lambda cfg: cfg.get("peft_type") == "IA3",
        to_peft=_ia3_to_peft, from_peft=_ia3_from_peft,
    ),
    # VB-LoRA: per-layer logits, one shared bank; "full" or "top-k only" (save_only_topk_weights).
    Codec(
        method="vblora", peft_type="VBLORA",
        tensor_keys={VBLoRALinear: {"vblora_logits_A": ".vblora_logits_A", "vblora_logits_B": ".vblora_logits_B",
                                    "vblora_vector_bank": ".vblora_vector_bank"}},
        accepts=lambda cfg: cfg.get("peft_type") == "VBLORA",
        to_peft=_vblora_to_peft, from_peft=_vblora_from_peft,
        pack=_vblora_pack, unpack=_vblora_unpack, may_be_neg_inf=("vblora_logits_A", "vblora_logits_B"),
    ),
]


#: methods whose adapter file *is* another method's: peft saves the LoRA of a 4-bit (bitsandbytes) base as a
#: plain LoRA file — the quantization belongs to the base model, not to the adapter.
_SAME_FILE_AS = {"qlora": "lora"}


def _quantized_targets(model: nn.Module, names, where: str) -> dict | None:
    """QLoRA's quantization settings when every named module's base is 4-bit (:class:`QuantLinear`), ``None``
    when none is; a mix, or 4-bit layers quantized differently, is an error (nothing has changed yet)."""
    modules = dict(model.named_modules())
    bases = {n: getattr(m, "base_layer", m) for n in names if (m := modules.get(n)) is not None}
    quant = {n: b for n, b in bases.items() if isinstance(b, QuantLinear)}
    if not quant:
        return None
    if len(quant) != len(bases):
        plain = sorted(set(bases) - set(quant))
        raise ValueError(f"{where}: the adapter targets 4-bit layers ({sorted(quant)[0]!r}, …) and unquantized ones "
                         f"({plain[0]!r}, …); quantize all of its targets or none")
    settings = {(b.quant_type, b.blocksize, b.double_quant, b.compute_dtype) for b in quant.values()}
    if len(settings) > 1:
        raise ValueError(f"{where}: the targeted 4-bit layers are quantized in different ways {sorted(map(str, settings))}; "
                         "one adapter file is loaded with one QLoRA setting")
    quant_type, blocksize, double_quant, compute_dtype = settings.pop()
    return {"quant_type": quant_type, "blocksize": blocksize, "double_quant": double_quant,
            "compute_dtype": compute_dtype}


def codecs() -> dict[str, Codec]:
    """The codec of every method peftlab can exchange with peft, by method name."""
    return {c.method: c for c in _CODECS}


def _supported() -> str:
    flag = {"lora": " (use_dora=false)", "dora": " (use_dora=true)"}
    return ", ".join([f"{c.peft_type}{flag.get(c.method, '')}" for c in _CODECS] + ["PROMPT_TUNING"])


def _codec_for_file(cfg: dict, where: str) -> Codec:
    for codec in _CODECS:
        if codec.accepts(cfg):
            return codec
    flags = " with use_dora=true" if cfg.get("use_dora") else ""
    raise ValueError(f"{where}: peft_type={cfg.get('peft_type')!r}{flags} is not supported by peftlab; "
                     f"supported: {_supported()}")


def _codec_for_method(method: str) -> Codec:
    method = _SAME_FILE_AS.get(method, method)
    for codec in _CODECS:
        if codec.method == method:
            return codec
    raise ValueError(f"method {method!r} has no peft adapter format in peftlab; supported: {_supported()}")


# ---------------------------------------------------------------------- writing
def _config_of(model: nn.Module, adapter_name: str):
    configs = getattr(model, "peftlab_config", None) or {}
    if adapter_name not in configs:
        raise ValueError(f"adapter_name={adapter_name!r}: the model has no peftlab adapter of that name; "
                         f"it has {sorted(configs)}")
    return configs[adapter_name]


def adapter_state_dict(model: nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """The tensors of ``adapter_name`` named as peft names them in ``adapter_model.safetensors``."""
    config = _config_of(model, adapter_name)
    codec = _codec_for_method(method_for_config(config).name)
    tensors: dict[str, torch.Tensor] = {}
    for name, layer in adapter_layers(model).items():
        if not layer.has_adapter(adapter_name):
            continue
        keys = codec.tensor_keys[registered_layer_class(layer)]
        for attr, param in layer.adapter_parameters(adapter_name).items():
            tensors[f"{PREFIX}{name}{keys[attr]}"] = param.detach()
    for key in config.modules_to_save:
        for mod_name in modules_matching(model, key):
            for pname, param in model.get_submodule(mod_name).named_parameters():
                tensors[f"{PREFIX}{mod_name}.{pname}"] = param.detach()
    tensors = {k: v.contiguous().cpu().clone() for k, v in tensors.items()}
    return tensors if codec.pack is None else codec.pack(tensors, config)


def save_peft_adapter(
    model: nn.Module,
    folder: str | os.PathLike,
    adapter_name: str = "default",
    base_model_name_or_path: str | None = None,
    task_type: str | None = None,
) -> Path:
    """Write ``adapter_name`` as a peft adapter folder (config JSON + safetensors); returns the folder.

    A merged adapter is saved as its own tensors (the file never holds base weights).
    """
    if isinstance(model, PromptTuningModel):
        return _save_prompt_tuning(model, Path(folder), adapter_name, base_model_name_or_path, task_type)
    config = _config_of(model, adapter_name)
    codec = _codec_for_method(method_for_config(config).name)
    tensors = adapter_state_dict(model, adapter_name)
    peft_config = {
        "peft_type": codec.peft_type,
        "task_type": task_type,
        "base_model_name_or_path": base_model_name_or_path,
        **codec.to_peft(config),
        "target_modules": config.target_modules,
        "modules_to_save": list(config.modules_to_save) or None,
        "inference_mode": True,
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_with(folder / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    atomic_write_with(folder / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(peft_config, indent=2) + "\n"))
    return folder


# ---------------------------------------------------------------------- reading
def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def _read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None


@dataclass
class _Plan:
    adapters: dict[str, dict[str, torch.Tensor]]  # module name → {attr: tensor}
    others: dict[str, torch.Tensor]                 # parameter name → tensor (modules_to_save)
    keys: dict[tuple[str, str], str]                # (module, attr) → key in the file


def _split(state: dict[str, torch.Tensor], codec: Codec) -> _Plan:
    suffixes = [(suffix, attr) for keys in codec.tensor_keys.values() for attr, suffix in keys.items()]
    suffixes.sort(key=lambda item: -len(item[0]))  # longest first, so no suffix shadows another
    plan = _Plan({}, {}, {})
    for key, value in state.items():
        name = key[len(PREFIX):] if key.startswith(PREFIX) else key
        for suffix, attr in suffixes:
            if name.endswith(suffix):
                module = name[: -len(suffix)]
                plan.adapters.setdefault(module, {})[attr] = value
                plan.keys[(module, attr)] = key
                break
        else:
            plan.others[name] = value
    return plan


def _validate(model: nn.Module, plan: _Plan, config, codec: Codec, where: str, adapter_name: str) -> None:
    """Every check that loading could fail, run before the model is touched."""
    spec = method_for_config(config)
    modules = dict(model.named_modules())
    if not plan.adapters:
        raise ValueError(f"{where} holds no {codec.method} adapter tensors")
    bind_targets(config, {name: getattr(mod, "base_layer", mod) for name in plan.adapters
                          if (mod := modules.get(name)) is not None})
    for name, parts in sorted(plan.adapters.items()):
        first = plan.keys[(name, next(iter(parts)))]
        mod = modules.get(name)
        if mod is None:
            raise ValueError(f"{where}: tensor {first} names module {name!r}, which the model does not have")
        if isinstance(mod, AdapterLayer):
            if mod.has_adapter(adapter_name):
                raise ValueError(f"layer {name!r} already has an adapter named {adapter_name!r}; "
                                 "load under another adapter_name")
            base = mod.base_layer
        else:
            base = mod
        try:
            layer_cls = spec.layer_for(base)
        except TypeError:
            raise ValueError(f"{where}: tensor {first} targets {name!r}, a {type(base).__name__}, which "
                             f"{codec.method} cannot wrap") from None
        expected_attrs = codec.tensor_keys[layer_cls]
        stray = [a for a in parts if a not in expected_attrs]
        if stray:
            raise ValueError(f"{where}: tensor {plan.keys[(name, stray[0])]} does not fit layer {name!r}, a "
                             f"{type(base).__name__} (it takes {sorted(expected_attrs.values())})")
        hparams = config.layer_hparams(name, base)
        for attr, shape in layer_cls.param_shapes(base, **hparams).items():
            key = f"{PREFIX}{name}{expected_attrs[attr]}"
            if attr not in parts:
                raise ValueError(f"{where}: tensor {key} is missing")
            tensor = parts[attr]
            if tuple(tensor.shape) != tuple(shape):
                n_in, n_out = layer_cls.dims(base)
                raise ValueError(f"{where}: tensor {key} has shape {tuple(tensor.shape)}, but layer {name!r} "
                                 f"({n_out}×{n_in}, {hparams}) needs {tuple(shape)}")
            finite = torch.isfinite(tensor) | (tensor == float("-inf")) if attr in codec.may_be_neg_inf \
                else torch.isfinite(tensor)
            if not tensor.is_floating_point() or not finite.all():
                raise ValueError(f"{where}: tensor {key} is not a finite floating-point tensor")
    params = dict(model.named_parameters())
    for pname, value in plan.others.items():
        target = params.get(_unwrapped_name(pname, params))
        if target is None:
            raise ValueError(f"{where}: tensor {PREFIX}{pname} matches no parameter of the model")
        if tuple(target.shape) != tuple(value.shape):
            raise ValueError(f"{where}: tensor {PREFIX}{pname} has shape {tuple(value.shape)}, the model's "
                             f"parameter has {tuple(target.shape)}")


def _unwrapped_name(pname: str, params: dict) -> str:
    """``pname``, or where the model has no such parameter, its name before the layer was wrapped.

    peft saves the base weight of a targeted embedding with the adapter (``save_embedding_layers``, e.g. for a
    Llama ``embed_tokens`` target) as ``<module>.base_layer.weight``; before peftlab wraps that module, the
    model calls it ``<module>.weight``. Loading it overwrites the base weight, as ``PeftModel`` does.
    """
    if pname in params or ".base_layer." not in pname:
        return pname
    return pname.replace(".base_layer.", ".")


def _copy_in(model: nn.Module, plan: _Plan, adapter_name: str) -> None:
    with torch.no_grad():
        for name, parts in plan.adapters.items():
            layer = model.get_submodule(name)
            own = layer.adapter_parameters(adapter_name)
            for attr, tensor in parts.items():
                own[attr].copy_(tensor)
        params = dict(model.named_parameters())
        for pname, value in plan.others.items():
            params[_unwrapped_name(pname, params)].copy_(value)


def _exact(names) -> str:
    """A regex selecting exactly these module names (peft's regex form of target_modules)."""
    return "(" + "|".join(re.escape(n) for n in sorted(names)) + ")"


def load_peft_adapter(model: nn.Module, folder: str | os.PathLike, adapter_name: str = "default") -> nn.Module:
    """Load a peft adapter folder into ``model`` as peftlab layers (in place); returns ``model``.

    The file's ``peft_type`` picks the codec. Every tensor is checked against the model before anything
    changes: a missing module, a layer of the wrong kind or a shape that does not fit raises an error
    naming the file and the tensor, and leaves ``model`` as it was.

    A LoRA file whose targets are 4-bit in ``model`` (:class:`peftlab.QuantLinear`, e.g. after
    ``peftlab.unload`` of a QLoRA model, or a second adapter on one) is loaded as QLoRA layers with those
    layers' quantization settings, as ``PeftModel.from_pretrained`` over a bitsandbytes 4-bit model; the file is
    the same either way, since peft keeps quantization with the base model.
    """
    check_adapter_name(adapter_name)
    folder = Path(folder)
    cfg = _read_config(folder)
    where_cfg = str(folder / CONFIG_NAME)
    if cfg.get("peft_type") == "PROMPT_TUNING":
        return _load_prompt_tuning(model, folder, cfg, adapter_name)
    codec = _codec_for_file(cfg, where_cfg)
    kwargs = codec.from_peft(cfg, where_cfg)
    where = str(folder / WEIGHTS_NAME)
    state = _read_tensors(folder)
    if codec.unpack is not None:
        state = codec.unpack(state, where)
    plan = _split(state, codec)
    saved = [k for k in (cfg.get("modules_to_save") or []) if modules_matching(model, k)]
    spec = get_method(codec.method)
    if not plan.adapters:
        raise ValueError(f"{where} holds no {codec.method} adapter tensors")
    quantized = _quantized_targets(model, plan.adapters, where) if codec.method == "lora" else None
    if quantized is not None:  # a LoRA file onto a 4-bit base: QLoRA layers, as PeftModel over a bitsandbytes model
        spec, kwargs = get_method("qlora"), {**kwargs, **quantized}
    config = spec.config_cls(**kwargs, target_modules=_exact(plan.adapters), modules_to_save=saved)
    _validate(model, plan, config, codec, where, adapter_name)
    inject(model, config, adapter_name)
    _copy_in(model, plan, adapter_name)
    # the model's copy of the config records the file's targets (as saved), not the exact names injected above
    _config_of(model, adapter_name).target_modules = cfg.get("target_modules") or sorted(plan.adapters)
    return model


def load_adapter_state(model: nn.Module, state: dict[str, torch.Tensor], adapter_name: str = "default") -> nn.Module:
    """Copy peft-named tensors (as in ``adapter_model.safetensors``) into the existing adapter ``adapter_name``.

    The model must already carry that adapter (same targets and shapes); everything is validated before
    anything is copied.
    """
    config = _config_of(model, adapter_name)
    codec = _codec_for_method(method_for_config(config).name)
    where = "state dict"
    if codec.unpack is not None:
        state = codec.unpack(state, where)
    plan = _split(state, codec)
    spec = method_for_config(config)
    layers = adapter_layers(model)
    for name, parts in plan.adapters.items():
        layer = layers.get(name)
        if layer is None or not layer.has_adapter(adapter_name):
            raise ValueError(f"{where}: tensor {plan.keys[(name, next(iter(parts)))]} has no adapter "
                             f"{adapter_name!r} at {name!r} in the model")
        own = layer.adapter_parameters(adapter_name)
        for attr, tensor in parts.items():
            if attr not in own or own[attr].shape != tensor.shape:
                raise ValueError(f"{where}: tensor {plan.keys[(name, attr)]} has shape {tuple(tensor.shape)}; "
                                 f"the model's is {tuple(own[attr].shape) if attr in own else 'absent'}")
    missing = [n for n, layer in layers.items() if layer.has_adapter(adapter_name) and n not in plan.adapters
               and method_of_layer(layer) is spec]
    if missing:
        raise ValueError(f"{where}: no tensors for adapter layer(s) {missing[:3]}")
    params = dict(model.named_parameters())
    for pname, value in plan.others.items():
        if pname not in params or params[pname].shape != value.shape:
            raise ValueError(f"{where}: tensor {PREFIX}{pname} matches no parameter of that shape in the model")
    _copy_in(model, plan, adapter_name)
    return model


def copy_from_peft(peft_model: nn.Module, model: nn.Module, adapter_name: str = "default") -> nn.Module:
    """Give peftlab's adapter ``adapter_name`` the values of the same adapter in a live peft model.

    Use it to start both from identical weights (peft's ``get_peft_model_state_dict`` names, no private
    attributes). Both must target the same modules with the same shapes.
    """
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(peft_model, adapter_name=adapter_name)
    return load_adapter_state(model, state, adapter_name)


# ---------------------------------------------------------------------- prompt tuning (input side, no layers)
# peft names the prompt table ``prompt_embeddings`` (T·S × d) and the saved modules ``base_model.<name>`` (a prompt
# learning PeftModel wraps the transformers model directly, without a tuner model in between).
_PROMPT_PREFIX = "base_model."
_PROMPT_INITS = {"random": "RANDOM", "sample_vocab": "SAMPLE_VOCAB", "text": "TEXT"}


def _save_prompt_tuning(model: PromptTuningModel, folder: Path, adapter_name: str, base_model_name_or_path,
                        task_type) -> Path:
    if adapter_name != "default":
        raise ValueError(f"adapter_name={adapter_name!r}: a PromptTuningModel holds one prompt, named 'default'")
    base = model.base_model
    config = model.config
    tensors = {"prompt_embeddings": model.prompt_embeddings.detach()}
    saved = [name for key in config.modules_to_save for name in modules_matching(base, key)]
    for name in saved:
        for pname, param in base.get_submodule(name).named_parameters():
            tensors[f"{_PROMPT_PREFIX}{name}.{pname}"] = param.detach()
    cfg = base.config
    init = _PROMPT_INITS[config.init]
    if init == "TEXT" and not model.tokenizer_name:
        init = "RANDOM"  # peft refuses TEXT without a tokenizer name; the init does not matter to a loaded adapter
    peft_config = {
        "peft_type": "PROMPT_TUNING", "task_type": task_type or model.task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "num_virtual_tokens": config.num_virtual_tokens, "token_dim": model.prompt_embeddings.shape[1],
        "num_transformer_submodules": 1, "num_attention_heads": cfg.num_attention_heads,
        "num_layers": cfg.num_hidden_layers, "prompt_tuning_init": init,
        "prompt_tuning_init_text": config.init_text if init == "TEXT" else None, "tokenizer_name_or_path": model.tokenizer_name,
        "modules_to_save": list(config.modules_to_save) or None, "inference_mode": True,
    }
    tensors = {k: v.contiguous().cpu().clone() for k, v in tensors.items()}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_with(folder / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    atomic_write_with(folder / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(peft_config, indent=2) + "\n"))
    return folder


def _load_prompt_tuning(model: nn.Module, folder: Path, cfg: dict, adapter_name: str) -> PromptTuningModel:
    """A peft PROMPT_TUNING folder as a :class:`PromptTuningModel` around ``model``; validated before anything changes."""
    where_cfg, where = str(folder / CONFIG_NAME), str(folder / WEIGHTS_NAME)
    if adapter_name != "default":
        raise ValueError(f"adapter_name={adapter_name!r}: a PromptTuningModel holds one prompt, named 'default'")
    submodules = cfg.get("num_transformer_submodules") or 1
    if submodules != 1:
        raise ValueError(f"{where_cfg}: num_transformer_submodules={submodules} (encoder-decoder models) is not "
                         "implemented in peftlab; it reads decoder-only and encoder-only models (1)")
    task = cfg.get("task_type")
    if task not in (None, "CAUSAL_LM", "SEQ_CLS"):
        raise ValueError(f"{where_cfg}: task_type={task!r} is not implemented in peftlab; it reads CAUSAL_LM and SEQ_CLS")
    T = cfg.get("num_virtual_tokens")
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"{where_cfg}: num_virtual_tokens={T!r}; expected an int ≥ 1")
    state = _read_tensors(folder)
    if "prompt_embeddings" not in state:
        raise ValueError(f"{where}: tensor prompt_embeddings is missing")
    table = state.pop("prompt_embeddings")
    d = model.get_input_embeddings().embedding_dim
    if tuple(table.shape) != (T, d) or not table.is_floating_point() or not torch.isfinite(table).all():
        raise ValueError(f"{where}: tensor prompt_embeddings has shape {tuple(table.shape)}; the model needs a finite "
                         f"({T}, {d}) table (num_virtual_tokens × the model's embedding size)")
    params = dict(model.named_parameters())
    others = {}
    for key, value in state.items():
        name = key[len(_PROMPT_PREFIX):] if key.startswith(_PROMPT_PREFIX) else key
        if name not in params:
            raise ValueError(f"{where}: tensor {key} matches no parameter of the model")
        if tuple(params[name].shape) != tuple(value.shape):
            raise ValueError(f"{where}: tensor {key} has shape {tuple(value.shape)}, the model's parameter has "
                             f"{tuple(params[name].shape)}")
        others[name] = value
    saved = sorted({k for k in (cfg.get("modules_to_save") or []) if modules_matching(model, k)})
    config = PromptTuningConfig(num_virtual_tokens=T, task_type=task, modules_to_save=saved)
    wrapper = PromptTuningModel(model, config)
    with torch.no_grad():
        wrapper.prompt_embeddings.copy_(table)
        for name, value in others.items():
            params[name].copy_(value)
    return wrapper
