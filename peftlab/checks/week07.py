"""Checks for Week 07 — a fair comparison of every method (``solutions/07_compare.ipynb``).

Exercises (the student writes code or picks statements):
  E1  ``paired_summary(records, a, b)`` → ``{"n", "mean", "std", "se"}`` of the per-seed differences a − b
      of the metric, paired by seed over the cells both methods finished (compared with
      :func:`peftlab.analysis.stats.paired_difference` on the stored comparison and on hidden records)
  E2  the flaws of the lecture's ``PEFTComparison``: the letters of the statements that are real flaws
Checkpoint questions of the lecture's "실제 응용" part, each on the student's comparison records:
  7.1 LoRA or DoRA: per training-set size the verdict of the paired difference (DoRA, LoRA or a tie the
      seeds cannot resolve), and what DoRA costs over LoRA (medians: seconds per step, peak memory)
  7.2 what matters when implementing QLoRA: QLoRA/LoRA ratios of the medians, and which statements hold —
      three of them decided by the student's own measurements
  7.3 how to design a fair comparison: the observed DoRA − LoRA paired gap, and the seeds a paired
      comparison would need to resolve a gap of that size with the observed spread
"""

from __future__ import annotations

import math
import random

from peftlab.analysis.stats import paired_difference, seeds_needed, verdict
from peftlab.checks._core import checkpoint, expect
from peftlab.checks._core import number as _number

WEEK = "07"

__all__ = ["paired_summary", "flaws", "q7_1", "q7_2", "q7_3", "FLAWS_E2", "STATEMENTS_7_2", "SIZES_7_1"]

# ---------------------------------------------------------------------------------------------- E1
def _fake_records(seed: int) -> list[dict]:
    """Cells of two methods with a failed cell, a seed only one method finished, and a shuffled order."""
    rng = random.Random(seed)
    recs = []
    for s in range(6):
        base = rng.uniform(0.80, 0.95)
        recs.append({"method": "a", "seed": s, "status": "ok", "value": base + rng.uniform(-0.01, 0.03)})
        recs.append({"method": "b", "seed": s, "status": "ok", "value": base})
    recs.append({"method": "a", "seed": 6, "status": "ok", "value": 0.99})  # b has no seed 6
    recs.append({"method": "b", "seed": 7, "status": "error", "error": "RuntimeError: boom"})
    recs.append({"method": "a", "seed": 7, "status": "ok", "value": 0.10})
    recs.append({"method": "c", "seed": 0, "status": "ok", "value": 0.50})
    rng.shuffle(recs)
    return recs


@checkpoint(WEEK, "E1", points=2, title="Paired differences of two methods over seeds")
def paired_summary(fn, records, hidden: bool = False) -> None:
    cases = [(records, "dora", "lora")]
    if hidden:
        cases += [(_fake_records(1), "a", "b"), (_fake_records(2), "b", "a")]
    else:
        cases += [(_fake_records(0), "a", "b")]
    for recs, a, b in cases:
        want = paired_difference(recs, a, b)
        got = fn(recs, a, b)
        expect(isinstance(got, dict) and all(k in got for k in ("n", "mean", "std", "se")),
               "{'n': …, 'mean': …, 'std': …, 'se': …} 사전을 반환하세요")
        n = got["n"]
        expect(isinstance(n, int) and not isinstance(n, bool),
               f"n은 정수(두 방법이 모두 끝낸 시드 수)여야 합니다 (받은 것: {n!r})")
        expect(n == want["n"], f"n = {n}: 두 방법이 모두 끝낸(status == 'ok') 시드는 {want['n']}개입니다 — 실패한 셀과 "
                               "한쪽에만 있는 시드는 빼고 짝지으세요")
        mean = _number(got["mean"], "mean")
        sa = [r["value"] for r in recs if r.get("method") == a and r.get("status") == "ok"]
        sb = [r["value"] for r in recs if r.get("method") == b and r.get("status") == "ok"]
        if math.isclose(mean, -want["mean"], abs_tol=1e-9) and want["mean"] != 0:
            expect(False, f"부호가 반대입니다: mean은 {a!r} − {b!r} (첫 번째 방법에서 두 번째를 뺀 값)")
        expect(math.isclose(mean, want["mean"], abs_tol=1e-9),
               "mean은 같은 시드끼리 짝지은 차이의 평균입니다 — 레코드 순서가 아니라 seed로 짝지으세요"
               + (" (모든 셀의 평균 차이를 쓴 것 같습니다)"
                  if math.isclose(mean, sum(sa) / len(sa) - sum(sb) / len(sb), abs_tol=1e-9) else ""))
        std = _number(got["std"], "std")
        diffs = list(want["diffs"].values())
        population = math.sqrt(sum((d - want["mean"]) ** 2 for d in diffs) / len(diffs))
        if not math.isclose(want["std"], population, rel_tol=1e-6):
            expect(not math.isclose(std, population, rel_tol=1e-6),
                   "std는 표본 표준편차입니다: n − 1로 나누세요 (n으로 나누면 시드가 적을 때 흩어짐을 작게 봅니다)")
        expect(math.isclose(std, want["std"], rel_tol=1e-6, abs_tol=1e-12),
               "std는 짝지은 차이들의 표본 표준편차(n − 1로 나눔)입니다 — 두 방법 각각의 표준편차가 아닙니다")
        se = _number(got["se"], "se")
        expect(math.isclose(se, want["se"], rel_tol=1e-6, abs_tol=1e-12), "se = std / √n (표준오차)입니다")


