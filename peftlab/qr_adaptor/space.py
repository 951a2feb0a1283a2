"""The search space: per-unit bit-widths and ranks (the authors' sets), and the search units of a model."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from torch import nn

from peftlab.core.targets import LLAMA_LINEARS
from peftlab.quant.lowbit import (
    SUPPORTED_BITS,
)

SEARCH_BITS = (2, 3, 4, 8)
#: The default rank set (small: the tiny LM's layers are 96 wide).
SEARCH_RANKS = (2, 4, 8)

LayerChoice = tuple[int, int]          # (bits, rank) of one search unit
Config = tuple[LayerChoice, ...]       # one choice per search unit, in SearchSpace.layers order


def _check_int_set(name: str, values, allowed: Iterable[int] | None = None) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty: the search space needs at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {v!r}")
    if allowed is not None:
        allowed = tuple(allowed)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name}={values!r}: {bad} not supported; allowed: {allowed}")
    elif any(v < 1 for v in values):
        raise ValueError(f"{name}={values!r}: ranks must be ints ≥ 1")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r} repeats a value")
    return tuple(sorted(values))


@dataclass(frozen=True)
class SearchSpace:
    """The per-unit choices: ``layers`` (names of the search units), ``bits`` ⊆ :data:`SUPPORTED_BITS`,
    ``ranks`` (ints ≥ 1). Both value sets are kept sorted (the "ladders" that moves step along)."""

    layers: tuple[str, ...]
    bits: tuple[int, ...] = SEARCH_BITS
    ranks: tuple[int, ...] = SEARCH_RANKS

    def __post_init__(self) -> None:
        if isinstance(self.layers, str) or not isinstance(self.layers, Iterable):
            raise TypeError(f"layers must be a sequence of unit names, got {self.layers!r}")
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("layers is empty: the search space needs at least one unit")
        if not all(isinstance(n, str) and n for n in layers) or len(set(layers)) != len(layers):
            raise ValueError(f"layers must be distinct non-empty strings, got {layers!r}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "bits", _check_int_set("bits", self.bits, SUPPORTED_BITS))
        object.__setattr__(self, "ranks", _check_int_set("ranks", self.ranks))

    @property
    def size(self) -> int:
        """Number of configurations: ``(|Q|·|R|)^L``."""
        return (len(self.bits) * len(self.ranks)) ** len(self.layers)

    def uniform(self, bits: int, rank: int) -> Config:
        """The same ``(bits, rank)`` on every unit (``bits``/``rank`` must be supported, not necessarily searched)."""
        _check_int_set("bits", (bits,), SUPPORTED_BITS)
        _check_int_set("ranks", (rank,))
        return tuple((bits, rank) for _ in self.layers)

    def check(self, config) -> Config:
        """``config`` as a tuple of ``(bits, rank)`` pairs, validated against this space."""
        try:
            config = tuple((int(b), int(r)) for b, r in config)
        except (TypeError, ValueError):
            raise TypeError(f"config must be a sequence of (bits, rank) pairs, got {config!r}") from None
        if len(config) != len(self.layers):
            raise ValueError(f"config has {len(config)} entries; the space has {len(self.layers)} layers")
        for name, (b, r) in zip(self.layers, config, strict=True):
            if b not in self.bits:
                raise ValueError(f"config[{name!r}] bits={b} is not in the search space's bits {self.bits}")
            if r not in self.ranks:
                raise ValueError(f"config[{name!r}] rank={r} is not in the search space's ranks {self.ranks}")
        return config


def layer_groups(model: nn.Module, by: str = "layer",
                 targets: Sequence[str] = LLAMA_LINEARS) -> dict[str, list[str]]:
    """Search units of a decoder: ``by="layer"`` → one unit per decoder layer (``model.layers.3``) holding its
    target Linears; ``by="linear"`` → one unit per Linear. Values are full module names."""
    if by not in ("layer", "linear"):
        raise ValueError(f"by={by!r} is not allowed: expected 'layer' or 'linear'")
    out: dict[str, list[str]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            m = re.match(r"(.*\.layers\.\d+)\.", name)
            if m is None:
                continue
            out.setdefault(m.group(1) if by == "layer" else name, []).append(name)
    if not out:
        raise ValueError(f"model has no Linear named {list(targets)} inside a '.layers.<i>.' block")
    return out
