"""Generators for the embedded ``tiny`` profile (``python -m peftlab.datagen --out data``).

* :mod:`.reviews` — labelled Korean movie-review sentiment set (the labelling rule is documented there)
  and the held-out-lexicon split
* :mod:`.corpus` — unlabeled pretraining corpus (movie talk with verdicts, everyday sentences)
* :mod:`.world` — the synthetic world and its knowledge corpus (the causal LM's facts)
* :mod:`.instructions` — one-word instruction/answer pairs for causal-LM fine-tuning
* :mod:`.tokenizer`, :mod:`.pretrain` — tokenizer, pretraining loops (encoder: masked LM + verdict
  objectives; causal LM: next token)
* :mod:`.probe`, :mod:`.lmprobe`, :mod:`.targets` — the two behaviour tables, measured with peft's LoRA
  and the package's training loop (:func:`peftlab.train.fit`) after every build, and the targets a build
  must meet
* :mod:`.build`, :mod:`.readme` — the pipeline, ``MANIFEST.json`` and ``README.md``
"""

from .corpus import make_corpus
from .instructions import format_instruction, make_instructions
from .reviews import Review, ReviewGenerator, make_splits

__all__ = ["Review", "ReviewGenerator", "format_instruction", "make_corpus", "make_instructions", "make_splits"]
