"""The unlabeled pretraining corpus: one sentence per line.

Movie talk uses the review grammar of :mod:`peftlab.datagen.reviews` with a flat (uniform) predicate
distribution, so every predicate is seen often, and its sentences are mostly *coherent*: all clauses
of a sentence share one polarity (연기가 훌륭했고 음악도 아름다웠다; 지루하지 않고 재미있었다), which is
what lets a masked-LM learn which words carry which sentiment. The rest is everyday language
(coherent opinions about food, trips, classes) and neutral diary sentences. Facts (the synthetic
world, antonyms, capitals, categories) are in :mod:`.world`'s separate knowledge corpus.
"""

from __future__ import annotations

import random
import re

from . import lexicon as L
from .korean import particle
from .reviews import REGISTERS, ReviewGenerator


def _movie_sentence(gen: ReviewGenerator, verdict_share: float = 0.0) -> str:
    """Movie talk. With probability ``verdict_share``: a whole review in the labelled set's grammar
    (contrasts, negation and all), closed by a verdict that states its polarity (추천합니다. /
    별점 1점.). To fill a masked verdict, a masked LM must read the polarity of the review, i.e. of
    its last evaluative clause; a causal LM predicting the verdict learns the same. Otherwise a
    coherent sentence (all clauses share one polarity)."""
    r = gen.rng
    pol = r.choice((1, -1))
    if r.random() < verdict_share:
        v = r.choice([t for t, p in L.VERDICTS if p == pol])
        return f"{gen.review(1 if pol == 1 else 0).text} {v}"
    return _movie_core(gen, pol)


def _movie_core(gen: ReviewGenerator, pol: int, weights=(0.2, 0.4, 0.1, 0.15, 0.15)) -> str:
    r = gen.rng
    gen._used = set()
    reg = r.choice(REGISTERS)
    shape = r.choices(["single", "coord", "coord3", "contrast", "filler"], weights)[0]
    if shape == "single":
        return gen.clause(pol, end="final", register=reg) + "."
    if shape == "coord":
        conn = r.choice(["고", "고", "서"])
        return (gen.clause(pol, end=conn, register=reg) + " "
                + gen.clause(pol, end="final", register=reg, also=r.random() < 0.5) + ".")
    if shape == "coord3":
        return (gen.clause(pol, end="고", register=reg) + " " + gen.clause(pol, end="고", register=reg, also=True)
                + " " + gen.clause(pol, end="final", register=reg, also=r.random() < 0.5) + ".")
    if shape == "contrast":
        return (gen.clause(-pol, end=r.choice(["지만", "는데"]), register=reg, topic=True) + " "
                + gen.clause(pol, end="final", register=reg, topic=True) + ".")
    return gen.filler(reg, connective=True) + " " + gen.clause(pol, end="final", register=reg) + "."


def _everyday_sentence(rng: random.Random) -> str:
    reg = rng.choice(REGISTERS)
    pol = rng.choice((1, -1))
    if rng.random() < 0.3:
        subj = rng.sample(L.FOOD_SUBJECTS, 2)
        preds = [p for p in L.FOOD_PREDICATES if p.polarity == pol]
    else:
        subj = rng.sample(L.EVERYDAY_SUBJECTS, 2)
        preds = [p for p in L.EVERYDAY_PREDICATES if p.polarity == pol]
    p1, p2 = rng.sample(preds, 2)
    time = rng.choice(L.TIMES[:8])
    if rng.random() < 0.5:
        return f"{time} {particle(subj[0], '이/가')} {p1.final(reg, 'past')}."
    return f"{particle(subj[0], '이/가')} {p1.connective('고')} {subj[1]}도 {p2.final(reg, 'past')}."


def _neutral_sentence(rng: random.Random) -> str:
    who = rng.choice(L.PEOPLE)
    time = rng.choice(L.TIMES)
    past, present = rng.choice(L.ACTIVITIES)
    if time == "내일":
        return f"{who} {time} {present}."
    reg = rng.choice(REGISTERS)
    return f"{who} {time} {past}" + {"plain": "다.", "polite": "어요.", "formal": "습니다."}[reg]


def _parts(line: str) -> list[str]:
    return [p.strip() for p in re.split(r"(?<=[.!~])\s+", line) if p.strip()]


def make_corpus(n_lines: int, seed: int, exclude: set[str] = frozenset(), movie_share: float = 0.62,
                verdict_share: float = 0.0) -> list[str]:
    """``n_lines`` distinct sentences; any sentence in ``exclude`` (the test reviews' sentences) is
    skipped, so the corpus never contains a test sentence verbatim. ``movie_share`` of the lines are
    movie talk, ``verdict_share`` of those carry a verdict (see :data:`lexicon.VERDICTS`); the rest is
    split 18 : 12 between everyday opinions and neutral diary sentences (facts live in
    :mod:`.world`'s knowledge corpus)."""
    rng = random.Random(seed)
    gen = ReviewGenerator(seed + 1, zipf=0.0)
    seen: set[str] = set()
    lines: list[str] = []
    attempts = 0
    while len(lines) < n_lines:
        attempts += 1
        if attempts > 50 * n_lines:
            raise RuntimeError(f"n_lines={n_lines}: could not draw that many distinct sentences")
        u = rng.random()
        rest = (u - movie_share) / (1 - movie_share)
        if u < movie_share:
            s = _movie_sentence(gen, verdict_share)
        elif rest < 18 / 30:
            s = _everyday_sentence(rng)
        else:
            s = _neutral_sentence(rng)
        if s in seen or s in exclude or any(part in exclude for part in _parts(s)):
            continue
        seen.add(s)
        lines.append(s)
    return lines
