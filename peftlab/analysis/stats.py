"""Comparing two methods: per-example paired comparisons with an interval and a verdict
(:func:`paired_comparison`, Holm's correction for several at once, :func:`sample_size` for planning), and the
older per-seed helpers below (paired differences over seeds, the t verdict, seeds needed).

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
from dataclasses import dataclass

import numpy as np

__all__ = ["T975", "PairedComparison", "holm", "paired_comparison", "paired_difference", "sample_size",
           "seeds_needed", "t_critical", "verdict"]

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


# --------------------------------------------------------------------------- per-example paired comparison
@dataclass(frozen=True)
class PairedComparison:
    """The outcome of :func:`paired_comparison`. ``diff`` > 0 favours ``a`` (the sign is already flipped
    when lower is better); ``low``/``high`` bound it at ``confidence``; ``verdict`` ∈ {"a", "b", "tie"}."""

    diff: float
    low: float
    high: float
    verdict: str
    p_value: float
    n_seeds: int
    n_examples: int
    min_effect: float
    confidence: float

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return (f"{self.diff:+.4f} [{pct}% CI {self.low:+.4f}, {self.high:+.4f}] → {self.verdict} "
                f"({self.n_seeds} seed(s) × {self.n_examples} examples, min effect {self.min_effect:g})")


def _scores(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected per-example scores (numbers), shaped (n_seeds, n_examples) or "
                         f"(n_examples,)") from None
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] < 2 or arr.shape[0] < 1:
        raise ValueError(f"{name}: expected shape (n_seeds, n_examples) or (n_examples,) with at least 2 examples, "
                         f"got {tuple(np.shape(x))}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: holds NaN or inf at {np.argwhere(~np.isfinite(arr))[0].tolist()}; every score "
                         f"must be a finite number")
    return arr


def paired_comparison(a, b, *, min_effect=0.005, higher_is_better=True, confidence=0.95, seed=0):
    """Compare two methods on the same test examples: their mean difference, its interval and a verdict.

    ``a``, ``b``: per-example scores (correctness 0/1, or a per-example loss) of the two methods, shaped
    ``(n_seeds, n_examples)`` or ``(n_examples,)``, paired by position (row s of both: the same seed; column
    i: the same test example). With ``D[s, i] = a[s, i] − b[s, i]`` (negated when ``higher_is_better`` is
    False, so a positive difference always favours ``a``):

        diff = mean over seeds and examples of D

    and its ``confidence`` interval from a two-way (crossed) bootstrap: each of 4,000 replicates draws the
    seeds with replacement *and* the test examples with replacement and takes the mean of D over the drawn
    rows and columns, so the interval widens with test-set sampling error (a finite test set) and with
    seed-to-seed variance (one seed: examples only). ``verdict`` names a winner only when the interval
    excludes 0 **and** ``|diff| ≥ min_effect``; otherwise "tie". ``p_value``: the two-sided bootstrap p-value
    of diff = 0 (for :func:`holm`).

    Raises ``ValueError`` naming the argument for shapes that differ, NaN or inf, a negative
    ``min_effect`` or a ``confidence`` outside (0, 1).
    """
    A, B = _scores(a, "a"), _scores(b, "b")
    if A.shape != B.shape:
        raise ValueError(f"b: shape {B.shape} differs from a's {A.shape}; the two must hold the same seeds and "
                         f"test examples, paired by position")
    if not (isinstance(min_effect, (int, float)) and math.isfinite(min_effect) and min_effect >= 0):
        raise ValueError(f"min_effect={min_effect!r}: expected a finite number ≥ 0 (the smallest difference of interest)")
    if not (isinstance(confidence, (int, float)) and 0 < confidence < 1):
        raise ValueError(f"confidence={confidence!r}: expected a number in (0, 1), e.g. 0.95")
    D = (A - B) if higher_is_better else (B - A)
    S, N = D.shape
    diff = float(D.mean())
    rng = np.random.default_rng(seed)
    reps = 4000
    seed_w = rng.multinomial(S, np.full(S, 1.0 / S), size=reps) if S > 1 else np.ones((reps, 1))
    ex_w = rng.multinomial(N, np.full(N, 1.0 / N), size=reps)
    boot = ((seed_w @ D) * ex_w).sum(axis=1) / (S * N)
    alpha = 1.0 - confidence
    low, high = (float(v) for v in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    p_value = float(min(1.0, 2 * min((boot <= 0).mean(), (boot >= 0).mean())))
    if low > 0 and diff >= min_effect:
        verdict = "a"
    elif high < 0 and diff <= -min_effect:
        verdict = "b"
    else:
        verdict = "tie"
    return PairedComparison(diff, low, high, verdict, p_value, S, N, float(min_effect), float(confidence))


def holm(p_values, alpha: float = 0.05) -> list[bool]:
    """Holm's step-down correction for a family of comparisons: ``True`` where the hypothesis "no
    difference" is rejected at family-wise level ``alpha``. Sort the m p-values ascending; reject the k-th
    (k = 1 … m) while p_(k) ≤ alpha / (m − k + 1), and stop at the first that is not."""
    ps = [float(p) for p in p_values]
    if any(not (0 <= p <= 1) for p in ps):
        raise ValueError(f"p_values={p_values!r}: expected numbers in [0, 1]")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r}: expected a number in (0, 1)")
    rejected = [False] * len(ps)
    for rank, i in enumerate(sorted(range(len(ps)), key=ps.__getitem__)):
        if ps[i] > alpha / (len(ps) - rank):
            break
        rejected[i] = True
    return rejected


def sample_size(min_effect: float, sd: float, *, power: float = 0.8, confidence: float = 0.95) -> int:
    """How many independent paired units (test examples, or seeds) a two-sided test at ``confidence`` needs
    to detect a true mean difference of ``min_effect`` with probability ``power``, when one unit's difference
    has standard deviation ``sd`` (normal approximation):

        n = ⌈((z_{1−α/2} + z_power) · sd / min_effect)²⌉

    For 0/1 correctness of two methods on the same examples, sd² = P(they disagree) − diff²; for seeds, sd is
    the spread of the per-seed mean difference."""
    from statistics import NormalDist

    if not (math.isfinite(min_effect) and min_effect > 0):
        raise ValueError(f"min_effect={min_effect!r}: expected a number > 0")
    if not (math.isfinite(sd) and sd >= 0):
        raise ValueError(f"sd={sd!r}: expected a finite number ≥ 0")
    if not 0 < power < 1 or not 0 < confidence < 1:
        raise ValueError(f"power={power!r}, confidence={confidence!r}: expected numbers in (0, 1)")
    z = NormalDist().inv_cdf
    return max(2, math.ceil(((z(1 - (1 - confidence) / 2) + z(power)) * sd / min_effect) ** 2))
