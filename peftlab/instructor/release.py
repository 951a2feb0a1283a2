"""``peftlab build-student --release DIR``: the folder an instructor hands out to students.

The release holds the student notebooks (built from the solutions by
:func:`peftlab.instructor.student.build_student`), the ``peftlab`` package without the instructor
tools, ``data/`` and the project files — and no ``solutions/``, no tests, no hidden
tests. The answer keys of the reasoning items (``peftlab/checks/_keys.py``) stay out too. It is built in a
temporary folder next to ``DIR``, scanned for solution, hidden-test and answer-key markers, and only then moved into place; a release that would leak raises :class:`ReleaseError`
and leaves ``DIR`` untouched.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from peftlab.instructor.student import build_student

__all__ = ["FORBIDDEN", "ReleaseError", "build_release", "find_leaks"]

#: text that must not appear in any released file
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN", "END HIDDEN", "PEFTLAB ANSWER KEYS")
#: top-level files and folders copied from the project root when present
PROJECT_FILES = ("pyproject.toml", "constraints.txt", "Makefile", "README.md", "environment.yml", "conftest.py", "nbval_sanitize.cfg")
PROJECT_DIRS = ("data",)
#: the marker file that lets a rebuild replace an earlier release
MARKER = ".peftlab-release"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")


class ReleaseError(RuntimeError):
    """The release could not be built, or it would contain solutions or hidden tests."""


def _project_root(src: Path) -> Path:
    for candidate in (src.resolve().parent, Path(__file__).resolve().parents[2]):
        if (candidate / "pyproject.toml").is_file() and (candidate / "peftlab").is_dir():
            return candidate
    raise ReleaseError(f"cannot find the project root (pyproject.toml + peftlab/) next to {str(src)!r}")


def find_leaks(root: Path) -> list[str]:
    """``"path: marker"`` for every file under ``root`` that contains a forbidden marker.

    Binary files are scanned too (as bytes), so a zipped or pickled notebook is caught as well.
    """
    leaks = []
    needles = [m.encode() for m in FORBIDDEN]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for needle in needles:
            if needle in data:
                leaks.append(f"{path.relative_to(root)}: {needle.decode()}")
                break
    return leaks


#: files of the package that stay with the instructor: the answer keys of the reasoning items
INSTRUCTOR_ONLY = ("peftlab/checks/_keys.py",)


def _copy_package(root: Path, dst: Path) -> None:
    """``peftlab/`` without ``peftlab/instructor`` (grading and build tools) and without the answer keys."""
    shutil.copytree(root / "peftlab", dst / "peftlab", ignore=_IGNORE)
    shutil.rmtree(dst / "peftlab" / "instructor", ignore_errors=True)
    for rel in INSTRUCTOR_ONLY:
        (dst / rel).unlink(missing_ok=True)


def build_release(src: Path, dst: Path) -> Path:
    """Write the student release of the notebooks in ``src`` into ``dst``; return ``dst``.

    ``dst`` must be a new or empty folder, or an earlier release (it has a ``.peftlab-release``
    file); it is replaced as a whole.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ReleaseError(f"src {str(src)!r} is not a folder of solution notebooks (NN_*.ipynb)")
    root = _project_root(src)
    dst_abs = dst.resolve()
    own = [root, *(root / d for d in ("peftlab", "solutions", "notebooks", "data", "tests", "docs"))]
    if any(dst_abs == d or d in dst_abs.parents for d in own[1:]) or dst_abs == root \
            or dst_abs in src.resolve().parents:
        raise ReleaseError(f"release folder {str(dst)!r} overlaps the project's own folders; pick another")
    if dst.exists() and any(dst.iterdir()) and not (dst / MARKER).exists():
        raise ReleaseError(f"{str(dst)!r} exists and is not an earlier release (no {MARKER}); "
                           "give a new or empty folder")

    tmp = dst.with_name(f".{dst.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        build_student(src, tmp / "notebooks")
        _copy_package(root, tmp)
        for name in PROJECT_FILES:
            if (root / name).is_file():
                shutil.copy2(root / name, tmp / name)
        for lic in sorted(root.glob("LICENSE*")) + sorted(root.glob("NOTICE*")):
            if lic.is_file():
                shutil.copy2(lic, tmp / lic.name)
        for name in PROJECT_DIRS:
            if (root / name).is_dir():
                shutil.copytree(root / name, tmp / name, ignore=_IGNORE)
        (tmp / MARKER).write_text("built by `peftlab build-student --release`; safe to replace\n", encoding="utf-8")
        leaks = find_leaks(tmp)
        if leaks:
            raise ReleaseError("the release would leak solutions or hidden tests:\n  " + "\n  ".join(leaks))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if dst.exists():
        shutil.rmtree(dst)
    tmp.rename(dst)
    return dst
