"""The Colab path, offline: each notebook's setup cell run as Colab would run it.

A fake ``google.colab`` module, the repository URL pointed at a local ``file://`` clone, a fresh virtual
environment that sees the kit's dependencies but not the kit, and no package index. Afterwards
``import peftlab`` works from the clone, the tiny data is found, and a second run does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from peftlab.instructor.notebook import list_notebooks, read_notebook
from peftlab.instructor.publish import SETUP_MARKER, PublishSettings, read_settings, setup_cell_source

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = list_notebooks(REPO / "solutions")

DRIVER = r'''
import json, os, sys, types
sys.modules["google.colab"] = types.ModuleType("google.colab")   # what Colab has and a laptop doesn't
source = open(sys.argv[1], encoding="utf-8").read()
outcome = {}
try:
    exec(compile(source, "setup-cell", "exec"), {"__name__": "__main__"})
    exec(compile(source, "setup-cell", "exec"), {"__name__": "__main__"})     # a second run
    import peftlab
    from peftlab import data, profile
    outcome = {"peftlab": peftlab.__file__, "data_root": str(profile.data_root()),
               "train_rows": len(data.read_jsonl(profile.data_root() / "sentiment" / "train.jsonl")),
               "profile": os.environ.get("PEFTLAB_PROFILE")}
except Exception as exc:
    outcome = {"error": f"{type(exc).__name__}: {exc}"}
print("OUTCOME " + json.dumps(outcome))
'''


def _git(*args, cwd=None):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> Path:
    """A clone of this checkout's committed HEAD, with a branch to install from."""
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the kit")
    path = tmp_path_factory.mktemp("origin") / "peftlab"
    _git("clone", "--quiet", "--no-local", str(REPO), str(path))
    _git("checkout", "--quiet", "-B", "colab-test", cwd=path)
    return path