# ---------------------------------------------------------------------------------------------- E2
#: statements about the lecture's PEFTComparison code; the real flaws are ``_FLAW_KEY``
FLAWS_E2 = {
    "a": "메모리를 학습 전후 process RSS의 차이로 잰다 (최댓값이 아니고, 방법의 텐서만도 아니다)",
    "b": "시드 하나로 한 번만 돌린다",
    "c": "과제 지표(정확도 등)를 재지 않는다",
    "d": "학습 시간에 모델 로딩(from_pretrained)이 들어간다",
    "e": "시간 안에 Trainer 준비와 체크포인트 저장(기본값: 500 스텝마다)이 함께 들어간다",
    "f": "LoraConfig에 task_type이 없어 새 분류 헤드(classifier)가 무작위 초기값 그대로 동결된다",
    "g": "apply_dora_to_model은 기본 모델을 동결하지 않아, 'DoRA' 실행이 사실상 완전 미세조정이다",
    "h": "DoRALayer는 DoRA가 아니다: 크기 벡터를 가중치 열의 노름 대신 출력에 곱한다",
    "i": "모든 방법이 같은 학습률(TrainingArguments 기본값 5e-5)로, 방법별 조정 없이 학습한다",
    "j": "LoRA와 DoRA의 스케일 α/r이 다르다",
    "k": "LoRA와 DoRA가 서로 다른 target_modules에 붙는다",
    "l": "학습 가능한 파라미터를 requires_grad로 세는 것은 잘못이다",
}
_FLAW_KEY = frozenset("abcefghi")
_NOT_FLAWS = {
    "d": "d: start_time은 from_pretrained와 get_peft_model이 끝난 뒤에 잽니다 — 코드를 다시 읽어 보세요",
    "j": "j: LoRA는 r=8, lora_alpha=32, DoRA는 rank=8에 alpha 기본값 32 — α/r은 둘 다 4입니다",
    "k": "k: target_modules를 주지 않은 LoraConfig에 peft는 BERT의 기본값 {'query', 'value'}를 채웁니다 — 위 셀의 출력",
    "l": "l: requires_grad로 세는 것은 맞는 방법입니다 (peft의 print_trainable_parameters도 그렇게 셉니다)",
}


@checkpoint(WEEK, "E2", points=2, title="The flaws of the lecture's PEFTComparison")
def flaws(letters) -> None:
    expect(letters is not None, f"결함인 문장의 글자를 집합으로 넣으세요, 예: {{'a', 'c'}} (고를 수 있는 것: {', '.join(FLAWS_E2)})")
    if isinstance(letters, str):
        letters = [c for c in letters.replace(",", " ").split() if c] if len(letters.strip()) > 1 else [letters]
    expect(isinstance(letters, (set, frozenset, list, tuple)), f"글자의 집합을 넣으세요 (받은 것: {type(letters).__name__})")
    picked = {str(c).strip().lower() for c in letters}
    unknown = sorted(picked - set(FLAWS_E2))
    expect(not unknown, f"모르는 글자: {unknown} (고를 수 있는 것: {', '.join(FLAWS_E2)})")
    wrong = sorted(picked - _FLAW_KEY)
    expect(not wrong, "결함이 아닌 것을 골랐습니다 — " + "; ".join(_NOT_FLAWS[c] for c in wrong))
    missing = len(_FLAW_KEY - picked)
    expect(missing == 0, f"진짜 결함이 {missing}개 더 있습니다: 위의 측정 셀들(RSS, 학습 가능한 파라미터, DoRA 층)과 "
                         "타이머 위치를 다시 보세요")


