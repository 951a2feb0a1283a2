"""pytest setup for the unit tests. The nbval settings live in the root ``conftest.py`` (they must also
hold when a notebook is validated alone); fixture notebooks under ``tests/fixtures`` are inputs of the
pipeline tests, not nbval items."""

from __future__ import annotations

collect_ignore_glob = ["fixtures/*", "*/.ipynb_checkpoints/*"]
