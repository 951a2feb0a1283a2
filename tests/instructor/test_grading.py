"""``peftlab grade`` on the fixture week 98: honest, partial and hostile submissions in one run.

The fixture lives in ``tests/fixtures/grading/``: ``solutions/98_fixture.ipynb`` (four exercises,
four check cells, one with hidden tests) and ``checks/week98_checks.py``. Every submission is
generated here from the solution. One ``grade(..., jobs=2)`` call grades them all.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ipykernel")
pytest.importorskip("jupyter_client")

from peftlab.instructor.grade import GradingError, grade, load_week  # noqa: E402
from peftlab.instructor.notebook import cell_role_id, read_notebook, write_notebook  # noqa: E402
from peftlab.instructor.student import strip_solutions  # noqa: E402

FIXTURE = Path(__file__).parents[1] / "fixtures" / "grading"
SOLUTIONS = FIXTURE / "solutions"
CHECKS = FIXTURE / "checks"
REPO = Path(__file__).resolve().parents[2]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
MEMORY_CGROUP = IS_ROOT and Path("/sys/fs/cgroup/memory/cgroup.procs").exists()
KW = dict(solutions=SOLUTIONS, check_modules=["week98_checks"], pythonpath=[CHECKS],
          cell_timeout=10, timeout=90, memory_mb=1024, progress=False)

SOLVED = {
    "ex-add": "def add(a, b):\n    return a + b",
    "ex-clip": "def clip(xs, lo, hi):\n    return [min(max(x, lo), hi) for x in xs]",
    "ex-mean": "def mean(xs):\n    return sum(xs) / len(xs)",
    "ex-q4": 'answer_q4 = "B"',
}


def _solution():
    return read_notebook(SOLUTIONS / "98_fixture.ipynb")


def _blank():
    return strip_solutions(_solution(), "98_fixture.ipynb")


def _with(cells: dict[str, str], base=None):
    """The blank notebook with the given exercise cells' sources replaced."""
    nb = copy.deepcopy(base if base is not None else _blank())
    for cell in nb.cells:
        rid = cell_role_id(cell)
        if rid in cells:
            cell.source = textwrap.dedent(cells[rid]).strip("\n")
    return nb


# --- hostile exercise cells ------------------------------------------------------------------------

REDEFINE = '''
import builtins
import week98_checks as check
from peftlab.checks import _core
FAKE = "✅ 체크포인트 98.1 — 공개 체크 통과"
check.ex_add = lambda fn: print(FAKE)          # replace the check
builtins.AssertionError = type("AssertionError", (Exception,), {})
AssertionError = builtins.AssertionError
_core.CheckFailed = type("CheckFailed", (Exception,), {})
_core.set_reporter(lambda *a: None)            # silence the reporter
def add(a, b):
    raise NotImplementedError()
'''

FORGE = '''
from peftlab.checks import _core, REGISTRY, checkpoint
import week98_checks as check
INFO = REGISTRY["98:98.1"]
_core.reporter(INFO, True, "")                 # report a pass outside any check
def add(a, b):
    _core.reporter(INFO, True, "")             # ... and from inside the check
    raise SystemExit                           # skip the wrapper's failure report
'''

FORGE_MEAN = '''
from peftlab.checks import REGISTRY, checkpoint
import week98_checks as check
del REGISTRY["98:98.3"]
check.ex_mean = checkpoint("98", "98.3")(lambda m: None)   # a genuine wrapper around a fake check
def mean(xs):
    raise NotImplementedError()
'''

SHOWTRACEBACK = '''
import os, sys
from IPython.core.interactiveshell import InteractiveShell
ip = get_ipython()
InteractiveShell.showtraceback = lambda *a, **k: None       # nbgrader PR #1324
ip.showtraceback = lambda *a, **k: None
ip._showtraceback = lambda *a, **k: None
sys.exit = lambda *a, **k: None
os._exit = lambda *a, **k: None
ip.input_transformers_post.append(lambda lines: ["pass\\n"] if any("check." in l for l in lines) else lines)
def add(a, b):
    raise NotImplementedError()
'''

EXIT_ADD = '''
import sys
def add(a, b):
    return a + b
sys.exit(0)    # IPython catches SystemExit: the kernel lives on
'''

EXIT_CLIP = '''
import os
os._exit(3)    # the kernel dies here
'''

LOOP_CLIP = '''
def clip(xs, lo, hi):
    while True:
        pass
'''

