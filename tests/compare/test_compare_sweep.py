"""The learning-rate sweep (:mod:`peftlab.compare.sweep`, ``peftlab compare --tune-lr``)."""

from __future__ import annotations

import json

import pytest

from peftlab import compare as C
from peftlab.compare import sweep as S

pytestmark = pytest.mark.slow


def test_sweep_extends_past_an_edge_winner(monkeypatch):
    calls = []

    def fake_cell(cfg, method, seed, out, task):
        lr = cfg.learning_rates[method]
        calls.append((method, lr))
        peak = {"lora": 0.03, "full": 1e-4, "ia3": 5.0}[method]  # ia3: better and better, never turns
        return {"value": -abs(__import__("math").log10(lr / peak))}

    monkeypatch.setattr(S, "run_cell", fake_cell)
    monkeypatch.setattr(S, "_task", lambda cfg, split="test": object())
    table = C.tune_learning_rates(["lora", "full", "ia3"], log=lambda *a: None,
                                  known={"lora": {"0.0003": -2.0}})
    assert sorted(table["lora"]["scores"]) == [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1] and table["lora"]["best"] == 3e-2
    assert ("lora", 3e-4) not in calls and ("lora", 1e-3) in calls  # a known score is not measured again
    assert sorted(table["full"]["scores"])[:2] == [3e-5, 1e-4] and table["full"]["best"] == 1e-4
    assert max(table["ia3"]["scores"]) == 1e-1 and table["ia3"]["best"] == 1e-1  # stopped after LR_MAX_EXTEND steps
    assert table["ia3"]["edge"] == "upper" and table["lora"]["edge"] is None and table["full"]["edge"] is None
    assert calls.count(("lora", 1e-3)) == len(C.TUNE_SEEDS)  # every rate measured on every tuning seed


def test_tune_lr_command_writes_sweep_and_config_and_resumes(tmp_path, monkeypatch, capsys):
    from peftlab.cli import main

    calls = []

    def fake_cell(cfg, method, seed, out, task):
        lr = cfg.learning_rates[method]
        calls.append((method, lr))
        return {"value": 1.0 - abs(__import__("math").log10(lr / 3e-3))}

    monkeypatch.setattr(S, "run_cell", fake_cell)
    monkeypatch.setattr(S, "_task", lambda cfg, split="test": object())
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
