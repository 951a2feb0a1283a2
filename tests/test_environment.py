"""The installed libraries are the tested ones: ``constraints.txt`` pins every distribution, ``make setup``
installs through it, and this test fails when anything installed differs, so a green ``make test`` always
means "the lock passes" (not "whatever pip resolved today passes")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from peftlab.env import normalise_name, read_lock

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "constraints.txt"


def _lock_module():
    spec = importlib.util.spec_from_file_location("peftlab_lock_tool", ROOT / "tools" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_versions_are_the_lock():
    lock = _lock_module()
    pins, have = read_lock(LOCK), lock.installed()
    differ = {name: (version, have[name]) for name, version in pins.items() if name in have and have[name] != version}
    missing = sorted(set(pins) - set(have))
    assert not differ and not missing, (
        "installed libraries differ from constraints.txt (the tested environment): "
        + ", ".join(f"{n} {v[1]} (lock {v[0]})" for n, v in sorted(differ.items()))
        + (f"; not installed: {missing}" if missing else "")
        + ". Run `make setup` (it installs through the lock), or refresh the lock with `make lock` and re-test.")


def test_the_lock_holds_every_direct_dependency_and_stays_in_its_range():
    from packaging.requirements import Requirement

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = read_lock(LOCK)
    for line in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = normalise_name(req.name)
        assert name in pins, f"{req.name} is a dependency but constraints.txt does not pin it"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {req}"


def test_bad_lock_lines_are_named(tmp_path):
    bad = tmp_path / "constraints.txt"
    bad.write_text("# ok\ntorch>=2\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"constraints.txt:2: expected 'name==version'"):
        read_lock(bad)


def test_local_version_labels_are_dropped():
    lock = _lock_module()
    assert lock.public_version("2.13.0+cpu") == "2.13.0" and lock.normalise_name("Huggingface_Hub") == "huggingface-hub"


def test_env_report_names_the_tested_version(capsys):
    from peftlab.env import check, tested_versions

    assert tested_versions() == read_lock(LOCK)
    check(verbose=True)
    line = next(line for line in capsys.readouterr().out.splitlines() if " transformers " in line)
    assert f"tested {tested_versions()['transformers']}" in line and "may differ" not in line
