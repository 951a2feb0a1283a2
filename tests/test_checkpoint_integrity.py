"""Checkpoints require the student's own work (docs/notebook-style.md, "Checkpoints that can't be leaked"):

1. nothing before an exercise prints its answer — the leak scan over every solution's stored outputs;
2. no exercise passes by calling the kit's reference — the shortcut meta-test;
3. a student release holds no answer key — the release test: its public checks give every answer of the
   right form the same outcome;
4. one source of points — headings, stubs and rubrics agree with the check registry.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

# ------------------------------------------------------------------------------------------ 1. leak scan
_NUMBER = re.compile(r"(?<![\w.=<>])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w]|\.\d)")


def _numbers(text: str) -> list[Decimal]:
    out = []
    for token in _NUMBER.findall(text):
        token = token.replace(",", "").replace("−", "-").lstrip("+-")
        try:
            out.append(Decimal(token))
        except ArithmeticError:
            pass
    return out


def _significant(x: Decimal) -> bool:
    """An answer-like number: ≥ 3 significant digits (trailing zeros of a decimal do not count), or an
    integer ≥ 1000."""
    if x == x.to_integral_value() and x.as_tuple().exponent >= 0:
        return x >= 1000
    digits = str(x.normalize()).replace(".", "").lstrip("0")
    return len(digits.split("E")[0]) >= 3


def _decimals(x: Decimal) -> int:
    return max(0, -x.as_tuple().exponent)


def _matches(printed: Decimal, earlier: Decimal) -> bool:
    """``earlier`` shows ``printed`` (equal, or equal once rounded to ``printed``'s decimals)."""
    d = _decimals(printed)
    if _decimals(earlier) < d:
        return False
    return earlier.quantize(Decimal(1).scaleb(-d)) == printed if d else earlier == printed


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stdout":
            parts.append("".join(out.get("text", "")))
        for mime in ("text/plain", "text/markdown", "text/html"):
            if mime in out.get("data", {}):
                parts.append("".join(out["data"][mime]))
    return "\n".join(parts)


def _role(cell) -> str | None:
    return cell.get("metadata", {}).get("peftlab", {}).get("role")


def leaks(path: Path) -> list[str]:
    """Every number an exercise cell prints that an earlier cell's output already showed, unless the
    exercise's own text (its question, the markdown right above it, and its source) gives it. Earlier
    exercise cells do not count: in the student's copy their outputs are the student's own work."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    found = []
    for i, cell in enumerate(cells):
        if _role(cell) != "exercise":
            continue
        printed = [x for x in _numbers(_output_text(cell)) if _significant(x)]
        if not printed:
            continue
        own = "".join(cell["source"])
        j = i - 1
        while j >= 0 and cells[j]["cell_type"] == "markdown":
            own += "\n" + "".join(cells[j]["source"])
            j -= 1
        given = _numbers(own)
        for x in dict.fromkeys(printed):
            if any(_matches(x, g) for g in given):
                continue
            for k in range(i):
                if _role(cells[k]) in ("exercise", "check"):  # the student's own earlier work, or a pass line
                    continue
                if any(_matches(x, e) for e in _numbers(_output_text(cells[k]))):
                    cid = cell.get("metadata", {}).get("peftlab", {}).get("id")
                    found.append(f"{path.name}: exercise {cid!r} (cell {i}) prints {x}, already shown by cell {k}")
                    break
    return found


def test_leak_scan_finds_a_printed_answer(tmp_path):
    """The scan itself: an answer printed before its question is found; one given by the question is not."""
    def code(src, out, role=None):
        cell = {"cell_type": "code", "source": src, "metadata": {}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": out}], "execution_count": 1}
        if role:
            cell["metadata"]["peftlab"] = {"role": role, "id": "q"}
        return cell
    md = {"cell_type": "markdown", "metadata": {}, "source": "Question: with d = 4096 …"}
    nb = {"cells": [code("print(x)", "trainable: 4,194,304 (0.06%)\nacc 0.9123\n"), md,
                    code("ans = 4096 * 1024", "4194304 0.912 4096 0.5\n", role="exercise")],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "99_x.ipynb"
    p.write_text(json.dumps(nb), encoding="utf-8")
    found = leaks(p)
    assert len(found) == 2 and "4194304" in found[0] and "0.912" in found[1], found


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name[:2] for p in SOLUTIONS])
def test_no_answer_is_printed_before_its_question(path):
    assert not leaks(path), "\n".join(leaks(path))
