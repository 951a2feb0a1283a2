"""Checks for Week 00 — why PEFT, and the classic methods (``solutions/00_why_peft.ipynb``).

Exercises (the student writes code):
  E1  ``bottleneck_adapter(h, W_down, b_down, W_up, b_up)``: the Houlsby adapter, compared with peftlab's
      ``HoulsbyLinear``
  E2  ``ia3_linear(x, W, b, l, feedforward)``: IA³'s output / input scaling, compared with peftlab's ``IA3Linear``
      (itself equal to peft's IA³ layer: tests/methods/test_ia3.py)
  E3  ``prepend_prompt(prompt, inputs_embeds, attention_mask)``: prompt tuning's concatenation ``[P; E]`` and the
      mask with T ones in front (what peftlab's ``PromptTuningModel`` and peft feed the model)
Checkpoint questions (written for this notebook; the lecture gives none), each on the student's own numbers:
  0.1 what dominates the memory of full fine-tuning of a 7B model, and the batch size at which the activations
      would overtake it (from the student's estimate; the notebook prints only the totals before the question)
  0.2 how many of the smallest adapter fit in one full checkpoint (from the student's saved files)
  0.3 which fine-tuning forgot more of the knowledge the LM pretrained on, compared where both reached the same
      validation review loss: a paired comparison of the per-line loss increases over seeds × lines
      (``paired_comparison``; a tie is an answer)
  0.4 the accuracy / trainable-parameter trade-off of the conventional approaches: the cheapest approach the
      best one does not beat by a resolved margin (``paired_comparison`` on per-example correctness)
  0.5 which of the lecture's trainable-% figures our 7B-shaped measurement does not confirm (the measured
      percentages are printed after the question)
"""

from __future__ import annotations

import torch
from torch import nn

from peftlab.analysis.stats import paired_comparison
from peftlab.checks._core import checkpoint, choice, expect
from peftlab.checks._core import close as _close
from peftlab.checks._core import number as _number

WEEK = "00"

__all__ = ["LECTURE_PERCENT", "bottleneck_adapter", "ia3_linear", "prepend_prompt", "q0_1", "q0_2", "q0_3",
           "q0_4", "q0_5"]

#: the lecture's "파라미터 비율" column (seed 000's table and text), in percent
LECTURE_PERCENT = {"LoRA": (0.1, 1.0), "IA3": (0.01, 0.01), "Adapter": (3.6, 3.6), "Prefix tuning": (0.1, 0.1)}


def _choice(value, letters: str) -> str:
    return choice(value, letters)


# ---------------------------------------------------------------------------------------------- E1
@checkpoint(WEEK, "E1", points=1, title="Houlsby adapter: h + W_up f(W_down h + b_down) + b_up", reference=("peftlab.methods.adapters:HoulsbyLinear",))
def bottleneck_adapter(fn, hidden: bool = False) -> None:
    from peftlab.methods.adapters import HoulsbyLinear

    cases = [(16, 4, (3, 16)), (10, 3, (2, 5, 10))] + ([(8, 1, (4, 8)), (24, 6, (1, 2, 24))] if hidden else [])
    for i, (d, m, shape) in enumerate(cases):
        g = torch.Generator().manual_seed(70 + i)
        layer = HoulsbyLinear(nn.Linear(d, d), bottleneck_size=m)
        with torch.no_grad():
            for p in layer.adapter_parameters("default").values():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        h = torch.randn(*shape, generator=g)
        params = [layer.adapter_down_weight["default"], layer.adapter_down_bias["default"],
                  layer.adapter_up_weight["default"], layer.adapter_up_bias["default"]]
        Wd, bd, Wu, bu = (p.detach().clone() for p in params)
        got = fn(h.clone(), Wd, bd, Wu, bu)
        expect(isinstance(got, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(got).__name__})")
        expect(tuple(got.shape) == tuple(h.shape), f"출력 shape는 h와 같은 {tuple(h.shape)}여야 합니다 (받은 것: "
                                                   f"{tuple(got.shape)})")
        with torch.no_grad():
            want = layer.adapter("default", h)
            inner = nn.functional.gelu(h @ Wd.T + bd) @ Wu.T + bu
            expect(not _close(got, inner), "내부 skip connection이 빠졌습니다: A(h) = h + (bottleneck 출력)")
            expect(not _close(got, h + torch.relu(h @ Wd.T + bd) @ Wu.T + bu) or _close(want, h + torch.relu(
                h @ Wd.T + bd) @ Wu.T + bu), "비선형 함수가 ReLU입니다: adapter-bert와 peftlab은 GELU를 씁니다")
            expect(not _close(got, h + (h @ Wd.T + bd) @ Wu.T + bu),
                   "down과 up 사이에 비선형 함수가 없습니다 (그러면 LoRA 같은 선형 업데이트가 됩니다)")
            expect(_close(got, want), "키트의 Houlsby 어댑터와 출력이 다릅니다: h + W_up·gelu(W_down·h + b_down) + b_up")


