"""One file per method; importing a file registers its method with :mod:`peftlab.tuner`.

``lora.py`` — LoRA and rsLoRA (``LoRALinear``, ``LoRAEmbedding``); ``dora.py`` — DoRA (``DoRALinear``);
``waveft.py`` — WaveFT (``WaveFTLinear``); ``qlora.py`` — QLoRA (``QLoRALinear`` over a 4-bit
``QuantLinear``); ``vblora.py`` — VB-LoRA (``VBLoRALinear`` over one shared vector bank). The later weeks add ``ia3.py``, ``prompts.py`` and ``adapters.py``; see
``docs/architecture.md`` for the checklist.
"""

from peftlab.methods import (
    adapters,  # noqa: F401  (registers "houlsby")
    dora,  # noqa: F401  (registers "dora")
    ia3,  # noqa: F401  (registers "ia3")
    lora,  # noqa: F401  (registers "lora")
    prompts,  # noqa: F401  (input-side wrappers: not registered, they inject no layers)
    qlora,  # noqa: F401  (registers "qlora")
    vblora,  # noqa: F401  (registers "vblora")
    waveft,  # noqa: F401  (registers "waveft")
)
