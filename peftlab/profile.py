"""Which profile the course runs on, and where the embedded data lives.

* ``tiny`` (default; offline, CPU): the kit's own tiny models and data under ``data/``, made by
  ``python -m peftlab.datagen --out data`` (``make data``).
* ``colab`` (GPU, network): Hub models and datasets.

The profile comes from the argument, else ``$PEFTLAB_PROFILE``, else ``"tiny"``. The data root is
``$PEFTLAB_DATA`` if set, else the repository's ``data/`` folder. Both :mod:`peftlab.data` and
:mod:`peftlab.models` resolve through this module, so neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV", "HUB_MODELS", "PROFILES", "PROFILE_ENV", "data_root", "get_profile"]

PROFILE_ENV = "PEFTLAB_PROFILE"
PROFILES = ("tiny", "colab")
DATA_ENV = "PEFTLAB_DATA"
#: Hub ids of the `colab` profile's models (re-exported by :mod:`peftlab.models`; :mod:`peftlab.standins` mirrors them).
HUB_MODELS = {"encoder": "klue/bert-base", "causal_lm": "Qwen/Qwen2.5-0.5B"}


def get_profile(profile: str | None = None) -> str:
    """``profile`` if given, else ``$PEFTLAB_PROFILE``, else ``"tiny"``; anything else is a ValueError."""
    if profile is not None:
        source, value = "profile", profile
    else:
        source, value = PROFILE_ENV, os.environ.get(PROFILE_ENV, "tiny")
    if value not in PROFILES:
        raise ValueError(f"{source}={value!r}: unknown profile; allowed: {', '.join(map(repr, PROFILES))}")
    return value


def data_root() -> Path:
    """The folder holding the embedded data; a clear error when it is missing."""
    env = os.environ.get(DATA_ENV)
    root = Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "data"
    if not (root / "MANIFEST.json").is_file():
        source = f"${DATA_ENV}={env!r}" if env else "the repository's data/ folder"
        raise FileNotFoundError(
            f"No peftlab data at {root} ({source}): MANIFEST.json is missing. "
            "Build it with `make data` (python -m peftlab.datagen --out data), "
            f"or point ${DATA_ENV} at a folder built by that command."
        )
    return root
