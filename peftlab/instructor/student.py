"""Student notebooks from solution notebooks (``solutions/NN_*.ipynb`` -> ``notebooks/NN_*.ipynb``).

See ``docs/notebook-format.md`` for the contract. :func:`strip_solutions` is the pure transform
(also used by the grader); :func:`build_student` applies it to a folder, deterministically.
"""

from __future__ import annotations

import copy
from pathlib import Path

from nbformat import NotebookNode

from peftlab.instructor.notebook import (
    ANSWER,
    ANSWER_STUB,
    BEGIN_HIDDEN,
    BEGIN_SOLUTION,
    CHECK,
    CODE_STUB,
    END_HIDDEN,
    END_SOLUTION,
    EXERCISE,
    MD_BEGIN_SOLUTION,
    MD_END_SOLUTION,
    NotebookFormatError,
    cell_label,
    cell_role,
    find_regions,
    list_notebooks,
    read_notebook,
    validate_notebook,
    week_from_filename,
    write_notebook,
)

__all__ = ["build_student", "lock_cell", "strip_cell", "strip_solutions"]


def _replace_regions(lines: list[str], regions: list[tuple[int, int]], stub_for) -> list[str]:
    """``lines`` with every ``(begin, end)`` region (markers included) replaced by ``stub_for(begin line)``."""
    out: list[str] = []
    pos = 0
    for begin, end in regions:
        out.extend(lines[pos:begin])
        out.extend(stub_for(lines[begin]))
        pos = end + 1
    out.extend(lines[pos:])
    return out


def _code_stub(begin_line: str) -> list[str]:
    indent = begin_line[: len(begin_line) - len(begin_line.lstrip())]
    return [indent + line for line in CODE_STUB]


def _strip_trailing_blank_lines(lines: list[str]) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def lock_cell(cell: NotebookNode) -> None:
    """Make a cell read-only in Jupyter (``editable``/``deletable`` false), as nbgrader's LockCells."""
    cell.metadata["editable"] = False
    cell.metadata["deletable"] = False


def strip_cell(cell: NotebookNode, where: str = "cell") -> NotebookNode:
    """The student version of one (valid) cell; ``cell`` itself is not modified."""
    cell = copy.deepcopy(cell)
    role = cell_role(cell)
    lines = cell.source.split("\n")
    if role == EXERCISE:
        lines = _replace_regions(lines, find_regions(lines, BEGIN_SOLUTION, END_SOLUTION, where), _code_stub)
    elif role == ANSWER:
        regions = find_regions(lines, MD_BEGIN_SOLUTION, MD_END_SOLUTION, where)
        lines = _replace_regions(lines, regions, lambda _line: [ANSWER_STUB])
    elif role == CHECK:
        regions = find_regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)
        if regions:
            lines = _strip_trailing_blank_lines(_replace_regions(lines, regions, lambda _line: []))
        lock_cell(cell)
    cell.source = "\n".join(lines)
    cell.metadata.pop("execution", None)
    if cell.cell_type == "code":
        cell.outputs = []
        cell.execution_count = None
    return cell


def strip_solutions(nb: NotebookNode, nb_name: str = "notebook") -> NotebookNode:
    """The student copy of a solution notebook (a new node; ``nb`` is not modified).

    Exercise solution regions become ``# YOUR CODE HERE`` + ``raise NotImplementedError()`` at the
    BEGIN marker's indentation, markdown answer regions become the answer placeholder, hidden-test
    regions are removed, check cells are locked, every output and execution count is cleared.
    Cell ids and ``peftlab`` metadata are kept. Raises :class:`NotebookFormatError` if ``nb``
    breaks the contract (``nb_name`` names it in the message).
    """
    validate_notebook(nb, nb_name)
    student = copy.deepcopy(nb)
    student.cells = [strip_cell(cell, cell_label(nb_name, i, cell)) for i, cell in enumerate(nb.cells)]
    return student


def build_student(src: Path, dst: Path) -> list[Path]:
    """Write ``dst/NN_*.ipynb`` for every ``src/NN_*.ipynb`` and return the written paths.

    Output is byte-identical on rebuild (unchanged files are not rewritten). Files ``dst/NN_*.ipynb``
    without a source in ``src`` are removed; other files in ``dst`` are left alone. Every source is
    validated before anything is written, so a bad source leaves ``dst`` untouched.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"src {str(src)!r} is not a folder of solution notebooks (NN_*.ipynb)")
    if src.resolve() == dst.resolve():
        raise ValueError(f"src and dst are the same folder ({str(src)!r}); the student copies would overwrite the solutions")

    students: dict[str, NotebookNode] = {}
    for path in list_notebooks(src):
        nb = read_notebook(path)
        week = validate_notebook(nb, path.name)
        if week != week_from_filename(path):
            raise NotebookFormatError(
                f"{path.name}: nb.metadata.peftlab.week is {week!r} but the file name says {week_from_filename(path)!r}"
            )
        students[path.name] = strip_solutions(nb, path.name)

    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for name, nb in students.items():
        write_notebook(nb, dst / name)
        written.append(dst / name)
    for stale in list_notebooks(dst):
        if stale.name not in students:
            stale.unlink()
    return written