# ---------------------------------------------------------------------------------------------- 7.1
SIZES_7_1 = ("100", "1000", "all")
VERDICTS_7_1 = ("dora", "lora", "tie")


def _medians(records, method: str) -> dict:
    from peftlab.compare import summarize

    rows = {r["method"]: r for r in summarize(records)}
    expect(method in rows, f"레코드에 {method!r}의 셀이 없습니다")
    return rows[method]


def _ratio(records, a: str, b: str, key: str) -> float:
    return float(_medians(records, a)[key]) / float(_medians(records, b)[key])


@checkpoint(WEEK, "7.1", points=2, title="LoRA or DoRA — the paired verdict per training-set size, and DoRA's cost")
def q7_1(choice, cost, runs) -> None:
    expect(isinstance(runs, dict) and set(runs) == set(SIZES_7_1),
           f"runs에는 학습 예시 수별 레코드 {{{', '.join(repr(s) for s in SIZES_7_1)}}}를 넣으세요")
    expect(isinstance(choice, dict) and set(choice) == set(SIZES_7_1),
           f"choice_7_1의 키는 {', '.join(repr(s) for s in SIZES_7_1)}입니다")
    for size in SIZES_7_1:
        pick = choice[size]
        expect(pick in VERDICTS_7_1, f"choice_7_1[{size!r}]는 'dora', 'lora', 'tie' 중 하나입니다 (받은 것: {pick!r})")
        diff = paired_difference(runs[size], "dora", "lora")
        right = verdict(diff, "dora", "lora")
        if pick != right:
            if right == "tie":
                expect(False, f"choice_7_1[{size!r}]: 평균 차이 {diff['mean']:+.4f}는 t·se = 표준오차의 t배 안쪽입니다 — "
                              "이 시드들로는 두 방법을 가를 수 없습니다 ('tie')")
            expect(False, f"choice_7_1[{size!r}]: 짝지은 차이 {diff['mean']:+.4f} (se {diff['se']:.4f})는 "
                          "t·se보다 큽니다 — 시드들이 가르는 쪽을 고르세요")
    expect(isinstance(cost, dict) and all(k in cost for k in ("time", "memory")),
           "cost_7_1에는 {'time': …, 'memory': …} (DoRA / LoRA, 전체 데이터 비교의 중앙값)을 넣으세요")
    for key, column in (("time", "seconds_per_step"), ("memory", "peak_memory_bytes")):
        want = _ratio(runs["all"], "dora", "lora", column)
        got = _number(cost[key], f"cost_7_1[{key!r}]")
        expect(not math.isclose(got, 1 / want, rel_tol=1e-6) or math.isclose(want, 1, rel_tol=1e-6),
               f"cost_7_1[{key!r}]가 뒤집혔습니다: DoRA / LoRA")
        expect(math.isclose(got, want, rel_tol=1e-6),
               f"cost_7_1[{key!r}]는 summarize(runs['all'])의 {column} 중앙값의 DoRA / LoRA 비입니다")


# ---------------------------------------------------------------------------------------------- 7.2
STATEMENTS_7_2 = {
    "a": "이 비교(tiny, CPU)에서 QLoRA의 최대 메모리(중앙값)가 LoRA보다 작았다",
    "b": "이 비교(tiny, CPU)에서 QLoRA의 학습 스텝(중앙값)이 LoRA보다 빨랐다",
    "c": "QLoRA 어댑터 파일은 LoRA 어댑터 파일과 크기가 같다 (5 % 안): 4비트가 되는 것은 동결된 기본 가중치뿐이다",
    "d": "bf16을 지원하지 않는 GPU(T4 등)에서는 계산 dtype을 fp16으로, A100/H100에서는 bf16으로 둔다",
    "e": "학습한 LoRA를 NF4 가중치에 병합하면 손실 없이 4비트 모델이 된다",
    "f": "이중 양자화는 블록 상수(absmax)를 다시 양자화해 파라미터당 약 0.37비트를 아낀다",
    "g": "QLoRA에서는 LoRA 행렬 A, B도 NF4로 저장되고 학습된다",
}


