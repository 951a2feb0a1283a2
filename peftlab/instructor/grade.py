"""``peftlab grade WEEK SUBMISSIONS --out DIR``: score a class's notebooks for one week.

For every ``SUBMISSIONS/<student>.ipynb``:

1. read it (``invalid`` if it is not a notebook, ``wrong-week`` if its metadata names another week);
2. assemble the graded notebook: the solution's cells, with the student's exercise/answer cells
   (:mod:`peftlab.instructor._grade_assemble`);
3. run it in a fresh sandboxed kernel, cell by cell, with per-cell and total timeouts and a memory
   limit; each check cell is scored by the kernel guard over a private signed channel
   (:mod:`peftlab.instructor._grade_run`, :mod:`peftlab.instructor._kernel_guard`);
4. write its row to ``DIR/grades.csv`` (rewritten atomically after every submission), its feedback
   to ``DIR/feedback/<student>.md`` and the executed notebook to ``DIR/executed/<student>.ipynb``.

``grades.csv`` has a column per check, a blank column per essay (answer cell; its points in the header, e.g.
``1.1-essay (max 2)``), ``total`` and ``max``; ``DIR/essays_template.csv`` lists the students and essays to
score. ``--manual scores.csv`` (:func:`merge_manual`) folds the instructor's essay scores in after checking
every one of them, rewrites totals and feedback, and writes ``DIR/gradebook.csv``, one row per student for an
LMS gradebook. A rerun skips students already in ``grades.csv`` unless ``force`` is set. See ``docs/grading.md``.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import io
import json
import math
import os
import pkgutil
import re
import shutil
import stat
import sys
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from nbformat import NotebookNode

from peftlab.core.fileio import atomic_write
from peftlab.instructor._grade_assemble import InvalidSubmission, WrongWeek, assemble, read_submission
from peftlab.instructor._grade_run import GraderSetupError, Limits, run_graded, sandbox_plan, sweep_cgroups
from peftlab.instructor.notebook import (
    ANSWER,
    CHECK,
    list_notebooks,
    read_notebook,
    role_cells,
    validate_notebook,
    week_from_filename,
    write_notebook,
)

__all__ = ["GradeRow", "GradingError", "ManualScoresError", "Week", "grade", "grade_cli", "load_week", "merge_manual"]

STATUSES = ("ok", "timeout", "crashed", "invalid", "wrong-week")


class GradingError(RuntimeError):
    """A problem with the grader's inputs (unknown week, missing folder, unregistered check)."""


class ManualScoresError(GradingError):
    """The instructor's essay scores could not be merged (nothing was written)."""


@dataclass(frozen=True)
class Week:
    """What grading one week needs: the solution notebook, its checks in order, their points."""

    week: str
    solution_path: Path
    solution: NotebookNode
    check_ids: tuple[str, ...]
    points: dict[str, float]
    check_modules: tuple[str, ...]
    pythonpath: tuple[str, ...] = ()
    #: essay (answer cell) id → points, in notebook order; scored by the instructor (:func:`merge_manual`)
    essays: dict[str, float] = field(default_factory=dict)

    @property
    def max_points(self) -> float:
        """The auto-checks' points."""
        return sum(self.points.values())

    @property
    def max_total(self) -> float:
        """Auto-checks and essays together."""
        return self.max_points + sum(self.essays.values())


@dataclass
class GradeRow:
    """One student's result."""

    student: str
    status: str
    points: dict[str, float]
    max_points: float
    feedback: list[str] = field(default_factory=list)  # failed checks, one line each
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def total(self) -> float:
        return sum(self.points.values())


def _fmt(x: float) -> str:
    return f"{x:g}"


# --- the week --------------------------------------------------------------------------------------


