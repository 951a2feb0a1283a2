"""Silence third-party messages that say nothing a student can act on.

Each entry is specific (module + message), so real warnings still show:

* bitsandbytes' CPU backend logs "Failed to load CPU gemm_4bit_forward from kernels-community" on
  CPUs with AVX512-BF16 when the optional ``kernels`` package (which downloads kernels from the Hub)
  is absent; peftlab never uses it.
* peft calls transformers' deprecated ``is_gradient_checkpointing`` (a FutureWarning about peft's own
  code, not the user's).
* tqdm warns "IProgress not found" in Jupyter without ipywidgets; progress bars fall back to text.
"""

from __future__ import annotations

import logging
import warnings


def quiet_third_party() -> None:
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r"IProgress not found.*")
