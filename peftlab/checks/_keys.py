"""PEFTLAB ANSWER KEYS — the fixed answers of the reasoning items, read by :func:`peftlab.checks._core.answer_key`.

This file stays with the instructor: ``peftlab build-student --release`` leaves it out (and refuses to build a
release that contains the marker on the first line), so a student release's public checks validate these
items' form only and the grader, running the instructor's copy, scores them. Answers that follow from the
student's own measurement are not keys: their checks compute them from the numbers they are given.
"""

KEYS: dict[str, object] = {}
KEYS.update({
    # Week 01, 1.3 (options: merged speed — same as the base layer / slower; after merging — W0 comes back by
    # subtracting sBA / cannot be recovered): merged, W0 + sBA has the base layer's shape and cost, and
    # unmerge (subtract sBA) restores W0, so the adapter can still be swapped
    "01:1.3": "b",
    # Week 02, 2.1: LoRA's ΔW = sBA lies in the column space of B (rank ≤ r); WaveFT's ΔW is a sum of n rank-one
    # 2×2 Haar patterns at fixed random positions, so its rank is rank(Q) — bounded by the rows and columns those
    # positions touch, not by r (a: same bound at the same budget, b: LoRA > r after training, c: always full
    # rank are contradicted by the measured ranks)
    "02:2.1": "d",
    # Week 03, 3.1: DoRA's ΔW = (diag(c) − I)·W0 + s·diag(c)·BA with c = m / ‖W0 + sBA‖_row: a row rescaling of W0
    # (out extra numbers) plus a rank-r term — high numerical rank, but only `out` extra degrees of freedom
    # (a: full-FT expressiveness, b: the detach makes BA high-rank, d: float32 rounding noise are wrong)
    "03:3.1": "c",
    # Week 07, E1: the real flaws of the lecture's PEFTComparison (d, j, k, l are not)
    "07:E1": frozenset("abcefghi"),
    # Week 07, 7.2: which of the reasoning statements (d)–(g) hold ((a)–(c) are decided by the measurement): d true
    # (T4 has no bf16), e false (merging into NF4 re-quantizes), f true (0.5 → ≈0.127 bits per parameter), g false
    # (A, B stay 16/32-bit)
    "07:7.2": frozenset("df"),
})
