"""One file per method; importing a file registers its method with :mod:`peftlab.core.tuner`.

``lora.py`` — LoRA, and rsLoRA as a comparison variant (``LoRALinear``, ``LoRAEmbedding``); ``dora.py`` — DoRA
(``DoRALinear``); ``waveft.py`` — WaveFT (``WaveFTLinear``); ``qlora.py`` — QLoRA (``QLoRALinear`` over a 4-bit
``QuantLinear``); ``vblora.py`` — VB-LoRA (``VBLoRALinear`` over one shared vector bank). The later weeks add
``ia3.py`` — IA³, ``prompts.py`` — prompt tuning and prefix tuning (model-level: wrappers, no layers) and
``adapters.py`` — Houlsby adapters; see ``docs/architecture.md`` for the checklist.

A new method adds one line below. The lines are in the course's order, which is the registry's order and so the
order of ``peftlab compare --methods all`` (a method imported by another, as LoRA by DoRA, registers first).
"""

# isort: off
from peftlab.methods import lora  # noqa: F401  (registers "lora", with the comparison variant "rslora")
from peftlab.methods import dora  # noqa: F401  (registers "dora")
from peftlab.methods import waveft  # noqa: F401  (registers "waveft")
from peftlab.methods import qlora  # noqa: F401  (registers "qlora")
from peftlab.methods import vblora  # noqa: F401  (registers "vblora")
from peftlab.methods import ia3  # noqa: F401  (registers "ia3")
from peftlab.methods import prompts  # noqa: F401  (registers "prompt_tuning", "prefix_tuning": model-level)
from peftlab.methods import adapters  # noqa: F401  (registers "houlsby")
# isort: on
