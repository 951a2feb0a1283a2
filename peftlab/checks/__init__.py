"""Auto-checked exercises and checkpoint questions, one module per notebook (``week01`` …)."""

from peftlab.checks._core import REGISTRY, CheckFailed, CheckInfo, checkpoint, expect, set_reporter

__all__ = ["REGISTRY", "CheckFailed", "CheckInfo", "checkpoint", "expect", "set_reporter"]
