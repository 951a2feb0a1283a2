"""The comparisons stored for Week 07 (``peftlab/compare_runs``, :func:`peftlab.compare.stored_comparison`): current,
nothing trained while they match, a deleted cell retrained."""

from __future__ import annotations

import json

import pytest

from peftlab import compare as C
from peftlab.compare import run as R

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["sentiment", "sentiment_n100", "sentiment_n1000"])
def test_stored_run_is_current_and_trains_nothing(name, tmp_path, monkeypatch):
    assert name in C.stored_run_names()

    def no_training(*args, **kwargs):
        raise AssertionError("a stored comparison trained a cell: recompute peftlab/compare_runs (make compare-runs)")

    monkeypatch.setattr(R, "run_cell", no_training)
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

    monkeypatch.setattr(R, "run_cell", fake_cell)
    monkeypatch.setattr(R, "_task", lambda cfg, split="test": object())
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
