"""peftlab.core.fileio: one atomic write for every file the kit writes."""

from __future__ import annotations

import stat

import pytest

from peftlab.core.fileio import atomic_write, atomic_write_with


def test_text_and_bytes_land_whole_and_readable(tmp_path):
    target = tmp_path / "sub" / "a.csv"
    assert atomic_write(target, "한글,1\n") == target
    assert target.read_text(encoding="utf-8") == "한글,1\n"
    atomic_write(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # grading kernels run as another uid
    assert [p.name for p in target.parent.iterdir()] == ["a.csv"]  # no temporary file left


def test_a_failing_writer_leaves_the_old_file_untouched(tmp_path):
    target = tmp_path / "adapter.json"
    target.write_text("old")

    def half(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_with(target, half)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter.json"]


def test_bad_data_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="data must be str or bytes"):
        atomic_write(tmp_path / "x", 3)
    assert list(tmp_path.iterdir()) == []
