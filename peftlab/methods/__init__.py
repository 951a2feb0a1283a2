"""One file per method; importing a file registers its method with :mod:`peftlab.tuner`.

``lora.py`` — LoRA and rsLoRA (``LoRALinear``, ``LoRAEmbedding``). The later weeks add ``dora.py``,
``waveft.py``, ``vblora.py``, ``ia3.py``, ``prompts.py``, ``adapters.py`` and ``qlora.py``; see
``docs/architecture.md`` for the checklist.
"""

from peftlab.methods import lora  # noqa: F401  (registers "lora")
