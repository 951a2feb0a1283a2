"""The comparison's configuration and learning rates (:mod:`peftlab.compare.config`): the stored sweeps' winners,
the sweep of each training-set size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import peftlab
from peftlab import compare as C

pytestmark = pytest.mark.slow


def _sweeps():
    return sorted(Path(peftlab.__file__).with_name("compare_lr").glob("*.json"))


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
