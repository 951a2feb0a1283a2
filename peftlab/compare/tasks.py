"""The two tasks a comparison trains on: sentiment classification (accuracy) and instructions (exact match).

A task loads its data and model for a :class:`~peftlab.compare.config.CompareConfig`, hands out training batches,
computes the loss and scores every evaluation example 0 or 1; :func:`_task` picks the task of a configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from peftlab.compare.config import CompareConfig


class _SentimentTask:
    metric = "accuracy"

    def __init__(self, cfg: CompareConfig, split: str = "test"):
        from peftlab.data import load_sentiment
        from peftlab.models import load_tokenizer
        from peftlab.train import encode

        data = load_sentiment(cfg.profile)
        tok = load_tokenizer("encoder", cfg.profile)
        train = data["train"]
        if cfg.train_size is not None:
            train = train.select(range(min(cfg.train_size, len(train))))
        self.train = encode(train, tok)
        self.eval = encode(data[split], tok)
        self.cfg = cfg

    def model(self):
        from peftlab.models import load_encoder_classifier

        return load_encoder_classifier(2, pretrained=True, profile=self.cfg.profile)

    def batch(self, idx):
        from peftlab.train import _trim

        ids, mask = _trim(self.train.input_ids[idx], self.train.attention_mask[idx])
        return {"input_ids": ids, "attention_mask": mask}, self.train.labels[idx]

    def n_train(self) -> int:
        return len(self.train)

    @staticmethod
    def loss(model, inputs, labels):
        import torch.nn.functional as F

        return F.cross_entropy(model(**inputs).logits.float(), labels)

    def evaluate(self, model) -> list[int]:
        """1 where the model classifies a test review right, 0 where not, in the split's order."""
        from peftlab.train import predict_logits

        pred = predict_logits(model, self.eval, device=next(model.parameters()).device).argmax(-1).cpu()
        return (pred == self.eval.labels).int().tolist()


class _InstructionTask:
    metric = "exact_match"

    def __init__(self, cfg: CompareConfig, split: str = "test"):
        from peftlab.data import load_instructions
        from peftlab.models import load_tokenizer
        from peftlab.train import encode_answer_pairs

        data = load_instructions(cfg.profile)
        self.tok = tok = load_tokenizer("causal_lm", cfg.profile)
        rows = data["train"]
        if split == "validation":  # the instruction set has no validation split: hold out the last 20 % of train
            cut = int(0.8 * len(rows))
            rows, self.eval_rows = rows.select(range(cut)), [dict(r) for r in rows.select(range(cut, len(rows)))]
        else:
            self.eval_rows = [dict(r) for r in data["test"]]
        if cfg.train_size is not None:
            rows = rows.select(range(min(cfg.train_size, len(rows))))
        self.pairs = encode_answer_pairs(tok, rows)  # loss on the answer tokens and [EOS] only
        self.cfg = cfg

    def model(self):
        from peftlab.models import load_causal_lm

        return load_causal_lm(self.cfg.profile)

    def n_train(self) -> int:
        return len(self.pairs)

    def batch(self, idx):
        from peftlab.train import answer_batch

        ids, mask, labels = answer_batch([self.pairs[int(i)] for i in idx], self.tok.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask}, labels

    @staticmethod
    def loss(model, inputs, labels):
        import torch.nn.functional as F

        logits = _text_logits(model(**inputs).logits, inputs["input_ids"])[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)

    def evaluate(self, model) -> list[int]:
        """Exact match of greedy answers (up to 8 new tokens, stop at EOS or a newline): 1 or 0 per test row."""
        from peftlab.train import greedy_answers

        answers = greedy_answers(model, self.tok, [r["instruction"] for r in self.eval_rows], batch_size=64)
        return [int(a == r["output"]) for a, r in zip(answers, self.eval_rows, strict=True)]


def _text_logits(logits, input_ids):
    """The logits of the text positions: prompt tuning returns its virtual positions first (as peft does)."""
    return logits[:, logits.shape[1] - input_ids.shape[1]:]


def _task(cfg: CompareConfig, split: str = "test"):
    return (_SentimentTask if cfg.task == "sentiment" else _InstructionTask)(cfg, split)
