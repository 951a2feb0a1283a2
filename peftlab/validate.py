"""``peftlab validate NN notebook.ipynb``: run a student's notebook from the top, as the grader's public part
would, and print every check's outcome (:func:`peftlab.checks.check_all`).

It needs only what a student release installs (nbclient, ipykernel) — not pytest or nbval. The notebook runs
in a fresh kernel in its own folder; a failing cell does not stop the run, so every check gets its say. The
hidden tests run only when the instructor grades. Exit status 0 when every check passed, 1 otherwise, 2 when
the notebook cannot be run at all.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

__all__ = ["ValidationError", "validate"]

_RESULT = "PEFTLAB-VALIDATE "


class ValidationError(ValueError):
    """The notebook cannot be validated (not found, not a notebook, another week)."""


def validate(week: str, path: str | Path, *, timeout: float = 600.0, echo=print) -> dict:
    """Execute ``path`` and return :func:`check_all`'s summary for ``week`` (``"01"`` or ``"01_lora_review"``)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    m = re.match(r"^(\d{1,2})", str(week))
    if not m:
        raise ValidationError(f"week={week!r}: expected a week number such as 01")
    week = m.group(1).zfill(2)
    if not path.is_file():
        raise ValidationError(f"notebook {str(path)!r} does not exist")
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception as exc:
        raise ValidationError(f"{path.name} is not a notebook: {type(exc).__name__}: {exc}") from None
    nb_week = nb.metadata.get("peftlab", {}).get("week")
    if nb_week is not None and nb_week != week:
        raise ValidationError(f"{path.name} is the week {nb_week} notebook, not week {week}")
    probe = (f"import json\nfrom peftlab.checks import check_all\nsummary = check_all({week!r})\n"
             f"print({_RESULT!r} + json.dumps(summary))")
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    client.execute()
    errors = []
    for i, cell in enumerate(nb.cells[:-1]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") not in ("CheckFailed", "NotImplementedError"):
                errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue', '')[:200]}")
    text = "".join(o.get("text", "") for o in nb.cells[-1].get("outputs", []) if o.get("output_type") == "stream")
    lines = [ln for ln in text.splitlines() if not ln.startswith(_RESULT)]
    result = next((ln for ln in text.splitlines() if ln.startswith(_RESULT)), None)
    if result is None:
        raise ValidationError(f"{path.name}: the summary cell did not run:\n{text[-1000:]}")
    summary = json.loads(result[len(_RESULT):])
    for ln in lines:
        echo(ln)
    if errors:
        echo("다른 셀의 오류 (errors in other cells):")
        for e in errors:
            echo("  " + e)
    summary["errors"] = errors
    return summary


def validate_cli(args) -> int:
    try:
        summary = validate(args.week, args.notebook, timeout=args.timeout)
    except ValidationError as exc:
        print(f"peftlab validate: {exc}", file=sys.stderr)
        return 2
    return 0 if not summary["failed"] and not summary["not_run"] else 1
