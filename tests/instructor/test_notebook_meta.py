"""Meta-tests of the checks: every check passes on its solution and FAILS on the blank student copy.

"A check that cannot fail is a defect." Each solution week is tested, and the same logic always runs
on the fixture week 99 (``tests/fixtures/pipeline``) so these tests exercise something even before
``solutions/`` has notebooks. The executor (``peftlab run`` / ``peftlab execute``) is tested here too.
"""

from __future__ import annotations

import importlib
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from nbformat.v4 import new_output

from peftlab.checks import REGISTRY
from peftlab.instructor.execute import execute_in_place, execute_notebook, run_course
from peftlab.instructor.notebook import (
    CHECK,
    EXERCISE,
    cell_error,
    cell_label,
    cell_role,
    list_notebooks,
    output_text,
    pass_line,
    read_notebook,
    role_cells,
    week_from_filename,
    write_notebook,
)
from peftlab.instructor.student import strip_solutions

REPO = Path(__file__).resolve().parents[2]
PIPELINE = Path(__file__).resolve().parents[1] / "fixtures" / "pipeline"
FIXTURE = PIPELINE / "99_fixture.ipynb"
CELL_TIMEOUT = 300.0


@dataclass(frozen=True)
class Week:
    """A solution notebook, the module that registers its checks, and where its student copy runs."""

    solution: Path
    checks_module: str
    cwd: Path

    def import_checks(self) -> None:
        if self.solution.parent == PIPELINE and str(PIPELINE) not in sys.path:
            sys.path.insert(0, str(PIPELINE))
        importlib.import_module(self.checks_module)


FIXTURE_WEEK = Week(FIXTURE, "week99_checks", PIPELINE)


def _solution_weeks() -> list:
    paths = list_notebooks(REPO / "solutions")
    if not paths:
        return [pytest.param(None, id="solutions", marks=pytest.mark.skip(reason="no solutions/NN_*.ipynb yet"))]
    cwd = REPO / "notebooks" if (REPO / "notebooks").is_dir() else REPO / "solutions"
    return [
        pytest.param(Week(p, f"peftlab.checks.week{week_from_filename(p)}", cwd), id=p.stem) for p in paths
    ]


ALL_WEEKS = [pytest.param(FIXTURE_WEEK, id="fixture-99"), *_solution_weeks()]
SLOW_WEEKS = [
    pytest.param(*p.values, id=p.id, marks=[*p.marks, pytest.mark.slow]) for p in _solution_weeks()
]


# --- (a) static: the solution's stored outputs and the registry -----------------------------------


def _stored_check_problems(path: Path) -> list[str]:
    """Check cells of a solution whose stored output is not their pass line."""
    nb = read_notebook(path)
    checks = list(role_cells(nb, CHECK))
    if not checks:
        return [f"{path.name} has no check cells"]
    problems = []
    for rc in checks:
        where = cell_label(path.name, rc.index, rc.cell)
        if not rc.cell.get("outputs"):
            problems.append(f"{where}: no stored output (run `peftlab execute` on the solution)")
        elif cell_error(rc.cell) is not None or pass_line(rc.id) not in output_text(rc.cell):
            problems.append(f"{where}: stored output lacks {pass_line(rc.id)!r}: {output_text(rc.cell)[:300]!r}")
    return problems


@pytest.mark.parametrize("week", ALL_WEEKS)
def test_every_check_passes_in_the_stored_solution(week: Week) -> None:
    problems = _stored_check_problems(week.solution)
    assert not problems, "\n".join(problems)


def test_stored_check_problems_are_detected(tmp_path: Path) -> None:
    nb = read_notebook(FIXTURE)
    nb.cells[3].outputs = [new_output("error", ename="CheckFailed", evalue="❌ 체크포인트 99.1: x", traceback=[])]
    nb.cells[5].outputs = []
    write_notebook(nb, tmp_path / FIXTURE.name)
    problems = _stored_check_problems(tmp_path / FIXTURE.name)
    assert len(problems) == 2
    assert "cell 3 (id '99.1', role check): stored output lacks" in problems[0]
    assert "cell 5 (id '99.2', role check): no stored output" in problems[1]


@pytest.mark.parametrize("week", ALL_WEEKS)
def test_check_cells_match_the_registry(week: Week) -> None:
    week.import_checks()
    number = week_from_filename(week.solution)
    registered = {info.id for info in REGISTRY.values() if info.week == number}
    in_notebook = {rc.id for rc in role_cells(read_notebook(week.solution), CHECK)}
    unknown = sorted(in_notebook - registered)
    unused = sorted(registered - in_notebook)
    assert not unknown, f"check cells {unknown} are not registered in {week.checks_module} (week {number})"
    assert not unused, f"checks {unused} of {week.checks_module} have no check cell in {week.solution.name}"


# --- (b) dynamic: the blank student notebook fails every check ------------------------------------