# ---------------------------------------------------------------------------------------------- E2
@checkpoint(WEEK, "E2", points=1, title="IA³: y = (xWᵀ + b) ⊙ l, or y = (x ⊙ l)Wᵀ + b for a feed-forward layer", reference=("peftlab.methods.ia3:IA3Linear",))
def ia3_linear(fn, hidden: bool = False) -> None:
    from peftlab.methods.ia3 import IA3Linear

    cases = [(6, 4, False, (3, 6)), (6, 4, True, (3, 6))]
    if hidden:
        cases += [(5, 5, False, (2, 3, 5)), (7, 3, True, (2, 2, 7))]
    for i, (n_in, n_out, ff, shape) in enumerate(cases):
        g = torch.Generator().manual_seed(80 + i)
        base = nn.Linear(n_in, n_out)
        with torch.no_grad():
            base.weight.copy_(torch.randn(n_out, n_in, generator=g))
            base.bias.copy_(torch.randn(n_out, generator=g))
        layer = IA3Linear(base, is_feedforward=ff)
        l_vec = torch.rand(n_in if ff else n_out, generator=g) + 0.5
        with torch.no_grad():
            layer.ia3_l["default"].copy_(l_vec.view(layer.ia3_l["default"].shape))
        x = torch.randn(*shape, generator=g)
        W, b = base.weight.detach().clone(), base.bias.detach().clone()
        got = fn(x.clone(), W, b, l_vec.clone(), ff)
        expect(isinstance(got, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(got).__name__})")
        want_shape = (*shape[:-1], n_out)
        expect(tuple(got.shape) == want_shape, f"출력 shape는 {want_shape}여야 합니다 (받은 것: {tuple(got.shape)})")
        with torch.no_grad():
            want = layer(x)
            if not ff:
                expect(not _close(got, x @ W.T * l_vec + b), "출력을 스케일할 때는 bias도 함께 스케일됩니다: "
                                                            "(xWᵀ + b) ⊙ l (peft와 같음)")
            else:
                expect(n_in == n_out or not _close(got, x @ W.T + b), "feed-forward 층에서 l을 적용하지 않았습니다")
                expect(not _close(got, (x * l_vec) @ W.T + b * 0), "bias를 빠뜨렸습니다")
            expect(_close(got, want), "키트의 IA³ 층과 출력이 다릅니다: feed-forward면 입력을, 아니면 출력(bias 포함)을 "
                                      "l로 곱하세요")


# ---------------------------------------------------------------------------------------------- E3
@checkpoint(WEEK, "E3", points=1, title="prompt tuning: [P; E] and a mask with T ones in front", reference=("peftlab.methods.prompts:PromptTuningModel",))
def prepend_prompt(fn, hidden: bool = False) -> None:
    cases = [(3, 2, 5, 8)] + ([(1, 3, 4, 6), (6, 1, 2, 8)] if hidden else [])
    for i, (T, B, n, d) in enumerate(cases):
        g = torch.Generator().manual_seed(90 + i)
        prompt = torch.randn(T, d, generator=g)
        embeds = torch.randn(B, n, d, generator=g)
        mask = torch.ones(B, n, dtype=torch.long)
        mask[-1, -1:] = 0
        got = fn(prompt.clone(), embeds.clone(), mask.clone())
        expect(isinstance(got, tuple) and len(got) == 2, "(inputs_embeds, attention_mask) 두 개의 튜플을 반환하세요")
        out, out_mask = got
        expect(isinstance(out, torch.Tensor) and tuple(out.shape) == (B, T + n, d),
               f"inputs_embeds의 shape는 (B, T + n, d) = {(B, T + n, d)}여야 합니다")
        expect(not _close(out, torch.cat([embeds, prompt.expand(B, -1, -1)], 1)),
               "프롬프트를 입력 뒤에 붙였습니다: 가상 토큰은 입력 *앞*에 옵니다 [P; E]")
        expect(_close(out, torch.cat([prompt.expand(B, -1, -1), embeds], 1)), "inputs_embeds는 [P; E]여야 합니다")
        expect(isinstance(out_mask, torch.Tensor) and tuple(out_mask.shape) == (B, T + n),
               f"attention_mask도 T만큼 늘어나야 합니다: shape {(B, T + n)}")
        expect(bool((out_mask[:, :T] == 1).all()), "가상 토큰 자리의 mask는 1이어야 합니다 (모든 토큰이 프롬프트를 봄)")
        expect(torch.equal(out_mask[:, T:].long(), mask), "실제 토큰의 mask는 원래 mask 그대로여야 합니다")


