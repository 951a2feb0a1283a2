"""Paired differences over seeds, the t verdict and the seeds-needed planner."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from peftlab.analysis import stats


def _records(pairs, a="a", b="b"):
    out = []
    for seed, (va, vb) in enumerate(pairs):
        out += [{"method": a, "seed": seed, "status": "ok", "value": va},
                {"method": b, "seed": seed, "status": "ok", "value": vb}]
    return out


def test_paired_difference_pairs_by_seed_and_skips_failed_cells():
    recs = _records([(0.9, 0.8), (0.7, 0.75), (0.95, 0.9)])
    recs.append({"method": "a", "seed": 3, "status": "ok", "value": 0.1})  # b lacks seed 3
    recs.append({"method": "b", "seed": 4, "status": "error", "error": "x"})
    recs.append({"method": "a", "seed": 4, "status": "ok", "value": 0.2})
    random.Random(0).shuffle(recs)
    d = stats.paired_difference(recs, "a", "b")
    diffs = [0.1, -0.05, 0.05]
    assert d["n"] == 3 and d["diffs"] == pytest.approx(dict(enumerate(diffs)))
    assert d["mean"] == pytest.approx(statistics.mean(diffs))
    assert d["std"] == pytest.approx(statistics.stdev(diffs)) and d["se"] == pytest.approx(statistics.stdev(diffs) / 3**0.5)
    assert stats.paired_difference(recs, "b", "a")["mean"] == pytest.approx(-d["mean"])


def test_paired_difference_bad_input():
    with pytest.raises(ValueError, match="no finished cells of 'c'"):
        stats.paired_difference(_records([(1, 0)]), "a", "c")
    recs = [{"method": "a", "seed": 0, "status": "ok", "value": 1}, {"method": "b", "seed": 1, "status": "ok", "value": 1}]
    with pytest.raises(ValueError, match="share no finished seed"):
        stats.paired_difference(recs, "a", "b")
    with pytest.raises(ValueError, match="two cells for seed 0"):
        stats.paired_difference(_records([(1, 0)]) * 2, "a", "b")
    one = stats.paired_difference(_records([(1, 0)]), "a", "b")
    assert one["n"] == 1 and math.isnan(one["std"]) and stats.verdict(one) == "tie"


def test_verdict_uses_the_t_quantile():
    # three seeds, differences 0.02 ± 0.01: mean/se = 0.02 / (0.01/√3) = 3.46 < t(2) = 4.303 → tie;
    # with the normal 1.96 it would have been called
    d = \
        stats.paired_difference(_records([(0.83, 0.80), (0.82, 0.80), (0.81, 0.80)]), "a", "b")
    assert d["mean"] / d["se"] == pytest.approx(3.464, abs=1e-3)
    assert stats.verdict(d, "a", "b") == "tie"
    five = stats.paired_difference(_records([(0.83, 0.80), (0.82, 0.80), (0.81, 0.80), (0.83, 0.80), (0.81, 0.80)]), "a", "b")
    assert stats.verdict(five, "a", "b") == "a" and stats.verdict(stats.paired_difference(
        _records([(0.80, 0.83), (0.80, 0.82), (0.80, 0.81), (0.80, 0.83), (0.80, 0.81)]), "a", "b"), "a", "b") == "b"
    same = stats.paired_difference(_records([(0.8, 0.7), (0.9, 0.8)]), "a", "b")
    assert same["se"] == pytest.approx(0, abs=1e-12) and stats.verdict(same, "a", "b") == "a"


def test_seeds_needed_and_t_table():
    assert stats.t_critical(2) == 4.303 and stats.t_critical(30) == 2.042 and stats.t_critical(31) == 1.96
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="df="):
            stats.t_critical(bad)
    n = stats.seeds_needed(0.01, 0.02)
    assert n is not None and 0.01 > stats.t_critical(n - 1) * 0.02 / math.sqrt(n)
    assert not 0.01 > stats.t_critical(n - 2) * 0.02 / math.sqrt(n - 1)
    assert stats.seeds_needed(0.0, 0.02) is None and stats.seeds_needed(1e-6, 1.0) is None
    assert stats.seeds_needed(0.1, 0.0) == 2
    with pytest.raises(ValueError, match="std"):
        stats.seeds_needed(0.1, float("nan"))


# --------------------------------------------------------------------------- paired_comparison
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
