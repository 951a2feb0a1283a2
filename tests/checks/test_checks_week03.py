"""Week 03 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from peftlab.analysis.stats import holm, paired_comparison
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week03 as check

try:
    from peftlab.checks._keys import KEYS
except ImportError:  # a student release: the release-key test borrows this module's fixtures there
    KEYS = {}


def good_decompose(W):
    m = torch.linalg.norm(W, dim=1)
    return m, W / m.unsqueeze(1)


def good_dora(x, W0, b, A, B, m, s):
    V = W0 + s * B @ A
    g = m / torch.linalg.norm(V, dim=1).detach()
    return b + g * (x @ V.T)


def lecture_dora(x, W0, b, A, B, m, s):
    return m * (x @ W0.T + b + s * (x @ A.T) @ B.T)


def bias_scaled(x, W0, b, A, B, m, s):
    V = W0 + s * B @ A
    return (m / torch.linalg.norm(V, dim=1).detach()) * (x @ V.T + b)


def frobenius(x, W0, b, A, B, m, s):
    V = W0 + s * B @ A
    return b + x @ (m.unsqueeze(1) * V / torch.linalg.norm(V).detach()).T


def no_detach(x, W0, b, A, B, m, s):
    V = W0 + s * B @ A
    return b + (m / torch.linalg.norm(V, dim=1)) * (x @ V.T)


def no_scaling(x, W0, b, A, B, m, s):
    return good_dora(x, W0, b, A, B, m, 1.0)


def column_norm(x, W0, b, A, B, m, s):
    V = W0 + s * B @ A
    return b + x @ (V * (m / torch.linalg.norm(V, dim=0).detach())).T


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def _deltas(r=2, out_f=12, in_f=10):
    g = torch.Generator().manual_seed(0)
    W0 = torch.randn(out_f, in_f, generator=g)
    V = W0 + torch.randn(out_f, r, generator=g) @ torch.randn(r, in_f, generator=g) * 0.1
    m = torch.linalg.norm(W0, dim=1) * (1 + 0.05 * torch.randn(out_f, generator=g))
    dora = (m / torch.linalg.norm(V, dim=1)).unsqueeze(1) * V - W0
    return {"LoRA": V - W0, "DoRA": dora}


DELTAS = _deltas()
RANKS = {"LoRA": 2, "DoRA": 10}
TRAIN = {"LoRA": 2 * 22, "DoRA": 2 * 22 + 12}


def _units():
    """Per method, (ΔD_j, ΔM_j) pairs for 2 seeds × 3 matrices: LoRA coupled, full FT anti-coupled, DoRA neither."""
    g = torch.Generator().manual_seed(1)
    out = {"full FT": [], "LoRA": [], "DoRA": []}
    for _ in range(6):
        dd = torch.rand(50, generator=g)
        out["full FT"].append((dd, -dd + 0.3 * torch.rand(50, generator=g)))
        out["LoRA"].append((dd, 2 * dd + 0.1 * torch.rand(50, generator=g)))
        out["DoRA"].append((dd, torch.rand(50, generator=g)))
    return out


def _points(within=True):
    """(seed, matrix, step, ΔD, ΔM): both grow with the step; within one step ΔM follows ΔD or runs against it."""
    g = torch.Generator().manual_seed(2)
    rows = {"full FT": [], "LoRA": [], "DoRA": []}
    for method in rows:
        for seed in (0, 1):
            for step in (8, 16, 24, 32):
                dd = step * (1 + torch.rand(4, generator=g))
                dm = dd * (1 + 0.1 * torch.rand(4, generator=g)) if within else step * (3 - dd / step)
                rows[method] += [(seed, f"m{i}", step, float(dd[i]), float(dm[i])) for i in range(4)]
    return rows


UNITS = _units()
POINTS = _points()


def _stats(units=UNITS, points=POINTS):
    return check._statistics_3_2(units, points)


def _q3_2(choice="b", most="LoRA", units=UNITS, points=POINTS, **change):
    st = _stats(units, points)
    values = {"corr": st["within_matrix"], "mixed": st["mixed"], "within_step": st["within_step"], **change}
    return check.q3_2(choice, values["corr"], values["mixed"], values["within_step"], most, units, points)


KEY_3_1 = KEYS.get("03:3.1")
WRONG_3_1 = "a" if KEY_3_1 != "a" else "b"


def _times(ms, spread=0.02, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return [float(ms * (1 + spread * rng.standard_normal())) for _ in range(n)]


# DoRA ×1.3 slower per training step, 1.4× the memory; merged DoRA as fast as the base model
COST = {"train_lora": _times(10.0, seed=1), "train_dora": _times(13.0, seed=2), "mem_lora": 100.0, "mem_dora": 140.0,
        "infer_base": _times(2.0, seed=3), "infer_dora_merged": _times(2.0, seed=4)}


def _ratios(cost=COST):
    import statistics

    med = {k: statistics.median(v) for k, v in cost.items() if isinstance(v, list)}
    return (med["train_dora"] / med["train_lora"], cost["mem_dora"] / cost["mem_lora"],
            med["infer_dora_merged"] / med["infer_base"])


def _timings(cost=COST):
    return (check.timing_comparison(cost["train_dora"], cost["train_lora"]),
            check.timing_comparison(cost["infer_dora_merged"], cost["infer_base"]))


def _q3_3(choice, cost=COST, measured=None, **changes):
    """q3_3 with the answers computed from ``measured`` (default: ``cost``), then ``changes`` applied."""
    t, m, i = _ratios(measured or cost)
    train, merged = _timings(measured or cost)
    args = dict(time_ratio=t, memory_ratio=m, merged_ratio=i, train_time=train, merged_time=merged, cost=cost)
    args.update(changes)
    return check.q3_3(choice, **args)


N_TEST = 500


def _correct(acc, rng, n=N_TEST):
    k = round(acc * n)
    x = np.array([1.0] * k + [0.0] * (n - k))
    rng.shuffle(x)
    return x


def _fix(base, k, rng):
    """``base`` with ``k`` of its wrong examples made right (k < 0: |k| right ones made wrong), per seed."""
    out = base.copy()
    for s in range(len(out)):
        pool = np.flatnonzero(out[s] == (0.0 if k > 0 else 1.0))
        out[s, rng.choice(pool, abs(k), replace=False)] = 1.0 if k > 0 else 0.0
    return out


def _sweep(gains, seed=0):
    """Per-example correctness (3 seeds × N_TEST) of LoRA and DoRA at ranks 1, 2, 4, 8: DoRA fixes ``gains[r]``
    of LoRA's errors per seed at rank r (negative: makes that many more); 0 is a tie on other examples."""
    rng = np.random.default_rng(seed)
    sweep = {"LoRA": {}, "DoRA": {}}
    for r, acc in zip((1, 2, 4, 8), (0.86, 0.91, 0.93, 0.94), strict=True):
        lora = np.stack([_correct(acc, rng) for _ in range(3)])
        sweep["LoRA"][r] = lora
        g = gains.get(r, 0)
        sweep["DoRA"][r] = _fix(lora, g, rng) if g else _fix(_fix(lora, 5, rng), -5, rng)
    return sweep


