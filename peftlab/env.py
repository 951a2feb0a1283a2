"""Environment check: ``peftlab env`` / ``peftlab.env.check()`` prints [OK]/[FAIL] per dependency.

Paste its output into a bug report: versions, device, bf16 support and profile answer most
"it does not run on my machine" questions.
"""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

__all__ = ["check", "normalise_name", "read_lock", "requirements", "tested_versions", "versions"]

#: the lock beside the package in a checkout, a student release or a Colab clone
LOCK_FILE = Path(__file__).resolve().parents[1] / "constraints.txt"


def requirements(include_dev: bool = False) -> list[Requirement]:
    """peftlab's declared runtime requirements (plus ``dev`` extras if asked), read from the installed
    package's metadata (``pyproject.toml`` is their one source). Empty when peftlab is not installed."""
    try:
        raw = metadata.requires("peftlab") or []
    except metadata.PackageNotFoundError:
        return []
    reqs = []
    for line in raw:
        req = Requirement(line)
        if req.marker is not None:
            if not include_dev or "dev" not in str(req.marker):
                continue
        reqs.append(req)
    return reqs


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def normalise_name(name: str) -> str:
    """PEP 503 form of a distribution name (``Huggingface_Hub`` → ``huggingface-hub``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file (``name==version`` lines, ``#`` comments); raises
    ``ValueError`` naming the file and line of anything else."""
    pins = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        if match is None:
            raise ValueError(f"{path}:{number}: expected 'name==version', got {line!r}")
        pins[normalise_name(match[1])] = match[2]
    return pins


def tested_versions(path: Path = LOCK_FILE) -> dict[str, str]:
    """The versions the notebooks were executed and tested with (``constraints.txt``); empty when the file
    is not there (peftlab installed from a wheel)."""
    return read_lock(path) if Path(path).is_file() else {}


def versions() -> dict[str, str | None]:
    """Python, peftlab and the installed version of every runtime requirement (for result files)."""
    out = {"python": platform.python_version(), "peftlab": _installed("peftlab")}
    out.update({req.name: _installed(req.name) for req in requirements()})
    return out


def check(verbose: bool = True, include_dev: bool = False) -> bool:
    """Print one line per dependency and the device; return True when every requirement is met."""
    ok_all = True
    lines = [f"python      {platform.python_version()} ({platform.system()} {platform.machine()})"]
    if _installed("peftlab") is None:
        ok_all = False
        lines.append("[FAIL] peftlab is not installed as a package, so its requirements are unknown: "
                     "run `pip install -e .` in the repository (make setup does it)")
    tested = tested_versions()
    for req in requirements(include_dev):
        version = _installed(req.name)
        if version is None:
            ok, shown = False, "not installed"
        else:
            # local builds such as 2.13.0+cpu satisfy 2.13.0 ranges
            ok = req.specifier.contains(Version(re.sub(r"\+.*$", "", version)), prereleases=True)
            shown = version
        ok_all &= ok
        pin = tested.get(normalise_name(req.name))
        note = "" if pin is None else (f"; tested {pin}" if version is None or re.sub(r"\+.*$", "", version) == pin
                                       else f"; tested {pin}: results may differ from the stored ones")
        lines.append(f"[{'OK' if ok else 'FAIL'}] {req.name:<14} {shown:<16} (needs {req.specifier or 'any'}{note})")
    try:
        from peftlab.device import describe

        info = describe()
        lines.append(f"device      {info.device} ({info.name}), train dtype {info.dtype}, bf16 {'yes' if info.bf16 else 'no'}"
                     + (f", {info.memory_gb} GiB" if info.memory_gb else ""))
    except Exception as exc:  # torch missing or broken: the lines above already say so
        ok_all = False
        lines.append(f"[FAIL] device check: {type(exc).__name__}: {exc}")
    lines.append(f"profile     {os.environ.get('PEFTLAB_PROFILE', 'tiny')} (PEFTLAB_PROFILE)")
    if verbose:
        print("\n".join(lines))
    return ok_all