def _fresh_venv(tmp: Path) -> Path:
    """A new venv whose sys.path also holds this environment's site-packages (torch, transformers, pip …)
    but not peftlab: the editable install's hook in those site-packages is not processed from there."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _run_cell(python: Path, cell: str, tmp: Path, content: Path, **extra_env: str) -> tuple[dict, str]:
    cell_file, driver = tmp / "cell.py", tmp / "driver.py"
    cell_file.write_text(cell, encoding="utf-8")
    driver.write_text(DRIVER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEFTLAB_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PEFTLAB_COLAB_DIR=str(content), PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1", **extra_env)
    done = subprocess.run([str(python), str(driver), str(cell_file)], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("OUTCOME ")), None)
    assert line is not None, f"driver died:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return json.loads(line[len("OUTCOME "):]), done.stdout


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_setup_cell_is_the_generated_one(path):
    cells = [c for c in read_notebook(path).cells if c.cell_type == "code" and c.source.startswith(SETUP_MARKER)]
    assert len(cells) == 1, f"{path.name}: needs exactly one Colab setup cell"
    assert cells[0].source == setup_cell_source(read_settings()).rstrip("\n"), \
        f"{path.name}: the setup cell is not what [tool.peftlab] generates; run `make student`"
    student = read_notebook(REPO / "notebooks" / path.name)
    assert cells[0].source in [c.source for c in student.cells]


@pytest.mark.slow
def test_setup_cell_installs_offline_and_second_run_is_a_no_op(origin, tmp_path):
    settings = PublishSettings(read_settings().repository, "colab-test")
    cell = setup_cell_source(settings, repository=f"file://{origin}")
    python = _fresh_venv(tmp_path)
    content = tmp_path / "content" / "peftlab"
    outcome, stdout = _run_cell(python, cell, tmp_path, content)
    assert "error" not in outcome, outcome.get("error")
    assert Path(outcome["peftlab"]).resolve().is_relative_to(content.resolve()), outcome
    assert Path(outcome["data_root"]).resolve() == (content / "data").resolve()
    assert outcome["train_rows"] > 0 and outcome["profile"] == "colab"
    assert stdout.count("peftlab: installed from file://") == 1
    assert stdout.count("peftlab: already installed") == 1  # the second run did nothing


@pytest.mark.slow
def test_setup_cell_survives_a_newer_colab_torch(origin, tmp_path):
    """Colab ships a torch newer than pyproject.toml's local cap (here 2.99.0, as pip sees it): the install keeps
    it and still succeeds — the kit goes in without dependencies, its dependencies without torch."""
    settings = PublishSettings(read_settings().repository, "colab-test")
    cell = setup_cell_source(settings, repository=f"file://{origin}")
    python = _fresh_venv(tmp_path)
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    info = Path(purelib, "torch-2.99.0.dist-info")  # what pip and importlib.metadata report first
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.99.0\n", encoding="utf-8")
    (info / "RECORD").write_text("", encoding="utf-8")
    probe = subprocess.run([str(python), "-c", "from importlib.metadata import version; print(version('torch'))"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "2.99.0"
    content = tmp_path / "content" / "peftlab"
    # Colab's pip has no machine-wide configuration (this machine's caps torch for its own CPU wheel)
    outcome, stdout = _run_cell(python, cell, tmp_path, content, PIP_CONFIG_FILE=os.devnull)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["train_rows"] > 0
    pins = (content / ".colab-constraints.txt").read_text(encoding="utf-8")
    assert pins.startswith("torch==2.99.0\n")


@pytest.mark.slow
def test_setup_cell_failure_is_clear_and_leaves_nothing_half_done(tmp_path):
    cell = setup_cell_source(read_settings(), repository=f"file://{tmp_path}/no-such-repository")
    python = _fresh_venv(tmp_path)
    content = tmp_path / "content" / "peftlab"
    outcome, _ = _run_cell(python, cell, tmp_path, content)
    assert outcome.get("error", "").startswith("RuntimeError: cloning file://"), outcome
    assert not content.exists() and not Path(str(content) + ".partial").exists()


def test_changing_the_one_setting_rewrites_links_and_setup_cells(tmp_path):
    """What an instructor does: edit [tool.peftlab], run the build; every link and setup cell follows."""
    import shutil

    from peftlab.instructor.publish import publish_course

    root = tmp_path / "kit"
    (root / "solutions").mkdir(parents=True)
    for path in SOLUTIONS:
        shutil.copy(path, root / "solutions" / path.name)
    shutil.copy(REPO / "README.md", root / "README.md")
    text = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    text = text.replace('repository = "https://github.com/peftlab/peftlab"', 'repository = "https://github.com/kaist-ai/peft-course"')
    (root / "pyproject.toml").write_text(text.replace('ref = "main"', 'ref = "fall-2026"'), encoding="utf-8")
    changed = publish_course(root / "solutions", root)
    assert {p.name for p in changed} == {p.name for p in SOLUTIONS} | {"README.md"}
    for path in SOLUTIONS:
        nb_text = (root / "solutions" / path.name).read_text(encoding="utf-8")
        assert "github/kaist-ai/peft-course/blob/fall-2026/notebooks/" + path.name in nb_text
        assert "github.com/peftlab/peftlab" not in nb_text and "github/peftlab/peftlab" not in nb_text
        assert "'https://github.com/kaist-ai/peft-course', 'fall-2026'" in nb_text
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "github/kaist-ai/peft-course/blob/fall-2026/notebooks/01_lora_review.ipynb" in readme
    assert publish_course(root / "solutions", root) == []  # a rebuild changes nothing


@pytest.mark.parametrize("table, words", [
    ('repository = "https://gitlab.com/a/b"', "https://github.com/<owner>/<repo>"),
    ('ref = "../x"', "branch or tag"),
    ('branch = "main"', "unknown key"),
])
def test_bad_publish_settings_are_named(tmp_path, table, words):
    (tmp_path / "pyproject.toml").write_text(f"[tool.peftlab]\n{table}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=words.replace("<", ".").replace(">", ".").replace("/", ".")):
        read_settings(tmp_path)
