"""pytest setup for the unit tests. The nbval settings live in the root ``conftest.py`` (they must also
hold when a notebook is validated alone); fixture notebooks under ``tests/fixtures`` are inputs of the
pipeline tests, not nbval items.

The folders mirror the package (``core/``, ``methods/``, ``quant/``, ``analysis/``, ``compare/``, ``checks/``, ``instructor/``,
``datagen/``; a top-level module's test sits here); ``helpers.py`` beside this file is importable from all of them.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

collect_ignore_glob = ["fixtures/*", "*/.ipynb_checkpoints/*"]
