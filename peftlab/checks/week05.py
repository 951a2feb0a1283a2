"""Checks for Week 05 — QR-Adaptor (``solutions/05_qr_adaptor.ipynb``).

Exercises (the student writes code):
  E1  ``layer_memory(out_features, in_features, bits, rank)`` → bytes of one Linear under the kit's storage
      (quantized weight + its constants + 16-bit LoRA), compared with :mod:`peftlab.qr_adaptor`'s memory model
  E2  ``pareto_front(points)`` → indices of the non-dominated points (every objective minimised), compared
      with :func:`peftlab.qr_adaptor.non_dominated_sort` on hand tables and on the student's search records
Checkpoint questions of the lecture's QR-Adaptor part (section 5), in the lecture's order, each on the student's run:
  5.1 per-layer vs uniform: the searched configuration against the uniform configuration that sets the budget
      ("uniform": the highest bit-width whose headroom over uniform 16-bit exceeds the noise) on the test lines (seeds × lines), and the verdict of :func:`peftlab.analysis.stats.paired_comparison` on those per-line
      losses (min effect :data:`MIN_EFFECT` nats) — a tie is an answer
  5.2 why layers differ: the most 2-bit-sensitive layer and the max/median ratio of the student's I_q
  5.3 search cost vs gain: evaluations, seconds, the fraction of the space evaluated, and the paired verdict of
      the searched configuration against the budget's uniform configuration fine-tuned twice as many steps (one more fine-tune's cost)
"""

from __future__ import annotations

import math
import statistics

import numpy as np

from peftlab.analysis.stats import paired_comparison
from peftlab.checks._core import checkpoint, choice, expect
from peftlab.checks._core import number as _number
from peftlab.qr_adaptor import lora_nbytes, non_dominated_sort, weight_nbytes

WEEK = "05"

__all__ = ["layer_memory", "pareto_front", "q5_1", "q5_2", "q5_3", "MIN_EFFECT", "PAIR_5_1", "PAIR_5_3"]


def _choice(value, letters: str = "abc") -> str:
    return choice(value, letters)


# ---------------------------------------------------------------------------------------------- E1
def _reference_memory(out_f: int, in_f: int, bits: int, rank: int) -> int:
    return weight_nbytes(out_f * in_f, bits) + lora_nbytes(in_f, out_f, rank)


@checkpoint(WEEK, "E1", points=1, title="Memory model: quantized weight + constants + 16-bit LoRA, in bytes", reference=("peftlab.qr_adaptor:MemoryModel", "peftlab.qr_adaptor:weight_nbytes", "peftlab.qr_adaptor:lora_nbytes"))
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
#: the smallest difference in mean per-line test loss (nats) the week calls a difference
MIN_EFFECT = 0.005
#: 5.1: the two configurations compared on the test lines
PAIR_5_1 = ("uniform", "searched")
#: 5.3: the searched configuration against the budget's uniform configuration fine-tuned twice as many steps
PAIR_5_3 = ("searched", "uniform, 2× steps")


def _line_losses(losses, keys: tuple[str, str], what: str) -> tuple[np.ndarray, np.ndarray]:
    """The per-line losses of two configurations as two (n_seeds ≥ 2, n_lines ≥ 2) arrays, paired by position."""
    expect(isinstance(losses, dict) and set(keys) <= set(losses),
           f"{what}에는 {{{', '.join(repr(k) for k in keys)}}}: 각각 [시드마다 [테스트 줄마다 손실]]을 넣으세요")
    out = []
    for k in keys:
        rows = losses[k]
        expect(not (isinstance(rows, (list, tuple)) and rows and all(isinstance(v, (int, float)) for v in rows)),
               f"{what}[{k!r}]: 시드마다 평균 손실 하나가 아니라, 시드마다 테스트 줄별 손실의 리스트(시드 2개 이상 × 줄)를 넣으세요")
        try:
            arr = np.asarray([[float(v) for v in row] for row in losses[k]], dtype=np.float64)
        except (TypeError, ValueError):
            expect(False, f"{what}[{k!r}]는 시드마다 줄별 손실의 리스트(2차원: 시드 × 테스트 줄)여야 합니다")
        expect(arr.ndim == 2 and arr.shape[0] >= 2 and arr.shape[1] >= 2,
               f"{what}[{k!r}]: 시드 2개 이상 × 테스트 줄 2개 이상의 줄별 손실이어야 합니다 (받은 모양: {arr.shape})")
        expect(bool(np.isfinite(arr).all()), f"{what}[{k!r}]에 NaN이나 inf가 있습니다")
        out.append(arr)
    expect(out[0].shape == out[1].shape,
           f"{what}: 두 구성의 모양 {out[0].shape}, {out[1].shape}이 다릅니다 — 같은 시드, 같은 테스트 줄끼리 짝지어야 합니다")
    return out[0], out[1]


def _verdict(first: np.ndarray, second: np.ndarray):
    """:func:`peftlab.analysis.stats.paired_comparison` of two configurations' per-line losses (lower is better)."""
    return paired_comparison(first, second, min_effect=MIN_EFFECT, higher_is_better=False)


def _verdict_hint(name: str, r) -> str:
    return (f"{name}: 차이 {r.diff:+.4f} nats (양수 = 찾은 구성이 낮은 손실), 95 % 신뢰구간 [{r.low:+.4f}, {r.high:+.4f}], "
            f"최소 효과 {MIN_EFFECT} — 구간이 0을 품는지, |차이|가 최소 효과에 이르는지로 고르세요")


@checkpoint(WEEK, "5.1", points=1, title="Per-layer vs uniform — your searched configuration against the budget's uniform configuration, paired per test line")
def q5_1(choice, diff, line_losses, bytes_used, budget) -> None:
    uniform, searched = _line_losses(line_losses, PAIR_5_1, "line_losses")
    expect(isinstance(bytes_used, dict) and set(PAIR_5_1) <= set(bytes_used),
           "bytes_used에는 두 구성의 메모리(바이트)를 넣으세요")
    expect(bytes_used["searched"] <= budget,
           f"찾은 구성의 메모리 {bytes_used['searched']} B가 예산 {budget} B를 넘습니다: 검색 결과가 아닙니다")
    want = float((uniform - searched).mean())
    got = _number(diff, "diff")
    expect(not math.isclose(got, -want, abs_tol=1e-9) or abs(want) < 1e-9,
           "diff의 부호가 반대입니다: 균일 구성의 손실 − 찾은 구성의 손실 (양수 = 찾은 구성이 나음)")
    expect(math.isclose(got, want, abs_tol=1e-7),
           "diff는 모든 (시드, 테스트 줄)에 걸친 '균일 구성 손실 − 찾은 구성 손실'의 평균입니다")
    r = _verdict(searched, uniform)
    right = {"a": "a", "tie": "b", "b": "c"}[r.verdict]
    expect(_choice(choice) == right, _verdict_hint("찾은 구성 대 균일 구성", r))


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


@checkpoint(WEEK, "5.3", points=1, title="Search cost vs gain — your evaluations and seconds, and the search against longer training")
def q5_3(choice, fraction, finetunes_equivalent, cost, line_losses) -> None:
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
    searched, longer = _line_losses(line_losses, PAIR_5_3, "line_losses")
    r = _verdict(searched, longer)
    right = {"a": "a", "b": "b", "tie": "c"}[r.verdict]
    expect(_choice(choice) == right, _verdict_hint("찾은 구성 대 두 배 학습한 균일 구성", r))
