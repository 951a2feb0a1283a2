"""``make rehearse-colab``: every solution notebook on the ``colab`` profile, offline, with the Hub stand-ins.

Each notebook runs in a fresh kernel (nbclient) with ``PEFTLAB_PROFILE=colab`` and ``PEFTLAB_COLAB_STANDINS=1``
(:mod:`peftlab.standins`: the colab models' architectures at a tiny width, NSMC's schema; ``HF_HUB_CACHE`` points
at a mirror of the stand-ins under their Hub ids, for cells that load a Hub id directly), on CUDA when the
machine has it, else on the CPU. Executed copies go to ``build/rehearse/`` (never into ``solutions/``). A summary
prints per notebook pass/fail, seconds and the first error (cell index, its failing source line, the traceback's
last lines); the exit status is 1 when any notebook failed.

On a machine without a GPU a model on the wrong device cannot fail, so the rehearsal also installs a device guard
in each kernel (a hidden first cell; cell indices in the report are the notebook's own): it records which
modules and tensors were sent to the device that :func:`peftlab.device.pick_device` chose (``.to(DEVICE)``,
``.cuda()``) and raises ``DeviceGuardError`` when a model that was sent there is called with a tensor that was
not, or a model left on the host is called with a tensor that was sent, and when a tensor sent to the device
reaches numpy/matplotlib without ``.cpu()``. It is a rehearsal of placement, not of speed: results and outputs
of the guarded run are not stored anywhere but ``build/rehearse/``.

Usage: ``python -m peftlab.instructor.rehearse [NN ...] [--out build/rehearse] [--no-device-guard]``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEVICE_GUARD", "Outcome", "first_error", "main", "rehearse"]

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GUARD_TAG = "peftlab-rehearsal-device-guard"

#: Kernel-side device guard: the hidden first cell of each rehearsed notebook (the code is in ``_device_guard.py``).
DEVICE_GUARD = """# peftlab-rehearsal-device-guard
from peftlab.instructor._device_guard import DeviceGuardError, install

install()"""


@dataclass
class Outcome:
    """One notebook's rehearsal."""

    name: str
    seconds: float
    error: str | None = None  # None when every cell ran
    cell: int | None = None  # the notebook's own index of the failing cell
    line: str | None = None  # the failing source line, when the traceback names one
    tail: str | None = None  # the last lines of the traceback
    more: list | None = None  # with keep_going: (cell, line, error) of every later failing cell

    @property
    def passed(self) -> bool:
        return self.error is None


def _strip(text: str) -> str:
    return _ANSI.sub("", text)


def first_error(nb, offset: int = 0) -> tuple[int | None, str | None, str | None, str | None]:
    """``(cell index - offset, failing source line, "ename: evalue", traceback tail)`` of the first error output."""
    found = all_errors(nb, offset)
    return found[0] if found else (None, None, None, None)


