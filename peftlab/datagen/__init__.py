"""Generators for the embedded ``tiny`` profile (``python -m peftlab.datagen --out data``).

* :mod:`.reviews` — labelled Korean movie-review sentiment set (the labelling rule is documented there)
* :mod:`.corpus` — unlabeled pretraining corpus
* :mod:`.instructions` — short instruction/answer pairs for causal-LM fine-tuning
* :mod:`.tokenizer`, :mod:`.pretrain`, :mod:`.probe` — tokenizer, pretraining loops, the
  pretrained-vs-scratch fine-tuning proof
* :mod:`.build` — the pipeline, ``MANIFEST.json`` and ``README.md``
"""

from .corpus import make_corpus
from .instructions import format_instruction, make_instructions
from .reviews import Review, ReviewGenerator, make_splits

__all__ = ["Review", "ReviewGenerator", "format_instruction", "make_corpus", "make_instructions", "make_splits"]