# ---------------------------------------------------------------------------------------------- 0.1
def _batch_over(estimate) -> int:
    """The smallest batch (same sequence length) at which the activations exceed the optimizer states: the
    activations grow with the number of tokens, batch × seq, and nothing else does."""
    batch = int(estimate.settings["batch"])
    return (int(estimate.optimizer) * batch) // int(estimate.activations) + 1


@checkpoint(WEEK, "0.1", points=1, title="memory of full fine-tuning: what dominates")
def q0_1(choice, bytes_per_param, batch_over, estimate) -> None:
    expect(estimate is not None and hasattr(estimate, "optimizer"), "estimate (MemoryEstimate) 를 넘기세요")
    params = estimate.settings["parameters"]
    want = (estimate.weights + estimate.gradients + estimate.optimizer) / params
    got = _number(bytes_per_param, "bytes_per_param")
    expect(abs(got - want) <= 0.02 * want, "bytes_per_param은 (weights + gradients + optimizer) / 파라미터 수입니다 "
                                           "(활성값 제외, 당신의 estimate로 계산)")
    parts = {"a": estimate.weights, "b": estimate.gradients, "c": estimate.optimizer, "d": estimate.activations}
    biggest = max(parts, key=parts.get)
    expect(_choice(choice, "abcd") == biggest, "당신의 estimate에서 가장 큰 항목을 다시 보세요 (GiB로 나눠 비교)")
    n = _number(batch_over, "batch_over")
    expect(n == _batch_over(estimate),
           "batch_over는 활성값이 옵티마이저 상태보다 커지는 가장 작은 배치 크기입니다 (같은 시퀀스 길이; 활성값만 "
           "토큰 수 = 배치 × 길이에 비례합니다)")


# ---------------------------------------------------------------------------------------------- 0.2
@checkpoint(WEEK, "0.2", points=1, title="checkpoint sizes: adapters per full checkpoint")
def q0_2(smallest, per_full, sizes, full_bytes) -> None:
    expect(isinstance(sizes, dict) and sizes, "sizes (방법 → 바이트) 딕셔너리를 넘기세요")
    full = _number(full_bytes, "full_bytes")
    name = min(sizes, key=sizes.get)
    expect(smallest == name, "sizes에서 가장 작은 체크포인트의 방법 이름을 쓰세요")
    want = full / sizes[name]
    got = _number(per_full, "per_full")
    expect(abs(got - want) <= 0.01 * want + 1, "per_full은 완전 미세조정 체크포인트 하나의 바이트 / 가장 작은 어댑터의 바이트입니다")


# ---------------------------------------------------------------------------------------------- 0.3
def _per_line(per_line) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``per_line``: {"before": …, <full fine-tuning>: …, <PEFT>: …} per-line LM losses, each ``(n,)`` or
    ``(seeds, n)`` (one row per seed, paired by position), the full fine-tuning first. Returns the "before" losses
    and the two methods' in that order."""
    expect(isinstance(per_line, dict) and "before" in per_line and len(per_line) == 3,
           "per_line ({'before': …, 방법: …, 방법: …}, 줄마다의 LM 손실) 을 넘기세요")
    rows = {k: v for k, v in per_line.items()}
    expect(all(isinstance(v, torch.Tensor) and v.dim() in (1, 2) for v in rows.values())
           and len({v.shape for v in rows.values()}) == 1,
           "per_line의 값은 같은 모양의 텐서여야 합니다: (줄,) 또는 (시드, 줄)")
    before = rows.pop("before").double()
    return before, {k: v.double() for k, v in rows.items()}


