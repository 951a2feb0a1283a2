"""Week 01 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week01 as check
from peftlab.checks._keys import KEYS

KEY_1_3 = KEYS["01:1.3"]
WRONG_1_3 = next(c for c in "abcd" if c != KEY_1_3)


def good_forward(x, W0, b, A, B, s):
    return x @ W0.T + b + s * ((x @ A.T) @ B.T)


class GoodLoRA(nn.Module):
    def __init__(self, base_layer, r, alpha, dropout=0.0):
        super().__init__()
        self.lora_dropout = nn.Dropout(dropout)
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base_layer.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base_layer.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.scaling * (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T)


class NoDropoutArg(GoodLoRA):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)


class DropoutOnOutput(GoodLoRA):
    def forward(self, x):
        return self.lora_dropout(self.base_layer(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T))


class RandomB(GoodLoRA):
    def __init__(self, base_layer, r, alpha, dropout=0.0):
        super().__init__(base_layer, r, alpha, dropout)
        nn.init.normal_(self.lora_B)


class TrainableBase(GoodLoRA):
    def __init__(self, base_layer, r, alpha, dropout=0.0):
        super().__init__(base_layer, r, alpha, dropout)
        base_layer.weight.requires_grad_(True)


def good_energy(dw, r):
    s = torch.linalg.svdvals(dw.double())
    return float((s[:r] ** 2).sum() / (s**2).sum())


def test_all_week01_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("01:")}
    assert ids == {"E1", "E2", "E3", "1.1", "1.2", "1.3", "1.4"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.lora_forward(good_forward, hidden=hidden)
    check.lora_linear(GoodLoRA, hidden=hidden)
    check.energy_captured(good_energy, hidden=hidden)
    check.q1_1("a", RANKS, MATS)
    check.q1_2(32768, 96.875)
    check.q1_3(KEY_1_3, 16 * 8192 / 4096**2, 25.0, TIMES)
    check.q1_4(4_194_304)
    out = capsys.readouterr().out
    assert out.count("공개 체크 통과") == 7


def _matrices_1_1():
    """A low-rank ΔW, a full-rank W0 and a random matrix with ΔW's norm, as the notebook builds them."""
    from peftlab.analysis.svd import random_like, rank_for_energy

    g = torch.Generator().manual_seed(0)
    delta = torch.randn(40, 3, generator=g) @ torch.randn(3, 30, generator=g) + 0.01 * torch.randn(40, 30, generator=g)
    mats = {"delta": delta, "w0": torch.randn(40, 30, generator=g), "random": random_like(delta).float()}
    return {k: rank_for_energy(v) for k, v in mats.items()}, mats


RANKS, MATS = _matrices_1_1()
TIMES = {"base": 10.0, "unmerged": 12.5, "merged": 10.1}


def test_q1_1_answer_follows_the_measurement():
    """The right choice is the one the student's numbers support, not a constant."""
    from peftlab.checks.week01 import _answer_1_1

    assert RANKS["delta"] <= 3 < RANKS["random"] and _answer_1_1(RANKS) == "a"
    assert _answer_1_1({"delta": 20, "w0": 5, "random": 25}) == "b"
    assert _answer_1_1({"delta": 24, "w0": 26, "random": 24}) == "d"
    swapped = {"delta": MATS["w0"], "w0": MATS["delta"], "random": MATS["random"]}
    from peftlab.analysis.svd import rank_for_energy
    ranks = {k: rank_for_energy(v) for k, v in swapped.items()}
    check.q1_1("b", ranks, swapped)
    with pytest.raises(CheckFailed):
        check.q1_1("a", ranks, swapped)


