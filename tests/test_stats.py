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
