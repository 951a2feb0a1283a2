"""``peftlab points``: render every notebook's points from one source.

The auto-checks' points live in :data:`peftlab.checks.REGISTRY`, the essays' in
:data:`peftlab.checks.essays.ESSAYS`. This module writes them into the solution notebooks' markdown (the
student build copies it): the points at the end of each ``연습 E1`` / ``체크포인트 1.2`` heading, the first
line's parenthesis and the ``*루브릭 (N점).*`` line of each essay (answer) cell, and the week's total under the
title. Only markdown changes, so stored outputs stay valid. ``render_points`` is idempotent; a test requires the
committed solutions to be rendered already, so a points change in the registry cannot drift from the text.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from nbformat import NotebookNode

from peftlab.instructor.notebook import list_notebooks, read_notebook, write_notebook

__all__ = ["HEADING_RE", "PointsError", "render_file", "render_folder", "render_points", "week_points"]

#: a heading that names a checkpoint or exercise; group "id" is its check id, "points" the rendered suffix
HEADING_RE = re.compile(
    r"^(?P<head>#{1,4} (?:\d+\.\s+)?(?:체크포인트|연습) (?P<id>\d+\.\d+|E\d+)\b.*?)"
    r"(?P<points>\s*\((?:자동 )?\d+(?:\.\d+)?점(?: \+ 서술 \d+(?:\.\d+)?점)?\)|\s*\(서술 \d+(?:\.\d+)?점\))?\s*$")
_RUBRIC_RE = re.compile(r"\*루브릭 \(\d+(?:\.\d+)?점\)\.\*")
_ESSAY_NOTE_RE = re.compile(r"\((?:서술 \d+(?:\.\d+)?점[:.,]? ?)?자동 채점하지 않습니다[^)]*\)")
_TOTAL_RE = re.compile(r"^\*\*배점\.\*\* .*$", re.M)


class PointsError(ValueError):
    """A notebook's headings or essays do not match the registry."""


def _fmt(points: float) -> str:
    return f"{points:g}"


def week_points(week: str) -> tuple[dict, dict]:
    """``(checks, essays)`` of ``week``: id → points, from the registry and the essay table."""
    from peftlab.checks import REGISTRY
    from peftlab.checks.essays import essays_of

    importlib.import_module(f"peftlab.checks.week{week}")
    checks = {info.id: info.points for key, info in REGISTRY.items() if info.week == week}
    essays = {cid: info.points for cid, info in essays_of(week).items()}
    return checks, essays


def _heading_suffix(cid: str, checks: dict, essays: dict) -> str:
    auto, essay = checks.get(cid), essays.get(f"{cid}-essay")
    if auto is not None and essay is not None:
        return f" (자동 {_fmt(auto)}점 + 서술 {_fmt(essay)}점)"
    if auto is not None:
        return f" ({_fmt(auto)}점)"
    if essay is not None:
        return f" (서술 {_fmt(essay)}점)"
    raise PointsError(f"heading names {cid!r}, which is neither a registered check nor an essay of this week")


def _total_line(checks: dict, essays: dict) -> str:
    ex = sum(p for cid, p in checks.items() if cid.startswith("E"))
    cp = sum(p for cid, p in checks.items() if not cid.startswith("E"))
    es = sum(essays.values())
    return (f"**배점.** 자동 채점 {_fmt(ex + cp)}점 (연습 {_fmt(ex)}점 + 체크포인트 {_fmt(cp)}점) + "
            f"서술 {_fmt(es)}점 (강사 채점) = 총 {_fmt(ex + cp + es)}점. 각 제목 끝의 괄호가 그 항목의 배점입니다.")


def render_points(nb: NotebookNode, week: str) -> NotebookNode:
    """Render ``week``'s points into ``nb`` in place and return it; raise :class:`PointsError` when a heading
    names an unknown id, a registered item has no heading or answer cell, or an essay cell has no rubric line."""
    checks, essays = week_points(week)
    seen_headings: set[str] = set()
    seen_essays: set[str] = set()
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        meta = cell.get("metadata", {}).get("peftlab", {})
        lines = cell.source.split("\n")
        for j, line in enumerate(lines):
            m = HEADING_RE.match(line)
            if m:
                seen_headings.add(m["id"])
                lines[j] = m["head"].rstrip() + _heading_suffix(m["id"], checks, essays)
        text = "\n".join(lines)
        if meta.get("role") == "answer":
            cid = meta.get("id")
            if cid not in essays:
                raise PointsError(f"cell {i}: answer cell {cid!r} is not in peftlab/checks/essays.py for week {week}")
            seen_essays.add(cid)
            pts = _fmt(essays[cid])
            if not _RUBRIC_RE.search(text):
                raise PointsError(f"cell {i}: answer cell {cid!r} has no '*루브릭 (N점).*' line")
            text = _RUBRIC_RE.sub(f"*루브릭 ({pts}점).*", text)
            note = f"(서술 {pts}점: 자동 채점하지 않습니다. 강사가 루브릭으로 채점합니다.)"
            head, sep, rest = text.partition("\n")
            if _ESSAY_NOTE_RE.search(head):
                head = _ESSAY_NOTE_RE.sub(note, head, count=1)
            else:
                head = head.rstrip() + " " + note
            text = head + sep + rest
        if i == _title_index(nb):
            total = _total_line(checks, essays)
            if _TOTAL_RE.search(text):
                text = _TOTAL_RE.sub(total, text, count=1)
            else:
                head, sep, rest = text.partition("\n")
                text = head + "\n\n" + total + (sep + rest if rest else "")
        cell.source = text
    missing = sorted(set(checks) - seen_headings)
    if missing:
        raise PointsError(f"week {week}: registered checks without a '### 체크포인트 …' / '### 연습 …' heading: {missing}")
    missing = sorted(set(essays) - seen_essays)
    if missing:
        raise PointsError(f"week {week}: essays without an answer cell: {missing}")
    return nb


def _title_index(nb: NotebookNode) -> int:
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return i
    raise PointsError("the notebook has no '# Week NN — …' title cell")


def render_file(path: Path) -> bool:
    """Render one solution notebook in place; True when it changed."""
    nb = read_notebook(path)
    week = nb.metadata["peftlab"]["week"]
    before = [c.source for c in nb.cells]
    render_points(nb, week)
    if [c.source for c in nb.cells] == before:
        return False
    write_notebook(nb, path)
    return True


def render_folder(src: Path) -> list[Path]:
    """Render every ``NN_*.ipynb`` in ``src``; the paths that changed."""
    return [p for p in list_notebooks(Path(src)) if render_file(p)]