SWEEP = _sweep({1: 25})                          # DoRA ahead at r = 1 only: c
SAME = _sweep({})                                # b
AHEAD = _sweep({1: 25, 2: 25, 4: 25, 8: 25})     # a
BEHIND = _sweep({1: 25, 8: -25})                 # d


def _cmps(sweep=SWEEP):
    return check.comparisons_3_4(sweep)


def test_all_week03_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("03:")}
    assert ids == {"E1", "E2", "3.1", "3.2", "3.3", "3.4"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.decompose(good_decompose, hidden=hidden)
    check.dora_forward(good_dora, hidden=hidden)
    check.q3_1(KEY_3_1, RANKS, TRAIN, DELTAS, 2, (12, 10))
    _q3_2()
    _q3_3("a")
    check.q3_4("c", *_cmps(), SWEEP)
    assert capsys.readouterr().out.count("공개 체크 통과") == 6


def test_measured_ranks_are_what_the_check_recomputes():
    assert {k: check.numerical_rank(v) for k, v in DELTAS.items()} == RANKS


def test_reasoning_item_is_keyed_and_form_only_without_keys(monkeypatch, capsys):
    """3.1's letter is a reasoning item: the key decides it in the instructor's copy; a student release (no
    _keys.py) checks its form only, and the feedback never names a letter."""
    with pytest.raises(CheckFailed) as info:
        check.q3_1(WRONG_3_1, RANKS, TRAIN, DELTAS, 2, (12, 10))
    assert not any(f"'{c}'" in info.value.hint or f" {c}:" in info.value.hint for c in "abcd")
    monkeypatch.setitem(sys.modules, "peftlab.checks._keys", None)  # as in a release
    for letter in "abcd":
        check.q3_1(letter, RANKS, TRAIN, DELTAS, 2, (12, 10))
    assert capsys.readouterr().out.count("형식 확인") == 4
    with pytest.raises(CheckFailed):
        check.q3_1("e", RANKS, TRAIN, DELTAS, 2, (12, 10))


def test_answers_follow_the_measurements():
    # 3.3: the paired timing verdicts and the memory ratio decide
    train, merged = _timings()
    assert train.verdict == "b" and merged.verdict == "tie"
    assert check._answer_3_3(train, 1.4, merged) == "a"
    slow_merged = {**COST, "infer_dora_merged": _times(2.4, seed=4)}
    _q3_3("b", slow_merged)
    cheap = {**COST, "train_dora": _times(10.0, seed=2), "mem_dora": 102.0}
    _q3_3("c", cheap)
    _q3_3("d", {**cheap, "infer_dora_merged": _times(2.4, seed=4)})
    # memory alone makes training "more"; a time ratio within ×1.05 does not
    _q3_3("a", {**cheap, "mem_dora": 120.0})
    _q3_3("c", {**cheap, "train_dora": _times(10.3, seed=2)})
    with pytest.raises(CheckFailed):
        _q3_3("a", cheap)
    # 3.4: per-rank paired verdicts, Holm over the ranks
    assert check._answer_3_4(*_cmps()) == "c"
    assert check._answer_3_4(*_cmps(SAME)) == "b"
    assert check._answer_3_4(*_cmps(AHEAD)) == "a"
    assert check._answer_3_4(*_cmps(BEHIND)) == "d"
    check.q3_4("b", *_cmps(SAME), SAME)
    with pytest.raises(CheckFailed):
        check.q3_4("a", *_cmps(SAME), SAME)
    # 3.2: the most coupled method is the one with the largest correlation in the data given; the letter follows
    # the within-step correlations (all above 0.2: b; none: a)
    swapped = {"full FT": UNITS["LoRA"], "LoRA": UNITS["full FT"], "DoRA": UNITS["DoRA"]}
    _q3_2(most="full FT", units=swapped)
    assert _stats()["within_step"]["LoRA"] > 0.9 and _stats()["mixed"]["LoRA"] > 0.9
    flat = _points(within=False)
    assert _stats(points=flat)["within_step"]["LoRA"] < 0 < 0.5 < _stats(points=flat)["mixed"]["LoRA"]
    assert check._answer_3_2(_stats(points=flat)["within_step"]) == "a"
    assert check._answer_3_2({"full FT": 0.5, "LoRA": 0.1, "DoRA": 0.9}) == "c"
    with pytest.raises(CheckFailed, match="within_step_3_2"):
        _q3_2("a")


def test_spearman_is_pearson_of_ranks_with_ties_averaged():
    from peftlab.analysis.decompose import pearson, spearman

    x = torch.tensor([1.0, 2.0, 2.0, 5.0, 9.0])
    y = torch.tensor([3.0, 1.0, 4.0, 8.0, 20.0])
    assert spearman(x, y) == pytest.approx(pearson([0, 1.5, 1.5, 3, 4], [1, 0, 2, 3, 4]))
    assert spearman(x, torch.exp(x)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same length"):
        spearman(x, y[:3])


def test_holm_can_turn_a_verdict_into_no_difference():
    """A rank whose own interval excludes 0 (verdict "a") but whose p-value does not survive Holm over the four
    ranks is no difference: b, not c."""
    from peftlab.analysis.stats import PairedComparison

    def cmp(diff, p, verdict):
        return PairedComparison(diff, diff - 0.01, diff + 0.01, verdict, p, 3, 500, 0.005, 0.95)

    cmps = {1: cmp(0.012, 0.03, "a"), 2: cmp(0.0, 0.9, "tie"), 4: cmp(0.001, 0.7, "tie"), 8: cmp(-0.001, 0.8, "tie")}
    rejected = dict(zip(cmps, holm([c.p_value for c in cmps.values()]), strict=True))
    assert rejected == {1: False, 2: False, 4: False, 8: False}
    assert check._answer_3_4(cmps, rejected) == "b"
    assert check._answer_3_4({**cmps, 1: cmp(0.012, 0.004, "a")}, {**rejected, 1: True}) == "c"


CMPS, SIGNIFICANT = _cmps()
TRAIN_T, MERGED_T = _timings()


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: check.decompose(lambda W: (torch.linalg.norm(W), W / torch.linalg.norm(W))), "스칼라"),
        (lambda: check.decompose(lambda W: (torch.linalg.norm(W, dim=0), W / torch.linalg.norm(W, dim=0))), "(in,)"),
        (lambda: check.decompose(lambda W: ((W**2).sum(1), W / (W**2).sum(1, keepdim=True))), "제곱근"),
        (lambda: check.decompose(lambda W: (torch.linalg.norm(W, dim=1), W)), "단위 벡터"),
        (lambda: check.decompose(lambda W: torch.linalg.norm(W, dim=1)), "튜플"),
        (lambda: check.decompose(_not_done), "NotImplementedError"),
        (lambda: check.dora_forward(lecture_dora), "강의의 DoRALayer"),
        (lambda: check.dora_forward(bias_scaled), "bias"),
        (lambda: check.dora_forward(frobenius), "프로베니우스"),
        (lambda: check.dora_forward(column_norm), "축"),
        (lambda: check.dora_forward(no_scaling), "scaling"),
        (lambda: check.dora_forward(no_detach), "detach"),
        (lambda: check.dora_forward(lambda x, W0, b, A, B, m, s: (x @ W0.T + b)[..., :2]), "shape"),
        (lambda: check.dora_forward(_not_done), "NotImplementedError"),
        (lambda: check.q3_1(KEY_3_1, None, TRAIN, DELTAS, 2, (12, 10)), "rank_delta"),
        (lambda: check.q3_1(KEY_3_1, {"LoRA": 2, "DoRA": 2}, TRAIN, DELTAS, 2, (12, 10)), "rank_delta['DoRA']"),
        (lambda: check.q3_1(KEY_3_1, RANKS, {"LoRA": 44, "DoRA": 45}, DELTAS, 2, (12, 10)), "스칼라 하나"),
        (lambda: check.q3_1(KEY_3_1, RANKS, {"LoRA": 40, "DoRA": 52}, DELTAS, 2, (12, 10)), "r·(in + out)"),
        (lambda: check.q3_1(WRONG_3_1, RANKS, TRAIN, DELTAS, 2, (12, 10)), "식과 맞지"),
        (lambda: check.q3_1(None, RANKS, TRAIN, DELTAS, 2, (12, 10)), "choice"),
        (lambda: check.q3_1(KEY_3_1, RANKS, TRAIN, None, 2, (12, 10)), "deltas"),
        (lambda: _q3_2(corr={k: -v for k, v in _stats()["within_matrix"].items()}), "부호"),
        (lambda: _q3_2(corr={**_stats()["within_matrix"], "DoRA": 0.9}), "corr_3_2['DoRA']"),
        (lambda: _q3_2(mixed=_stats()["within_step"] | {"LoRA": 0.0}), "mixed_3_2"),
        (lambda: _q3_2(within_step=_stats()["mixed"] | {"DoRA": 0.0}), "within_step_3_2"),
        (lambda: _q3_2(most="DoRA"), "가장 강하게"),
        (lambda: check.q3_2(None, None, None, None, None, UNITS, POINTS), "corr_3_2"),
        (lambda: check.q3_2("b", None, None, None, "LoRA", None, POINTS), "unit_changes"),
        (lambda: check.q3_2("b", None, None, None, "LoRA", UNITS, None), "points"),
        (lambda: _q3_3("a", time_ratio=1 / _ratios()[0]), "뒤집"),
        (lambda: _q3_3("a", memory_ratio=1.0), "memory_ratio"),
        (lambda: _q3_3("a", merged_ratio=1.3), "merged_ratio"),
        (lambda: _q3_3("a", merged_ratio=1 / _ratios()[2] if abs(_ratios()[2] - 1) > 2e-3 else 0.5), "merged_ratio"),
        (lambda: _q3_3("c"), "병합 후 추론"),
        (lambda: _q3_3("b"), "verdict"),
        (lambda: check.q3_3(None, None, None, None, None, None, None), "cost"),
        (lambda: _q3_3("a", cost={**COST, "train_lora": 10.0}, measured=COST), "목록"),
        (lambda: _q3_3("a", cost={**COST, "train_lora": COST["train_lora"][:6]}, measured=COST), "길이"),
        (lambda: _q3_3("a", time_ratio=None), "time_ratio"),
        (lambda: _q3_3("a", train_time=None), "train_time에는"),
        (lambda: _q3_3("a", train_time=check.timing_comparison(COST["train_lora"], COST["train_dora"])), "순서가 반대"),
        (lambda: _q3_3("a", merged_time=TRAIN_T), "merged_time는"),
        (lambda: _q3_3("a", train_time=replace(TRAIN_T, low=TRAIN_T.low - 0.05)), "신뢰구간"),
        (lambda: check.q3_4("c", {r: paired_comparison(SWEEP["LoRA"][r], SWEEP["DoRA"][r], min_effect=0.005) for r in CMPS},
                            SIGNIFICANT, SWEEP), "방향이 반대"),
        (lambda: check.q3_4("c", {**CMPS, 2: CMPS[1]}, SIGNIFICANT, SWEEP), "comparisons[2].diff"),
        (lambda: check.q3_4("c", {**CMPS, 1: replace(CMPS[1], min_effect=0.0)}, SIGNIFICANT, SWEEP), "min_effect=0.005"),
        (lambda: check.q3_4("c", {**CMPS, 1: replace(CMPS[1], high=CMPS[1].high + 0.03)}, SIGNIFICANT, SWEEP), "신뢰구간"),
        (lambda: check.q3_4("c", CMPS, {r: c.verdict != "tie" for r, c in CMPS.items()} if any(
            (c.verdict != "tie") != SIGNIFICANT[r] for r, c in CMPS.items()) else {r: not v for r, v in SIGNIFICANT.items()},
            SWEEP), "Holm"),
        (lambda: check.q3_4("c", CMPS, [True] * 4, SWEEP), "significant에는"),
        (lambda: check.q3_4("a", CMPS, SIGNIFICANT, SWEEP), "verdict와 Holm"),
        (lambda: check.q3_4("c", None, SIGNIFICANT, SWEEP), "comparisons에는"),
        (lambda: check.q3_4("c", {r: 0.01 for r in CMPS}, SIGNIFICANT, SWEEP), "comparisons[1]에는"),
        (lambda: check.q3_4(None, None, None, None), "sweep"),
        (lambda: check.q3_4("c", CMPS, SIGNIFICANT, {m: {r: v.mean(1).tolist() for r, v in d.items()} for m, d in SWEEP.items()}),
         "(시드 수 ≥ 2, 예제 수)"),
        (lambda: check.q3_4("c", CMPS, SIGNIFICANT, {"LoRA": SWEEP["LoRA"], "DoRA": {**SWEEP["DoRA"], 8: SWEEP["DoRA"][8][:, :50]}}),
         "같은 shape"),
    ],
)
def test_typical_mistakes_fail_with_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    assert hint in info.value.hint, info.value.hint


