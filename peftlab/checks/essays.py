"""The essay items of every week: open answers the instructor scores with a rubric (``answer`` cells).

With the auto-checks' :data:`peftlab.checks.REGISTRY` this table is the one source of points: headings,
rubric lines, the answer cells' first line and each notebook's total are rendered from the two
(``peftlab points``, ``peftlab/instructor/points.py``). An essay's id is its answer cell's id.
"""

from __future__ import annotations

from peftlab.checks._core import CheckInfo

__all__ = ["ESSAYS", "essays_of"]

_POINTS = {
    "00": {"0.1-essay": 2, "0.2-essay": 2, "0.3-essay": 2, "0.5-essay": 2},
    "01": {"1.1-essay": 2, "1.3-essay": 2},
    "02": {"2.1-essay": 2, "2.2-essay": 2, "2.3-essay": 2},
    "03": {"3.1-essay": 2, "3.2-essay": 2, "3.3-essay": 2, "3.4-essay": 2},
    "04": {"4.1-essay": 2, "4.2-essay": 2, "4.3-essay": 2},
    "05": {"5.1-essay": 2, "5.2-essay": 2, "5.3-essay": 2},
    "06": {"6.1-essay": 2, "6.2-essay": 2, "6.3-essay": 2},
    "07": {"7.1-essay": 2, "7.2-essay": 2, "7.3-essay": 2},
}

#: every essay item, keyed by ``"<week>:<answer cell id>"`` (e.g. ``"01:1.1-essay"``)
ESSAYS: dict[str, CheckInfo] = {
    f"{week}:{cid}": CheckInfo(id=cid, week=week, points=float(points), title=f"essay {cid.removesuffix('-essay')}")
    for week, items in _POINTS.items() for cid, points in items.items()
}


def essays_of(week: str) -> dict[str, CheckInfo]:
    """The essays of ``week`` keyed by answer cell id."""
    return {info.id: info for key, info in ESSAYS.items() if info.week == week}
