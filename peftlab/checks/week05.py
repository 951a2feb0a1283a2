"""Checks for Week 05 — QR-Adaptor (``solutions/05_qr_adaptor.ipynb``).

Exercises (the student writes code):
  E1  ``layer_memory(out_features, in_features, bits, rank)`` → bytes of one Linear under the kit's storage
      (quantized weight + its constants + 16-bit LoRA), compared with :mod:`peftlab.qr_adaptor`'s memory model
  E2  ``pareto_front(points)`` → indices of the non-dominated points (every objective minimised), compared
      with :func:`peftlab.qr_adaptor.non_dominated_sort` on hand tables and on the student's search records
Checkpoint questions of the lecture's QR-Adaptor part (section 5), each on the student's own run:
  5.1 per-layer vs uniform: the searched configuration's loss against uniform 4-bit at the same budget, over
      seeds, and the verdict those numbers support
  5.2 why layers differ: the most 2-bit-sensitive layer and the max/median ratio of the student's I_q
  5.3 search cost vs gain: evaluations, seconds, the fraction of the space evaluated, and the verdict
"""

from __future__ import annotations

import math
import statistics

from peftlab.checks._core import checkpoint, choice, expect
from peftlab.checks._core import number as _number
from peftlab.qr_adaptor import lora_nbytes, non_dominated_sort, weight_nbytes

WEEK = "05"

__all__ = ["layer_memory", "pareto_front", "q5_1", "q5_2", "q5_3"]


def _choice(value, letters: str = "abc") -> str:
    return choice(value, letters)


# ---------------------------------------------------------------------------------------------- E1
def _reference_memory(out_f: int, in_f: int, bits: int, rank: int) -> int:
    return weight_nbytes(out_f * in_f, bits) + lora_nbytes(in_f, out_f, rank)


