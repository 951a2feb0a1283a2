"""Week 02 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

import peftlab
from peftlab.analysis.stats import paired_comparison
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week02 as check

try:
    from peftlab.checks._keys import KEYS
except ImportError:  # a student release: the release-key test borrows this module's fixtures there
    KEYS = {}
from peftlab.methods.waveft import coefficient_locations


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
KEY_2_1 = KEYS.get("02:2.1")
WRONG_2_1 = "a" if KEY_2_1 != "a" else "b"


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


def good_fit(T, n, seed=777):
    # the target's Haar coefficients at WaveFT's positions (peft's grid -> the matrix form's Q), synthesised back
    n_out, n_in = T.shape
    R_out, R_in = good_haar(n_out).to(T.dtype), good_haar(n_in).to(T.dtype)
    rows, cols = coefficient_locations(n_out, n_in, n, seed)
    mask = torch.zeros(n_out, n_in, dtype=T.dtype)
    mask[rows, cols] = 1.0
    return R_out @ ((R_out.T @ T @ R_in) * _swap(mask)) @ R_in.T


def no_swap_fit(T, n, seed=777):
    n_out, n_in = T.shape
    R_out, R_in = good_haar(n_out).to(T.dtype), good_haar(n_in).to(T.dtype)
    rows, cols = coefficient_locations(n_out, n_in, n, seed)
    mask = torch.zeros(n_out, n_in, dtype=T.dtype)
    mask[rows, cols] = 1.0
    return R_out @ ((R_out.T @ T @ R_in) * mask) @ R_in.T


def largest_fit(T, n, seed=777):
    R_out, R_in = good_haar(T.shape[0]).to(T.dtype), good_haar(T.shape[1]).to(T.dtype)
    C = R_out.T @ T @ R_in
    keep = torch.zeros(C.numel(), dtype=T.dtype)
    keep[C.abs().flatten().argsort(descending=True)[:n]] = 1.0
    return R_out @ (C * keep.view_as(C)) @ R_in.T


def float32_fit(T, n, seed=777):
    return good_fit(T.float(), n, seed)


def shortcut_fit(T, n, seed=777):
    return check._reference_fit(T, n, seed)


# ---------------------------------------------------------------------------------------------- 2.3 fixtures
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


def _sweep(gain=35, at_min=0, seed=0):
    """Per-example correctness (3 seeds × N_TEST) of a budget sweep: WaveFT n = 64 fixes ``gain`` of the head's
    errors per seed (n = 16 a seventh of them); WaveFT n = 256 fixes ``at_min`` more errors than LoRA r = 1
    (negative: makes that many more)."""
    rng = np.random.default_rng(seed)
    head = np.stack([_correct(0.82, rng) for _ in range(3)])
    lora1 = _fix(head, 50, rng)
    sweep = {"WaveFT": {16: _fix(head, max(1, gain // 7), rng), 64: _fix(head, gain, rng), 256: _fix(lora1, at_min, rng) if at_min else lora1.copy()},
             "LoRA": {1: lora1, 4: _fix(lora1, 20, rng)}}
    if not at_min:  # the same accuracy as LoRA r = 1, on other examples: a tie
        sweep["WaveFT"][256] = _fix(_fix(lora1, 10, rng), -10, rng)
    return sweep, head


SWEEP, HEAD = _sweep()
FLAT, FLAT_HEAD = _sweep(gain=2)
BEHIND, BEHIND_HEAD = _sweep(at_min=-30)
BOTH, BOTH_HEAD = _sweep(gain=2, at_min=-30)


def _cmp(sweep=SWEEP, head=HEAD, min_budget=256):
    _, below, at_min = check.comparisons_2_3(sweep, head, min_budget)
    return below, at_min


# ---------------------------------------------------------------------------------------------- tests
def test_all_week02_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("02:")}
    assert ids == {"E1", "E2", "2.1", "2.2", "2.3"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.haar_synthesis(good_haar, hidden=hidden)
    check.waveft_delta(good_delta, hidden=hidden)
    check.q2_1(KEY_2_1, RANKS, TRAIN, DELTAS, r=1, n_frequency=32, layer_shape=(16, 16))
    errors = _errors()
    check.q2_2(good_fit, check._answer_2_2(errors), errors, TARGETS, budget=BUDGET, hidden=hidden)
    check.q2_3("a", *_cmp(), SWEEP, HEAD, min_budget=256)
    assert capsys.readouterr().out.count("공개 체크 통과") == 5


def test_fixture_ranks_differ():
    # the fixture is an instance of the checkpoint's point: WaveFT's ΔW escapes r = 1 at the same budget
    assert RANKS["LoRA"] == 1 < RANKS["WaveFT"]


def test_reasoning_item_is_keyed_and_form_only_without_keys(monkeypatch, capsys):
    """2.1's letter is a reasoning item: the key decides it in the instructor's copy, and a student release
    (no _keys.py) checks its form only; the feedback never names a letter."""
    with pytest.raises(CheckFailed) as info:
        check.q2_1(WRONG_2_1, RANKS, TRAIN, DELTAS, 1, 32, (16, 16))
    assert not any(f"'{c}'" in info.value.hint or f" {c}:" in info.value.hint for c in "abcd")
    monkeypatch.setitem(sys.modules, "peftlab.checks._keys", None)  # as in a release
    for letter in "abcd":
        check.q2_1(letter, RANKS, TRAIN, DELTAS, 1, 32, (16, 16))
    assert capsys.readouterr().out.count("형식 확인") == 4
    with pytest.raises(CheckFailed):
        check.q2_1("e", RANKS, TRAIN, DELTAS, 1, 32, (16, 16))


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
    # the least-squares fit of a real layer is the check's reference fit and the fixture's explicit one
    assert torch.allclose(waveft, check._reference_fit(T, BUDGET, 777), atol=1e-9)
    assert torch.allclose(waveft, good_fit(T, BUDGET, 777), atol=1e-9)
    # a low-rank target is exact for LoRA at r ≥ its rank; a wavelet-sparse one for the best n ≥ its support
    assert check.recovery_errors(TARGETS["low-rank"], 32)["LoRA"] == pytest.approx(0.0, abs=1e-7)
    assert check.recovery_errors(TARGETS["wavelet-sparse"], 32)["best-n wavelet"] == pytest.approx(0.0, abs=1e-7)


def test_answers_follow_the_measurements():
    def errs(lora, wave, best):
        return {t: {"LoRA": lora[i], "WaveFT": wave[i], "best-n wavelet": best[i]} for i, t in enumerate(check.TARGETS_2_2)}

    assert check._answer_2_2(errs([0.5, 0.5, 0.5], [0.4, 0.4, 0.4], [0.1, 0.1, 0.1])) == "a"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.4, 0.4], [0.1, 0.1, 0.1])) == "b"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.9, 0.9], [0.8, 0.1, 0.1])) == "c"
    assert check._answer_2_2(errs([0.0, 0.5, 0.5], [0.9, 0.9, 0.9], [0.8, 0.1, 0.6])) == "d"
    # 2.3: the verdicts of the two paired comparisons decide; a difference below the minimum effect is a tie
    assert check._answer_2_3(*_cmp()) == "a"
    assert check._answer_2_3(*_cmp(FLAT, FLAT_HEAD)) == "b"
    assert check._answer_2_3(*_cmp(BEHIND, BEHIND_HEAD)) == "c"
    assert check._answer_2_3(*_cmp(BOTH, BOTH_HEAD)) == "d"
    below, at_min = _cmp()
    assert below.verdict == "a" and at_min.verdict == "tie"
    assert _cmp(FLAT, FLAT_HEAD)[0].verdict == "tie" and abs(_cmp(FLAT, FLAT_HEAD)[0].diff) < check.MIN_EFFECT_2_3
    check.q2_3("b", *_cmp(FLAT, FLAT_HEAD), FLAT, FLAT_HEAD, min_budget=256)
    with pytest.raises(CheckFailed):
        check.q2_3("a", *_cmp(FLAT, FLAT_HEAD), FLAT, FLAT_HEAD, min_budget=256)
    check.q2_3("d", *_cmp(BOTH, BOTH_HEAD), BOTH, BOTH_HEAD, min_budget=256)


def test_a_tie_is_right_when_the_interval_holds_zero():
    """Two seeds that disagree: a mean gain above the minimum effect whose interval holds 0 is a tie ('b')."""
    rng = np.random.default_rng(5)
    head = np.stack([_correct(0.82, rng) for _ in range(2)])
    wave = head.copy()
    wave[0] = _fix(head[:1], 15, rng)[0]  # seed 0 gains 15 examples, seed 1 loses 10
    wave[1] = _fix(head[1:], -10, rng)[0]
    sweep = {"WaveFT": {64: wave, 256: head.copy()}, "LoRA": {1: head.copy()}}
    below = paired_comparison(wave, head, min_effect=check.MIN_EFFECT_2_3)
    assert below.diff >= check.MIN_EFFECT_2_3 and below.low <= 0 <= below.high and below.verdict == "tie"
    check.q2_3("b", *_cmp(sweep, head), sweep, head, min_budget=256)
    with pytest.raises(CheckFailed):
        check.q2_3("a", *_cmp(sweep, head), sweep, head, min_budget=256)


def _bad_errors(target, fit, value):
    errors = _errors()
    errors[target][fit] = value
    return errors


E = _errors()
CHOICE_2_2 = check._answer_2_2(E)
WRONG_2_2 = "a" if CHOICE_2_2 != "a" else "b"
BELOW, AT_MIN = _cmp()
OTHER_N = paired_comparison(SWEEP["WaveFT"][16], HEAD, min_effect=check.MIN_EFFECT_2_3)


def _with(result, **changes):
    from dataclasses import replace

    return replace(result, **changes)


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
        (lambda: check.q2_1(KEY_2_1, None, TRAIN, DELTAS, 1, 32, (16, 16)), "rank_delta"),
        (lambda: check.q2_1(KEY_2_1, {"LoRA": 1, "WaveFT": 1}, TRAIN, DELTAS, 1, 32, (16, 16)), "rank_delta['WaveFT']"),
        (lambda: check.q2_1(KEY_2_1, RANKS, {"LoRA": 16, "WaveFT": 32}, DELTAS, 1, 32, (16, 16)), "r·(in + out)"),
        (lambda: check.q2_1(KEY_2_1, RANKS, {"LoRA": 32, "WaveFT": 256}, DELTAS, 1, 32, (16, 16)), "n_frequency개만"),
        (lambda: check.q2_1(KEY_2_1, RANKS, {"LoRA": 32, "WaveFT": 31}, DELTAS, 1, 32, (16, 16)), "계수 개수"),
        (lambda: check.q2_1(WRONG_2_1, RANKS, TRAIN, DELTAS, 1, 32, (16, 16)), "측정과 맞지"),
        (lambda: check.q2_1(None, RANKS, TRAIN, DELTAS, 1, 32, (16, 16)), "choice"),
        (lambda: check.q2_1(KEY_2_1, RANKS, TRAIN, None, 1, 32, (16, 16)), "deltas"),
        (lambda: check.q2_1(KEY_2_1, RANKS, TRAIN, {k: torch.zeros(16, 16) for k in DELTAS}, 1, 32, (16, 16)), "ΔW가 0"),
        (lambda: check.q2_2(no_swap_fit, CHOICE_2_2, E, TARGETS, BUDGET), "블록을 바꾸세요"),
        (lambda: check.q2_2(largest_fit, CHOICE_2_2, E, TARGETS, BUDGET), "가장 큰 n개"),
        (lambda: check.q2_2(lambda T, n, s: 25 * good_fit(T, n, s), CHOICE_2_2, E, TARGETS, BUDGET), "25배"),
        (lambda: check.q2_2(lambda T, n, s: good_fit(T, n, 0), CHOICE_2_2, E, TARGETS, BUDGET), "최소제곱 해가 아닙니다"),
        (lambda: check.q2_2(lambda T, n, s: good_fit(T, n, s)[:, :4], CHOICE_2_2, E, TARGETS, BUDGET), "shape"),
        (lambda: check.q2_2(shortcut_fit, CHOICE_2_2, E, TARGETS, BUDGET), "참조 구현"),
        (lambda: check.q2_2(_not_done, CHOICE_2_2, E, TARGETS, BUDGET), "NotImplementedError"),
        (lambda: check.q2_2(None, CHOICE_2_2, E, TARGETS, BUDGET), "waveft_fit_2_2"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, _bad_errors("smooth blocks", "WaveFT", 0.1), TARGETS, BUDGET),
         "errors['smooth blocks']['WaveFT']"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, {t: {f: v ** 2 for f, v in d.items()} for t, d in E.items()}, TARGETS, BUDGET), "제곱"),
        (lambda: check.q2_2(good_fit, WRONG_2_2, E, TARGETS, BUDGET), "세 오차"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, E, TARGETS, 50), "budget"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, None, TARGETS, BUDGET), "errors"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, E, None, BUDGET), "targets"),
        (lambda: check.q2_2(good_fit, CHOICE_2_2, {t: {"LoRA": d["LoRA"]} for t, d in E.items()}, TARGETS, BUDGET), "WaveFT"),
        (lambda: check.q2_3("a", paired_comparison(HEAD, SWEEP["WaveFT"][64]), AT_MIN, SWEEP, HEAD, 256), "방향이 반대"),
        (lambda: check.q2_3("a", OTHER_N, AT_MIN, SWEEP, HEAD, 256), "평균 차이가 아닙니다"),
        (lambda: check.q2_3("a", BELOW, _with(AT_MIN, diff=-AT_MIN.diff + 0.01), SWEEP, HEAD, 256), "at_min.diff"),
        (lambda: check.q2_3("a", _with(BELOW, min_effect=0.02), AT_MIN, SWEEP, HEAD, 256), "min_effect=0.005"),
        (lambda: check.q2_3("a", _with(BELOW, low=BELOW.low - 0.02), AT_MIN, SWEEP, HEAD, 256), "신뢰구간"),
        (lambda: check.q2_3("c", BELOW, AT_MIN, SWEEP, HEAD, 256), "verdict"),
        (lambda: check.q2_3("a", None, None, SWEEP, HEAD, 256), "below에는"),
        (lambda: check.q2_3("a", BELOW, 0.01, SWEEP, HEAD, 256), "at_min에는"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, None, HEAD, 256), "sweep"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, SWEEP, None, 256), "head"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, SWEEP, HEAD[:, :100], 256), "같은 shape"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, {"WaveFT": {k: v.mean(1).tolist() for k, v in SWEEP["WaveFT"].items()},
                                                 "LoRA": SWEEP["LoRA"]}, HEAD, 256), "(시드 수 ≥ 2, 예제 수)"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, {"WaveFT": {k: 0.5 * v for k, v in SWEEP["WaveFT"].items()},
                                                 "LoRA": SWEEP["LoRA"]}, HEAD, 256), "맞으면 1"),
        (lambda: check.q2_3("a", BELOW, AT_MIN, {"WaveFT": {256: SWEEP["WaveFT"][256]}, "LoRA": SWEEP["LoRA"]}, HEAD, 256),
         "최소 예산보다 작은"),
    ],
)
def test_typical_mistakes_fail_with_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    assert hint in info.value.hint, info.value.hint


def test_fit_in_float32_passes():
    check.q2_2(float32_fit, CHOICE_2_2, E, TARGETS, BUDGET)


def test_hidden_cases_catch_a_square_only_delta():
    def square_only(spectrum, rows, cols, n_out, n_in, scaling):
        assert n_out != 32  # written for the visible sizes only
        return good_delta(spectrum, rows, cols, n_out, n_in, scaling)

    check.waveft_delta(square_only)
    with pytest.raises(CheckFailed):
        check.waveft_delta(square_only, hidden=True)


def test_hidden_cases_catch_a_square_only_fit():
    def square_only(T, n, seed=777):
        assert T.shape[0] == T.shape[1]
        return good_fit(T, n, seed)

    check.q2_2(square_only, CHOICE_2_2, E, TARGETS, BUDGET)
    with pytest.raises(CheckFailed):
        check.q2_2(square_only, CHOICE_2_2, E, TARGETS, BUDGET, hidden=True)
