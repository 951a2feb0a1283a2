"""Week 06 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import math

import pytest
import torch

from peftlab.analysis.memory import GPUS, GiB, estimate_training_memory
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week06 as check
from peftlab.quant import bits_per_param, dequantize_4bit, quantize_4bit


def good_nf4(offset=0.9677083):
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1].double())
    levels = torch.cat([pos, torch.zeros(1, dtype=torch.float64), neg]).float().sort().values
    return levels / levels.max()


def symmetric_nf4(offset=0.9677083):
    half = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1].double())
    levels = torch.cat([half, -half]).float().sort().values
    return levels / levels.max()


def unnormalised_nf4(offset=0.9677083):
    return good_nf4(offset) * torch.special.ndtri(torch.tensor(offset, dtype=torch.float64)).float()


def log_scale(offset=0.9677083):
    pos = torch.logspace(-3, 0, 8, base=2)
    return torch.cat([-pos[1:].flip(0), torch.zeros(1), pos]).sort().values


def exact_delta_nf4(offset=0.9677083):
    return good_nf4(0.5 * ((1 - 1 / 30) + (1 - 1 / 32)))


def float32_ndtri(offset=0.9677083):
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9)[:-1])
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8)[:-1])
    levels = torch.cat([pos, torch.zeros(1), neg]).sort().values
    return levels / levels.max()


def _not_done(*args, **kwargs):
    raise NotImplementedError()


def _weights():
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(64, 96, generator=g) * 0.02, "b": torch.randn(32, 128, generator=g) * 0.05}


WEIGHTS = _weights()


def _rmse(ws, qt, double_quant=False):
    sq = sum((dequantize_4bit(*quantize_4bit(w, quant_type=qt, double_quant=double_quant)) - w).pow(2).sum().item()
             for w in ws.values())
    return math.sqrt(sq / sum(w.numel() for w in ws.values()))


RMSE = {qt: _rmse(WEIGHTS, qt) for qt in ("nf4", "fp4", "int4")}
BEST = min(RMSE, key=RMSE.get)

_gen = torch.Generator().manual_seed(1)
MODEL_W = {"q": torch.randn(96, 96, generator=_gen) * 0.02, "down": torch.randn(96, 256, generator=_gen) * 0.02}


def _bits(ws, dq):
    return sum(bits_per_param(*quantize_4bit(w, double_quant=dq)) * w.numel() for w in ws.values()) / sum(
        w.numel() for w in ws.values())


BITS = {"nf4": _bits(MODEL_W, False), "nf4+dq": _bits(MODEL_W, True)}
PER_MATRIX_DQ = [bits_per_param(*quantize_4bit(w, double_quant=True)) for w in MODEL_W.values()]
EST_62 = {"full": estimate_training_memory("65B", "full"), "lora": estimate_training_memory("65B", "lora"),
          "qlora_no_dq": estimate_training_memory("65B", "qlora", double_quant=False),
          "qlora": estimate_training_memory("65B", "qlora")}
T = {k: e.total / GiB for k, e in EST_62.items()}
SAVED = {"LoRA": T["full"] - T["lora"], "NF4": T["lora"] - T["qlora_no_dq"], "double quant": T["qlora_no_dq"] - T["qlora"]}
FITS_48 = {k: e.total <= check.GPU_48GB for k, e in EST_62.items()}

_lines_gen = torch.Generator().manual_seed(3)
LINES_LORA = [torch.rand(300, generator=_lines_gen) * 2 for _ in range(2)]
LINES_TIE = {"LoRA": LINES_LORA, "QLoRA": [t + 0.002 * torch.randn(300, generator=_lines_gen) for t in LINES_LORA]}
LINES_QLORA_WORSE = {"LoRA": LINES_LORA, "QLoRA": [t + 0.2 for t in LINES_LORA]}
EST_63 = {m: {k: estimate_training_memory(m, k) for k in ("full", "lora", "qlora")} for m in ("7B", "65B")}
CHOICES = {(m, g): check.decide(EST_63[m], g) for m in EST_63 for g in GPUS}


def test_all_week06_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("06:")}
    assert ids == {"E1", "6.1", "6.2", "6.3"}


@pytest.mark.parametrize("hidden", [False, True])
def test_correct_answers_pass(hidden, capsys):
    check.nf4_code(good_nf4, hidden=hidden)
    check.q6_1(RMSE, BEST, WEIGHTS)
    check.q6_2(BITS, SAVED, FITS_48, MODEL_W, EST_62)
    check.q6_3("tie", CHOICES, LINES_TIE, EST_63)
    check.q6_3("lora", CHOICES, LINES_QLORA_WORSE, EST_63)
    check.q6_3("qlora", CHOICES, {"LoRA": LINES_QLORA_WORSE["QLoRA"], "QLoRA": LINES_LORA}, EST_63)
    assert capsys.readouterr().out.count("공개 체크 통과") == 6


def test_the_paper_headline_65b_on_one_48gb_gpu_needs_double_quantization():
    assert FITS_48 == {"full": False, "lora": False, "qlora_no_dq": False, "qlora": True}
    check.q6_2(BITS, SAVED, FITS_48, MODEL_W, EST_62)
    # a shorter sequence fits without double quantization too: the answer follows the estimates given
    short = {k: (estimate_training_memory("65B", "qlora", seq=64, double_quant=k == "qlora") if k.startswith("qlora")
                 else estimate_training_memory("65B", k, seq=64)) for k in EST_62}
    tot = {k: e.total / GiB for k, e in short.items()}
    saved = {"LoRA": tot["full"] - tot["lora"], "NF4": tot["lora"] - tot["qlora_no_dq"], "double quant": tot["qlora_no_dq"] - tot["qlora"]}
    fits = {k: e.total <= check.GPU_48GB for k, e in short.items()}
    assert fits["qlora_no_dq"]
    check.q6_2(BITS, saved, fits, MODEL_W, short)
    with pytest.raises(CheckFailed, match="fits_48\\['qlora_no_dq'\\]"):
        check.q6_2(BITS, saved, FITS_48, MODEL_W, short)


def test_exercise_e1_cannot_use_the_kit_or_a_fixed_table():
    import bitsandbytes.functional as bnbf

    import peftlab

    with pytest.raises(CheckFailed, match="참조 구현"):
        check.nf4_code(lambda offset: peftlab.quant.nf4_code(offset))
    with pytest.raises(CheckFailed, match="참조 구현"):
        check.nf4_code(lambda offset: peftlab.quant.code_book("nf4").sort().values)
    with pytest.raises(CheckFailed, match="offset"):
        check.nf4_code(lambda offset: bnbf.get_4bit_type("nf4", device="cpu"))


def test_the_nf4_check_compares_with_bitsandbytes():
    bnbf = pytest.importorskip("bitsandbytes.functional")
    assert torch.equal(check._bnb_nf4(), bnbf.get_4bit_type("nf4", device="cpu"))
    assert torch.equal(good_nf4(), check._bnb_nf4())


def test_answers_follow_the_measurements():
    # 6.1: the best type is the smallest RMSE of the weights given — shrink one type's error by flipping roles
    assert BEST == "nf4"
    uniform = {"u": torch.linspace(-1, 1, 64 * 32).view(32, 64)}  # uniform data: INT4's even grid is exact-ish
    rm = {qt: _rmse(uniform, qt) for qt in ("nf4", "fp4", "int4")}
    assert min(rm, key=rm.get) == "int4"
    check.q6_1(rm, "int4", uniform)
    with pytest.raises(CheckFailed, match="가장 작은"):
        check.q6_1(rm, "nf4", uniform)
    # 6.3: the verdicts come from the estimates: a table from bigger batches changes some of them
    big = {m: {k: estimate_training_memory(m, k, batch=8) for k in ("full", "lora", "qlora")} for m in ("7B", "65B")}
    verdicts = {(m, g): check.decide(big[m], g) for m in big for g in GPUS}
    assert verdicts != CHOICES
    check.q6_3("tie", verdicts, LINES_TIE, big)
    with pytest.raises(CheckFailed):
        check.q6_3("tie", CHOICES, LINES_TIE, big)
    assert CHOICES[("65B", "T4 16 GB")] is None and CHOICES[("7B", "T4 16 GB")] == "qlora"
    assert CHOICES[("7B", "A100/H100 80 GB")] == "lora"  # 16-bit LoRA fits: QLoRA is not needed there
    # 6.3: the verdict comes from the losses given — a difference below the minimum effect is a tie
    small = {"LoRA": LINES_LORA, "QLoRA": [t + 0.005 for t in LINES_LORA]}
    assert check.verdict_6_3(small)[0] == "tie"
    check.q6_3("tie", CHOICES, small, EST_63)


@pytest.mark.parametrize(
    "call, hint",
    [
        (lambda: check.nf4_code(_not_done), "NotImplementedError"),
        (lambda: check.nf4_code(lambda offset: good_nf4(offset)[:15]), "16개"),
        (lambda: check.nf4_code(lambda offset: good_nf4(offset).flip(0)), "오름차순"),
        (lambda: check.nf4_code(symmetric_nf4), "비대칭"),
        (lambda: check.nf4_code(unnormalised_nf4), "정규화"),
        (lambda: check.nf4_code(log_scale), "bitsandbytes의 NF4와 다릅니다"),
        (lambda: check.nf4_code(exact_delta_nf4), "0.9677083"),
        (lambda: check.nf4_code(float32_ndtri), "비트 단위로"),
        (lambda: check.nf4_code(lambda offset: good_nf4(offset).tolist()), "torch.Tensor"),
        (lambda: check.q6_1(None, BEST, WEIGHTS), "rmse"),
        (lambda: check.q6_1({k: v**2 for k, v in RMSE.items()}, BEST, WEIGHTS), "MSE"),
        (lambda: check.q6_1({qt: _rmse(WEIGHTS, qt, True) for qt in RMSE}, BEST, WEIGHTS), "double_quant"),
        (lambda: check.q6_1({**RMSE, "fp4": RMSE["fp4"] * 1.1}, BEST, WEIGHTS), "rmse['fp4']"),
        (lambda: check.q6_1(RMSE, "fp4", WEIGHTS), "가장 작은"),
        (lambda: check.q6_1(RMSE, "NF4!", WEIGHTS), "중 하나"),
        (lambda: check.q6_1(RMSE, BEST, None), "weights"),
        (lambda: check.q6_2(None, SAVED, FITS_48, MODEL_W, EST_62), "bits"),
        (lambda: check.q6_2({"nf4": 4.0, "nf4+dq": 4.0}, SAVED, FITS_48, MODEL_W, EST_62), "블록 상수"),
        (lambda: check.q6_2({"nf4": 4.5, "nf4+dq": PER_MATRIX_DQ[1]}, SAVED, FITS_48, MODEL_W, EST_62), "행렬 하나"),
        (lambda: check.q6_2({"nf4": 4.5, "nf4+dq": sum(PER_MATRIX_DQ) / 2}, SAVED, FITS_48, MODEL_W, EST_62), "단순 평균"),
        (lambda: check.q6_2({"nf4": 4.5, "nf4+dq": 4.127}, SAVED, FITS_48, MODEL_W, EST_62), "weights 전체"),
        (lambda: check.q6_2(BITS, SAVED, FITS_48, None, EST_62), "weights"),
        (lambda: check.q6_2(BITS, {**SAVED, "NF4": SAVED["NF4"] + 5}, FITS_48, MODEL_W, EST_62), "saved_gib['NF4']"),
        (lambda: check.q6_2(BITS, SAVED, {**FITS_48, "qlora_no_dq": True}, MODEL_W, EST_62), "fits_48['qlora_no_dq']"),
        (lambda: check.q6_2(BITS, SAVED, {**FITS_48, "qlora": 1}, MODEL_W, EST_62), "True/False"),
        (lambda: check.q6_2(BITS, SAVED, "qlora", MODEL_W, EST_62), "fits_48"),
        (lambda: check.q6_2(BITS, SAVED, FITS_48, MODEL_W, {**EST_62, "qlora": EST_62["qlora_no_dq"]}), "double_quant=True"),
        (lambda: check.q6_2(BITS, SAVED, FITS_48, MODEL_W,
                            {**EST_62, "lora": estimate_training_memory("65B", "lora", seq=1024)}), "같은 설정"),
        (lambda: check.q6_2(BITS, SAVED, FITS_48, MODEL_W, {**EST_62, "full": estimate_training_memory("13B", "full")}),
         "계산기"),
        (lambda: check.q6_3(None, CHOICES, LINES_TIE, EST_63), "verdict"),
        (lambda: check.q6_3("qlora", CHOICES, LINES_TIE, EST_63), "신뢰구간"),
        (lambda: check.q6_3("qlora", CHOICES, LINES_QLORA_WORSE, EST_63), "낮을수록"),
        (lambda: check.q6_3("tie", CHOICES, {"LoRA": LINES_LORA, "QLoRA": [t[:100] for t in LINES_LORA]}, EST_63), "shape"),
        (lambda: check.q6_3("tie", CHOICES, {"LoRA": LINES_LORA}, EST_63), "test_lines"),
        (lambda: check.q6_3("tie", {k: v and "qlora" for k, v in CHOICES.items()}, LINES_TIE, EST_63), "16비트 LoRA가 들어가면"),
        (lambda: check.q6_3("tie", {**CHOICES, ("7B", "A100/H100 80 GB"): "full"}, LINES_TIE, EST_63), "다른 질문"),
        (lambda: check.q6_3("tie", {**CHOICES, ("7B", "T4 16 GB"): "lora"}, LINES_TIE, EST_63), "들어가지 않습니다"),
        (lambda: check.q6_3("tie", {**CHOICES, ("65B", "T4 16 GB"): "qlora"}, LINES_TIE, EST_63), "None"),
        (lambda: check.q6_3("tie", dict(list(CHOICES.items())[:2]), LINES_TIE, EST_63), "모든 (모델, GPU)"),
    ],
)
def test_typical_mistakes_fail_with_a_hint(call, hint):
    with pytest.raises(CheckFailed) as info:
        call()
    assert hint in str(info.value), str(info.value)