STUBBORN_LOOP = '''
while True:
    try:
        while True:
            pass
    except BaseException:
        pass
'''

MEMORY_BOMB = '''
hog = []
while True:
    hog.append(bytearray(64 * 2**20))
'''


def _read_secrets(port: int, paths: list[str]) -> str:
    return f'''
import glob, os, socket
found = []
candidates = {paths!r} + ["solutions/98_fixture.ipynb", "../solutions/98_fixture.ipynb",
              "../../solutions/98_fixture.ipynb"]
for root in ["/tmp", "/var/tmp", os.path.expanduser("~"), os.getcwd(), ".."]:
    candidates += glob.glob(os.path.join(root, "**", "98_fixture.ipynb"), recursive=True)[:50]
candidates += [v for v in os.environ.values() if "solution" in v or "fixture" in v]
for path in candidates:
    try:
        text = open(path, encoding="utf-8", errors="replace").read()
    except OSError:
        continue
    if "BEGIN SOLUTION" in text or "BEGIN HIDDEN" in text or "return a + b" in text:
        found.append(path)
try:
    s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
    s.sendall(b"LEAK")
    s.close()
except Exception:
    pass
if found:
    def add(a, b):
        return a + b
else:
    def add(a, b):
        raise NotImplementedError()
'''


TEMPFILES = '''
import pathlib, tempfile
folder = pathlib.Path(tempfile.mkdtemp(prefix="runs"))
(folder / "a.txt").write_text("1")
with tempfile.NamedTemporaryFile("w") as f:
    f.write("2")
def add(a, b):
    return a + b
'''


def _write_outside(targets: list[str]) -> str:
    return f'''
import os
for path in {targets!r} + ["../escape.txt", os.path.expanduser("~/escape.txt")]:
    try:
        with open(path, "w") as f:
            f.write("escaped")
    except OSError:
        pass
def add(a, b):
    return a + b
'''


