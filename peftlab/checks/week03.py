"""Checks for Week 03 — DoRA (``solutions/03_dora.ipynb``).

Exercises (the student writes code):
  E1  ``decompose(W)`` → ``(m, D)``: magnitude per output unit and unit-norm directions, ``W = diag(m)·D``
  E2  ``dora_forward(x, W0, b, A, B, m, scaling)`` → compared with peftlab's DoRALinear and peft's
      ``LoraConfig(use_dora=True)``: output, and the gradients of A, B and m (the norm detached)
Checkpoint questions of the lecture's DoRA part (section 3), each on the student's own run:
  3.1 how DoRA's decomposition differs from LoRA's low-rank update: the numerical rank of the ΔW the
      student's trained LoRA and DoRA layers made and the trainable count of that layer (recomputed from their
      tensors), and a reasoning item on what DoRA's high rank means (key in ``_keys.py``; form only without it)
  3.2 why separating magnitude and direction can help: from the student's weight-decomposition analysis (all
      encoder Linears, two seeds) the ΔM/ΔD rank correlation within each matrix over its output units, the
      paper's pooling over matrices × steps, and within one step across matrices; which method couples the two
      most; and the choice the within-step correlations decide (does mixing steps explain the positive sign?)
  3.3 the computational trade-off: DoRA/LoRA ratios of the measured training-step time and memory, merged DoRA
      against the base model, paired comparisons of the per-repeat times (log scale, min effect ×1.05), and the
      choice those decide
  3.4 (the practice part's question) LoRA or DoRA for this task: paired comparisons of DoRA and LoRA per rank
      on the per-example test correctness of the student's sweep, Holm-corrected over the ranks, and the choice
      they decide (no difference where the intervals say so)
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import torch
from torch import nn

from peftlab.checks._core import answer_key, checkpoint, expect
from peftlab.checks._core import choice as _choice
from peftlab.checks._core import close as _close
from peftlab.checks._core import correctness_matrix as _per_example
from peftlab.checks._core import number as _number
from peftlab.checks._peft import peft_linear

WEEK = "03"

__all__ = ["decompose", "dora_forward", "q3_1", "q3_2", "q3_3", "q3_4", "timing_comparison", "comparisons_3_4",
           "TIME_EFFECT", "MIN_EFFECT_3_4"]

#: singular values below RANK_RTOL · σ₁ count as zero in 3.1 (float32 products leave ~1e-7 · σ₁ of noise)
RANK_RTOL = 1e-4
#: 3.3: a time ratio within ×1.05 either way is no difference of interest (min effect on log times)
TIME_EFFECT = math.log(1.05)
#: 3.3: a memory ratio above this is "more memory" (memory is counted or read from the allocator: no noise)
MEMORY_MORE = 1.05
#: 3.4: the smallest accuracy difference of interest between DoRA and LoRA at one rank
MIN_EFFECT_3_4 = 0.005


# ---------------------------------------------------------------------------------------------- E1
@checkpoint(WEEK, "E1", points=1, title="decompose: W = diag(m) · D, one magnitude per output unit", reference=("peftlab.analysis.decompose:magnitude_direction", "peftlab.methods.dora:DoRALinear"))
def decompose(fn, hidden: bool = False) -> None:
    shapes = [(6, 10)] + ([(12, 5), (1, 7)] if hidden else [])
    for i, (out_f, in_f) in enumerate(shapes):
        W = torch.randn(out_f, in_f, generator=torch.Generator().manual_seed(30 + i)) * 0.7
        got = fn(W.clone())
        expect(isinstance(got, tuple) and len(got) == 2, "(m, D) 두 텐서의 튜플을 반환하세요")
        m, D = got
        expect(isinstance(m, torch.Tensor) and isinstance(D, torch.Tensor), "m과 D는 torch.Tensor여야 합니다")
        expect(m.numel() != 1 or out_f == 1,
               "m이 스칼라 하나입니다: 강의처럼 ‖W‖_F 하나가 아니라, 출력 단위(행)마다 크기 하나씩 — shape (out,)")
        expect(tuple(m.shape) != (in_f,) or in_f == out_f,
               f"m의 shape가 (in,) = ({in_f},)입니다: 노름은 입력 차원 위로(dim=1) 구해 출력 단위마다 하나 — (out,)")
        expect(tuple(m.shape) == (out_f,), f"m의 shape는 (out,) = ({out_f},)여야 합니다 (받은 것: {tuple(m.shape)})")
        expect(tuple(D.shape) == (out_f, in_f), f"D의 shape는 W와 같은 {(out_f, in_f)}여야 합니다")
        expect(not _close(m, torch.linalg.vector_norm(W, dim=1) ** 2),
               "m에 제곱합이 들어 있습니다: 제곱근까지 취한 L2 노름이어야 합니다")
        expect(_close(m, torch.linalg.vector_norm(W, dim=1)),
               "m이 각 행의 L2 노름 ‖W[j, :]‖₂와 다릅니다 (torch.linalg.norm(W, dim=1))")
        expect(_close(torch.linalg.vector_norm(D, dim=1), torch.ones(out_f)), "D의 각 행은 단위 벡터(노름 1)여야 합니다")
        expect(_close(m.unsqueeze(1) * D, W), "diag(m) · D가 W를 복원하지 못합니다")


# ---------------------------------------------------------------------------------------------- E2
def _dora_case(out_f, in_f, r, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(out_f, in_f, generator=g, dtype=dtype) / math.sqrt(in_f)
    b = torch.randn(out_f, generator=g, dtype=dtype) * 0.5
    A = torch.randn(r, in_f, generator=g, dtype=dtype) / math.sqrt(in_f)
    B = torch.randn(out_f, r, generator=g, dtype=dtype) * 0.3
    m = torch.linalg.vector_norm(W0, dim=1) * (torch.rand(out_f, generator=g, dtype=dtype) + 0.5)
    return W0, b, A, B, m


def _reference_dora(W0, b, A, B, m, alpha, r):
    from peftlab.methods.dora import DoRALinear

    base = nn.Linear(W0.shape[1], W0.shape[0], dtype=W0.dtype)
    with torch.no_grad():
        base.weight.copy_(W0)
        base.bias.copy_(b)
    layer = DoRALinear(base, r=r, alpha=alpha)
    with torch.no_grad():
        layer.lora_A["default"].copy_(A)
        layer.lora_B["default"].copy_(B)
        layer.lora_magnitude_vector["default"].copy_(m)
    return layer.eval()


def _peft_dora(W0, b, A, B, m, alpha, r):
    return peft_linear(W0, b, A, B, alpha, r, magnitude=m)


@checkpoint(WEEK, "E2", points=2, title="DoRA forward: y = b + (m / ‖W0 + sBA‖_row) ⊙ (x (W0 + sBA)ᵀ), norm detached", reference=("peftlab.methods.dora:DoRALinear", "peftlab.methods.dora:DoRAEmbedding", "peftlab.methods.dora:direction_norm", "peftlab.methods.dora:merged_direction"))
def dora_forward(fn, hidden: bool = False) -> None:
    """Compare the student's ``fn(x, W0, b, A, B, m, scaling)`` with peftlab's and peft's DoRA layer."""
    cases = [(8, 8, 2, 4.0, (4, 8), torch.float32), (6, 10, 3, 6.0, (4, 10), torch.float32)]
    if hidden:
        cases += [(9, 5, 1, 2.0, (2, 3, 5), torch.float32), (7, 12, 4, 16.0, (3, 12), torch.float64)]
    for i, (out_f, in_f, r, alpha, xshape, dtype) in enumerate(cases):
        W0, b, A, B, m = _dora_case(out_f, in_f, r, dtype, seed=40 + i)
        x = torch.randn(*xshape, generator=torch.Generator().manual_seed(50 + i), dtype=dtype)
        s = alpha / r
        A_, B_, m_ = (t.clone().requires_grad_(True) for t in (A, B, m))
        y = fn(x, W0, b, A_, B_, m_, s)
        expect(isinstance(y, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(y).__name__})")
        expected_shape = (*xshape[:-1], out_f)
        expect(tuple(y.shape) == expected_shape, f"출력 shape는 {expected_shape}여야 합니다 (받은 것: {tuple(y.shape)})")
        V = W0 + s * B @ A
        lecture = m * (x @ W0.T + b + s * (x @ A.T) @ B.T)
        with torch.no_grad():
            expect(not _close(y.detach(), lecture),
                   "강의의 DoRALayer 식 m ⊙ (기본 출력 + LoRA 출력)입니다: ‖W0 + sBA‖_row로 나누지 않았고 bias까지 곱했습니다")
            expect(not _close(y.detach(), x @ V.T * (m / torch.linalg.vector_norm(V, dim=1)) + b * (m / torch.linalg.vector_norm(V, dim=1))),
                   "bias에도 m/‖V‖를 곱했습니다: bias는 크기 조정을 받지 않습니다 (peft도 bias를 빼고 곱한 뒤 다시 더함)")
            expect(in_f != out_f or not _close(y.detach(), x @ (V * (m / torch.linalg.vector_norm(V, dim=0))).T + b),
                   "노름의 축이 틀렸습니다: 출력 단위(행)마다 입력 차원 위로 — torch.linalg.norm(V, dim=1), shape (out,)")
            expect(not _close(y.detach(), x @ (m.unsqueeze(1) * V / torch.linalg.norm(V)).T + b),
                   "프로베니우스 노름 ‖V‖_F 하나로 나눴습니다: 출력 단위(행)마다의 노름 ‖V[j, :]‖₂로 나누세요")
            V0 = W0 + B @ A
            expect(not _close(y.detach(), x @ (V0 * (m / torch.linalg.vector_norm(V0, dim=1)).unsqueeze(1)).T + b) or s == 1.0,
                   "ΔV = s·B A에 scaling을 곱하지 않았습니다")
            ours = _reference_dora(W0, b, A, B, m, alpha, r)(x)
        expect(_close(y.detach(), ours, atol=1e-5, rtol=1e-4),
               "peftlab의 DoRALinear와 값이 다릅니다: y = b + (m / ‖W0 + sBA‖_row) ⊙ (x (W0 + sBA)ᵀ)")
        peft_model, peft_layer = _peft_dora(W0, b, A, B, m, alpha, r)
        theirs = peft_model(x)
        expect(_close(y.detach(), theirs.detach(), atol=1e-5, rtol=1e-4), "Hugging Face peft의 DoRA 레이어와 값이 다릅니다")
        # gradients: the norm is a constant (paper §4.3, peft): m's gradient is the same either way, A's and B's are not
        expect(y.requires_grad, "출력에 gradient가 흐르지 않습니다: A, B, m으로 계산하세요 (torch.no_grad 안에서 계산하지 마세요)")
        y.pow(2).sum().backward()
        theirs.pow(2).sum().backward()
        expect(m_.grad is not None and _close(m_.grad, peft_layer.lora_magnitude_vector["default"].weight.grad,
                                              atol=1e-4, rtol=1e-4),
               "m의 gradient가 peft와 다릅니다: m은 출력에 m / ‖W0 + sBA‖_row 배로 곱해집니다")
        expect(A_.grad is not None and B_.grad is not None, "A와 B에 gradient가 흘러야 합니다")
        same_ab = (_close(A_.grad, peft_layer.lora_A["default"].weight.grad, atol=1e-4, rtol=1e-4)
                   and _close(B_.grad, peft_layer.lora_B["default"].weight.grad, atol=1e-4, rtol=1e-4))
        expect(same_ab, "값은 맞지만 A, B의 gradient가 peft와 다릅니다: 노름 ‖W0 + sBA‖_row는 상수로 취급하세요 "
                        "(.detach(), 논문 §4.3) — gradient는 m과 sBA x 항으로만 흐릅니다")