def _answer_0_3(before, after, min_effect) -> str:
    """c when no method's corpus loss rose by a resolved ≥ min_effect; otherwise the paired comparison of the
    two methods' per-line increases: a (full fine-tuning more), b (PEFT more), d (no resolved difference)."""
    if not any(paired_comparison(losses, before, min_effect=min_effect).verdict == "a" for losses in after.values()):
        return "c"
    full, peft = ((losses - before) for losses in after.values())  # full fine-tuning first, then PEFT
    return {"a": "a", "b": "b", "tie": "d"}[paired_comparison(full, peft, min_effect=min_effect).verdict]


@checkpoint(WEEK, "0.3", points=1, title="catastrophic forgetting: which fine-tuning forgot more at the same review loss")
def q0_3(choice, increase, per_line, min_effect: float = 0.01) -> None:
    before, after = _per_line(per_line)
    expect(isinstance(increase, dict) and set(increase) == set(after),
           f"increase는 {sorted(after)} 각각의 줄별 (after − before) 평균입니다")
    for method, losses in after.items():
        expect(abs(_number(increase[method], f"increase[{method!r}]") - (losses - before).mean().item()) <= 1e-5,
               f"increase[{method!r}]는 지식 문장 줄마다(시드마다)의 손실 after − before 의 평균입니다")
    expect(_choice(choice, "abcd") == _answer_0_3(before, after, min_effect),
           "방법마다 미세조정 전후의 줄별 손실을, 그리고 두 방법의 줄별 증가량을 paired_comparison으로 비교한 결과"
           f"(신뢰구간과 min_effect={min_effect})로 답하세요")


# ---------------------------------------------------------------------------------------------- 0.4
@checkpoint(WEEK, "0.4", points=1, title="conventional approaches: accuracy against trainable parameters")
def q0_4(best, cheapest_close, results, correct, margin: float = 0.02) -> None:
    expect(isinstance(results, dict) and len(results) >= 3, "results ({방식: (학습 파라미터 수, 정확도)}) 를 넘기세요")
    expect(isinstance(correct, dict) and set(correct) == set(results),
           "correct ({방식: 검증 예제마다의 정답 여부 0/1}) 를 results와 같은 방식들로 넘기세요")
    expect(all(isinstance(v, torch.Tensor) and v.dim() == 1 for v in correct.values())
           and len({v.shape for v in correct.values()}) == 1, "correct의 값은 같은 길이의 1차원 텐서여야 합니다")
    means = {k: v.float().mean().item() for k, v in correct.items()}
    top = max(means.values())
    expect(best in means and means[best] == top, "검증 정확도(정답 여부의 평균)가 가장 높은 방식을 쓰세요")
    close = [best] + [k for k in correct if k != best
                      and paired_comparison(correct[best], correct[k], min_effect=margin).verdict != "a"]
    fewest = min(results[k][0] for k in close)
    expect(cheapest_close in close and results[cheapest_close][0] == fewest,
           f"최고 방식과, 최고 방식이 paired_comparison(min_effect={margin})으로 유의하게 앞서지 못한 방식들 중 "
           "학습 파라미터가 가장 적은 것을 쓰세요")


# ---------------------------------------------------------------------------------------------- 0.5
@checkpoint(WEEK, "0.5", points=1, title="the lecture's trainable-% figures against a 7B-shaped model")
def q0_5(not_confirmed, percent_7b, reference) -> None:
    expect(isinstance(percent_7b, dict) and set(LECTURE_PERCENT) <= set(percent_7b),
           f"percent_7b에 {sorted(LECTURE_PERCENT)} 를 모두 채우세요")
    expect(isinstance(reference, dict) and set(LECTURE_PERCENT) <= set(reference), "reference를 넘기세요")
    for method in LECTURE_PERCENT:
        got, want = _number(percent_7b[method], f"percent_7b[{method!r}]"), reference[method]
        expect(abs(got - want) <= 1e-3 * want, f"percent_7b[{method!r}]는 7B 설정에서 학습 파라미터 / 전체 파라미터 × 100 "
                                               "입니다 (meta device에서 센 값)")
    off = {m for m, (lo, hi) in LECTURE_PERCENT.items() if not (lo / 2 <= reference[m] <= hi * 2)}
    expect(isinstance(not_confirmed, (set, list, tuple)) and set(not_confirmed) == off,
           "잰 비율이 강의 값의 절반보다 작거나 두 배보다 큰 방법들의 집합을 쓰세요 (LoRA는 범위 0.1–1%)")
