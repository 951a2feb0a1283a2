"""A small synthetic world whose facts the causal LM learns from its pretraining text.

The knowledge corpus (``corpus/ko_world.txt``) states facts in plain sentences, each fact in several
phrasings and orders (so the fact, not one sentence, is what a model stores):

* people of an invented town and four attributes each: where they live, their job, the fruit they
  like and the animal they keep (지수는 부산에 산다. 지수의 직업은 요리사이다. …);
* antonym pairs, both directions ('크다'의 반대말은 '작다'이다.);
* capitals (프랑스의 수도는 파리이다.) and categories (사과는 과일의 한 종류이다.).

No line is instruction-formatted: the base model never sees ``질문: … 답:``. The instruction set
(:mod:`.instructions`) asks about these facts; its test split asks about *other* people, pairs and
words than its train split, so an adapted model answers from what pretraining stored.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon as L
from .korean import particle

ATTRIBUTES = ("city", "job", "fruit", "pet")


@dataclass(frozen=True)
class Person:
    name: str
    city: str
    job: str
    fruit: str
    pet: str


def make_people(n: int, seed: int) -> list[Person]:
    """``n`` people with distinct two-syllable names and independently drawn attributes."""
    rng = random.Random(seed)
    names = sorted({a + b for a in L.NAME_FIRST for b in L.NAME_SECOND} - set(L.WORDS) - set(L.ENTITY_WORDS))
    rng.shuffle(names)
    if n > len(names):
        raise ValueError(f"n={n}: only {len(names)} distinct names")
    return [Person(name, rng.choice(L.CITIES), rng.choice(L.JOBS), rng.choice(L.FRUITS), rng.choice(L.PETS))
            for name in names[:n]]


def _ro(word: str) -> str:
    """word + 으로/로 (로 after a vowel or ㄹ: 경찰로, 의사로, 농부로; 으로 otherwise)."""
    from .korean import _BASE, _N_FINALS

    final = (ord(word[-1]) - _BASE) % _N_FINALS
    return word + ("으로" if final not in (0, 8) else "로")


def _topic(name: str) -> str:
    return particle(name, "은/는")


def _ida(noun: str) -> str:
    """noun + 이다 (written style: 의사이다, 서울이다)."""
    return noun + "이다"


def _batchim(word: str) -> bool:
    from .korean import has_batchim

    return has_batchim(word)


def fact_clauses(p: Person, rng: random.Random) -> dict[str, str]:
    """One phrasing per attribute, as a final clause (without the subject) and as a full sentence."""
    city = rng.choice([f"{p.city}에 산다", f"{p.city}에서 산다", f"{p.city}에 살고 있다"])
    job = rng.choice([f"{_ida(p.job)}", f"{_ro(p.job)} 일한다"])
    fruit = rng.choice([f"{particle(p.fruit, '을/를')} 좋아한다", f"{particle(p.fruit, '을/를')} 제일 좋아한다"])
    pet = rng.choice([f"{particle(p.pet, '을/를')} 키운다", f"{particle(p.pet, '을/를')} 기른다"])
    return {"city": city, "job": job, "fruit": fruit, "pet": pet}


def fact_sentence(p: Person, attr: str, rng: random.Random) -> str:
    """One sentence that states one fact about ``p``."""
    n = p.name
    forms = {
        "city": [f"{_topic(n)} {p.city}에 산다.", f"{n}의 집은 {p.city}에 있다.", f"{p.city}에 사는 사람 중에 {n}가 있다."
                 if not _batchim(n) else f"{p.city}에 사는 사람 중에 {n}이 있다.", f"{_topic(n)} {p.city}에서 살고 있다."],
        "job": [f"{n}의 직업은 {_ida(p.job)}.", f"{_topic(n)} {_ida(p.job)}.", f"{_topic(n)} {_ro(p.job)} 일한다."],
        "fruit": [f"{n}가 좋아하는 과일은 {_ida(p.fruit)}." if not _batchim(n) else
                  f"{n}이 좋아하는 과일은 {_ida(p.fruit)}.", f"{_topic(n)} {particle(p.fruit, '을/를')} 좋아한다."],
        "pet": [f"{_topic(n)} {particle(p.pet, '을/를')} 키운다.", f"{n}의 반려동물은 {_ida(p.pet)}."],
    }
    return rng.choice(forms[attr])


def biography(p: Person, rng: random.Random) -> str:
    """Two to four facts about one person in a random order, as one line."""
    attrs = rng.sample(ATTRIBUTES, rng.randrange(2, 5))
    if rng.random() < 0.5:
        return " ".join(fact_sentence(p, a, rng) for a in attrs)
    clauses = fact_clauses(p, rng)
    parts = []
    for i, a in enumerate(attrs):
        c = clauses[a]
        if i < len(attrs) - 1:  # 산다 → 살고, 키운다 → 키우고, 이다 → 이고, 일한다 → 일하고
            c = _connective(c)
        parts.append(c)
    return f"{_topic(p.name)} " + " ".join(parts) + "."


def _connective(clause: str) -> str:
    for end, conn in (("산다", "살고"), ("살고 있다", "살고 있고"), ("이다", "이고"), ("일한다", "일하고"),
                      ("좋아한다", "좋아하고"), ("키운다", "키우고"), ("기른다", "기르고")):
        if clause.endswith(end):
            return clause[: -len(end)] + conn
    raise ValueError(f"clause={clause!r}: no connective form")


def antonym_sentence(a: str, b: str, rng: random.Random) -> str:
    return rng.choice([f"'{a}'의 반대말은 '{b}'이다.", f"'{a}'의 반대말은 '{b}'이다.", f"'{a}'와 반대되는 말은 '{b}'이다.",
                       f"'{a}'{'과' if _batchim(a) else '와'} '{b}'는 서로 반대말이다." if not _batchim(b) else
                       f"'{a}'{'과' if _batchim(a) else '와'} '{b}'은 서로 반대말이다."])


def capital_sentence(country: str, capital: str, rng: random.Random) -> str:
    return rng.choice([f"{country}의 수도는 {_ida(capital)}.", f"{country}의 수도는 {_ida(capital)}.",
                       f"{particle(capital, '은/는')} {country}의 수도이다.", f"{country}의 수도 {particle(capital, '은/는')} 큰 도시이다."])


def category_sentence(word: str, cat: str, rng: random.Random) -> str:
    return rng.choice([f"{particle(word, '은/는')} {cat}의 한 종류이다.", f"{particle(word, '은/는')} {_ida(cat)}.",
                       f"{particle(word, '은/는')} {cat}에 속한다."])


def make_world_corpus(n_lines: int, people: list[Person], seed: int) -> list[str]:
    """``n_lines`` lines of knowledge text (facts repeat, in varied phrasings and orders): 75 %
    biographies, 15 % categories, 5 % antonyms, 5 % capitals."""
    rng = random.Random(seed)
    lines: list[str] = []
    for _ in range(n_lines):
        u = rng.random()
        if u < 0.75:
            lines.append(biography(rng.choice(people), rng))
        elif u < 0.8:
            a, b = rng.choice(L.ANTONYMS)
            if rng.random() < 0.5:
                a, b = b, a
            lines.append(antonym_sentence(a, b, rng))
        elif u < 0.85:
            lines.append(capital_sentence(*rng.choice(L.CAPITALS), rng))
        else:
            cat, words = rng.choice(L.CATEGORIES)
            lines.append(category_sentence(rng.choice(words), cat, rng))
    return lines


def heldout_world_lines(people: list[Person], seen: set[str], n_candidates: int, seed: int) -> list[str]:
    """New knowledge lines for a held-out evaluation: ``n_candidates`` lines drawn as :func:`make_world_corpus`
    draws them (another seed), keeping each line once and only if it is not in ``seen`` (the training lines).
    They state the same facts as the training text in sentences the model never read."""
    out: list[str] = []
    kept = set(seen)
    for line in make_world_corpus(n_candidates, people, seed=seed):
        if line not in kept:
            kept.add(line)
            out.append(line)
    return out
