"""``peftlab compare``: cells, result files, resuming, refusing a different configuration, bad input."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import peftlab
from peftlab import compare as C

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


def _sweeps():
    return sorted(Path(C.__file__).parent.with_name("compare_lr").glob("*.json"))


def test_learning_rates_are_the_sweeps_winners():
    """Each stored sweep is complete (a full-size sweep tunes every method), its ``best`` is the highest of its
    own scores, and the rate a run of that task and size uses is that score's rate."""
    assert {p.stem for p in _sweeps()} >= {"sentiment", "sentiment_n100", "sentiment_n1000", "instructions"}
    for path in _sweeps():
        sweep = json.loads(path.read_text(encoding="utf-8"))
        assert C.sweep_name(sweep["task"], sweep["train_size"]) == path.stem and sweep["grid"] == list(C.LR_GRID)
        if sweep["train_size"] is None:
            assert set(sweep["methods"]) == set(C.METHODS), path.stem
        run = C.CompareConfig(task=sweep["task"], train_size=sweep["train_size"])
        for m, v in sweep["methods"].items():
            finite = {float(k): s for k, s in v["scores"].items() if s == s}
            assert len(finite) >= len(C.LR_GRID) and finite[v["best"]] == max(finite.values()), (path.stem, m)
            assert run.lr_source(m) == (v["best"], f"sweep {path.stem}"), (path.stem, m)


def test_sentiment_sweeps_tune_on_two_seeds_apart_from_the_test_seeds():
    for path in _sweeps():
        sweep = json.loads(path.read_text(encoding="utf-8"))
        if sweep["task"] != "sentiment":
            continue
        assert len(sweep["seeds"]) >= 2 and not set(sweep["seeds"]) & {0, 1, 2}, path.name
        stored = C.STORED_RUNS / path.stem
        if (stored / "config.json").is_file():  # the stored comparison of that size uses exactly these winners
            pinned = json.loads((stored / "config.json").read_text(encoding="utf-8"))["learning_rates"]
            assert all(pinned[m] == v["best"] for m, v in sweep["methods"].items() if m in pinned), path.name


def test_learning_rate_follows_the_training_set_size(monkeypatch):
    monkeypatch.setitem(C.LEARNING_RATES, "sentiment", {"lora": 1e-3})
    monkeypatch.setitem(C.LEARNING_RATES, "sentiment_n100", {"lora": 3e-3})
    assert C.CompareConfig().lr_source("lora") == (1e-3, "sweep sentiment")
    assert C.CompareConfig(train_size=100).lr_source("lora") == (3e-3, "sweep sentiment_n100")
    rate, source = C.CompareConfig(train_size=64).lr_source("lora")
    assert rate == 1e-3 and "no sweep for sentiment_n64" in source
    assert C.CompareConfig(train_size=100, learning_rates={"lora": 0.1}).lr_source("lora") == (0.1, "config")


def test_timing_noise_needs_cells_timed_alone():
    def cell(m, s, sps, jobs=1):
        return {"method": m, "seed": s, "status": "ok", "metric": "accuracy", "value": 0.9, "trainable": 1,
                "trainable_pct": 1.0, "adapter_bytes": 1, "seconds_per_step": sps, "peak_memory_bytes": 1, "jobs": jobs}

    recs = [cell("a", 0, 1.0), cell("a", 1, 1.1), cell("a", 2, 0.9), cell("b", 0, 2.0), cell("b", 1, 2.0), cell("b", 2, 2.1)]
    assert C.timing_noise(recs) == pytest.approx((0.2 / 1.0 + 0.1 / 2.0) / 2)
    with pytest.raises(ValueError, match="jobs"):
        C.timing_noise([{**r, "jobs": 2} for r in recs])
    with pytest.raises(ValueError, match="≥ 2"):
        C.timing_noise(recs[:1])


