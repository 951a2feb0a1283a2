"""Build the notebook that is actually graded: the solution's skeleton plus the student's cells.

Student-owned cells (roles ``exercise`` and ``answer``) are taken from the submission, matched by
``metadata.peftlab.id`` and, failing that, by the nbformat cell id; a missing one becomes the blank
student stub. Every other cell — setup, prose, check cells with their hidden tests — is the
solution's. Extra cells in the submission are dropped, and the order is the solution's, so deleting,
adding or reordering cells changes nothing but the exercises themselves.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from peftlab.instructor.notebook import (
    ANSWER,
    EXERCISE,
    NotebookFormatError,
    cell_label,
    cell_role,
    cell_role_id,
    notebook_week,
)
from peftlab.instructor.student import strip_cell

__all__ = ["Assembled", "InvalidSubmission", "WrongWeek", "assemble", "read_submission"]

_STUDENT_ROLES = (EXERCISE, ANSWER)


class InvalidSubmission(ValueError):
    """The file is not a readable notebook."""


class WrongWeek(ValueError):
    """The notebook belongs to another week."""


@dataclass
class Assembled:
    """The graded notebook and what the assembly noticed (for the feedback file)."""

    nb: NotebookNode
    notes: list[str] = field(default_factory=list)


def read_submission(path: Path, week: str) -> NotebookNode:
    """Read a submitted notebook; raise :class:`InvalidSubmission` or :class:`WrongWeek`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = json.loads(text)
        if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
            raise InvalidSubmission("not a Jupyter notebook (no 'cells' list)")
        nb = nbformat.reads(text, as_version=4)
    except InvalidSubmission:
        raise
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidSubmission(f"노트북 파일을 읽을 수 없습니다 (not a valid notebook): {type(exc).__name__}") from None
    except Exception as exc:  # nbformat raises a zoo of errors on malformed input
        raise InvalidSubmission(f"노트북 파일을 읽을 수 없습니다 (not a valid notebook): {type(exc).__name__}") from None
    try:
        sub_week = notebook_week(nb, Path(path).name)
    except NotebookFormatError:
        sub_week = None
    if sub_week is not None and sub_week != week:
        raise WrongWeek(f"이 노트북은 {sub_week}주차입니다; {week}주차 노트북을 제출하세요 (wrong week)")
    return nb


def _student_cells(sub: NotebookNode) -> tuple[dict[tuple[str, str], NotebookNode], dict[str, NotebookNode]]:
    by_role_id: dict[tuple[str, str], NotebookNode] = {}
    by_cell_id: dict[str, NotebookNode] = {}
    for cell in sub.get("cells", []):
        role, rid = cell_role(cell), cell_role_id(cell)
        if role in _STUDENT_ROLES and rid is not None:
            by_role_id.setdefault((role, rid), cell)
        if cell.get("id"):
            by_cell_id.setdefault(str(cell["id"]), cell)
    return by_role_id, by_cell_id


def assemble(solution: NotebookNode, submission: NotebookNode, nb_name: str = "solution") -> Assembled:
    """The graded notebook: ``solution``'s cells, with student-owned cells from ``submission``."""
    by_role_id, by_cell_id = _student_cells(submission)
    graded = copy.deepcopy(solution)
    notes: list[str] = []
    cells = []
    for index, cell in enumerate(solution.cells):
        role, rid = cell_role(cell), cell_role_id(cell)
        new = copy.deepcopy(cell)
        if role in _STUDENT_ROLES:
            theirs = by_role_id.get((role, rid or ""))
            if theirs is None and cell.get("id"):
                candidate = by_cell_id.get(str(cell["id"]))
                if candidate is not None and cell_role(candidate) in (None, role):
                    theirs = candidate
            if theirs is None or theirs.get("cell_type") != cell.cell_type:
                new = strip_cell(cell, cell_label(nb_name, index, cell))
                notes.append(f"'{rid}' 셀이 제출본에 없어 빈 셀로 채점했습니다 (cell missing: graded as blank)")
            else:
                source = theirs.get("source", "")
                new.source = "".join(source) if isinstance(source, list) else str(source)
        if new.cell_type == "code":
            new.outputs = []
            new.execution_count = None
        new.metadata.pop("execution", None)
        cells.append(new)
    graded.cells = cells
    return Assembled(graded, notes)
