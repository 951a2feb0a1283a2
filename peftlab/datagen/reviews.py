"""The labelled Korean movie-review sentiment set.

Labelling rule (deterministic and compositional)
------------------------------------------------
A review is a sequence of clauses. An *evaluative* clause has a predicate with a lexical polarity
(+1 훌륭하다, -1 지루하다, see :mod:`peftlab.datagen.lexicon`); negation (안 …, -지 않다, -지 못하다)
multiplies it by -1; intensifiers (정말, 너무 …) and negation adverbs (전혀, 별로 …) leave it as it is.
Neutral filler (어제 가족이랑 봤는데 …) and closers (개인적인 생각입니다.) have no polarity.

**The label is the polarity of the last evaluative clause** (1 = 긍정, 0 = 부정). The shapes used:

* ``single``   — [filler] A.                                  label = pol(A)
* ``coord``    — A-고/-아서 B.      (pol(A) = pol(B))          label = pol(B)
* ``contrast`` — A-지만/-는데 B.    (pol(A) = -pol(B))         label = pol(B)
* ``two``      — A. 하지만/그래도 … B. (pol(A) = -pol(B))      label = pol(B)
* ``triple``   — A-지만 B-고 C.     (pol(A) = -pol(B) = -pol(C)) label = pol(C)

Harder shapes (a share ``hard_share`` of the labelled splits; most clauses disagree with the label, so
counting polar words fails and the position of the last clause decides):

* ``hard_late_turn``  — A-고 B. 그런데 C.   (pol(A) = pol(B) = -pol(C)) label = pol(C)
* ``hard_chain``      — A-지만 B. 하지만 C. (pol(A) = pol(C) = -pol(B)) label = pol(C)
* ``hard_turn_back``  — A-고 B-지만 C.     (pol(A) = pol(B) = -pol(C)) label = pol(C)

and a rating phrase (10점 만점에 9점.) may close a review; it is then the last evaluative element and
agrees with the clause before it. Label and negation are drawn independently, so words like 않았다,
안, 못 carry no label information on their own; in contrasts the first clause always has the
opposite polarity of the label, so a positive word is as likely in a negative review as in a
positive one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from . import lexicon as L
from .korean import Predicate, particle

REGISTERS = ("plain", "polite", "formal")


@dataclass(frozen=True)
class Review:
    text: str
    label: int
    shape: str


def _zipf_weights(n: int, s: float) -> list[float]:
    return [1.0 / (rank + 1) ** s for rank in range(n)]


class ReviewGenerator:
    """Draws reviews from the grammar above with a private ``random.Random(seed)``.

    ``zipf`` shapes how often each predicate is used (0 = uniform; 1 = Zipf's law, the usual
    long tail of real reviews). Ranks follow the lexicon's order: the common core words first, the
    long tail (탁월하다, 지지부진하다 …) last, so a labelled set sees tail words only a few times while
    the uniform pretraining corpus sees all of them often.

    ``lexicon`` picks the aspect predicates: "all", "main" (all but :data:`lexicon.HELDOUT_STEMS`,
    for the labelled splits) or "heldout" (only those; no viewer clauses and no rating phrases, so
    every evaluative word of a review is a held-out one).
    """

    def __init__(self, seed: int, zipf: float = 1.0, lexicon: str = "all", hard_share: float = 0.0):
        if lexicon not in ("all", "main", "heldout"):
            raise ValueError(f"lexicon={lexicon!r}: expected 'all', 'main' or 'heldout'")
        if not 0.0 <= hard_share <= 1.0:
            raise ValueError(f"hard_share={hard_share!r}: expected a share in [0, 1]")
        self.rng = random.Random(seed)
        self.hard_share = hard_share
        self.zipf = zipf
        self.lexicon = lexicon
        self.viewer_share = 0.0 if lexicon == "heldout" else 0.2
        self._used: set[Predicate] = set()
        self.pools: dict[tuple[int, bool], tuple[list[Predicate], list[float]]] = {}
        keep = {"all": lambda p: True, "main": lambda p: p.stem not in L.HELDOUT_STEMS,
                "heldout": lambda p: p.stem in L.HELDOUT_STEMS}[lexicon]
        for viewer, preds in ((False, L.ASPECT_PREDICATES), (True, L.VIEWER_PREDICATES)):
            for pol in (1, -1):
                items = [p for p in preds if p.polarity == pol and (viewer or keep(p))]
                self.pools[(pol, viewer)] = (items, _zipf_weights(len(items), zipf))

    # ---- clauses --------------------------------------------------------------------------------
    def _pick(self, polarity: int, viewer: bool, negated: bool) -> Predicate:
        items, weights = self.pools[(polarity, viewer)]
        pairs = [(p, w) for p, w in zip(items, weights, strict=True)
                 if (p.negatable or not negated) and p not in self._used]
        pred = self.rng.choices([p for p, _ in pairs], [w for _, w in pairs])[0]
        self._used.add(pred)
        return pred

    def clause(self, polarity: int, *, end: str, register: str, topic: bool = False,
               also: bool = False) -> str:
        """One evaluative clause whose *effective* polarity is ``polarity``.

        ``end`` is "final" (sentence end) or a connective (고, 지만, 는데, 서).
        """
        r = self.rng
        negated = r.random() < 0.3
        base = -polarity if negated else polarity
        viewer = r.random() < self.viewer_share
        pred = self._pick(base, viewer, negated)
        words: list[str] = []
        if pred.viewer:
            if pred.subjects:
                words.append(r.choice(pred.subjects))
            elif r.random() < 0.35:
                words.append(r.choice(L.VIEWER_ADVERBS))
        else:
            aspect = r.choice(L.ASPECTS)
            pair = "은/는" if topic else "이/가"
            words.append(aspect + "도" if also else particle(aspect, pair))
        kind = "long"
        if negated:
            options = ["long", "long"]
            if pred.short_neg:
                options.append("short")
            if pred.mot:
                options.append("mot")
            kind = r.choice(options)
            if r.random() < 0.3 and kind != "mot":
                words.append(r.choice(L.NEG_ADVERBS))
        elif r.random() < 0.4 and not pred.viewer:
            words.append(r.choice(L.INTENSIFIERS))
        if end == "final":
            tense = r.choices(["past", "present", "exclaim"], [0.65, 0.25, 0.10])[0]
            words.append(pred.neg_final(register, tense, kind) if negated else pred.final(register, tense))
        else:
            words.append(pred.neg_connective(end, kind) if negated else pred.connective(end))
        return " ".join(words)

    def filler(self, register: str, connective: bool) -> str:
        stem = self.rng.choice(L.FILLERS)
        if connective:
            return stem + self.rng.choice(["는데", "는데", "고"])
        return stem + {"plain": "다.", "polite": "어요.", "formal": "습니다."}[register]

    # ---- reviews --------------------------------------------------------------------------------
    def review(self, label: int) -> Review:
        """One review with the given label (1 = 긍정, 0 = 부정), 5–25 words long."""
        while True:
            rev = self._review(label)
            n = len(rev.text.split())
            if 5 <= n <= 25:
                return rev

    def _end(self) -> str:
        return self.rng.choices([".", "!", "~", ".."], [0.8, 0.1, 0.05, 0.05])[0]

    def _hard_review(self, label: int) -> Review:
        r = self.rng
        pol = 1 if label == 1 else -1
        reg = r.choice(REGISTERS)
        shape = r.choice(["late_turn", "chain", "turn_back"])
        if shape == "late_turn":
            parts = [self.clause(-pol, end=r.choice(["고", "서"]), register=reg),
                     self.clause(-pol, end="final", register=reg, also=True) + ".",
                     r.choice(L.CONTRAST_OPENERS),
                     self.clause(pol, end="final", register=reg, topic=r.random() < 0.5) + self._end()]
        elif shape == "chain":
            parts = [self.clause(pol, end=r.choice(["지만", "는데"]), register=reg, topic=True),
                     self.clause(-pol, end="final", register=reg, topic=True) + ".",
                     r.choice(L.CONTRAST_OPENERS),
                     self.clause(pol, end="final", register=reg, topic=r.random() < 0.5) + self._end()]
        else:
            parts = [self.clause(-pol, end="고", register=reg),
                     self.clause(-pol, end="지만", register=reg, also=True),
                     self.clause(pol, end="final", register=reg) + self._end()]
        return Review(" ".join(parts), label, "hard_" + shape)

    def _review(self, label: int) -> Review:
        r = self.rng
        self._used: set[Predicate] = set()
        if self.hard_share and self.lexicon != "heldout" and r.random() < self.hard_share:
            return self._hard_review(label)
        pol = 1 if label == 1 else -1
        reg = r.choice(REGISTERS)
        shape = r.choices(["single", "coord", "contrast", "two", "triple"], [0.25, 0.2, 0.3, 0.15, 0.1])[0]
        parts: list[str] = []
        lead = r.random()
        if lead < 0.15:
            parts.append(self.filler(reg, connective=False))
        elif lead < 0.3 and shape in ("single", "coord"):
            parts.append(self.filler(reg, connective=True))
        if shape == "single":
            parts.append(self.clause(pol, end="final", register=reg) + self._end())
        elif shape == "coord":
            conn = r.choice(["고", "고", "서"])
            parts.append(self.clause(pol, end=conn, register=reg))
            parts.append(self.clause(pol, end="final", register=reg, also=r.random() < 0.4) + self._end())
        elif shape == "contrast":
            conn = r.choice(["지만", "지만", "는데"])
            parts.append(self.clause(-pol, end=conn, register=reg, topic=r.random() < 0.5))
            parts.append(self.clause(pol, end="final", register=reg, topic=r.random() < 0.5) + self._end())
        elif shape == "two":
            parts.append(self.clause(-pol, end="final", register=reg, topic=r.random() < 0.5) + ".")
            parts.append(r.choice(L.CONTRAST_OPENERS))
            parts.append(self.clause(pol, end="final", register=reg, topic=r.random() < 0.5) + self._end())
        else:  # triple
            parts.append(self.clause(-pol, end="지만", register=reg, topic=True))
            parts.append(self.clause(pol, end="고", register=reg))
            parts.append(self.clause(pol, end="final", register=reg, also=r.random() < 0.5) + self._end())
        tail = r.random()
        if tail < 0.1 and self.lexicon != "heldout":
            parts.append(r.choice([t for t, p in L.RATINGS if p == pol]))
        elif tail < 0.15:
            parts.append(r.choice(L.CLOSERS))
        return Review(" ".join(parts), label, shape)


def make_splits(sizes: dict[str, int], seed: int, zipf: float = 1.0, lexicon: str = "all",
                seen: set[str] | None = None, hard_share: float = 0.0) -> dict[str, list[Review]]:
    """Balanced splits with no text shared between (or repeated within) splits, nor with ``seen``."""
    gen = ReviewGenerator(seed, zipf=zipf, lexicon=lexicon, hard_share=hard_share)
    seen = set(seen or ())
    out: dict[str, list[Review]] = {}
    for name, n in sizes.items():
        rows: list[Review] = []
        for i in range(n):
            label = i % 2
            while True:
                rev = gen.review(label)
                if rev.text not in seen:
                    seen.add(rev.text)
                    rows.append(rev)
                    break
        gen.rng.shuffle(rows)
        out[name] = rows
    return out
