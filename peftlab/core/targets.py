"""Find the layers an adapter targets, swap them for wrapped layers, freeze the rest, count parameters.

This is the one mechanism every weight-space method in peftlab uses (LoRA, DoRA, WaveFT, VB-LoRA, IA³):

1. :func:`find_targets` turns ``target_modules`` into the list of module names to wrap, with the same
   matching rule as Hugging Face peft:

   * a **list of names** matches a module whose full name equals an entry or ends with ``"." + entry``
     (``"query"`` matches ``bert.encoder.layer.0.attention.self.query``);
   * a **single string** is a regular expression that must match the *whole* module name
     (``r".*layer\\.0.*\\.(query|value)"``).

2. :func:`replace_modules` builds every replacement first and only then swaps them in, so a bad
   argument never leaves a model half-modified.

3. :func:`count_parameters` reports trainable / total parameters, like peft's
   ``print_trainable_parameters``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from peftlab.core import argcheck

#: the seven Linear layers of every Llama/Qwen2 decoder block (attention, then the SwiGLU MLP)
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

__all__ = [
    "LLAMA_LINEARS",
    "check_target_fields",
    "ParameterCount",
    "matches_suffix",
    "modules_matching",
    "pattern_key",
    "count_parameters",
    "find_targets",
    "get_submodule_parent",
    "replace_modules",
]


def check_target_fields(target_modules, modules_to_save) -> tuple[str | list[str], list[str]]:
    """A config's ``target_modules`` (a list of name suffixes, or one regex string) and ``modules_to_save`` (a list
    of module names), checked and returned as a list / string and a list."""
    if isinstance(target_modules, (tuple, list)):
        target_modules = list(target_modules)
    elif not isinstance(target_modules, str):
        raise TypeError(f"target_modules must be a list of names or one regex string, got {target_modules!r}")
    return target_modules, argcheck.name_list("modules_to_save", modules_to_save)


def matches_suffix(name: str, key: str) -> bool:
    """The suffix rule (peft's): module ``name`` is ``key`` or ends with ``"." + key``.

    ``"query"`` matches ``bert.encoder.layer.0.attention.self.query``; ``"layer.0.attention.self.query"``
    matches it too; ``"uery"`` does not. Every place in peftlab that matches module names uses this.
    """
    return name == key or name.endswith("." + key)


def _matches(name: str, target_modules: str | Sequence[str]) -> bool:
    if isinstance(target_modules, str):
        return re.fullmatch(target_modules, name) is not None
    return any(matches_suffix(name, key) for key in target_modules)


def pattern_key(pattern_keys: Iterable[str], name: str) -> str | None:
    """The first key of a per-layer pattern (``rank_pattern``, ``alpha_pattern``) that selects ``name``.

    As in peft, a key is a regular expression matched against the end of the module name at a ``.``
    boundary: ``"value"`` selects ``…self.value``; ``"layer\\.0\\..*value"`` selects layer 0's value.
    ``None`` when no key selects ``name`` (the config's global value applies).
    """
    for key in pattern_keys:
        if re.match(rf"(.*\.)?({key})$", name):
            return key
    return None


def modules_matching(model: nn.Module, key: str) -> list[str]:
    """Names of the modules of ``model`` that ``key`` selects by the suffix rule."""
    return [name for name, _ in model.named_modules() if name and matches_suffix(name, key)]


def _leaf_suffixes(model: nn.Module, kinds: tuple[type, ...]) -> list[str]:
    return sorted({name.rsplit(".", 1)[-1] for name, mod in model.named_modules() if name and isinstance(mod, kinds)})


def find_targets(
    model: nn.Module,
    target_modules: str | Sequence[str],
    allowed: tuple[type, ...] = (nn.Linear,),
    wrapped: tuple[type, ...] = (),
) -> list[str]:
    """Names of the modules of ``model`` selected by ``target_modules``.

    ``allowed`` are the layer types a method can wrap; ``wrapped`` are that method's own wrapper types
    (a module already wrapped matches too, so a second adapter can be added to it). A module inside a
    wrapper (its ``base_layer``) is never a target itself.

    Raises ``ValueError`` when nothing matches (listing the names that exist) and ``TypeError`` when a
    matched module is of a type the method cannot wrap.
    """
    if isinstance(target_modules, str):
        if not target_modules:
            raise ValueError("target_modules must not be an empty string")
        try:
            re.compile(target_modules)
        except re.error as exc:
            raise ValueError(f"target_modules={target_modules!r} is not a valid regular expression: {exc}") from None
    else:
        target_modules = list(target_modules) if target_modules is not None else []
        if not target_modules:
            raise ValueError("target_modules must name at least one module, e.g. ['query', 'value']")
        bad = [t for t in target_modules if not isinstance(t, str) or not t]
        if bad:
            raise TypeError(f"target_modules entries must be non-empty strings, got {bad!r}")

    inside_wrapper: set[str] = set()
    for name, mod in model.named_modules():
        if wrapped and isinstance(mod, wrapped):
            inside_wrapper.update(f"{name}.{sub}" if name else sub for sub, _ in mod.named_modules() if sub)

    names: list[str] = []
    for name, mod in model.named_modules():
        if not name or name in inside_wrapper or not _matches(name, target_modules):
            continue
        if isinstance(mod, allowed) or (wrapped and isinstance(mod, wrapped)):
            names.append(name)
        else:
            kinds = ", ".join(k.__name__ for k in allowed)
            raise TypeError(f"target module {name!r} is a {type(mod).__name__}; this method can only wrap {kinds}")
    if not names:
        existing = _leaf_suffixes(model, allowed + wrapped)
        raise ValueError(
            f"target_modules={target_modules!r} matched no module. "
            f"Layers this method can wrap are named: {existing}"
        )
    return names


def get_submodule_parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """``(parent, attribute)`` such that ``getattr(parent, attribute)`` is the module called ``name``."""
    if "." in name:
        parent_name, child = name.rsplit(".", 1)
        return model.get_submodule(parent_name), child
    return model, name


def replace_modules(
    model: nn.Module, names: Iterable[str], factory: Callable[[str, nn.Module], nn.Module]
) -> dict[str, nn.Module]:
    """Replace each named module by ``factory(name, old_module)``; all-or-nothing.

    Every replacement is built before the first one is swapped in: if ``factory`` raises for any layer,
    the model is unchanged.
    """
    names = list(names)
    built = {name: factory(name, model.get_submodule(name)) for name in names}
    for name, new in built.items():
        parent, attr = get_submodule_parent(model, name)
        setattr(parent, attr, new)
    return built


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameter counts of a model."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count parameters once each (shared tensors, e.g. a tied embedding or a shared bank, count once).

    A quantized layer keeps its frozen weight as packed buffers and reports the weight's element count as
    ``quantized_numel``; those elements count as frozen parameters (peft counts a 4-bit weight the same way).
    """
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:
            continue
        seen.add(id(param))
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    total += sum(getattr(m, "quantized_numel", 0) for m in model.modules())
    return ParameterCount(trainable=trainable, total=total)
