"""The benchmark harness runs end to end and its two sides compute the same thing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def _load():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_rows_agree_and_print_ratios(capsys):
    bench = _load()
    for row in bench.ROWS:
        result = bench.bench(row, torch.device("cpu"), repeats=2, warmup=1)
        assert result["max_abs_diff"] < 1e-5, row.name
        assert result["ratio"] > 0 and result["mem_ours"] > 0 and result["mem_theirs"] > 0
        if row.fast:  # the speed-tuned layers are timed in the same run, and compute the same
            assert result["fast_diff"] < 1e-5 and result["fast_ratio"] > 0, row.name
    assert bench.main(["--quick", "--rows", "4096"]) == 0
    out = capsys.readouterr().out
    assert "worst median ratio peftlab/peft" in out


def test_every_method_with_a_twin_is_timed_both_ways():
    """Each method that has a speed-tuned twin has a benchmark row timing the reference and the twin side by side."""
    from peftlab.core.tuner import registry
    from peftlab.methods.fast import TWINS

    bench = _load()
    with_twin = {name for name, spec in registry().items() if any(cls in TWINS for cls in spec.layers)}
    assert with_twin
    timed_fast = {name for name in with_twin for row in bench.ROWS
                  if row.fast and row.name.lower().replace("-", "").startswith(name)}
    assert timed_fast == with_twin


def test_the_table_prints_reference_and_fast_ratios(capsys):
    bench = _load()
    assert bench.main(["--quick", "--rows", "DoRA r=8, tiny encoder"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("row "))
    assert "ref/peft" in header and "fast/peft" in header
    row = next(line for line in lines if line.startswith("DoRA r=8, tiny encoder"))
    # reference, fast and peft times, then both ratios: nothing in the row is a dash
    assert row.count("ms") == 3 and "–" not in row