def _find_solution(week: str, solutions: Path) -> Path:
    if not solutions.is_dir():
        raise GradingError(f"solutions folder {str(solutions)!r} does not exist")
    available = list_notebooks(solutions)
    for path in available:
        if week in (path.stem, path.name, week_from_filename(path)) or week.zfill(2) == week_from_filename(path):
            return path
    names = ", ".join(f"{week_from_filename(p)} ({p.stem})" for p in available) or "none"
    raise GradingError(f"unknown week {week!r}: no solutions/NN_*.ipynb for it in {str(solutions)!r}; "
                       f"available weeks: {names}")


def _default_check_modules() -> list[str]:
    import peftlab.checks as pkg

    return [f"peftlab.checks.{m.name}" for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")]


def load_week(week: str, solutions: Path, check_modules: Sequence[str] | None = None,
              pythonpath: Sequence[Path] = ()) -> Week:
    """Find and validate the week's solution and the registered points of its checks."""
    path = _find_solution(week, Path(solutions))
    nb = read_notebook(path)
    nb_week = validate_notebook(nb, path.name)
    check_ids = tuple(rc.id for rc in role_cells(nb, CHECK))
    paths = tuple(str(Path(p).resolve()) for p in pythonpath)
    for p in reversed(paths):
        if p not in sys.path:
            sys.path.insert(0, p)
    modules = list(check_modules) if check_modules is not None else _default_check_modules()
    from peftlab.checks import REGISTRY

    used: list[str] = []
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except Exception as exc:
            raise GradingError(f"cannot import check module {name!r}: {type(exc).__name__}: {exc}") from exc
        if any(getattr(getattr(v, "check_info", None), "week", None) == nb_week for v in vars(mod).values()):
            used.append(name)
    points: dict[str, float] = {}
    for cid in check_ids:
        info = REGISTRY.get(f"{nb_week}:{cid}")
        if info is None:
            raise GradingError(f"{path.name}: check cell {cid!r} has no registered check {nb_week}:{cid} "
                               f"in {', '.join(modules) or 'no modules'}")
        points[cid] = info.points
    return Week(nb_week, path, nb, check_ids, points, tuple(used), paths, _essay_points(nb, nb_week, path.name))


_RUBRIC_POINTS = re.compile(r"\*루브릭 \((\d+(?:\.\d+)?)점\)")


def _essay_points(nb: NotebookNode, week: str, name: str) -> dict[str, float]:
    """Each answer cell's points: from ``peftlab/checks/essays.py``, else from its ``*루브릭 (N점).*`` line."""
    from peftlab.checks.essays import ESSAYS

    out: dict[str, float] = {}
    for rc in role_cells(nb, ANSWER):
        info = ESSAYS.get(f"{week}:{rc.id}")
        if info is not None:
            out[rc.id] = info.points
            continue
        m = _RUBRIC_POINTS.search(nb.cells[rc.index].source)
        if m is None:
            raise GradingError(f"{name}: answer cell {rc.id!r} has no points: register it in peftlab/checks/essays.py "
                               f"or give it a '*루브릭 (N점).*' line")
        out[rc.id] = float(m.group(1))
    return out


# --- grades.csv, feedback ------------------------------------------------------------------------


def essay_column(essay_id: str, points: float) -> str:
    """The ``grades.csv`` header of an essay: its id and its points."""
    return f"{essay_id} (max {_fmt(points)})"


def _columns(week: Week) -> list[str]:
    essays = [essay_column(e, p) for e, p in week.essays.items()]
    return ["student", *week.check_ids, *essays, "total", "max", "status"]


def _read_rows(csv_path: Path) -> dict[str, dict[str, str]]:
    if not csv_path.is_file():
        return {}
    with csv_path.open(newline="", encoding="utf-8") as f:
        return {row["student"]: row for row in csv.DictReader(f) if row.get("student")}


def _write_rows(csv_path: Path, columns: list[str], rows: dict[str, dict[str, str]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for student in sorted(rows):
        writer.writerow({c: rows[student].get(c, "") for c in columns})
    atomic_write(csv_path, buf.getvalue())


def _csv_row(row: GradeRow, week: Week, previous: dict[str, str] | None = None) -> dict[str, str]:
    """The CSV row of a graded submission; essay scores already entered (``previous``) are kept."""
    out = {"student": row.student, "max": _fmt(week.max_total), "status": row.status}
    out.update({cid: _fmt(row.points.get(cid, 0.0)) for cid in week.check_ids})
    essays = 0.0
    for eid, pts in week.essays.items():
        col = essay_column(eid, pts)
        value = (previous or {}).get(col, "")
        out[col] = value
        essays += float(value) if value else 0.0
    out["total"] = _fmt(row.total + essays)
    return out


def feedback_text(row: GradeRow, week: Week) -> str:
    """The Markdown feedback for one student (Korean with English terms)."""
    lines = [f"# {week.week}주차 채점 결과 (feedback) — {row.student}", "",
             f"- 점수 (score): **{_fmt(row.total)} / {_fmt(week.max_points)}**",
             f"- 상태 (status): `{row.status}`", ""]
    if row.notes:
        lines += ["## 참고 (notes)", "", *[f"- {n}" for n in row.notes], ""]
    lines += ["## 체크별 점수 (points per check)", "", "| 체크 | 점수 | 결과 |", "|---|---|---|"]
    for cid in week.check_ids:
        got = row.points.get(cid, 0.0)
        mark = "✅ 통과" if got >= week.points[cid] else "❌ 실패"
        lines.append(f"| {cid} | {_fmt(got)} / {_fmt(week.points[cid])} | {mark} |")
    lines.append("")
    if row.feedback:
        lines += ["## 실패한 체크와 힌트 (failed checks and hints)", "", *row.feedback, ""]
    elif row.status == "ok":
        lines += ["모든 자동 채점 체크를 통과했습니다. 서술형 답(answer)은 강사가 따로 채점합니다.", ""]
    return "\n".join(lines)


# --- grading one submission ------------------------------------------------------------------------


def _grade_one(path: Path, week: Week, workroot: Path, cfg: dict, limits: Limits,
               cancel: threading.Event) -> tuple[GradeRow, NotebookNode | None, dict]:
    student = path.stem
    zero = {cid: 0.0 for cid in week.check_ids}
    try:
        submission = read_submission(path, week.week)
    except InvalidSubmission as exc:
        return GradeRow(student, "invalid", zero, week.max_points, notes=[str(exc)]), None, {}
    except WrongWeek as exc:
        return GradeRow(student, "wrong-week", zero, week.max_points, notes=[str(exc)]), None, {}
    assembled = assemble(week.solution, submission, week.solution_path.name)
    if cancel.is_set():
        raise KeyboardInterrupt
    run_cfg = dict(cfg, week=week.week, check_modules=list(week.check_modules), pythonpath=list(week.pythonpath))
    outcome = run_graded(assembled.nb, workroot, run_cfg, limits, list(week.check_ids), cancel=cancel)
    points, feedback = {}, []
    for cid in week.check_ids:
        result = outcome.checks[cid]
        points[cid] = week.points[cid] if result.passed else 0.0
        if not result.passed:
            feedback.append(f"- **{cid}** (0 / {_fmt(week.points[cid])}): {result.hint}")
    row = GradeRow(student, outcome.status, points, week.max_points, feedback,
                   assembled.notes + outcome.notes, outcome.seconds)
    return row, outcome.executed, outcome.sandbox


# --- the whole class ---------------------------------------------------------------------------------


def _secret_paths(week: Week, submissions: Path, out: Path) -> list[Path]:
    """Folders the kernel must not see: answers, other students' work, grades, the repository's history."""
    paths = [week.solution_path.parent, submissions, out]
    repo = Path(__file__).resolve().parents[2]
    paths += [repo / "solutions", repo / ".git", repo / "build"]
    return [p.resolve() for p in paths if p.exists()]


def _check_data_readable() -> None:
    """Kernels run as a throw-away uid: every file of the course data must be world-readable."""
    from peftlab.data import data_root

    try:
        root = data_root()
    except Exception:  # no data folder: the notebooks will say so themselves
        return
    unreadable = [p for p in root.rglob("*") if not p.stat().st_mode & stat.S_IROTH]
    if unreadable:
        raise GradingError(
            f"grading kernels run as an unprivileged user and cannot read {len(unreadable)} path(s) under "
            f"{root}, e.g. {unreadable[0]}; make them readable first: chmod -R a+rX {root}"
        )


def grade(week: str, submissions: Path, out: Path, *, solutions: Path = Path("solutions"), jobs: int = 1,
          cell_timeout: float = 120.0, timeout: float = 600.0, memory_mb: int = 4096, force: bool = False,
          check_modules: Sequence[str] | None = None, pythonpath: Sequence[Path] = (),
          progress: bool = True) -> list[GradeRow]:
    """Grade every ``submissions/*.ipynb`` for ``week``; return the rows graded in this call.

    ``grades.csv`` is rewritten after each submission, so an interrupted run keeps what finished and
    a rerun skips students already in it (``force=True`` regrades everyone).
    """
    submissions, out = Path(submissions), Path(out)
    if not submissions.is_dir():
        raise GradingError(f"submissions folder {str(submissions)!r} does not exist")
    wk = load_week(week, Path(solutions), check_modules, pythonpath)
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    (out / "executed").mkdir(exist_ok=True)
    csv_path = out / "grades.csv"
    previous = _read_rows(csv_path)  # essay scores survive a forced regrade
    rows = {} if force else dict(previous)
    rows = {s: r for s, r in rows.items() if r.get("status") in STATUSES}
    columns = _columns(wk)
    todo = [p for p in sorted(submissions.iterdir()) if p.suffix == ".ipynb" and p.is_file() and p.stem not in rows]
    _write_rows(csv_path, columns, rows)

    limits = Limits(cell_timeout=cell_timeout, timeout=timeout, memory_mb=memory_mb)
    sweep_cgroups()
    cfg = sandbox_plan(_secret_paths(wk, submissions, out), extra_keep=wk.pythonpath)
    if "uid" in cfg:
        _check_data_readable()
    _sweep_workroots()
    workroot = Path(tempfile.mkdtemp(prefix="peftlab-grade-"))
    os.chmod(workroot, 0o711)
    (workroot / "grader.pid").write_text(str(os.getpid()))
    cancel = threading.Event()
    graded: list[GradeRow] = []
    errors: list[str] = []
    bar = _progress(len(todo), progress)
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            pending: dict[Future, Path] = {
                pool.submit(_grade_one, p, wk, workroot, cfg, limits, cancel): p for p in todo
            }
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        path = pending.pop(fut)
                        try:
                            row, executed, sandbox = fut.result()
                        except GraderSetupError as exc:
                            errors.append(f"{path.name}: {exc}")
                            bar.update(1)
                            continue
                        rows[row.student] = _csv_row(row, wk, previous.get(row.student))
                        _write_rows(csv_path, columns, rows)
                        (out / "feedback" / f"{row.student}.md").write_text(feedback_text(row, wk), encoding="utf-8")
                        if executed is not None:
                            write_notebook(executed, out / "executed" / f"{row.student}.ipynb")
                        if sandbox and not (out / "sandbox.json").exists():
                            (out / "sandbox.json").write_text(json.dumps(sandbox, indent=1, ensure_ascii=False))
                        graded.append(row)
                        bar.set_postfix_str(f"{row.student}: {row.status}")
                        bar.update(1)
            except BaseException:
                cancel.set()
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        bar.close()
        if not os.environ.get("PEFTLAB_GRADE_KEEP_LOGS"):
            shutil.rmtree(workroot, ignore_errors=True)
    _write_essay_template(out, wk, rows)
    if errors:
        raise GradingError("the grader could not grade some submissions (they are not in grades.csv; "
                           "rerun to retry):\n" + "\n".join(errors))
    return graded


# --- essays: the instructor's scores ------------------------------------------------------------------

_ESSAY_SECTION = "## 서술형 점수 (essays)"


def _write_essay_template(out: Path, week: Week, rows: dict[str, dict[str, str]]) -> None:
    """``essays_template.csv``: one row per graded student, one column per essay (the id), cells blank or the
    score already merged — fill it in and pass it to ``--manual``."""
    if not week.essays:
        return
    columns = ["student", *week.essays]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for student in sorted(rows):
        writer.writerow({"student": student, **{e: rows[student].get(essay_column(e, p), "")
                                                for e, p in week.essays.items()}})
    (out / "essays_template.csv").write_text(buf.getvalue(), encoding="utf-8")


def _read_manual(manual: Path, week: Week, graded: dict[str, dict[str, str]]) -> dict[str, dict[str, float]]:
    """Every score of ``manual`` checked: known students, known essays, numbers in [0, points], none missing."""
    if not manual.is_file():
        raise ManualScoresError(f"manual scores file {str(manual)!r} does not exist")
    if not week.essays:
        raise ManualScoresError(f"week {week.week} has no essay (answer) items to score")
    with manual.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = list(reader)
    if "student" not in header:
        raise ManualScoresError(f"{manual.name}: no 'student' column (header: {header})")
    by_header = {}
    for h in header:
        if h == "student":
            continue
        eid = next((e for e, p in week.essays.items() if h in (e, essay_column(e, p))), None)
        if eid is None:
            raise ManualScoresError(f"{manual.name}: column {h!r} is not an essay of week {week.week}; "
                                    f"expected: {', '.join(week.essays)}")
        by_header[h] = eid
    missing = [e for e in week.essays if e not in by_header.values()]
    if missing:
        raise ManualScoresError(f"{manual.name}: missing essay column(s) {missing}; every essay needs a score "
                                f"(0 for an empty answer)")
    scores: dict[str, dict[str, float]] = {}
    for n, row in enumerate(rows, start=2):
        student = (row.get("student") or "").strip()
        if not student:
            raise ManualScoresError(f"{manual.name} line {n}: empty student")
        if student not in graded:
            raise ManualScoresError(f"{manual.name} line {n}: unknown student {student!r} (not in grades.csv; "
                                    f"graded: {', '.join(sorted(graded)) or 'none'})")
        if student in scores:
            raise ManualScoresError(f"{manual.name} line {n}: student {student!r} appears twice")
        scores[student] = {}
        for h, eid in by_header.items():
            raw = (row.get(h) or "").strip()
            pts = week.essays[eid]
            try:
                value = float(raw)
            except ValueError:
                raise ManualScoresError(f"{manual.name} line {n}: {student} / {eid}: {raw!r} is not a score "
                                        f"(a number from 0 to {_fmt(pts)})") from None
            if not math.isfinite(value) or not 0 <= value <= pts:
                raise ManualScoresError(f"{manual.name} line {n}: {student} / {eid}: {raw} is outside 0–{_fmt(pts)} "
                                        f"(the item's points)")
            scores[student][eid] = value
    return scores


def merge_manual(week: Week, out: Path, manual: Path) -> Path:
    """Fold the essay scores of ``manual`` (``student`` + one column per essay id) into ``out/grades.csv``,
    rewrite totals and the students' feedback, and write ``out/gradebook.csv``; return its path.

    Every score is checked before anything is written: an unknown student or essay, a missing essay column,
    a score that is not a number in [0, points] raise :class:`ManualScoresError` and leave ``out`` unchanged.
    Students not in ``manual`` keep what they had."""
    out = Path(out)
    csv_path = out / "grades.csv"
    graded = _read_rows(csv_path)
    if not graded:
        raise ManualScoresError(f"no grades in {str(csv_path)!r}: grade the submissions first")
    scores = _read_manual(Path(manual), week, graded)
    for student, items in scores.items():
        row = graded[student]
        for eid, value in items.items():
            row[essay_column(eid, week.essays[eid])] = _fmt(value)
        auto = sum(float(row.get(cid) or 0) for cid in week.check_ids)
        essays = sum(float(row.get(essay_column(e, p)) or 0) for e, p in week.essays.items())
        row["total"] = _fmt(auto + essays)
        row["max"] = _fmt(week.max_total)
    _write_rows(csv_path, _columns(week), graded)
    for student, items in scores.items():
        path = out / "feedback" / f"{student}.md"
        text = path.read_text(encoding="utf-8") if path.is_file() else f"# {week.week}주차 채점 결과 — {student}\n"
        text = text.split("\n" + _ESSAY_SECTION)[0].rstrip("\n") + "\n\n" + _ESSAY_SECTION + "\n\n"
        text += "| 서술 | 점수 |\n|---|---|\n" + "".join(
            f"| {e} | {_fmt(v)} / {_fmt(week.essays[e])} |\n" for e, v in items.items())
        text += f"\n총점 (total, 자동 + 서술): **{graded[student]['total']} / {_fmt(week.max_total)}**\n"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    _write_essay_template(out, week, graded)
    return write_gradebook(week, out, graded)


def write_gradebook(week: Week, out: Path, rows: dict[str, dict[str, str]] | None = None) -> Path:
    """``out/gradebook.csv``: one row per student — auto points, essay points (blank until merged), total,
    max and percent — for an LMS gradebook import."""
    rows = _read_rows(Path(out) / "grades.csv") if rows is None else rows
    columns = ["student", "auto", "essays", "total", "max", "percent", "status"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for student in sorted(rows):
        row = rows[student]
        auto = sum(float(row.get(cid) or 0) for cid in week.check_ids)
        cols = [essay_column(e, p) for e, p in week.essays.items()]
        entered = [row.get(c, "") for c in cols]
        essays = _fmt(sum(float(v) for v in entered if v)) if cols and all(entered) else ""
        total = auto + (float(essays) if essays else 0.0)
        writer.writerow({"student": student, "auto": _fmt(auto), "essays": essays, "total": _fmt(total),
                         "max": _fmt(week.max_total), "percent": f"{100 * total / week.max_total:.1f}"
                         if week.max_total else "", "status": row.get("status", "")})
    return atomic_write(Path(out) / "gradebook.csv", buf.getvalue())


def _sweep_workroots() -> None:
    """Remove temporary folders left by graders that were killed (their pid is gone)."""
    for folder in Path(tempfile.gettempdir()).glob("peftlab-grade-*"):
        try:
            pid = int((folder / "grader.pid").read_text())
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (OSError, ValueError):
            continue


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="nb", desc="grading", disable=not enabled, file=sys.stderr)


def _summary(rows: Iterable[GradeRow]) -> str:
    rows = list(rows)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to grade"


def grade_cli(args: argparse.Namespace) -> int:
    """Entry point of ``peftlab grade``."""
    try:
        rows = grade(args.week, Path(args.submissions), Path(args.out), solutions=Path(args.solutions),
                     jobs=args.jobs, cell_timeout=args.cell_timeout, timeout=args.timeout,
                     memory_mb=args.memory_mb, force=getattr(args, "force", False))
    except GradingError as exc:
        print(f"peftlab grade: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("peftlab grade: interrupted; finished rows are in grades.csv, rerun to continue", file=sys.stderr)
        return 130
    print(f"graded {len(rows)} notebooks ({_summary(rows)}); results in {Path(args.out) / 'grades.csv'}")
    manual = getattr(args, "manual", None)
    try:
        wk = load_week(args.week, Path(args.solutions))
        if manual:
            book = merge_manual(wk, Path(args.out), Path(manual))
            print(f"essay scores from {manual} merged; totals in {Path(args.out) / 'grades.csv'}, LMS export {book}")
        elif (Path(args.out) / "grades.csv").is_file():
            write_gradebook(wk, Path(args.out))
    except GradingError as exc:
        print(f"peftlab grade: {exc}", file=sys.stderr)
        return 1
    return 0
