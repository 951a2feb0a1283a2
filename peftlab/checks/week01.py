"""Checks for Week 01 — LoRA review (``solutions/01_lora_review.ipynb``).

Exercises (the student writes code):
  E1  ``lora_forward(x, W0, b, A, B, scaling)``          → compared with peftlab and peft
  E2  ``MyLoRALinear(base_layer, r, alpha, dropout)``     → init, freezing, forward, dropout, gradients vs peft
  E3  ``energy_captured(delta_w, r)``                     → compared with an SVD reference
Checkpoint questions of the lecture's LoRA part:
  1.1 why low rank: rank holding 90% of the energy of the student's own ΔW, W0 and a random matrix,
      and the choice those three numbers decide
  1.2 parameter reduction for 1024×1024, r = 16
  1.3 inference speed: extra FLOPs of an unmerged adapter, the overhead the student measured, and a reasoning
      choice about merging (four balanced options, each clause in two of them; key in ``_keys.py``)
  1.4 trainable parameters of LoRA r = 8 on q/v of Llama-2-7B (the "4.2M" of the lecture's source)
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from peftlab.checks._core import answer_key, checkpoint, expect
from peftlab.checks._core import close as _close
from peftlab.checks._peft import peft_linear

WEEK = "01"

__all__ = ["lora_forward", "lora_linear", "energy_captured", "q1_1", "q1_2", "q1_3", "q1_4"]


def _peft_linear(W0, b, A, B, alpha, r, dropout=0.0):
    """A peft LoRA layer holding exactly these weights."""
    return peft_linear(W0, b, A, B, alpha, r, dropout=dropout)[0]


def _reference_layer(W0, b, A, B, alpha, r):
    from peftlab.methods.lora import LoRALinear

    base = nn.Linear(W0.shape[1], W0.shape[0], dtype=W0.dtype)
    with torch.no_grad():
        base.weight.copy_(W0)
        base.bias.copy_(b)
    layer = LoRALinear(base, r=r, alpha=alpha)
    with torch.no_grad():
        layer.lora_A["default"].copy_(A)
        layer.lora_B["default"].copy_(B)
    return layer.eval()


def _random_case(out_f, in_f, r, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    W0 = torch.randn(out_f, in_f, generator=g, dtype=dtype) / math.sqrt(in_f)
    b = torch.randn(out_f, generator=g, dtype=dtype) * 0.1
    A = torch.randn(r, in_f, generator=g, dtype=dtype) / math.sqrt(in_f)
    B = torch.randn(out_f, r, generator=g, dtype=dtype) * 0.3
    return W0, b, A, B


@checkpoint(WEEK, "E1", points=2, title="LoRA forward: y = x W0ᵀ + b + s·(x Aᵀ) Bᵀ", reference=("peftlab.methods.lora:LoRALinear",))
def lora_forward(fn, hidden: bool = False) -> None:
    """Compare the student's ``fn(x, W0, b, A, B, scaling)`` with peftlab's and peft's LoRA layer."""
    cases = [(6, 10, 3, 4.0, (4, 10), torch.float32)]
    if hidden:
        cases += [(8, 5, 1, 1.0, (2, 3, 5), torch.float32), (7, 9, 4, 16.0, (3, 9), torch.float64)]
    for i, (out_f, in_f, r, alpha, xshape, dtype) in enumerate(cases):
        W0, b, A, B = _random_case(out_f, in_f, r, dtype, seed=10 + i)
        x = torch.randn(*xshape, generator=torch.Generator().manual_seed(20 + i), dtype=dtype)
        scaling = alpha / r
        y = fn(x, W0, b, A, B, scaling)
        expect(isinstance(y, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(y).__name__})")
        expected_shape = (*xshape[:-1], out_f)
        expect(tuple(y.shape) == expected_shape, f"출력 shape는 {expected_shape}여야 합니다 (받은 것: {tuple(y.shape)})")
        with torch.no_grad():
            ours = _reference_layer(W0, b, A, B, alpha, r)(x)
            theirs = _peft_linear(W0, b, A, B, alpha, r)(x)
        base = x @ W0.T + b
        expect(not _close(y, base), "기본 출력 x W0ᵀ + b만 계산했습니다: LoRA 항 s·(x Aᵀ)Bᵀ를 더하세요")
        expect(not _close(y, base + (x @ A.T) @ B.T) or scaling == 1.0,
               "LoRA 항에 scaling(= α/r)을 곱하지 않았습니다")
        expect(not _close(y, x @ (W0 + scaling * B @ A).T),
               "bias b가 빠졌습니다")
        expect(_close(y, ours), "키트의 LoRA 층과 값이 다릅니다. 곱하는 순서 x → Aᵀ (r차원) → Bᵀ (out차원)를 확인하세요")
        expect(_close(y, theirs), "Hugging Face peft의 LoRA 레이어와 값이 다릅니다")