# ---------------------------------------------------------------------------------------------- 3.1
def numerical_rank(matrix: torch.Tensor, rtol: float = RANK_RTOL) -> int:
    """Number of singular values above ``rtol · σ₁`` (computed in float64)."""
    s = torch.linalg.svdvals(matrix.detach().double().cpu())
    return int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0


@checkpoint(WEEK, "3.1", points=1, title="DoRA vs LoRA's low-rank update — the rank of your own ΔW")
def q3_1(choice, rank_delta, trainable, deltas, r, layer_shape) -> None:
    """The measured part (ranks, trainable counts) is recomputed from the student's tensors; the choice is a
    reasoning item (what DoRA's high-rank ΔW means) whose key is in ``_keys.py``."""
    expect(isinstance(deltas, dict) and all(isinstance(deltas.get(k), torch.Tensor) and deltas[k].dim() == 2
                                            for k in ("LoRA", "DoRA")),
           "deltas에는 같은 층의 ΔW = W' − W0 두 개 {'LoRA': …, 'DoRA': …} (2차원 텐서)를 넣으세요")
    expect(isinstance(r, int) and r >= 1, "r은 그 층 어댑터의 랭크(정수)입니다")
    out_f, in_f = layer_shape
    expect(tuple(deltas["LoRA"].shape) == (out_f, in_f) == tuple(deltas["DoRA"].shape),
           f"ΔW의 shape가 층의 (out, in) = {(out_f, in_f)}와 달라야 할 이유가 없습니다")
    expect(isinstance(rank_delta, dict) and all(k in rank_delta for k in ("LoRA", "DoRA")),
           "rank_delta에는 {'LoRA': …, 'DoRA': …} 두 값을 넣으세요")
    truth = {k: numerical_rank(deltas[k]) for k in ("LoRA", "DoRA")}
    for k in ("LoRA", "DoRA"):
        expect(isinstance(rank_delta[k], int) and not isinstance(rank_delta[k], bool), "rank_delta의 값은 정수여야 합니다")
        expect(rank_delta[k] == truth[k],
               f"rank_delta[{k!r}] = {rank_delta[k]}는 이 ΔW에서 잰 값이 아닙니다: σᵢ > {RANK_RTOL:g}·σ₁인 특이값의 개수를 세세요")
    expect(isinstance(trainable, dict) and all(k in trainable for k in ("LoRA", "DoRA")),
           "trainable에는 이 층 하나의 학습 파라미터 수 {'LoRA': …, 'DoRA': …}를 넣으세요")
    expect(int(trainable["LoRA"]) == r * (in_f + out_f),
           "LoRA가 이 층에 더하는 파라미터: A (r×in)와 B (out×r) → r·(in + out)")
    expect(int(trainable["DoRA"]) != r * (in_f + out_f) + 1,
           "DoRA의 크기 m은 스칼라 하나가 아니라 출력 단위마다 하나(out개)입니다")
    expect(int(trainable["DoRA"]) == r * (in_f + out_f) + out_f,
           "DoRA = LoRA의 A, B + 크기 벡터 m (out개) → r·(in + out) + out")
    picked = _choice(choice)
    key = answer_key(WEEK, "3.1")
    expect(key is None or picked == key,
           "고른 보기가 DoRA의 식과 맞지 않습니다: W' = diag(m / ‖W0 + sBA‖_row)(W0 + sBA)에서 ΔW = W' − W0를 "
           "전개해 보고, 여러분이 잰 랭크와 이 층의 학습 파라미터 수를 함께 보세요")