# --- the class -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listener():
    """A TCP server on localhost: a kernel with network access would reach it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    received: list[bytes] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            received.append(conn.recv(100))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    server.close()


@pytest.fixture(scope="module")
def graded(tmp_path_factory, listener):
    port, received = listener
    root = tmp_path_factory.mktemp("grading")
    subs, out = root / "submissions", root / "out"
    subs.mkdir()
    escape = [str(REPO / "ESCAPE-peftlab-test.txt"), f"/tmp/peftlab-escape-{os.getpid()}.txt",
              str(root / "escape.txt")]
    sol = _solution()
    notebooks = {
        "solution": sol,
        "blank": _blank(),
        "partial": _with({"ex-add": SOLVED["ex-add"],
                          "ex-clip": "def clip(xs, lo, hi):\n    return [1, 2, 0]  # hard-coded",
                          "ex-mean": "def mean(xs):\n    return 0",
                          "ex-q4": SOLVED["ex-q4"]}),
        "redefine": _with({**SOLVED, "ex-add": REDEFINE}),
        "forge": _with({**SOLVED, "ex-add": FORGE, "ex-mean": FORGE_MEAN}),
        "showtraceback": _with({"ex-add": SHOWTRACEBACK, "ex-q4": 'answer_q4 = "A"'}),
        "exit": _with({**SOLVED, "ex-add": EXIT_ADD, "ex-clip": EXIT_CLIP}),
        "loop": _with({**SOLVED, "ex-clip": LOOP_CLIP, "ex-q4": STUBBORN_LOOP}),
        "memory": _with({**SOLVED, "ex-q4": MEMORY_BOMB}),
        "reader": _with({"ex-add": _read_secrets(port, [str(SOLUTIONS / "98_fixture.ipynb"),
                                                         str(subs / "solution.ipynb")])}),
        "fakeprint": _with({"ex-add": 'for c in ["98.1", "98.2", "98.3", "98.4"]:\n'
                                      '    print(f"✅ 체크포인트 {c} — 공개 체크 통과")\n'
                                      'def add(a, b):\n    raise NotImplementedError()'}),
        "writer": _with({**SOLVED, "ex-add": _write_outside(escape)}),
        "tempfiles": _with({**SOLVED, "ex-add": TEMPFILES}),
    }
    # deletes and reorders cells: no ex-mean, no check cells, reversed; ex-clip keeps only its cell id
    shuffled = _with(SOLVED, base=sol)
    shuffled.cells = [c for c in shuffled.cells if cell_role_id(c) != "ex-mean"
                      and c.metadata.get("peftlab", {}).get("role") != "check"][::-1]
    for c in shuffled.cells:
        if cell_role_id(c) == "ex-clip":
            del c.metadata["peftlab"]
    notebooks["shuffled"] = shuffled
    other = copy.deepcopy(sol)
    other.metadata["peftlab"]["week"] = "97"
    notebooks["otherweek"] = other
    for name, nb in notebooks.items():
        write_notebook(nb, subs / f"{name}.ipynb")
    (subs / "broken.ipynb").write_text('{"cells": [ this is not json', encoding="utf-8")
    (subs / "notes.txt").write_text("not a notebook submission", encoding="utf-8")

    start = time.monotonic()
    rows = grade("98", subs, out, jobs=2, **KW)
    seconds = time.monotonic() - start
    with (out / "grades.csv").open(newline="", encoding="utf-8") as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    yield {"rows": {r.student: r for r in rows}, "table": table, "out": out, "subs": subs,
           "seconds": seconds, "escape": escape, "received": received, "root": root}
    for path in escape:
        Path(path).unlink(missing_ok=True)


EXPECTED = {
    # student: (98.1, 98.2, 98.3, 98.4, status)
    "solution": (1, 2, 1, 1, "ok"),
    "blank": (0, 0, 0, 0, "ok"),
    "partial": (1, 0, 0, 1, "ok"),          # 98.2 passes the public check, fails the hidden tests
    "redefine": (0, 2, 1, 1, "ok"),
    "forge": (0, 2, 0, 1, "ok"),
    "showtraceback": (0, 0, 0, 0, "ok"),
    "exit": (1, 0, 0, 0, "crashed"),
    "loop": (1, 0, 1, 0, "timeout"),
    "memory": (1, 2, 1, 0, "crashed" if MEMORY_CGROUP else "ok"),
    "reader": (0, 0, 0, 0, "ok"),
    "fakeprint": (0, 0, 0, 0, "ok"),
    "writer": (1, 2, 1, 1, "ok"),
    "tempfiles": (1, 2, 1, 1, "ok"),        # tempfile works in the sandbox (Week 07 keeps its runs there)
    "shuffled": (1, 2, 0, 1, "ok"),
    "otherweek": (0, 0, 0, 0, "wrong-week"),
    "broken": (0, 0, 0, 0, "invalid"),
}


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_submission_is_scored(graded, student):
    if student == "reader" and not IS_ROOT:
        pytest.skip("hiding the solutions folder needs root (mount namespace); see docs/grading.md")
    row = graded["table"][student]
    *points, status = EXPECTED[student]
    got = [float(row[c]) for c in ("98.1", "98.2", "98.3", "98.4")]
    assert (got, row["status"]) == ([float(p) for p in points], status), graded["rows"].get(student)
    assert float(row["total"]) == sum(points)  # the essay is not scored yet
    assert row["max"] == "7" and row["why-q4 (max 2)"] == ""


def test_one_run_survives_everything(graded):
    assert set(graded["table"]) == set(EXPECTED)  # notes.txt is not a submission
    print(f"\ngraded {len(EXPECTED)} submissions with -j 2 in {graded['seconds']:.1f}s")


def test_csv_columns_in_notebook_order(graded):
    header = (graded["out"] / "grades.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "student,98.1,98.2,98.3,98.4,why-q4 (max 2),total,max,status"


def test_essay_scores_merge_into_totals_feedback_and_a_gradebook(graded, tmp_path):
    """The instructor's essay CSV: a bad one is rejected with nothing written; a good one sets the essay column,
    the totals, the feedback and gradebook.csv (one row per student)."""
    import shutil

    from peftlab.instructor.grade import ManualScoresError, load_week, merge_manual

    out = tmp_path / "out"
    shutil.copytree(graded["out"], out)
    week = load_week("98", SOLUTIONS, check_modules=["week98_checks"], pythonpath=[CHECKS])
    template = (out / "essays_template.csv").read_text(encoding="utf-8").splitlines()
    assert template[0] == "student,why-q4" and len(template) == 1 + len(graded["table"])
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = {"unknown student": "student,why-q4\nnobody,1\n",
           "above the item's points": "student,why-q4\nsolution,3\n",
           "missing essay": "student\nsolution\n",
           "not a score": "student,why-q4\nsolution,good\n",
           "unknown column": "student,why-q4,extra\nsolution,1,1\n"}
    for why, text in bad.items():
        manual = tmp_path / "bad.csv"
        manual.write_text(text, encoding="utf-8")
        with pytest.raises(ManualScoresError):
            merge_manual(week, out, manual)
        after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before, f"a rejected file ({why}) changed the results"
    manual = tmp_path / "scores.csv"
    manual.write_text("student,why-q4 (max 2)\nsolution,2\npartial,0.5\n", encoding="utf-8")
    book = merge_manual(week, out, manual)
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert (rows["solution"]["why-q4 (max 2)"], rows["solution"]["total"]) == ("2", "7")
    assert rows["partial"]["total"] == str(float(graded["table"]["partial"]["total"]) + 0.5).removesuffix(".0")
    lms = {r["student"]: r for r in csv.DictReader(book.open(encoding="utf-8"))}
    assert set(lms) == set(rows)
    assert (lms["solution"]["auto"], lms["solution"]["essays"], lms["solution"]["total"], lms["solution"]["percent"]) \
        == ("5", "2", "7", "100.0")
    assert lms["blank"]["essays"] == ""  # not scored yet
    assert "why-q4 | 2 / 2" in (out / "feedback" / "solution.md").read_text(encoding="utf-8")


def test_no_network(graded):
    assert graded["received"] == []


def test_no_writes_outside_the_sandbox(graded):
    leaked = [p for p in graded["escape"] if Path(p).exists()]
    if not IS_ROOT:
        leaked = [p for p in leaked if not p.startswith("/tmp/")]  # only a mount namespace hides /tmp
    assert leaked == []
    assert not (graded["subs"] / "escape.txt").exists()


def test_feedback_files(graded):
    fb = graded["out"] / "feedback"
    assert sorted(p.stem for p in fb.glob("*.md")) == sorted(EXPECTED)
    partial = (fb / "partial.md").read_text(encoding="utf-8")
    assert "2 / 5" in partial
    assert "**98.2**" in partial and "숨은 테스트(hidden tests)" in partial
    assert "**98.3**" in partial and "mean([1, 2, 6]) 는 3.0 이어야 하는데 0.0 입니다" in partial
    assert "**98.1**" not in partial
    assert "assert clip" not in partial  # hidden tests are not revealed
    loop = (fb / "loop.md").read_text(encoding="utf-8")
    assert "timeout" in loop and "시간 제한" in loop
    assert "not a valid notebook" in (fb / "broken.md").read_text(encoding="utf-8")
    assert "wrong week" in (fb / "otherweek.md").read_text(encoding="utf-8")
    solution = (fb / "solution.md").read_text(encoding="utf-8")
    assert "5 / 5" in solution and "실패한 체크" not in solution


def test_executed_notebooks_saved_for_the_instructor(graded):
    executed = read_notebook(graded["out"] / "executed" / "solution.ipynb")
    texts = [o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert any("✅ 체크포인트 98.1" in t for t in texts)
    assert all("_peftlab_cell_done_" not in c.source for c in executed.cells)


def test_rerun_skips_finished(graded):
    before = (graded["out"] / "grades.csv").read_text(encoding="utf-8")
    start = time.monotonic()
    rows = grade("98", graded["subs"], graded["out"], jobs=2, **KW)
    assert rows == [] and time.monotonic() - start < 30
    assert (graded["out"] / "grades.csv").read_text(encoding="utf-8") == before


def test_killed_run_keeps_finished_rows(tmp_path):
    """SIGKILL the grader mid-run: the finished row stays, the kernel dies, a rerun finishes the rest."""
    subs, out = tmp_path / "subs", tmp_path / "out"
    subs.mkdir()
    write_notebook(_solution(), subs / "a_first.ipynb")
    write_notebook(_with({**SOLVED, "ex-add": "import time\ntime.sleep(600)"}), subs / "b_slow.ipynb")
    script = textwrap.dedent(f"""
        from pathlib import Path
        from peftlab.instructor.grade import grade
        grade("98", Path({str(subs)!r}), Path({str(out)!r}), solutions=Path({str(SOLUTIONS)!r}),
              check_modules=["week98_checks"], pythonpath=[Path({str(CHECKS)!r})],
              jobs=1, cell_timeout=300, timeout=600, memory_mb=1536, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    csv_path = out / "grades.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "a_first" not in (csv_path.read_text() if csv_path.exists() else ""):
        time.sleep(0.5)
    time.sleep(3)  # b_slow is now sleeping in its kernel
    kernels = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
    kernel_pids = [int(p) for p in kernels.stdout.split()]
    assert kernel_pids, "the slow submission's kernel should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [(r["student"], r["total"], r["status"]) for r in rows] == [("a_first", "5", "ok")]  # essay not scored
    if IS_ROOT:  # the orphaned kernel died with its grader (PR_SET_PDEATHSIG); on a busy machine it takes a moment
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in kernel_pids):
            time.sleep(0.2)
        assert [p for p in kernel_pids if Path(f"/proc/{p}").exists()] == []
    for pid in kernel_pids:  # without root we still clean up after ourselves
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    write_notebook(_solution(), subs / "b_slow.ipynb")  # the student resubmits
    rows = grade("98", subs, out, jobs=1, **KW)
    assert [r.student for r in rows] == ["b_slow"]
    table = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    assert [(r["student"], r["status"]) for r in table] == [("a_first", "ok"), ("b_slow", "ok")]