@checkpoint(WEEK, "E2", points=2, title="MyLoRALinear: init, freezing, forward and gradients match peft", reference=("peftlab.methods.lora:LoRALinear", "peftlab.methods.lora:LoRALayer"))
def lora_linear(cls, hidden: bool = False) -> None:
    """Build the student's layer around a Linear and compare it with peft's LoRA layer."""
    shapes = [(10, 6, 3, 6.0)] + ([(32, 16, 8, 16.0), (7, 5, 1, 2.0)] if hidden else [])
    for in_f, out_f, r, alpha in shapes:
        torch.manual_seed(0)
        base = nn.Linear(in_f, out_f)
        reference = copy.deepcopy(base)
        layer = cls(base, r=r, alpha=alpha)
        expect(isinstance(layer, nn.Module), "nn.Module을 상속해야 합니다")
        A, B = getattr(layer, "lora_A", None), getattr(layer, "lora_B", None)
        expect(isinstance(A, nn.Parameter) and isinstance(B, nn.Parameter),
               "self.lora_A와 self.lora_B는 nn.Parameter여야 합니다")
        expect(tuple(A.shape) == (r, in_f), f"lora_A의 shape는 (r, in) = {(r, in_f)}여야 합니다 (받은 것: {tuple(A.shape)})")
        expect(tuple(B.shape) == (out_f, r), f"lora_B의 shape는 (out, r) = {(out_f, r)}여야 합니다 (받은 것: {tuple(B.shape)})")
        expect(bool(torch.all(B == 0)), "B는 0으로 초기화해야 합니다: 그래야 학습 시작 시 모델이 기본 모델과 같습니다")
        bound = 1 / math.sqrt(in_f)
        expect(bool(A.abs().max() > 0) and bool(A.abs().max() <= bound + 1e-6),
               f"A는 U(-1/√in, 1/√in) = ±{bound:.3f} 범위로 초기화하세요 (kaiming_uniform_(a=√5))")
        expect(math.isclose(float(getattr(layer, "scaling", float("nan"))), alpha / r, rel_tol=1e-6),
               f"self.scaling은 α/r = {alpha / r:g}여야 합니다")
        trainable = {id(p) for p in layer.parameters() if p.requires_grad}
        expect(trainable == {id(A), id(B)}, "학습 가능한 파라미터는 lora_A와 lora_B뿐이어야 합니다 (기본 가중치는 고정)")
        x = torch.randn(5, in_f, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expect(_close(layer(x), reference(x)), "초기 상태(B = 0)의 출력이 기본 레이어의 출력과 같아야 합니다")
            B.copy_(torch.randn(out_f, r, generator=torch.Generator().manual_seed(2)) * 0.3)
        theirs = _peft_linear(reference.weight, reference.bias, A.detach(), B.detach(), alpha, r)
        expect(_close(layer(x), theirs(x)), "B를 바꾼 뒤의 출력이 peft의 LoRA 레이어와 다릅니다")
        layer.zero_grad()
        layer(x).pow(2).sum().backward()
        theirs.zero_grad()
        theirs(x).pow(2).sum().backward()
        peft_layer = theirs.base_model.model[0]
        expect(A.grad is not None and B.grad is not None, "A와 B에 gradient가 흘러야 합니다")
        expect(_close(A.grad, peft_layer.lora_A["default"].weight.grad, atol=1e-4, rtol=1e-4)
               and _close(B.grad, peft_layer.lora_B["default"].weight.grad, atol=1e-4, rtol=1e-4),
               "A, B의 gradient가 peft와 다릅니다")
    _lora_linear_dropout(cls, p=0.25 if not hidden else 0.5)


def _lora_linear_dropout(cls, p: float) -> None:
    """Dropout acts on the adapter's input only, as peft's ``lora_dropout``: same RNG draw, same output."""
    torch.manual_seed(0)
    base = nn.Linear(10, 6)
    reference = copy.deepcopy(base)
    try:
        layer = cls(base, r=3, alpha=6.0, dropout=p)
    except TypeError as exc:
        expect(False, f"생성자가 dropout 인자를 받아야 합니다: MyLoRALinear(base_layer, r, alpha, dropout=0.0) ({exc})")
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(6, 3, generator=torch.Generator().manual_seed(2)) * 0.3)
    theirs = _peft_linear(reference.weight, reference.bias, layer.lora_A.detach(), layer.lora_B.detach(), 6.0, 3,
                          dropout=p)
    x = torch.randn(5, 10, generator=torch.Generator().manual_seed(1))
    layer.eval()
    with torch.no_grad():
        expect(_close(layer(x), theirs.eval()(x)), "eval 모드에서는 dropout이 꺼져야 합니다 (nn.Dropout을 쓰세요)")
    layer.train()
    theirs.train()
    with torch.no_grad():
        torch.manual_seed(7)
        ours_out = layer(x)
        torch.manual_seed(7)
        peft_out = theirs(x)
    expect(_close(ours_out, peft_out),
           "train 모드 출력이 peft와 다릅니다: dropout은 어댑터 입력 x에만 한 번 적용합니다 "
           "(base_layer(x) + s·B(A(dropout(x)))); 기본 경로나 출력에는 적용하지 않습니다")


