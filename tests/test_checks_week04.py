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


def _usage(model):
    return check.selection_counts(model)


def _fraction(usage):
    used_by = torch.stack([c > 0 for c in usage.values()]).sum(0)
    return ((used_by >= 2).sum() / (used_by >= 1).sum()).item()


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


def test_q4_1_follows_the_model(vb_model, capsys):
    usage = _usage(vb_model)
    frac = _fraction(usage)
    right = "b" if frac >= 0.5 else "a"
    check.q4_1(right, usage, frac, vb_model)
    assert "공개 체크 통과" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="shared_fraction을 보세요"):
        check.q4_1("c", usage, frac, vb_model)
    wrong = {k: v.clone() for k, v in usage.items()}
    first = next(iter(wrong))
    wrong[first][0] += 1
    wrong[first][1] -= 1
    with pytest.raises(CheckFailed, match="센 값과 다릅니다"):
        check.q4_1(right, wrong, frac, vb_model)
    with pytest.raises(CheckFailed, match="shared_fraction"):
        check.q4_1(right, usage, frac + 0.1, vb_model)
    with pytest.raises(CheckFailed):
        check.q4_1(None, None, None, vb_model)


def test_q4_2_reads_the_files_and_the_seed_spread(saved, capsys):
    folders, _ = saved
    stored = {m: check.file_bytes(f) for m, f in folders.items()}
    ratio = stored["VB-LoRA"] / stored["LoRA"]
    assert 0.75 <= ratio <= 1.33
    tie = {"LoRA": [0.90, 0.92], "VB-LoRA": [0.91, 0.90]}
    ahead = {"LoRA": [0.80, 0.81], "VB-LoRA": [0.90, 0.91]}
    check.q4_2("b", stored, ratio, tie, folders)
    check.q4_2("a", stored, ratio, ahead, folders)
    check.q4_2("c", stored, ratio, {"LoRA": ahead["VB-LoRA"], "VB-LoRA": ahead["LoRA"]}, folders)
    assert capsys.readouterr().out.count("공개 체크 통과") == 3
    with pytest.raises(CheckFailed, match="흩어짐"):
        check.q4_2("a", stored, ratio, tie, folders)
    with pytest.raises(CheckFailed, match="파일 크기"):
        check.q4_2("b", {m: v + 1 for m, v in stored.items()}, ratio, tie, folders)
    with pytest.raises(CheckFailed):
        check.q4_2(None, None, None, None, folders)


def test_q4_3_storage_from_the_task_files(saved, capsys):
    _, tasks = saved
    n_tasks = [1, 10, 100]
    per = {m: statistics.mean(check.file_bytes(f) for f in fs) for m, fs in tasks.items()}
    storage = {m: [n * per[m] for n in n_tasks] for m in per}
    ratio = per["LoRA"] / per["VB-LoRA"]
    check.q4_3("a", per, storage, ratio, tasks, n_tasks)
    assert "공개 체크 통과" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="N × per_task"):
        check.q4_3("a", per, {m: [per[m] + 0 * n for n in n_tasks] for m in per}, ratio, tasks, n_tasks)
    with pytest.raises(CheckFailed, match="천천히"):
        check.q4_3("b", per, storage, ratio, tasks, n_tasks)
    with pytest.raises(CheckFailed, match="ratio_100"):
        check.q4_3("a", per, storage, 1 / ratio, tasks, n_tasks)
    with pytest.raises(CheckFailed):
        check.q4_3(None, None, None, None, tasks, n_tasks)
