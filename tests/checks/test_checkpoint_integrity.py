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

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))

# ------------------------------------------------------------------------------------------ 1. leak scan
#: a number token: not inside an identifier or a version (a Hangul particle may follow it: "2000개")
_NUMBER = re.compile(r"(?<![0-9A-Za-z_.=<>])[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"(?![0-9A-Za-z_]|\.\d)")


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
    md = {"cell_type": "markdown", "metadata": {}, "source": "Question: with d = 4096 and 2000개 test examples …"}
    nb = {"cells": [code("print(x)", "trainable: 4,194,304 (0.06%)\nacc 0.9123\nn = 2000개\n"), md,
                    code("ans = 4096 * 1024", "4194304 0.912 4096 0.5 2000\n", role="exercise")],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    p = tmp_path / "99_x.ipynb"
    p.write_text(json.dumps(nb), encoding="utf-8")
    found = leaks(p)
    assert len(found) == 2 and "4194304" in found[0] and "0.912" in found[1], found


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name[:2] for p in SOLUTIONS])
def test_no_answer_is_printed_before_its_question(path):
    assert not leaks(path), "\n".join(leaks(path))


# ------------------------------------------------------------------------------ 2. reference shortcuts
def _shortcuts():
    """For every function exercise, the answer a student looking for the shortest path would write: hand the
    check the kit's own implementation, or call it. Each must fail, and say why."""
    import functools

    import torch
    from torch import nn

    from peftlab.analysis.decompose import magnitude_direction
    from peftlab.analysis.stats import paired_comparison
    from peftlab.analysis.svd import energy_captured
    from peftlab.methods.adapters import HoulsbyLinear
    from peftlab.methods.dora import DoRALinear
    from peftlab.methods.ia3 import IA3Linear
    from peftlab.methods.lora import LoRALinear
    from peftlab.methods.prompts import PromptTuningConfig, PromptTuningModel
    from peftlab.methods.vblora import assemble_A, topk_admixture
    from peftlab.methods.waveft import idwt2, synthesis_matrix
    from peftlab.qr_adaptor import MemoryModel, non_dominated_sort
    from peftlab.quant import nf4_code

    def linear(W0, b):
        base = nn.Linear(W0.shape[1], W0.shape[0], dtype=W0.dtype)
        with torch.no_grad():
            base.weight.copy_(W0)
            base.bias.copy_(b)
        return base

    def houlsby(h, Wd, bd, Wu, bu):
        d = h.shape[-1]
        layer = HoulsbyLinear(linear(torch.eye(d, dtype=h.dtype), torch.zeros(d, dtype=h.dtype)),
                              bottleneck_size=Wd.shape[0])
        with torch.no_grad():
            for p, v in zip((layer.adapter_down_weight["default"], layer.adapter_down_bias["default"],
                             layer.adapter_up_weight["default"], layer.adapter_up_bias["default"]), (Wd, bd, Wu, bu), strict=True):
                p.copy_(v)
        return layer(h)

    def ia3(x, W, b, l_vec, ff):
        layer = IA3Linear(linear(W, b), is_feedforward=ff)
        with torch.no_grad():
            layer.ia3_l["default"].copy_(l_vec.reshape(layer.ia3_l["default"].shape))
        return layer(x)

    class _Recorder(nn.Module):  # a stand-in model that returns what the prompt wrapper hands it
        def __init__(self, d):
            super().__init__()
            self.emb = nn.Embedding(2, d)

        def get_input_embeddings(self):
            return self.emb

        def forward(self, inputs_embeds=None, attention_mask=None, **kwargs):
            return inputs_embeds, attention_mask

    def prompt(P, E, mask):
        wrapper = PromptTuningModel(_Recorder(P.shape[1]), PromptTuningConfig(num_virtual_tokens=P.shape[0], task_type="SEQ_CLS"))
        with torch.no_grad():
            wrapper.prompt_embeddings.copy_(P)
        return wrapper(inputs_embeds=E, attention_mask=mask)

    def lora(x, W0, b, A, B, scaling):
        layer = LoRALinear(linear(W0, b), r=A.shape[0], alpha=scaling * A.shape[0])
        with torch.no_grad():
            layer.lora_A["default"].copy_(A)
            layer.lora_B["default"].copy_(B)
        return layer(x)

    class MyLoRALinear(LoRALinear):  # the kit's class under another name
        pass

    class Wrapped(nn.Module):  # or wrapped inside a module of one's own
        def __init__(self, base, r=8, alpha=16.0, dropout=0.0):
            super().__init__()
            self.inner = LoRALinear(base, r=r, alpha=alpha, dropout=dropout)

        def forward(self, x):
            return self.inner(x)

    def dora(x, W0, b, A, B, m, scaling):
        layer = DoRALinear(linear(W0, b), r=A.shape[0], alpha=scaling * A.shape[0])
        with torch.no_grad():
            layer.lora_A["default"].copy_(A)
            layer.lora_B["default"].copy_(B)
            layer.lora_magnitude_vector["default"].copy_(m)
        return layer(x)

    def waveft(spectrum, rows, cols, n_out, n_in, scaling):
        Q = torch.zeros(n_out, n_in, dtype=spectrum.dtype)
        Q[rows, cols] = spectrum
        return scaling * idwt2(Q, "haar")

    def memory(out_f, in_f, bits, rank):
        return MemoryModel({"layer": [(out_f, in_f)]}).layer_bytes("layer", bits, rank)

    def interval(a, b, reps=2000, seed=0):
        r = paired_comparison(a, b, seed=seed)
        return r.diff, r.low, r.high

    return {
        "00:E1": [houlsby],
        "00:E2": [ia3],
        "00:E3": [prompt],
        "01:E1": [lora],
        "01:E2": [LoRALinear, MyLoRALinear, Wrapped],
        "01:E3": [energy_captured, lambda dw, r: energy_captured(dw, r)],
        "02:E1": [lambda n: synthesis_matrix(n, "haar")],
        "02:E2": [waveft],
        "03:E1": [magnitude_direction, lambda W: magnitude_direction(W)],
        "03:E2": [dora],
        "04:E1": [topk_admixture, lambda z, V, k: topk_admixture(z, V, k), functools.partial(topk_admixture)],
        "04:E2": [assemble_A, lambda logits, bank, k: assemble_A(logits, bank, k)],
        "05:E1": [memory],
        "05:E2": [lambda pts: non_dominated_sort(pts)[0]],
        "06:E1": [nf4_code, lambda offset: nf4_code(offset)],
        "07:E2": [interval],
    }


