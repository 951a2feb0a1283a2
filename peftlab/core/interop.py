"""Read and write Hugging Face peft's adapter format, so an adapter moves between peft and peftlab.

A peft adapter folder holds ``adapter_config.json`` (the config: ``peft_type``, ``r``, ``lora_alpha``,
``target_modules`` …) and ``adapter_model.safetensors`` (the tensors, named after the module path inside the
peft wrapper, e.g. ``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight``; modules kept
fully trainable, such as a classification head, under their own names). :mod:`peftlab.core.peft_format` owns that
format and the registry of codecs; each method's :class:`Codec` (which ``peft_type`` and flags it reads, how
its config maps to peft's fields, how peft names each of its tensors) is defined and registered in the
method's own file under :mod:`peftlab.methods`.

This module is the generic driver over that registry: :func:`save_peft_adapter` writes a folder that
``PeftModel.from_pretrained`` loads; :func:`load_peft_adapter` reads one into peftlab layers, validating
every tensor against the model before anything changes. :func:`copy_from_peft` takes the adapter of a
live peft model. Never pickle: safetensors + JSON only, written atomically.

QLoRA has no format of its own: peft saves LoRA over a 4-bit base as a plain LoRA file, so a QLoRA model is
saved through the LoRA codec, and a LoRA file loaded onto 4-bit targets becomes QLoRA layers
(``methods/qlora.py`` registers this with :func:`peftlab.core.peft_format.register_same_file`).

A model-level method (prompt tuning: its wrapper holds the virtual tokens and injects no layer) registers a :class:`~peftlab.core.peft_format.WrapperCodec` in its own file, which writes and
reads its whole folder; ``save_peft_adapter`` / ``load_peft_adapter`` hand a wrapper, or a file of that
``peft_type``, to it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import peftlab.methods  # noqa: F401  (imports every method, so every codec is registered)
from peftlab.core import peft_format
from peftlab.core.layer import AdapterLayer, check_adapter_name
from peftlab.core.peft_format import CONFIG_NAME, PREFIX, WEIGHTS_NAME, Codec, codecs
from peftlab.core.targets import modules_matching
from peftlab.core.tuner import (
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


# ---------------------------------------------------------------------- the codec of a file or a method
def _supported() -> str:
    return ", ".join(peft_format.supported())


def _codec_for_file(cfg: dict, where: str) -> Codec:
    codec = peft_format.codec_for_file(cfg)
    if codec is not None:
        return codec
    flags = " with use_dora=true" if cfg.get("use_dora") else ""
    raise ValueError(f"{where}: peft_type={cfg.get('peft_type')!r}{flags} is not supported by peftlab; "
                     f"supported: {_supported()}")


def _codec_for_method(method: str) -> Codec:
    codec = peft_format.codec_for_method(method)
    if codec is not None:
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
    wrapper = peft_format.wrapper_codec_for_model(model)
    if wrapper is not None:
        return wrapper.save(model, Path(folder), adapter_name, base_model_name_or_path, task_type)
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
    return peft_format.write_files(Path(folder), tensors, peft_config)


# ---------------------------------------------------------------------- reading
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
    cfg = peft_format.read_config(folder)
    where_cfg = str(folder / CONFIG_NAME)
    wrapper = peft_format.wrapper_codec_for_file(cfg)
    if wrapper is not None:
        return wrapper.load(model, folder, cfg, adapter_name)
    codec = _codec_for_file(cfg, where_cfg)
    kwargs = codec.from_peft(cfg, where_cfg)
    where = str(folder / WEIGHTS_NAME)
    state = peft_format.read_tensors(folder)
    if codec.unpack is not None:
        state = codec.unpack(state, where)
    plan = _split(state, codec)
    saved = [k for k in (cfg.get("modules_to_save") or []) if modules_matching(model, k)]
    spec = get_method(codec.method)
    if not plan.adapters:
        raise ValueError(f"{where} holds no {codec.method} adapter tensors")
    # a method whose file is this codec's may claim it (QLoRA: a LoRA file onto a 4-bit base, as PeftModel over
    # a bitsandbytes model); otherwise the file is the codec's own method
    for same in peft_format.same_file_methods(codec.method):
        extra = same.claims(model, plan.adapters, where)
        if extra is not None:
            spec, kwargs = get_method(same.method), {**kwargs, **extra}
            break
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
