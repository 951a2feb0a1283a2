"""What a comparison's records say (:mod:`peftlab.compare.report`): timing noise, per-example scores, the summary
table."""

from __future__ import annotations

import pytest

from peftlab import compare as C

pytestmark = pytest.mark.slow


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


def test_per_example_scores_bad_input():
    with pytest.raises(ValueError, match="method='lora': no finished cell records per-example scores"):
        C.per_example_scores([{"method": "lora", "seed": 0, "status": "ok", "value": 0.9}], "lora")
    seeds, scores = C.per_example_scores([
        {"method": "lora", "seed": 1, "status": "ok", "per_example": "0110"},
        {"method": "lora", "seed": 0, "status": "ok", "per_example": "1111"},
        {"method": "lora", "seed": 2, "status": "error", "per_example": ""}], "lora")
    assert seeds == [0, 1] and scores.tolist() == [[1, 1, 1, 1], [0, 1, 1, 0]]


def test_format_summary_fits_the_longest_name():
    rows = [{"method": m, "cells_ok": 1, "mean": 0.5, "std": 0.0, "trainable": 10, "trainable_pct": 1.0,
             "adapter_bytes": 100, "seconds_per_step": 0.01, "peak_memory_bytes": 1000}
            for m in ("lora", "prompt_tuning")]
    lines = C.format_summary(rows).splitlines()
    starts = {line.index(" 1 ") for line in lines[2:]}
    assert len(starts) == 1 and lines[3].startswith("prompt_tuning ")
