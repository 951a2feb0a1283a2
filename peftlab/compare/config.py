"""What two comparisons must share (:class:`CompareConfig`) and the learning rates they train with.

:data:`LEARNING_RATES` holds the winners of the stored learning-rate sweeps (``peftlab/compare_lr/<sweep>.json``,
one file per task and training-set size, :func:`sweep_name`); ``--config`` files are read by
:func:`load_config_file`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peftlab.compare.methods import METHODS, _alias_note, canonical_method
from peftlab.core.recipe import TASKS

LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
#: seeds of the learning-rate sweeps: disjoint from the test seeds (0, 1, 2) of every stored comparison
TUNE_SEEDS = (100, 101)
#: grid steps a learning-rate sweep may add beyond either edge of LR_GRID when the best rate is on that edge
LR_MAX_EXTEND = 2

#: the stored learning-rate sweeps (``peftlab/compare_lr/``, beside this package): one ``<sweep>.json`` per
#: :func:`sweep_name`, every score kept
LR_FOLDER = Path(__file__).parent.with_name("compare_lr")


def sweep_name(task: str, train_size: int | None) -> str:
    """Name of the learning-rate sweep for ``task`` trained on ``train_size`` examples (None: all):
    ``sentiment``, ``sentiment_n100``, … (the file ``peftlab/compare_lr/<name>.json``)."""
    return task if train_size is None else f"{task}_n{train_size}"


def _swept_rates() -> dict[str, dict[str, float]]:
    """``compare_lr/<sweep>.json``: the learning-rate sweeps behind :data:`LEARNING_RATES` (every score kept)."""
    out: dict[str, dict[str, float]] = {t: {} for t in TASKS}
    for path in sorted(LR_FOLDER.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[path.stem] = {m: float(v["best"]) for m, v in data["methods"].items() if v.get("best") is not None}
    return out


#: Learning rate per sweep and method: the best of LR_GRID on the validation split, mean over TUNE_SEEDS,
#: 150 steps, tiny profile, as measured by ``peftlab compare --tune-lr --task TASK [--train-size N] --methods ...
#: --out DIR`` (``make compare-lr``) and stored with all its scores in ``peftlab/compare_lr/<sweep>.json``.
#: Keys: :func:`sweep_name` (``"sentiment"``: every training example; ``"sentiment_n100"``: the first 100).
LEARNING_RATES: dict[str, dict[str, float]] = _swept_rates()


@dataclass
class CompareConfig:
    """Everything two comparisons must share for their cells to be comparable (pinned in config.json)."""

    task: str = "sentiment"
    profile: str = "tiny"
    steps: int = 150
    batch_size: int = 32
    train_size: int | None = None  # first N training examples (selection-guide experiments); None = all
    learning_rates: dict = field(default_factory=dict)  # per method; default: LEARNING_RATES[task]
    warmup_ratio: float = 0.06

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: expected one of {', '.join(TASKS)}")
        if self.profile not in ("tiny", "colab"):
            raise ValueError(f"profile={self.profile!r}: expected 'tiny' or 'colab'")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}={v!r}: expected a positive integer")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size <= 0):
            raise ValueError(f"train_size={self.train_size!r}: expected a positive integer or null")
        self.learning_rates = _canonical_keys(self.learning_rates, "learning_rates")
        for k, v in self.learning_rates.items():
            if k not in METHODS:
                raise ValueError(f"learning_rates: unknown method {k!r}; known methods: {', '.join(METHODS)}")
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"learning_rates[{k!r}]={v!r}: expected a positive finite number")

    def lr(self, method: str) -> float:
        return self.lr_source(method)[0]

    def lr_source(self, method: str) -> tuple[float, str]:
        """The learning rate of ``method`` and where it comes from: this configuration, the sweep for this
        training-set size, or (no such sweep) the sweep on every training example, said so."""
        if method in self.learning_rates:
            return float(self.learning_rates[method]), "config"
        own = sweep_name(self.task, self.train_size)
        if method in LEARNING_RATES.get(own, {}):
            return LEARNING_RATES[own][method], f"sweep {own}"
        if method in LEARNING_RATES.get(self.task, {}):
            return LEARNING_RATES[self.task][method], f"sweep {self.task} (every training example; no sweep for {own})"
        raise ValueError(f"method {method!r} has no learning rate for task {self.task!r}: sweep it with "
                         f"`peftlab compare --tune-lr --task {self.task} --methods {method} --out DIR`, "
                         f"or give one in --config ({{\"learning_rates\": {{\"{method}\": 0.001}}}})")

    def pinned(self) -> dict:
        d = asdict(self)
        known = set(self.learning_rates) | set(LEARNING_RATES.get(self.task, {})) | set(
            LEARNING_RATES.get(sweep_name(self.task, self.train_size), {}))
        d["learning_rates"] = {m: self.lr(m) for m in METHODS if m in known}
        return d


def _canonical_keys(table: dict, where: str) -> dict:
    """``table`` with the old method names of :data:`ALIASES` replaced by the registry's (order kept); an old and
    a new name of the same method both present is refused."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}={table!r}: expected a mapping of method name to value")
    out: dict = {}
    given: dict[str, str] = {}  # canonical name → the key it came from
    for k, v in table.items():
        name = canonical_method(k)
        if name in out:
            raise ValueError(f"{where}: {given[name]!r} and {k!r} name the same method ({_alias_note()}); give one")
        out[name], given[name] = v, k
    return out


def load_config_file(path: str | os.PathLike) -> dict:
    """Keys of a ``--config`` JSON file: any field of :class:`CompareConfig` (task, profile, steps,
    batch_size, train_size, learning_rates, warmup_ratio)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config={path}: no such file")
    data = json.loads(p.read_text(encoding="utf-8"))
    allowed = set(CompareConfig.__dataclass_fields__)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"--config {path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return data