# ---------------------------------------------------------------------------------------------- 3.2
METHODS_3_2 = ("full FT", "LoRA", "DoRA")
#: 3.2: a median within-step rank correlation above this counts as "still positive without mixing steps"
WITHIN_STEP_POSITIVE = 0.2


def _unit_changes_ok(unit_changes) -> None:
    expect(isinstance(unit_changes, dict) and all(m in unit_changes for m in METHODS_3_2),
           f"unit_changes에는 {list(METHODS_3_2)} 각각의 (ΔD_j, ΔM_j) 텐서 쌍 목록을 넣으세요")
    for m in METHODS_3_2:
        pairs = unit_changes[m]
        expect(isinstance(pairs, (list, tuple)) and len(pairs) >= 1
               and all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(t, torch.Tensor) for t in p)
                       and p[0].shape == p[1].shape and p[0].numel() >= 3 for p in pairs),
               f"unit_changes[{m!r}]는 (시드, 행렬)마다 같은 길이(≥ 3)의 텐서 두 개 (ΔD_j, ΔM_j)의 목록이어야 합니다")


def _points_ok(points) -> None:
    expect(isinstance(points, dict) and all(m in points for m in METHODS_3_2),
           f"points에는 {list(METHODS_3_2)} 각각의 (seed, matrix, step, ΔD, ΔM) 목록을 넣으세요")
    for m in METHODS_3_2:
        rows = points[m]
        expect(isinstance(rows, (list, tuple)) and len(rows) >= 3 and all(len(r) == 5 for r in rows),
               f"points[{m!r}]는 (seed, matrix, step, ΔD, ΔM) 다섯 값의 목록이어야 합니다")


