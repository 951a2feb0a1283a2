"""Shared notebook helpers: cell roles and ids, marker parsing, deterministic reading and writing.

The cell-role contract lives in ``docs/notebook-format.md``. In short, a special cell carries
``cell.metadata["peftlab"] = {"role": ROLE, "id": ID}`` with ``ROLE`` one of :data:`ROLES`, and the
notebook carries ``nb.metadata["peftlab"] = {"week": "NN"}``.

Everything here is pure (no kernel, no imports of the course package) so that the student builder,
the executor and the grader can share it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import nbformat.reader
from nbformat import NotebookNode

from peftlab.core.fileio import atomic_write

__all__ = [
    "ANSWER",
    "ANSWER_STUB",
    "CHECK",
    "CODE_STUB",
    "EXERCISE",
    "MD_BEGIN_SOLUTION",
    "MD_END_SOLUTION",
    "BEGIN_HIDDEN",
    "BEGIN_SOLUTION",
    "END_HIDDEN",
    "END_SOLUTION",
    "NOTEBOOK_RE",
    "NotebookFormatError",
    "ROLES",
    "RoleCell",
    "cell_error",
    "cell_label",
    "cell_role",
    "cell_role_id",
    "check_passed",
    "find_machine_paths",
    "find_regions",
    "list_notebooks",
    "notebook_week",
    "output_text",
    "pass_line",
    "read_notebook",
    "role_cells",
    "role_cells_by_id",
    "serialize",
    "validate_notebook",
    "week_from_filename",
    "write_notebook",
]

# --- roles -----------------------------------------------------------------------------------

EXERCISE = "exercise"
ANSWER = "answer"
CHECK = "check"
#: role -> the cell type it must have
ROLES: dict[str, str] = {EXERCISE: "code", ANSWER: "markdown", CHECK: "code"}

# --- markers (a marker is alone on its line; surrounding whitespace is ignored) ----------------

BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
BEGIN_HIDDEN = "### BEGIN HIDDEN TESTS"
END_HIDDEN = "### END HIDDEN TESTS"
MD_BEGIN_SOLUTION = "<!-- BEGIN SOLUTION -->"
MD_END_SOLUTION = "<!-- END SOLUTION -->"

#: what a code solution region becomes in the student copy (at the BEGIN marker's indentation)
CODE_STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
#: what a markdown solution region becomes in the student copy
ANSWER_STUB = "✍️ 여기에 답을 쓰세요 (YOUR ANSWER HERE)"

#: any line mentioning one of these must be an exact marker in a cell of the right role
_MARKER_WORDS = re.compile(r"\b(BEGIN|END)[\s_-]+(SOLUTIONS?|HIDDEN)\b", re.IGNORECASE)

#: file names of course notebooks: two-digit week, underscore, name
NOTEBOOK_RE = re.compile(r"^(?P<week>\d{2})_[^/\\]+\.ipynb$")


#: absolute paths that only exist on one machine; they must never appear in stored outputs
_MACHINE_PATH_RE = re.compile(r"(?<![\w.~-])/(?:root|home|tmp|work|Users|content)/[^\s'\"<>()\[\]{},;:]*")


class NotebookFormatError(ValueError):
    """A notebook breaks the cell-role contract (docs/notebook-format.md)."""


@dataclass(frozen=True)
class RoleCell:
    """A cell with a ``peftlab`` role: its position, role, id and the cell itself."""

    index: int
    role: str
    id: str
    cell: NotebookNode


# --- reading and writing ---------------------------------------------------------------------


def read_notebook(path: Path) -> NotebookNode:
    """Read and validate a notebook as nbformat v4.

    Unlike ``nbformat.read``, cells of an nbformat 4.5 notebook that lack an id get a deterministic
    id (nbformat would invent random ones, breaking byte-identical rebuilds).
    """
    text = Path(path).read_text(encoding="utf-8")
    nb = nbformat.reader.reads(text)  # parses without validating (validation would add random ids)
    if nb.nbformat != 4:
        nb = nbformat.convert(nb, 4)
    _ensure_cell_ids(nb)
    nbformat.validate(nb)
    return nb


def _ensure_cell_ids(nb: NotebookNode) -> None:
    """Give cells without an id a deterministic one (nbformat ≥ 4.5 requires ids).

    nbformat would otherwise invent random ids on write, which breaks byte-identical rebuilds.
    """
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        return
    seen = {c.get("id") for c in nb.cells if c.get("id")}
    for index, cell in enumerate(nb.cells):
        if not cell.get("id"):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            digest = hashlib.sha1(f"{index}\n{source}".encode()).hexdigest()[:8]
            new_id = f"cell-{digest}"
            while new_id in seen:
                new_id = "x" + new_id
            cell["id"] = new_id
            seen.add(new_id)


def serialize(nb: NotebookNode) -> str:
    """The notebook as text: nbformat's JSON (sorted keys, indent 1) plus a trailing newline."""
    _ensure_cell_ids(nb)
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb: NotebookNode, path: Path) -> bool:
    """Write ``nb`` to ``path`` deterministically; return whether the file changed.

    An unchanged file is not rewritten, so its modification time stays as it was.
    """
    data = serialize(nb).encode("utf-8")
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    atomic_write(path, data)
    return True


