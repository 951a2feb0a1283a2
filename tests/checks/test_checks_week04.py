"""Week 04 checks: pass on correct answers, fail (with the right hint) on typical mistakes."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
from helpers import tiny_bert

import peftlab
from peftlab.checks import REGISTRY, CheckFailed
from peftlab.checks import week04 as check
from peftlab.methods.vblora import assemble_A


def good_admixture(z, V, k):
    v, i = z.topk(k, dim=-1)
    return (torch.softmax(v, -1).unsqueeze(-1) * V[i]).sum(-2)


def dense_softmax(z, V, k):
    return torch.softmax(z, -1) @ V


def raw_weights(z, V, k):
    v, i = z.topk(k, dim=-1)
    return (v.unsqueeze(-1) * V[i]).sum(-2)


def plain_mean(z, V, k):
    return V[z.topk(k, dim=-1).indices].mean(-2)


def bottom_k(z, V, k):
    v, i = (-z).topk(k, dim=-1)
    return (torch.softmax(-v, -1).unsqueeze(-1) * V[i]).sum(-2)


def detached(z, V, k):
    return good_admixture(z.detach(), V.detach(), k)


def good_A(la, V, k):
    return good_admixture(la, V, k).reshape(la.shape[0], -1)


def transposed_A(la, V, k):
    return good_admixture(la, V, k).transpose(0, 1).reshape(la.shape[0], -1)


def _not_done(*args, **kwargs):
    raise NotImplementedError()


@pytest.fixture(scope="module")
def vb_model():
    torch.manual_seed(0)
    model = peftlab.apply_vblora(tiny_bert(), r=2, num_vectors=12, vector_length=8, target_modules=["query", "value"])
    return model


def my_usage(logits, k, n):
    return {name: sum(torch.bincount(z.topk(k, dim=-1).indices.reshape(-1), minlength=n) for z in pair)
            for name, pair in logits.items()}


def _logits(model):
    from peftlab.methods.vblora import vblora_layers

    return {name: (lay.vblora_logits_A["default"].detach(), lay.vblora_logits_B["default"].detach())
            for name, lay in vblora_layers(model).items()}


def _sharing(usage):
    return torch.stack([c > 0 for c in usage.values()]).sum(0).float().mean().item()


def _null_range(logits, k, n, draws=300, seed=5):
    gen = torch.Generator().manual_seed(seed)
    null = torch.tensor([_sharing(my_usage({m: tuple(torch.randn(z.shape, generator=gen) for z in pair)
                                            for m, pair in logits.items()}, k, n)) for _ in range(draws)])
    return tuple(null.quantile(torch.tensor([0.025, 0.975])).tolist())


def _side(s, rng):
    return "a" if s < rng[0] else ("c" if s > rng[1] else "b")


@pytest.fixture()
def saved(tmp_path):
    base = tiny_bert()
    torch.manual_seed(0)
    lora = peftlab.apply_lora(copy.deepcopy(base), r=2, alpha=4, target_modules=["query", "value"])
    vb = peftlab.apply_vblora(copy.deepcopy(base), r=2, num_vectors=6, vector_length=8, target_modules=["query", "value"],
                              save_only_topk_weights=True)
    folders = {"LoRA": peftlab.save_peft_adapter(lora, tmp_path / "lora"),
               "VB-LoRA": peftlab.save_peft_adapter(vb, tmp_path / "vb")}
    lora8 = peftlab.apply_lora(copy.deepcopy(base), r=8, alpha=16, target_modules=["query", "value"])
    tasks = {"LoRA": [peftlab.save_peft_adapter(lora8, tmp_path / f"l{i}") for i in range(2)],
             "VB-LoRA": [peftlab.save_peft_adapter(vb, tmp_path / f"v{i}") for i in range(2)]}
    return folders, tasks


def test_all_week04_checks_registered():
    ids = {k.split(":")[1] for k in REGISTRY if k.startswith("04:")}
    assert ids == {"E1", "E2", "4.1", "4.2", "4.3"}


@pytest.mark.parametrize("hidden", [False, True])
def test_exercises_pass_with_correct_code(hidden, capsys):
    check.admixture(good_admixture, hidden=hidden)
    check.build_A(good_A, hidden=hidden)
    assert capsys.readouterr().out.count("공개 체크 통과") == 2
    with pytest.raises(CheckFailed, match="참조 구현"):  # the kit's own assemble_A is not an answer
        check.build_A(assemble_A, hidden=hidden)


@pytest.mark.parametrize("fn, hint", [
    (dense_softmax, "N개 전체"),
    (raw_weights, "softmax(topk 값)"),
    (plain_mean, "단순 평균"),
    (bottom_k, "가장 작은"),
    (detached, "gradient"),
    (_not_done, "NotImplementedError"),
])
def test_admixture_mistakes_fail_with_hint(fn, hint):
    with pytest.raises(CheckFailed) as info:
        check.admixture(fn)
    assert hint in str(info.value)


@pytest.mark.parametrize("fn, hint", [(transposed_A, "순서"), (_not_done, "NotImplementedError"),
                                      (lambda la, V, k: good_A(la, V, k).T, "shape")])
def test_build_A_mistakes_fail_with_hint(fn, hint):
    with pytest.raises(CheckFailed) as info:
        check.build_A(fn)
    assert hint in str(info.value)


def my_moved(init, logits, k):
    changed = total = 0
    for name, pair in logits.items():
        for z0, z in zip(init[name], pair, strict=True):
            a = z0.topk(k, dim=-1).indices.sort(dim=-1).values.reshape(-1, k)
            b = z.topk(k, dim=-1).indices.sort(dim=-1).values.reshape(-1, k)
            changed += int((a != b).any(-1).sum())
            total += a.shape[0]
    return changed / total


def _moved_null(init, k, draws=300, seed=5):
    gen = torch.Generator().manual_seed(seed)
    null = torch.tensor([my_moved(init, {m: tuple(torch.randn(z.shape, generator=gen) for z in pair)
                                         for m, pair in init.items()}, k) for _ in range(draws)])
    return tuple(null.quantile(torch.tensor([0.025, 0.975])).tolist())


def _fresh(n=12):
    torch.manual_seed(0)
    return peftlab.apply_vblora(tiny_bert(), r=2, num_vectors=n, vector_length=8, target_modules=["query", "value"])


def _moved_model(fraction, n=12):
    """A copy of the fresh model in which the given fraction of logit vectors got a new top-k set."""
    from peftlab.methods.vblora import vblora_layers

    model = _fresh(n)
    with torch.no_grad():
        for lay in vblora_layers(model).values():
            for z in (lay.vblora_logits_A["default"], lay.vblora_logits_B["default"]):
                flat = z.view(-1, z.shape[-1])
                rows = int(round(fraction * flat.shape[0]))
                flat[:rows] = -flat[:rows]  # the top-2 become the bottom-2
    return model


@pytest.mark.parametrize("fraction, letter", [(0.0, "c"), (0.5, "a"), (1.0, "b")])
def test_q4_1_the_letter_follows_what_training_moved(fraction, letter):
    init_model, model = _fresh(), _moved_model(fraction)
    init, logits = _logits(init_model), _logits(model)
    moved = my_moved(init, logits, 2)
    assert moved == pytest.approx(fraction, abs=0.05)
    rng = _moved_null(init, 2)
    check.q4_1(letter, my_moved, moved, rng, init_model, model)
    with pytest.raises(CheckFailed, match="null_range보다 작은지"):
        check.q4_1(next(c for c in "abc" if c != letter), my_moved, moved, rng, init_model, model)


def test_q4_1_catches_wrong_counts_nulls_and_frozen_answers():
    init_model, model = _fresh(), _moved_model(0.5)
    init, logits = _logits(init_model), _logits(model)
    moved = my_moved(init, logits, 2)
    rng = _moved_null(init, 2)

    def a_only(init, logits, k):  # forgets B's pieces
        return my_moved({m: p[:1] for m, p in init.items()}, {m: p[:1] for m, p in logits.items()}, k)

    def frozen(init, logits, k):  # the model's answer, whatever it is given
        return moved

    def ordered(init, logits, k):  # compares the top-k in order, not as a set
        return sum(int((z0.topk(k, -1).indices != z.topk(k, -1).indices).any(-1).sum())
                   for m in logits for z0, z in zip(init[m], logits[m], strict=True)) / sum(
                       z.numel() // z.shape[-1] for p in logits.values() for z in p)

    for fn in (a_only, frozen):
        with pytest.raises(CheckFailed, match="my_moved"):
            check.q4_1("a", fn, moved, rng, init_model, model)
    with pytest.raises(CheckFailed, match="moved ="):
        check.q4_1("a", my_moved, moved + 0.1, rng, init_model, model)
    with pytest.raises(CheckFailed, match="기준선"):  # a "null" from the trained logits themselves
        check.q4_1("a", my_moved, moved, (0.0, moved), init_model, model)
    with pytest.raises(CheckFailed, match="같은 설정"):
        check.q4_1("a", my_moved, moved, rng, peftlab.apply_vblora(tiny_bert(), r=2, num_vectors=6, vector_length=8,
                                                                    target_modules=["query", "value"]), model)
    with pytest.raises(CheckFailed, match="NotImplementedError"):
        check.q4_1(None, _not_done, None, None, init_model, model)
    assert ordered(init, logits, 2) >= moved


def test_bank_sharing_still_counts_layers_per_vector(vb_model):
    summary = check.bank_sharing(vb_model, draws=50)
    assert summary["sharing"] == pytest.approx(check.layers_per_vector(check.selection_counts(vb_model)))
    assert summary["low"] <= summary["high"] and summary["choice"] in "abc"


def _correct(p, n=2000, seeds=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(n, generator=g) < p).float() for _ in range(seeds)]


def test_q4_2_reads_the_files_and_the_paired_comparison(saved, capsys):
    folders, _ = saved
    stored = {m: check.file_bytes(f) for m, f in folders.items()}
    ratio = stored["VB-LoRA"] / stored["LoRA"]
    assert 0.75 <= ratio <= 1.33
    same = _correct(0.9)
    tie = {"LoRA": same, "VB-LoRA": [c.clone() for c in same]}
    ahead = {"LoRA": _correct(0.80, seed=1), "VB-LoRA": _correct(0.92, seed=2)}
    check.q4_2("b", stored, ratio, tie, folders)
    check.q4_2("a", stored, ratio, ahead, folders)
    check.q4_2("c", stored, ratio, {"LoRA": ahead["VB-LoRA"], "VB-LoRA": ahead["LoRA"]}, folders)
    assert capsys.readouterr().out.count("공개 체크 통과") == 3
    # one example out of 2000 per seed: significant or not, below the minimum effect, so a tie
    flip = [c.clone() for c in same]
    for c in flip:
        c[torch.nonzero(c == 0)[0]] = 1.0
    check.q4_2("b", stored, ratio, {"LoRA": same, "VB-LoRA": flip}, folders)
    with pytest.raises(CheckFailed, match="신뢰구간"):
        check.q4_2("a", stored, ratio, tie, folders)
    with pytest.raises(CheckFailed, match="파일 크기"):
        check.q4_2("b", {m: v + 1 for m, v in stored.items()}, ratio, tie, folders)
    with pytest.raises(CheckFailed, match="정답 여부"):
        check.q4_2("b", stored, ratio, {"LoRA": [torch.full((50,), 0.9)] * 2, "VB-LoRA": [torch.full((50,), 0.9)] * 2}, folders)
    with pytest.raises(CheckFailed, match="shape"):
        check.q4_2("b", stored, ratio, {"LoRA": same, "VB-LoRA": [c[:100] for c in same]}, folders)
    with pytest.raises(CheckFailed):
        check.q4_2(None, None, None, None, folders)


def test_q4_3_storage_and_accuracy_per_task(saved, capsys):
    _, tasks = saved
    n_tasks = [1, 10, 100]
    per = {m: statistics.mean(check.file_bytes(f) for f in fs) for m, fs in tasks.items()}
    storage = {m: [n * per[m] for n in n_tasks] for m in per}
    ratio = per["LoRA"] / per["VB-LoRA"]
    base = _correct(0.9, n=1000, seeds=1)[0]
    worse = _correct(0.8, n=1000, seeds=1, seed=3)[0]
    better = _correct(0.97, n=1000, seeds=1, seed=4)[0]
    cases = {  # the letter follows the per-task verdicts
        "a": ({"x": {"LoRA": base, "VB-LoRA": base.clone()}, "y": {"LoRA": base, "VB-LoRA": base.clone()}}, {"x": "tie", "y": "tie"}),
        "b": ({"x": {"LoRA": base, "VB-LoRA": worse}, "y": {"LoRA": base, "VB-LoRA": better}}, {"x": "LoRA", "y": "VB-LoRA"}),
        "c": ({"x": {"LoRA": base, "VB-LoRA": better}, "y": {"LoRA": base, "VB-LoRA": base.clone()}}, {"x": "VB-LoRA", "y": "tie"}),
    }
    for letter, (correct, verdicts) in cases.items():
        check.q4_3(letter, verdicts, per, storage, ratio, tasks, n_tasks, correct)
    assert capsys.readouterr().out.count("공개 체크 통과") == 3
    correct, verdicts = cases["b"]
    for wrong in "ac":
        with pytest.raises(CheckFailed, match="작업별 판정"):
            check.q4_3(wrong, verdicts, per, storage, ratio, tasks, n_tasks, correct)
    with pytest.raises(CheckFailed, match="verdicts\\['x'\\]"):
        check.q4_3("b", {"x": "tie", "y": "VB-LoRA"}, per, storage, ratio, tasks, n_tasks, correct)
    with pytest.raises(CheckFailed, match="N × per_task"):
        check.q4_3("b", verdicts, per, {m: [per[m] + 0 * n for n in n_tasks] for m in per}, ratio, tasks, n_tasks, correct)
    with pytest.raises(CheckFailed, match="ratio_100"):
        check.q4_3("b", verdicts, per, storage, 1 / ratio, tasks, n_tasks, correct)
    with pytest.raises(CheckFailed):
        check.q4_3(None, None, None, None, None, tasks, n_tasks, correct)


def test_exercises_cannot_call_the_kit_reference():
    from peftlab.methods.vblora import topk_admixture

    with pytest.raises(CheckFailed, match="참조 구현"):
        check.admixture(lambda z, V, k: topk_admixture(z, V, k))
    with pytest.raises(CheckFailed, match="참조 구현"):
        check.build_A(lambda la, V, k: assemble_A(la, V, k))
