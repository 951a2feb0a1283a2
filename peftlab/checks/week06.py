"""Checks for Week 06 — QLoRA (``solutions/06_qlora.ipynb``).

Exercise (the student writes code):
  E1  ``nf4_levels(offset)`` → the 16 NF4 levels built from standard-normal quantiles, compared with
      bitsandbytes' own table (``bitsandbytes.functional.get_4bit_type("nf4")``) and, for other offsets,
      with :func:`peftlab.quant.nf4_code`
Checkpoint questions of the lecture's QLoRA part (section 6), each on the student's own tensors:
  6.1 how NF4 differs from plain 4-bit quantization: the round-trip RMSE of NF4, FP4 and INT4 (blocks of 64)
      on the student's weight matrices, and the type the measurement ranks first
  6.2 what makes QLoRA work: bits per parameter of the student's whole model quantized matrix by matrix (with
      and without double quantization), the GiB each ingredient saves for a 65B model in the memory calculator,
      and which of the four 65B configurations fits one 48 GB GPU (the paper's headline)
  6.3 when to choose QLoRA: the paired verdict (:func:`peftlab.analysis.stats.paired_comparison`, per-question
      answer losses, lower is better) of QLoRA against LoRA on the student's run, and per (model, GPU) what the
      memory calculator allows under the rule "16-bit LoRA if it fits, else QLoRA if it fits, else none"
"""

from __future__ import annotations

import math

import torch

from peftlab.checks._core import checkpoint, expect
from peftlab.checks._core import number as _number
from peftlab.quant import BLOCKSIZE, QUANT_TYPE

WEEK = "06"

__all__ = ["GPU_48GB", "MIN_EFFECT_NATS", "decide", "model_bits", "nf4_code", "q6_1", "q6_2", "q6_3", "verdict_6_3"]

QUANT_TYPES_6_1 = ("nf4", "fp4", "int4")
#: the smallest difference of interest between two mean losses, in nats (e^0.01 − 1 ≈ 1 % of perplexity)
MIN_EFFECT_NATS = 0.01
#: one 48 GB GPU (the QLoRA paper's "65B on a single 48GB GPU"), counted as GPUS counts: 48 GiB, no CUDA context
GPU_48GB = 48 * 2**30
#: the memory calculator's settings an estimate must carry to be recomputed by the checks
ESTIMATE_KEYS = ("batch", "seq", "r", "dtype", "gradient_checkpointing", "blocksize", "double_quant")


# ---------------------------------------------------------------------------------------------- E1
def _bnb_nf4() -> torch.Tensor:
    """bitsandbytes' NF4 table (sorted, fp32); peftlab's bit-identical rebuild if bitsandbytes is missing."""
    try:
        import bitsandbytes.functional as bnbf

        return bnbf.get_4bit_type("nf4", device="cpu").float()
    except Exception:  # pragma: no cover - bitsandbytes is a dependency of the kit
        from peftlab.quant import nf4_code as reference

        return reference()


