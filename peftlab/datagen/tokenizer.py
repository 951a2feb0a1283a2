"""A WordPiece tokenizer trained on the generated text, wrapped as a transformers fast tokenizer."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]


def _empty(model) -> Tokenizer:
    tok = Tokenizer(model)
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    return tok


def _words(texts: Iterable[str]) -> Counter:
    """Word counts after the tokenizer's own normalizer and pre-tokenizer (whitespace and punctuation)."""
    norm = normalizers.Sequence([normalizers.NFC(), normalizers.Strip()])
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter = Counter()
    for t in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    return counts


def train_wordpiece(texts: Iterable[str], vocab_size: int, keep_words: Iterable[str] = (),
                    suffixes: Iterable[str] = ()) -> Tokenizer:
    """A cased WordPiece vocabulary (Hangul is never decomposed), built deterministically.

    (The ``tokenizers`` WordPiece trainer breaks ties between equally frequent merges in hash order,
    so two runs on the same text give different vocabularies; this builder is plain counting with
    ties broken by the string itself.) The vocabulary: the special tokens; every character, as a
    word start and as a ``##`` continuation; ``keep_words`` and ``##`` + each of ``suffixes``; then,
    by descending frequency, whole words, word-initial pieces and ``##`` word endings (two or more
    characters) until ``vocab_size``. WordPiece's longest-match rule then cuts a rare word into its
    most frequent known start and endings.

    ``keep_words`` are whole tokens that never merge with what follows them: every piece that starts
    with a kept word and is longer is left out, so the longest match cuts 고슴도치이다 into 고슴도치 +
    ##이다 and 소빈의 into 소빈 + ##의 — one token per entity however it is inflected (stem and
    ending, 어간/어미).
    """
    counts = _words(texts)
    keep = sorted(set(keep_words))
    score: Counter = Counter()
    chars: set[str] = set()
    for w, c in counts.items():
        chars.update(w)
        score[w] += c
        for k in range(2, len(w)):
            score[w[:k]] += c
        for k in range(1, len(w) - 1):
            score["##" + w[k:]] += c
    base = [*SPECIAL_TOKENS, *sorted(chars), *sorted("##" + ch for ch in chars), *keep,
            *(f"##{x}" for x in suffixes)]
    vocab: dict[str, int] = {}
    for t in base:
        vocab.setdefault(t, len(vocab))

    def blocked(t: str) -> bool:
        return not t.startswith("##") and any(t != w and t.startswith(w) for w in keep)

    for t, c in sorted(score.items(), key=lambda kv: (-kv[1], kv[0])):
        if len(vocab) >= vocab_size:
            break
        if c >= 2 and t not in vocab and not blocked(t):
            vocab[t] = len(vocab)
    return _empty(models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100))


def encoder_tokenizer(tok: Tokenizer):
    """BERT-style: ``[CLS] text [SEP]`` (pairs: ``[CLS] a [SEP] b [SEP]``)."""
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer.from_str(tok.to_str())
    cls_id, sep_id = t.token_to_id("[CLS]"), t.token_to_id("[SEP]")
    t.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=128, padding_side="right",
    )


def causal_tokenizer(tok: Tokenizer):
    """Llama-style: ``[BOS] text`` (no EOS added; training text appends ``[EOS]`` itself)."""
    from transformers import PreTrainedTokenizerFast

    t = Tokenizer.from_str(tok.to_str())
    bos_id = t.token_to_id("[BOS]")
    t.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", pair="[BOS] $A $B:1", special_tokens=[("[BOS]", bos_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=t, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]",
        model_max_length=256, padding_side="left",
    )