def test_hidden_cases_catch_a_2d_only_forward():
    def flat_only(x, W0, b, A, B, m, s):
        assert x.dim() == 2
        return good_dora(x, W0, b, A, B, m, s)

    check.dora_forward(flat_only)
    with pytest.raises(CheckFailed):
        check.dora_forward(flat_only, hidden=True)


def test_decomposition_helpers():
    from peftlab.analysis.decompose import magnitude_direction, magnitude_direction_change, pearson

    W = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    m, D = magnitude_direction(W)
    assert torch.allclose(m, torch.tensor([5.0, 2.0])) and torch.allclose(m.unsqueeze(1) * D, W)
    dm, dd = magnitude_direction_change(W, 2 * W)  # same directions, doubled norms
    assert dm == pytest.approx(3.5) and dd == pytest.approx(0.0, abs=1e-12)
    dm, dd = magnitude_direction_change(W, torch.tensor([[4.0, -3.0], [2.0, 0.0]]))  # rotated by 90°
    assert dm == pytest.approx(0.0) and dd == pytest.approx(1.0)
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0) and pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        magnitude_direction(torch.zeros(2, 3))


def test_adapted_weight_and_snapshots():
    import peftlab
    from peftlab.analysis.decompose import WeightSnapshots, adapted_weight

    torch.manual_seed(0)
    base = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    dora = peftlab.apply_dora(torch.nn.Sequential(*[torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2)]),
                              r=2, alpha=4, target_modules=["0"])
    layer = dora.get_submodule("0")
    assert torch.allclose(adapted_weight(layer), layer.base_layer.weight)  # fresh DoRA = base
    with torch.no_grad():
        layer.lora_B["default"].normal_()
        layer.lora_magnitude_vector["default"].mul_(2)
    w = adapted_weight(layer)
    x = torch.randn(3, 6)
    assert torch.allclose(layer(x), x @ w.T + layer.base_layer.bias, atol=1e-5)
    assert torch.allclose(torch.linalg.norm(w, dim=1), layer.lora_magnitude_vector["default"].detach())
    assert torch.equal(adapted_weight(base[0]), base[0].weight)
    snap = WeightSnapshots(base, ["0"], every=2)
    opt = torch.optim.SGD(base.parameters(), lr=0.1)
    for _ in range(5):
        base(x).sum().backward()
        opt.step()
        opt.zero_grad()
    base.eval()
    base(x)  # not counted
    snap.record()
    snap.remove()
    assert snap.steps == [0, 2, 4, 5] and len(snap.weights["0"]) == 4
    assert torch.equal(snap.weights["0"][-1], base[0].weight.detach())