def _statistics_3_2(unit_changes: dict, points: dict) -> dict:
    """The three correlations of 3.2 per method, from the per-unit changes and the paper-style points.

    ``within_matrix``: median over (seed, matrix) of the Spearman correlation of (ΔD_j, ΔM_j) over the matrix's
    output units at the end of training; ``mixed``: median over seeds of the Spearman correlation over every
    (matrix, step) point, the paper's pooling; ``within_step``: median over (seed, step) of the Spearman
    correlation across the matrices at that one step.
    """
    from peftlab.analysis.decompose import spearman

    out = {"within_matrix": {}, "mixed": {}, "within_step": {}}
    for m in METHODS_3_2:
        out["within_matrix"][m] = statistics.median(spearman(dd, dm) for dd, dm in unit_changes[m])
        seeds = sorted({r[0] for r in points[m]})
        out["mixed"][m] = statistics.median(
            spearman([r[3] for r in points[m] if r[0] == s], [r[4] for r in points[m] if r[0] == s]) for s in seeds)
        groups = sorted({(r[0], r[2]) for r in points[m]})
        out["within_step"][m] = statistics.median(
            spearman([r[3] for r in points[m] if (r[0], r[2]) == g], [r[4] for r in points[m] if (r[0], r[2]) == g])
            for g in groups)
    return out


