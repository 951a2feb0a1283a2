"""Week 02 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math
import statistics

import pytest
import torch
from torch import nn

import peftlab
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week02 as check


# ---------------------------------------------------------------------------------------------- E1, E2 answers
def good_haar(n):
    R = torch.zeros(n, n, dtype=torch.float64)
    half, c = n // 2, 1 / math.sqrt(2)
    for k in range(half):
        R[2 * k, k] = R[2 * k + 1, k] = c
        R[2 * k, half + k], R[2 * k + 1, half + k] = c, -c
    return R


def halves_haar(n):
    return good_haar(n) / math.sqrt(2)


def analysis_haar(n):
    return good_haar(n).T


def interleaved_haar(n):
    R = good_haar(n)
    return torch.stack([R[:, : n // 2], R[:, n // 2:]], dim=2).reshape(n, n)


def flipped_haar(n):
    R = good_haar(n)
    return torch.cat([R[:, : n // 2], -R[:, n // 2:]], dim=1)


def _grid(spectrum, rows, cols, n_out, n_in):
    C = torch.zeros(n_out, n_in, dtype=spectrum.dtype)
    C[rows, cols] = spectrum
    return C


def _swap(C):
    h, w = C.shape[0] // 2, C.shape[1] // 2
    return torch.cat([torch.cat([C[:h, :w], C[h:, :w]], 1), torch.cat([C[:h, w:], C[h:, w:]], 1)], 0)


def good_delta(spectrum, rows, cols, n_out, n_in, scaling):
    Q = _swap(_grid(spectrum, rows, cols, n_out, n_in))
    return scaling * good_haar(n_out).to(Q.dtype) @ Q @ good_haar(n_in).to(Q.dtype).T


def no_swap_delta(spectrum, rows, cols, n_out, n_in, scaling):
    Q = _grid(spectrum, rows, cols, n_out, n_in)
    return scaling * good_haar(n_out).to(Q.dtype) @ Q @ good_haar(n_in).to(Q.dtype).T


def no_scaling_delta(spectrum, rows, cols, n_out, n_in, scaling):
    return good_delta(spectrum, rows, cols, n_out, n_in, 1.0)


def sparse_only_delta(spectrum, rows, cols, n_out, n_in, scaling):
    return scaling * _grid(spectrum, rows, cols, n_out, n_in)


def lecture_delta(spectrum, rows, cols, n_out, n_in, scaling):
    # the lecture's direction: a forward DWT (analysis, Rᵀ) where the inverse belongs
    Q = _swap(_grid(spectrum, rows, cols, n_out, n_in))
    return scaling * good_haar(n_out).T.to(Q.dtype) @ Q @ good_haar(n_in).to(Q.dtype)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


# ---------------------------------------------------------------------------------------------- 2.1 fixtures
def _deltas(r=1, n=32, out_f=16, in_f=16):
    g = torch.Generator().manual_seed(0)
    lora = torch.randn(out_f, r, generator=g) @ torch.randn(r, in_f, generator=g)
    layer = peftlab.WaveFTLinear(nn.Linear(in_f, out_f), n_frequency=n, wavelet_family="haar")
    with torch.no_grad():
        layer.waveft_spectrum["default"].normal_(generator=g)
    return {"LoRA": lora, "WaveFT": layer.delta_weight().detach()}


DELTAS = _deltas()
RANKS = {k: check.numerical_rank(v) for k, v in DELTAS.items()}
TRAIN = {"LoRA": 32, "WaveFT": 32}


# ---------------------------------------------------------------------------------------------- 2.2 fixtures
def _targets(n=16):
    g = torch.Generator().manual_seed(3)
    R = good_haar(n)
    coeffs = torch.zeros(n * n, dtype=torch.float64)
    coeffs[torch.randperm(n * n, generator=g)[:12]] = torch.randn(12, generator=g, dtype=torch.float64)
    blocks = torch.zeros(n, n, dtype=torch.float64)
    for _ in range(6):
        r0, c0 = (int(v) for v in torch.randint(0, n - 3, (2,), generator=g))
        blocks[r0:r0 + 3, c0:c0 + 3] += torch.randn(1, generator=g, dtype=torch.float64)
    low = torch.randn(n, 1, generator=g, dtype=torch.float64) @ torch.randn(1, n, generator=g, dtype=torch.float64)
    return {"low-rank": low, "wavelet-sparse": R @ coeffs.view(n, n) @ R.T, "smooth blocks": blocks}


TARGETS = _targets()
BUDGET = 64  # r = 2 for 16 x 16


def _errors(targets=TARGETS, budget=BUDGET):
    return {t: check.recovery_errors(T, budget) for t, T in targets.items()}


# ---------------------------------------------------------------------------------------------- 2.3 fixtures
SWEEP = {"WaveFT": {16: [0.925, 0.93, 0.928], 64: [0.93, 0.935, 0.932], 256: [0.945, 0.94, 0.946]},
         "LoRA": {1: [0.93, 0.931, 0.929], 4: [0.94, 0.938, 0.942]}}
HEAD = [0.92, 0.921, 0.919]


def _gain(sweep=SWEEP, head=HEAD, min_budget=256):
    below = [n for n in sweep["WaveFT"] if n < min_budget]
    best = max(below, key=lambda n: statistics.mean(sweep["WaveFT"][n]))
    return statistics.mean(sweep["WaveFT"][best]) - statistics.mean(head)


def _gap(sweep=SWEEP, min_budget=256):
    return statistics.mean(sweep["WaveFT"][min_budget]) - statistics.mean(sweep["LoRA"][1])


# ---------------------------------------------------------------------------------------------- tests
def test_all_week02_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("02:")}
    assert ids == {"E1", "E2", "2.1", "2.2", "2.3"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.haar_synthesis(good_haar, hidden=hidden)
    check.waveft_delta(good_delta, hidden=hidden)
    check.q2_1(check._answer_2_1(RANKS["LoRA"], RANKS["WaveFT"], 1), RANKS, TRAIN, DELTAS, r=1, n_frequency=32,
               layer_shape=(16, 16))
    errors = _errors()
    check.q2_2(check._answer_2_2(errors), errors, TARGETS, budget=BUDGET)
    check.q2_3("a", _gain(), _gap(), SWEEP, HEAD, min_budget=256)
    assert capsys.readouterr().out.count("공개 체크 통과") == 5


def test_fixture_ranks_differ():
    # the fixture is an instance of the checkpoint's point: WaveFT's ΔW escapes r = 1 at the same budget
    assert RANKS["LoRA"] == 1 < RANKS["WaveFT"]
    assert check._answer_2_1(RANKS["LoRA"], RANKS["WaveFT"], 1) == "b"


def test_recovery_errors_match_explicit_fits():
    """The check's energy formulas against fits built explicitly: truncated SVD, the least-squares spectrum of a real
    WaveFTLinear (normal equations solved by lstsq over its ΔW map), and the best n Haar coefficients."""
    T = TARGETS["smooth blocks"]
    n = T.shape[0]
    got = check.recovery_errors(T, BUDGET, seed=777)
    U, S, Vh = torch.linalg.svd(T)
    r = BUDGET // (2 * n)
    lora = (U[:, :r] * S[:r]) @ Vh[:r]
    layer = peftlab.WaveFTLinear(nn.Linear(n, n, dtype=torch.float64), n_frequency=BUDGET, wavelet_family="haar",
                                 random_loc_seed=777)
    basis = []
    for k in range(BUDGET):  # ΔW of each unit spectrum vector: the columns of the linear map spectrum -> ΔW
        with torch.no_grad():
            layer.waveft_spectrum["default"].zero_()
            layer.waveft_spectrum["default"][k] = 1.0
        basis.append(layer.delta_weight().detach().flatten())
    A = torch.stack(basis, dim=1)
    q = torch.linalg.lstsq(A, T.flatten().unsqueeze(1)).solution
    waveft = (A @ q).view(n, n)
    R = good_haar(n)
    C = R.T @ T @ R
    keep = C.abs().flatten().argsort(descending=True)[:BUDGET]
    mask = torch.zeros(n * n, dtype=torch.bool)
    mask[keep] = True
    best = R @ (C * mask.view(n, n)) @ R.T
    rel = lambda fit: (torch.linalg.norm(T - fit) / torch.linalg.norm(T)).item()  # noqa: E731
    assert got["LoRA"] == pytest.approx(rel(lora), abs=1e-9)
    assert got["WaveFT"] == pytest.approx(rel(waveft), abs=1e-9)
    assert got["best-n wavelet"] == pytest.approx(rel(best), abs=1e-9)
    # a low-rank target is exact for LoRA at r ≥ its rank; a wavelet-sparse one for the best n ≥ its support
    assert check.recovery_errors(TARGETS["low-rank"], 32)["LoRA"] == pytest.approx(0.0, abs=1e-7)
    assert check.recovery_errors(TARGETS["wavelet-sparse"], 32)["best-n wavelet"] == pytest.approx(0.0, abs=1e-7)


def test_answers_follow_the_measurements():
    assert check._answer_2_1(1, 12, 1) == "b" and check._answer_2_1(1, 1, 1) == "a" and check._answer_2_1(3, 12, 1) == "c"

    def errs(lora, wave, best):
        return {t: {"LoRA": lora[i], "WaveFT": wave[i], "best-n wavelet": best[i]} for i, t in enumerate(check.TARGETS_2_2)}

    assert check._answer_2_2(errs([0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [0.1, 0.1, 0.1])) == "a"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.4, 0.4], [0.1, 0.1, 0.1])) == "b"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.9, 0.9], [0.8, 0.1, 0.1])) == "c"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.9, 0.9], [0.8, 0.1, 0.6])) == "d"
    assert check._answer_2_3(SWEEP, HEAD, 256) == "a"
    flat = {"WaveFT": {**SWEEP["WaveFT"], 16: HEAD, 64: HEAD}, "LoRA": SWEEP["LoRA"]}
    assert check._answer_2_3(flat, HEAD, 256) == "b"
    behind = {"WaveFT": {**SWEEP["WaveFT"], 256: [0.90, 0.901, 0.899]}, "LoRA": SWEEP["LoRA"]}
    assert check._answer_2_3(behind, HEAD, 256) == "c"
    assert check._answer_2_3({"WaveFT": {**flat["WaveFT"], 256: [0.90, 0.901, 0.899]}, "LoRA": SWEEP["LoRA"]}, HEAD, 256) == "d"
    check.q2_3("b", _gain(flat), _gap(flat), flat, HEAD, min_budget=256)
    with pytest.raises(CheckFailed):
        check.q2_3("a", _gain(flat), _gap(flat), flat, HEAD, min_budget=256)


def _bad_errors(target, fit, value):
    errors = _errors()
    errors[target][fit] = value
    return errors


E = _errors()
CHOICE_2_2 = check._answer_2_2(E)
WRONG_2_2 = "a" if CHOICE_2_2 != "a" else "b"


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: check.haar_synthesis(halves_haar), "1/√2"),
        (lambda: check.haar_synthesis(analysis_haar), "전치"),
        (lambda: check.haar_synthesis(interleaved_haar), "열 순서"),
        (lambda: check.haar_synthesis(flipped_haar), "부호"),
        (lambda: check.haar_synthesis(lambda n: good_haar(n)[:, : n // 2]), "shape"),
        (lambda: check.haar_synthesis(lambda n: good_haar(n).numpy()), "torch.Tensor"),
        (lambda: check.haar_synthesis(_not_done), "NotImplementedError"),
        (lambda: check.waveft_delta(no_swap_delta), "블록을 바꾸지"),
        (lambda: check.waveft_delta(no_scaling_delta), "scaling"),
        (lambda: check.waveft_delta(sparse_only_delta), "역변환"),
        (lambda: check.waveft_delta(lecture_delta), "peftlab의 WaveFTLinear"),
        (lambda: check.waveft_delta(lambda *a: good_delta(*a).T), "shape"),
        (lambda: check.waveft_delta(_not_done), "NotImplementedError"),
        (lambda: check.q2_1("b", None, TRAIN, DELTAS, 1, 32, (16, 16)), "rank_delta"),
        (lambda: check.q2_1("b", {"LoRA": 1, "WaveFT": 1}, TRAIN, DELTAS, 1, 32, (16, 16)), "rank_delta['WaveFT']"),
        (lambda: check.q2_1("b", RANKS, {"LoRA": 16, "WaveFT": 32}, DELTAS, 1, 32, (16, 16)), "r·(in + out)"),
        (lambda: check.q2_1("b", RANKS, {"LoRA": 32, "WaveFT": 256}, DELTAS, 1, 32, (16, 16)), "n_frequency개만"),
        (lambda: check.q2_1("b", RANKS, {"LoRA": 32, "WaveFT": 31}, DELTAS, 1, 32, (16, 16)), "계수 개수"),
        (lambda: check.q2_1("a", RANKS, TRAIN, DELTAS, 1, 32, (16, 16)), "랭크 r 안에"),
        (lambda: check.q2_1(None, RANKS, TRAIN, DELTAS, 1, 32, (16, 16)), "choice"),
        (lambda: check.q2_1("b", RANKS, TRAIN, None, 1, 32, (16, 16)), "deltas"),
        (lambda: check.q2_1("b", RANKS, TRAIN, {k: torch.zeros(16, 16) for k in DELTAS}, 1, 32, (16, 16)), "ΔW가 0"),
        (lambda: check.q2_2(CHOICE_2_2, _bad_errors("smooth blocks", "WaveFT", 0.1), TARGETS, BUDGET),
         "errors['smooth blocks']['WaveFT']"),
        (lambda: check.q2_2(CHOICE_2_2, {t: {f: v ** 2 for f, v in d.items()} for t, d in E.items()}, TARGETS, BUDGET), "제곱"),
        (lambda: check.q2_2(WRONG_2_2, E, TARGETS, BUDGET), "세 오차"),
        (lambda: check.q2_2(CHOICE_2_2, E, TARGETS, 50), "budget"),
        (lambda: check.q2_2(CHOICE_2_2, None, TARGETS, BUDGET), "errors"),
        (lambda: check.q2_2(CHOICE_2_2, E, None, BUDGET), "targets"),
        (lambda: check.q2_2(CHOICE_2_2, {t: {"LoRA": d["LoRA"]} for t, d in E.items()}, TARGETS, BUDGET), "WaveFT"),
        (lambda: check.q2_3("a", -_gain(), _gap(), SWEEP, HEAD, 256), "부호"),
        (lambda: check.q2_3("a", _gain() + 0.01, _gap(), SWEEP, HEAD, 256), "gain_below는"),
        (lambda: check.q2_3("a", _gain(), -_gap(), SWEEP, HEAD, 256), "gap_at_min의 부호"),
        (lambda: check.q2_3("a", _gain(), _gap() + 0.01, SWEEP, HEAD, 256), "gap_at_min은"),
        (lambda: check.q2_3("c", _gain(), _gap(), SWEEP, HEAD, 256), "잡음"),
        (lambda: check.q2_3("a", None, None, SWEEP, HEAD, 256), "gain_below"),
        (lambda: check.q2_3("a", _gain(), _gap(), None, HEAD, 256), "sweep"),
        (lambda: check.q2_3("a", _gain(), _gap(), SWEEP, None, 256), "head"),
        (lambda: check.q2_3("a", _gain(), _gap(), {"WaveFT": {256: [0.9, 0.9]}, "LoRA": {1: [0.9, 0.9]}}, HEAD, 256),
         "최소 예산보다 작은"),
    ],
)
def test_typical_mistakes_fail_with_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    assert hint in info.value.hint, info.value.hint


def test_hidden_cases_catch_a_square_only_delta():
    def square_only(spectrum, rows, cols, n_out, n_in, scaling):
        assert n_out != 32  # written for the visible sizes only
        return good_delta(spectrum, rows, cols, n_out, n_in, scaling)

    check.waveft_delta(square_only)
    with pytest.raises(CheckFailed):
        check.waveft_delta(square_only, hidden=True)
