"""``peftlab compare`` in an output folder (:mod:`peftlab.compare.run`, :mod:`peftlab.compare.cell`): cells, result
files, resuming, refusing a different configuration, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from peftlab import compare as C
from peftlab.compare import run as R

pytestmark = pytest.mark.slow

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PEFTLAB_PROFILE": "tiny"}


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "peftlab.cli", "compare", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    cfg = C.CompareConfig(steps=3, train_size=96)
    records = C.run_comparison(["lora", "full"], [0, 1], out, cfg, progress=False, log=lambda *a: None)
    return out, cfg, records


def test_files_and_columns(small_run):
    out, _, records = small_run
    assert [(r["method"], r["seed"]) for r in records] == [("lora", 0), ("lora", 1), ("full", 0), ("full", 1)]
    assert all(r["status"] == "ok" for r in records), records
    rows = list(csv.DictReader(open(out / "results.csv", encoding="utf-8")))
    assert len(rows) == 4 and set(C.RESULT_COLUMNS) <= set(rows[0])
    summary = list(csv.DictReader(open(out / "summary.csv", encoding="utf-8")))
    assert [r["method"] for r in summary] == ["lora", "full"]
    res = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert res["environment"]["versions"]["torch"] and res["environment"]["profile"] == "tiny"
    assert (out / "plots" / "metric_vs_params.png").stat().st_size > 1000
    assert (out / "plots" / "time_memory.png").stat().st_size > 1000


def test_measurements_are_consistent(small_run):
    out, _, records = small_run
    lora = next(r for r in records if r["method"] == "lora")
    full = next(r for r in records if r["method"] == "full")
    assert full["trainable"] == full["total"] and full["trainable_pct"] == 100.0
    assert 0 < lora["trainable"] < full["trainable"] / 5
    # the LoRA adapter folder is a peft adapter whose tensors are the trainable ones (fp32: 4 bytes each)
    folder = out / "adapters" / "lora-seed0"
    assert lora["adapter_format"] == "peft" and (folder / "adapter_config.json").is_file()
    assert lora["trainable"] * 4 <= lora["adapter_bytes"] <= lora["trainable"] * 4 + 64 * 1024
    assert full["adapter_bytes"] == full["trainable"] * 4
    # training memory: full FT holds gradients and two Adam states for every parameter, LoRA only for its own
    assert full["peak_memory_bytes"] > lora["peak_memory_bytes"] + 3 * 4 * (full["trainable"] - lora["trainable"]) * 0.9
    assert 0 <= lora["value"] <= 1 and lora["seconds_per_step"] > 0


def test_rerun_keeps_finished_cells(small_run):
    out, cfg, _ = small_run
    cell = out / "cells" / "lora__seed0.json"
    before = cell.stat().st_mtime_ns
    msgs = []
    C.run_comparison(["lora", "full"], [0, 1], out, cfg, progress=False, log=msgs.append)
    assert cell.stat().st_mtime_ns == before
    assert msgs and "4 finished" in msgs[0] and "0 to run" in msgs[0]


def test_different_configuration_refused(small_run):
    out, cfg, _ = small_run
    with pytest.raises(ValueError, match=r"different configuration.*steps: 3 → 4.*another --out"):
        C.run_comparison(["lora"], [0], out, C.CompareConfig(steps=4, train_size=96), progress=False)


def test_adding_a_method_to_a_folder_is_allowed(small_run, tmp_path):
    import shutil

    out, cfg, _ = small_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    recs = C.run_comparison(["lora", "rslora"], [0], copy, cfg, progress=False, log=lambda *a: None)
    assert [r["status"] for r in recs] == ["ok", "ok"]
    pinned = json.loads((copy / "config.json").read_text(encoding="utf-8"))["learning_rates"]
    assert set(pinned) == {"lora", "full", "rslora"} and pinned["rslora"] == C.LEARNING_RATES["sentiment"]["rslora"]


def test_method_without_a_learning_rate_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(C.LEARNING_RATES, "sentiment", {"full": 1e-3})
    with pytest.raises(ValueError, match=r"'lora' has no learning rate for task 'sentiment'.*--tune-lr"):
        C.run_comparison(["lora"], [0], tmp_path / "o", C.CompareConfig(steps=2), progress=False)
    assert not (tmp_path / "o").exists()


def test_failing_cell_is_recorded_and_others_go_on(tmp_path, monkeypatch):
    def boom(model, task):
        raise RuntimeError("this method cannot train")

    monkeypatch.setitem(C.METHODS, "lora", C.Method("lora", "broken", boom))
    recs = C.run_comparison(["lora", "full"], [0], tmp_path, C.CompareConfig(steps=2, train_size=64),
                            progress=False, log=lambda *a: None)
    assert recs[0]["status"] == "error" and "cannot train" in recs[0]["error"]
    assert recs[1]["status"] == "ok"
    rows = list(csv.DictReader(open(tmp_path / "results.csv", encoding="utf-8")))
    assert rows[0]["status"] == "error" and "cannot train" in rows[0]["error"]


@pytest.mark.parametrize("args, message", [
    (["--methods", "lora,nope"], "unknown method(s) nope; known methods: full, lora"),
    (["--methods", ""], "--methods is empty"),
    (["--seeds", ""], "--seeds is empty"),
    (["--seeds", "a,b"], "expected comma-separated integers"),
    (["--steps", "0"], "steps=0: expected a positive integer"),
    (["--jobs", "0"], "--jobs=0"),
])
def test_bad_input(tmp_path, args, message):
    r = _cli("--out", str(tmp_path / "o"), *args, timeout=120)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert not (tmp_path / "o").exists()


def test_config_file_checked(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"learning_rate": 0.1}))
    r = _cli("--out", str(tmp_path / "o"), "--config", str(tmp_path / "c.json"), timeout=120)
    assert r.returncode == 2 and "unknown key(s) ['learning_rate']" in r.stderr


def test_killed_run_resumes(tmp_path):
    """Kill the command after its first finished cell; the next run keeps that cell and finishes the rest."""
    cfgf = tmp_path / "c.json"
    cfgf.write_text(json.dumps({"steps": 4, "train_size": 64}))
    args = [sys.executable, "-m", "peftlab.cli", "compare", "--methods", "lora,full", "--seeds", "0,1",
            "--out", str(tmp_path / "o"), "--config", str(cfgf)]
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "o" / "cells"
    deadline = time.time() + 300
    while time.time() < deadline and not (cells.is_dir() and any(cells.glob("*.json"))):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = sorted(cells.glob("*.json"))
    assert first, "no cell finished before the kill"
    stamps = {p.name: p.stat().st_mtime_ns for p in first}
    r = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(first)} finished cell(s) kept" in r.stdout
    assert all((cells / n).stat().st_mtime_ns == t for n, t in stamps.items())
    assert len(list(cells.glob("*.json"))) == 4 and "lora" in r.stdout and "full" in r.stdout


def test_a_folder_pinned_under_the_old_names_resumes_under_the_new(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    cfg = C.CompareConfig(steps=2, learning_rates={"houlsby": 0.01})
    pinned = {**cfg.pinned(), "learning_rates": {"adapter": 0.01}}
    (out / "config.json").write_text(json.dumps(pinned))
    R._pin(out, cfg, ["houlsby"])
    assert json.loads((out / "config.json").read_text())["learning_rates"] == {"houlsby": 0.01}
    (out / "config.json").write_text(json.dumps({**pinned, "learning_rates": {"adapter": 0.03}}))
    with pytest.raises(ValueError, match=r"learning rate of houlsby: 0\.03 → 0\.01"):
        R._pin(out, cfg, ["houlsby"])
