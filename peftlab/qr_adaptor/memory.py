"""The memory model ``M(C)``: the stored base weights (:mod:`peftlab.quant.lowbit`) plus 16-bit LoRA factors."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from peftlab.qr_adaptor.space import LayerChoice, SearchSpace
from peftlab.quant import BLOCKSIZE
from peftlab.quant.lowbit import (
    weight_nbytes,
)

#: Bytes per LoRA parameter (adapters counted in 16 bits, as the paper does).
LORA_BYTES = 2


def lora_nbytes(in_features: int, out_features: int, rank: int) -> int:
    """Bytes of LoRA's ``A`` (r×in) and ``B`` (out×r) in 16 bits: ``2·r·(in + out)``."""
    return LORA_BYTES * rank * (in_features + out_features)


class MemoryModel:
    """``M(C)`` for a model: ``shapes[unit]`` lists the ``(out, in)`` of every Linear in the unit.

    ``bytes(config)`` = Σ_units Σ_Linears ``weight_nbytes(out·in, q) + lora_nbytes(in, out, r)``.
    """

    def __init__(self, shapes: dict[str, Sequence[tuple[int, int]]], blocksize: int = BLOCKSIZE):
        if not isinstance(shapes, dict) or not shapes:
            raise ValueError("shapes must be a non-empty dict: unit name → list of (out, in)")
        self.shapes = {k: [tuple(s) for s in v] for k, v in shapes.items()}
        for k, v in self.shapes.items():
            if not v or any(len(s) != 2 or min(s) < 1 for s in v):
                raise ValueError(f"shapes[{k!r}] must be a non-empty list of (out, in) pairs of ints ≥ 1")
        self.blocksize = blocksize
        self.layers = tuple(self.shapes)

    @classmethod
    def from_model(cls, model: nn.Module, groups: dict[str, list[str]], blocksize: int = BLOCKSIZE) -> MemoryModel:
        mods = dict(model.named_modules())
        return cls({u: [tuple(mods[n].weight.shape) for n in names] for u, names in groups.items()}, blocksize)

    def layer_bytes(self, layer: str, bits: int, rank: int) -> int:
        return sum(weight_nbytes(o * i, bits, self.blocksize) + lora_nbytes(i, o, rank) for o, i in self.shapes[layer])

    def bytes(self, config: Sequence[LayerChoice]) -> int:
        if len(config) != len(self.layers):
            raise ValueError(f"config has {len(config)} entries; the memory model has {len(self.layers)} layers")
        return sum(self.layer_bytes(name, b, r) for name, (b, r) in zip(self.layers, config, strict=True))

    def minimum(self, space: SearchSpace) -> int:
        """The smallest ``M`` in ``space`` (lowest bits and rank everywhere)."""
        return self.bytes(space.uniform(space.bits[0], space.ranks[0]))

    def maximum(self, space: SearchSpace) -> int:
        return self.bytes(space.uniform(space.bits[-1], space.ranks[-1]))
