"""Student notebooks are generated from solutions exactly as docs/notebook-format.md says."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import nbformat
import pytest

from peftlab.instructor.notebook import (
    ANSWER_STUB,
    NotebookFormatError,
    list_notebooks,
    read_notebook,
    role_cells_by_id,
    serialize,
    write_notebook,
)
from peftlab.instructor.student import build_student, strip_solutions

REPO = Path(__file__).resolve().parents[2]
PIPELINE = Path(__file__).resolve().parents[1] / "fixtures" / "pipeline"
FIXTURE = PIPELINE / "99_fixture.ipynb"


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("student")
    build_student(PIPELINE, dst)
    return dst


@pytest.fixture(scope="module")
def student(student_dir: Path) -> nbformat.NotebookNode:
    return read_notebook(student_dir / FIXTURE.name)


def test_build_writes_one_student_notebook_per_solution(student_dir: Path) -> None:
    assert [p.name for p in list_notebooks(student_dir)] == [FIXTURE.name]


def test_exercise_regions_become_stubs_at_marker_indentation(student) -> None:
    cells = role_cells_by_id(student)
    assert cells["ex-99.1"].cell.source == (
        "def scale(x, alpha):\n"
        '    """Return ``x`` scaled by ``alpha``."""\n'
        "    if alpha == 0:\n"
        "        return 0 * x\n"
        "    # YOUR CODE HERE\n"
        "    raise NotImplementedError()"
    )
    assert cells["ex-99.2"].cell.source == (
        "answer_99_2 = None  # the rank r (an int)\n# YOUR CODE HERE\nraise NotImplementedError()"
    )


def test_answer_region_becomes_placeholder(student) -> None:
    source = role_cells_by_id(student)["99.3"].cell.source
    assert source == "**질문 99.3.** LoRA에서 B를 0으로 초기화하는 이유는?\n\n" + ANSWER_STUB
    assert "ΔW" not in source


def test_hidden_tests_removed_and_check_cells_locked(student) -> None:
    checks = {rc.id: rc.cell for rc in role_cells_by_id(student, "check").values()}
    assert checks["99.1"].source == "check.q99_1(scale)"
    assert checks["99.2"].source == "check.q99_2(answer_99_2)"
    for cell in checks.values():
        assert cell.metadata["editable"] is False
        assert cell.metadata["deletable"] is False
    others = [c for c in student.cells if c.metadata.get("peftlab", {}).get("role") != "check"]
    assert all("editable" not in c.metadata for c in others)


def test_no_marker_or_solution_text_left(student_dir: Path) -> None:
    text = (student_dir / FIXTURE.name).read_text(encoding="utf-8")
    for word in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS", "return x * alpha", "answer_99_2 = 4"):
        assert word not in text


def test_outputs_cleared_ids_and_metadata_kept(student) -> None:
    solution = read_notebook(FIXTURE)
    assert any(c.get("outputs") for c in solution.cells), "the fixture should have stored outputs"
    assert [c.id for c in student.cells] == [c.id for c in solution.cells]
    assert [c.cell_type for c in student.cells] == [c.cell_type for c in solution.cells]
    assert student.metadata == solution.metadata
    for ours, theirs in zip(student.cells, solution.cells, strict=True):
        assert ours.metadata.get("peftlab") == theirs.metadata.get("peftlab")
        assert "execution" not in ours.metadata
        if ours.cell_type == "code":
            assert ours.outputs == []
            assert ours.execution_count is None
        if "peftlab" not in ours.metadata:  # pristine cells are copied verbatim
            assert ours.source == theirs.source


def test_strip_solutions_is_pure() -> None:
    nb = read_notebook(FIXTURE)
    before = copy.deepcopy(nb)
    stripped = strip_solutions(nb, FIXTURE.name)
    assert nb == before
    assert stripped is not nb
    assert stripped == strip_solutions(nb, FIXTURE.name)


def test_build_is_deterministic(tmp_path: Path, student_dir: Path) -> None:
    again = tmp_path / "again"
    build_student(PIPELINE, again)
    first = (student_dir / FIXTURE.name).read_bytes()
    assert (again / FIXTURE.name).read_bytes() == first
    assert first.endswith(b"\n") and not first.endswith(b"\n\n")
    assert serialize(read_notebook(again / FIXTURE.name)).encode() == first  # stable key order
    # rebuilding in place leaves the file untouched (same bytes, same mtime)
    target = again / FIXTURE.name
    os.utime(target, ns=(1_000_000_000, 1_000_000_000))
    assert build_student(PIPELINE, again) == [target]
    assert target.read_bytes() == first
    assert target.stat().st_mtime_ns == 1_000_000_000


def test_stale_student_notebooks_are_removed(tmp_path: Path) -> None:
    dst = tmp_path / "notebooks"
    dst.mkdir()
    for name in ("98_removed_week.ipynb", "notes.ipynb", "README.md"):
        (dst / name).write_text("{}", encoding="utf-8")
    build_student(PIPELINE, dst)
    assert sorted(p.name for p in dst.iterdir()) == ["99_fixture.ipynb", "README.md", "notes.ipynb"]


def test_empty_source_folder_empties_student_notebooks(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "01_old.ipynb").write_text("{}", encoding="utf-8")
    assert build_student(tmp_path / "src", dst) == []
    assert list(dst.iterdir()) == []


def test_missing_source_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a folder"):
        build_student(tmp_path / "nope", tmp_path / "dst")


# --- malformed sources ----------------------------------------------------------------------------


def _edit_source(index: int, source: str):
    def edit(nb):
        nb.cells[index].source = source

    return edit


def _edit_meta(index: int, meta: dict | None):
    def edit(nb):
        if meta is None:
            nb.cells[index].metadata.pop("peftlab", None)
        else:
            nb.cells[index].metadata["peftlab"] = meta

    return edit


def _drop_week(nb):
    del nb.metadata["peftlab"]


def _week(value):
    def edit(nb):
        nb.metadata["peftlab"]["week"] = value

    return edit


# cells of the fixture: 0 md title, 1 setup, 2 exercise ex-99.1, 3 check 99.1, 4 exercise ex-99.2,
# 5 check 99.2, 6 answer 99.3, 7 pristine code
MALFORMED = {
    "begin-without-end": (
        _edit_source(2, "def f():\n    ### BEGIN SOLUTION\n    return 1"),
        [r"cell 2", "ex-99.1", "### BEGIN SOLUTION", "never closed"],
    ),
    "end-without-begin": (
        _edit_source(2, "def f():\n    return 1\n    ### END SOLUTION"),
        [r"cell 2", "### END SOLUTION", "without a matching"],
    ),
    "nested-begin": (
        _edit_source(2, "### BEGIN SOLUTION\n### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### END SOLUTION"),
        [r"cell 2", "inside the region"],
    ),
    "hidden-begin-without-end": (
        _edit_source(3, "check.q99_1(scale)\n### BEGIN HIDDEN TESTS\nassert True"),
        [r"cell 3", "'99.1'", "### BEGIN HIDDEN TESTS", "never closed"],
    ),
    "markdown-begin-without-end": (
        _edit_source(6, "Q?\n<!-- BEGIN SOLUTION -->\nmodel answer"),
        [r"cell 6", "<!-- BEGIN SOLUTION -->", "never closed"],
    ),
    "solution-marker-in-pristine-code-cell": (
        _edit_source(7, "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
        [r"cell 7", "not allowed here", "role None"],
    ),
    "solution-marker-in-check-cell": (
        _edit_source(3, "### BEGIN SOLUTION\ncheck.q99_1(scale)\n### END SOLUTION"),
        [r"cell 3", "not allowed here", "role 'check'"],
    ),
    "solution-marker-in-pristine-markdown": (
        _edit_source(0, "# title\n<!-- BEGIN SOLUTION -->\nsecret\n<!-- END SOLUTION -->"),
        [r"cell 0", "not allowed here"],
    ),
    "code-marker-in-answer-cell": (
        _edit_source(6, "Q?\n### BEGIN SOLUTION\nA\n### END SOLUTION"),
        [r"cell 6", "not allowed here", "role 'answer'"],
    ),
    "hidden-marker-in-exercise-cell": (
        _edit_source(2, "### BEGIN SOLUTION\nx = 1\n### END SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS"),
        [r"cell 2", "### BEGIN HIDDEN TESTS", "not allowed here"],
    ),
    "hidden-marker-outside-check-cell": (
        _edit_source(7, "x = 1\n### BEGIN HIDDEN TESTS\nassert x == 1\n### END HIDDEN TESTS"),
        [r"cell 7", "### BEGIN HIDDEN TESTS", "not allowed here"],
    ),
    "misspelt-marker": (
        _edit_source(2, "def f():\n    ## BEGIN SOLUTION\n    return 1\n    ### END SOLUTION"),
        [r"cell 2", "looks like a marker", "## BEGIN SOLUTION"],
    ),
    "plural-marker": (
        _edit_source(2, "### BEGIN SOLUTIONS\nx = 1\n### END SOLUTIONS"),
        [r"cell 2", "looks like a marker"],
    ),
    "exercise-without-region": (
        _edit_source(2, "def scale(x, alpha):\n    return x * alpha"),
        [r"cell 2", "needs at least one"],
    ),
    "answer-without-region": (
        _edit_source(6, "Q? A."),
        [r"cell 6", "needs at least one"],
    ),
    "duplicate-role-id": (
        _edit_meta(5, {"role": "check", "id": "99.1"}),
        [r"cell 5", "duplicate role id '99.1'", "cell 3"],
    ),
    "unknown-role": (
        _edit_meta(7, {"role": "solution", "id": "x"}),
        [r"cell 7", "unknown role 'solution'", "allowed"],
    ),
    "role-on-wrong-cell-type": (
        _edit_meta(0, {"role": "exercise", "id": "x"}),
        [r"cell 0", "needs a code cell", "markdown"],
    ),
    "role-without-id": (
        _edit_meta(3, {"role": "check"}),
        [r"cell 3", "needs metadata.peftlab.id"],
    ),
    "missing-week": (_drop_week, ["missing nb.metadata.peftlab.week"]),
    "malformed-week": (_week("1"), ["week is '1'", "two digits"]),
    "week-differs-from-file-name": (_week("98"), ["'98'", "file name says '99'"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_source_is_a_clear_error(case: str, tmp_path: Path) -> None:
    edit, fragments = MALFORMED[case]
    nb = read_notebook(FIXTURE)
    edit(nb)
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    nbformat.write(nb, str(src / FIXTURE.name))
    dst.mkdir()
    (dst / "01_untouched.ipynb").write_text("{}", encoding="utf-8")
    with pytest.raises(NotebookFormatError) as info:
        build_student(src, dst)
    message = str(info.value)
    assert message.startswith(FIXTURE.name), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    # a failed build writes and removes nothing
    assert [p.name for p in dst.iterdir()] == ["01_untouched.ipynb"]


def test_marker_rules_also_apply_to_strip_solutions() -> None:
    nb = read_notebook(FIXTURE)
    nb.cells[7].source = "### BEGIN SOLUTION\nx = 1\n### END SOLUTION"
    with pytest.raises(NotebookFormatError, match="mine.ipynb cell 7"):
        strip_solutions(nb, "mine.ipynb")


# --- the repository's notebooks/ ------------------------------------------------------------------


def test_repo_student_notebooks_are_generated_from_solutions(tmp_path: Path) -> None:
    """notebooks/ is exactly what `peftlab build-student solutions notebooks` writes."""
    solutions, notebooks = REPO / "solutions", REPO / "notebooks"
    committed = {p.name: p for p in list_notebooks(notebooks)}
    if not list_notebooks(solutions):
        assert not committed, f"notebooks/ has {sorted(committed)} but solutions/ has no NN_*.ipynb"
        return
    built = {p.name: p for p in build_student(solutions, tmp_path / "notebooks")}
    stale = sorted(set(committed) - set(built))
    missing = sorted(set(built) - set(committed))
    differ = sorted(n for n in set(built) & set(committed) if built[n].read_bytes() != committed[n].read_bytes())
    assert not (stale or missing or differ), (
        f"notebooks/ is out of date (extra: {stale}, missing: {missing}, differ: {differ}); "
        "run `make student` (peftlab build-student solutions notebooks)"
    )


def test_cells_without_ids_get_deterministic_ids(tmp_path: Path) -> None:
    """nbformat would invent random ids for a 4.5 notebook saved without them; we must not."""
    raw = json.loads(FIXTURE.read_text(encoding="utf-8"))
    for cell in raw["cells"]:
        del cell["id"]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / FIXTURE.name).write_text(json.dumps(raw), encoding="utf-8")
    build_student(tmp_path / "src", tmp_path / "a")
    build_student(tmp_path / "src", tmp_path / "b")
    first = (tmp_path / "a" / FIXTURE.name).read_bytes()
    assert first == (tmp_path / "b" / FIXTURE.name).read_bytes()
    ids = [c.id for c in read_notebook(tmp_path / "a" / FIXTURE.name).cells]
    assert all(ids) and len(set(ids)) == len(ids)


@pytest.mark.slow
def test_validate_runs_a_notebook_and_reports_every_check(tmp_path):
    """`peftlab validate` (no pytest, no nbval): the solution passes everything, the blank copy fails every
    check, another week's notebook is refused with a clear error."""
    import shutil

    from peftlab.instructor.student import strip_solutions
    from peftlab.validate import ValidationError, validate

    fixture = Path(__file__).parents[1] / "fixtures" / "pipeline"
    shutil.copy(fixture / "week99_checks.py", tmp_path)
    solution = read_notebook(fixture / "99_fixture.ipynb")
    write_notebook(solution, tmp_path / "solved.ipynb")
    write_notebook(strip_solutions(solution, "99_fixture.ipynb"), tmp_path / "blank.ipynb")
    lines: list[str] = []
    good = validate("99", tmp_path / "solved.ipynb", echo=lines.append)
    assert good["passed"] == ["99.1", "99.2"] and not good["failed"] and not good["errors"], lines
    blank = validate("99", tmp_path / "blank.ipynb", echo=lines.append)
    assert blank["failed"] == ["99.1", "99.2"] and blank["points"] == 0
    assert any("❌ 99.1" in ln for ln in lines)
    with pytest.raises(ValidationError, match="week 99 notebook, not week 01"):
        validate("01", tmp_path / "solved.ipynb")