def _blank_student_problems(week: Week) -> list[str]:
    """Execute the blank student copy; describe every cell that behaves wrongly."""
    name = week.solution.name
    nb = strip_solutions(read_notebook(week.solution), name)
    nb, stopped, _ = execute_notebook(nb, week.cwd, timeout=CELL_TIMEOUT, allow_errors=True)
    problems = [f"{name}: execution stopped early ({stopped})"] if stopped else []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = cell_label(name, index, cell)
        error = cell_error(cell)
        role = cell_role(cell)
        if role == CHECK:
            if error is None:
                problems.append(f"{where}: the check did not fail on the blank notebook (a check that cannot fail)")
            elif error[0] != "CheckFailed":
                problems.append(
                    f"{where}: failed with {error[0]}: {error[1]} instead of CheckFailed "
                    "(names a check reads must exist in the student copy, e.g. `answer = None` above the region)"
                )
        elif role == EXERCISE:
            if error is not None and error[0] != "NotImplementedError":
                problems.append(f"{where}: the student stub raised {error[0]}: {error[1]}")
        elif error is not None:
            problems.append(f"{where}: a pristine cell errors on the blank notebook: {error[0]}: {error[1]}")
    return problems


def test_blank_fixture_student_notebook_fails_every_check() -> None:
    problems = _blank_student_problems(FIXTURE_WEEK)
    assert not problems, "\n".join(problems)


def test_checks_that_cannot_fail_are_detected(tmp_path: Path) -> None:
    nb = read_notebook(FIXTURE)
    nb.cells[4].source = "answer_99_2 = 4\n### BEGIN SOLUTION\nanswer_99_2 = 4\n### END SOLUTION"  # leaks
    nb.cells[3].source = "check.q99_1(scale_v2)"  # NameError before the check runs
    nb.cells[7].source = "print(answer_99_2 + 1)\nscale(1, 2)"  # a pristine cell using the stub
    write_notebook(nb, tmp_path / FIXTURE.name)
    problems = _blank_student_problems(Week(tmp_path / FIXTURE.name, FIXTURE_WEEK.checks_module, PIPELINE))
    assert len(problems) == 3, problems
    assert "cell 3 (id '99.1', role check): failed with NameError" in problems[0]
    assert "cell 5 (id '99.2', role check): the check did not fail" in problems[1]
    assert "cell 7" in problems[2] and "pristine cell errors" in problems[2] and "NotImplementedError" in problems[2]


@pytest.mark.parametrize("week", SLOW_WEEKS)
def test_blank_student_notebook_fails_every_check(week: Week) -> None:
    problems = _blank_student_problems(week)
    assert not problems, "\n".join(problems)


# --- the executor -----------------------------------------------------------------------------------


def _broken_notebook(path: Path) -> None:
    nb = read_notebook(FIXTURE)
    nb.metadata["peftlab"]["week"] = path.name[:2]
    nb.cells[7].source = 'raise RuntimeError("boom")'
    nb.cells[7].outputs = []
    write_notebook(nb, path)


def test_execute_in_place_reproduces_stored_outputs(tmp_path: Path, capsys) -> None:
    """Stored outputs come from `peftlab execute`; re-executing the fixture gives the same bytes."""
    shutil.copy(PIPELINE / "week99_checks.py", tmp_path)
    nb = read_notebook(FIXTURE)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2026-01-01T00:00:00Z"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7"}
    write_notebook(nb, tmp_path / FIXTURE.name)
    _broken_notebook(tmp_path / "98_broken.ipynb")
    broken_before = (tmp_path / "98_broken.ipynb").read_bytes()

    assert execute_in_place([tmp_path], timeout=60) == 1
    assert (tmp_path / FIXTURE.name).read_bytes() == FIXTURE.read_bytes()
    assert (tmp_path / "98_broken.ipynb").read_bytes() == broken_before, "a failed notebook must stay unchanged"
    out = capsys.readouterr().out
    assert "RuntimeError: boom" in out and "checks 2/2" in out


def test_execute_in_place_rejects_bad_paths(tmp_path: Path, capsys) -> None:
    assert execute_in_place([tmp_path / "missing.ipynb"], timeout=60) == 2
    assert "neither a notebook" in capsys.readouterr().err


def test_run_course_writes_html_and_summary(tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "src", tmp_path / "build"
    src.mkdir()
    shutil.copy(FIXTURE, src)
    shutil.copy(PIPELINE / "week99_checks.py", src)
    _broken_notebook(src / "98_broken.ipynb")

    assert run_course(src, out, names=None, timeout=60) == 1
    table = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [
        "98_broken.html", "98_broken.ipynb", "99_fixture.html", "99_fixture.ipynb",
    ]
    html = (out / "99_fixture.html").read_text(encoding="utf-8")
    assert pass_line("99.1") in html and pass_line("99.2") in html
    lines = table.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("notebook"))
    assert "seconds" in lines[header] and "checks" in lines[header] and "status" in lines[header]
    row = {line.split()[0]: line.split() for line in lines[header + 1:header + 3]}
    assert row["99_fixture.ipynb"][2:4] == ["2/2", "ok"]
    assert row["98_broken.ipynb"][3] == "ERROR" and "boom" in table
    executed = read_notebook(out / "99_fixture.ipynb")
    assert executed.metadata["kernelspec"]["name"] == "python3"
    assert "version" not in executed.metadata["language_info"]


def test_run_course_selects_notebooks_by_name(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(FIXTURE, src)
    shutil.copy(PIPELINE / "week99_checks.py", src)
    _broken_notebook(src / "98_broken.ipynb")
    assert run_course(src, tmp_path / "a", names=["99"], timeout=60) == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["99_fixture.html", "99_fixture.ipynb"]
    assert run_course(src, tmp_path / "b", names=["07_missing"], timeout=60) == 2
    err = capsys.readouterr().err
    assert "'07_missing'" in err and "98_broken" in err and "99_fixture" in err