def list_notebooks(folder: Path) -> list[Path]:
    """The course notebooks (``NN_*.ipynb``) directly in ``folder``, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and NOTEBOOK_RE.match(p.name))


def week_from_filename(path: Path | str) -> str:
    """``"01"`` for ``01_lora_review.ipynb``; ``ValueError`` for other names."""
    name = Path(path).name
    m = NOTEBOOK_RE.match(name)
    if not m:
        raise ValueError(f"notebook file name {name!r} does not look like 'NN_name.ipynb'")
    return m.group("week")


# --- roles, ids and weeks --------------------------------------------------------------------


def _peftlab_meta(node: NotebookNode) -> dict:
    meta = node.get("metadata", {}).get("peftlab")
    return meta if isinstance(meta, dict) else {}


def cell_role(cell: NotebookNode) -> str | None:
    """The cell's ``peftlab`` role, or ``None`` for a pristine cell."""
    return _peftlab_meta(cell).get("role")


def cell_role_id(cell: NotebookNode) -> str | None:
    """The cell's ``peftlab`` id, or ``None``."""
    value = _peftlab_meta(cell).get("id")
    return None if value is None else str(value)


def cell_label(nb_name: str, index: int, cell: NotebookNode) -> str:
    """``"01_x.ipynb cell 7 (id '1.2', role check)"`` — how errors name a cell."""
    parts = []
    role_id = cell_role_id(cell)
    if role_id is not None:
        parts.append(f"id {role_id!r}")
    elif cell.get("id"):
        parts.append(f"cell id {cell['id']!r}")
    role = cell_role(cell)
    if role is not None:
        parts.append(f"role {role}")
    suffix = f" ({', '.join(parts)})" if parts else ""
    return f"{nb_name} cell {index}{suffix}"


def notebook_week(nb: NotebookNode, nb_name: str = "notebook") -> str:
    """``nb.metadata.peftlab.week`` as a two-digit string; ``NotebookFormatError`` if missing/bad."""
    week = _peftlab_meta(nb).get("week")
    if week is None:
        raise NotebookFormatError(
            f"{nb_name}: missing nb.metadata.peftlab.week (expected e.g. {{'peftlab': {{'week': '01'}}}})"
        )
    week = str(week)
    if not re.fullmatch(r"\d{2}", week):
        raise NotebookFormatError(f"{nb_name}: nb.metadata.peftlab.week is {week!r}; expected two digits like '01'")
    return week


def role_cells(nb: NotebookNode, role: str | None = None) -> Iterator[RoleCell]:
    """Every cell with a role (or only those with ``role``), in notebook order.

    Assumes a valid notebook (see :func:`validate_notebook`): role cells have an id.
    """
    for index, cell in enumerate(nb.cells):
        r = cell_role(cell)
        if r is None or (role is not None and r != role):
            continue
        yield RoleCell(index=index, role=r, id=cell_role_id(cell) or "", cell=cell)


def role_cells_by_id(nb: NotebookNode, role: str | None = None) -> dict[str, RoleCell]:
    """:func:`role_cells` keyed by role id (ids are unique in a valid notebook)."""
    return {rc.id: rc for rc in role_cells(nb, role)}


# --- markers ---------------------------------------------------------------------------------


def find_regions(lines: list[str], begin: str, end: str, where: str) -> list[tuple[int, int]]:
    """Line-index pairs ``(begin, end)`` of the ``begin``…``end`` regions in ``lines``.

    Regions may not nest. ``where`` names the cell in error messages.
    """
    regions: list[tuple[int, int]] = []
    start: int | None = None
    for i, line in enumerate(lines):
        s = line.strip()
        if s == begin:
            if start is not None:
                raise NotebookFormatError(
                    f"{where}: {begin!r} on line {i + 1} inside the region opened on line {start + 1} "
                    f"(missing {end!r}?)"
                )
            start = i
        elif s == end:
            if start is None:
                raise NotebookFormatError(f"{where}: {end!r} on line {i + 1} without a matching {begin!r}")
            regions.append((start, i))
            start = None
    if start is not None:
        raise NotebookFormatError(f"{where}: {begin!r} on line {start + 1} is never closed by {end!r}")
    return regions


def _allowed_markers(cell: NotebookNode) -> tuple[str, ...]:
    role = cell_role(cell)
    if role == EXERCISE:
        return (BEGIN_SOLUTION, END_SOLUTION)
    if role == ANSWER:
        return (MD_BEGIN_SOLUTION, MD_END_SOLUTION)
    if role == CHECK:
        return (BEGIN_HIDDEN, END_HIDDEN)
    return ()


