"""Small Hangul helpers: final-consonant tests, particles and predicate conjugation.

Everything here is pure string manipulation on precomposed Hangul syllables (U+AC00..U+D7A3), so
the generated text is byte-identical on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field

_BASE = 0xAC00
_N_FINALS = 28
_FINAL_B = 17  # index of ㅂ among the 28 final consonants (0 = none)


def _is_syllable(ch: str) -> bool:
    return _BASE <= ord(ch) <= 0xD7A3


def has_batchim(word: str) -> bool:
    """True when the last syllable of ``word`` ends in a consonant (받침). Latin letters count as vowels
    (``CG`` → 씨지, ``OST`` → 오에스티), digits by their Korean reading."""
    ch = word[-1]
    if _is_syllable(ch):
        return (ord(ch) - _BASE) % _N_FINALS != 0
    return ch in "013678"  # 영 일 삼 륙 칠 팔 end in a consonant


def particle(word: str, pair: str) -> str:
    """``word`` plus the right form of a two-form particle, ``pair`` in "이/가", "은/는", "을/를", "과/와"."""
    with_final, without_final = pair.split("/")
    return word + (with_final if has_batchim(word) else without_final)


def add_final_b(syllables: str) -> str:
    """Add ㅂ as final consonant to the last (open) syllable: 하 → 합, 이 → 입, 쁘 → 쁩."""
    ch = syllables[-1]
    code = ord(ch) - _BASE
    if code % _N_FINALS != 0:
        raise ValueError(f"syllables={syllables!r}: last syllable already has a final consonant")
    return syllables[:-1] + chr(_BASE + code + _FINAL_B)


def drop_final_b(syllables: str) -> str:
    """Remove the final ㅂ of the last syllable: 답 → 다, 럽 → 러 (for ㅂ-irregular stems)."""
    ch = syllables[-1]
    code = ord(ch) - _BASE
    if code % _N_FINALS != _FINAL_B:
        raise ValueError(f"syllables={syllables!r}: last syllable does not end in ㅂ")
    return syllables[:-1] + chr(_BASE + code - _FINAL_B)


@dataclass(frozen=True)
class Predicate:
    """One evaluative predicate with the stems needed to conjugate it.

    ``stem``: dictionary stem without 다 (좋, 훌륭하, 아름답, 감동적이); ``past``: past stem (좋았);
    ``a_form``: the -아/어 connective form (좋아, 훌륭해, 아름다워); ``polarity``: +1 or -1;
    ``adjective``: descriptive verbs allow present-tense endings; ``negatable``: long (-지 않다) and
    short (안) negation read naturally; ``mot``: -지 못했다 reads naturally (positive predicates);
    ``subjects``: fixed subjects (돈이/시간이) for viewer predicates, empty for aspect predicates;
    ``viewer``: a predicate about the viewer (몰입했다) rather than about an aspect of the film.
    """

    stem: str
    past: str
    a_form: str
    polarity: int
    adjective: bool = True
    negatable: bool = True
    mot: bool = False
    short_neg: bool = True
    viewer: bool = False
    subjects: tuple[str, ...] = field(default_factory=tuple)
    polite_present: str = ""

    # ---- endings -------------------------------------------------------------------------------
    def final(self, register: str, tense: str) -> str:
        """Sentence-final form. ``register`` in plain/polite/formal, ``tense`` in past/present/exclaim."""
        if tense == "past" or not self.adjective:
            return past_final(self.past, register)
        if tense == "exclaim":
            return self.past + "네요" if register != "plain" else self.past + "네"
        # present tense of a descriptive verb
        if register == "plain":
            return self.stem + "다"
        if register == "polite":
            return self.polite_present or self.a_form + "요"
        return present_formal(self.stem)

    def neg_final(self, register: str, tense: str, kind: str) -> str:
        """Negated sentence-final form; ``kind`` in long (-지 않다), mot (-지 못하다), short (안)."""
        if kind == "short":
            return "안 " + self.final(register, tense)
        aux = "못했" if kind == "mot" else "않았"
        if tense == "present" and self.adjective and kind == "long":
            return self.stem + {"plain": "지 않다", "polite": "지 않아요", "formal": "지 않습니다"}[register]
        return self.stem + "지 " + past_final(aux, register)

    def connective(self, conn: str) -> str:
        """Non-final form before another clause: conn in 고, 지만, 는데, 서."""
        if conn == "서":
            return self.a_form + "서"
        return self.past + conn

    def neg_connective(self, conn: str, kind: str) -> str:
        if kind == "short":
            return "안 " + self.connective(conn)
        aux = "못했" if kind == "mot" else "않았"
        if conn == "서":
            return self.stem + ("지 못해서" if kind == "mot" else "지 않아서")
        return self.stem + "지 " + aux + conn


def past_final(past: str, register: str) -> str:
    """Past stem plus a sentence ending: 좋았 → 좋았다 / 좋았어요 / 좋았습니다."""
    return past + {"plain": "다", "polite": "어요", "formal": "습니다"}[register]


def present_formal(stem: str) -> str:
    """Formal present: 좋 → 좋습니다, 훌륭하 → 훌륭합니다, 감동적이 → 감동적입니다."""
    return stem + "습니다" if has_batchim(stem) else add_final_b(stem) + "니다"


# ---- constructors for the regular classes ---------------------------------------------------------
def ha(root: str, polarity: int, **kw) -> Predicate:
    """하다-adjective: 훌륭 → 훌륭하 / 훌륭했 / 훌륭해."""
    return Predicate(root + "하", root + "했", root + "해", polarity, **kw)


def b_irregular(stem: str, polarity: int, **kw) -> Predicate:
    """ㅂ-irregular adjective: 아름답 → 아름다웠 / 아름다워."""
    open_ = drop_final_b(stem)
    return Predicate(stem, open_ + "웠", open_ + "워", polarity, **kw)


def ida(noun: str, polarity: int, **kw) -> Predicate:
    """Noun + 이다: 감동적 → 감동적이 / 감동적이었 / 감동적이어; 최고 → 최고이 / 최고였 / 최고여."""
    if has_batchim(noun):
        return Predicate(noun + "이", noun + "이었", noun + "이어", polarity, short_neg=False,
                         polite_present=noun + "이에요", **kw)
    return Predicate(noun + "이", noun + "였", noun + "여", polarity, short_neg=False,
                     polite_present=noun + "예요", **kw)


def reg(stem: str, past: str, a_form: str, polarity: int, **kw) -> Predicate:
    """Any other predicate, stems given explicitly."""
    return Predicate(stem, past, a_form, polarity, **kw)