def _answer_3_2(within_step: dict) -> str:
    above = [within_step[m] > WITHIN_STEP_POSITIVE for m in METHODS_3_2]
    return "b" if all(above) else ("a" if not any(above) else "c")


@checkpoint(WEEK, "3.2", points=1,
            title="Magnitude vs direction — rank correlations within a matrix, mixed over steps, and within one step")
def q3_2(choice, corr, mixed, within_step, most_coupled, unit_changes, points) -> None:
    _unit_changes_ok(unit_changes)
    _points_ok(points)
    truth = _statistics_3_2(unit_changes, points)
    for what, got_all, key in (("corr_3_2", corr, "within_matrix"), ("mixed_3_2", mixed, "mixed"),
                               ("within_step_3_2", within_step, "within_step")):
        expect(isinstance(got_all, dict) and all(m in got_all for m in METHODS_3_2),
               f"{what}에는 {list(METHODS_3_2)} 각각의 값을 넣으세요")
        for m in METHODS_3_2:
            got, want = _number(got_all[m], f"{what}[{m!r}]"), truth[key][m]
            expect(not math.isclose(got, -want, abs_tol=1e-3) or abs(want) < 1e-3,
                   f"{what}[{m!r}]의 부호가 반대입니다: spearman(ΔD, ΔM)")
            expect(math.isclose(got, want, abs_tol=1e-3),
                   f"{what}[{m!r}] = {got:.3f}는 문제의 정의대로 잰 값이 아닙니다 (Spearman 상관, "
                   "statistics.median으로 중앙값; 무엇을 한 묶음으로 보는지 다시 읽어 보세요)")
    expect(most_coupled is not None, "most_coupled에 방법 이름을 넣으세요")
    expect(most_coupled in METHODS_3_2, f"most_coupled는 {list(METHODS_3_2)} 중 하나입니다 (받은 것: {most_coupled!r})")
    expect(most_coupled == max(METHODS_3_2, key=lambda m: truth["within_matrix"][m]),
           "행렬 안에서 크기 변화와 방향 변화가 가장 강하게 함께 움직이는(corr_3_2가 가장 큰) 방법을 고르세요")
    expect(_choice(choice, "abc") == _answer_3_2(truth["within_step"]),
           f"한 시점 안의 상관(within_step_3_2)이 {WITHIN_STEP_POSITIVE}를 넘는 방법이 몇 개인지 보고 고르세요")


