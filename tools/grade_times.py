"""Measure `peftlab grade` per week: N copies of each week's solution graded with -j J; prints a Markdown table
(seconds per class and per notebook) for docs/grading.md.

    .venv/bin/python tools/grade_times.py --students 4 --jobs 2 [--weeks 00,03]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from peftlab.instructor.grade import grade
from peftlab.instructor.notebook import list_notebooks, week_from_filename

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--weeks", default="", help="comma-separated weeks (default: every week)")
    args = ap.parse_args()
    wanted = {w.zfill(2) for w in args.weeks.split(",") if w}
    print(f"| week | {args.students} notebooks, -j {args.jobs} (s) | per notebook (s) | status |")
    print("|---|---|---|---|")
    for path in list_notebooks(ROOT / "solutions"):
        week = week_from_filename(path)
        if wanted and week not in wanted:
            continue
        work = Path(tempfile.mkdtemp(prefix="peftlab-gradetime-"))
        work.chmod(0o755)
        try:
            subs = work / "subs"
            subs.mkdir()
            for i in range(args.students):
                shutil.copy(path, subs / f"student{i:02d}.ipynb")
            for p in [work, *work.rglob("*")]:
                p.chmod(0o755 if p.is_dir() else 0o644)
            start = time.perf_counter()
            rows = grade(week, subs, work / "out", solutions=ROOT / "solutions", jobs=args.jobs, progress=False)
            seconds = time.perf_counter() - start
            statuses = sorted({f"{r.status} {r.total:g}/{r.max_points:g}" for r in rows})
            print(f"| {week} | {seconds:.0f} | {seconds * args.jobs / args.students:.0f} | {', '.join(statuses)} |",
                  flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
