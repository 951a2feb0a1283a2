"""A WordPiece tokenizer trained on the generated text, wrapped as a transformers fast tokenizer."""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[BOS]", "[EOS]"]


def train_wordpiece(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a cased WordPiece model (Hangul is never decomposed: no accent stripping)."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False,
        continuing_subword_prefix="##",
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


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
