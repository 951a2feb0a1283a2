"""Week 05 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week05 as check


def good_memory(out_f, in_f, bits, rank):
    n = out_f * in_f
    blocks = -(-n // 64)
    if bits == 16:
        w = 2 * n
    elif bits == 4:
        w = -(-n // 2) + blocks + 4 + 4 * -(-blocks // 256)
    else:
        w = -(-n * bits // 8) + 4 * blocks
    return w + 2 * rank * (in_f + out_f)


def no_lora(out_f, in_f, bits, rank):
    return good_memory(out_f, in_f, bits, rank) - 2 * rank * (in_f + out_f)


def lora_fp32(out_f, in_f, bits, rank):
    return good_memory(out_f, in_f, bits, rank) + 2 * rank * (in_f + out_f)


def no_constants(out_f, in_f, bits, rank):
    return out_f * in_f * bits / 8 + 2 * rank * (in_f + out_f)


def nf4_fp32_constants(out_f, in_f, bits, rank):
    n = out_f * in_f
    if bits == 4:
        return n / 2 + 4 * -(-n // 64) + 2 * rank * (in_f + out_f)
    return good_memory(out_f, in_f, bits, rank)


def floor_division(out_f, in_f, bits, rank):
    n = out_f * in_f
    if bits in (2, 3, 8):
        return n * bits // 8 + 4 * (n // 64) + 2 * rank * (in_f + out_f)
    return good_memory(out_f, in_f, bits, rank)


def good_front(points):
    def dom(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))

    return [i for i, p in enumerate(points) if not any(dom(q, p) for q in points)]


def maximising_front(points):
    return good_front([tuple(-v for v in p) for p in points])


def weak_dominance_front(points):  # a point "dominates" an equal one: duplicates knock each other out
    def dom(a, b):
        return all(x <= y for x, y in zip(a, b, strict=True))

    return [i for i, p in enumerate(points) if not any(dom(q, p) for j, q in enumerate(points) if j != i)]


def _not_done(*args, **kwargs):
    raise NotImplementedError()


SENS = {"model.layers.0": 0.18, "model.layers.1": -0.005, "model.layers.2": 0.0096, "model.layers.3": 0.011}
RATIO = 0.18 / statistics.median(SENS.values())
BYTES = {"uniform": 1000, "searched": 900}
COST = {"evaluations": 23, "seconds": 40.0, "space_size": 20736, "one_finetune_seconds": 2.0}


def _lines(shift: float, seeds: int = 2, n: int = 48, seed: int = 0) -> list[list[float]]:
    """Per-line losses of 'uniform' and a second configuration ``shift`` nats lower on every line (± noise)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 1.3, size=n)
    return [list(base + rng.normal(0, 0.002, size=n)) for _ in range(seeds)], \
        [list(base - shift + rng.normal(0, 0.002, size=n)) for _ in range(seeds)]


def _pair_5_1(shift):
    u, s = _lines(shift)
    return {"uniform": u, "searched": s}


def _diff(losses):
    u, s = np.asarray(losses["uniform"]), np.asarray(losses["searched"])
    return float((u - s).mean())


LINES_WORSE = _pair_5_1(-0.02)  # the searched configuration 0.02 nats worse on every line
LINES_BETTER = _pair_5_1(0.02)
LINES_TIE = _pair_5_1(0.0)
LINES_SMALL = _pair_5_1(0.003)  # resolved, but below the minimum effect of 0.005 nats: a tie


def _pair_5_3(shift):  # the searched configuration against a longer run: shift > 0 → searched better
    longer, searched = _lines(shift, seed=1)
    return {"searched": searched, "uniform, 2× steps": longer}


