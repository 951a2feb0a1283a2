"""Auto-checked exercises and checkpoint questions, one module per notebook (``week01`` …).

``check_all("01")`` (a notebook's last cell) prints where the notebook stands: every check's latest outcome.
"""

from peftlab.checks._core import REGISTRY, CheckFailed, CheckInfo, checkpoint, expect, set_reporter
from peftlab.checks.summary import check_all

__all__ = ["REGISTRY", "CheckFailed", "CheckInfo", "check_all", "checkpoint", "expect", "set_reporter"]
