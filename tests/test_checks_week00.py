"""Week 00 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week00 as check


def good_adapter(h, Wd, bd, Wu, bu):
    return h + nn.functional.gelu(h @ Wd.T + bd) @ Wu.T + bu


def no_skip(h, Wd, bd, Wu, bu):
    return nn.functional.gelu(h @ Wd.T + bd) @ Wu.T + bu


def relu_adapter(h, Wd, bd, Wu, bu):
    return h + torch.relu(h @ Wd.T + bd) @ Wu.T + bu


def linear_adapter(h, Wd, bd, Wu, bu):
    return h + (h @ Wd.T + bd) @ Wu.T + bu


def good_ia3(x, W, b, scale, ff):
    return (x * scale) @ W.T + b if ff else (x @ W.T + b) * scale


def bias_unscaled(x, W, b, scale, ff):
    return (x * scale) @ W.T + b if ff else (x @ W.T) * scale + b


def always_output(x, W, b, scale, ff):
    return (x @ W.T + b) * scale if not ff else x @ W.T + b


def good_prompt(P, E, mask):
    B, T = E.shape[0], P.shape[0]
    return torch.cat([P.expand(B, -1, -1), E], 1), torch.cat([torch.ones(B, T, dtype=mask.dtype), mask], 1)


def appended(P, E, mask):
    B, T = E.shape[0], P.shape[0]
    return torch.cat([E, P.expand(B, -1, -1)], 1), torch.cat([mask, torch.ones(B, T, dtype=mask.dtype)], 1)


def mask_not_extended(P, E, mask):
    return good_prompt(P, E, mask)[0], mask


def zero_mask(P, E, mask):
    B, T = E.shape[0], P.shape[0]
    return good_prompt(P, E, mask)[0], torch.cat([torch.zeros(B, T, dtype=mask.dtype), mask], 1)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def test_every_check_is_registered_for_week00():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("00:")}
    assert ids == {"E1", "E2", "E3", "0.1", "0.2", "0.3", "0.4", "0.5"}


@pytest.mark.parametrize("hidden", [False, True])
def test_exercises_pass_on_correct_code(hidden, capsys):
    check.bottleneck_adapter(good_adapter, hidden=hidden)
    check.ia3_linear(good_ia3, hidden=hidden)
    check.prepend_prompt(good_prompt, hidden=hidden)
    assert capsys.readouterr().out.count("공개 체크 통과") == 3


@pytest.mark.parametrize("fn, words", [(no_skip, "skip"), (relu_adapter, "ReLU"), (linear_adapter, "비선형"),
                                       (_not_done, "NotImplementedError|구현")])
def test_adapter_mistakes(fn, words):
    with pytest.raises(CheckFailed, match=words):
        check.bottleneck_adapter(fn)


@pytest.mark.parametrize("fn, words", [(bias_unscaled, "bias"), (always_output, "l"),
                                       (_not_done, "NotImplementedError|구현")])
def test_ia3_mistakes(fn, words):
    with pytest.raises(CheckFailed, match=words):
        check.ia3_linear(fn)


@pytest.mark.parametrize("fn, words", [(appended, "앞"), (mask_not_extended, "mask"), (zero_mask, "1"),
                                       (_not_done, "NotImplementedError|구현")])
def test_prompt_mistakes(fn, words):
    with pytest.raises(CheckFailed, match=words):
        check.prepend_prompt(fn)


def _estimate(weights=2.0, grads=2.0, optim=8.0, act=1.0, params=1.0):
    return SimpleNamespace(weights=weights, gradients=grads, optimizer=optim, activations=act,
                           settings={"parameters": params})


def test_q0_1_decided_by_the_estimate():
    est = _estimate()
    check.q0_1("c", 12.0, est)
    with pytest.raises(CheckFailed, match="bytes_per_param"):
        check.q0_1("c", 2.0, est)
    with pytest.raises(CheckFailed, match="가장 큰"):
        check.q0_1("a", 12.0, est)
    check.q0_1("d", 12.0, _estimate(act=100.0))  # a huge batch: activations dominate
    with pytest.raises(CheckFailed):
        check.q0_1(None, None, est)


def test_q0_2_from_the_sizes():
    sizes = {"LoRA": 3000, "IA3": 800, "Prompt": 900}
    check.q0_2("IA3", 10_000 / 800, sizes, 10_000)
    with pytest.raises(CheckFailed, match="가장 작은"):
        check.q0_2("Prompt", 10_000 / 900, sizes, 10_000)
    with pytest.raises(CheckFailed, match="per_full"):
        check.q0_2("IA3", 10_000 / 3000, sizes, 10_000)


@pytest.mark.parametrize("forgetting, choice", [
    ({"full FT": (3.5, 3.7), "IA3": (3.5, 2.7)}, "a"),
    ({"full FT": (3.5, 3.6), "IA3": (3.5, 3.9)}, "b"),
    ({"full FT": (3.5, 3.2), "IA3": (3.5, 2.7)}, "c"),
])
def test_q0_3_decided_by_the_losses(forgetting, choice):
    increase = {k: a - b for k, (b, a) in forgetting.items()}
    check.q0_3(choice, increase, forgetting)
    for wrong in set("abc") - {choice}:
        with pytest.raises(CheckFailed):
            check.q0_3(wrong, increase, forgetting)
    with pytest.raises(CheckFailed, match="after − before"):
        check.q0_3(choice, {k: -v for k, v in increase.items()}, forgetting)


def test_q0_4_trade_off():
    results = {"full": (1000, 0.95), "head": (10, 0.90), "probe": (10, 0.94), "top": (300, 0.93)}
    check.q0_4("full", "probe", results)
    with pytest.raises(CheckFailed, match="가장 높은"):
        check.q0_4("probe", "probe", results)
    with pytest.raises(CheckFailed, match="0.02"):
        check.q0_4("full", "head", results)


def test_q0_5_from_the_measured_percentages():
    reference = {"LoRA": 0.062, "IA3": 0.0091, "Adapter": 0.50, "Prefix tuning": 0.078}
    check.q0_5({"Adapter"}, dict(reference), reference)
    with pytest.raises(CheckFailed, match="절반"):
        check.q0_5({"Adapter", "LoRA"}, dict(reference), reference)
    with pytest.raises(CheckFailed, match="percent_7b"):
        check.q0_5({"Adapter"}, {**reference, "IA3": 0.01}, reference)
    moved = {**reference, "IA3": 0.05}
    check.q0_5({"Adapter", "IA3"}, dict(moved), moved)