# ---------------------------------------------------------------------------------------------- 3.3
TIMES_3_3 = ("train_lora", "train_dora", "infer_base", "infer_dora_merged")
MEMORY_3_3 = ("mem_lora", "mem_dora")


def timing_comparison(a_ms, b_ms):
    """``a`` against ``b`` on times measured round-robin (repeat i of both is a pair): :func:`paired_comparison`
    of the log times, lower is better, min effect ``log(1.05)``. ``exp(−diff)`` is the (geometric-mean) ratio
    a / b; verdict "b": a is slower than b by more than 5 % and the interval excludes 0; "tie": no difference
    of interest."""
    from peftlab.analysis.stats import paired_comparison

    return paired_comparison(np.log(np.asarray(a_ms, dtype=np.float64)), np.log(np.asarray(b_ms, dtype=np.float64)),
                             higher_is_better=False, min_effect=TIME_EFFECT)


def _cost_ok(cost) -> None:
    expect(isinstance(cost, dict) and all(k in cost for k in TIMES_3_3 + MEMORY_3_3),
           f"cost에는 위 셀에서 잰 값 {list(TIMES_3_3 + MEMORY_3_3)}를 넣으세요")
    for k in TIMES_3_3:
        v = cost[k]
        expect(isinstance(v, (list, tuple)) and len(v) >= 5 and all(isinstance(t, (int, float)) and t > 0 for t in v),
               f"cost[{k!r}]는 반복마다 잰 시간(ms)의 목록이어야 합니다 (5회 이상)")
    expect(len(cost["train_lora"]) == len(cost["train_dora"]) and len(cost["infer_base"]) == len(cost["infer_dora_merged"]),
           "짝지어 잰 두 시간 목록은 길이가 같아야 합니다 (반복 i끼리 한 쌍)")
    for k in MEMORY_3_3:
        expect(isinstance(cost[k], (int, float)) and cost[k] > 0, f"cost[{k!r}]는 잰 메모리(바이트)입니다")


def _answer_3_3(train_time, memory_ratio: float, merged) -> str:
    """From the paired timing comparisons (DoRA vs LoRA training steps, merged DoRA vs base inference) and the
    memory ratio DoRA / LoRA: DoRA's step costs more when it is slower beyond ×1.05 (verdict "b") or takes more
    than :data:`MEMORY_MORE` times the memory; merged DoRA differs from the base model when that verdict is not
    a tie. a: more, same; b: more, differs; c: not more, same; d: not more, differs."""
    more = train_time.verdict == "b" or memory_ratio > MEMORY_MORE
    differs = merged.verdict != "tie"
    return {(True, False): "a", (True, True): "b", (False, False): "c", (False, True): "d"}[(more, differs)]


def _timing_ok(got, want, what: str, a: str, b: str) -> None:
    expect(got is not None and all(hasattr(got, k) for k in ("diff", "low", "high", "verdict")),
           f"{what}에는 timing_comparison({a}, {b})가 돌려준 결과를 넣으세요")
    diff = _number(got.diff, f"{what}.diff")
    expect(not math.isclose(diff, -want.diff, abs_tol=1e-9) or abs(want.diff) < 1e-9,
           f"{what}의 순서가 반대입니다: timing_comparison({a}, {b})")
    expect(math.isclose(diff, want.diff, abs_tol=1e-9), f"{what}는 cost의 {a}와 {b}를 반복끼리 짝지은 비교가 아닙니다")
    expect(math.isclose(_number(got.min_effect, f"{what}.min_effect"), TIME_EFFECT, rel_tol=1e-9)
           and abs(got.low - want.low) <= 0.005 and abs(got.high - want.high) <= 0.005,
           f"{what}의 신뢰구간이나 최소 효과가 timing_comparison의 것과 다릅니다: 그 함수의 결과를 그대로 넣으세요")


