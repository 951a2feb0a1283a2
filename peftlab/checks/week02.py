"""Checks for Week 02 — WaveFT (``solutions/02_waveft.ipynb``).

Exercises (the student writes code):
  E1  ``haar_synthesis(n)`` → the one-level inverse Haar DWT of length ``n`` as an ``n×n`` matrix ``R``
      (columns ``[0, n/2)`` approximation, ``[n/2, n)`` detail), compared with peftlab and with ``pywt.idwt``
  E2  ``waveft_delta(spectrum, rows, cols, n_out, n_in, scaling)`` → WaveFT's ``ΔW`` for Haar (db1) and even
      sizes, compared with peftlab's ``WaveFTLinear`` and Hugging Face peft's WaveFT layer
Checkpoint questions of the lecture's WaveFT part (section 2), each on the student's own run:
  2.1 how the update's structure differs from LoRA: the numerical rank of the ΔW of the student's trained LoRA
      and WaveFT layers at the same trainable count (recomputed from their tensors), and a reasoning item on
      what bounds those ranks (its key lives in ``_keys.py``; without it the choice is checked for form only)
  2.2 when wavelets beat low rank: the student's least-squares WaveFT fit (Haar coefficients at WaveFT's
      positions), the recovery errors of LoRA, WaveFT and the best ``n`` wavelet coefficients on the student's
      target matrices, recomputed here, and the choice they decide
  2.3 the trade-off between WaveFT's sparsity and LoRA's low rank: paired comparisons
      (:func:`peftlab.analysis.stats.paired_comparison`) on the per-example test correctness of the student's
      budget sweep — WaveFT below LoRA's smallest budget against the head alone, and WaveFT against LoRA r = 1
      at that budget — and the choice their verdicts decide (a tie where the interval says so)
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from peftlab.checks._core import answer_key, checkpoint, close, expect
from peftlab.checks._core import choice as _choice
from peftlab.checks._core import correctness_matrix as _per_example
from peftlab.checks._core import number as _number

WEEK = "02"

__all__ = ["haar_synthesis", "waveft_delta", "q2_1", "q2_2", "q2_3", "numerical_rank", "recovery_errors",
           "comparisons_2_3", "MIN_EFFECT_2_3"]

#: singular values below RANK_RTOL · σ₁ count as zero in 2.1 (float32 products leave ~1e-7 · σ₁ of noise)
RANK_RTOL = 1e-4
#: the three target kinds of the recovery lab (2.2), in the notebook's order
TARGETS_2_2 = ("low-rank", "wavelet-sparse", "smooth blocks")
#: the three fits of the recovery lab
FITS_2_2 = ("LoRA", "WaveFT", "best-n wavelet")
#: 2.3's smallest accuracy difference of interest (paired_comparison's min_effect): 10 of 2,000 test reviews
MIN_EFFECT_2_3 = 0.005


def _close(a, b, atol=1e-6, rtol=1e-6) -> bool:
    return close(a, b, atol, rtol)


# ---------------------------------------------------------------------------------------------- E1
def _reference_haar(n: int) -> torch.Tensor:
    from peftlab.methods.waveft import synthesis_matrix

    return synthesis_matrix(n, "haar", dtype=torch.float64)


@checkpoint(WEEK, "E1", points=1, title="The Haar synthesis matrix R: one level of the inverse DWT as a matrix", reference=("peftlab.methods.waveft:synthesis_matrix",))
def haar_synthesis(fn, hidden: bool = False) -> None:
    import pywt

    sizes = [8] + ([2, 16, 128] if hidden else [])
    for n in sizes:
        R = fn(n)
        expect(isinstance(R, torch.Tensor), f"torch.Tensor를 반환하세요 (받은 것: {type(R).__name__})")
        expect(tuple(R.shape) == (n, n), f"n={n}일 때 R의 shape는 ({n}, {n})이어야 합니다 (받은 것: {tuple(R.shape)})")
        R = R.detach().double()
        ref = _reference_haar(n)
        half = n // 2
        expect(not _close(R, ref / math.sqrt(2)) or n == 0,
               "값이 1/2입니다: Haar 탭은 1/√2 (직교 정규화, R ᵀR = I)")
        expect(not _close(R, ref.T) or _close(ref, ref.T),
               "전치된 행렬입니다: 그것은 분석(DWT) 행렬 Rᵀ입니다. 합성 행렬 R은 계수 [cA; cD]를 받아 신호를 돌려줍니다 (R @ c)")
        interleaved = torch.stack([ref[:, :half], ref[:, half:]], dim=2).reshape(n, n)
        expect(not _close(R, interleaved) or n == 2,
               "열 순서가 (근사, 세부, 근사, 세부 …)로 섞였습니다: 앞 n/2 열이 근사 계수 cA, 뒤 n/2 열이 세부 계수 cD입니다")
        flipped = torch.cat([ref[:, :half], -ref[:, half:]], dim=1)
        expect(not _close(R, flipped),
               "세부(detail) 열의 부호가 반대입니다: pywt의 Haar 재구성 탭은 rec_hi = [1/√2, −1/√2] (위가 +, 아래가 −)")
        expect(_close(R.T @ R, torch.eye(n, dtype=torch.float64)), "Haar의 R은 직교 행렬이어야 합니다 (RᵀR = I)")
        expect(_close(R, ref), "peftlab의 synthesis_matrix(n, 'haar')와 다릅니다: R[2k, k] = R[2k+1, k] = 1/√2, "
                               "R[2k, n/2+k] = 1/√2, R[2k+1, n/2+k] = −1/√2")
        g = torch.Generator().manual_seed(n)
        cA, cD = torch.randn(half, generator=g, dtype=torch.float64), torch.randn(half, generator=g, dtype=torch.float64)
        theirs = torch.from_numpy(pywt.idwt(cA.numpy(), cD.numpy(), "haar"))
        expect(_close(R @ torch.cat([cA, cD]), theirs), "R @ [cA; cD]가 pywt.idwt(cA, cD, 'haar')와 다릅니다")


# ---------------------------------------------------------------------------------------------- E2
def _peftlab_delta(spectrum, n_out, n_in, scaling, seed):
    from peftlab.methods.waveft import WaveFTLinear

    layer = WaveFTLinear(nn.Linear(n_in, n_out, dtype=spectrum.dtype), n_frequency=spectrum.numel(), scaling=scaling,
                         wavelet_family="haar", random_loc_seed=seed)
    with torch.no_grad():
        layer.waveft_spectrum["default"].copy_(spectrum)
    return layer.delta_weight("default").detach(), layer.waveft_indices["default"]


def _peft_delta(spectrum, n_out, n_in, scaling, seed):
    from peft import WaveFTConfig, get_peft_model

    model = get_peft_model(nn.Sequential(nn.Linear(n_in, n_out, dtype=spectrum.dtype)),
                           WaveFTConfig(n_frequency=spectrum.numel(), scaling=scaling, wavelet_family="db1",
                                        random_loc_seed=seed, target_modules=["0"]))
    layer = model.base_model.model[0]
    with torch.no_grad():
        layer.waveft_spectrum["default"].copy_(spectrum)
    return layer.get_delta_weight("default").detach(), layer.waveft_indices["default"]


def _no_swap_delta(spectrum, rows, cols, n_out, n_in, scaling):
    """The most likely slip: peft's dense layout [[cA, cH], [cV, cD]] taken as the matrix form's Q as it is."""
    C = torch.zeros(n_out, n_in, dtype=spectrum.dtype)
    C[rows, cols] = spectrum
    return scaling * _reference_haar(n_out).to(C.dtype) @ C @ _reference_haar(n_in).to(C.dtype).T


@checkpoint(WEEK, "E2", points=2, title="WaveFT's ΔW = s · R_out Q R_inᵀ from a coefficient vector (Haar, even sizes)", reference=("peftlab.methods.waveft:idwt2", "peftlab.methods.waveft:WaveFTLinear"))
def waveft_delta(fn, hidden: bool = False) -> None:
    """Compare the student's ``fn(spectrum, rows, cols, n_out, n_in, scaling)`` with peftlab's and peft's WaveFT."""
    from peftlab.methods.waveft import coefficient_locations

    cases = [(8, 12, 20, 25.0, 777, torch.float32), (16, 16, 60, 10.0, 5, torch.float32)]
    if hidden:
        cases += [(6, 10, 15, 2.5, 3, torch.float64), (32, 8, 100, 25.0, 777, torch.float64), (4, 4, 16, 1.0, 0, torch.float64)]
    for i, (n_out, n_in, n, scaling, seed, dtype) in enumerate(cases):
        spectrum = torch.randn(n, generator=torch.Generator().manual_seed(60 + i), dtype=dtype)
        rows, cols = coefficient_locations(n_out, n_in, n, seed)
        got = fn(spectrum.clone(), rows.clone(), cols.clone(), n_out, n_in, scaling)
        expect(isinstance(got, torch.Tensor), f"torch.Tensor를 반환하세요 (받은 것: {type(got).__name__})")
        expect(tuple(got.shape) == (n_out, n_in),
               f"ΔW의 shape는 (n_out, n_in) = {(n_out, n_in)}이어야 합니다 (받은 것: {tuple(got.shape)})")
        got = got.detach()
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-10)
        ours, ours_idx = _peftlab_delta(spectrum, n_out, n_in, scaling, seed)
        expect(torch.equal(ours_idx, torch.stack([rows, cols])), "internal: positions differ from peftlab's")  # pragma: no cover
        sparse = torch.zeros(n_out, n_in, dtype=dtype)
        sparse[rows, cols] = spectrum
        expect(not _close(got, scaling * sparse, **tol),
               "계수를 그 자리에 놓기만 했습니다 (use_idwt=False, SHiRA식 가중치 공간 희소 업데이트): 역변환 R_out Q R_inᵀ를 적용하세요")
        expect(not _close(got, ours / scaling, **tol) or scaling == 1.0, "scaling s를 곱하지 않았습니다: ΔW = s · R_out Q R_inᵀ")
        expect(not _close(got, _no_swap_delta(spectrum, rows, cols, n_out, n_in, scaling), **tol)
               or _close(ours, _no_swap_delta(spectrum, rows, cols, n_out, n_in, scaling), **tol),
               "오른쪽 위와 왼쪽 아래 블록을 바꾸지 않았습니다: peft의 격자는 [[cA, cH], [cV, cD]]이고 "
               "행렬식의 Q는 [[cA, cV], [cH, cD]] (pywt의 cH는 행 방향 세부 = R_out의 세부 열과 R_in의 근사 열)")
        expect(_close(got, ours, **tol),
               "peftlab의 WaveFTLinear(wavelet_family='haar').delta_weight()와 다릅니다: "
               "C[rows, cols] = spectrum → 블록 교환 → ΔW = s · R_out Q R_inᵀ")
        theirs, theirs_idx = _peft_delta(spectrum, n_out, n_in, scaling, seed)
        expect(torch.equal(theirs_idx.cpu(), torch.stack([rows, cols])), "internal: peft's positions differ")  # pragma: no cover
        expect(_close(got, theirs.to(dtype), **tol), "Hugging Face peft의 WaveFT(db1) get_delta_weight()와 다릅니다")


