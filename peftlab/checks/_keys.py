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
    # Week 07, E1: the real flaws of the lecture's PEFTComparison (d, j, k, l are not)
    "07:E1": frozenset("abcefghi"),
    # Week 07, 7.2: which of the reasoning statements (d)–(g) hold ((a)–(c) are decided by the measurement): d true
    # (T4 has no bf16), e false (merging into NF4 re-quantizes), f true (0.5 → ≈0.127 bits per parameter), g false
    # (A, B stay 16/32-bit)
    "07:7.2": frozenset("df"),
})
