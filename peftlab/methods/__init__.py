"""One file per method; importing a file registers its method with :mod:`peftlab.tuner`.

``lora.py`` — LoRA and rsLoRA (``LoRALinear``, ``LoRAEmbedding``); ``dora.py`` — DoRA (``DoRALinear``);
``waveft.py`` — WaveFT (``WaveFTLinear``). The later weeks add ``vblora.py``, ``ia3.py``, ``prompts.py``,
``adapters.py`` and ``qlora.py``; see ``docs/architecture.md`` for the checklist.
"""

from peftlab.methods import (
    dora,  # noqa: F401  (registers "dora")
    lora,  # noqa: F401  (registers "lora")
    waveft,  # noqa: F401  (registers "waveft")
)
