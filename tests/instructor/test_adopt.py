"""README's "adopt the kit" steps 1–9, followed as written, offline, end to end.

A private fork (a clone of this checkout), `[tool.peftlab]` pointed at a public repository and a semester tag,
`make student`'s build, the release, published to a local bare repository, a notebook's Colab setup cell run
against it (fake ``google.colab``, ``file://``), three students' submissions graded, a bad essay-score file
rejected and a good one merged, and the totals read from the LMS export.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from peftlab.instructor.notebook import read_notebook, role_cells_by_id, write_notebook

REPO = Path(__file__).resolve().parents[2]
WEEK = "05"  # the quickest week to grade three times
PUBLIC_URL, TAG = "https://github.com/example-univ/peft-course", "2027-spring"
#: what the release holds none of: the instructor's tools and sources
INSTRUCTOR_ONLY = ("peftlab grade", "build-student", "make run", "make execute", "make data", "make compare",
                   "make test-portable", "solutions/", "docs/", "tests/")


def _run(cmd, cwd, env=None, check=True):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _peftlab(args, root: Path, check=True):
    """The kit's CLI as the private fork's own copy (its peftlab/ first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return _run([sys.executable, "-c", "import sys; from peftlab.cli import main; sys.exit(main(sys.argv[1:]))",
                 *args], cwd=root, env=env, check=check)


@pytest.fixture()
def work():
    # kernels of the grader may run as an unprivileged user: the folder must be traversable by everyone
    path = Path(tempfile.mkdtemp(prefix="peftlab-adopt-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
def test_adopt_the_kit_end_to_end(work):
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the kit")
    git = ["git", "-c", "user.name=Instructor", "-c", "user.email=instructor@example.org"]
    # 1. a private fork
    private = work / "private"
    _run(["git", "clone", "--quiet", "--no-local", str(REPO), str(private)], cwd=work)
    # 2. [tool.peftlab] → the public repository and the semester's tag; `make student`
    py = private / "pyproject.toml"
    text = re.sub(r'(?m)^repository = .*$', f'repository = "{PUBLIC_URL}"\nref = "{TAG}"',
                  re.sub(r'(?m)^ref = .*\n', "", py.read_text(encoding="utf-8")))
    py.write_text(text, encoding="utf-8")
    _peftlab(["points", "solutions"], private)
    _peftlab(["build-student", "solutions", "notebooks"], private)
    # 3. the release
    release = work / "release"
    _peftlab(["build-student", "--release", str(release)], private)
    # 4. published: a repository of its own, tagged, pushed
    public = work / "public.git"
    _run(["git", "init", "--quiet", "--bare", str(public)], cwd=work)
    _run(["git", "init", "--quiet", "-b", "main"], cwd=release)
    _run(["git", "add", "-A"], cwd=release)
    _run([*git, "commit", "--quiet", "-m", f"release {TAG}"], cwd=release)
    _run(["git", "tag", TAG], cwd=release)
    _run(["git", "remote", "add", "origin", str(public)], cwd=release)
    _run(["git", "push", "--quiet", "origin", "main", "--tags"], cwd=release)

    # what was published: no solutions, no keys, a student README whose links resolve inside the release and
    # that names no tool the release lacks; every Colab link and setup cell names the public repository and tag
    readme = (release / "README.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", readme):
        if not target.startswith("http"):
            assert (release / target).exists(), f"README links to {target}, which the release lacks"
    assert not [word for word in INSTRUCTOR_ONLY if word in readme]
    assert (release / "LICENSE").is_file() and not (release / "solutions").exists()
    assert not (release / "peftlab" / "checks" / "_keys.py").exists()
    notebook = next((release / "notebooks").glob(f"{WEEK}_*.ipynb"))
    colab = f"https://colab.research.google.com/github/example-univ/peft-course/blob/{TAG}/notebooks/{notebook.name}"
    assert colab in readme and colab in notebook.read_text(encoding="utf-8")
    setup = next(c.source for c in read_notebook(notebook).cells if c.cell_type == "code")
    assert f"PEFTLAB_REPOSITORY, PEFTLAB_REF = {PUBLIC_URL!r}, {TAG!r}" in setup

    # 5. a student on Colab: the setup cell, pointed at the published repository
    from tests.instructor.test_colab_setup import _fresh_venv, _run_cell

    cell = setup.replace(repr(PUBLIC_URL), repr(f"file://{public}"))
    python = _fresh_venv(work)
    content = work / "content" / "peftlab"
    outcome, _ = _run_cell(python, cell, work, content)
    assert "error" not in outcome, outcome.get("error")
    assert Path(outcome["peftlab"]).resolve().is_relative_to(content.resolve())

    # 6. three submissions: everything solved, blank, only E1 solved
    solution = read_notebook(next((private / "solutions").glob(f"{WEEK}_*.ipynb")))
    blank = read_notebook(notebook)
    partial = read_notebook(notebook)
    solved_cells = role_cells_by_id(solution)
    for cid, rc in role_cells_by_id(partial).items():
        if cid == "E1-work":
            partial.cells[rc.index].source = solution.cells[solved_cells[cid].index].source
    subs = work / "submissions"
    subs.mkdir()
    for name, nb in (("s1_solved", solution), ("s2_blank", blank), ("s3_partial", partial)):
        write_notebook(nb, subs / f"{name}.ipynb")
    for p in [work, *work.rglob("*")]:  # readable by the grader's unprivileged kernels
        if not p.is_symlink():
            p.chmod(p.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0))

    # 7. grading
    grades = work / "grades"
    _peftlab(["grade", WEEK, str(subs), "--out", str(grades), "-j", "2"], private)
    rows = {r["student"]: r for r in csv.DictReader((grades / "grades.csv").open(encoding="utf-8"))}
    essays = [h for h in next(iter(rows.values())) if h.endswith(")") and "-essay" in h]
    assert essays and all(rows[s][h] == "" for s in rows for h in essays)
    sys.path.insert(0, str(private))
    try:
        from peftlab.checks import REGISTRY
        from peftlab.checks.essays import essays_of
    finally:
        sys.path.remove(str(private))
    __import__(f"peftlab.checks.week{WEEK}")
    auto = {info.id: info.points for info in REGISTRY.values() if info.week == WEEK}
    essay_max = sum(i.points for i in essays_of(WEEK).values())
    assert (rows["s1_solved"]["status"], float(rows["s1_solved"]["total"])) == ("ok", sum(auto.values()))
    assert float(rows["s2_blank"]["total"]) == 0
    assert float(rows["s3_partial"]["total"]) == auto["E1"]

    # 8. essays: a bad file is refused and changes nothing; the filled template is merged
    template = (grades / "essays_template.csv").read_text(encoding="utf-8").splitlines()
    ids = template[0].split(",")[1:]
    before = (grades / "grades.csv").read_bytes()
    bad = work / "bad.csv"
    bad.write_text("student," + ",".join(ids) + "\ns1_solved," + ",".join(["9"] * len(ids)) + "\n", encoding="utf-8")
    refused = _peftlab(["grade", WEEK, str(subs), "--out", str(grades), "--manual", str(bad)], private, check=False)
    assert refused.returncode == 1 and "outside 0" in refused.stderr
    assert (grades / "grades.csv").read_bytes() == before
    scores = work / "scores.csv"
    scores.write_text("student," + ",".join(ids) + "\n"
                      + "s1_solved," + ",".join(["2"] * len(ids)) + "\n"
                      + "s2_blank," + ",".join(["0"] * len(ids)) + "\n"
                      + "s3_partial," + ",".join(["1"] * len(ids)) + "\n", encoding="utf-8")
    _peftlab(["grade", WEEK, str(subs), "--out", str(grades), "--manual", str(scores)], private)

    # 9. totals for the LMS, and the essays in the feedback
    book = {r["student"]: r for r in csv.DictReader((grades / "gradebook.csv").open(encoding="utf-8"))}
    top = sum(auto.values()) + essay_max
    assert float(book["s1_solved"]["total"]) == top and book["s1_solved"]["percent"] == "100.0"
    assert float(book["s3_partial"]["total"]) == auto["E1"] + len(ids)
    assert float(book["s2_blank"]["max"]) == top
    assert "서술형 점수" in (grades / "feedback" / "s1_solved.md").read_text(encoding="utf-8")
