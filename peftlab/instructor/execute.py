"""Execute notebooks headless with nbclient: the whole course into HTML, or in place.

* :func:`run_course` — ``peftlab run``: execute solution notebooks into ``out/`` (``.ipynb`` + ``.html``)
  and print a summary table.
* :func:`execute_in_place` — ``peftlab execute``: the only way stored outputs are produced.

Each notebook runs in a fresh ``python3`` kernel of the current interpreter, with the notebook's
folder as working directory and ``PEFTLAB_PROFILE`` defaulting to ``tiny``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode
from traitlets.config import Config

from peftlab.instructor.notebook import (
    CHECK,
    NOTEBOOK_RE,
    check_passed,
    find_machine_paths,
    list_notebooks,
    read_notebook,
    role_cells,
    write_notebook,
)

__all__ = [
    "KERNEL_NAME",
    "RunResult",
    "clean_metadata",
    "execute_in_place",
    "execute_notebook",
    "kernel_env",
    "run_course",
    "select_notebooks",
]

KERNEL_NAME = "python3"

#: notebook-level metadata written after execution: stable on every machine (no Python version)
_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": KERNEL_NAME}
_LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


@dataclass
class RunResult:
    """The outcome of executing one notebook."""

    name: str
    seconds: float
    checks_passed: int
    checks_total: int
    error: str | None  # None when every cell ran

    @property
    def status(self) -> str:
        return "ok" if self.error is None else "ERROR"


def kernel_env() -> dict[str, str]:
    """The kernel's environment: ours, ``PEFTLAB_PROFILE`` defaulting to ``tiny``, inline plots.

    ``MPLBACKEND`` is dropped when it names a non-inline backend (the Makefile exports ``Agg``):
    ipykernel only installs the inline backend when the variable is unset, and without it plots
    would be missing from stored outputs and HTML.
    """
    env = dict(os.environ)
    env.setdefault("PEFTLAB_PROFILE", "tiny")
    if "inline" not in env.get("MPLBACKEND", "inline"):
        env.pop("MPLBACKEND")
    env.pop("JPY_PARENT_PID", None)
    return env


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, CellExecutionError):
        return f"{exc.ename}: {exc.evalue}".strip()
    return f"{type(exc).__name__}: {exc}".strip()


def execute_notebook(
    nb: NotebookNode, cwd: Path, timeout: float, allow_errors: bool = False
) -> tuple[NotebookNode, str | None, float]:
    """Execute ``nb`` (modified in place) in a fresh kernel with working directory ``cwd``.

    Returns ``(nb, error, seconds)`` where ``error`` describes the first failing cell (``None`` if
    every cell ran, or if ``allow_errors``). ``timeout`` is the limit per cell in seconds.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds per cell, got {timeout!r}")
    # IPC sockets in a private folder: no TCP ports, and no "Kernel is running over TCP without encryption"
    sock_dir = tempfile.mkdtemp(prefix="peftlab-kernel-")
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sock_dir, "k")}})
    client = NotebookClient(
        nb,
        config=ipc,  # the client creates, owns and shuts down its kernel manager with these settings
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        allow_errors=allow_errors,
        record_timing=False,
        store_widget_state=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=kernel_env())
    except Exception as exc:  # CellExecutionError, timeouts, a dead kernel: report, do not crash
        error = _describe_error(exc)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
    return nb, error, time.perf_counter() - start


def clean_metadata(nb: NotebookNode) -> NotebookNode:
    """Make an executed notebook's metadata machine-independent (in place; returns ``nb``).

    Standard ``python3`` kernelspec, ``language_info`` without the Python version, no widget
    state, no per-cell ``execution`` timestamps.
    """
    nb.metadata["kernelspec"] = dict(_KERNELSPEC)
    nb.metadata["language_info"] = dict(_LANGUAGE_INFO)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    return nb


def _check_counts(nb: NotebookNode) -> tuple[int, int]:
    checks = [rc.cell for rc in role_cells(nb, CHECK)]
    return sum(check_passed(c) for c in checks), len(checks)


