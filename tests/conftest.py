"""pytest setup shared by every test, including nbval's notebook items.

* Fixture notebooks under ``tests/fixtures`` are inputs of the pipeline tests, not nbval items.
* nbval does not compare stderr (warnings, progress bars) — ANCHORS §9, nbval #88/#168.
* Paths under the repository are folded to ``<PATH>`` in nbval comparisons, like the machine paths
  ``tests/nbval_sanitize.cfg`` folds (the cfg cannot know where the repository lives); the cfg also
  folds addresses, durations, tqdm bars and devices.

The nbval hooks live in a plugin object registered in ``pytest_configure``: a plain conftest hook
would only see collectors under ``tests/``, not ``solutions/*.ipynb``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: the rest of a path after the repository root; the same folding as the cfg's machine-path rule
_PATH_TAIL = r"(?:/[^\s'\"<>()\[\]{},;:]*)?"

collect_ignore_glob = ["fixtures/*", "*/.ipynb_checkpoints/*"]


class _NbvalSettings:
    """Adjusts every nbval notebook collector (``IPyNbFile``) at collection start."""

    @pytest.hookimpl
    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        path = getattr(collector, "path", None)
        if path is None or Path(path).suffix != ".ipynb" or not hasattr(collector, "skip_compare"):
            return
        collector.skip_compare += ("stderr",)
        # nbval fills sanitize_patterns from the cfg file later (dict.update keeps this entry first)
        collector.sanitize_patterns[re.escape(str(REPO)) + _PATH_TAIL] = "<PATH>"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("peftlab-nbval-settings"):
        config.pluginmanager.register(_NbvalSettings(), "peftlab-nbval-settings")
