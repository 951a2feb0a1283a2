"""Moves on the ladders, the budget repair, and Phase I's warm start from the two sensitivities."""

from __future__ import annotations

import random
from collections.abc import Sequence

from peftlab.qr_adaptor.memory import MemoryModel
from peftlab.qr_adaptor.space import Config, LayerChoice, SearchSpace


def _step(values: tuple[int, ...], v: int, d: int) -> int | None:
    i = values.index(v) + d
    return values[i] if 0 <= i < len(values) else None


def repair(config: Sequence[LayerChoice], space: SearchSpace, memory: MemoryModel, budget: int,
           importance_q: Sequence[float] | None = None, importance_r: Sequence[float] | None = None,
           eps: float = 1e-3) -> Config:
    """Downgrade ``config`` until ``M ≤ budget``: each time apply the single one-rung downgrade (one unit's
    bits or its rank one step down its ladder) with the smallest ``(I(ℓ) + ε) / ΔM`` — least importance lost
    per byte saved (``I_q`` for a bit downgrade, ``I_r`` for a rank downgrade; ties: the first unit, bits
    before rank). Raises ``ValueError`` if ``budget`` is below the smallest configuration of ``space``."""
    config = space.check(config)
    low = memory.minimum(space)
    if budget < low:
        raise ValueError(f"budget={budget} bytes is below the smallest configuration of the search space "
                         f"({low} bytes: bits {space.bits[0]}, rank {space.ranks[0]} everywhere)")
    n = len(space.layers)
    iq = [0.0] * n if importance_q is None else [float(v) for v in importance_q]
    ir = [0.0] * n if importance_r is None else [float(v) for v in importance_r]
    if len(iq) != n or len(ir) != n:
        raise ValueError(f"importance_q / importance_r need one value per layer ({n})")
    cfg = list(config)
    size = memory.bytes(cfg)
    while size > budget:
        best = None
        for idx, (b, r) in enumerate(cfg):
            for kind, new in (("q", (_step(space.bits, b, -1), r)), ("r", (b, _step(space.ranks, r, -1)))):
                if None in new:
                    continue
                name = space.layers[idx]
                saved = memory.layer_bytes(name, b, r) - memory.layer_bytes(name, *new)
                if saved <= 0:
                    continue
                cost = ((iq if kind == "q" else ir)[idx] + eps) / saved
                if best is None or cost < best[0]:
                    best = (cost, idx, new)
        if best is None:  # cannot happen when budget ≥ minimum; kept as a guard
            raise ValueError(f"cannot repair {tuple(cfg)} to budget={budget}")
        _, idx, new = best
        size += memory.layer_bytes(space.layers[idx], *new) - memory.layer_bytes(space.layers[idx], *cfg[idx])
        cfg[idx] = new
    return tuple(cfg)


def mutate(config: Sequence[LayerChoice], space: SearchSpace, rng: random.Random, moves: int = 2) -> Config:
    """``moves`` random atomic edits: pick a unit, bits or rank, and step one rung up or down its ladder
    (a move off the end of a ladder is redrawn)."""
    cfg = list(space.check(config))
    done = 0
    while done < moves:
        idx = rng.randrange(len(cfg))
        kind = rng.choice("qr")
        d = rng.choice((-1, 1))
        b, r = cfg[idx]
        new = (_step(space.bits, b, d), r) if kind == "q" else (b, _step(space.ranks, r, d))
        if None in new:
            if len(space.bits) == 1 and len(space.ranks) == 1:
                break
            continue
        cfg[idx] = new
        done += 1
    return tuple(cfg)


def neighbours(config: Sequence[LayerChoice], space: SearchSpace) -> list[Config]:
    """Every configuration one rung away from ``config`` on one unit's bits or rank."""
    out = []
    for idx, (b, r) in enumerate(config):
        for new in ((_step(space.bits, b, -1), r), (_step(space.bits, b, 1), r),
                    (b, _step(space.ranks, r, -1)), (b, _step(space.ranks, r, 1))):
            if None not in new:
                out.append(tuple(config[:idx]) + (new,) + tuple(config[idx + 1:]))
    return out


# ============================================================================================ Phase I
def min_max(values: Sequence[float]) -> list[float]:
    """Min-max normalise to [0, 1]; all equal → all 0."""
    vals = [float(v) for v in values]
    lo, hi = min(vals), max(vals)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in vals]


def _round_to(values: tuple[int, ...], x: float) -> int:
    return min(values, key=lambda v: (abs(v - x), v))


def warm_start(importance_q: Sequence[float], importance_r: Sequence[float], space: SearchSpace) -> Config:
    """Phase I's mapping: ``q_ℓ = round_Q(q_min + (q_max − q_min)·Î_q(ℓ))`` and the same for ranks with
    ``Î_r``, ``Î`` the min-max normalised sensitivities; ``round_Q`` = the nearest allowed value (ties to the
    smaller)."""
    n = len(space.layers)
    if len(importance_q) != n or len(importance_r) != n:
        raise ValueError(f"importance_q and importance_r need one value per layer ({n}), "
                         f"got {len(importance_q)} and {len(importance_r)}")
    nq, nr = min_max(importance_q), min_max(importance_r)
    q0, q1, r0, r1 = space.bits[0], space.bits[-1], space.ranks[0], space.ranks[-1]
    return tuple((_round_to(space.bits, q0 + (q1 - q0) * a), _round_to(space.ranks, r0 + (r1 - r0) * c))
                 for a, c in zip(nq, nr, strict=True))