def select_notebooks(src: Path, names: list[str] | None) -> list[Path]:
    """The ``NN_*.ipynb`` in ``src`` matching ``names`` (file names, stems or week numbers; all if empty)."""
    available = list_notebooks(src)
    if not names:
        return available
    chosen: list[Path] = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        hits = [p for p in available if stem in (p.stem, p.stem[:2])]
        if not hits:
            raise ValueError(
                f"notebook {name!r} is not in {str(src)!r}; available: {[p.stem for p in available] or 'none'}"
            )
        chosen.extend(p for p in hits if p not in chosen)
    return chosen


def _print_table(results: list[RunResult]) -> None:
    width = max([len("notebook")] + [len(r.name) for r in results])
    print(f"{'notebook':<{width}}  {'seconds':>8}  {'checks':>7}  status")
    for r in results:
        checks = f"{r.checks_passed}/{r.checks_total}"
        line = f"{r.name:<{width}}  {r.seconds:>8.1f}  {checks:>7}  {r.status}"
        if r.error:
            line += f" — {r.error.splitlines()[0][:120]}"
        print(line)


def run_course(src: Path, out: Path, names: list[str] | None = None, timeout: float = 600.0) -> int:
    """Execute solution notebooks into ``out/`` (executed ``.ipynb`` + ``.html``) and print a summary.

    Returns 0 when every notebook ran without error, 1 if any failed, 2 for bad arguments.
    """
    from nbconvert import HTMLExporter

    src, out = Path(src), Path(out)
    try:
        if not src.is_dir():
            raise ValueError(f"src {str(src)!r} is not a folder of notebooks")
        paths = select_notebooks(src, names)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not paths:
        print(f"no NN_*.ipynb notebooks in {str(src)!r}")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    results = []
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} …", flush=True)
        nb = read_notebook(path)
        nb, error, seconds = execute_notebook(nb, path.parent.resolve(), timeout)
        clean_metadata(nb)
        write_notebook(nb, out / path.name)
        body, _ = exporter.from_notebook_node(nb)
        (out / path.with_suffix(".html").name).write_text(body, encoding="utf-8")
        passed, total = _check_counts(nb)
        results.append(RunResult(path.name, seconds, passed, total, error))
        print(f"      {'ok' if error is None else 'ERROR: ' + error.splitlines()[0]} ({seconds:.1f} s)", flush=True)
    print()
    _print_table(results)
    print(f"\nexecuted notebooks and HTML in {out}/")
    return 0 if all(r.error is None for r in results) else 1


def _expand(paths: list[Path]) -> list[Path]:
    expanded: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            expanded.extend(list_notebooks(p))
        elif p.is_file() and p.suffix == ".ipynb":
            expanded.append(p)
        else:
            raise ValueError(f"path {str(p)!r} is neither a notebook (.ipynb) nor a folder")
    return expanded


def execute_in_place(paths: list[Path], timeout: float = 600.0) -> int:
    """Execute notebooks (or folders of ``NN_*.ipynb``) and save them in place with their outputs.

    A notebook whose execution fails is left unchanged on disk. Warns when a check cell did not
    print its pass line or an output shows an absolute machine path. Returns 0 when all succeeded.
    """
    try:
        notebooks = _expand(paths)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not notebooks:
        print("no notebooks to execute")
        return 0
    failures = 0
    for i, path in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {path} …", flush=True)
        nb = read_notebook(path)
        nb, error, seconds = execute_notebook(nb, path.parent.resolve(), timeout)
        if error is not None:
            failures += 1
            print(f"      ERROR after {seconds:.1f} s, file left unchanged: {error}", flush=True)
            continue
        clean_metadata(nb)
        changed = write_notebook(nb, path)
        passed, total = _check_counts(nb)
        print(f"      ok ({seconds:.1f} s, checks {passed}/{total}, {'updated' if changed else 'unchanged'})")
        if passed != total:
            print(f"      warning: {total - passed} check cell(s) did not print their pass line")
        for index, found in find_machine_paths(nb)[:5]:
            print(f"      warning: cell {index} output shows a machine path {found!r}")
        if NOTEBOOK_RE.match(path.name) is None:
            print(f"      note: {path.name} is not named NN_*.ipynb, so build-student ignores it")
    return 1 if failures else 0