def test_rank_for_energy_and_amplification():
    from peftlab.analysis.svd import amplification_factor, energy_captured, rank_for_energy

    m = torch.diag(torch.tensor([3.0, 2.0, 1.0, 0.5]))
    assert rank_for_energy(m, 0.9) == 2 and energy_captured(m, 2) >= 0.9 > energy_captured(m, 1)
    assert rank_for_energy(m, 1.0) == 4
    w0 = torch.diag(torch.tensor([10.0, 1.0, 1.0, 1.0]))
    along = torch.diag(torch.tensor([1.0, 0.0, 0.0, 0.0]))  # ΔW in W0's strongest direction
    across = torch.diag(torch.tensor([0.0, 0.0, 0.0, 1.0]))  # ΔW where W0 is weak
    assert amplification_factor(across, w0, 1) == pytest.approx(1.0)
    assert amplification_factor(along, w0, 1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="share"):
        rank_for_energy(m, 0)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: check.lora_forward(lambda x, W0, b, A, B, s: x @ W0.T + b), "LoRA 항"),
        (lambda: check.lora_forward(lambda x, W0, b, A, B, s: x @ W0.T + b + (x @ A.T) @ B.T), "scaling"),
        (lambda: check.lora_forward(lambda x, W0, b, A, B, s: x @ (W0 + s * B @ A).T), "bias"),
        (lambda: check.lora_forward(lambda x, W0, b, A, B, s: x @ W0.T), "값이 다릅니다"),
        (lambda: check.lora_forward(lambda x, W0, b, A, B, s: (x @ W0.T + b)[..., :2]), "shape"),
        (lambda: check.lora_forward(_not_done), "NotImplementedError"),
        (lambda: check.lora_linear(RandomB), "0으로 초기화"),
        (lambda: check.lora_linear(TrainableBase), "lora_A와 lora_B뿐"),
        (lambda: check.lora_linear(_not_done), "NotImplementedError"),
        (lambda: check.lora_linear(NoDropoutArg), "dropout 인자"),
        (lambda: check.lora_linear(DropoutOnOutput), "어댑터 입력 x에만"),
        (lambda: check.energy_captured(lambda dw, r: float(torch.linalg.svdvals(dw)[:r].sum() / torch.linalg.svdvals(dw).sum())), "제곱"),
        (lambda: check.energy_captured(_not_done), "NotImplementedError"),
        (lambda: check.q1_1(None, RANKS, MATS), "choice"),
        (lambda: check.q1_1("b", RANKS, MATS), "세 값"),
        (lambda: check.q1_1("a", {**RANKS, "delta": RANKS["delta"] + 1}, MATS), "rank90['delta']"),
        (lambda: check.q1_1("a", None, MATS), "rank90"),
        (lambda: check.q1_1("a", RANKS, None), "matrices"),
        (lambda: check.q1_2(None, None), "채우세요"),
        (lambda: check.q1_2(16 * 1024, 98.4), "LoRA 파라미터 수"),
        (lambda: check.q1_2(32768, 3.125), "감소율"),
        (lambda: check.q1_3(WRONG_1_3, 16 * 8192 / 4096**2, 25.0, TIMES), "병합"),
        (lambda: check.q1_3(KEY_1_3, 0.5, 25.0, TIMES), "r·(in + out)"),
        (lambda: check.q1_3(KEY_1_3, 16 * 8192 / 4096**2, 0.78, TIMES), "여러분이 잰 times"),
        (lambda: check.q1_3(KEY_1_3, 16 * 8192 / 4096**2, 25.0, None), "times"),
        (lambda: check.q1_3(None, None, None, None), "채우세요"),
        (lambda: check.q1_4(4.2e6), "레이어 수"),
    ],
)
def test_typical_mistakes_fail_with_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert isinstance(info.value, AssertionError)
    assert hint in info.value.hint, info.value.hint


def test_hidden_cases_catch_a_2d_only_forward():
    def flat_only(x, W0, b, A, B, s):
        assert x.dim() == 2
        return good_forward(x, W0, b, A, B, s)

    check.lora_forward(flat_only)  # public cases are 2-D
    with pytest.raises(CheckFailed):
        check.lora_forward(flat_only, hidden=True)


def test_reporter_sees_outcomes():
    from peftlab.checks import set_reporter

    seen = []
    set_reporter(lambda info, passed, hint: seen.append((info.id, passed)))
    try:
        check.q1_4(4_194_304)
        with pytest.raises(CheckFailed):
            check.q1_4(1)
    finally:
        set_reporter(None)
    assert seen == [("1.4", True), ("1.4", False)]


def test_q1_3_wrong_choices_fail_without_naming_the_answer():
    """Every wrong letter fails with the same hint (no letter-by-letter feedback), and the overhead hint does
    not print the value the student should have computed."""
    hints = set()
    for wrong in set("abcd") - {KEY_1_3}:
        with pytest.raises(CheckFailed) as info:
            check.q1_3(wrong, 16 * 8192 / 4096**2, 25.0, TIMES)
        hints.add(info.value.hint)
    hint = next(iter(hints))
    assert len(hints) == 1 and not any(f"'{c}'" in hint for c in "abcd")
    with pytest.raises(CheckFailed) as info:
        check.q1_3(KEY_1_3, 16 * 8192 / 4096**2, 1.0, TIMES)
    measured = 100 * (TIMES["unmerged"] / TIMES["base"] - 1)
    assert f"{measured:.2f}" not in info.value.hint and f"{measured:.1f}" not in info.value.hint
