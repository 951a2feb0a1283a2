"""nbval settings that hold wherever a notebook is validated from this folder.

``pytest --nbval-lax solutions/NN_*.ipynb`` (or ``notebooks/NN_*.ipynb``, here or in a student release)
loads this file because it sits at the root, so the settings do not depend on ``tests/`` being collected:

* nbval does not compare stderr (warnings, progress bars);
* outputs are sanitised with the patterns in ``nbval_sanitize.cfg`` beside this file (addresses,
  machine paths, durations, progress bars, devices), and paths under this folder fold to ``<PATH>``.

The hooks live in a plugin object registered in ``pytest_configure``: a plain conftest hook would only
see collectors under this folder's own test paths.

Under pytest-xdist (``make test`` runs ``-n 2``) one worker runs all the cells of a notebook, in order,
in one kernel; the other tests are spread one by one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SANITIZE_FILE = ROOT / "nbval_sanitize.cfg"
#: the rest of a path after the root; the same folding as the cfg's machine-path rule
_PATH_TAIL = r"(?:/[^\s'\"<>()\[\]{},;:]*)?"


def read_sanitize_patterns(path: Path = SANITIZE_FILE) -> dict[str, str]:
    """``regex → replacement`` pairs of an nbval sanitize file (``regex:`` line, then ``replace:`` line)."""
    pairs: dict[str, str] = {}
    regex = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("regex:"):
            regex = line[len("regex:"):].strip()
        elif line.startswith("replace:") and regex is not None:
            pairs[regex] = line[len("replace:"):].strip()
            regex = None
    return pairs


class _NbvalSettings:
    """Adjusts every nbval notebook collector (``IPyNbFile``) at collection start."""

    @pytest.hookimpl
    def pytest_collectstart(self, collector: pytest.Collector) -> None:
        path = getattr(collector, "path", None)
        if path is None or Path(path).suffix != ".ipynb" or not hasattr(collector, "skip_compare"):
            return
        collector.skip_compare += ("stderr",)
        collector.sanitize_patterns[re.escape(str(ROOT)) + _PATH_TAIL] = "<PATH>"
        for regex, replace in read_sanitize_patterns().items():
            collector.sanitize_patterns.setdefault(regex, replace)


class _NotebookScheduling:
    """Under pytest-xdist: the cells of one notebook run on one worker, in order, in one kernel; every
    other test is its own unit of work. (Registered only when xdist is installed.)"""

    @pytest.hookimpl
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") not in ("load", "loadscope"):
            return None
        from xdist.scheduler import LoadScopeScheduling

        class NotebookScheduling(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                path = nodeid.split("::", 1)[0]
                return path if path.endswith(".ipynb") else nodeid

        return NotebookScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("peftlab-nbval-settings"):
        config.pluginmanager.register(_NbvalSettings(), "peftlab-nbval-settings")
    if config.pluginmanager.has_plugin("xdist") and not config.pluginmanager.has_plugin("peftlab-notebook-scheduling"):
        config.pluginmanager.register(_NotebookScheduling(), "peftlab-notebook-scheduling")
