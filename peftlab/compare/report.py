"""What a comparison's records say: per-method summaries, the timing noise floor, per-example scores, and the
result files (``results.csv``, ``summary.csv``, ``results.json``, ``plots/``) rebuilt from the cells."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from peftlab.compare.methods import canonical_method
from peftlab.core.fileio import atomic_write

if TYPE_CHECKING:
    from peftlab.compare.config import CompareConfig


RESULT_COLUMNS = ["method", "seed", "status", "metric", "value", "trainable", "trainable_pct", "adapter_bytes",
                  "adapter_format", "seconds_per_step", "peak_memory_bytes", "memory_source", "lr", "final_loss",
                  "device", "error"]
SUMMARY_COLUMNS = ["method", "cells_ok", "metric", "mean", "std", "trainable", "trainable_pct", "adapter_bytes",
                   "seconds_per_step", "time_spread", "peak_memory_bytes"]


def summarize(records: Sequence[dict]) -> list[dict]:
    """Per method: mean ± std (sample std over seeds; 0 for one seed) of the metric, medians of the rest, and
    ``time_spread``: (slowest − fastest) / median of its seconds per step over the seeds (the same computation
    repeated, so timing noise; meaningful when the cells ran one at a time, ``jobs`` = 1)."""
    rows = []
    for m in dict.fromkeys(r["method"] for r in records):
        ok = [r for r in records if r["method"] == m and r.get("status") == "ok"]
        if not ok:
            rows.append({"method": m, "cells_ok": 0})
            continue
        vals = [r["value"] for r in ok]

        def med(k, ok=ok):
            return statistics.median(r[k] for r in ok)

        rows.append({"method": m, "cells_ok": len(ok), "metric": ok[0]["metric"],
                     "mean": round(statistics.fmean(vals), 4),
                     "std": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0,
                     "trainable": int(med("trainable")), "trainable_pct": round(med("trainable_pct"), 4),
                     "adapter_bytes": int(med("adapter_bytes")), "seconds_per_step": round(med("seconds_per_step"), 5),
                     "time_spread": round((max(r["seconds_per_step"] for r in ok) - min(r["seconds_per_step"] for r in ok))
                                          / med("seconds_per_step"), 4),
                     "jobs": max(r.get("jobs", 0) for r in ok),
                     "peak_memory_bytes": int(med("peak_memory_bytes"))})
    return rows


def timing_noise(records: Sequence[dict]) -> float:
    """The timing noise floor of a comparison: the median over methods of each method's ``time_spread``
    (relative range of seconds per step over its seeds, which repeat the same computation). A step-time
    ratio closer to 1 than this is not a measured difference. Raises ``ValueError`` when the cells ran
    several at a time (``jobs`` > 1: they timed each other) or a method has fewer than 2 finished cells."""
    rows = [r for r in summarize(records) if r.get("cells_ok")]
    if not rows or any(r["cells_ok"] < 2 for r in rows):
        raise ValueError("records: every method needs ≥ 2 finished cells (seeds) to measure timing noise")
    if any(r.get("jobs", 0) != 1 for r in rows):
        raise ValueError("records: cells ran several at a time (jobs > 1) or do not record jobs; time them one "
                         "at a time (peftlab compare --jobs 1)")
    return float(statistics.median(r["time_spread"] for r in rows))


def format_summary(rows: Sequence[dict]) -> str:
    w = max([8, *(len(str(r["method"])) for r in rows)])  # the method column fits the longest name
    top = f"{'method':<{w}} {'cells':>5} {'metric':>17} {'trainable':>10} {'%':>8} {'adapter':>10} {'s/step':>8} {'peak mem':>9}"
    lines = [top, "-" * len(top)]
    for r in rows:
        if not r.get("cells_ok"):
            lines.append(f"{r['method']:<{w}} {0:>5}  (every cell failed: see results.csv)")
            continue
        lines.append(f"{r['method']:<{w}} {r['cells_ok']:>5} {r['mean']:>9.4f} ± {r['std']:<5.4f} {r['trainable']:>10,} "
                     f"{r['trainable_pct']:>7.3f}% {_human(r['adapter_bytes']):>10} {r['seconds_per_step']:>8.4f} "
                     f"{_human(r['peak_memory_bytes']):>9}")
    return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_results(out: Path, cfg: CompareConfig, records: Sequence[dict]) -> None:
    from peftlab.env import versions

    summary = summarize(records)
    atomic_write(out / "results.csv", _csv(RESULT_COLUMNS, records))
    atomic_write(out / "summary.csv", _csv(SUMMARY_COLUMNS, summary))
    import torch

    env = {"versions": versions(), "device": records[0].get("device", "cpu") if records else "cpu",
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch_threads": torch.get_num_threads(), "profile": cfg.profile}
    _write_json(out / "results.json", {"config": cfg.pinned(), "environment": env, "summary": summary,
                                       "cells": list(records)})
    plot_results(out, summary, records)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def per_example_scores(records, method: str):
    """``(n_seeds, n_examples)`` 0/1 scores of ``method``'s finished cells, rows in ascending seed order, columns
    in test-split order: the input :func:`peftlab.analysis.stats.paired_comparison` pairs by position.
    Returns ``(seeds, array)``; raises ``ValueError`` when no finished cell of ``method`` records them."""
    import numpy as np

    if not any(r.get("method") == method for r in records):  # an old name (ALIASES) for records of the new one
        method = canonical_method(method)
    rows = sorted((r["seed"], r["per_example"]) for r in records
                  if r.get("method") == method and r.get("status", "ok") == "ok" and r.get("per_example"))
    if not rows:
        raise ValueError(f"method={method!r}: no finished cell records per-example scores (recompute it with this "
                         f"version of peftlab compare)")
    return [s for s, _ in rows], np.array([[int(c) for c in text] for _, text in rows], dtype=np.float64)


def plot_results(out: Path, summary: Sequence[dict], records: Sequence[dict]) -> list[Path]:
    # matplotlib's object API: files only, without touching pyplot's backend (a notebook keeps inline plots)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    ok = [r for r in summary if r.get("cells_ok")]
    if not ok:
        return []
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    metric = ok[0]["metric"]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    colors = colormaps["tab20"].colors
    for i, r in enumerate(ok):  # a colour and a marker per method (eleven methods outrun one 10-colour cycle)
        ax.errorbar(r["trainable"], r["mean"], yerr=r["std"], fmt="osD^v<>ph*X"[i % 11], capsize=3,
                    color=colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20], label=r["method"])
        ax.annotate(r["method"], (r["trainable"], r["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} vs trainable parameters")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    p1 = plots / "metric_vs_params.png"
    fig.savefig(p1, dpi=110)
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    names = [r["method"] for r in ok]
    axes[0].bar(names, [r["seconds_per_step"] * 1e3 for r in ok])
    axes[0].set_ylabel("ms per training step (median)")
    axes[0].set_title("step time")
    axes[1].bar(names, [r["peak_memory_bytes"] / 2**20 for r in ok])
    axes[1].set_ylabel("peak memory, MiB (median)")
    axes[1].set_title("training memory")
    for a in axes:
        a.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    p2 = plots / "time_memory.png"
    fig.savefig(p2, dpi=110)
    return [p1, p2]