def test_sweep_extends_past_an_edge_winner(monkeypatch):
    calls = []

    def fake_cell(cfg, method, seed, out, task):
        lr = cfg.learning_rates[method]
        calls.append((method, lr))
        peak = {"lora": 0.03, "full": 1e-4, "ia3": 5.0}[method]  # ia3: better and better, never turns
        return {"value": -abs(__import__("math").log10(lr / peak))}

    monkeypatch.setattr(C, "run_cell", fake_cell)
    monkeypatch.setattr(C, "_task", lambda cfg, split="test": object())
    table = C.tune_learning_rates(["lora", "full", "ia3"], log=lambda *a: None,
                                  known={"lora": {"0.0003": -2.0}})
    assert sorted(table["lora"]["scores"]) == [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1] and table["lora"]["best"] == 3e-2
    assert ("lora", 3e-4) not in calls and ("lora", 1e-3) in calls  # a known score is not measured again
    assert sorted(table["full"]["scores"])[:2] == [3e-5, 1e-4] and table["full"]["best"] == 1e-4
    assert max(table["ia3"]["scores"]) == 1e-1 and table["ia3"]["best"] == 1e-1  # stopped after LR_MAX_EXTEND steps
    assert table["ia3"]["edge"] == "upper" and table["lora"]["edge"] is None and table["full"]["edge"] is None
    assert calls.count(("lora", 1e-3)) == len(C.TUNE_SEEDS)  # every rate measured on every tuning seed


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


# --- the comparisons stored for Week 07 -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sentiment", "sentiment_n100", "sentiment_n1000"])
def test_stored_run_is_current_and_trains_nothing(name, tmp_path, monkeypatch):
    assert name in C.stored_run_names()

    def no_training(*args, **kwargs):
        raise AssertionError("a stored comparison trained a cell: recompute peftlab/compare_runs (make compare-runs)")

    monkeypatch.setattr(C, "run_cell", no_training)
    import matplotlib

    backend = matplotlib.get_backend()
    records = C.stored_comparison(name, tmp_path / "run", log=lambda *a: None)
    assert matplotlib.get_backend() == backend  # writing the plots leaves a notebook's inline backend alone
    assert sorted(p.name for p in (tmp_path / "run" / "plots").iterdir()) == ["metric_vs_params.png", "time_memory.png"]
    pinned = json.loads((C.STORED_RUNS / name / "config.json").read_text(encoding="utf-8"))
    assert len(records) == 3 * len(pinned["learning_rates"]) and all(r["status"] == "ok" for r in records)
    assert {r["seed"] for r in records} == {0, 1, 2}
    assert (tmp_path / "run" / "results.csv").is_file() and (tmp_path / "run" / "summary.csv").is_file()
    expected = {"sentiment": None, "sentiment_n100": 100, "sentiment_n1000": 1000}[name]
    assert pinned["train_size"] == expected and pinned["steps"] == 150
    # per-example scores: one 0/1 per test review, whose mean is the cell's value, paired across methods
    from peftlab.analysis.stats import paired_comparison
    from peftlab.data import load_sentiment

    n_test = len(load_sentiment()["test"])
    for r in records:
        assert len(r["per_example"]) == n_test and set(r["per_example"]) <= {"0", "1"}, r["method"]
        assert abs(r["per_example"].count("1") / n_test - r["value"]) < 1e-4, r["method"]
    seeds, full = C.per_example_scores(records, "full")
    assert seeds == [0, 1, 2] and full.shape == (3, n_test)
    result = paired_comparison(full, C.per_example_scores(records, "lora")[1])
    assert result.low <= result.diff <= result.high and result.verdict in ("a", "b", "tie")


def test_stored_run_recomputes_a_deleted_cell(tmp_path, monkeypatch):
    trained = []

    def fake_cell(cfg, method, seed, out, task=None):
        trained.append((method, seed))
        stored = C.STORED_RUNS / "sentiment_n100" / "cells" / f"{method}__seed{seed}.json"
        return {**json.loads(stored.read_text(encoding="utf-8")), "value": 0.5}

    monkeypatch.setattr(C, "run_cell", fake_cell)
    monkeypatch.setattr(C, "_task", lambda cfg, split="test": object())
    out = tmp_path / "run"
    C.stored_comparison("sentiment_n100", out, log=lambda *a: None)
    assert trained == []
    (out / "cells" / "dora__seed1.json").unlink()
    pinned = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg = C.CompareConfig(**{k: v for k, v in pinned.items() if k in C.CompareConfig.__dataclass_fields__})
    records = C.run_comparison(list(pinned["learning_rates"]), [0, 1, 2], out, cfg, progress=False, log=lambda *a: None)
    assert trained == [("dora", 1)] and len(records) == 18
    assert [r["value"] for r in records if (r["method"], r["seed"]) == ("dora", 1)] == [0.5]


