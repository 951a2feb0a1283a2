"""Atomic file writes: readers and concurrent writers never see a half-written file.

Every file the kit writes for later reading (adapter files, grade tables, notebooks, comparison cells)
goes through :func:`atomic_write`: the bytes land in a temporary file in the target's folder (unique per
process), which is then renamed over the target in one step (``os.replace`` is atomic on POSIX and Windows).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_with"]


def atomic_write_with(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then rename it onto ``path``.

    For writers that want a file name (e.g. ``safetensors.torch.save_file``). The temporary file is removed
    when ``write`` raises; the target is then untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the kit's files are read by grading kernels too
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    if not isinstance(data, (str, bytes)):
        raise TypeError(f"atomic_write: data must be str or bytes, got {type(data).__name__}")
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(payload))