def _function_exercises():
    import importlib
    import inspect

    out = {}
    for path in sorted((ROOT / "peftlab" / "checks").glob("week[0-9][0-9].py")):
        week = path.stem[4:]
        module = importlib.import_module(f"peftlab.checks.{path.stem}")
        for name in dir(module):
            fn = getattr(module, name)
            info = getattr(fn, "check_info", None)
            if info is None or info.week != week:
                continue
            first = next(iter(inspect.signature(fn).parameters), None)
            if first in ("fn", "cls"):
                out[f"{week}:{info.id}"] = fn
    return out


def test_every_function_exercise_names_its_reference_and_has_a_shortcut_test():
    exercises = _function_exercises()
    assert len(exercises) >= 16
    missing_reference = [k for k, fn in exercises.items() if not fn.check_info.reference]
    assert not missing_reference, f"exercises without reference=: {missing_reference}"
    assert set(_shortcuts()) == set(exercises), set(exercises) ^ set(_shortcuts())


@pytest.mark.parametrize("key", sorted(_function_exercises()))
def test_the_reference_shortcut_fails(key, capsys):
    from peftlab.checks import CheckFailed

    check = _function_exercises()[key]
    args = ()
    if key == "07:E2":
        args = (_records_07(),)
    for shortcut in _shortcuts()[key]:
        with pytest.raises(CheckFailed) as info:
            check(shortcut, *args)
        assert "참조 구현" in info.value.hint, (key, shortcut, info.value.hint)
    assert "통과" not in capsys.readouterr().out


def _records_07():
    """DoRA and LoRA per-example scores of two seeds, as comparison records."""
    import numpy as np

    rng = np.random.default_rng(0)
    records = []
    for seed in (0, 1):
        a = (rng.random(400) < 0.9).astype(int)
        b = np.where(rng.random(400) < 0.1, 1 - a, a)
        for method, row in (("dora", a), ("lora", b)):
            records.append({"method": method, "seed": seed, "status": "ok", "per_example": "".join(map(str, row))})
    return records


# ------------------------------------------------------------------------------------------ 4. points
def _week(path: Path) -> str:
    return path.name[:2]


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name[:2] for p in SOLUTIONS])
def test_points_are_rendered_from_the_registry(path):
    """Headings, essay lines, rubrics and the week total say what REGISTRY and essays.py say: rendering the
    committed notebook again changes nothing (`make student` renders; a registry change must be rendered)."""
    import copy

    from peftlab.instructor.notebook import read_notebook
    from peftlab.instructor.points import render_points

    nb = read_notebook(path)
    rendered = render_points(copy.deepcopy(nb), _week(path))
    stale = [i for i, (a, b) in enumerate(zip(nb.cells, rendered.cells, strict=True)) if a.source != b.source]
    assert not stale, f"{path.name}: cells {stale} differ from the registry's points — run `make student`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name[:2] for p in SOLUTIONS])