@checkpoint(WEEK, "E1", points=2, title="NF4 code book from standard-normal quantiles, as bitsandbytes builds it", reference=("peftlab.quant:nf4_code", "peftlab.quant:code_book"))
def nf4_code(fn, hidden: bool = False) -> None:
    from peftlab.quant import NF4_OFFSET
    from peftlab.quant import nf4_code as reference

    cases = [(NF4_OFFSET, _bnb_nf4()), (0.99, reference(0.99))]
    if hidden:
        cases += [(0.95, reference(0.95)), (0.98, reference(0.98))]
    default = _bnb_nf4()
    for offset, want in cases:
        got = fn(offset)
        expect(isinstance(got, torch.Tensor), f"torch.Tensor를 반환하세요 (받은 것: {type(got).__name__})")
        expect(got.numel() == 16, f"4비트 코드북은 값이 2⁴ = 16개입니다 (받은 것: {got.numel()}개)")
        got = got.detach().flatten().float()
        expect(torch.isfinite(got).all(), "코드북에 inf/NaN이 있습니다: Φ⁻¹(0.5 … δ)만 쓰세요 (Φ⁻¹(1) = ∞)")
        expect(bool((got[1:] >= got[:-1]).all()), "값을 오름차순으로 정렬해 반환하세요 (bitsandbytes의 표 순서)")
        n_pos, n_neg = int((got > 0).sum()), int((got < 0).sum())
        expect((n_pos, n_neg) != (8, 8) and (n_pos, n_neg) != (7, 8),
               f"양수 {n_pos}개, 음수 {n_neg}개입니다: NF4는 정확한 0을 넣느라 비대칭 — 양수 8개, 0 하나, 음수 7개")
        expect(bool((got == 0).any()), "NF4에는 정확한 0이 있어야 합니다 (0을 정확히 표현: 패딩, ReLU 뒤의 0 …)")
        expect(math.isclose(got.abs().max().item(), 1.0, abs_tol=1e-6),
               "가장 큰 절댓값으로 나눠 [−1, 1]로 정규화하세요 (absmax 양자화는 블록을 [−1, 1]로 보냅니다)")
        expect((n_pos, n_neg) == (8, 7), f"양수 8개, 0 하나, 음수 7개여야 합니다 (받은 것: 양수 {n_pos}, 음수 {n_neg})")
        expect(got.min().item() == -1.0, "가장 작은 값은 정확히 −1이어야 합니다: 양쪽 끝이 모두 Φ⁻¹(δ)이므로 같은 최댓값으로 나눕니다")
        expect(offset == NF4_OFFSET or not torch.equal(got, default),
               f"offset = {offset}에서도 δ = 0.9677083의 표를 돌려줬습니다: 인자 offset으로 표를 만드세요")
        expect(torch.allclose(got, want, atol=1e-3),
               "값이 bitsandbytes의 NF4와 다릅니다: 양수 Φ⁻¹(linspace(δ, 0.5, 9)[:-1]), 음수 −Φ⁻¹(linspace(δ, 0.5, 8)[:-1]), "
               "0을 더해 정렬한 뒤 최댓값으로 나누세요 (Φ⁻¹ = torch.special.ndtri)")
        expect(torch.equal(got, want),
               f"거의 맞지만 비트 단위로 같지 않습니다 (최대 {(got - want).abs().max().item():.1e} 차이): δ = {offset}를 그대로 쓰고 "
               "(bitsandbytes는 0.9677083으로 반올림한 값을 씁니다), linspace는 float32, Φ⁻¹는 float64로 계산해 "
               "float32로 바꾼 뒤 최댓값으로 나누세요")


# ---------------------------------------------------------------------------------------------- 6.1
def weight_rmse(weights, quant_type: str, blocksize: int = BLOCKSIZE) -> float:
    """RMSE of the round trip ``dequantize(quantize(W))`` over every element of ``weights`` (each matrix
    quantized on its own, blocks of ``blocksize``, no double quantization)."""
    from peftlab.quant import dequantize_4bit, quantize_4bit

    sq, n = 0.0, 0
    for w in weights:
        w = w.detach().float().cpu()
        packed, state = quantize_4bit(w, blocksize=blocksize, quant_type=quant_type, double_quant=False)
        sq += (dequantize_4bit(packed, state) - w).double().pow(2).sum().item()
        n += w.numel()
    return math.sqrt(sq / n)


def _weight_list(weights) -> list[torch.Tensor]:
    if isinstance(weights, dict):
        weights = list(weights.values())
    expect(isinstance(weights, (list, tuple)) and weights and all(isinstance(w, torch.Tensor) and w.dim() == 2
                                                                   for w in weights),
           "weights에는 여러분이 양자화한 가중치 행렬들(2차원 텐서의 dict 또는 list)을 넣으세요")
    return list(weights)


@checkpoint(WEEK, "6.1", points=1, title="NF4 vs plain 4-bit — the quantization error on your own weights")
def q6_1(rmse, best, weights) -> None:
    from peftlab.quant import dequantize_4bit, quantize_4bit

    ws = _weight_list(weights)
    expect(isinstance(rmse, dict) and all(k in rmse for k in QUANT_TYPES_6_1),
           f"rmse에는 {list(QUANT_TYPES_6_1)} 각각의 RMSE를 넣으세요")
    truth = {qt: weight_rmse(ws, qt) for qt in QUANT_TYPES_6_1}
    for qt in QUANT_TYPES_6_1:
        got = _number(rmse[qt], f"rmse[{qt!r}]")
        if not math.isclose(got, truth[qt], rel_tol=1e-4):
            mse = truth[qt] ** 2
            expect(not math.isclose(got, mse, rel_tol=1e-3), f"rmse[{qt!r}]가 MSE입니다: 제곱근을 취하세요")
            dq = math.sqrt(sum((dequantize_4bit(*quantize_4bit(w.detach().float(), quant_type=qt, double_quant=True)) - w.detach().float())
                               .double().pow(2).sum().item() for w in ws) / sum(w.numel() for w in ws))
            expect(not math.isclose(got, dq, rel_tol=1e-4),
                   f"rmse[{qt!r}]를 이중 양자화(double_quant=True)로 쟀습니다: 코드북끼리 비교하려면 double_quant=False")
            expect(False, f"rmse[{qt!r}] = {got:.5g}는 weights를 블록 64로 {qt} 왕복 양자화해 잰 RMSE가 아닙니다 "
                          "(모든 원소에 대해 sqrt(mean((Ŵ − W)²)), 행렬마다 따로 양자화)")
    expect(best is not None, "best에 오차가 가장 작은 형식의 이름을 넣으세요")
    expect(best in QUANT_TYPES_6_1, f"best는 {list(QUANT_TYPES_6_1)} 중 하나입니다 (받은 것: {best!r})")
    expect(best == min(QUANT_TYPES_6_1, key=truth.get), "여러분이 잰 RMSE에서 가장 작은 형식을 고르세요")


