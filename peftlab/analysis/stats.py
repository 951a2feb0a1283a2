"""Comparing two methods on the same test examples: :func:`paired_comparison` (a difference, its interval
and a verdict), :func:`holm` (a family of comparisons at once) and :func:`sample_size` (planning: how many
test examples or seeds a minimum effect of interest needs).

Two methods evaluated on the same test examples, trained with the same seeds, are *paired* (대응표본): the
difference D[s, i] = score(a, s, i) − score(b, s, i) removes what the two share — which examples are hard,
the data order and head initialisation of seed s. Its mean has two sources of error: the test set is a
sample of examples (a finite test set's sampling error, binomial SE ≈ √(p(1−p)/n) for one method), and
training is a sample of seeds. :func:`paired_comparison` resamples both (a crossed bootstrap) for its
interval, and names a winner only when the interval excludes 0 and the difference reaches a stated minimum
effect of interest: a gap smaller than that is a tie even when it is 유의하다 (statistically significant).
Every verdict the course prints comes from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedComparison", "holm", "paired_comparison", "sample_size"]


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
    per_example = (seed_w @ D) / S  # (reps, N): each replicate's drawn seeds, averaged, for every example
    drawn = rng.integers(0, N, size=(reps, N))  # each replicate's test examples, drawn with replacement
    boot = np.take_along_axis(per_example, drawn, axis=1).mean(axis=1)
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
