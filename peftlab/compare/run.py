"""A comparison in an output folder: every (method, seed) cell not yet finished, and the stored comparisons.

:func:`run_comparison` pins the configuration (``OUT/config.json``), runs the missing cells one after another or
in worker processes (``jobs``), writes each finished cell at once (``OUT/cells/<method>__seed<seed>.json``) and
rebuilds the result files; :func:`stored_comparison` finishes a copy of a comparison stored in
``peftlab/compare_runs/``.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from peftlab.compare.cell import run_cell
from peftlab.compare.config import CompareConfig, _canonical_keys
from peftlab.compare.methods import parse_methods, parse_seeds
from peftlab.compare.report import _write_json, write_results
from peftlab.compare.tasks import _task


def _cell_path(out: Path, method: str, seed: int) -> Path:
    return out / "cells" / f"{method}__seed{seed}.json"


def _pin(out: Path, cfg: CompareConfig, methods: Sequence[str]) -> None:
    """Write config.json, or check that the folder's pinned configuration agrees with ``cfg``: every field
    equal, and the same learning rate for every method both know (a method new to the folder is added)."""
    path = out / "config.json"
    pinned = cfg.pinned()
    pinned["learning_rates"] = {m: cfg.lr(m) for m in methods}
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        old["learning_rates"] = _canonical_keys(old.get("learning_rates", {}), f"{path}: learning_rates")
        diff = [f"{k}: {old.get(k)!r} → {pinned.get(k)!r}" for k in sorted(set(old) | set(pinned))
                if k != "learning_rates" and old.get(k) != pinned.get(k)]
        old_lr = old.get("learning_rates", {})
        diff += [f"learning rate of {m}: {old_lr[m]!r} → {v!r}" for m, v in pinned["learning_rates"].items()
                 if m in old_lr and old_lr[m] != v]
        if diff:
            raise ValueError(f"--out {out} holds results of a different configuration ({'; '.join(diff)}). "
                             f"Use another --out folder, or delete {out} to start over with this configuration.")
        pinned["learning_rates"] = {**old_lr, **pinned["learning_rates"]}
    _write_json(path, pinned)


def _worker(args) -> dict:
    cfg_dict, method, seed, out, threads, jobs = args
    import torch

    torch.set_num_threads(threads)
    cfg = CompareConfig(**cfg_dict)
    return _safe_cell(cfg, method, seed, Path(out), jobs=jobs)


def _safe_cell(cfg, method, seed, out, task=None, jobs: int = 1) -> dict:
    try:
        rec = run_cell(cfg, method, seed, out, task)
        rec["jobs"] = jobs  # cells running at once: 1 = timed alone
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded and the others go on
        rec = {"method": method, "seed": seed, "status": "error",
               "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
    _write_json(_cell_path(out, method, seed), rec)
    return rec


def run_comparison(methods: Sequence[str], seeds: Sequence[int], out: str | os.PathLike,
                   cfg: CompareConfig | None = None, jobs: int = 1, force: bool = False,
                   progress: bool = True, log: Callable = print) -> list[dict]:
    """Run every (method, seed) cell not yet finished in ``out`` and rebuild the result files."""
    methods, seeds = parse_methods(methods), parse_seeds(seeds)
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: expected a positive integer")
    cfg = cfg or CompareConfig()
    for m in methods:
        cfg.lr(m)  # every requested method has a learning rate, before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _pin(out, cfg, methods)
    todo = []
    for m in methods:
        for s in seeds:
            p = _cell_path(out, m, s)
            if force or not p.is_file() or json.loads(p.read_text(encoding="utf-8")).get("status") != "ok":
                todo.append((m, s))
    done = len(methods) * len(seeds) - len(todo)
    if done:
        log(f"{done} finished cell(s) kept in {out}/cells; {len(todo)} to run")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="compare", unit="cell", disable=not progress or not todo)
    if jobs == 1 or len(todo) <= 1:
        task = _task(cfg) if todo else None
        for m, s in todo:
            bar.set_postfix_str(f"{m} seed {s}")
            _safe_cell(cfg, m, s, out, task)
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        args = [(asdict(cfg), m, s, str(out), threads, jobs) for m, s in todo]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for fut in as_completed([ex.submit(_worker, a) for a in args]):
                rec = fut.result()
                bar.set_postfix_str(f"{rec['method']} seed {rec['seed']}")
                bar.update()
    bar.close()
    records = [json.loads(_cell_path(out, m, s).read_text(encoding="utf-8")) for m in methods for s in seeds]
    write_results(out, cfg, records)
    return records


#: finished comparisons of the tiny profile that the course reads (``config.json`` + ``cells/`` of a run of
#: :func:`run_comparison`; ``make compare-runs`` rebuilds them, see ``peftlab/compare_runs/README.md``)
STORED_RUNS = Path(__file__).parent.with_name("compare_runs")


def stored_run_names() -> list[str]:
    return sorted(p.name for p in STORED_RUNS.iterdir() if (p / "config.json").is_file()) if STORED_RUNS.is_dir() else []


def stored_comparison(name: str, out: str | os.PathLike, recompute: bool = False, jobs: int = 1,
                      progress: bool = False, log: Callable = print) -> list[dict]:
    """Copy the stored comparison ``name`` into ``out`` and finish it there with :func:`run_comparison`.

    The stored cells are the finished cells of that comparison, so nothing is trained when they match the
    present configuration (the same fields and learning rates; otherwise :func:`run_comparison` refuses,
    naming the difference). With ``recompute`` only the configuration is copied and every cell is trained
    again in ``out`` (cells deleted from ``out/cells`` later are retrained the same way by
    :func:`run_comparison`). Returns the records, as run_comparison.
    """
    import shutil

    src = STORED_RUNS / name
    if not (src / "config.json").is_file():
        raise ValueError(f"name={name!r}: no stored comparison of that name; stored: {', '.join(stored_run_names())}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"out={out}: the folder is not empty; give a new or empty folder")
    pinned = json.loads((src / "config.json").read_text(encoding="utf-8"))
    methods = list(pinned["learning_rates"])
    seeds = sorted({int(p.stem.rsplit("__seed", 1)[1]) for p in (src / "cells").glob("*__seed*.json")})
    fields = {k: v for k, v in pinned.items() if k in CompareConfig.__dataclass_fields__}
    cfg = CompareConfig(**fields)
    if recompute:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "config.json", out / "config.json")
    else:
        shutil.copytree(src, out, dirs_exist_ok=True)
    return run_comparison(methods, seeds, out, cfg, jobs=jobs, progress=progress, log=log)
