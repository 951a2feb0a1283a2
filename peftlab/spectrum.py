"""Earlier name of :mod:`peftlab.analysis.svd` (kept so existing notebooks keep running)."""

from peftlab.analysis.svd import *  # noqa: F401,F403
from peftlab.analysis.svd import __all__  # noqa: F401
