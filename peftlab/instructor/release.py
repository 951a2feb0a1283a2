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

__all__ = ["FORBIDDEN", "ReleaseError", "build_release", "find_leaks", "release_readme"]

#: text that must not appear in any released file
FORBIDDEN = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN", "END HIDDEN", "PEFTLAB ANSWER KEYS")
#: top-level files and folders copied from the project root when present (the release gets its own README.md,
#: written for students by :func:`release_readme`; the project's README describes instructor tools it lacks)
PROJECT_FILES = ("pyproject.toml", "constraints.txt", "Makefile", "environment.yml", "conftest.py", "nbval_sanitize.cfg")
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


def release_readme(notebooks: list[str], root: Path) -> str:
    """The release's README: for students — open a week on Colab, or run it locally, check it, hand it in.
    It names only what the release holds (no solutions, no grading or build tools, no docs/)."""
    from peftlab.instructor.publish import colab_url, read_settings

    settings = read_settings(root)
    rows = "\n".join(f"| {name[:2]} | `notebooks/{name}` | [![Open In Colab](https://colab.research.google.com/assets/"
                     f"colab-badge.svg)]({colab_url(name, settings)}) |" for name in notebooks)
    return f"""# peftlab — 학생용 배포본 (student release)

파라미터 효율적 미세조정(PEFT) 강의의 주차별 실습 노트북과, 노트북이 쓰는 `peftlab` 패키지·작은 모델·데이터입니다.
해답과 채점 도구는 들어 있지 않습니다. Notebooks in Korean with English technical terms.

| 주차 / Week | 노트북 / Notebook | Colab |
|---|---|---|
{rows}

## Colab에서 (on Colab)

위 표의 배지를 누르세요. 첫 코드 셀이 Colab에서만 이 저장소({settings.repository}, `{settings.ref}`)를 받아 설치합니다
(Colab의 torch는 그대로 둡니다). 그다음 위에서부터 차례로 실행하세요. Colab에서는 `colab` 프로필(Hub의 실제 모델)로,
`PEFTLAB_PROFILE=tiny`로 바꾸면 키트의 작은 모델로 돕니다. 노트북은 **파일 → 드라이브에 사본 저장**으로 저장해 두세요.

## 내 컴퓨터에서 (locally, CPU is enough)

```bash
make setup      # .venv를 만들고 constraints.txt의 버전으로 설치 (Python 3.10–3.13)
make lab        # notebooks/를 JupyterLab으로 열기
```

(make가 없으면: `python -m venv .venv && .venv/bin/pip install -c constraints.txt -e '.[dev]'` 후 `.venv/bin/jupyter lab notebooks/`.)

## 내 답 확인하기 (check your work)

- 노트북 안에서: 각 체크 셀이 `✅ 체크포인트 … — 공개 체크 통과`나 무엇을 고칠지 힌트를 출력합니다. 마지막 셀에서
  `from peftlab.checks import check_all; check_all("01")`을 실행하면 그 주의 모든 체크의 결과와 배점을 한눈에 봅니다
  (Colab에서도 됩니다).
- 처음부터 다시 실행해 확인: `.venv/bin/peftlab validate 01 notebooks/01_lora_review.ipynb` (모두 통과하면 종료 코드 0).
- 공개 체크는 피드백입니다. 점수는 강사가 숨은 테스트와 서술형 답(루브릭)으로 따로 매깁니다. 답이 정해진 선택 문항은
  이 배포본에서 "형식 확인 (정답은 채점 때 확인합니다)"만 알려 줍니다.

## 제출 (hand in)

주차마다 노트북 하나를 강사가 정한 이름(예: `학번_이름.ipynb`)으로 제출합니다. 체크 셀(잠긴 셀)은 고치지 마세요:
채점할 때 원래 셀로 바뀝니다. 여러분이 쓴 연습 셀과 서술형 답 셀만 채점에 쓰입니다.

## 무엇이 들어 있나 (contents)

```
notebooks/   주차별 실습 노트북
peftlab/     참조 구현 패키지 (체크 포함)
data/        키트가 만든 작은 데이터셋과 사전학습 모델 (data/README.md)
LICENSE      Apache-2.0
```
"""


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
        written = build_student(src, tmp / "notebooks")
        _copy_package(root, tmp)
        (tmp / "README.md").write_text(release_readme([p.name for p in written], root), encoding="utf-8")
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
