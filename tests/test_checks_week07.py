"""Week 07 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math
import statistics

import pytest

from peftlab.analysis import stats
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week07 as check


def _cell(method, seed, value, sps=0.01, mem=1000, bytes_=100):
    return {"method": method, "seed": seed, "status": "ok", "metric": "accuracy", "value": value, "trainable": 10,
            "trainable_pct": 1.0, "adapter_bytes": bytes_, "seconds_per_step": sps, "peak_memory_bytes": mem}


def _run(dora, lora, qlora=(0.9, 0.9, 0.9), dora_cost=(0.02, 1500), qlora_cost=(0.03, 800), qlora_bytes=101):
    recs = []
    for s in range(3):
        recs += [_cell("lora", s, lora[s]), _cell("dora", s, dora[s], *dora_cost),
                 _cell("qlora", s, qlora[s], *qlora_cost, bytes_=qlora_bytes)]
    return recs


RUNS = {"100": _run((0.70, 0.72, 0.71), (0.60, 0.61, 0.62)),        # DoRA resolved better
        "1000": _run((0.90, 0.84, 0.87), (0.86, 0.84, 0.84)),       # a tie
        "all": _run((0.950, 0.951, 0.949), (0.960, 0.962, 0.961))}  # LoRA resolved better
RIGHT_7_1 = {"100": "dora", "1000": "tie", "all": "lora"}
COST_7_1 = {"time": 2.0, "memory": 1.5}


def good_paired(records, a, b):
    d = stats.paired_difference(records, a, b)
    return {k: d[k] for k in ("n", "mean", "std", "se")}


def by_order(records, a, b):  # pairs the i-th cell of a with the i-th of b: ignores seeds and status
    va = [r.get("value", 0.0) for r in records if r["method"] == a]
    vb = [r.get("value", 0.0) for r in records if r["method"] == b]
    diffs = [x - y for x, y in zip(va, vb, strict=False)]
    n = len(diffs)
    return {"n": n, "mean": statistics.mean(diffs), "std": statistics.stdev(diffs), "se": statistics.stdev(diffs) / n**0.5}


def population_std(records, a, b):
    d = stats.paired_difference(records, a, b)
    pop = statistics.pstdev(list(d["diffs"].values()))
    return {"n": d["n"], "mean": d["mean"], "std": pop, "se": pop / d["n"] ** 0.5}


def reversed_sign(records, a, b):
    return good_paired(records, b, a)


def unpaired(records, a, b):
    d = good_paired(records, a, b)
    va = [r["value"] for r in records if r["method"] == a and r.get("status") == "ok"]
    vb = [r["value"] for r in records if r["method"] == b and r.get("status") == "ok"]
    return {**d, "mean": statistics.mean(va) - statistics.mean(vb)}


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def test_registered():
    assert {k for k in REGISTRY if k.startswith("07:")} == {"07:E1", "07:E2", "07:7.1", "07:7.2", "07:7.3"}


def test_e1_passes_and_catches_mistakes():
    check.paired_summary(good_paired, RUNS["all"])
    check.paired_summary(good_paired, RUNS["all"], hidden=True)
    for fn, hint in ((by_order, "n = "), (population_std, "n − 1"), (reversed_sign, "부호"), (unpaired, "seed로 짝"),
                     (_not_done, "NotImplementedError")):
        with pytest.raises(CheckFailed, match=hint):
            check.paired_summary(fn, RUNS["all"])


def test_e2_flaws():
    key = set("abcefghi")
    check.flaws(key)
    check.flaws(sorted(key))
    with pytest.raises(CheckFailed, match="start_time"):
        check.flaws(key | {"d"})
    with pytest.raises(CheckFailed, match="α/r"):
        check.flaws(key | {"j"})
    with pytest.raises(CheckFailed, match="query"):
        check.flaws(key | {"k"})
    with pytest.raises(CheckFailed, match="2개 더"):
        check.flaws(key - {"f", "g"})
    with pytest.raises(CheckFailed, match="모르는 글자"):
        check.flaws(key | {"z"})
    with pytest.raises(CheckFailed, match="집합"):
        check.flaws(None)
    with pytest.raises(CheckFailed):
        check.flaws(set(check.FLAWS_E2))  # everything is not an answer


def test_7_1_verdicts_and_costs():
    check.q7_1(RIGHT_7_1, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="'tie'"):
        check.q7_1({**RIGHT_7_1, "1000": "dora"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="t·se보다 큽니다"):
        check.q7_1({**RIGHT_7_1, "all": "tie"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="뒤집혔습니다"):
        check.q7_1(RIGHT_7_1, {"time": 0.5, "memory": 1.5}, RUNS)
    with pytest.raises(CheckFailed, match="중앙값"):
        check.q7_1(RIGHT_7_1, {"time": 2.0, "memory": 1.4}, RUNS)
    with pytest.raises(CheckFailed, match="'dora', 'lora', 'tie'"):
        check.q7_1({**RIGHT_7_1, "100": "DoRA!"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="키는"):
        check.q7_1({"100": "dora"}, COST_7_1, RUNS)


def test_7_2_statements_follow_the_measurement():
    recs = RUNS["all"]
    ratios = {"memory": 0.8, "time": 3.0, "adapter_bytes": 1.01}
    check.q7_2(ratios, {"a", "c", "d", "f"}, recs)
    with pytest.raises(CheckFailed, match="ratios_7_2\\['time'\\]"):
        check.q7_2(ratios, {"a", "b", "c", "d", "f"}, recs)
    with pytest.raises(CheckFailed, match="T4"):
        check.q7_2(ratios, {"a", "c", "f"}, recs)
    with pytest.raises(CheckFailed, match="손실 없는 병합이 아닙니다"):
        check.q7_2(ratios, {"a", "c", "d", "e", "f"}, recs)
    with pytest.raises(CheckFailed, match="뒤집혔습니다"):
        check.q7_2({**ratios, "memory": 1.25}, {"a", "c", "d", "f"}, recs)
    # another machine: QLoRA faster and its file larger → b true, c false
    other = _run((0.9,) * 3, (0.9,) * 3, qlora_cost=(0.005, 800), qlora_bytes=150)
    check.q7_2({"memory": 0.8, "time": 0.5, "adapter_bytes": 1.5}, {"a", "b", "d", "f"}, other)
    with pytest.raises(CheckFailed, match="ratios_7_2\\['adapter_bytes'\\]"):
        check.q7_2({"memory": 0.8, "time": 0.5, "adapter_bytes": 1.5}, {"a", "b", "c", "d", "f"}, other)


def test_7_3_seeds_needed():
    recs = RUNS["1000"]
    d = stats.paired_difference(recs, "dora", "lora")
    want = stats.seeds_needed(d["mean"], d["std"])
    assert want is not None and want > 3
    check.q7_3(want, d["mean"], recs)
    normal = max(2, math.ceil((1.96 * d["std"] / abs(d["mean"])) ** 2))
    assert normal != want
    with pytest.raises(CheckFailed, match="1.96"):
        check.q7_3(normal, d["mean"], recs)
    with pytest.raises(CheckFailed, match="가장 작은 n"):
        check.q7_3(want + 1, d["mean"], recs)
    with pytest.raises(CheckFailed, match="정수"):
        check.q7_3(float(want), d["mean"], recs)
    with pytest.raises(CheckFailed, match="부호"):
        check.q7_3(want, -d["mean"], recs)
    with pytest.raises(CheckFailed, match="gap_7_3"):
        check.q7_3(want, None, recs)
    zero = _run((0.9, 0.8, 0.85), (0.9, 0.8, 0.85))
    check.q7_3(None, 0.0, zero)
    with pytest.raises(CheckFailed, match="None"):
        check.q7_3(5, 0.0, zero)
    with pytest.raises(CheckFailed, match="gap_7_3"):
        check.q7_3(None, None, zero)  # the blank notebook fails even when no seed count exists
