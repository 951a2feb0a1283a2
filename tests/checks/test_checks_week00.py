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


def _estimate(weights=2.0, grads=2.0, optim=8.0, act=1.0, params=1.0, batch=1):
    return SimpleNamespace(weights=weights, gradients=grads, optimizer=optim, activations=act,
                           settings={"parameters": params, "batch": batch})


def test_q0_1_decided_by_the_estimate():
    est = _estimate()
    check.q0_1("c", 12.0, 9, est)  # activations 1 per batch element, Adam states 8: batch 9 is the first above
    with pytest.raises(CheckFailed, match="bytes_per_param"):
        check.q0_1("c", 2.0, 9, est)
    with pytest.raises(CheckFailed, match="가장 큰"):
        check.q0_1("a", 12.0, 9, est)
    with pytest.raises(CheckFailed, match="batch_over"):
        check.q0_1("c", 12.0, 8, est)  # equal is not above
    check.q0_1("d", 12.0, 1, _estimate(act=100.0))  # a huge batch: activations dominate
    check.q0_1("c", 12.0, 5, _estimate(act=4.0, batch=2))  # 2 per batch element: 5 · 2 > 8
    with pytest.raises(CheckFailed):
        check.q0_1(None, None, None, est)


def test_q0_1_on_the_notebooks_estimate():
    from peftlab.analysis import memory

    est = memory.estimate_training_memory("7B", "full")
    n = next(b for b in range(1, 1000) if memory.estimate_training_memory("7B", "full", batch=b).activations
             > est.optimizer)
    params = est.settings["parameters"]
    check.q0_1("c", (est.weights + est.gradients + est.optimizer) / params, n, est)
    with pytest.raises(CheckFailed, match="batch_over"):
        check.q0_1("c", (est.weights + est.gradients + est.optimizer) / params, n - 1, est)


def test_q0_2_from_the_sizes():
    sizes = {"LoRA": 3000, "IA3": 800, "Prompt": 900}
    check.q0_2("IA3", 10_000 / 800, sizes, 10_000)
    with pytest.raises(CheckFailed, match="가장 작은"):
        check.q0_2("Prompt", 10_000 / 900, sizes, 10_000)
    with pytest.raises(CheckFailed, match="per_full"):
        check.q0_2("IA3", 10_000 / 3000, sizes, 10_000)


def _lines(before, full, peft, n=400, spread=0.3, seed=0):
    """Per-line losses: each method's increase is a constant plus paired noise around it."""
    g = torch.Generator().manual_seed(seed)
    b = 3.0 + torch.rand(n, generator=g)
    return {"before": b, "full FT": b + full + spread * torch.randn(n, generator=g),
            "IA3": b + peft + spread * torch.randn(n, generator=g)}


@pytest.mark.parametrize("per_line, choice", [
    (_lines(0, 0.2, -0.5), "a"),  # full fine-tuning rose, IA3 fell: full forgot more
    (_lines(0, 0.1, 0.4), "b"),
    (_lines(0, -0.1, -0.5), "c"),  # both fell: neither forgot, whatever the gap between them
    (_lines(0, 0.0, 0.0, spread=1.0, n=50), "c"),  # no resolved rise on few, noisy lines
    (_lines(0, 0.3, 0.3), "d"),  # both rose by the same: no resolved difference between them
])
def test_q0_3_decided_by_the_paired_comparisons(per_line, choice):
    before = per_line["before"]
    increase = {k: (v - before).mean().item() for k, v in per_line.items() if k != "before"}
    check.q0_3(choice, increase, per_line)
    for wrong in set("abcd") - {choice}:
        with pytest.raises(CheckFailed):
            check.q0_3(wrong, increase, per_line)
    with pytest.raises(CheckFailed, match="after − before"):
        check.q0_3(choice, {k: -v - 1 for k, v in increase.items()}, per_line)


def test_q0_3_needs_the_per_line_losses():
    per_line = _lines(0, 0.2, -0.5)
    increase = {k: (v - per_line["before"]).mean().item() for k, v in per_line.items() if k != "before"}
    with pytest.raises(CheckFailed, match="per_line"):
        check.q0_3("a", increase, {k: v for k, v in per_line.items() if k != "before"})
    with pytest.raises(CheckFailed):
        check.q0_3(None, None, per_line)


def _correct(acc, n=500, seed=0):
    """0/1 correctness with exactly round(acc·n) ones, spread over the examples."""
    g = torch.Generator().manual_seed(seed)
    out = torch.zeros(n)
    out[torch.randperm(n, generator=g)[: round(acc * n)]] = 1.0
    return out


def test_q0_4_trade_off_from_paired_comparisons():
    base = _correct(0.95)
    # "probe" differs from "full" on 8 examples (4 each way) out of 500: a tie; "head" is far behind
    probe = base.clone()
    flip = torch.nonzero(base == 1).flatten()[:4].tolist() + torch.nonzero(base == 0).flatten()[:2].tolist()
    probe[flip] = 1 - probe[flip]
    correct = {"full": base, "head": _correct(0.80, seed=1), "probe": probe, "top": _correct(0.90, seed=2)}
    results = {"full": (1000, 0.0), "head": (10, 0.0), "probe": (10, 0.0), "top": (300, 0.0)}
    check.q0_4("full", "probe", results, correct)
    with pytest.raises(CheckFailed, match="가장 높은"):
        check.q0_4("probe", "probe", results, correct)
    with pytest.raises(CheckFailed, match="paired_comparison"):
        check.q0_4("full", "head", results, correct)
    with pytest.raises(CheckFailed, match="paired_comparison"):
        check.q0_4("full", "top", results, correct)
    # only the best itself is close when everything else is resolved behind it
    far = {"full": base, "head": _correct(0.80, seed=1), "probe": _correct(0.85, seed=3), "top": _correct(0.90, seed=2)}
    check.q0_4("full", "full", results, far)
    with pytest.raises(CheckFailed):
        check.q0_4("full", "probe", results, far)
    with pytest.raises(CheckFailed, match="correct"):
        check.q0_4("full", "probe", results, None)


def test_q0_5_from_the_measured_percentages():
    reference = {"LoRA": 0.062, "IA3": 0.0091, "Adapter": 0.50, "Prefix tuning": 0.078}
    check.q0_5({"Adapter"}, dict(reference), reference)
    with pytest.raises(CheckFailed, match="절반"):
        check.q0_5({"Adapter", "LoRA"}, dict(reference), reference)
    with pytest.raises(CheckFailed, match="percent_7b"):
        check.q0_5({"Adapter"}, {**reference, "IA3": 0.01}, reference)
    moved = {**reference, "IA3": 0.05}
    check.q0_5({"Adapter", "IA3"}, dict(moved), moved)


def test_q0_3_accepts_seeds_by_lines():
    """per_line as (seeds, lines): the comparison pools both (paired by position), the increase is the overall mean."""
    runs = [_lines(0, 0.2, 0.6, seed=s) for s in (0, 1)]
    per_line = {k: torch.stack([r[k] for r in runs]) for k in runs[0]}
    before = per_line["before"]
    increase = {k: (v - before).mean().item() for k, v in per_line.items() if k != "before"}
    check.q0_3("b", increase, per_line)  # IA3 rose more
    with pytest.raises(CheckFailed):
        check.q0_3("a", increase, per_line)
    with pytest.raises(CheckFailed, match="모양"):
        check.q0_3("b", increase, {**per_line, "IA3": per_line["IA3"][0]})
