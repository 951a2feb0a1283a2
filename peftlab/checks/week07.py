"""Checks for Week 07 — a fair comparison of every method (``solutions/07_compare.ipynb``).

Exercises, in the order the notebook asks them:
  E1  the flaws of the lecture's ``PEFTComparison``: the letters of the statements that are real flaws
  E2  ``paired_interval(a, b, reps, seed)`` → ``(diff, low, high)``: the mean paired difference of two methods'
      per-example scores on one seed's test examples and its 95 % paired bootstrap interval (resampling test
      examples, a and b together), compared with the normal-approximation interval of the same difference
Checkpoint questions of the lecture's "실제 응용" part, each on comparison records:
  7.1 LoRA or DoRA: per training-set size — and on the student's own three-seed run ("mine") — the verdict of
      :func:`peftlab.analysis.stats.paired_comparison` (DoRA, LoRA, or a tie), and what DoRA costs over LoRA
      (medians: seconds per step, peak memory) with whether the time ratio leaves the timing noise floor
  7.2 what matters when implementing QLoRA: QLoRA/LoRA ratios of the medians, and which statements hold —
      three of them decided by the measurements (the time statement against the noise floor)
  7.3 how to design a fair comparison: a power calculation — the DoRA/LoRA disagreement rate and the test
      examples a paired comparison needs to detect a 1-point difference with 80 % power
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from peftlab.analysis.stats import paired_comparison, sample_size
from peftlab.checks._core import answer_key, checkpoint, expect
from peftlab.checks._core import number as _number

WEEK = "07"

__all__ = ["paired_interval", "flaws", "my_seeds", "verdict_dora_lora", "q7_1", "q7_2", "q7_3", "FLAWS_E1", "MIN_EFFECT",
           "MIN_EFFECT_7_3", "STATEMENTS_7_2", "SIZES_7_1"]

#: the smallest difference in accuracy the course calls a difference (half a point)
MIN_EFFECT = 0.005
#: the minimum effect of interest of the 7.3 power calculation (one point of accuracy)
MIN_EFFECT_7_3 = 0.01


def my_seeds(student_id, n: int = 3) -> list[int]:
    """``n`` distinct seeds in 1000 … 99999 derived from a student number: every student trains other seeds
    (none of them the stored comparisons' 0, 1, 2 or the tuning seeds 100, 101)."""
    if student_id is None or not str(student_id).strip():
        raise ValueError("student_id: 학번(또는 아무 문자열)을 넣으세요, 예: STUDENT_ID = '2026123456'")
    out: list[int] = []
    k = 0
    while len(out) < n:
        h = int(hashlib.sha256(f"{str(student_id).strip()}:{k}".encode()).hexdigest(), 16)
        seed = 1000 + h % 99000
        if seed not in out:
            out.append(seed)
        k += 1
    return out


def _per_example(records, method: str) -> tuple[list[int], np.ndarray]:
    from peftlab.compare import per_example_scores

    return per_example_scores(records, method)


def _dora_lora(records):
    sd, a = _per_example(records, "dora")
    sl, b = _per_example(records, "lora")
    expect(sd == sl, f"DoRA(시드 {sd})와 LoRA(시드 {sl})가 끝낸 시드가 다릅니다: 같은 시드끼리만 짝지을 수 있습니다")
    return a, b


# ---------------------------------------------------------------------------------------------- E2
def _agreeing_pair(n: int, acc_b: float, disagree: float, diff: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two 0/1 score vectors that disagree on ``disagree`` of the examples with mean(a) − mean(b) = diff."""
    rng = np.random.default_rng(seed)
    b = (rng.random(n) < acc_b).astype(float)
    a = b.copy()
    k = int(round(disagree * n))
    up = int(round((k + diff * n) / 2))  # a right where b is wrong
    wrong, right = np.flatnonzero(b == 0), np.flatnonzero(b == 1)
    a[rng.choice(wrong, size=min(up, len(wrong)), replace=False)] = 1
    a[rng.choice(right, size=min(k - up, len(right)), replace=False)] = 0
    return a, b


@checkpoint(WEEK, "E2", points=2, title="A paired bootstrap interval over test examples", reference=("peftlab.analysis.stats:paired_comparison",))
def paired_interval(fn, records, hidden: bool = False) -> None:
    a_all, b_all = _dora_lora(records)
    cases = [(a_all[0], b_all[0])]
    cases += [_agreeing_pair(2000, 0.9, 0.04, 0.01, 1), _agreeing_pair(500, 0.7, 0.2, -0.03, 2)]
    if hidden:
        cases += [_agreeing_pair(1500, 0.95, 0.03, 0.0, 3), _agreeing_pair(800, 0.6, 0.3, 0.05, 4)]
    for a, b in cases:
        d = a - b
        n = len(d)
        want = float(d.mean())
        half = 1.96 * float(d.std(ddof=1)) / math.sqrt(n)
        got = fn(a.copy(), b.copy(), reps=2000, seed=0)
        expect(isinstance(got, (tuple, list)) and len(got) == 3, "(diff, low, high) 세 수를 튜플로 반환하세요")
        diff, low, high = (_number(v, name) for v, name in zip(got, ("diff", "low", "high"), strict=True))
        expect(not (math.isclose(diff, -want, abs_tol=1e-9) and want != 0), "부호가 반대입니다: diff = mean(a − b)")
        expect(math.isclose(diff, want, abs_tol=1e-9), f"diff는 예시별 차이 a − b의 평균입니다 ({want:+.4f})")
        expect(low <= diff <= high, f"구간 [{low:+.4f}, {high:+.4f}]이 diff {diff:+.4f}를 품지 않습니다: low ≤ diff ≤ high")
        width = (high - low) / 2
        unpaired = 1.96 * math.sqrt(a.var(ddof=1) / n + b.var(ddof=1) / n)
        if half > 0 and abs(width - unpaired) < 0.1 * unpaired and abs(unpaired - half) > 0.3 * half:
            expect(False, "a와 b를 따로 다시 뽑았습니다(대응표본이 아님): 같은 예시 번호를 a와 b에 함께 쓰세요 — "
                          "두 방법이 함께 맞히고 함께 틀리는 예시의 흔들림이 상쇄되어야 합니다")
        if half > 0 and abs(width - half / 1.96) < 0.15 * half / 1.96:
            expect(False, "구간의 반폭이 표준오차 하나입니다: 95 % 구간은 재표본 평균들의 2.5 %와 97.5 % 분위수입니다")
        expect(abs(low - (want - half)) <= 0.15 * half + 2e-4 and abs(high - (want + half)) <= 0.15 * half + 2e-4,
               f"구간 [{low:+.4f}, {high:+.4f}]: 기대는 약 [{want - half:+.4f}, {want + half:+.4f}] — 예시 번호를 복원추출로 "
               "n개 뽑아 그 예시들의 a − b 평균을 reps번 구하고, 그 평균들의 2.5 %, 97.5 % 분위수를 쓰세요")


# ---------------------------------------------------------------------------------------------- E1
#: statements about the lecture's PEFTComparison code; which are real flaws is an answer key (``_keys.py``)
FLAWS_E1 = {
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


@checkpoint(WEEK, "E1", points=2, title="The flaws of the lecture's PEFTComparison")
def flaws(letters) -> None:
    expect(letters is not None, f"결함인 문장의 글자를 집합으로 넣으세요, 예: {{'a', 'c'}} (고를 수 있는 것: {', '.join(FLAWS_E1)})")
    if isinstance(letters, str):
        letters = [c for c in letters.replace(",", " ").split() if c] if len(letters.strip()) > 1 else [letters]
    expect(isinstance(letters, (set, frozenset, list, tuple)), f"글자의 집합을 넣으세요 (받은 것: {type(letters).__name__})")
    picked = {str(c).strip().lower() for c in letters}
    unknown = sorted(picked - set(FLAWS_E1))
    expect(not unknown, f"모르는 글자: {unknown} (고를 수 있는 것: {', '.join(FLAWS_E1)})")
    expect(picked, "결함인 문장을 하나 이상 고르세요")
    key = answer_key(WEEK, "E1")
    # the feedback says how many picks are wrong or missing, never which: the letters can't be searched one by one
    expect(key is None or picked == key,
           f"고른 {len(picked)}개가 결함의 집합과 같지 않습니다 — 각 문장을 위의 측정 셀(RSS, 학습 가능한 파라미터, "
           "DoRA 층, 타이머 위치, 학습률)과 다시 맞춰 보세요")


# ---------------------------------------------------------------------------------------------- 7.1
SIZES_7_1 = ("100", "1000", "all", "mine")
VERDICTS_7_1 = ("dora", "lora", "tie")


def _medians(records, method: str) -> dict:
    from peftlab.compare import summarize

    rows = {r["method"]: r for r in summarize(records)}
    expect(method in rows, f"레코드에 {method!r}의 셀이 없습니다")
    return rows[method]


def _ratio(records, a: str, b: str, key: str) -> float:
    return float(_medians(records, a)[key]) / float(_medians(records, b)[key])


def verdict_dora_lora(records) -> tuple[str, object]:
    """The 7.1 verdict: :func:`paired_comparison` of DoRA and LoRA (min effect :data:`MIN_EFFECT`)."""
    a, b = _dora_lora(records)
    r = paired_comparison(a, b, min_effect=MIN_EFFECT)
    return {"a": "dora", "b": "lora", "tie": "tie"}[r.verdict], r


@checkpoint(WEEK, "7.1", points=2, title="LoRA or DoRA — the paired verdict per training-set size and on your own run, and DoRA's cost")
def q7_1(choice, cost, runs) -> None:
    from peftlab.compare import timing_noise

    expect(isinstance(runs, dict) and set(runs) == set(SIZES_7_1),
           f"runs에는 레코드 {{{', '.join(repr(s) for s in SIZES_7_1)}}}를 넣으세요 ('mine': 여러분이 직접 돌린 비교)")
    mine_seeds = sorted({r["seed"] for r in runs["mine"] if r.get("status") == "ok"})
    expect(len(mine_seeds) >= 3 and not set(mine_seeds) & {0, 1, 2},
           f"runs['mine']은 여러분의 시드(check.my_seeds)로 돌린 세 시드 이상의 DoRA·LoRA 비교입니다 (받은 시드: {mine_seeds})")
    expect(isinstance(choice, dict) and set(choice) == set(SIZES_7_1),
           f"choice_7_1의 키는 {', '.join(repr(s) for s in SIZES_7_1)}입니다")
    for size in SIZES_7_1:
        pick = choice[size]
        expect(pick in VERDICTS_7_1, f"choice_7_1[{size!r}]는 'dora', 'lora', 'tie' 중 하나입니다 (받은 것: {pick!r})")
        right, r = verdict_dora_lora(runs[size])
        if pick != right:
            ci = f"차이 {r.diff:+.4f}, 95 % 신뢰구간 [{r.low:+.4f}, {r.high:+.4f}]"
            if right == "tie":
                why = ("구간이 0을 품습니다" if r.low <= 0 <= r.high else
                       f"차이가 최소 효과 {MIN_EFFECT}보다 작습니다")
                expect(False, f"choice_7_1[{size!r}]: {ci} — {why}: 'tie'")
            expect(False, f"choice_7_1[{size!r}]: {ci} — 구간이 0을 품지 않고 차이가 최소 효과 {MIN_EFFECT} 이상입니다: "
                          "유의하게 나은 쪽을 고르세요")
    expect(isinstance(cost, dict) and all(k in cost for k in ("time", "memory", "time_differs")),
           "cost_7_1에는 {'time': …, 'memory': …, 'time_differs': …} (DoRA / LoRA, 전체 데이터 비교의 중앙값)을 넣으세요")
    for key, column in (("time", "seconds_per_step"), ("memory", "peak_memory_bytes")):
        want = _ratio(runs["all"], "dora", "lora", column)
        got = _number(cost[key], f"cost_7_1[{key!r}]")
        expect(not math.isclose(got, 1 / want, rel_tol=1e-6) or math.isclose(want, 1, rel_tol=1e-6),
               f"cost_7_1[{key!r}]가 뒤집혔습니다: DoRA / LoRA")
        expect(math.isclose(got, want, rel_tol=1e-6),
               f"cost_7_1[{key!r}]는 summarize(runs['all'])의 {column} 중앙값의 DoRA / LoRA 비입니다")
    noise = timing_noise(runs["all"])
    time_ratio = _ratio(runs["all"], "dora", "lora", "seconds_per_step")
    differs = abs(time_ratio - 1) > noise
    expect(isinstance(cost["time_differs"], bool),
           f"cost_7_1['time_differs']는 True/False입니다 (받은 것: {cost['time_differs']!r})")
    expect(cost["time_differs"] == differs,
           f"cost_7_1['time_differs']: |{time_ratio:.3f} − 1|을 시간 잡음 바닥 compare.timing_noise(runs['all']) = "
           f"{noise:.3f}와 비교하세요")


# ---------------------------------------------------------------------------------------------- 7.2
STATEMENTS_7_2 = {
    "a": "이 비교(tiny, CPU)에서 QLoRA의 최대 메모리(중앙값)가 LoRA보다 작았다",
    "b": "이 비교(tiny, CPU)에서 QLoRA의 학습 스텝(중앙값)이 LoRA보다 빨랐다 (시간 잡음 바닥 밖으로)",
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
    from peftlab.compare import timing_noise

    # (a)–(c): decided by the measurement in ``records``; a per-letter hint points at the student's own ratio
    noise = timing_noise(records)
    measured = {"a": want["memory"] < 1, "b": want["time"] < 1 - noise, "c": abs(want["adapter_bytes"] - 1) < 0.05}
    column = {"a": "memory", "b": "time", "c": "adapter_bytes"}
    for letter in sorted(measured):
        if (letter in picked) != measured[letter]:
            if letter == "b":
                expect(False, f"b: ratios_7_2['time'] = {want['time']:.3f}를 1 − 시간 잡음 바닥 "
                              f"(compare.timing_noise(records) = {noise:.3f})과 비교해 판단하세요")
            expect(False, f"{letter}: 여러분의 ratios_7_2[{column[letter]!r}] = {want[column[letter]]:.3f}로 판단하세요")
    # (d)–(g): fixed reasoning items, an answer key (``_keys.py``); without it the public check stops at the form.
    # The feedback never says which of them is right or wrong.
    key = answer_key(WEEK, "7.2")
    if key is not None:
        reasoning = sorted(set(STATEMENTS_7_2) - set(measured))
        expect({c for c in picked if c in reasoning} == set(key),
               f"측정으로 정하지 않는 문장({reasoning[0]})–({reasoning[-1]})에서 고른 것이 맞지 않습니다 — 각 문장을 "
               "Week 06(계산 dtype, 이중 양자화의 비트 계산, 병합, 무엇이 4비트인가)과 다시 맞춰 보세요")


# ---------------------------------------------------------------------------------------------- 7.3
@checkpoint(WEEK, "7.3", points=1, title="Designing a fair comparison — a power calculation for a 1-point difference")
def q7_3(disagree, n_examples, records) -> None:
    a, b = _dora_lora(records)
    want_dis = float((a != b).mean())
    diff = float((a - b).mean())
    got = _number(disagree, "disagree_7_3")
    expect(math.isclose(got, want_dis, abs_tol=1e-9),
           f"disagree_7_3은 DoRA와 LoRA의 답이 다른 (시드, 예시)의 비율입니다 — 모든 시드와 예시에 걸친 평균 (받은 것: {got:.4f})")
    sd = math.sqrt(max(want_dis - diff**2, 0.0))
    want = sample_size(MIN_EFFECT_7_3, sd)
    expect(n_examples is not None, "n_examples_7_3에 필요한 테스트 예시 수(정수)를 넣으세요")
    expect(isinstance(n_examples, (int, np.integer)) and not isinstance(n_examples, bool),
           f"n_examples_7_3은 정수입니다 (받은 것: {n_examples!r})")
    half_power = max(2, math.ceil((1.96 * sd / MIN_EFFECT_7_3) ** 2))
    if n_examples == half_power and half_power != want:
        expect(False, "z_{0.975} = 1.96만 썼습니다: 그러면 검정력은 50 %입니다 — 80 % 검정력에는 z_{0.8} ≈ 0.84를 더합니다")
    expect(int(n_examples) == want,
           f"n_examples_7_3 = {n_examples}: n = ⌈((z_0.975 + z_0.8) · sd / {MIN_EFFECT_7_3})²⌉, "
           "sd² = P(답이 다름) − diff² (stats.sample_size)")