def all_errors(nb, offset: int = 0) -> list[tuple[int, str | None, str, str]]:
    """:func:`first_error`'s tuple for every cell with an error output, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") != "error":
                continue
            frames = [_strip(f) for f in out.get("traceback", [])]
            line = None
            for frame in frames:  # the cell's own frame: "Cell In[n], line k" then "----> k <source>"
                if frame.lstrip().startswith("Cell In["):
                    hits = re.findall(r"^-+> *\d+ (.*)$", frame, flags=re.M)
                    if hits:
                        line = hits[-1].strip()
            text = "\n".join(frames)
            tail = "\n".join(text.strip().splitlines()[-12:])
            found.append((index - offset, line, f"{out.get('ename', '')}: {_strip(out.get('evalue', ''))}".strip(), tail))
            break
    return found


def _prepare_standins(standin_dir: Path, size: str | None) -> None:
    """Build every stand-in and the Hub-cache mirror (before a kernel starts); return the mirror's folder."""
    from peftlab import standins

    saved = {k: os.environ.get(k) for k in (standins.STANDIN_DIR_ENV, standins.SIZE_ENV)}
    os.environ[standins.STANDIN_DIR_ENV] = str(standin_dir)
    if size:
        os.environ[standins.SIZE_ENV] = size
    try:
        for name in ("encoder", "causal_lm", "nsmc"):
            standins.ensure(name)
        return standins.hub_cache()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _env(standin_dir: Path, size: str | None) -> dict[str, str]:
    from peftlab.instructor.execute import kernel_env

    env = kernel_env()
    env.update({"PEFTLAB_PROFILE": "colab", "PEFTLAB_COLAB_STANDINS": "1", "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "PEFTLAB_STANDIN_DIR": str(standin_dir)})
    if size:
        env["PEFTLAB_COLAB_STANDIN_SIZE"] = size
    env["HF_HUB_CACHE"] = str(_prepare_standins(standin_dir, size))  # Hub ids loaded directly: the stand-ins
    return env


def rehearse_one(path: Path, out: Path, standin_dir: Path, timeout: float = 1800.0, device_guard: bool = True,
                 size: str | None = None, keep_going: bool = False) -> Outcome:
    """Execute one notebook on the colab profile with the stand-ins; write the executed copy into ``out``.

    ``keep_going`` runs every cell even after one failed (later errors may follow from the first)."""
    import shutil
    import tempfile

    import nbformat
    from nbclient import NotebookClient
    from traitlets.config import Config

    from peftlab.instructor.notebook import read_notebook, write_notebook

    nb = read_notebook(path)
    if device_guard:
        guard = nbformat.v4.new_code_cell(DEVICE_GUARD.strip(), metadata={"tags": [_GUARD_TAG]})
        guard.id = _GUARD_TAG
        nb.cells.insert(0, guard)
    sock_dir = tempfile.mkdtemp(prefix="peftlab-kernel-")
    ipc = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sock_dir, "k")}})
    client = NotebookClient(nb, config=ipc, timeout=timeout, kernel_name="python3", allow_errors=keep_going,
                            record_timing=False, store_widget_state=False,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    error = None
    try:
        client.execute(env=_env(standin_dir, size))
    except Exception as exc:  # CellExecutionError, a timeout, a dead kernel: report it
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
    seconds = time.perf_counter() - start
    if device_guard:
        nb.cells.pop(0)
    out.mkdir(parents=True, exist_ok=True)
    write_notebook(nb, out / path.name)
    found = all_errors(nb)
    if error is None and not found:
        return Outcome(path.name, seconds)
    if not found:
        return Outcome(path.name, seconds, _strip(error), tail=_strip(error))
    cell, line, message, tail = found[0]
    return Outcome(path.name, seconds, message, cell, line, tail, [(c, ln, m) for c, ln, m, _ in found[1:]])


def _device_words(device_guard: bool) -> str:
    import torch

    if torch.cuda.is_available():
        from peftlab.device import describe

        info = describe()
        return f"CUDA {info.name}, training dtype {info.dtype}"
    return "CPU (no GPU here; " + ("device placement checked by the device guard)" if device_guard else "no device guard)")


def rehearse(names: list[str] | None = None, src: Path = Path("solutions"), out: Path = Path("build/rehearse"),
             timeout: float = 1800.0, device_guard: bool = True, size: str | None = None,
             keep_going: bool = False) -> list[Outcome]:
    """Rehearse the chosen notebooks (all ``NN_*.ipynb`` in ``src`` when ``names`` is empty); print a summary."""
    from peftlab.instructor.execute import select_notebooks

    paths = select_notebooks(Path(src), names)
    out = Path(out)
    standin_dir = Path(os.environ.get("PEFTLAB_STANDIN_DIR") or out / "standins").resolve()
    print(f"colab rehearsal: {len(paths)} notebook(s), stand-ins in {standin_dir}, {_device_words(device_guard)}", flush=True)
    _prepare_standins(standin_dir, size)
    outcomes = []
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {path.name} …", flush=True)
        result = rehearse_one(path, out, standin_dir, timeout, device_guard, size, keep_going)
        outcomes.append(result)
        print(f"      {'pass' if result.passed else 'FAIL'} ({result.seconds:.1f} s)", flush=True)
    width = max(len(o.name) for o in outcomes) if outcomes else 8
    print(f"\n{'notebook':<{width}}  result  {'seconds':>8}  first error")
    for o in outcomes:
        where = "" if o.passed else f"cell {o.cell}: {o.error}"
        print(f"{o.name:<{width}}  {'pass' if o.passed else 'FAIL':<6}  {o.seconds:>8.1f}  {where[:160]}")
    for o in outcomes:
        if not o.passed:
            print(f"\n--- {o.name}, cell {o.cell}" + (f": {o.line}" if o.line else ""))
            print(o.tail)
            for cell, line, message in o.more or []:
                print(f"    later: cell {cell}" + (f": {line}" if line else "") + f" -> {message[:300]}")
    print(f"\nexecuted copies in {out}/")
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peftlab.instructor.rehearse", description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="week numbers or notebook names (default: all)")
    parser.add_argument("--src", default="solutions", type=Path)
    parser.add_argument("--out", default="build/rehearse", type=Path)
    parser.add_argument("--timeout", default=1800.0, type=float, help="seconds per cell (default 1800)")
    parser.add_argument("--no-device-guard", dest="device_guard", action="store_false")
    parser.add_argument("--keep-going", action="store_true",
                        help="run every cell after a failure too and list every failing cell")
    parser.add_argument("--size", default=None, help="PEFTLAB_COLAB_STANDIN_SIZE for the kernels (default: 16)")
    args = parser.parse_args(argv)
    try:
        outcomes = rehearse(args.notebooks, args.src, args.out, args.timeout, args.device_guard, args.size,
                            args.keep_going)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if all(o.passed for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