def test_checkpoints_follow_the_lectures_order(path):
    """Check cells of the lecture's questions appear in the lecture's order (0.1, 0.2, …), and exercises in
    their own order (E1, E2, …)."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    ids = [c["metadata"]["peftlab"]["id"] for c in cells if _role(c) == "check"]
    questions = [tuple(int(p) for p in i.split(".")) for i in ids if re.fullmatch(r"\d+\.\d+", i)]
    exercises = [int(i[1:]) for i in ids if re.fullmatch(r"E\d+", i)]
    assert questions == sorted(questions), f"{path.name}: checkpoints in the order {ids}"
    assert exercises == sorted(exercises), f"{path.name}: exercises in the order {ids}"


def test_the_student_copy_of_an_essay_shows_its_points_and_refers_to_nothing_stripped():
    from peftlab.instructor.notebook import read_notebook
    from peftlab.instructor.student import strip_solutions

    for path in SOLUTIONS:
        student = strip_solutions(read_notebook(path), path.name)
        for cell in student.cells:
            if _role(cell) == "answer":
                assert re.search(r"서술 \d+점", cell.source), (path.name, cell.source[:120])
                assert "아래 루브릭" not in cell.source, (path.name, cell.source[:120])


# -------------------------------------------------------------------------------- 3. no key in a release
#: for every answer key: a call of its public check with ``{answer}`` standing for each well-formed answer
#: (the other arguments are any consistent measurements)
KEY_CALLS = {
    "01:1.3": ("from peftlab.checks import week01 as c",
               "c.q1_3({answer}, 16 * 8192 / 4096 ** 2, 10.0, {{'base': 1.0, 'unmerged': 1.1, 'merged': 1.0}})",
               ["'a'", "'b'", "'c'", "'d'"]),
    "02:2.1": ("from peftlab.checks import week02 as c\nfrom test_checks_week02 import RANKS, TRAIN, DELTAS",
               "c.q2_1({answer}, RANKS, TRAIN, DELTAS, 1, 32, (16, 16))",
               ["'a'", "'b'", "'c'", "'d'"]),
    "03:3.1": ("from peftlab.checks import week03 as c\nfrom test_checks_week03 import RANKS, TRAIN, DELTAS",
               "c.q3_1({answer}, RANKS, TRAIN, DELTAS, 2, (12, 10))",
               ["'a'", "'b'", "'c'", "'d'"]),
    "07:E1": ("from peftlab.checks import week07 as c",
              "c.flaws({answer})",
              ["set('abcefghi')", "set('abd')", "{'l'}", "set('abcdefghijk')"]),
    "07:7.2": ("from peftlab.checks import week07 as c\nfrom test_checks_week07 import RUNS",
               "c.q7_2({{'memory': 0.8, 'time': 3.0, 'adapter_bytes': 1.01}}, {{'a', 'c'}} | {answer}, RUNS['all'])",
               ["set()", "{'d', 'f'}", "{'e', 'g'}", "set('defg')"]),
}


@pytest.mark.slow
def test_a_student_release_holds_no_answer_key(tmp_path):
    """In a release the keys file is gone, no file carries its marker, and every keyed public check gives
    every well-formed answer the same outcome ("형식 확인 (정답은 채점 때 확인합니다)")."""
    import os
    import subprocess
    import sys

    from peftlab.checks._keys import KEYS
    from peftlab.instructor.release import build_release

    assert set(KEY_CALLS) == set(KEYS), "every answer key needs a KEY_CALLS entry: " + str(set(KEY_CALLS) ^ set(KEYS))
    release = build_release(ROOT / "solutions", tmp_path / "release")
    assert not (release / "peftlab" / "checks" / "_keys.py").exists()
    for f in release.rglob("*.py"):
        assert "PEFTLAB ANSWER KEYS" not in f.read_text(encoding="utf-8", errors="replace"), f
    lines = ["from peftlab.checks._core import has_answer_keys", "assert not has_answer_keys()"]
    for key, (setup, call, answers) in KEY_CALLS.items():
        lines.append(setup)
        lines += [f"print({key!r}, {answer!r}, end=' '); " + call.format(answer=answer) for answer in answers]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(release), str(ROOT / "tests"), str(ROOT / "tests" / "checks")])}  # fixtures only
    out = subprocess.run([sys.executable, "-c", "\n".join(lines)], cwd=release, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    results = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(results) == sum(len(a) for _, _, a in KEY_CALLS.values()), out.stdout
    assert all("형식 확인 (정답은 채점 때 확인합니다)" in line for line in results), out.stdout


def test_the_instructor_copy_still_scores_the_keys(capsys):
    """With the keys present (this repository), a keyed public check passes the key and fails another answer."""
    from peftlab.checks import CheckFailed
    from peftlab.checks._core import has_answer_keys

    assert has_answer_keys()
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "checks"))
    for key, (setup, call, answers) in KEY_CALLS.items():
        namespace: dict = {}
        exec(setup, namespace)
        outcomes = []
        for answer in answers:
            try:
                exec(call.format(answer=answer), namespace)
                outcomes.append(True)
            except CheckFailed:
                outcomes.append(False)
        assert outcomes.count(True) == 1, (key, outcomes)
