"""Short Korean instruction/answer pairs for causal-LM fine-tuning (QLoRA, QR-Adaptor weeks).

Every answer is one word, checkable by exact match, and needs knowledge that the pretraining text
states (:mod:`.world`) but never in this question-and-answer form:

* ``person``    — a fact about a person of the synthetic world (city, job, fruit, pet);
* ``category``  — what kind of thing a word names (과일, 동물, 악기 …).

The test split asks about other people and words than the train split: a tuned model can answer it
only from what pretraining stored, and only once tuning taught it the format (the base model never
saw ``질문: … 답:``). Tried and left out, because the tiny LM stays near chance on held-out items
after LoRA and its wrong, high-loss answers drown every other measurement in noise: antonyms and
capitals (it answers with train-split answers), review sentiment (≈ 0.5), copying an unseen word.
(Sentiment is the encoder's task in this kit.)
"""

from __future__ import annotations

import random

from peftlab.data import format_instruction  # noqa: F401  (re-exported; the template lives with the data API)

from . import lexicon as L
from .korean import particle
from .world import Person

TASKS = ("person", "category")
#: Share of each task in a split (a split gets fewer rows when a task's items run out).
MIX = {"person": 0.78, "category": 0.22}
#: Share of people, antonym pairs, countries and category words whose questions go to the test split.
TEST_SHARE = 0.35


def _subj(name: str) -> str:
    return particle(name, "이/가")


def person_questions(p: Person) -> list[tuple[str, str]]:
    n = p.name
    return [
        (f"{particle(n, '은/는')} 어디에 살아요?", p.city), (f"{n}의 집은 어느 도시에 있나요?", p.city),
        (f"{n}의 직업은 무엇인가요?", p.job), (f"{particle(n, '은/는')} 무슨 일을 하나요?", p.job),
        (f"{_subj(n)} 좋아하는 과일은?", p.fruit), (f"{_subj(n)} 제일 좋아하는 과일은 무엇인가요?", p.fruit),
        (f"{_subj(n)} 키우는 동물은?", p.pet), (f"{n}의 반려동물은 무엇인가요?", p.pet),
    ]


def category_questions(word: str, cat: str) -> list[tuple[str, str]]:
    return [(f"{particle(word, '은/는')} 무엇의 한 종류인가요?", cat), (f"다음 단어가 속한 종류를 쓰세요: {word}", cat),
            (f"{particle(word, '은/는')} 어떤 종류에 속하나요?", cat)]


def _split(items: list, rng: random.Random) -> tuple[list, list]:
    items = list(items)
    rng.shuffle(items)
    k = max(1, round(TEST_SHARE * len(items)))
    return items[k:], items[:k]


def make_instructions(sizes: dict[str, int], seed: int, people: list[Person] | None = None) -> dict[str, list[dict]]:
    """Splits named as in ``sizes``; the last one is the test split, about other people and words.

    ``people``: the synthetic world's people (default: :func:`world.make_people` with the build's
    defaults).
    """
    from .world import make_people

    rng = random.Random(seed)
    people = people if people is not None else make_people(96, seed=3)
    cat_pairs = [(w, cat) for cat, ws in L.CATEGORIES for w in ws]
    item_sources = {"person": (people, person_questions), "category": (cat_pairs, lambda wc: category_questions(*wc))}
    names = list(sizes)
    pools: dict[str, dict[str, list[tuple[str, str]]]] = {n: {} for n in names}
    for task, (items, questions) in item_sources.items():
        train_items, test_items = _split(items, rng)
        for n in names:
            src = test_items if n == names[-1] else train_items
            qs = [qa for it in src for qa in questions(it)]
            rng.shuffle(qs)
            pools[n][task] = qs
    out: dict[str, list[dict]] = {}
    for n, size in sizes.items():
        rows = [{"instruction": q, "output": a, "task": task}
                for task in TASKS for q, a in pools[n][task][: round(MIX[task] * size)]]
        rng.shuffle(rows)
        out[n] = rows
    return out


__all__ = ["MIX", "TASKS", "format_instruction", "make_instructions"]
