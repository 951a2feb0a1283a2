"""Short Korean instruction/answer pairs for causal-LM fine-tuning (QLoRA, QR-Adaptor weeks).

Every answer is one word, checkable by exact match, and needs knowledge that the pretraining text
states (:mod:`.world`) but never in this question-and-answer form. Five tasks:

* ``person``    — a fact about a person of the synthetic world (city, job, fruit, pet);
* ``category``  — what kind of thing a word names (과일, 동물, 악기 …);
* ``capital``   — the capital of a country (프랑스의 수도는? → 파리);
* ``country``   — the reverse: whose capital a city is (파리는 어느 나라의 수도인가요? → 프랑스);
* ``antonym``   — the opposite of a word, both directions of a pair ('크다'의 반대말은? → 작다).

The test split asks about other people, words, countries and antonym pairs than the train split
(``capital`` and ``country`` share one split of the countries): a tuned model can answer it only from
what pretraining stored, and only once tuning taught it the format (the base model never saw
``질문: … 답:``; its exact match is 0). Test capitals, countries and antonyms are answers no train row
gives, so they cannot be guessed from the train answers. Besides the rows in the train split's
phrasings, the test split asks about the same test items in phrasings no train row uses
(:data:`NEW_PHRASINGS`; ``"phrasing": "new"``): a tuned model that learned the templates rather than the
task answers those worse.

How far LoRA gets (r=8 on every block Linear, 3 epochs at lr 2e-3, seeds 0–2) depends on the
pretrained LM more per task than overall: ``data/README.md`` gives the default build's exact match per
seed, task and phrasing. On three other tiny LMs (another tokenizer, twice the pretraining steps) the
overall stayed in 0.64–0.86 while single tasks moved by up to 0.5 (antonym 0.23–0.82, country
0.35–0.96). Five tasks of similar weight keep the mix inside its target band.

Tried and left out: choosing between two given words (``사과와 하마 중에서 동물인 것은?``: ≈ 0.05 on
every LM tried, the model answers with some train-split word rather than one of the two), copying a
name (one of the world's: 1.0, a single token to copy; an unseen one, several tokens: 0.0), and
review sentiment (≈ 0.5, chance; sentiment is the encoder's task in this kit). Antonym answers in
quotes (``'작다'``) are retrieved better but fail exact match: the tokenizer decodes them as
``' 작다 '``. Fewer train rows (360) make the mix swing with the seed (0.50–0.70 on one LM).
"""

from __future__ import annotations

import random

from peftlab.data import format_instruction  # noqa: F401  (re-exported; the template lives with the data API)

from . import lexicon as L
from .korean import particle
from .world import Person

TASKS = ("person", "category", "capital", "antonym", "country")
#: Share of each task in a split (a split gets fewer rows when a task's items run out; the default
#: sizes, 470/326, leave every task within its items).
MIX = {"person": 0.34, "category": 0.14, "capital": 0.16, "antonym": 0.20, "country": 0.16}
#: Share of each source's items (people, category words, countries, antonym pairs) whose questions go
#: to the test split. Countries: 13 of 32, so that the test split has ≥ 40 questions in each direction.
TEST_SHARE = {"person": 0.35, "category": 0.35, "countries": 0.4, "antonym": 0.35}
#: The items each task asks about: ``capital`` and ``country`` ask about the same countries (one split
#: for both directions, so no test fact is taught by a train question the other way round).
SOURCE = {"person": "person", "category": "category", "capital": "countries", "antonym": "antonym",
          "country": "countries"}


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


def capital_questions(country: str, capital: str) -> list[tuple[str, str]]:
    return [(f"{country}의 수도는?", capital), (f"{country}의 수도는 어디인가요?", capital),
            (f"{country}의 수도는 어느 도시인가요?", capital), (f"{particle(country, '은/는')} 수도가 어디인가요?", capital)]


def country_questions(country: str, capital: str) -> list[tuple[str, str]]:
    """The reverse of :func:`capital_questions`: whose capital a city is."""
    return [(f"{particle(capital, '은/는')} 어느 나라의 수도인가요?", country), (f"{particle(capital, '이/가')} 수도인 나라는?", country),
            (f"{particle(capital, '은/는')} 어느 나라의 수도예요?", country), (f"수도가 {capital}인 나라는 어디인가요?", country)]


def antonym_questions(a: str, b: str) -> list[tuple[str, str]]:
    """Both directions of the pair (a → b and b → a), three phrasings each."""
    out = []
    for x, y in ((a, b), (b, a)):
        out += [(f"'{x}'의 반대말은?", y), (f"'{x}'의 반대말은 무엇인가요?", y), (f"'{x}'와 반대되는 말은 무엇인가요?", y)]
    return out


