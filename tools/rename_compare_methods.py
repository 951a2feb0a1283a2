"""One-off migration: results of ``peftlab compare`` written under the old method names, renamed to the registry's.

``peftlab compare`` once called three methods by names of its own; it now uses the registry's
(``peftlab.compare.ALIASES``)::

    adapter → houlsby        prompt → prompt_tuning        prefix → prefix_tuning

Only the names change: a renamed method builds exactly the same model from the same seed, so its cells hold the
same numbers (checked by re-running the renamed cells of the stored ``sentiment`` comparison: metric, per-example
scores, trainable parameters, adapter bytes and final loss identical to the stored cells). This tool therefore
renames instead of retraining, keeping every measured number (the step times too, which a re-run would
measure again):

* a comparison folder (``config.json`` + ``cells/``, e.g. ``peftlab/compare_runs/sentiment`` or any ``--out``
  folder): the keys of ``config.json``'s ``learning_rates``; each ``cells/<old>__seed<N>.json`` becomes
  ``cells/<new>__seed<N>.json`` with its ``method`` field renamed; ``results.json`` (its config, summary and
  cells); an ``adapters/<old>-seed<N>`` folder becomes ``adapters/<new>-seed<N>``. ``results.csv``,
  ``summary.csv`` and ``plots/`` are rebuilt from the cells by the next ``peftlab compare`` run in that folder;
* a learning-rate sweep file (``peftlab/compare_lr/<sweep>.json`` or an ``--out`` folder's
  ``learning_rates.json``, and its ``compare_config.json``): the keys of ``methods`` / ``learning_rates``.

Each JSON file is rewritten in the layout it had (checked first: the file must read back to the same bytes under
that layout, else it is left alone and reported). Nothing is written until every file of the run has been
checked; a name whose new form already exists in the same file or folder is refused. Running it twice changes
nothing the second time.

    python tools/rename_compare_methods.py                 # the stored results: peftlab/compare_runs, compare_lr
    python tools/rename_compare_methods.py DIR_OR_FILE ...  # your own comparison folders or sweep files
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from peftlab.compare import ALIASES  # noqa: E402

#: the two JSON layouts ``peftlab compare`` writes (comparison files keep non-ASCII text, sweep files escape it)
LAYOUTS = ({"indent": 2, "ensure_ascii": False}, {"indent": 2})


def _dump(data, layout: dict) -> str:
    return json.dumps(data, **layout) + "\n"


def _read(path: Path) -> tuple[object, dict]:
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    for layout in LAYOUTS:
        if _dump(data, layout) == text:
            return data, layout
    raise ValueError(f"{path}: not in a layout peftlab compare writes (indent 2); rename it by hand")


def _rename_keys(table: dict, where: str) -> dict:
    out = {}
    for key, value in table.items():
        new = ALIASES.get(key, key)
        if new in out or (new != key and new in table):
            raise ValueError(f"{where}: both {key!r} and {new!r} are present; resolve by hand")
        out[new] = value
    return out


def _rename_record(rec: dict) -> dict:
    return {**rec, "method": ALIASES.get(rec["method"], rec["method"])} if "method" in rec else rec


def plan_comparison(folder: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, Path]]]:
    """(files to write with their new text, paths to move) for one comparison folder."""
    writes: list[tuple[Path, str]] = []
    moves: list[tuple[Path, Path]] = []
    data, layout = _read(folder / "config.json")
    data["learning_rates"] = _rename_keys(data.get("learning_rates", {}), str(folder / "config.json"))
    writes.append((folder / "config.json", _dump(data, layout)))
    results = folder / "results.json"
    if results.is_file():
        data, layout = _read(results)
        data["config"]["learning_rates"] = _rename_keys(data["config"].get("learning_rates", {}), str(results))
        data["summary"] = [_rename_record(r) for r in data.get("summary", [])]
        data["cells"] = [_rename_record(r) for r in data.get("cells", [])]
        writes.append((results, _dump(data, layout)))
    for path in sorted((folder / "cells").glob("*__seed*.json")):
        method, seed = path.stem.rsplit("__seed", 1)
        data, layout = _read(path)
        new = ALIASES.get(method, method)
        if new == method and data.get("method") == method:
            continue
        target = path.with_name(f"{new}__seed{seed}.json")
        if target != path and target.exists():
            raise ValueError(f"{path}: {target.name} exists too; resolve by hand")
        writes.append((target, _dump(_rename_record(data), layout)))
        if target != path:
            moves.append((path, None))  # the old file goes once the new one is written
    adapters = folder / "adapters"
    for path in sorted(adapters.iterdir()) if adapters.is_dir() else []:
        method, _, seed = path.name.rpartition("-seed")
        if method in ALIASES:
            target = path.with_name(f"{ALIASES[method]}-seed{seed}")
            if target.exists():
                raise ValueError(f"{path}: {target.name} exists too; resolve by hand")
            moves.append((path, target))
    return writes, moves


def plan_sweep(path: Path) -> list[tuple[Path, str]]:
    data, layout = _read(path)
    for key in ("methods", "learning_rates"):
        if isinstance(data.get(key), dict):
            data[key] = _rename_keys(data[key], f"{path}: {key}")
    return [(path, _dump(data, layout))]


def plan(target: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, Path]]]:
    if target.is_dir() and (target / "config.json").is_file():
        writes, moves = plan_comparison(target)
        for extra in ("learning_rates.json", "compare_config.json"):  # a --tune-lr folder written beside it
            if (target / extra).is_file():
                writes += plan_sweep(target / extra)
        return writes, moves
    if target.is_dir() and any((target / n).is_file() for n in ("learning_rates.json", "compare_config.json")):
        return [w for n in ("learning_rates.json", "compare_config.json") if (target / n).is_file()
                for w in plan_sweep(target / n)], []
    if target.is_file() and target.suffix == ".json":
        return plan_sweep(target), []
    raise ValueError(f"{target}: neither a comparison folder (config.json + cells/), a --tune-lr folder, nor a JSON file")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", type=Path,
                   help="comparison folders or sweep files (default: peftlab/compare_runs/* and peftlab/compare_lr/*.json)")
    args = p.parse_args(argv)
    targets = args.targets or [*sorted(d for d in (ROOT / "peftlab" / "compare_runs").iterdir()
                                       if (d / "config.json").is_file()),
                               *sorted((ROOT / "peftlab" / "compare_lr").glob("*.json"))]
    writes: list[tuple[Path, str]] = []
    moves: list[tuple[Path, Path]] = []
    try:
        for target in targets:  # every file checked and planned before anything is written
            w, m = plan(target)
            writes += w
            moves += m
    except ValueError as exc:
        print(f"rename_compare_methods: {exc}", file=sys.stderr)
        return 2
    changed = 0
    for path, text in writes:
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed += 1
    for old, new in moves:
        if new is None:
            old.unlink()
        else:
            old.rename(new)
        changed += 1
    print(f"rename_compare_methods: {changed} file(s) changed in {len(targets)} target(s) ({', '.join(f'{a} → {b}' for a, b in ALIASES.items())})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
