"""How ``peftlab compare`` builds a method: the :class:`Recipe` each method registers beside itself.

A method's file passes ``recipe=Recipe(...)`` to :func:`peftlab.core.tuner.register_method` (and, for a named
setting of the same method that the comparison runs as a method of its own, ``variants={"rslora": Recipe(...)}``
in ``lora.py``). :mod:`peftlab.compare` builds its method table from the registry, so a new method joins the
comparison from its own file.

``Recipe.build(model, task)`` turns a freshly loaded model of ``task`` into the model to train; ``task`` is one
of :data:`TASKS`: ``"sentiment"`` (the tiny BERT classifier) or ``"instructions"`` (the tiny causal LM). The
facts every recipe shares live here: the task's target layers (:func:`targets`), the new head trained beside
every method (:func:`head`) and the seed of the cell (:func:`initial_seed`).

This module imports no method and not :mod:`peftlab.compare`: both import it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from peftlab.core.targets import LLAMA_LINEARS

__all__ = ["ENCODER_TARGETS", "LLAMA_TARGETS", "TASKS", "Recipe", "head", "initial_seed", "targets"]

#: the tasks of ``peftlab compare``
TASKS = ("sentiment", "instructions")
#: the encoder's (BERT's) linear layers a recipe targets on the sentiment task
ENCODER_TARGETS = ("query", "key", "value", "dense")
#: the causal LM's linear layers a recipe targets on the instruction task
LLAMA_TARGETS = LLAMA_LINEARS


def targets(task: str) -> tuple[str, ...]:
    """Every attention and MLP linear of the task's model: :data:`ENCODER_TARGETS` or :data:`LLAMA_TARGETS`."""
    return ENCODER_TARGETS if task == "sentiment" else LLAMA_TARGETS


def head(task: str) -> list[str]:
    """The new task head trained beside every method (the causal LM keeps its pretrained LM head)."""
    return ["classifier"] if task == "sentiment" else []


def initial_seed() -> int:
    """The seed of the cell being built (``torch.manual_seed(seed)`` runs before every recipe), below 2³¹."""
    import torch

    return torch.initial_seed() % (2**31)


@dataclass(frozen=True)
class Recipe:
    """How ``peftlab compare`` applies a method: ``build(model, task) -> model to train``.

    ``summary``: one line naming the setting (printed by ``peftlab compare``); ``tasks``: the tasks it supports
    (a subset of :data:`TASKS`).
    """

    summary: str
    build: Callable
    tasks: tuple[str, ...] = TASKS

    def __post_init__(self) -> None:
        if not isinstance(self.summary, str) or not self.summary.strip():
            raise ValueError(f"summary={self.summary!r}: expected a non-empty string")
        if not callable(self.build):
            raise TypeError(f"build must be callable (model, task) -> model, got {self.build!r}")
        bad = [t for t in self.tasks if t not in TASKS] if isinstance(self.tasks, tuple) else None
        if bad is None or bad or not self.tasks:
            raise ValueError(f"tasks={self.tasks!r}: expected a non-empty tuple of {', '.join(TASKS)}")