# ---------------------------------------------------------------------------------------------- 6.2 / 6.3
def _recomputed(estimate, model: str, method: str):
    """The memory calculator's estimate for ``model``/``method`` with the settings ``estimate`` carries."""
    from peftlab.analysis.memory import MemoryEstimate, estimate_training_memory

    expect(isinstance(estimate, MemoryEstimate), f"{model}/{method}: peftlab.analysis.memory의 MemoryEstimate를 넣으세요")
    expect(estimate.method == method, f"{model}: method가 {method!r}인 추정을 넣으세요 (받은 것: {estimate.method!r})")
    settings = {k: estimate.settings[k] for k in ESTIMATE_KEYS if k in estimate.settings}
    expect(len(settings) == len(ESTIMATE_KEYS), f"{model}/{method}: estimate_training_memory가 돌려준 그대로의 추정을 넣으세요")
    again = estimate_training_memory(model, method, target_modules=estimate.settings["targets"], **settings)
    expect(again.as_dict() == estimate.as_dict(),
           f"{model}/{method}: 이 추정은 계산기가 같은 설정으로 내는 값과 다릅니다 — 계산기의 결과를 그대로 쓰세요")
    return again


INGREDIENTS_6_2 = ("LoRA", "NF4", "double quant")


def _savings(estimates) -> dict[str, float]:
    from peftlab.analysis.memory import GiB

    expect(isinstance(estimates, dict) and all(k in estimates for k in ("full", "lora", "qlora", "qlora_no_dq")),
           "estimates에는 65B의 'full', 'lora', 'qlora'(이중 양자화), 'qlora_no_dq' 추정을 넣으세요")
    est = {k: _recomputed(estimates[k], "65B", "qlora" if k.startswith("qlora") else k) for k in estimates
           if k in ("full", "lora", "qlora", "qlora_no_dq")}
    expect(est["qlora"].settings["double_quant"] and not est["qlora_no_dq"].settings["double_quant"],
           "'qlora'는 double_quant=True, 'qlora_no_dq'는 double_quant=False로 추정하세요")
    same = {k: {s: v for s, v in e.settings.items() if s != "double_quant"} for k, e in est.items()}
    expect(all(v == same["qlora"] for v in same.values()),
           "네 추정은 이중 양자화 말고는 같은 설정(batch, seq, r, dtype, 대상 층)이어야 비교가 됩니다")
    return {"LoRA": (est["full"].total - est["lora"].total) / GiB,
            "NF4": (est["lora"].total - est["qlora_no_dq"].total) / GiB,
            "double quant": (est["qlora_no_dq"].total - est["qlora"].total) / GiB}


def model_bits(weights, double_quant: bool, quant_type: str = QUANT_TYPE) -> float:
    """Bits per weight of ``weights`` quantized matrix by matrix (blocks of 64): every stored byte × 8 / every weight."""
    from peftlab.quant import bits_per_param, quantize_4bit

    ws = [w.detach().float().cpu() for w in weights]
    return sum(bits_per_param(*quantize_4bit(w, quant_type=quant_type, double_quant=double_quant)) * w.numel()
               for w in ws) / sum(w.numel() for w in ws)


CONFIGS_6_2 = ("full", "lora", "qlora_no_dq", "qlora")