@checkpoint(WEEK, "3.3", points=1, title="DoRA's computational trade-off — your measured ratios and paired timing comparisons")
def q3_3(choice, time_ratio, memory_ratio, merged_ratio, train_time, merged_time, cost) -> None:
    _cost_ok(cost)
    med = {k: statistics.median(cost[k]) for k in TIMES_3_3}
    want_t = med["train_dora"] / med["train_lora"]
    want_m = cost["mem_dora"] / cost["mem_lora"]
    want_i = med["infer_dora_merged"] / med["infer_base"]
    got_t = _number(time_ratio, "time_ratio")
    expect(not math.isclose(got_t, 1 / want_t, rel_tol=1e-3) or math.isclose(want_t, 1, rel_tol=1e-3),
           "time_ratio가 뒤집혔습니다: DoRA / LoRA")
    expect(math.isclose(got_t, want_t, rel_tol=1e-3),
           f"time_ratio는 여러분이 잰 학습 step 시간의 중앙값 비 DoRA / LoRA입니다 (여기서는 {want_t:.3f})")
    expect(math.isclose(_number(memory_ratio, "memory_ratio"), want_m, rel_tol=1e-3),
           f"memory_ratio는 여러분이 잰 mem_dora / mem_lora입니다 (여기서는 {want_m:.3f})")
    got_i = _number(merged_ratio, "merged_ratio")
    expect(not math.isclose(got_i, 1 / want_i, rel_tol=1e-3) or math.isclose(want_i, 1, rel_tol=1e-3),
           "merged_ratio가 뒤집혔습니다: 병합한 DoRA / 기본 모델")
    expect(math.isclose(got_i, want_i, rel_tol=1e-3),
           f"merged_ratio는 병합한 DoRA의 추론 시간 중앙값 / 기본 모델의 것입니다 (여기서는 {want_i:.3f})")
    want_train = timing_comparison(cost["train_dora"], cost["train_lora"])
    want_merged = timing_comparison(cost["infer_dora_merged"], cost["infer_base"])
    _timing_ok(train_time, want_train, "train_time", "cost['train_dora']", "cost['train_lora']")
    _timing_ok(merged_time, want_merged, "merged_time", "cost['infer_dora_merged']", "cost['infer_base']")
    expect(_choice(choice) == _answer_3_3(want_train, want_m, want_merged),
           "학습 step(두 시간의 대응 비교 verdict와 메모리 비)과 병합 후 추론(대응 비교 verdict)을 나눠서 판단하세요: "
           "verdict가 'tie'이면 ×1.05 넘는 유의한 차이가 아닙니다")


# ---------------------------------------------------------------------------------------------- 3.4
def comparisons_3_4(sweep) -> tuple[dict, dict]:
    """Per rank, :func:`paired_comparison` of DoRA against LoRA (min effect :data:`MIN_EFFECT_3_4`) on the
    per-example correctness ``sweep[method][r]`` (seeds × test examples), and Holm's decision over the ranks."""
    from peftlab.analysis.stats import holm, paired_comparison

    expect(isinstance(sweep, dict) and isinstance(sweep.get("LoRA"), dict) and isinstance(sweep.get("DoRA"), dict)
           and sweep["LoRA"] and set(sweep["LoRA"]) == set(sweep["DoRA"]),
           "sweep에는 위 셀의 측정 {'LoRA': {r: 예제별 정답}, 'DoRA': {r: 예제별 정답}}을 넣으세요 (같은 랭크들)")
    ranks = sorted(sweep["LoRA"])
    scores = {m: {r: _per_example(sweep[m][r], f"sweep[{m!r}][{r}]") for r in ranks} for m in ("LoRA", "DoRA")}
    shape = scores["LoRA"][ranks[0]].shape
    expect(all(v.shape == shape for m in scores.values() for v in m.values()),
           "모든 설정의 예제별 정답은 같은 시드와 같은 테스트 예제여야 합니다 (같은 shape, 같은 순서): 대응표본 비교")
    cmps = {r: paired_comparison(scores["DoRA"][r], scores["LoRA"][r], min_effect=MIN_EFFECT_3_4) for r in ranks}
    rejected = dict(zip(ranks, holm([cmps[r].p_value for r in ranks]), strict=True))
    return cmps, rejected