def test_all_week05_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("05:")}
    assert ids == {"E1", "E2", "5.1", "5.2", "5.3"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.layer_memory(good_memory, hidden=hidden)
    check.pareto_front(good_front, records_points=[(0.8, 900), (0.79, 1000), (0.81, 800), (0.82, 950)])
    check.q5_1("c", _diff(LINES_WORSE), LINES_WORSE, BYTES, 1000)
    check.q5_2("a", "model.layers.0", RATIO, SENS)
    check.q5_3("b", 23 / 20736, 20.0, COST, _pair_5_3(-0.02))
    assert capsys.readouterr().out.count("공개 체크 통과") == 5


@pytest.mark.parametrize("losses, right", [(LINES_WORSE, "c"), (LINES_BETTER, "a"), (LINES_TIE, "b"), (LINES_SMALL, "b")])
def test_5_1_follows_the_paired_comparison_of_the_lines_it_is_given(losses, right):
    for letter in "abc":
        if letter == right:
            check.q5_1(letter, _diff(losses), losses, BYTES, 1000)
        else:
            with pytest.raises(CheckFailed, match="신뢰구간"):
                check.q5_1(letter, _diff(losses), losses, BYTES, 1000)


@pytest.mark.parametrize("shift, right", [(0.02, "a"), (-0.02, "b"), (0.0, "c")])
def test_5_3_follows_the_paired_comparison_with_the_longer_run(shift, right):
    for letter in "abc":
        if letter == right:
            check.q5_3(letter, 23 / 20736, 20.0, COST, _pair_5_3(shift))
        else:
            with pytest.raises(CheckFailed, match="신뢰구간"):
                check.q5_3(letter, 23 / 20736, 20.0, COST, _pair_5_3(shift))


def test_5_2_follows_the_measured_ratio():
    flat = {"a": 0.010, "b": 0.011, "c": 0.012, "d": 0.0105}
    check.q5_2("b", "c", 0.012 / statistics.median(flat.values()), flat)
    with pytest.raises(CheckFailed, match="3배"):
        check.q5_2("a", "c", 0.012 / statistics.median(flat.values()), flat)


def test_exercises_cannot_be_passed_with_the_kits_reference():
    from peftlab import qr_adaptor as qa

    def via_memory_model(out_f, in_f, bits, rank):
        return qa.weight_nbytes(out_f * in_f, bits) + qa.lora_nbytes(in_f, out_f, rank)

    def via_sort(points):
        return qa.non_dominated_sort(points)[0]

    for fn, call in ((via_memory_model, check.layer_memory), (via_sort, check.pareto_front)):
        with pytest.raises(CheckFailed, match="참조 구현"):
            call(fn)
    with pytest.raises(CheckFailed, match="참조 구현"):
        check.pareto_front(lambda pts: [i for i, p in enumerate(pts) if not any(qa.dominates(q, p) for q in pts)])


def test_the_memory_check_agrees_with_the_package():
    from peftlab import qr_adaptor as qa

    for shape in [(192, 192), (512, 192), (33, 17), (64, 300)]:
        for bits in qa.SUPPORTED_BITS:
            n = shape[0] * shape[1]
            assert good_memory(*shape, bits, 4) == qa.weight_nbytes(n, bits) + qa.lora_nbytes(shape[1], shape[0], 4)


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: check.layer_memory(no_lora), "LoRA의 A"),
        (lambda: check.layer_memory(lora_fp32), "32비트"),
        (lambda: check.layer_memory(no_constants), "양자화 상수"),
        (lambda: check.layer_memory(nf4_fp32_constants), "double quantization"),
        (lambda: check.layer_memory(floor_division, hidden=True), "올림"),
        (lambda: check.layer_memory(lambda *a: "many"), "숫자"),
        (lambda: check.layer_memory(_not_done), "NotImplementedError"),
        (lambda: check.pareto_front(maximising_front), "최대화"),
        (lambda: check.pareto_front(weak_dominance_front), "같은 점"),
        (lambda: check.pareto_front(lambda pts: [0]), "비지배 점은"),
        (lambda: check.pareto_front(lambda pts: None), "리스트"),
        (lambda: check.pareto_front(_not_done), "NotImplementedError"),
        (lambda: check.q5_2("a", "model.layers.1", RATIO, SENS), "덜 민감한"),
        (lambda: check.q5_2("a", "model.layers.3", RATIO, SENS), "가장 큰 층은"),
        (lambda: check.q5_2("a", "model.layers.0", 1 / RATIO, SENS), "뒤집"),
        (lambda: check.q5_2("a", "model.layers.0", 0.18 / statistics.mean(SENS.values()), SENS), "중앙값"),
        (lambda: check.q5_2("b", "model.layers.0", RATIO, SENS), "3배"),
        (lambda: check.q5_2(None, None, None, None), "sensitivity"),
        (lambda: check.q5_1("c", -_diff(LINES_WORSE), LINES_WORSE, BYTES, 1000), "부호"),
        (lambda: check.q5_1("c", 0.1, LINES_WORSE, BYTES, 1000), "평균"),
        (lambda: check.q5_1("a", _diff(LINES_WORSE), LINES_WORSE, BYTES, 1000), "신뢰구간"),
        (lambda: check.q5_1("c", _diff(LINES_WORSE), LINES_WORSE, {"uniform": 1000, "searched": 1200}, 1000), "예산"),
        (lambda: check.q5_1("c", None, LINES_WORSE, BYTES, 1000), "diff"),
        (lambda: check.q5_1(None, None, None, None, None), "line_losses"),
        (lambda: check.q5_1("c", 0.0, {"uniform": [0.8, 0.79], "searched": [0.81, 0.8]}, BYTES, 1000), "시드 2개"),
        (lambda: check.q5_1("c", 0.0, {"uniform": LINES_WORSE["uniform"],
                                       "searched": [row[:40] for row in LINES_WORSE["searched"]]}, BYTES, 1000), "모양"),
        (lambda: check.q5_3("b", 20736 / 23, 20.0, COST, _pair_5_3(-0.02)), "뒤집"),
        (lambda: check.q5_3("b", 23 / 20736, 40.0, COST, _pair_5_3(-0.02)), "finetunes_equivalent"),
        (lambda: check.q5_3("c", 23 / 20736, 20.0, COST, _pair_5_3(-0.02)), "신뢰구간"),
        (lambda: check.q5_3("b", None, None, COST, _pair_5_3(-0.02)), "fraction"),
        (lambda: check.q5_3("b", 23 / 20736, 20.0, COST, LINES_WORSE), "2× steps"),
        (lambda: check.q5_3(None, None, None, None, None), "cost"),
    ],
)
def test_typical_mistakes_fail_with_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    assert hint in info.value.hint, info.value.hint
