"""Earlier home of LoRA; the method now lives in :mod:`peftlab.methods.lora` (kept as an alias module)."""

from peftlab.methods.lora import *  # noqa: F401,F403
from peftlab.methods.lora import __all__  # noqa: F401
