"""The comparison's method table and the ``--methods`` / ``--seeds`` it accepts.

:data:`METHODS` is :data:`FULL` (full fine-tuning, the comparison's own baseline) followed by every recipe the
registered methods declare beside themselves (:func:`methods_from_registry`); :data:`ALIASES` maps the names the
comparison used before it took the registry's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from peftlab.core.recipe import TASKS


@dataclass(frozen=True)
class Method:
    """How one method turns a freshly loaded model into the model to train (``build(model, task)``)."""

    name: str
    summary: str
    build: Callable
    tasks: tuple[str, ...] = TASKS


def _full(model, task):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


#: the comparison's own baseline, which is no registered method: every parameter trained
FULL = Method("full", "full fine-tuning: every parameter", _full)

#: the names ``peftlab compare`` used before it took the registry's; still accepted by ``--methods``,
#: ``CompareConfig.learning_rates`` and :func:`per_example_scores`, and mapped to the registry's name
ALIASES = {"adapter": "houlsby", "prompt": "prompt_tuning", "prefix": "prefix_tuning"}


def methods_from_registry() -> dict[str, Method]:
    """The comparison's method table: :data:`FULL`, then every recipe the registered methods declare
    (``register_method(..., recipe=..., variants=...)``, in the registry's order, a method's variants after it),
    each under its registry name (a variant under its own: LoRA's ``"rslora"``)."""
    from peftlab.core.tuner import registry

    table = {FULL.name: FULL}
    for spec in registry().values():
        for name, recipe in spec.recipes.items():
            table[name] = Method(name, recipe.summary, recipe.build, recipe.tasks)
    return table


#: name → :class:`Method`, derived from the registry when this module is imported (:func:`methods_from_registry`)
METHODS: dict[str, Method] = methods_from_registry()


def canonical_method(name: str) -> str:
    """``name``, or the registry's name for an old alias (:data:`ALIASES`: ``"adapter"`` → ``"houlsby"``, …)."""
    return ALIASES.get(name, name)


def known_methods() -> list[str]:
    return list(METHODS)


def _alias_note() -> str:
    return ", ".join(f"{old} → {new}" for old, new in ALIASES.items())


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list of known method names (order kept, duplicates dropped). The old names
    of :data:`ALIASES` are accepted and become the registry's (``"adapter"`` → ``"houlsby"``, …)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return known_methods()
    if not names:
        raise ValueError(f"--methods is empty; known methods: {', '.join(known_methods())} (or 'all')")
    unknown = [n for n in names if canonical_method(n) not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)}; known methods: "
                         f"{', '.join(known_methods())} (or 'all'; old names accepted: {_alias_note()})")
    return list(dict.fromkeys(canonical_method(n) for n in names))


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    try:
        seeds = [int(s) for s in items if str(s) != ""]
    except ValueError:
        raise ValueError(f"--seeds={text!r}: expected comma-separated integers such as 0,1,2") from None
    if not seeds:
        raise ValueError("--seeds is empty: give at least one seed, e.g. --seeds 0,1,2")
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds={text!r}: seeds must be ≥ 0")
    return list(dict.fromkeys(seeds))
