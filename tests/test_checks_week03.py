"""Week 03 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import pytest
import torch

from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week03 as check


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
    g = torch.Generator().manual_seed(1)
    dd = torch.rand(50, generator=g)
    return {"full FT": (dd, -dd + 0.3 * torch.rand(50, generator=g)),
            "LoRA": (dd, 2 * dd + 0.1 * torch.rand(50, generator=g)),
            "DoRA": (dd, torch.rand(50, generator=g))}


UNITS = _units()


def _corr():
    from peftlab.analysis.decompose import pearson

    return {k: pearson(*v) for k, v in UNITS.items()}


COST = {"train_lora": 10.0, "train_dora": 13.0, "mem_lora": 100.0, "mem_dora": 140.0,
        "infer_base": 2.0, "infer_dora_merged": 2.02}
SWEEP = {"LoRA": {1: [0.60, 0.62], 2: [0.70, 0.71], 4: [0.75, 0.76], 8: [0.80, 0.80]},
         "DoRA": {1: [0.70, 0.71], 2: [0.72, 0.73], 4: [0.755, 0.765], 8: [0.80, 0.81]}}


def _gaps(sweep):
    return {r: sum(sweep["DoRA"][r]) / 2 - sum(sweep["LoRA"][r]) / 2 for r in sweep["LoRA"]}


def test_all_week03_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("03:")}
    assert ids == {"E1", "E2", "3.1", "3.2", "3.3", "3.4"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.decompose(good_decompose, hidden=hidden)
    check.dora_forward(good_dora, hidden=hidden)
    check.q3_1("b", RANKS, TRAIN, DELTAS, 2, (12, 10))
    check.q3_2(_corr(), "LoRA", UNITS)
    check.q3_3("a", 1.3, 1.4, 1.01, COST)
    check.q3_4("c", _gaps(SWEEP), SWEEP)
    assert capsys.readouterr().out.count("공개 체크 통과") == 6


def test_measured_ranks_are_what_the_check_recomputes():
    assert {k: check.numerical_rank(v) for k, v in DELTAS.items()} == RANKS


def test_answers_follow_the_measurements():
    # 3.1: a DoRA whose magnitude never moved has a rank-r ΔW as LoRA's: then 'a' is the supported answer
    assert check._answer_3_1(2, 10, 2) == "b" and check._answer_3_1(2, 2, 2) == "a"
    # 3.3: ratios decide
    assert check._answer_3_3(1.3, 1.4) == "a" and check._answer_3_3(1.0, 1.0) == "c" and check._answer_3_3(0.8, 0.9) == "d"
    # 3.4: gaps against the seeds' spread
    assert check._answer_3_4(SWEEP) == "c"
    same = {"LoRA": SWEEP["LoRA"], "DoRA": SWEEP["LoRA"]}
    assert check._answer_3_4(same) == "b"
    ahead = {"LoRA": SWEEP["LoRA"], "DoRA": {r: [a + 0.05 for a in v] for r, v in SWEEP["LoRA"].items()}}
    assert check._answer_3_4(ahead) == "a"
    assert check._answer_3_4({"LoRA": ahead["DoRA"], "DoRA": ahead["LoRA"]}) == "d"
    check.q3_4("b", _gaps(same), same)
    with pytest.raises(CheckFailed):
        check.q3_4("a", _gaps(same), same)
    # 3.2: the most coupled method is the one with the largest correlation in the data given
    swapped = {"full FT": UNITS["LoRA"], "LoRA": UNITS["full FT"], "DoRA": UNITS["DoRA"]}
    from peftlab.analysis.decompose import pearson

    check.q3_2({k: pearson(*v) for k, v in swapped.items()}, "full FT", swapped)


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
        (lambda: check.q3_1("b", None, TRAIN, DELTAS, 2, (12, 10)), "rank_delta"),
        (lambda: check.q3_1("b", {"LoRA": 2, "DoRA": 2}, TRAIN, DELTAS, 2, (12, 10)), "rank_delta['DoRA']"),
        (lambda: check.q3_1("b", RANKS, {"LoRA": 44, "DoRA": 45}, DELTAS, 2, (12, 10)), "스칼라 하나"),
        (lambda: check.q3_1("b", RANKS, {"LoRA": 40, "DoRA": 52}, DELTAS, 2, (12, 10)), "r·(in + out)"),
        (lambda: check.q3_1("a", RANKS, TRAIN, DELTAS, 2, (12, 10)), "랭크 r 안에"),
        (lambda: check.q3_1(None, RANKS, TRAIN, DELTAS, 2, (12, 10)), "choice"),
        (lambda: check.q3_1("b", RANKS, TRAIN, None, 2, (12, 10)), "deltas"),
        (lambda: check.q3_2({k: -v for k, v in _corr().items()}, "LoRA", UNITS), "부호"),
        (lambda: check.q3_2({**_corr(), "DoRA": 0.9}, "LoRA", UNITS), "corr['DoRA']"),
        (lambda: check.q3_2(_corr(), "DoRA", UNITS), "가장 강하게"),
        (lambda: check.q3_2(None, None, UNITS), "corr"),
        (lambda: check.q3_2(_corr(), "LoRA", None), "unit_changes"),
        (lambda: check.q3_3("a", 1 / 1.3, 1.4, 1.01, COST), "뒤집"),
        (lambda: check.q3_3("a", 1.3, 1.0, 1.01, COST), "memory_ratio"),
        (lambda: check.q3_3("a", 1.3, 1.4, 1.3, COST), "merged_ratio"),
        (lambda: check.q3_3("c", 1.3, 1.4, 1.01, COST), "병합 후 추론"),
        (lambda: check.q3_3(None, None, None, None, None), "cost"),
        (lambda: check.q3_3("a", None, 1.4, 1.01, COST), "time_ratio"),
        (lambda: check.q3_4("c", {r: -g for r, g in _gaps(SWEEP).items()}, SWEEP), "부호"),
        (lambda: check.q3_4("a", _gaps(SWEEP), SWEEP), "잡음"),
        (lambda: check.q3_4("c", None, SWEEP), "gaps"),
        (lambda: check.q3_4(None, None, None), "sweep"),
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