def _marker_rule(cell: NotebookNode) -> str:
    """What the contract allows, for error messages."""
    return (
        f"'{BEGIN_SOLUTION}' regions belong in code cells with role {EXERCISE!r}, "
        f"'{MD_BEGIN_SOLUTION}' regions in markdown cells with role {ANSWER!r}, "
        f"'{BEGIN_HIDDEN}' regions in code cells with role {CHECK!r}; "
        f"this cell is a {cell.cell_type} cell with role {cell_role(cell)!r}"
    )


def validate_notebook(nb: NotebookNode, nb_name: str = "notebook") -> str:
    """Check ``nb`` against the cell-role contract and return its week.

    Raises :class:`NotebookFormatError` naming the notebook, the cell (index and id) and the
    problem: missing week, unknown role, role on the wrong cell type, missing or duplicate role
    id, a marker in a cell whose role does not allow it, a misspelt marker, unbalanced or nested
    markers, an exercise/answer cell without a solution region.
    """
    week = notebook_week(nb, nb_name)
    seen: dict[str, int] = {}
    for index, cell in enumerate(nb.cells):
        where = cell_label(nb_name, index, cell)
        role = cell_role(cell)
        if role is not None:
            if role not in ROLES:
                raise NotebookFormatError(f"{where}: unknown role {role!r}; allowed: {sorted(ROLES)}")
            if cell.cell_type != ROLES[role]:
                raise NotebookFormatError(
                    f"{where}: role {role!r} needs a {ROLES[role]} cell, this is a {cell.cell_type} cell"
                )
            role_id = cell_role_id(cell)
            if not role_id:
                raise NotebookFormatError(f"{where}: a cell with role {role!r} needs metadata.peftlab.id")
            if role_id in seen:
                raise NotebookFormatError(
                    f"{where}: duplicate role id {role_id!r} (also used by cell {seen[role_id]})"
                )
            seen[role_id] = index
        _validate_markers(cell, where)
    return week


def _validate_markers(cell: NotebookNode, where: str) -> None:
    allowed = _allowed_markers(cell)
    lines = cell.get("source", "").split("\n")
    for i, line in enumerate(lines):
        if not _MARKER_WORDS.search(line):
            continue
        if line.strip() not in allowed:
            if line.strip() in (BEGIN_SOLUTION, END_SOLUTION, BEGIN_HIDDEN, END_HIDDEN,
                                MD_BEGIN_SOLUTION, MD_END_SOLUTION):
                problem = f"marker {line.strip()!r} not allowed here: {_marker_rule(cell)}"
            else:
                problem = (
                    f"line {i + 1} looks like a marker but is not one: {line.strip()!r} "
                    f"(a marker is alone on its line, spelt exactly; {_marker_rule(cell)})"
                )
            raise NotebookFormatError(f"{where}: {problem}")
    role = cell_role(cell)
    if role in (EXERCISE, ANSWER):
        begin, end = allowed
        if not find_regions(lines, begin, end, where):
            raise NotebookFormatError(f"{where}: a cell with role {role!r} needs at least one {begin!r} region")
    elif role == CHECK:
        find_regions(lines, BEGIN_HIDDEN, END_HIDDEN, where)


# --- outputs ---------------------------------------------------------------------------------


def pass_line(check_id: str) -> str:
    """The line a passing check prints (see ``peftlab.checks._core``)."""
    return f"✅ 체크포인트 {check_id} — 공개 체크 통과"


def output_text(cell: NotebookNode) -> str:
    """All text a code cell's outputs show: streams, ``text/plain`` results, error name and value."""
    parts: list[str] = []
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            parts.append(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif kind == "error":
            parts.append(f"{out.get('ename', '')}: {out.get('evalue', '')}")
    return "\n".join(parts)


def cell_error(cell: NotebookNode) -> tuple[str, str] | None:
    """``(ename, evalue)`` of the cell's error output, or ``None`` if it has none."""
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out.get("ename", ""), out.get("evalue", "")
    return None


def check_passed(cell: NotebookNode) -> bool:
    """Whether a check cell's outputs contain its pass line and no error."""
    role_id = cell_role_id(cell)
    return role_id is not None and cell_error(cell) is None and pass_line(role_id) in output_text(cell)


def _output_strings(cell: NotebookNode) -> Iterator[str]:
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            yield out.get("text", "")
        elif out.get("output_type") == "error":
            yield out.get("evalue", "")
            yield from out.get("traceback", [])
        for mime, value in out.get("data", {}).items():
            if isinstance(value, str) and (mime.startswith("text/") or mime.endswith("json")):
                yield value


def find_machine_paths(nb: NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, path)`` for every absolute machine path (/root, /home, /tmp, /work, …) in outputs."""
    found = []
    for index, cell in enumerate(nb.cells):
        for text in _output_strings(cell):
            found.extend((index, m.group(0)) for m in _MACHINE_PATH_RE.finditer(text))
    return found