def _energy_reference(delta_w: torch.Tensor, r: int) -> float:
    s = torch.linalg.svdvals(delta_w.double())
    return float((s[:r] ** 2).sum() / (s**2).sum())


@checkpoint(WEEK, "E3", points=1, title="energy_captured: share of ‖ΔW‖²_F in the top-r singular values", reference=("peftlab.analysis.svd:energy_captured", "peftlab.analysis.svd:energy_curve"))
def energy_captured(fn, hidden: bool = False) -> None:
    g = torch.Generator().manual_seed(3)
    low = torch.randn(40, 3, generator=g) @ torch.randn(3, 24, generator=g)
    cases = [(low + 0.05 * torch.randn(40, 24, generator=g), 3), (torch.randn(16, 16, generator=g), 4)]
    if hidden:
        cases += [(torch.randn(8, 30, generator=g), 8), (torch.randn(12, 5, generator=g), 1)]
    for dw, r in cases:
        got = fn(dw.clone(), r)
        expect(isinstance(got, (float, int)) or (isinstance(got, torch.Tensor) and got.numel() == 1),
               "실수 하나(float)를 반환해야 합니다")
        got = float(got)
        want = _energy_reference(dw, r)
        expect(0.0 <= got <= 1.0 + 1e-6, f"비율은 0과 1 사이여야 합니다 (받은 것: {got:.4f})")
        s = torch.linalg.svdvals(dw.double())
        expect(not math.isclose(got, float(s[:r].sum() / s.sum()), rel_tol=1e-4) or math.isclose(got, want, rel_tol=1e-4),
               "특이값 자체가 아니라 특이값의 제곱(에너지)으로 비율을 구하세요: ‖ΔW‖²_F = Σ σᵢ²")
        expect(math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6),
               f"{tuple(dw.shape)} 행렬, r={r}: 기대값과 다릅니다 (상위 r개 σᵢ²의 합 / 전체 σᵢ²의 합)")


#: which matrix turned out low-rank decides the answer of 1.1 (see ``_answer_1_1``)
MATRICES_1_1 = ("delta", "w0", "random")


def _answer_1_1(rank90: dict[str, int]) -> str:
    """The choice the measurement supports: a (ΔW's r90 the smallest of the three), b (W0's below the random
    matrix's and at most ΔW's), d (neither below the random matrix's). c (ΔW exactly rank r) is a reasoning
    distractor: energy(r) < 1 refutes it."""
    d, w, rnd = rank90["delta"], rank90["w0"], rank90["random"]
    if d < w and d < rnd:
        return "a"
    if w <= d and w < rnd:
        return "b"
    return "d"