@checkpoint(WEEK, "6.2", points=1, title="What makes QLoRA work — bits per parameter, the GiB each ingredient saves, and 65B on one 48 GB GPU")
def q6_2(bits, saved_gib, fits_48, weights, estimates) -> None:
    from peftlab.quant import bits_per_param, quantize_4bit

    ws = _weight_list(weights)
    expect(isinstance(bits, dict) and all(k in bits for k in ("nf4", "nf4+dq")),
           "bits에는 {'nf4': …, 'nf4+dq': …} 두 값을 넣으세요")
    for k, dq in (("nf4", False), ("nf4+dq", True)):
        want = model_bits(ws, dq)
        got = _number(bits[k], f"bits[{k!r}]")
        expect(not math.isclose(got, 4.0, abs_tol=1e-9),
               f"bits[{k!r}] = 4는 코드만 센 것입니다: 블록 상수(absmax)도 파라미터마다 나눠 더하세요")
        if not math.isclose(got, want, rel_tol=1e-6):
            per = [bits_per_param(*quantize_4bit(w.detach().float().cpu(), double_quant=dq)) for w in ws]
            expect(not any(math.isclose(got, b, rel_tol=1e-6) for b in per),
                   f"bits[{k!r}]가 행렬 하나의 값입니다: weights의 모든 행렬을 양자화해 바이트를 모두 더하세요")
            expect(not math.isclose(got, sum(per) / len(per), rel_tol=1e-6),
                   f"bits[{k!r}]가 행렬별 값의 단순 평균입니다: 크기가 다른 행렬들이므로 바이트와 가중치 수를 각각 더한 뒤 나누세요")
            expect(False, f"bits[{k!r}] = {got:.4f}는 weights 전체를 {'이중 양자화와 함께' if dq else '이중 양자화 없이'} "
                          "NF4로 양자화해 센 값이 아닙니다: 저장된 모든 텐서의 바이트 합 × 8 / 전체 가중치 수")
    truth = _savings(estimates)
    expect(isinstance(saved_gib, dict) and all(k in saved_gib for k in INGREDIENTS_6_2),
           f"saved_gib에는 {list(INGREDIENTS_6_2)} 각각이 줄이는 GiB를 넣으세요")
    for k in INGREDIENTS_6_2:
        got = _number(saved_gib[k], f"saved_gib[{k!r}]")
        expect(math.isclose(got, truth[k], rel_tol=1e-3, abs_tol=1e-3),
               f"saved_gib[{k!r}] = {got:.2f}가 계산기의 차이({'full − lora' if k == 'LoRA' else 'lora − qlora_no_dq' if k == 'NF4' else 'qlora_no_dq − qlora'}"
               ", total, GiB)와 다릅니다")
    expect(isinstance(fits_48, dict) and set(fits_48) == set(CONFIGS_6_2),
           f"fits_48에는 {list(CONFIGS_6_2)} 각각이 48 GB GPU에 들어가는지 True/False를 넣으세요")
    for k in CONFIGS_6_2:
        expect(isinstance(fits_48[k], bool), f"fits_48[{k!r}]는 True/False입니다 (받은 것: {fits_48[k]!r})")
        expect(fits_48[k] == (estimates[k].total <= GPU_48GB),
               f"fits_48[{k!r}]: 추정의 total({estimates[k].total / 2**30:.2f} GiB)을 GPU_48GB(48 GiB)와 비교하세요")


METHOD_ORDER_6_3 = ("lora", "qlora")
VERDICTS_6_3 = ("qlora", "lora", "tie")


def decide(estimates_for_model: dict, gpu: str):
    """The rule of 6.3: 16-bit LoRA if its estimate fits ``gpu``, else QLoRA if it fits, else ``None`` (full
    fine-tuning needs more memory than LoRA, so where LoRA does not fit it does not either)."""
    for method in METHOD_ORDER_6_3:
        if estimates_for_model[method].fits()[gpu]:
            return method
    return None


def _lines(values, what: str):
    if isinstance(values, (list, tuple)) and values and all(isinstance(v, torch.Tensor) for v in values):
        expect(len({tuple(v.shape) for v in values}) == 1, f"{what}의 시드별 텐서는 shape가 같아야 합니다")
        values = torch.stack([v.detach().float().cpu() for v in values])
    expect(isinstance(values, torch.Tensor), f"{what}에는 시드마다 질문별 답 손실 텐서 (질문 수,)를 넣으세요")
    t = values.detach().float().cpu()
    t = t.unsqueeze(0) if t.dim() == 1 else t
    expect(t.dim() == 2 and t.shape[1] >= 2, f"{what}의 shape는 (시드 수, 질문 수)입니다 (받은 것: {tuple(values.shape)})")
    expect(bool(torch.isfinite(t).all()) and bool((t >= 0).all()), f"{what}는 유한한 손실(≥ 0, nats)이어야 합니다")
    return t


