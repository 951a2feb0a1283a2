"""Static checks of solutions/ and notebooks/ (no execution): markers, badges, paths, week metadata.

The fixture week (``tests/fixtures/pipeline``) goes through the same checks so that they always
exercise something, even before ``solutions/`` has notebooks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from portable_outputs import kernel_dependent_checked_cells

from peftlab.instructor.notebook import (
    find_machine_paths,
    list_notebooks,
    notebook_week,
    read_notebook,
    week_from_filename,
)
from peftlab.instructor.publish import colab_url

REPO = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "pipeline" / "99_fixture.ipynb"

_COLAB_LINK = re.compile(r"https?://colab\.research\.google\.com/github/[^\s)\"'<>\]]+")
_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN", "END HIDDEN")


def _params(folder: str) -> list:
    paths = list_notebooks(REPO / folder)
    if not paths:
        return [pytest.param(None, id=folder, marks=pytest.mark.skip(reason=f"no {folder}/NN_*.ipynb yet"))]
    return [pytest.param(p, id=f"{folder}/{p.name}") for p in paths]


FIXTURE_PARAM = pytest.param(FIXTURE, id="fixture/99_fixture.ipynb")
SOLUTIONS = _params("solutions")
STUDENT = _params("notebooks")


@pytest.mark.parametrize("path", STUDENT)
def test_student_notebook_has_no_solution_or_hidden_markers(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [m for m in _MARKERS if m in text]
    assert not found, f"{path.name} contains {found}: notebooks/ must come from `peftlab build-student`"


@pytest.mark.parametrize("path", [FIXTURE_PARAM, *SOLUTIONS, *STUDENT])
def test_colab_badge_points_to_the_student_notebook(path: Path) -> None:
    nb = read_notebook(path)
    links = [
        m.group(0) for cell in nb.cells if cell.cell_type == "markdown" for m in _COLAB_LINK.finditer(cell.source)
    ]
    expected = colab_url(path.name)
    assert links, f"{path.name} has no 'Open in Colab' badge (expected a link to {expected})"
    wrong = sorted({link for link in links if link != expected})
    assert not wrong, f"{path.name}: Colab links {wrong} should be {expected}"


@pytest.mark.parametrize("path", [FIXTURE_PARAM, *SOLUTIONS, *STUDENT])
def test_no_machine_paths_in_stored_outputs(path: Path) -> None:
    found = find_machine_paths(read_notebook(path))
    assert not found, f"{path.name} shows machine paths in outputs (cell, path): {found[:10]}"


@pytest.mark.parametrize("path", [FIXTURE_PARAM, *SOLUTIONS, *STUDENT])
def test_week_metadata_matches_file_name(path: Path) -> None:
    assert notebook_week(read_notebook(path), path.name) == week_from_filename(path)


def test_machine_path_detection() -> None:
    """The path finder used above catches what it should and nothing else."""
    cell = new_code_cell("x", outputs=[
        new_output("stream", name="stdout", text="saved to /tmp/run1/adapter.safetensors\nsee docs/x.md\n"),
        new_output("execute_result", data={"text/plain": "PosixPath('/home/kim/peftlab/data')"}, execution_count=1),
        new_output("error", ename="OSError", evalue="", traceback=['File "/root/.venv/lib/x.py", line 1']),
    ])
    found = find_machine_paths(new_notebook(cells=[cell]))
    assert [p for _, p in found] == ["/tmp/run1/adapter.safetensors", "/home/kim/peftlab/data", "/root/.venv/lib/x.py"]
    clean = new_code_cell("x", outputs=[new_output("stream", name="stdout", text="a/tmp/b ./home/x 1/2\n")])
    assert find_machine_paths(new_notebook(cells=[clean])) == []


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than TAB and newline
_PROGRESS = re.compile(r"\d+%\|[^\n]*\||\b\d+(?:\.\d+)?\s?(?:it/s|s/it)\b")


def control_characters(nb) -> list[tuple[int, str]]:
    """(cell index, repr of the character) for control characters in cell sources (newline is allowed).

    A TAB in a markdown cell is nearly always a "\\t" escape gone wrong (``\\times`` → TAB + "imes")."""
    found = []
    for i, cell in enumerate(nb.cells):
        for ch in set(_CONTROL.findall(cell.source)) | ({"\t"} if "\t" in cell.source else set()):
            found.append((i, repr(ch)))
    return sorted(found)


def progress_bars_in_outputs(nb) -> list[int]:
    """Cells whose stored outputs (stdout or stderr) hold a progress bar or an it/s rate."""
    cells = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "") if out.get("output_type") == "stream" else ""
            if _PROGRESS.search(text):
                cells.append(i)
                break
    return cells


@pytest.mark.parametrize("path", [*SOLUTIONS, *STUDENT])
def test_no_control_characters_in_sources(path: Path) -> None:
    found = control_characters(read_notebook(path))
    assert not found, f"{path.name}: control characters in cell sources (cell, char): {found}"


@pytest.mark.parametrize("path", [*SOLUTIONS, *STUDENT])
def test_no_progress_bars_in_stored_outputs(path: Path) -> None:
    found = progress_bars_in_outputs(read_notebook(path))
    assert not found, f"{path.name}: progress bars / rates in the stored outputs of cells {found}"


@pytest.mark.parametrize("path", [*SOLUTIONS, *STUDENT])
def test_one_korean_term_for_fine_tuning(path: Path) -> None:
    text = "\n".join(c.source for c in read_notebook(path).cells if c.cell_type == "markdown")
    assert "파인튜닝" not in text and "파인 튜닝" not in text, f"{path.name}: use 미세조정 for fine-tuning"


def test_static_detectors_catch_what_they_should() -> None:
    bad = new_notebook(cells=[new_code_cell("x = 1\x08"), new_code_cell("y")])
    bad.cells[1].source = "$E\\in R^{V\times d}$"  # the \t escape: TAB + "imes"
    assert control_characters(bad) == [(0, repr("\x08")), (1, repr("\t"))]
    assert control_characters(new_notebook(cells=[new_code_cell("a\nb")])) == []
    noisy = new_code_cell("x", outputs=[new_output("stream", name="stderr",
                                                   text="Loading weights: 100%|██| 37/37 [00:00<00:00, 13626.24it/s]\n")])
    assert progress_bars_in_outputs(new_notebook(cells=[noisy])) == [0]
    assert progress_bars_in_outputs(new_notebook(cells=[new_code_cell("x", outputs=[
        new_output("stream", name="stdout", text="accuracy 95% of 100\n")])])) == []


def test_readme_lists_every_week_with_its_colab_link():
    """The README's week table has a row for every solution notebook: its student path and its Colab badge."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in readme.splitlines() if re.match(r"\| \d\d \|", line)}
    for path in sorted((REPO / "solutions").glob("[0-9][0-9]_*.ipynb")):
        week = path.name[:2]
        assert week in rows, f"README.md has no row for week {week} ({path.name})"
        assert f"notebooks/{path.name}" in rows[week] and "colab.research.google.com" in rows[week], rows[week]