@checkpoint(WEEK, "E1", points=1, title="Memory model: quantized weight + constants + 16-bit LoRA, in bytes", reference=("peftlab.qr_adaptor:MemoryModel",))
def layer_memory(fn, hidden: bool = False) -> None:
    cases = [(192, 192, 4, 4), (512, 192, 2, 8), (192, 512, 3, 2), (192, 192, 8, 4), (192, 192, 16, 2)]
    if hidden:
        cases += [(33, 17, 3, 1), (64, 300, 4, 8), (1, 5, 2, 2), (7, 9, 8, 3)]
    for out_f, in_f, bits, rank in cases:
        n = out_f * in_f
        blocks = -(-n // 64)
        got = fn(out_f, in_f, bits, rank)
        expect(isinstance(got, (int, float)) and not isinstance(got, bool),
               f"바이트 수(숫자)를 반환하세요 (받은 것: {type(got).__name__})")
        want = _reference_memory(out_f, in_f, bits, rank)
        lora = lora_nbytes(in_f, out_f, rank)
        w = weight_nbytes(n, bits)
        tag = f"(out={out_f}, in={in_f}, bits={bits}, rank={rank})"
        expect(got != w, f"{tag}: LoRA의 A (r×in)와 B (out×r)를 빠뜨렸습니다: 16비트 → 2·r·(in + out) 바이트")
        expect(got != w + 2 * lora, f"{tag}: LoRA를 32비트(4바이트)로 셌습니다: 어댑터는 16비트(2바이트)로 셉니다")
        expect(got != n * bits / 8 + lora or bits == 16,
               f"{tag}: 양자화 상수(블록 64개마다 absmax 하나)를 빠뜨렸습니다")
        if bits == 4:
            expect(got != n / 2 + 4 * blocks + lora,
                   f"{tag}: 4비트는 QLoRA의 double quantization을 씁니다: 상수는 블록마다 1바이트(uint8) "
                   f"+ 평균 4바이트 + 블록 256개마다 fp32 하나")
        expect(got == want, f"{tag}: {got} 바이트가 아니라 {want} 바이트입니다 — 올림(⌈·⌉)을 확인하세요: "
                            f"코드는 ⌈n·bits/8⌉, 블록은 ⌈n/64⌉개")


# ---------------------------------------------------------------------------------------------- E2
def _tables(records_points=None):
    tables = [[(1, 5), (2, 3), (3, 1), (2, 4), (4, 4), (3, 3)],
              [(0.80, 900), (0.78, 1000), (0.85, 700), (0.80, 950), (0.90, 700)],
              [(1, 1), (1, 1), (2, 2)]]
    if records_points:
        tables.append([tuple(p) for p in records_points])
    return tables


@checkpoint(WEEK, "E2", points=1, title="Pareto front: the non-dominated points (every objective minimised)", reference=("peftlab.qr_adaptor:non_dominated_sort", "peftlab.qr_adaptor:dominates"))
def pareto_front(fn, records_points=None) -> None:
    for pts in _tables(records_points):
        pts = [tuple(p) for p in pts]
        got = fn(list(pts))
        expect(got is not None and hasattr(got, "__iter__"), "인덱스의 리스트를 반환하세요")
        got = sorted(int(i) for i in got)
        want = non_dominated_sort(pts)[0]
        maximised = non_dominated_sort([tuple(-v for v in p) for p in pts])[0]
        expect(got != maximised or got == want,
               "목표를 최대화했습니다: 손실과 바이트는 둘 다 작을수록 좋습니다 (a가 b를 지배 ⇔ 모두 ≤, 하나는 <)")
        expect(all(0 <= i < len(pts) for i in got), "points의 인덱스(0 … len−1)를 반환하세요")
        missing = set(want) - set(got)
        expect(not (set(got) < set(want) and any(pts.count(pts[i]) > 1 for i in missing)),
               f"{pts}: 같은 점이 두 번 있으면 서로를 지배하지 않습니다 (모두 ≤ 이면서 하나는 < 이어야 지배)")
        expect(got == want, f"{pts}: 비지배 점은 {want}입니다 (받은 것: {got})")


# ---------------------------------------------------------------------------------------------- 5.1
def _answer_5_1(gains: list[float], noise: float) -> str:
    """a: the searched configuration is better than uniform 4-bit on every seed by more than the noise; c: worse
    on every seed by more than it; b: otherwise (no measurable difference)."""
    if all(g > noise for g in gains):
        return "a"
    if all(g < -noise for g in gains):
        return "c"
    return "b"


def _noise(losses: dict) -> float:
    """The spread a fine-tune's loss has between seeds (largest std over the compared configurations), ≥ 1e-4."""
    return max([statistics.stdev(v) for v in losses.values()] + [1e-4])


@checkpoint(WEEK, "5.1", points=1, title="Per-layer vs uniform — your searched configuration against uniform 4-bit")
def q5_1(choice, gains, losses, bytes_used, budget) -> None:
    expect(isinstance(losses, dict) and {"uniform 4-bit", "searched"} <= set(losses),
           "losses에는 {'uniform 4-bit': [시드별 손실], 'searched': [시드별 손실]}을 넣으세요")
    a, b = losses["uniform 4-bit"], losses["searched"]
    expect(isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b) >= 2,
           "시드마다 하나씩, 두 구성에 같은 수(≥ 2)의 손실이 있어야 합니다")
    expect(isinstance(bytes_used, dict) and {"uniform 4-bit", "searched"} <= set(bytes_used),
           "bytes_used에는 두 구성의 메모리(바이트)를 넣으세요")
    expect(bytes_used["searched"] <= budget,
           f"찾은 구성의 메모리 {bytes_used['searched']} B가 예산 {budget} B를 넘습니다: 검색 결과가 아닙니다")
    want = [u - s for u, s in zip(a, b, strict=True)]
    expect(isinstance(gains, (list, tuple)) and len(gains) == len(want), "gains에는 시드마다 하나씩 값을 넣으세요")
    for i, (g, w) in enumerate(zip(gains, want, strict=True)):
        got = _number(g, f"gains[{i}]")
        expect(not math.isclose(got, -w, abs_tol=1e-9) or abs(w) < 1e-9,
               f"gains[{i}]의 부호가 반대입니다: 균일 4-bit의 손실 − 찾은 구성의 손실 (양수 = 찾은 구성이 나음)")
        expect(math.isclose(got, w, abs_tol=1e-9), f"gains[{i}]는 losses에서 계산한 손실 차이가 아닙니다")
    expect(_choice(choice) == _answer_5_1(want, _noise(losses)),
           "시드마다의 이득(gains)을 시드 사이의 흩어짐(표준편차)과 비교하세요: 잡음보다 큰 차이만 차이입니다")


# ---------------------------------------------------------------------------------------------- 5.2
def _answer_5_2(ratio: float) -> str:
    """a: one layer is far more sensitive (max ≥ 3 × median); b: all layers similar."""
    return "a" if ratio >= 3 else "b"