def _answer_3_4(cmps: dict, rejected: dict) -> str:
    """A rank counts for DoRA (LoRA) when its verdict is "a" ("b") and Holm rejects "no difference" there.
    d: LoRA ahead at one rank or more; a: DoRA ahead at every rank; c: DoRA ahead at some ranks only;
    b: no rank shows a significant difference."""
    dora = [cmps[r].verdict == "a" and rejected[r] for r in cmps]
    lora = [cmps[r].verdict == "b" and rejected[r] for r in cmps]
    if any(lora):
        return "d"
    if all(dora):
        return "a"
    if any(dora):
        return "c"
    return "b"


@checkpoint(WEEK, "3.4", points=1, title="LoRA or DoRA for this task — paired comparisons per rank of your sweep, Holm-corrected")
def q3_4(choice, comparisons, significant, sweep) -> None:
    cmps, rejected = comparisons_3_4(sweep)
    expect(isinstance(comparisons, dict) and set(comparisons) == set(cmps),
           f"comparisons에는 랭크 {sorted(cmps)}마다 paired_comparison(DoRA, LoRA, min_effect=MIN_EFFECT)의 결과를 넣으세요")
    for r in sorted(cmps):
        got, want = comparisons[r], cmps[r]
        expect(got is not None and all(hasattr(got, k) for k in ("diff", "low", "high", "verdict", "min_effect", "p_value")),
               f"comparisons[{r}]에는 paired_comparison(…)이 돌려준 결과를 넣으세요")
        diff = _number(got.diff, f"comparisons[{r}].diff")
        expect(not math.isclose(diff, -want.diff, abs_tol=1e-9) or abs(want.diff) < 1e-9,
               f"comparisons[{r}]의 방향이 반대입니다: paired_comparison(DoRA, LoRA) — 양수가 DoRA 쪽")
        expect(math.isclose(diff, want.diff, abs_tol=1e-9),
               f"comparisons[{r}].diff = {diff:+.4f}는 랭크 {r}의 DoRA와 LoRA의 예제별 정답으로 잰 평균 차이가 아닙니다")
        expect(math.isclose(_number(got.min_effect, f"comparisons[{r}].min_effect"), MIN_EFFECT_3_4),
               f"comparisons[{r}]: 최소 효과는 min_effect={MIN_EFFECT_3_4}입니다 (받은 것: {got.min_effect})")
        expect(abs(got.low - want.low) <= 0.005 and abs(got.high - want.high) <= 0.005,
               f"comparisons[{r}]의 신뢰구간 [{got.low:+.4f}, {got.high:+.4f}]이 같은 점수로 다시 잰 "
               f"[{want.low:+.4f}, {want.high:+.4f}]과 다릅니다: paired_comparison의 기본 설정을 쓰세요")
    expect(isinstance(significant, dict) and set(significant) == set(cmps)
           and all(isinstance(v, (bool, np.bool_)) for v in significant.values()),
           f"significant에는 랭크 {sorted(cmps)}마다 Holm 보정의 결과 (True/False)를 넣으세요: "
           "holm([comparisons[r].p_value for r in 랭크])")
    expect(all(bool(significant[r]) == rejected[r] for r in cmps),
           "significant가 네 랭크의 p_value에 Holm 보정(holm(p_values), α = 0.05)을 한 결과와 다릅니다")
    expect(_choice(choice) == _answer_3_4(cmps, rejected),
           "랭크마다 verdict와 Holm 보정의 결과를 함께 보세요: verdict가 'a'/'b'이고 Holm으로도 유의한 랭크만 "
           "한쪽이 유의하게 높은 랭크입니다")