# ---------------------------------------------------------------------------------------------- 2.1
def numerical_rank(matrix: torch.Tensor, rtol: float = RANK_RTOL) -> int:
    """Number of singular values above ``rtol · σ₁`` (computed in float64)."""
    s = torch.linalg.svdvals(matrix.detach().double().cpu())
    return int((s > rtol * s[0]).sum()) if s.numel() and s[0] > 0 else 0


@checkpoint(WEEK, "2.1", points=1, title="WaveFT vs LoRA at the same budget — the rank of your own ΔW")
def q2_1(choice, rank_delta, trainable, deltas, r, n_frequency, layer_shape) -> None:
    """The measured part (ranks, trainable counts) is recomputed from the student's tensors; the choice is a
    reasoning item (what bounds each rank) whose key is in ``_keys.py``."""
    expect(isinstance(deltas, dict) and all(isinstance(deltas.get(k), torch.Tensor) and deltas[k].dim() == 2
                                            for k in ("LoRA", "WaveFT")),
           "deltas에는 같은 층의 ΔW 두 개 {'LoRA': …, 'WaveFT': …} (2차원 텐서)를 넣으세요")
    expect(isinstance(r, int) and r >= 1, "r은 그 층 LoRA 어댑터의 랭크(정수)입니다")
    expect(isinstance(n_frequency, int) and n_frequency >= 1, "n_frequency는 그 층 WaveFT의 계수 개수(정수)입니다")
    out_f, in_f = layer_shape
    expect(tuple(deltas["LoRA"].shape) == (out_f, in_f) == tuple(deltas["WaveFT"].shape),
           f"ΔW의 shape는 층의 (out, in) = {(out_f, in_f)}여야 합니다")
    expect(any(deltas[k].abs().max() > 0 for k in ("LoRA", "WaveFT")),
           "ΔW가 0입니다: 학습한 어댑터의 delta_weight()를 넣으세요 (새 어댑터의 ΔW는 정의상 0)")
    expect(isinstance(rank_delta, dict) and all(k in rank_delta for k in ("LoRA", "WaveFT")),
           "rank_delta에는 {'LoRA': …, 'WaveFT': …} 두 값을 넣으세요")
    truth = {k: numerical_rank(deltas[k]) for k in ("LoRA", "WaveFT")}
    for k in ("LoRA", "WaveFT"):
        expect(isinstance(rank_delta[k], int) and not isinstance(rank_delta[k], bool), "rank_delta의 값은 정수여야 합니다")
        expect(rank_delta[k] == truth[k],
               f"rank_delta[{k!r}] = {rank_delta[k]}는 이 ΔW에서 잰 값이 아닙니다: σᵢ > {RANK_RTOL:g}·σ₁인 특이값의 개수를 세세요")
    expect(isinstance(trainable, dict) and all(k in trainable for k in ("LoRA", "WaveFT")),
           "trainable에는 이 층 하나의 학습 파라미터 수 {'LoRA': …, 'WaveFT': …}를 넣으세요")
    expect(int(trainable["LoRA"]) == r * (in_f + out_f), "LoRA가 이 층에 더하는 파라미터: A (r×in)와 B (out×r) → r·(in + out)")
    expect(int(trainable["WaveFT"]) != in_f * out_f,
           "WaveFT는 out×in 계수 전체를 학습하지 않습니다: 무작위 위치 n_frequency개만 학습합니다")
    expect(int(trainable["WaveFT"]) == n_frequency, "WaveFT가 이 층에 더하는 파라미터는 계수 개수 n_frequency입니다 (층의 크기와 무관)")
    picked = _choice(choice)
    key = answer_key(WEEK, "2.1")
    expect(key is None or picked == key,
           "고른 보기가 여러분의 측정과 맞지 않습니다: 잰 두 랭크를 r, n, 층의 크기 (out, in)와 나란히 놓고 "
           "보기마다 그 수들로 확인해 보세요")


