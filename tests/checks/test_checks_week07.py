"""Week 07 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from peftlab import compare
from peftlab.analysis import stats
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week07 as check


def _cells(method, seeds, scores, sps=(0.010, 0.0102, 0.0099), mem=1000, bytes_=100):
    out = []
    for i, s in enumerate(seeds):
        row = scores[i]
        out.append({"method": method, "seed": s, "status": "ok", "metric": "accuracy", "value": float(row.mean()),
                    "trainable": 10, "trainable_pct": 1.0, "adapter_bytes": bytes_,
                    "seconds_per_step": sps[i % len(sps)], "peak_memory_bytes": mem, "jobs": 1,
                    "per_example": "".join(str(int(v)) for v in row)})
    return out


def _run(diff, n=2000, seeds=(0, 1, 2), dora_time=2.0, qlora_time=3.0, qlora_bytes=101, disagree=0.04):
    lora, dora = [], []
    for k, _ in enumerate(seeds):
        a, b = check._agreeing_pair(n, 0.9, disagree, diff, 10 + k)
        dora.append(a)
        lora.append(b)
    recs = _cells("lora", seeds, lora)
    recs += _cells("dora", seeds, dora, sps=tuple(dora_time * t for t in (0.010, 0.0102, 0.0099)), mem=1500)
    recs += _cells("qlora", seeds, lora, sps=tuple(qlora_time * t for t in (0.010, 0.0102, 0.0099)), mem=800,
                   bytes_=qlora_bytes)
    return recs


RUNS = {"100": _run(0.03, n=2000, disagree=0.12),   # DoRA better, resolved
        "1000": _run(0.001),                          # a tie
        "all": _run(-0.015),                          # LoRA better, resolved
        "mine": _run(0.0, seeds=check.my_seeds("2026123456"))}
RIGHT_7_1 = {"100": "dora", "1000": "tie", "all": "lora", "mine": "tie"}
COST_7_1 = {"time": 2.0, "memory": 1.5, "time_differs": True}


def test_registered():
    assert {k for k in REGISTRY if k.startswith("07:")} == {"07:E1", "07:E2", "07:7.1", "07:7.2", "07:7.3"}


def test_fixture_verdicts_come_from_paired_comparison():
    for size, want in RIGHT_7_1.items():
        assert check.verdict_dora_lora(RUNS[size])[0] == want, size


def test_my_seeds():
    s = check.my_seeds("2026123456")
    assert len(set(s)) == 3 and all(1000 <= v < 100000 for v in s) and s == check.my_seeds(" 2026123456 ")
    assert check.my_seeds("2026000001") != s
    with pytest.raises(ValueError, match="student_id"):
        check.my_seeds(None)
    with pytest.raises(ValueError, match="student_id"):
        check.my_seeds("  ")


def good_interval(a, b, reps=2000, seed=0):
    rng = np.random.default_rng(seed)
    d = np.asarray(a, float) - np.asarray(b, float)
    idx = rng.integers(0, len(d), size=(reps, len(d)))
    means = d[idx].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def unpaired_interval(a, b, reps=2000, seed=0):
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    ma = a[rng.integers(0, n, size=(reps, n))].mean(axis=1)
    mb = b[rng.integers(0, n, size=(reps, n))].mean(axis=1)
    return float((a - b).mean()), float(np.quantile(ma - mb, 0.025)), float(np.quantile(ma - mb, 0.975))


def one_se(a, b, reps=2000, seed=0):
    d = np.asarray(a, float) - np.asarray(b, float)
    se = d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean()), float(d.mean() - se), float(d.mean() + se)


def reversed_sign(a, b, reps=2000, seed=0):
    return good_interval(b, a, reps, seed)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def test_e2_passes_and_catches_mistakes():
    check.paired_interval(good_interval, RUNS["all"])
    check.paired_interval(good_interval, RUNS["all"], hidden=True)
    for fn, hint in ((unpaired_interval, "대응표본"), (one_se, "표준오차 하나"), (reversed_sign, "부호"),
                     (_not_done, "NotImplementedError")):
        with pytest.raises(CheckFailed, match=hint):
            check.paired_interval(fn, RUNS["all"])


def test_e1_flaws(capsys):
    key = set("abcefghi")
    check.flaws(key)
    check.flaws(sorted(key))
    assert capsys.readouterr().out.count("공개 체크 통과") == 2
    hints = []
    for wrong in (key | {"d"}, key | {"j"}, key - {"f", "g"}, key - {"a"} | {"l"}):
        with pytest.raises(CheckFailed) as info:
            check.flaws(wrong)
        hints.append(info.value.hint.replace(str(len({c for c in wrong})), "N"))
    # the feedback never says which letters are right or wrong: every wrong set gets the same words
    assert len(set(hints)) == 1 and not any(f"{c}:" in hints[0] for c in check.FLAWS_E1), hints
    with pytest.raises(CheckFailed, match="모르는 글자"):
        check.flaws(key | {"z"})
    with pytest.raises(CheckFailed, match="집합"):
        check.flaws(None)
    with pytest.raises(CheckFailed):
        check.flaws(set(check.FLAWS_E1))  # everything is not an answer


def test_7_1_verdicts_and_costs():
    check.q7_1(RIGHT_7_1, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="'tie'"):
        check.q7_1({**RIGHT_7_1, "1000": "dora"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="유의하게 나은 쪽"):
        check.q7_1({**RIGHT_7_1, "all": "tie"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="유의하게 나은 쪽"):
        check.q7_1({**RIGHT_7_1, "100": "lora"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="뒤집혔습니다"):
        check.q7_1(RIGHT_7_1, {**COST_7_1, "time": 0.5}, RUNS)
    with pytest.raises(CheckFailed, match="중앙값"):
        check.q7_1(RIGHT_7_1, {**COST_7_1, "memory": 1.4}, RUNS)
    with pytest.raises(CheckFailed, match="잡음 바닥"):
        check.q7_1(RIGHT_7_1, {**COST_7_1, "time_differs": False}, RUNS)
    with pytest.raises(CheckFailed, match="'dora', 'lora', 'tie'"):
        check.q7_1({**RIGHT_7_1, "100": "DoRA!"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="키는"):
        check.q7_1({"100": "dora"}, COST_7_1, RUNS)
    with pytest.raises(CheckFailed, match="여러분의 시드"):
        check.q7_1(RIGHT_7_1, COST_7_1, {**RUNS, "mine": RUNS["1000"]})


def test_7_1_a_tie_is_right_when_one_example_per_seed_separates_them():
    b = [check._agreeing_pair(1000, 0.978, 0.0, 0.0, 20 + s)[1] for s in range(3)]
    a = [x.copy() for x in b]
    for x in a:
        x[np.flatnonzero(x == 1)[0]] = 0  # DoRA − LoRA = −0.001 on every seed
    recs = _cells("lora", (0, 1, 2), b) + _cells("dora", (0, 1, 2), a)
    assert check.verdict_dora_lora(recs)[0] == "tie"


def test_7_2_statements_follow_the_measurement():
    recs = RUNS["all"]
    ratios = {"memory": 0.8, "time": 3.0, "adapter_bytes": 1.01}
    check.q7_2(ratios, {"a", "c", "d", "f"}, recs)
    with pytest.raises(CheckFailed, match="잡음 바닥"):
        check.q7_2(ratios, {"a", "b", "c", "d", "f"}, recs)
    # the reasoning statements (d)–(g) are keyed: a wrong pick fails with the same words whichever letter it is
    hints = []
    for wrong in ({"a", "c", "f"}, {"a", "c", "d", "e", "f"}, {"a", "c", "d"}, {"a", "c", "d", "f", "g"}):
        with pytest.raises(CheckFailed) as info:
            check.q7_2(ratios, wrong, recs)
        hints.append(info.value.hint)
    assert len(set(hints)) == 1 and not any(f"{c}:" in hints[0] for c in "defg"), hints
    with pytest.raises(CheckFailed, match="뒤집혔습니다"):
        check.q7_2({**ratios, "memory": 1.25}, {"a", "c", "d", "f"}, recs)
    # another machine: QLoRA clearly faster and its file larger → b true, c false
    other = _run(0.0, qlora_time=0.5, qlora_bytes=150)
    check.q7_2({"memory": 0.8, "time": 0.5, "adapter_bytes": 1.5}, {"a", "b", "d", "f"}, other)
    with pytest.raises(CheckFailed, match="ratios_7_2\\['adapter_bytes'\\]"):
        check.q7_2({"memory": 0.8, "time": 0.5, "adapter_bytes": 1.5}, {"a", "b", "c", "d", "f"}, other)
    # QLoRA 1 % faster, inside a 2 %-wide noise floor: b is not a measured difference
    within = _run(0.0, qlora_time=0.99)
    assert compare.timing_noise(within) > 0.01
    check.q7_2({"memory": 0.8, "time": 0.99, "adapter_bytes": 1.01}, {"a", "c", "d", "f"}, within)


def test_7_3_power_calculation():
    recs = RUNS["all"]
    a, b = check._dora_lora(recs)
    dis = float((a != b).mean())
    sd = math.sqrt(dis - float((a - b).mean()) ** 2)
    want = stats.sample_size(0.01, sd)
    check.q7_3(dis, want, recs)
    with pytest.raises(CheckFailed, match="50 %"):
        check.q7_3(dis, math.ceil((1.96 * sd / 0.01) ** 2), recs)
    with pytest.raises(CheckFailed, match="sample_size"):
        check.q7_3(dis, want + 7, recs)
    with pytest.raises(CheckFailed, match="정수"):
        check.q7_3(dis, float(want), recs)
    with pytest.raises(CheckFailed, match="disagree_7_3"):
        check.q7_3(dis / 3, want, recs)
    with pytest.raises(CheckFailed, match="disagree_7_3"):
        check.q7_3(None, None, recs)  # the blank notebook fails


def test_7_2_without_the_answer_keys_checks_the_measured_statements_only(monkeypatch, capsys):
    """A student release has no ``_keys.py``: (d)–(g) are not graded there, (a)–(c) still are."""
    import sys

    monkeypatch.setitem(sys.modules, "peftlab.checks._keys", None)  # import fails as in a release
    recs = RUNS["all"]
    ratios = {"memory": 0.8, "time": 3.0, "adapter_bytes": 1.01}
    for reasoning in (set(), {"d", "f"}, {"e", "g"}, {"d", "e", "f", "g"}):
        check.q7_2(ratios, {"a", "c"} | reasoning, recs)
    assert capsys.readouterr().out.count("형식 확인") == 4
    with pytest.raises(CheckFailed, match="잡음 바닥"):
        check.q7_2(ratios, {"a", "b", "c"}, recs)
    with pytest.raises(CheckFailed, match="모르는 글자"):
        check.q7_2(ratios, {"a", "c", "x"}, recs)


def test_no_fixed_answer_is_hard_coded_in_the_shipped_module():
    import inspect

    src = inspect.getsource(check)
    for key in ('frozenset("abcefghi")', '"d": True', '"e": False', 'frozenset("df")'):
        assert key not in src, key
