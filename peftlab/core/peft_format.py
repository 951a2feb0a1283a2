"""Hugging Face peft's adapter file format, and the registry of the codecs that map each method onto it.

A peft adapter folder holds two files:

* ``adapter_config.json`` (:data:`CONFIG_NAME`) — the config (``peft_type``, ``r``, ``lora_alpha``,
  ``target_modules`` …);
* ``adapter_model.safetensors`` (:data:`WEIGHTS_NAME`) — the tensors, named after the module path inside the
  peft wrapper (:data:`PREFIX`) with the adapter name left out, e.g.
  ``base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight`` (A, shape r×in) and
  ``….lora_B.weight`` (B, shape out×r); modules kept fully trainable (``modules_to_save``, such as a
  classification head) are saved under their own names (``base_model.model.classifier.weight``).

The format is generic; what differs per method is small and lives in one :class:`Codec` each, defined and
registered (:func:`register_codec`) in the method's own file next to its ``register_method(...)`` call: which
``peft_type`` (and flags such as ``use_dora``) it reads, how its config maps to peft's fields, and how peft
names each of its tensors. A method whose file *is* another method's (QLoRA: peft saves LoRA over a 4-bit base
as a plain LoRA file) registers with :func:`register_same_file` instead. A model-level method (one that wraps
the model and injects no layer: prompt tuning) has no tensors per layer to map; it registers a
:class:`WrapperCodec` (:func:`register_wrapper_codec`), which writes and reads its whole folder.
:mod:`peftlab.core.interop` is the generic reader/writer over this registry.

This module imports no method and not :mod:`peftlab.core.interop`: the methods import it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from peftlab.core.fileio import atomic_write_with

if TYPE_CHECKING:
    import torch
    from torch import nn

    from peftlab.core.layer import AdapterLayer

__all__ = [
    "CONFIG_NAME",
    "PREFIX",
    "WEIGHTS_NAME",
    "Codec",
    "SameFile",
    "WrapperCodec",
    "codec_for_file",
    "codec_for_method",
    "codecs",
    "read_config",
    "read_tensors",
    "register_codec",
    "register_same_file",
    "register_wrapper_codec",
    "same_file_methods",
    "supported",
    "wrapper_codec_for_file",
    "wrapper_codec_for_model",
    "write_files",
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


@dataclass(frozen=True)
class SameFile:
    """A method whose adapter file is another method's (``codec``), e.g. QLoRA's is LoRA's.

    ``claims(model, module_names, where)``: when the file is loaded onto ``model``, the extra config keyword
    arguments that make the adapter this method's (QLoRA: the quantization settings, when every targeted base is
    4-bit), or ``None`` when the file stays the codec's own method; raises ``ValueError`` naming ``where`` for a
    model it can't decide on, before anything changes.
    """

    method: str
    codec: str
    claims: Callable[[nn.Module, Iterable[str], str], dict | None]


@dataclass(frozen=True)
class WrapperCodec:
    """How a model-level method (a wrapper around the model, no adapter layers) maps onto peft's format.

    ``wrapper``: the method's wrapper class; a model of that class is saved by ``save``.
    ``save(model, folder, adapter_name, base_model_name_or_path, task_type)`` writes the folder (with
    :func:`write_files`) and returns it. ``load(model, folder, cfg, adapter_name)`` reads a folder whose
    ``adapter_config.json`` is ``cfg`` (``peft_type`` equal to :attr:`peft_type`) and returns the wrapped
    model; it validates every field and tensor before anything changes.
    """

    method: str
    peft_type: str
    wrapper: type
    save: Callable[..., Path]
    load: Callable[..., nn.Module]


_CODECS: dict[str, Codec] = {}      # method → codec, in registration order
_LABELS: dict[str, str] = {}        # method → how the list of supported files names it
_SAME_FILE: dict[str, SameFile] = {}  # method → the codec its files use
_WRAPPERS: dict[str, WrapperCodec] = {}  # method → the codec of a model-level method


def register_codec(codec: Codec, label: str | None = None) -> Codec:
    """Register ``codec`` (called once, in the method's file, next to ``register_method``); returns it.

    ``label`` names the file kind in the list of supported ones (default: ``codec.peft_type``; LoRA and DoRA,
    which share ``peft_type="LORA"``, add their ``use_dora`` flag).
    """
    if not isinstance(codec, Codec):
        raise TypeError(f"codec must be a Codec, got {type(codec).__name__}")
    _check_new(codec.method)
    _CODECS[codec.method] = codec
    _LABELS[codec.method] = codec.peft_type if label is None else label
    return codec


def register_same_file(method: str, codec: str, tensor_keys: dict[type[AdapterLayer], dict[str, str]],
                       claims: Callable[[nn.Module, Iterable[str], str], dict | None]) -> SameFile:
    """Register ``method`` as saving and loading through ``codec``'s file (its registered method name).

    ``tensor_keys`` adds the method's layer classes to that codec's (attribute → peft suffix, as in
    :class:`Codec`); ``claims`` is :attr:`SameFile.claims`.
    """
    _check_new(method)
    if codec not in _CODECS:
        raise ValueError(f"codec={codec!r}: no peft codec of that name is registered (register it first); "
                         f"registered: {sorted(_CODECS)}")
    shared = sorted(cls.__name__ for cls in tensor_keys if cls in _CODECS[codec].tensor_keys)
    if shared:
        raise ValueError(f"tensor_keys: layer class(es) {shared} already have tensor keys in the {codec!r} codec")
    _CODECS[codec] = replace(_CODECS[codec], tensor_keys={**_CODECS[codec].tensor_keys, **tensor_keys})
    same = SameFile(method=method, codec=codec, claims=claims)
    _SAME_FILE[method] = same
    return same


def register_wrapper_codec(codec: WrapperCodec) -> WrapperCodec:
    """Register the file codec of a model-level method (called once, in the method's file); returns it."""
    if not isinstance(codec, WrapperCodec):
        raise TypeError(f"codec must be a WrapperCodec, got {type(codec).__name__}")
    _check_new(codec.method)
    _WRAPPERS[codec.method] = codec
    return codec


def _check_new(method: str) -> None:
    if method in _CODECS or method in _SAME_FILE or method in _WRAPPERS:
        raise ValueError(f"a peft codec for method {method!r} is already registered")


def wrapper_codec_for_model(model: nn.Module) -> WrapperCodec | None:
    """The codec of the model-level method whose wrapper ``model`` is, or ``None``."""
    return next((c for c in _WRAPPERS.values() if isinstance(model, c.wrapper)), None)


def wrapper_codec_for_file(cfg: dict) -> WrapperCodec | None:
    """The model-level codec that reads the peft ``adapter_config.json`` dict ``cfg`` (by ``peft_type``), or ``None``."""
    return next((c for c in _WRAPPERS.values() if cfg.get("peft_type") == c.peft_type), None)


def codecs() -> dict[str, Codec]:
    """The codec of every method peftlab can exchange with peft, by method name (in registration order)."""
    return dict(_CODECS)


def same_file_methods(codec: str) -> list[SameFile]:
    """The methods registered as saving through ``codec``'s file."""
    return [s for s in _SAME_FILE.values() if s.codec == codec]


def codec_for_method(method: str) -> Codec | None:
    """The codec that writes ``method``'s adapters (another method's for a :class:`SameFile` one), or ``None``."""
    same = _SAME_FILE.get(method)
    return _CODECS.get(same.codec if same is not None else method)


def codec_for_file(cfg: dict) -> Codec | None:
    """The codec that accepts the peft ``adapter_config.json`` dict ``cfg``, or ``None``."""
    return next((codec for codec in _CODECS.values() if codec.accepts(cfg)), None)


def supported() -> list[str]:
    """The file kinds the registered codecs read, as error messages list them (``LORA (use_dora=false)``, …)."""
    return [_LABELS[method] for method in _CODECS] + [c.peft_type for c in _WRAPPERS.values()]


# ---------------------------------------------------------------------- the two files
def read_config(folder: Path) -> dict:
    """``folder``'s ``adapter_config.json`` as a dict; a missing file, bad JSON or a non-object raises, naming it."""
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


def read_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """``folder``'s ``adapter_model.safetensors`` by key (never unpickled); a missing or unreadable file raises."""
    path = folder / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable safetensors file: {exc}") from None


def write_files(folder: Path, tensors: dict[str, torch.Tensor], peft_config: dict) -> Path:
    """Write both files into ``folder`` (created if needed), each atomically; returns ``folder``.

    The tensors as safetensors with peft's ``{"format": "pt"}`` metadata; the config as JSON indented by 2, with
    a final newline.
    """
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_with(folder / WEIGHTS_NAME, lambda p: save_file(tensors, p, metadata={"format": "pt"}))
    atomic_write_with(folder / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(peft_config, indent=2) + "\n"))
    return folder