def test_stored_run_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no stored comparison of that name; stored: sentiment"):
        C.stored_comparison("nope", tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        C.stored_comparison("sentiment", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_tune_lr_command_writes_sweep_and_config_and_resumes(tmp_path, monkeypatch, capsys):
    from peftlab.cli import main

    calls = []

    def fake_cell(cfg, method, seed, out, task):
        lr = cfg.learning_rates[method]
        calls.append((method, lr))
        return {"value": 1.0 - abs(__import__("math").log10(lr / 3e-3))}

    monkeypatch.setattr(C, "run_cell", fake_cell)
    monkeypatch.setattr(C, "_task", lambda cfg, split="test": object())
    out = tmp_path / "lr"
    assert main(["compare", "--tune-lr", "--methods", "lora,dora", "--seeds", "0", "--out", str(out)]) == 0
    sweep = json.loads((out / "learning_rates.json").read_text())
    assert sweep["methods"]["lora"]["best"] == 3e-3 and len(calls) == 8
    cfg = json.loads((out / "compare_config.json").read_text())
    assert cfg["learning_rates"] == {"lora": 3e-3, "dora": 3e-3} and C.CompareConfig(**cfg).lr("dora") == 3e-3
    calls.clear()
    assert main(["compare", "--tune-lr", "--methods", "lora,dora,ia3", "--seeds", "0", "--out", str(out)]) == 0
    assert {m for m, _ in calls} == {"ia3"}  # lora and dora were read back from the sweep file
    assert set(json.loads((out / "learning_rates.json").read_text())["methods"]) == {"lora", "dora", "ia3"}
    assert "reusing the scores" in capsys.readouterr().out
    calls.clear()  # another training-set size is another sweep: nothing is reused
    assert main(["compare", "--tune-lr", "--methods", "lora", "--seeds", "0", "--train-size", "100", "--out", str(out)]) == 0
    assert len(calls) == 4 and "reusing" not in capsys.readouterr().out
    assert json.loads((out / "compare_config.json").read_text())["train_size"] == 100
    calls.clear()  # without --seeds the sweep averages over the tuning seeds, apart from the test seeds 0, 1, 2
    assert main(["compare", "--tune-lr", "--methods", "lora", "--out", str(tmp_path / "lr2")]) == 0
    assert len(calls) == 4 * len(C.TUNE_SEEDS)
    assert json.loads((tmp_path / "lr2" / "learning_rates.json").read_text())["seeds"] == list(C.TUNE_SEEDS)


@pytest.mark.parametrize("task", C.TASKS)
def test_every_method_builds_and_trains_on_its_tiny_model(task):
    """Every method of the comparison attaches to the task's tiny model (whatever its widths) and one
    backward pass reaches only what it trains."""
    import torch

    from peftlab.models import load_causal_lm, load_encoder_classifier

    torch.manual_seed(0)
    for name, spec in C.METHODS.items():
        if task not in spec.tasks:
            continue
        base = load_encoder_classifier(2, pretrained=True) if task == "sentiment" else load_causal_lm()
        model = spec.build(base, task)
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable, f"{name} on {task}: nothing to train"
        ids = torch.randint(10, 200, (2, 12))
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        out.logits.float().pow(2).mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), f"{name} on {task}: no gradient"


def test_per_example_scores_bad_input():
    with pytest.raises(ValueError, match="method='lora': no finished cell records per-example scores"):
        C.per_example_scores([{"method": "lora", "seed": 0, "status": "ok", "value": 0.9}], "lora")
    seeds, scores = C.per_example_scores([
        {"method": "lora", "seed": 1, "status": "ok", "per_example": "0110"},
        {"method": "lora", "seed": 0, "status": "ok", "per_example": "1111"},
        {"method": "lora", "seed": 2, "status": "error", "per_example": ""}], "lora")
    assert seeds == [0, 1] and scores.tolist() == [[1, 1, 1, 1], [0, 1, 1, 0]]


# --- the method table: the registry's recipes, the registry's names, the old names as aliases --------------------
def test_method_table_is_derived_from_the_registry(monkeypatch):
    from peftlab.core import tuner
    from peftlab.core.recipe import Recipe

    expected = ["full"] + [n for spec in tuner.registry().values() for n in spec.recipes]
    assert list(C.METHODS) == expected == list(C.methods_from_registry())
    assert expected == ["full", "lora", "rslora", "dora", "waveft", "qlora", "vblora", "ia3", "prompt_tuning",
                        "prefix_tuning", "houlsby"]  # the course's order, which the stored runs keep
    for name, method in C.METHODS.items():
        if name != "full":
            owner = next(spec for spec in tuner.registry().values() if name in spec.recipes)
            assert method.build is owner.recipes[name].build and method.summary == owner.recipes[name].summary
    assert set(C.METHODS) - {"full", "rslora"} == set(tuner.registry())  # every registered method is compared

    # a method registered with a recipe joins the table (its own file is all it needs)
    @dataclass
    class NewConfig(peftlab.LoRAConfig):
        method = "new_method"

    monkeypatch.setattr(tuner, "_REGISTRY", dict(tuner._REGISTRY))
    build = C.METHODS["lora"].build
    tuner.register_method("new_method", NewConfig, tuner.get_method("lora").layers,
                          examples=tuner.get_method("lora").examples, recipe=Recipe("a new one", build))
    table = C.methods_from_registry()
    assert list(table)[-1] == "new_method" and table["new_method"].summary == "a new one"
    with pytest.raises(ValueError, match=r"the name\(s\) \['rslora'\] are taken"):
        tuner.register_method("rslora", type("RsConfig", (NewConfig,), {"method": "rslora"}),
                              tuner.get_method("lora").layers, recipe=Recipe("x", build))
    with pytest.raises(TypeError, match="must be a peftlab.core.recipe.Recipe"):
        tuner.register_method("new_method", NewConfig, tuner.get_method("lora").layers, recipe=build)
    assert "rslora" not in tuner._REGISTRY and tuner._REGISTRY["new_method"].recipe.summary == "a new one"


def test_old_method_names_are_accepted_as_aliases(tmp_path, monkeypatch, capsys):
    assert C.ALIASES == {"adapter": "houlsby", "prompt": "prompt_tuning", "prefix": "prefix_tuning"}
    assert C.parse_methods("adapter,prompt,prefix,houlsby") == ["houlsby", "prompt_tuning", "prefix_tuning"]
    assert not set(C.ALIASES) & set(C.parse_methods("all"))
    assert C.CompareConfig(learning_rates={"prompt": 0.1, "lora": 0.01}).learning_rates == {"prompt_tuning": 0.1,
                                                                                          "lora": 0.01}
    with pytest.raises(ValueError, match="'prefix' and 'prefix_tuning' name the same method"):
        C.CompareConfig(learning_rates={"prefix": 0.1, "prefix_tuning": 0.1})
    with pytest.raises(ValueError, match=r"unknown method\(s\) prompts; .*old names accepted: adapter → houlsby"):
        C.parse_methods("prompts")
    records = [{"method": "houlsby", "seed": 0, "status": "ok", "per_example": "01"}]
    assert C.per_example_scores(records, "adapter")[1].tolist() == [[0, 1]]
    # an old command line runs the renamed methods
    from peftlab.cli import main

    seen = []
    monkeypatch.setattr(C, "run_comparison", lambda methods, *a, **k: seen.append(methods) or [])
    assert main(["compare", "--methods", "lora,adapter,prompt,prefix", "--out", str(tmp_path / "o")]) == 0
    assert seen == [["lora", "houlsby", "prompt_tuning", "prefix_tuning"]]
    capsys.readouterr()


def test_a_folder_pinned_under_the_old_names_resumes_under_the_new(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    cfg = C.CompareConfig(steps=2, learning_rates={"houlsby": 0.01})
    pinned = {**cfg.pinned(), "learning_rates": {"adapter": 0.01}}
    (out / "config.json").write_text(json.dumps(pinned))
    C._pin(out, cfg, ["houlsby"])
    assert json.loads((out / "config.json").read_text())["learning_rates"] == {"houlsby": 0.01}
    (out / "config.json").write_text(json.dumps({**pinned, "learning_rates": {"adapter": 0.03}}))
    with pytest.raises(ValueError, match=r"learning rate of houlsby: 0\.03 → 0\.01"):
        C._pin(out, cfg, ["houlsby"])


def test_format_summary_fits_the_longest_name():
    rows = [{"method": m, "cells_ok": 1, "mean": 0.5, "std": 0.0, "trainable": 10, "trainable_pct": 1.0,
             "adapter_bytes": 100, "seconds_per_step": 0.01, "peak_memory_bytes": 1000}
            for m in ("lora", "prompt_tuning")]
    lines = C.format_summary(rows).splitlines()
    starts = {line.index(" 1 ") for line in lines[2:]}
    assert len(starts) == 1 and lines[3].startswith("prompt_tuning ")