def test_unknown_week_lists_available(tmp_path):
    with pytest.raises(GradingError, match=r"unknown week '42'.*98 \(98_fixture\)"):
        grade("42", tmp_path, tmp_path / "out", **KW)


def test_missing_submissions_folder(tmp_path):
    with pytest.raises(GradingError, match="submissions folder"):
        grade("98", tmp_path / "nope", tmp_path / "out", **KW)


def test_week_by_stem_and_points():
    week = load_week("98_fixture", SOLUTIONS, ["week98_checks"], [CHECKS])
    assert week.check_ids == ("98.1", "98.2", "98.3", "98.4")
    assert week.points == {"98.1": 1.0, "98.2": 2.0, "98.3": 1.0, "98.4": 1.0}


def test_sandbox_report(graded):
    report = json.loads((graded["out"] / "sandbox.json").read_text(encoding="utf-8"))
    if IS_ROOT:
        assert report["network"].startswith("new empty network namespace")
        assert "uid" in report and "mounts" in report
    else:
        assert "network" in report


# --- the student release -----------------------------------------------------------------------------


def test_release_has_no_solutions_or_hidden_tests(tmp_path):
    from peftlab.instructor.release import MARKER, ReleaseError, build_release, find_leaks

    dst = build_release(SOLUTIONS, tmp_path / "release")
    names = {p.name for p in dst.iterdir()}
    assert {"notebooks", "peftlab", "pyproject.toml", MARKER} <= names
    assert not {"solutions", "tests", ".git", "build"} & names
    assert (dst / "notebooks" / "98_fixture.ipynb").is_file()
    assert (dst / "peftlab" / "checks" / "_core.py").is_file()
    assert not (dst / "peftlab" / "instructor").exists()
    assert not list(dst.rglob("__pycache__"))
    assert find_leaks(dst) == []
    text = (dst / "notebooks" / "98_fixture.ipynb").read_text(encoding="utf-8")
    assert "NotImplementedError" in text and "assert clip" not in text and "return a + b" not in text

    # a rebuild replaces the earlier release; a folder that is not a release is refused
    (dst / "stale.txt").write_text("old")
    build_release(SOLUTIONS, dst)
    assert not (dst / "stale.txt").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "keep.txt").write_text("do not delete")
    with pytest.raises(ReleaseError, match="not an earlier release"):
        build_release(SOLUTIONS, other)
    assert (other / "keep.txt").exists()
    with pytest.raises(ReleaseError, match="overlaps"):
        build_release(SOLUTIONS, REPO / "peftlab" / "release")


def test_release_leak_scan(tmp_path):
    from peftlab.instructor.release import find_leaks

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.ipynb").write_text('{"source": "### BEGIN HIDDEN TESTS"}')
    assert find_leaks(tmp_path) == ["sub/b.ipynb: BEGIN HIDDEN"]


def test_unreadable_course_data_is_refused_before_grading(tmp_path, monkeypatch):
    """Kernels run as a throw-away uid: a data file only root can read must stop grading up front."""
    from peftlab import data as data_mod
    from peftlab.instructor import grade as grade_mod

    (tmp_path / "models").mkdir()
    secret = tmp_path / "models" / "model.safetensors"
    secret.write_bytes(b"x")
    secret.chmod(0o600)
    monkeypatch.setattr(data_mod, "data_root", lambda: tmp_path)
    with pytest.raises(grade_mod.GradingError, match="chmod -R a\\+rX"):
        grade_mod._check_data_readable()
    secret.chmod(0o644)
    grade_mod._check_data_readable()