@checkpoint(WEEK, "5.2", points=1, title="Why layers need different bits — your measured sensitivities")
def q5_2(choice, most_sensitive, ratio, sensitivity) -> None:
    expect(isinstance(sensitivity, dict) and len(sensitivity) >= 2
           and all(isinstance(v, (int, float)) for v in sensitivity.values()),
           "sensitivity에는 {층 이름: I_q (손실 증가, nats)}를 넣으세요 (층 2개 이상)")
    top = max(sensitivity, key=sensitivity.get)
    expect(most_sensitive is not None, "most_sensitive에 층 이름을 넣으세요")
    expect(most_sensitive != min(sensitivity, key=sensitivity.get) or top == most_sensitive,
           "가장 덜 민감한 층을 골랐습니다: I_q(손실 증가)가 가장 큰 층입니다")
    expect(most_sensitive == top, f"I_q가 가장 큰 층은 {most_sensitive!r}가 아닙니다")
    med = statistics.median(sensitivity.values())
    expect(med > 0, "중앙값이 0 이하라 비율을 정의할 수 없습니다: 측정을 확인하세요")
    want = sensitivity[top] / med
    got = _number(ratio, "ratio")
    expect(not math.isclose(got, 1 / want, rel_tol=1e-6), "ratio가 뒤집혔습니다: 최댓값 / 중앙값")
    expect(not math.isclose(got, sensitivity[top] / statistics.mean(sensitivity.values()), rel_tol=1e-6)
           or math.isclose(med, statistics.mean(sensitivity.values()), rel_tol=1e-6),
           "평균으로 나눴습니다: 한 층이 튀면 평균도 끌려 올라갑니다 — 중앙값(median)으로 나누세요")
    expect(math.isclose(got, want, rel_tol=1e-6), f"ratio는 max(I_q) / median(I_q)입니다 (여기서는 {want:.2f})")
    expect(_choice(choice, "ab") == _answer_5_2(want),
           "여러분이 잰 비율로 판단하세요: 한 층이 중앙값의 3배 이상이면 층마다 다릅니다")


# ---------------------------------------------------------------------------------------------- 5.3
COST_KEYS = ("evaluations", "seconds", "space_size", "one_finetune_seconds")


def _answer_5_3(gain_verdict: str) -> str:
    """a: the search paid off (a measurable gain); b: it cost many fine-tunes for no measurable gain;
    c: it cost many fine-tunes and did worse than uniform."""
    return {"a": "a", "b": "b", "c": "c"}[gain_verdict]


@checkpoint(WEEK, "5.3", points=1, title="Search cost vs gain — your evaluations and seconds")
def q5_3(choice, fraction, finetunes_equivalent, cost, gains, losses) -> None:
    expect(isinstance(cost, dict) and all(isinstance(cost.get(k), (int, float)) and cost[k] > 0 for k in COST_KEYS),
           f"cost에는 위 셀에서 잰 값 {list(COST_KEYS)}를 넣으세요")
    want_f = cost["evaluations"] / cost["space_size"]
    got_f = _number(fraction, "fraction")
    expect(not math.isclose(got_f, 1 / want_f, rel_tol=1e-6), "fraction이 뒤집혔습니다: 평가한 구성 수 / 공간의 크기")
    expect(math.isclose(got_f, want_f, rel_tol=1e-6),
           f"fraction은 평가 횟수 / 검색 공간의 크기입니다 (여기서는 {want_f:.3g})")
    want_e = cost["seconds"] / cost["one_finetune_seconds"]
    expect(math.isclose(_number(finetunes_equivalent, "finetunes_equivalent"), want_e, rel_tol=1e-6),
           f"finetunes_equivalent는 검색 시간 / 고충실도 미세조정 한 번의 시간입니다 (여기서는 {want_e:.1f})")
    expect(isinstance(losses, dict) and isinstance(gains, (list, tuple)) and gains,
           "gains와 losses는 체크포인트 5.1에 넣은 값 그대로 넣으세요")
    verdict = _answer_5_1([float(g) for g in gains], _noise(losses))
    expect(_choice(choice) == _answer_5_3(verdict),
           "5.1에서 잰 이득(잡음과 비교)과 여기서 잰 비용을 나란히 놓고 판단하세요")
