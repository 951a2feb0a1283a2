"""Week 01 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week01 as check


def good_forward(x, W0, b, A, B, s):
    return x @ W0.T + b + s * ((x @ A.T) @ B.T)


class GoodLoRA(nn.Module):
    def __init__(self, base_layer, r, alpha):
        super().__init__()
        self.base_layer = base_layer
        for p in base_layer.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(r, base_layer.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base_layer.out_features, r))
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.scaling * (x @ self.lora_A.T @ self.lora_B.T)


class RandomB(GoodLoRA):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
        nn.init.normal_(self.lora_B)


class TrainableBase(GoodLoRA):
    def __init__(self, base_layer, r, alpha):
        super().__init__(base_layer, r, alpha)
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
    check.q1_1("a", 0.6, 0.2)
    check.q1_2(32768, 96.875)
    check.q1_3("c", 16 * 8192 / 4096**2)
    check.q1_4(4_194_304)
    out = capsys.readouterr().out
    assert out.count("공개 체크 통과") == 7


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
        (lambda: check.energy_captured(lambda dw, r: float(torch.linalg.svdvals(dw)[:r].sum() / torch.linalg.svdvals(dw).sum())), "제곱"),
        (lambda: check.energy_captured(_not_done), "NotImplementedError"),
        (lambda: check.q1_1(None, 0.6, 0.2), "choice"),
        (lambda: check.q1_1("b", 0.6, 0.2), "보기"),
        (lambda: check.q1_1("a", 0.2, 0.6), "실험값"),
        (lambda: check.q1_2(None, None), "채우세요"),
        (lambda: check.q1_2(16 * 1024, 98.4), "LoRA 파라미터 수"),
        (lambda: check.q1_2(32768, 3.125), "감소율"),
        (lambda: check.q1_3("a", 16 * 8192 / 4096**2), "병합"),
        (lambda: check.q1_3("c", 0.5), "r·(in + out)"),
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
