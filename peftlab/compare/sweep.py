"""The learning-rate sweep behind :data:`~peftlab.compare.config.LEARNING_RATES` (``peftlab compare --tune-lr``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from peftlab.compare.cell import run_cell
from peftlab.compare.config import LR_GRID, LR_MAX_EXTEND, TUNE_SEEDS, CompareConfig
from peftlab.compare.methods import parse_methods, parse_seeds
from peftlab.compare.tasks import _task


def _half_decade(lr: float, up: bool) -> float:
    """The next rate of the 1-3-10 series (…, 1e-3, 3e-3, 1e-2, …) above or below ``lr``."""
    exp = math.floor(math.log10(lr) + 1e-9)
    one = 10.0**exp  # lr is about 1·10^exp or 3·10^exp
    if lr / one < 2:
        nxt = 3 * one if up else 0.3 * one
    else:
        nxt = 10 * one if up else one
    return float(f"{nxt:.3g}")


def tune_learning_rates(methods: Sequence[str], cfg: CompareConfig | None = None, grid: Sequence[float] = LR_GRID,
                        seeds: Sequence[int] = TUNE_SEEDS, log: Callable = print, known: dict | None = None,
                        max_extend: int = LR_MAX_EXTEND) -> dict[str, dict]:
    """For each method, the learning rate with the best validation metric, averaged over ``seeds`` (keep them
    disjoint from the seeds a comparison reports), and every point of the sweep. The sentiment task uses its
    validation split; the instruction task the last 20 % of its train split. ``cfg.train_size`` applies:
    tune once per training-set size.

    The sweep starts on ``grid``. When the best rate sits on an edge of what was tried, the sweep goes one
    grid step further out on that side (the 1-3-10 series: 1e-2 → 3e-2 → 1e-1; at most ``max_extend`` steps
    per side); a winner still on an edge after that is flagged (``edge``: "upper" or "lower", else None), so
    "the limit was reached" is recorded, not hidden. ``known`` holds mean scores already measured
    (``{method: {lr: score}}``, e.g. a stored sweep of the same seeds) that are not measured again.
    """
    import tempfile

    cfg = cfg or CompareConfig()
    grid = sorted(float(g) for g in grid)
    if len(grid) < 2 or grid[0] <= 0:
        raise ValueError(f"grid={grid!r}: expected at least two positive learning rates")
    seeds = parse_seeds(seeds)
    task = None
    table = {}
    for m in parse_methods(methods):
        scores = {float(k): float(v) for k, v in ((known or {}).get(m) or {}).items()}

        def score(lr: float, m: str = m, scores: dict = scores) -> float:
            nonlocal task
            lr = float(f"{lr:.3g}")
            if lr not in scores:
                task = task or _task(cfg, split="validation")
                c = CompareConfig(**{**asdict(cfg), "learning_rates": {m: lr}})
                values = []
                with tempfile.TemporaryDirectory() as tmp:
                    for seed in seeds:
                        try:
                            values.append(run_cell(c, m, seed, Path(tmp), task)["value"])
                        except Exception as exc:  # noqa: BLE001 - a diverging lr is a result of the sweep
                            values.append(float("nan"))
                            log(f"  {m} lr={lr:g} seed {seed}: {type(exc).__name__}: {exc}")
                scores[lr] = round(sum(values) / len(values), 5)
            return scores[lr]

        for lr in grid:
            score(lr)
        for _ in range(max_extend):
            finite = {k: v for k, v in scores.items() if v == v}
            if not finite:
                break
            best = max(finite, key=lambda k: (finite[k], -k))
            tried = sorted(scores)
            if best == tried[-1]:
                score(_half_decade(best, up=True))
            elif best == tried[0]:
                score(_half_decade(best, up=False))
            else:
                break
        scores = dict(sorted(scores.items()))
        finite = {k: v for k, v in scores.items() if v == v}
        best = max(finite, key=lambda k: (finite[k], -k)) if finite else None
        tried = sorted(scores)
        edge = None if best is None or len(tried) < 2 else (
            "upper" if best == tried[-1] else "lower" if best == tried[0] else None)
        table[m] = {"best": best, "scores": scores, "edge": edge}
        log(f"{m:<8} " + "  ".join(f"{lr:g}: {v:.4f}" for lr, v in scores.items()) + f"  → {best:g}"
            + (f"  (on the {edge} edge after {max_extend} extensions)" if edge else ""))
    return table