@pytest.mark.parametrize("path", [FIXTURE_PARAM, *SOLUTIONS, *STUDENT])
def test_checked_outputs_do_not_come_from_training_or_clocks(path: Path) -> None:
    """docs/notebook-style.md, "Portable outputs": nbval compares the text of a `# NBVAL_CHECK_OUTPUT` cell, so
    such a cell may not train, fit or time anything (directly or through a function that does)."""
    found = kernel_dependent_checked_cells(read_notebook(path))
    assert not found, (f"{path.name}: NBVAL_CHECK_OUTPUT cells that train or time (cell, calls): {found}. "
                       "Drop the marker and check the number with a tolerance instead.")


def test_portable_output_detector_catches_what_it_should() -> None:
    def nb(*sources):
        return new_notebook(cells=[new_code_cell(s) for s in sources])

    trained = nb("def fit_lm(m):\n    loss = m()\n    loss.backward()\n",
                 "# NBVAL_CHECK_OUTPUT\nprint(f'{fit_lm(model):.3f}')")
    assert kernel_dependent_checked_cells(trained) == [(1, ["fit_lm"])]
    via_kit = nb("# NBVAL_CHECK_OUTPUT\nacc = train.train_classifier(m, a, b).valid_accuracy[-1]")
    assert kernel_dependent_checked_cells(via_kit) == [(0, ["train_classifier"])]
    timed = nb("# NBVAL_CHECK_OUTPUT\nt0 = time.perf_counter()")
    assert kernel_dependent_checked_cells(timed) == [(0, ["perf_counter"])]
    imported = nb("# NBVAL_CHECK_OUTPUT\nfrom peftlab.train import encode, train_classifier\nprint(len(data))")
    assert kernel_dependent_checked_cells(imported) == [(0, ["train_classifier"])]
    fine = nb("# NBVAL_CHECK_OUTPUT\nprint(peftlab.count_parameters(model))",
              "# NBVAL_CHECK_OUTPUT\ncheck.q1_3(choice, overhead)",  # a check: tolerance inside
              "fit_lm(model)")                                         # unmarked: printed freely
    assert kernel_dependent_checked_cells(fine) == []
