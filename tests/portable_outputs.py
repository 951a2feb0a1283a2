"""Which ``# NBVAL_CHECK_OUTPUT`` cells print what a CPU's kernels can change (docs/notebook-style.md, "Portable
outputs"): a cell whose compared text comes from training or from a clock is one machine away from failing
nbval, because another SIMD path rounds differently in the last bits and training amplifies it.

Static and conservative: a *training or timing function* is one that calls ``backward``, an optimizer's
``step``, a fit, or a clock, directly or through other functions defined in the ``peftlab`` package or earlier
in the notebook (matched by name). Calls on a week's check module (``check.…``) are allowed: a check compares
with a stated tolerance and prints one fixed line.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "peftlab"
MARKER = "NBVAL_CHECK_OUTPUT"

#: names whose call means "this computation trains, fits or reads a clock"
SEEDS = frozenset({
    "backward", "step", "fit", "train", "train_classifier", "linear_probe", "evaluate_accuracy",
    "perf_counter", "perf_counter_ns", "process_time", "monotonic", "timeit", "repeat_timing",
})
#: receivers whose calls are checks (a tolerance inside, one stable line out)
CHECK_RECEIVERS = frozenset({"check"})


def _called_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


def _receiver(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
        return f.value.id
    return None


def _calls(tree: ast.AST) -> set[str]:
    """Names called anywhere under ``tree``, leaving out calls on a check module."""
    return {name for node in ast.walk(tree) if isinstance(node, ast.Call)
            if (name := _called_name(node)) and _receiver(node) not in CHECK_RECEIVERS}


def _function_calls(tree: ast.AST) -> dict[str, set[str]]:
    """``{function name: names it calls}`` for every def (methods included) under ``tree``."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.setdefault(node.name, set()).update(_calls(node))
    return found


def _taint(functions: dict[str, set[str]], seeds: frozenset[str]) -> frozenset[str]:
    tainted = set(seeds)
    changed = True
    while changed:
        changed = False
        for name, called in functions.items():
            if name not in tainted and called & tainted:
                tainted.add(name)
                changed = True
    return frozenset(tainted)


@cache
def package_training_names() -> frozenset[str]:
    """The seed names plus every function of the ``peftlab`` package that reaches one (dunder methods, the
    checks, and the build, grading and command-line layers, which notebooks do not call, left out)."""
    functions: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if {"checks", "datagen", "instructor"} & set(path.parts) or path.name == "cli.py":
            continue
        for name, called in _function_calls(ast.parse(path.read_text(encoding="utf-8"))).items():
            if not name.startswith("__"):
                functions.setdefault(name, set()).update(called)
    return _taint(functions, SEEDS)


def _parse(source: str) -> ast.AST | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def kernel_dependent_checked_cells(nb) -> list[tuple[int, list[str]]]:
    """``(cell index, training/timing names it calls or imports)`` for every ``NBVAL_CHECK_OUTPUT`` cell that
    calls or imports one (a marked cell is for data, shapes and checks; training tools are imported where used)."""
    tainted = set(package_training_names())
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        if MARKER in cell.source:
            imported = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                        for alias in node.names}
            hits = sorted((_calls(tree) | imported) & tainted)
            if hits:
                found.append((i, hits))
        # functions this cell defines join the set for the cells after it
        tainted = set(_taint({**_function_calls(tree)}, frozenset(tainted)))
    return found