# ---------------------------------------------------------------------------------------------- 2.2
def _haar_coefficients(T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    from peftlab.methods.waveft import synthesis_matrix

    R_out, R_in = synthesis_matrix(T.shape[0], "haar"), synthesis_matrix(T.shape[1], "haar")
    return R_out.T @ T @ R_in, R_out, R_in


def _reference_fit(target: torch.Tensor, budget: int, seed: int = 777, swap: bool = True) -> torch.Tensor:
    """The best ``ΔW`` (least squares) a Haar WaveFT layer with ``budget`` coefficients at its positions for ``seed``
    can make: the target's own Haar coefficients at those positions, every other one zero, synthesised back
    (R is orthogonal). ``swap=False``: the positions taken in peft's grid layout as they are (a typical slip)."""
    from peftlab.methods.waveft import coefficient_locations, matrix_positions

    T = target.detach().double().cpu()
    n_out, n_in = T.shape
    coeffs, R_out, R_in = _haar_coefficients(T)
    rows, cols = coefficient_locations(n_out, n_in, budget, seed)
    if swap:
        rows, cols = matrix_positions(rows, cols, n_out, n_in, "haar")
    keep = torch.zeros_like(coeffs)
    keep[rows, cols] = 1.0
    return R_out @ (coeffs * keep) @ R_in.T


def _best_n_fit(target: torch.Tensor, budget: int) -> torch.Tensor:
    T = target.detach().double().cpu()
    coeffs, R_out, R_in = _haar_coefficients(T)
    keep = torch.zeros(coeffs.numel(), dtype=torch.float64)
    keep[coeffs.abs().flatten().argsort(descending=True)[:budget]] = 1.0
    return R_out @ (coeffs * keep.view_as(coeffs)) @ R_in.T


def recovery_errors(target: torch.Tensor, budget: int, seed: int = 777) -> dict[str, float]:
    """Relative Frobenius errors ``‖T − fit‖_F / ‖T‖_F`` of the three best fits of ``target`` with ``budget``
    trainable numbers (computed independently of the notebook's cells):

    * ``LoRA``: the best rank ``r = budget // (out + in)`` matrix (Eckart–Young: drop all but the top r singular values);
    * ``WaveFT``: the best ``ΔW = s · R_out Q R_inᵀ`` with ``budget`` coefficients at WaveFT's positions for ``seed``
      (Haar; R is orthogonal, so the least-squares coefficients are the target's own Haar coefficients there);
    * ``best-n wavelet``: the best ``budget`` Haar coefficients chosen from the target (JPEG-style; needs the target).
    """
    from peftlab.methods.waveft import coefficient_locations, matrix_positions

    T = target.detach().double().cpu()
    n_out, n_in = T.shape
    total = (T ** 2).sum()
    s2 = torch.linalg.svdvals(T) ** 2
    r = budget // (n_out + n_in)
    coeffs, _, _ = _haar_coefficients(T)
    rows, cols = coefficient_locations(n_out, n_in, budget, seed)
    qr, qc = matrix_positions(rows, cols, n_out, n_in, "haar")
    kept = (coeffs[qr, qc] ** 2).sum()
    best = (coeffs.flatten() ** 2).sort(descending=True).values[:budget].sum()
    rel = lambda kept_energy: math.sqrt(max(0.0, 1.0 - (kept_energy / total).item()))  # noqa: E731
    return {"LoRA": rel(s2[:r].sum()), "WaveFT": rel(kept), "best-n wavelet": rel(best)}


def _answer_2_2(errors: dict) -> str:
    """From ``errors[target][fit]`` at one budget (the two targets other than low-rank are the local/sparse ones):

    a: WaveFT (random positions) below LoRA on every target; b: below LoRA on both local/sparse targets, not on
    low-rank; c: WaveFT not below LoRA on one of the local/sparse targets, the best-n coefficients below LoRA on
    both; d: neither WaveFT nor the best-n coefficients below LoRA on both local/sparse targets.
    """
    others = [t for t in TARGETS_2_2 if t != "low-rank"]
    if all(errors[t]["WaveFT"] < errors[t]["LoRA"] for t in TARGETS_2_2):
        return "a"
    if all(errors[t]["WaveFT"] < errors[t]["LoRA"] for t in others):
        return "b"
    if all(errors[t]["best-n wavelet"] < errors[t]["LoRA"] for t in others):
        return "c"
    return "d"


def _fit_ok(fit, T: torch.Tensor, budget: int, seed: int) -> None:
    got = fit(T.clone(), budget, seed)
    expect(isinstance(got, torch.Tensor), f"waveft_fit은 ΔW (torch.Tensor)를 반환해야 합니다 (받은 것: {type(got).__name__})")
    expect(tuple(got.shape) == tuple(T.shape),
           f"ΔW의 shape는 목표와 같은 (out, in) = {tuple(T.shape)}이어야 합니다 (받은 것: {tuple(got.shape)})")
    got = got.detach().double().cpu()
    want = _reference_fit(T, budget, seed)
    tol = dict(atol=1e-6 * float(T.abs().max()), rtol=1e-5)
    expect(not close(got, 25.0 * want, **tol), "ΔW가 25배입니다: 최소제곱 ΔW 자체를 돌려주세요 (scaling s는 계수 q = ΔW의 계수 / s에만 들어갑니다)")
    best = _best_n_fit(T, budget)
    expect(not close(got, best, **tol) or close(want, best, **tol),
           "목표에서 가장 큰 n개 계수를 골랐습니다: WaveFT의 위치는 목표를 보지 않고 시드로 정해집니다 "
           "(coefficient_locations(out, in, n, seed))")
    unswapped = _reference_fit(T, budget, seed, swap=False)
    expect(not close(got, unswapped, **tol) or close(want, unswapped, **tol),
           "위치를 peft의 격자 [[cA, cH], [cV, cD]] 그대로 행렬식의 Q에 썼습니다: 오른쪽 위와 왼쪽 아래 블록을 바꾸세요 (E2)")
    expect(close(got, want, **tol),
           "최소제곱 해가 아닙니다: 목표의 Haar 계수 R_outᵀ T R_in 가운데 WaveFT의 위치에 있는 것만 남기고 "
           "나머지를 0으로 둔 뒤 R_out (…) R_inᵀ로 되돌리세요")


@checkpoint(WEEK, "2.2", points=1, title="When wavelets beat low rank — your WaveFT fit and recovery lab",
            reference=("peftlab.checks.week02:_reference_fit",))
def q2_2(fit, choice, errors, targets, budget, seed=777, hidden: bool = False) -> None:
    expect(callable(fit), "fit에는 여러분의 함수 waveft_fit_2_2(T, n, seed)를 넣으세요")
    expect(isinstance(targets, dict) and all(isinstance(targets.get(t), torch.Tensor) and targets[t].dim() == 2
                                             for t in TARGETS_2_2),
           f"targets에는 목표 행렬 {list(TARGETS_2_2)} (2차원 텐서)를 넣으세요")
    shape = tuple(targets["low-rank"].shape)
    expect(all(tuple(targets[t].shape) == shape for t in TARGETS_2_2) and shape[0] % 2 == 0 and shape[1] % 2 == 0,
           "세 목표 행렬은 같은 짝수 크기 (out, in)이어야 합니다")
    expect(isinstance(budget, int) and not isinstance(budget, bool) and budget >= shape[0] + shape[1]
           and budget % (shape[0] + shape[1]) == 0,
           f"budget은 LoRA가 정확히 쓸 수 있는 예산, (out + in) = {shape[0] + shape[1]}의 배수여야 합니다 (받은 것: {budget!r})")
    for t in TARGETS_2_2:
        _fit_ok(fit, targets[t], budget, seed)
    if hidden:  # other shapes (not square), budgets and seeds
        g = torch.Generator().manual_seed(22)
        for (n_out, n_in), n, sd in (((8, 12), 20, 5), ((16, 6), 30, 777), ((4, 4), 16, 0)):
            _fit_ok(fit, torch.randn(n_out, n_in, generator=g, dtype=torch.float64), n, sd)
    expect(isinstance(errors, dict) and all(isinstance(errors.get(t), dict) for t in TARGETS_2_2),
           f"errors에는 목표마다 {{적합 방법: 상대 오차}}를 넣으세요: 목표 {list(TARGETS_2_2)}, 방법 {list(FITS_2_2)}")
    truth = {t: recovery_errors(targets[t], budget, seed) for t in TARGETS_2_2}
    for t in TARGETS_2_2:
        for fit_name in FITS_2_2:
            expect(fit_name in errors[t], f"errors[{t!r}]에 {fit_name!r}의 오차가 없습니다")
            got = _number(errors[t][fit_name], f"errors[{t!r}][{fit_name!r}]")
            want = truth[t][fit_name]
            expect(not math.isclose(got, want ** 2, abs_tol=1e-4) or math.isclose(want, want ** 2, abs_tol=1e-4),
                   f"errors[{t!r}][{fit_name!r}]가 제곱된 값 같습니다: ‖T − 적합‖_F / ‖T‖_F (제곱근까지)")
            expect(math.isclose(got, want, abs_tol=1e-4),
                   f"errors[{t!r}][{fit_name!r}] = {got:.4f}는 이 목표와 예산 {budget}에서 잰 상대 오차 {want:.4f}가 아닙니다")
    expect(_choice(choice) == _answer_2_2(truth),
           "목표마다 세 오차를 나란히 놓아 보세요: WaveFT(무작위 위치)와 LoRA, 그리고 목표에서 고른 최선의 n개 계수와 LoRA")


# ---------------------------------------------------------------------------------------------- 2.3
def _sweep_ok(sweep, head, min_budget) -> tuple[dict, np.ndarray]:
    expect(isinstance(min_budget, int) and min_budget >= 2, "min_budget은 LoRA의 가장 작은 층당 예산 r=1 → in + out입니다")
    expect(isinstance(sweep, dict) and isinstance(sweep.get("WaveFT"), dict) and isinstance(sweep.get("LoRA"), dict)
           and 1 in sweep["LoRA"] and min_budget in sweep["WaveFT"],
           "sweep에는 위 셀의 측정 {'WaveFT': {n: 예제별 정답}, 'LoRA': {r: 예제별 정답}}을 넣으세요 "
           "(WaveFT는 LoRA r=1과 같은 예산 n = min_budget 포함)")
    expect(any(n < min_budget for n in sweep["WaveFT"]), "sweep['WaveFT']에 LoRA의 최소 예산보다 작은 n이 있어야 합니다")
    expect(head is not None, "head에는 분류 헤드만 학습한 모델의 예제별 정답 (시드 수, 예제 수)을 넣으세요")
    scores = {m: {b: _per_example(v, f"sweep[{m!r}][{b}]") for b, v in sweep[m].items()} for m in ("WaveFT", "LoRA")}
    head = _per_example(head, "head")
    expect(all(v.shape == head.shape for m in scores.values() for v in m.values()),
           "모든 설정의 예제별 정답은 같은 시드와 같은 테스트 예제여야 합니다 (같은 shape, 같은 순서): 대응표본 비교")
    return scores, head


def comparisons_2_3(sweep, head, min_budget):
    """(best n below LoRA's smallest budget, WaveFT there vs head only, WaveFT vs LoRA r = 1 at ``min_budget``):
    the two :func:`~peftlab.analysis.stats.paired_comparison` results 2.3 asks for, min effect :data:`MIN_EFFECT_2_3`."""
    from peftlab.analysis.stats import paired_comparison

    scores, head = _sweep_ok(sweep, head, min_budget)
    below = [n for n in scores["WaveFT"] if n < min_budget]
    best = max(below, key=lambda n: scores["WaveFT"][n].mean())
    return (best, paired_comparison(scores["WaveFT"][best], head, min_effect=MIN_EFFECT_2_3),
            paired_comparison(scores["WaveFT"][min_budget], scores["LoRA"][1], min_effect=MIN_EFFECT_2_3))


def _answer_2_3(below, at_min) -> str:
    """a: WaveFT below LoRA's smallest budget is significantly better than the head alone (verdict "a") and not
    significantly behind LoRA r = 1 at that budget (verdict not "b"); b: no such gain, not behind; c: gain, behind;
    d: no gain, behind. A tie (the interval holds 0, or the difference is below the minimum effect) is no gain /
    not behind."""
    gains, behind = below.verdict == "a", at_min.verdict == "b"
    return {(True, False): "a", (False, False): "b", (True, True): "c", (False, True): "d"}[(gains, behind)]


def _comparison_ok(got, want, what: str, a: str, b: str) -> None:
    expect(got is not None and all(hasattr(got, k) for k in ("diff", "low", "high", "verdict", "min_effect")),
           f"{what}에는 paired_comparison(…)이 돌려준 결과 (diff, low, high, verdict)를 넣으세요")
    diff = _number(got.diff, f"{what}.diff")
    expect(not math.isclose(diff, -want.diff, abs_tol=1e-9) or abs(want.diff) < 1e-9,
           f"{what}의 방향이 반대입니다: paired_comparison({a}, {b}) — 양수가 {a} 쪽입니다")
    expect(math.isclose(diff, want.diff, abs_tol=1e-9),
           f"{what}.diff = {diff:+.4f}는 {a}와 {b}의 예제별 정답으로 잰 평균 차이가 아닙니다")
    expect(math.isclose(_number(got.min_effect, f"{what}.min_effect"), MIN_EFFECT_2_3),
           f"{what}: 최소 효과는 min_effect={MIN_EFFECT_2_3}입니다 (받은 것: {got.min_effect})")
    expect(abs(got.low - want.low) <= 0.005 and abs(got.high - want.high) <= 0.005,
           f"{what}의 신뢰구간 [{got.low:+.4f}, {got.high:+.4f}]이 같은 점수로 다시 잰 "
           f"[{want.low:+.4f}, {want.high:+.4f}]과 다릅니다: paired_comparison의 기본 설정(confidence=0.95)을 쓰세요")


@checkpoint(WEEK, "2.3", points=1, title="Sparsity vs low rank: paired comparisons of your budget sweep below and at LoRA's minimum")
def q2_3(choice, below, at_min, sweep, head, min_budget) -> None:
    best, want_below, want_at_min = comparisons_2_3(sweep, head, min_budget)
    _comparison_ok(below, want_below, "below", f"WaveFT n={best} (최소 예산보다 작은 n 가운데 평균 정확도가 가장 높은 것)",
                   "헤드만")
    _comparison_ok(at_min, want_at_min, "at_min", f"WaveFT n={min_budget}", "LoRA r=1")
    expect(_choice(choice) == _answer_2_3(want_below, want_at_min),
           "두 비교의 verdict를 보세요: 신뢰구간이 0을 품지 않고 차이가 최소 효과 이상일 때만 유의한 차이입니다 "
           "(그렇지 않으면 'tie': 낫다고도 뒤진다고도 할 수 없음)")
