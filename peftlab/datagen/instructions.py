"""Short Korean instruction/answer pairs for causal-LM fine-tuning (QLoRA, QR-Adaptor weeks).

Every answer is short and checkable by exact match: a number, a word, 긍정/부정, a copied or
reversed word list.
"""

from __future__ import annotations

import random

from peftlab.data import format_instruction  # noqa: F401  (re-exported; the template lives with the data API)

from . import lexicon as L
from .korean import particle
from .reviews import ReviewGenerator

def _task(rng: random.Random, reviews: ReviewGenerator) -> tuple[str, str, str]:
    kind = rng.choices(["add", "sub", "antonym", "sentiment", "copy", "reverse", "capital"],
                       [0.18, 0.14, 0.14, 0.2, 0.1, 0.1, 0.14])[0]
    if kind == "add":
        a, b = rng.randrange(0, 50), rng.randrange(0, 50)
        q = rng.choice([f"{a} 더하기 {particle(str(b), '은/는')} 얼마인가요?", f"다음을 계산하세요: {a} + {b}",
                        f"{a}에 {particle(str(b), '을/를')} 더하면?"])
        return kind, q, str(a + b)
    if kind == "sub":
        a, b = rng.randrange(0, 60), rng.randrange(0, 60)
        a, b = max(a, b), min(a, b)
        q = rng.choice([f"{a} 빼기 {particle(str(b), '은/는')} 얼마인가요?", f"다음을 계산하세요: {a} - {b}",
                        f"{a}에서 {particle(str(b), '을/를')} 빼면?"])
        return kind, q, str(a - b)
    if kind == "antonym":
        a, b = rng.choice(L.ANTONYMS)
        if rng.random() < 0.5:
            a, b = b, a
        q = rng.choice([f"'{a}'의 반대말은?", f"다음 단어의 반대말을 쓰세요: {a}"])
        return kind, q, b
    if kind == "sentiment":
        rev = reviews.review(rng.randrange(2))
        q = rng.choice([f"다음 리뷰의 감성은? {rev.text}",
                        f"다음 영화 리뷰가 긍정인지 부정인지 답하세요: {rev.text}"])
        return kind, q, "긍정" if rev.label == 1 else "부정"
    if kind == "copy":
        w = rng.choice(L.WORDS)
        return kind, rng.choice([f"다음 단어를 그대로 쓰세요: {w}", f"따라 쓰세요: {w}"]), w
    if kind == "reverse":
        ws = rng.sample(L.WORDS, rng.randrange(2, 5))
        return kind, f"다음 단어들을 거꾸로 나열하세요: {' '.join(ws)}", " ".join(reversed(ws))
    country, capital = rng.choice(L.CAPITALS)
    q = rng.choice([f"{country}의 수도는 어디인가요?", f"{country}의 수도는?"])
    return kind, q, capital


def make_instructions(sizes: dict[str, int], seed: int, exclude: set[str] = frozenset()) -> dict[str, list[dict]]:
    """Disjoint splits of distinct instructions. Reviews in ``exclude`` (the sentiment test set) are
    never used in a sentiment task."""
    rng = random.Random(seed)
    reviews = ReviewGenerator(seed + 1)
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for name, n in sizes.items():
        rows: list[dict] = []
        while len(rows) < n:
            kind, q, a = _task(rng, reviews)
            if q in seen or _uses_excluded(q, exclude):
                continue
            seen.add(q)
            rows.append({"instruction": q, "output": a, "task": kind})
        out[name] = rows
    return out


def _uses_excluded(q: str, exclude: set[str]) -> bool:
    if not exclude or ": " not in q and "? " not in q:
        return False
    tail = q.split(": ", 1)[1] if ": " in q else q.split("? ", 1)[1]
    return tail in exclude