@checkpoint(WEEK, "7.2", points=2, title="What matters when implementing QLoRA — measured ratios and statements")
def q7_2(ratios, statements, records) -> None:
    expect(isinstance(ratios, dict) and all(k in ratios for k in ("memory", "time", "adapter_bytes")),
           "ratios_7_2에는 {'memory': …, 'time': …, 'adapter_bytes': …} (QLoRA / LoRA 중앙값)를 넣으세요")
    want = {}
    for key, column in (("memory", "peak_memory_bytes"), ("time", "seconds_per_step"), ("adapter_bytes", "adapter_bytes")):
        want[key] = _ratio(records, "qlora", "lora", column)
        got = _number(ratios[key], f"ratios_7_2[{key!r}]")
        expect(not math.isclose(got, 1 / want[key], rel_tol=1e-6) or math.isclose(want[key], 1, rel_tol=1e-6),
               f"ratios_7_2[{key!r}]가 뒤집혔습니다: QLoRA / LoRA")
        expect(math.isclose(got, want[key], rel_tol=1e-6),
               f"ratios_7_2[{key!r}]는 summarize(records)의 {column} 중앙값의 QLoRA / LoRA 비입니다")
    expect(statements is not None and isinstance(statements, (set, frozenset, list, tuple, str)),
           f"statements_7_2에는 맞는 문장의 글자 집합을 넣으세요 (고를 수 있는 것: {', '.join(STATEMENTS_7_2)})")
    picked = {str(c).strip().lower() for c in statements if str(c).strip()}
    unknown = sorted(picked - set(STATEMENTS_7_2))
    expect(not unknown, f"모르는 글자: {unknown}")
    truth = {"a": want["memory"] < 1, "b": want["time"] < 1, "c": abs(want["adapter_bytes"] - 1) < 0.05,
             "d": True, "e": False, "f": True, "g": False}
    measured = {"a": "memory", "b": "time", "c": "adapter_bytes"}
    for letter in sorted(STATEMENTS_7_2):
        if (letter in picked) != truth[letter]:
            if letter in measured:
                expect(False, f"{letter}: 여러분의 ratios_7_2[{measured[letter]!r}] = {want[measured[letter]]:.3f}로 판단하세요")
            reason = {"d": "d: T4(Turing)에는 bf16 연산이 없어 fp16을 씁니다 (6주차)",
                      "e": "e: 병합한 가중치를 다시 NF4로 양자화하면 반올림 오차가 생깁니다 — 손실 없는 병합이 아닙니다",
                      "f": "f: 블록 64개마다 fp32 상수 32비트 = 0.5비트/파라미터 → 8비트 상수 + 두 번째 상수로 약 0.127비트",
                      "g": "g: A, B는 16/32비트로 학습됩니다 — 양자화되는 것은 동결된 기본 가중치뿐"}[letter]
            expect(False, ("골라야 할 문장을 빠뜨렸습니다 — " if truth[letter] else "틀린 문장을 골랐습니다 — ") + reason)


# ---------------------------------------------------------------------------------------------- 7.3
@checkpoint(WEEK, "7.3", points=1, title="Designing a fair comparison — seeds needed to resolve the DoRA − LoRA gap")
def q7_3(seeds, gap, records) -> None:
    diff = paired_difference(records, "dora", "lora")
    got_gap = _number(gap, "gap_7_3")
    expect(not math.isclose(got_gap, -diff["mean"], abs_tol=1e-9) or diff["mean"] == 0,
           "gap_7_3의 부호가 반대입니다: DoRA − LoRA")
    expect(math.isclose(got_gap, diff["mean"], abs_tol=1e-9),
           "gap_7_3은 전체 데이터 실행에서 DoRA − LoRA의 짝지은 평균 차이입니다 (paired_summary의 mean)")
    want = seeds_needed(diff["mean"], diff["std"]) if math.isfinite(diff["std"]) else None
    if want is None:
        expect(seeds is None, "이 차이는 1000개 시드로도 가를 수 없습니다(또는 정확히 0): None을 넣으세요")
        return
    expect(seeds is not None, "seeds_7_3에 필요한 시드 수(정수)를 넣으세요")
    expect(isinstance(seeds, int) and not isinstance(seeds, bool), f"seeds_7_3은 정수입니다 (받은 것: {seeds!r})")
    normal = max(2, math.ceil((1.96 * diff["std"] / abs(diff["mean"])) ** 2))
    if seeds == normal and normal != want:
        expect(False, "1.96(정규분포)을 썼습니다: 시드가 적을 때는 t_{0.975, n−1}을 씁니다 (stats.t_critical)")
    expect(seeds == want, f"seeds_7_3 = {seeds}: |평균 차이| > t_(0.975, n−1) · std / √n 을 만족하는 가장 작은 n ≥ 2를 찾으세요")