def verdict_6_3(test_lines: dict) -> tuple[str, object]:
    """The 6.3 verdict: :func:`paired_comparison` of QLoRA against LoRA on per-question answer losses (lower is
    better, min effect :data:`MIN_EFFECT_NATS`): "qlora", "lora" or "tie", with the result."""
    from peftlab.analysis.stats import paired_comparison

    expect(isinstance(test_lines, dict) and all(k in test_lines for k in ("LoRA", "QLoRA")),
           "test_lines에는 {'LoRA': [시드별 질문별 답 손실…], 'QLoRA': […]}를 넣으세요")
    a, b = _lines(test_lines["QLoRA"], "test_lines['QLoRA']"), _lines(test_lines["LoRA"], "test_lines['LoRA']")
    expect(a.shape == b.shape, "두 방법의 test_lines는 같은 시드, 같은 질문이어야 짝지어 비교할 수 있습니다 (shape가 같아야 함)")
    r = paired_comparison(a.numpy(), b.numpy(), min_effect=MIN_EFFECT_NATS, higher_is_better=False)
    return {"a": "qlora", "b": "lora", "tie": "tie"}[r.verdict], r


@checkpoint(WEEK, "6.3", points=1, title="When to choose QLoRA — your paired verdict on answer loss and the calculator's choices")
def q6_3(verdict, choices, test_lines, estimates) -> None:
    from peftlab.analysis.memory import GPUS

    right, r = verdict_6_3(test_lines)
    expect(verdict in VERDICTS_6_3, f"verdict는 {', '.join(repr(v) for v in VERDICTS_6_3)} 중 하나입니다 (받은 것: {verdict!r})")
    if verdict != right:
        ci = f"LoRA − QLoRA 손실 {r.diff:+.4f} nats, 95 % 신뢰구간 [{r.low:+.4f}, {r.high:+.4f}], 최소 효과 {MIN_EFFECT_NATS}"
        expect(False, f"verdict: {ci} — 손실은 낮을수록 좋습니다(higher_is_better=False). 구간이 0을 품지 않고 차이가 최소 효과 "
                      "이상일 때만 한쪽이 유의하게 낫습니다")
    expect(isinstance(estimates, dict) and estimates, "estimates에는 {모델: {'full': …, 'lora': …, 'qlora': …}}를 넣으세요")
    checked = {}
    for model, per in estimates.items():
        expect(isinstance(per, dict) and all(m in per for m in ("full", "lora", "qlora")),
               f"estimates[{model!r}]에는 'full', 'lora', 'qlora' 세 추정을 넣으세요")
        checked[model] = {m: _recomputed(per[m], model, m) for m in ("full", "lora", "qlora")}
    expect(isinstance(choices, dict), "choices에는 {(모델, GPU): 'lora' | 'qlora' | None}을 넣으세요")
    wanted = {(model, gpu) for model in checked for gpu in GPUS}
    expect(set(choices) == wanted, f"choices의 키는 모든 (모델, GPU) 쌍이어야 합니다: {sorted(wanted)}")
    for key in sorted(wanted):
        pick = choices[key]
        expect(pick != "full", f"choices[{key}] = 'full': 이 규칙은 16비트 LoRA와 QLoRA 사이에서 고릅니다 — "
                               "LoRA가 들어가는 곳에서 완전 미세조정을 쓸지는 다른 질문입니다")
        expect(pick is None or pick in METHOD_ORDER_6_3,
               f"choices[{key}]는 'lora', 'qlora' 또는 None입니다 (받은 것: {pick!r})")
        right = decide(checked[key[0]], key[1])
        if pick != right:
            if right is None:
                expect(False, f"choices[{key}]: 어느 방법도 이 GPU에 들어가지 않습니다 — None (더 큰 GPU, 여러 GPU, 또는 오프로딩)")
            expect(pick is None or checked[key[0]][pick].fits()[key[1]],
                   f"choices[{key}] = {pick!r}는 계산기로 이 GPU에 들어가지 않습니다")
            expect(False, f"choices[{key}] = {pick!r}: 규칙은 '16비트 LoRA가 들어가면 lora, 아니고 QLoRA가 들어가면 qlora'입니다")
