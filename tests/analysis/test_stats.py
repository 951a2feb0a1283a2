"""paired_comparison (per-example paired verdicts), Holm's correction, sample_size; no verdict outside them."""

from __future__ import annotations

import math

import pytest

from peftlab.analysis import stats


def _correct(n, acc, rng):
    """0/1 correctness of n examples with accuracy acc (exactly round(acc·n) correct, shuffled)."""
    import numpy as np

    k = round(acc * n)
    x = np.array([1.0] * k + [0.0] * (n - k))
    rng.shuffle(x)
    return x


def test_identical_runs_are_a_tie():
    import numpy as np

    a = _correct(1000, 0.9, np.random.default_rng(0))
    r = stats.paired_comparison(a, a.copy())
    assert r.diff == 0 and r.low <= 0 <= r.high and r.verdict == "tie" and r.p_value == 1.0


def test_one_example_per_seed_out_of_1000_is_a_tie():
    import numpy as np

    rng = np.random.default_rng(1)
    b = np.stack([_correct(1000, 0.978, rng) for _ in range(3)])
    a = b.copy()
    for s in range(3):  # DoRA − LoRA = −0.001 on each of three seeds: one example each
        a[s, np.flatnonzero(b[s] == 1)[0]] = 0
    r = stats.paired_comparison(a, b)
    assert r.diff == pytest.approx(-0.001) and r.verdict == "tie", r
    # even where the interval would exclude 0, a difference below min_effect is not a winner
    r0 = stats.paired_comparison(a, b, min_effect=0.0)
    assert r0.verdict in ("tie", "b")


def test_a_ten_point_gap_on_2000_examples_is_resolved():
    import numpy as np

    rng = np.random.default_rng(2)
    b = _correct(2000, 0.80, rng)
    a = b.copy()
    wrong = np.flatnonzero(b == 0)
    a[wrong[:200]] = 1  # a fixes 200 of b's errors: +0.10
    r = stats.paired_comparison(a, b)
    assert r.diff == pytest.approx(0.10) and r.verdict == "a" and r.low > 0.08, r
    flipped = stats.paired_comparison(b, a)
    assert flipped.verdict == "b" and flipped.diff == pytest.approx(-0.10)


def test_a_small_gap_on_200_examples_is_a_tie():
    import numpy as np

    rng = np.random.default_rng(3)
    b = _correct(200, 0.85, rng)
    a = b.copy()
    a[np.flatnonzero(b == 0)[:6]] = 1                 # a right on 6 more …
    a[np.flatnonzero(b == 1)[:3]] = 0                 # … and wrong on 3 more: +0.015 net, 9 discordant
    r = stats.paired_comparison(a, b)
    assert r.diff == pytest.approx(0.015) and r.verdict == "tie" and r.low < 0 < r.high, r


def test_losses_lower_is_better_and_seed_variance_widens_the_interval():
    import numpy as np

    rng = np.random.default_rng(4)
    loss_b = rng.gamma(2.0, 0.5, size=(3, 500))
    loss_a = loss_b - 0.2 + rng.normal(0, 0.05, size=(3, 500))  # a has lower loss: a wins
    r = stats.paired_comparison(loss_a, loss_b, higher_is_better=False)
    assert r.diff == pytest.approx(0.2, abs=0.01) and r.verdict == "a"
    # a seed where the methods swap widens the interval past 0: seed variance counts
    swapped = loss_a.copy()
    swapped[2] = loss_b[2] + 0.4
    wide = stats.paired_comparison(swapped, loss_b, higher_is_better=False)
    assert wide.high - wide.low > 5 * (r.high - r.low) and wide.verdict == "tie", wide
    assert "CI" in str(r) and r.n_seeds == 3 and r.n_examples == 500


def test_paired_comparison_bad_input():
    import numpy as np

    ok = np.ones((2, 10))
    with pytest.raises(ValueError, match=r"^b: shape \(3, 10\) differs from a's \(2, 10\)"):
        stats.paired_comparison(ok, np.ones((3, 10)))
    with pytest.raises(ValueError, match=r"^a: holds NaN or inf"):
        stats.paired_comparison(np.array([1.0, float("nan"), 0.0]), np.ones(3))
    with pytest.raises(ValueError, match=r"^b: holds NaN or inf"):
        stats.paired_comparison(np.ones(3), np.array([1.0, float("inf"), 0.0]))
    with pytest.raises(ValueError, match=r"^a: expected shape"):
        stats.paired_comparison(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"^a: expected per-example scores"):
        stats.paired_comparison(["x", "y"], [1, 0])
    with pytest.raises(ValueError, match="min_effect"):
        stats.paired_comparison(ok, ok, min_effect=-0.1)
    with pytest.raises(ValueError, match="confidence"):
        stats.paired_comparison(ok, ok, confidence=95)


def test_holm_steps_down():
    assert stats.holm([0.01, 0.04, 0.03, 0.5], alpha=0.05) == [True, False, False, False]
    assert stats.holm([0.001, 0.01, 0.02], alpha=0.05) == [True, True, True]
    assert stats.holm([], alpha=0.05) == []
    with pytest.raises(ValueError, match="p_values"):
        stats.holm([1.5])


def test_sample_size_for_80_percent_power():
    # sd 1, effect 0.5: ((1.96 + 0.8416) / 0.5)² = 31.4 → 32
    assert stats.sample_size(0.5, 1.0) == 32
    # 0/1 correctness, two methods disagreeing on 4 % of examples, a 1-point effect: sd² = 0.04 − 0.0001
    assert 3000 < stats.sample_size(0.01, math.sqrt(0.04 - 0.0001)) < 3200
    with pytest.raises(ValueError, match="min_effect"):
        stats.sample_size(0, 1.0)


OLD_HELPERS = ("paired_difference", "seeds_needed", "t_critical", "stats.verdict", "T975")


def test_no_notebook_or_module_uses_the_old_per_seed_verdicts():
    """Every verdict goes through paired_comparison: the per-seed t rule (a winner whenever the seed spread
    is 0) and its helpers are gone, from the package, the checks and every notebook."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    files = list((root / "peftlab").rglob("*.py")) + list((root / "solutions").glob("*.ipynb")) + list(
        (root / "notebooks").glob("*.ipynb"))
    hits = []
    for f in files:
        text = f.read_text(encoding="utf-8")
        if f.suffix == ".ipynb":
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        hits += [f"{f.relative_to(root)}: {h}" for h in OLD_HELPERS if h in text]
    assert not hits, hits


def test_no_notebook_decides_a_verdict_from_the_seed_spread():
    """The old rule "mean gap vs max(seed std, 0.005)" is gone from every notebook: verdicts come from
    paired_comparison on per-example scores (peftlab.train.per_example_correct)."""
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    rule = re.compile(r"max\(\s*\[?\s*statistics\.stdev|stdev\([^)]*\)\s*,\s*0\.005|흩어짐(보다|\s*이상|\s*안)")
    hits = []
    for f in sorted((root / "solutions").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(f.read_text(encoding="utf-8"))["cells"]):
            text = "".join(cell["source"])
            hits += [f"{f.name} cell {i}: {m.group(0)}" for m in rule.finditer(text)]
    assert not hits, hits
