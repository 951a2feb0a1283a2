"""Comparing two methods over seeds: paired differences, when a difference is resolved, seeds needed.

Two methods trained with the same seeds share the data order and the head's initialisation, so the
comparison is *paired*: for every seed s that both finished, d_s = metric(a, s) − metric(b, s). With n
such seeds,

    mean d̄ = Σ d_s / n,   std s_d = sqrt(Σ (d_s − d̄)² / (n − 1)),   standard error se = s_d / √n.

The difference is **resolved** when |d̄| > t_{0.975, n−1} · se, the two-sided 95 % interval of a paired
t-test; otherwise the seeds cannot tell the methods apart ("tie"). The Student-t quantiles below are the
standard table values (t_{0.975, 2} = 4.303: three seeds need a gap of more than 2.5 standard deviations
of the per-seed difference). Beyond 30 degrees of freedom the normal quantile 1.96 is used.

Seeds needed: the smallest n ≥ 2 for which a gap of the observed size d̄ with the observed spread s_d
would be resolved, |d̄| > t_{0.975, n−1} · s_d / √n — a planning number for the next experiment, not a
promise (d̄ and s_d are themselves estimates from few seeds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["T975", "t_critical", "paired_difference", "verdict", "seeds_needed"]

#: two-sided 95 % Student-t quantiles t_{0.975, df} for df = 1 … 30
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_critical(df: int) -> float:
    """t_{0.975, df}: the table value for df ≤ 30, else 1.96."""
    if not isinstance(df, int) or isinstance(df, bool) or df < 1:
        raise ValueError(f"df={df!r}: expected an integer ≥ 1 (seeds − 1)")
    return T975[df - 1] if df <= len(T975) else 1.96


def paired_difference(records: Sequence[dict], a: str, b: str, key: str = "value") -> dict:
    """Per-seed differences ``a − b`` of ``key`` over the seeds where both methods' cells are ``ok``.

    ``records`` are cells of ``peftlab compare`` (dicts with ``method``, ``seed``, ``status`` and ``key``),
    in any order. Returns ``{"n", "mean", "std", "se", "diffs"}``; ``std`` and ``se`` are NaN when n < 2.
    """
    def by_seed(method):
        rows = {}
        for r in records:
            if r.get("method") == method and r.get("status", "ok") == "ok":
                if r["seed"] in rows:
                    raise ValueError(f"method {method!r} has two cells for seed {r['seed']}")
                rows[r["seed"]] = float(r[key])
        return rows

    ra, rb = by_seed(a), by_seed(b)
    if not ra or not rb:
        missing = [m for m, rows in ((a, ra), (b, rb)) if not rows]
        raise ValueError(f"no finished cells of {', '.join(map(repr, missing))} in the records")
    seeds = sorted(set(ra) & set(rb))
    diffs = [ra[s] - rb[s] for s in seeds]
    n = len(diffs)
    if n == 0:
        raise ValueError(f"{a!r} and {b!r} share no finished seed")
    mean = sum(diffs) / n
    std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": std, "se": std / math.sqrt(n) if n > 1 else float("nan"),
            "diffs": dict(zip(seeds, diffs, strict=True))}


def verdict(diff: dict, a: str = "a", b: str = "b") -> str:
    """``a`` or ``b`` when the paired difference is resolved in that method's favour, else ``"tie"``."""
    n, mean, se = diff["n"], diff["mean"], diff["se"]
    if n < 2 or not math.isfinite(se):
        return "tie"
    if se == 0:
        return "tie" if mean == 0 else (a if mean > 0 else b)
    if abs(mean) <= t_critical(n - 1) * se:
        return "tie"
    return a if mean > 0 else b


def seeds_needed(mean: float, std: float, limit: int = 1000) -> int | None:
    """The smallest n ≥ 2 with |mean| > t_{0.975, n−1} · std / √n; ``None`` if no n ≤ ``limit`` does
    (a zero gap is never resolved)."""
    if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
        raise ValueError(f"mean={mean!r}, std={std!r}: expected finite numbers, std ≥ 0")
    if mean == 0:
        return None
    for n in range(2, limit + 1):
        if abs(mean) > t_critical(n - 1) * std / math.sqrt(n):
            return n
    return None