# ---- phrasings the train split never uses (asked in the test split only) ---------------------------------
def person_questions_new(p: Person) -> list[tuple[str, str]]:
    """One unseen phrasing per attribute (city, job, fruit, pet)."""
    n = p.name
    return [(f"{particle(n, '은/는')} 어느 도시에서 지내나요?", p.city), (f"{n}의 직업은?", p.job),
            (f"{_subj(n)} 즐겨 먹는 과일은 무엇인가요?", p.fruit), (f"{n}의 집에서 기르는 동물은 무엇인가요?", p.pet)]


def category_questions_new(word: str, cat: str) -> list[tuple[str, str]]:
    return [(f"{particle(word, '은/는')} 무엇에 속하나요?", cat), (f"{particle(word, '은/는')} 어떤 것의 한 종류예요?", cat)]


def capital_questions_new(country: str, capital: str) -> list[tuple[str, str]]:
    return [(f"{country}의 수도 이름은 무엇인가요?", capital), (f"다음 나라의 수도를 쓰세요: {country}", capital)]


def country_questions_new(country: str, capital: str) -> list[tuple[str, str]]:
    return [(f"{particle(capital, '은/는')} 무슨 나라의 수도인가요?", country),
            (f"다음 도시가 수도인 나라를 쓰세요: {capital}", country)]


def antonym_questions_new(a: str, b: str) -> list[tuple[str, str]]:
    out = []
    for x, y in ((a, b), (b, a)):
        out += [(f"'{x}'의 뜻과 반대인 말은?", y), (f"'{x}'와 뜻이 반대인 단어를 쓰세요.", y)]
    return out


def _split(items: list, share: float, rng: random.Random) -> tuple[list, list]:
    items = list(items)
    rng.shuffle(items)
    k = max(1, round(share * len(items)))
    return items[k:], items[:k]


def make_instructions(sizes: dict[str, int], seed: int, people: list[Person] | None = None,
                      new_phrasings: bool = True) -> dict[str, list[dict]]:
    """Splits named as in ``sizes``; the last one is the test split, about other people, words,
    countries and antonym pairs.

    ``people``: the synthetic world's people (default: :func:`world.make_people` with the build's
    defaults). ``new_phrasings``: the test split's ``sizes[test]`` rows, asked in the train split's
    phrasings (``"phrasing": "train"``), are joined by rows about the same test items asked in phrasings
    no train row uses (``"phrasing": "new"``; per task at most the task's share of ``sizes[test]``);
    every test row carries ``phrasing``. The other splits do not change with it.
    """
    from .world import make_people

    rng = random.Random(seed)
    people = people if people is not None else make_people(96, seed=3)
    sources = {"person": people, "category": [(w, cat) for cat, ws in L.CATEGORIES for w in ws],
               "countries": list(L.CAPITALS), "antonym": list(L.ANTONYMS)}
    questions = {"person": person_questions, "category": lambda wc: category_questions(*wc),
                 "capital": lambda cc: capital_questions(*cc), "antonym": lambda ab: antonym_questions(*ab),
                 "country": lambda cc: country_questions(*cc)}
    names = list(sizes)
    splits: dict[str, tuple[list, list]] = {}
    pools: dict[str, dict[str, list[tuple[str, str]]]] = {n: {} for n in names}
    for task in TASKS:
        src_name = SOURCE[task]
        if src_name not in splits:
            splits[src_name] = _split(sources[src_name], TEST_SHARE[src_name], rng)
        train_items, test_items = splits[src_name]
        for n in names:
            src = test_items if n == names[-1] else train_items
            qs = [qa for it in src for qa in questions[task](it)]
            rng.shuffle(qs)
            pools[n][task] = qs
    out: dict[str, list[dict]] = {}
    for n, size in sizes.items():
        rows = [{"instruction": q, "output": a, "task": task}
                for task in TASKS for q, a in pools[n][task][: round(MIX[task] * size)]]
        rng.shuffle(rows)
        out[n] = rows
    if new_phrasings:  # a generator of its own, so that every other row is what it was without them
        test, size = names[-1], sizes[names[-1]]
        rng_new = random.Random(f"{seed}/new-phrasings")
        new_rows = []
        for task in TASKS:
            qs = [qa for it in splits[SOURCE[task]][1] for qa in NEW_PHRASINGS[task](it)]
            rng_new.shuffle(qs)
            new_rows += [{"instruction": q, "output": a, "task": task, "phrasing": "new"}
                         for q, a in qs[: round(MIX[task] * size)]]
        rows = [dict(r, phrasing="train") for r in out[test]] + new_rows
        rng_new.shuffle(rows)
        out[test] = rows
    return out


#: Per task, the questions in phrasings the train split never uses (the test split's ``"phrasing": "new"`` rows).
NEW_PHRASINGS = {"person": person_questions_new, "category": lambda wc: category_questions_new(*wc),
                 "capital": lambda cc: capital_questions_new(*cc), "antonym": lambda ab: antonym_questions_new(*ab),
                 "country": lambda cc: country_questions_new(*cc)}

__all__ = ["MIX", "NEW_PHRASINGS", "SOURCE", "TASKS", "TEST_SHARE", "format_instruction", "make_instructions"]