@checkpoint(WEEK, "1.1", points=1, title="Why low rank — measured on your own ΔW")
def q1_1(choice, rank90, matrices) -> None:
    from peftlab.analysis.svd import rank_for_energy

    expect(isinstance(matrices, dict) and all(k in matrices for k in MATRICES_1_1),
           f"matrices에는 {list(MATRICES_1_1)} 세 행렬(같은 층의 ΔW, W0, 같은 노름의 무작위 행렬)을 넣으세요")
    expect(all(isinstance(matrices[k], torch.Tensor) and matrices[k].dim() == 2 for k in MATRICES_1_1),
           "matrices의 값은 2차원 torch.Tensor여야 합니다")
    shapes = {tuple(matrices[k].shape) for k in MATRICES_1_1}
    expect(len(shapes) == 1, f"세 행렬의 shape이 같아야 합니다 (받은 것: {sorted(shapes)})")
    expect(isinstance(rank90, dict) and all(k in rank90 for k in MATRICES_1_1),
           f"rank90에는 {list(MATRICES_1_1)} 각각의 값을 넣으세요")
    expect(all(isinstance(rank90[k], int) and not isinstance(rank90[k], bool) for k in MATRICES_1_1),
           "rank90의 값은 정수(int)여야 합니다")
    truth = {k: rank_for_energy(matrices[k], 0.9) for k in MATRICES_1_1}
    for k in MATRICES_1_1:
        expect(rank90[k] == truth[k],
               f"rank90[{k!r}] = {rank90[k]}는 이 행렬에서 잰 값이 아닙니다: energy(r) ≥ 0.9인 가장 작은 r을 구하세요 "
               "(E3의 energy_captured나 svd.energy_curve를 r = 1, 2, … 에 적용)")
    expect(choice is not None, "답(choice)을 고르세요: 'a', 'b', 'c', 'd' 중 하나")
    expect(isinstance(choice, str) and len(choice.strip()) == 1 and choice.strip().lower() in "abcd",
           f"choice는 'a'~'d' 중 하나의 문자열이어야 합니다 (받은 것: {choice!r})")
    expect(choice.strip().lower() == _answer_1_1(truth),
           "여러분이 잰 세 값(ΔW, W0, 무작위 행렬의 rank90)을 나란히 놓고, 어느 행렬이 적은 방향에 에너지를 모았는지 보세요")


@checkpoint(WEEK, "1.2", points=1, title="Parameter reduction, 1024×1024, r = 16")
def q1_2(lora_params, reduction_percent) -> None:
    d = k = 1024
    r = 16
    expect(lora_params is not None and reduction_percent is not None, "두 값을 모두 채우세요")
    expect(int(lora_params) == r * (d + k), "LoRA 파라미터 수가 다릅니다: A (r×k)와 B (d×r)의 원소 수를 더하세요")
    expect(math.isclose(float(reduction_percent), 100 * (1 - r * (d + k) / (d * k)), abs_tol=0.01),
           "감소율(%) = 100 × (1 − LoRA 파라미터 / 전체 파라미터)")


@checkpoint(WEEK, "1.3", points=1, title="Inference speed with a LoRA adapter")
def q1_3(choice, extra_flops_fraction, overhead_percent, times) -> None:
    expect(choice is not None and extra_flops_fraction is not None and overhead_percent is not None,
           "세 값(choice, extra_flops_fraction, overhead_percent)을 모두 채우세요")
    expect(isinstance(choice, str) and len(choice.strip()) == 1 and choice.strip().lower() in "abcd",
           f"choice는 'a'~'d' 중 하나의 문자열이어야 합니다 (받은 것: {choice!r})")
    d = k = 4096
    r = 16
    expect(math.isclose(float(extra_flops_fraction), r * (d + k) / (d * k), rel_tol=1e-3),
           "병합하지 않은 어댑터가 토큰당 더하는 곱셈 수는 r·(in + out), 기본 레이어는 in·out입니다")
    expect(isinstance(times, dict) and all(isinstance(times.get(key), (int, float)) and times[key] > 0
                                           for key in ("base", "unmerged", "merged")),
           "times에는 위 셀에서 잰 4096² 층의 시간 {'base': …, 'unmerged': …, 'merged': …} (ms)를 넣으세요")
    measured = 100 * (times["unmerged"] / times["base"] - 1)
    expect(math.isclose(float(overhead_percent), measured, abs_tol=0.05),
           "overhead_percent는 여러분이 잰 times로 계산한 100 × (unmerged / base − 1)입니다")
    key = answer_key(WEEK, "1.3")
    expect(key is None or choice.strip().lower() == key,
           "병합한 층의 모양과 지연 시간(merged 열), 그리고 merge → unmerge 셀의 결과를 다시 보세요")


@checkpoint(WEEK, "1.4", points=1, title="LoRA r = 8 on q_proj/v_proj of Llama-2-7B")
def q1_4(trainable_params) -> None:
    expect(trainable_params is not None, "값을 채우세요")
    hidden, layers, r = 4096, 32, 8
    expected = layers * 2 * r * (hidden + hidden)
    expect(int(trainable_params) == expected,
           "레이어 수 × 타깃 모듈 수 × r·(in + out)을 계산하세요 (Llama-2-7B: hidden 4096, 32 layers)")
