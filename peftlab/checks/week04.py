"""Checks for Week 04 — VB-LoRA (``solutions/04_vblora.ipynb``).

Exercises (the student writes code):
  E1  ``topk_admixture(logits, bank, k)`` → the softmax-weighted sum of the top-k bank vectors of every logit
      vector; compared with peftlab's and with peft's VB-LoRA layer, values and gradients (only the k selected
      logits and bank rows get gradient)
  E2  ``build_A(logits_A, bank, k)`` → A (r, in) assembled piece by piece; compared with peftlab and with the A
      of a live peft VB-LoRA layer
Checkpoint questions of the lecture's VB-LoRA part (section 4), each on the student's own run:
  4.1 how VB-LoRA's sharing differs from LoRA's per-layer matrices: which bank vectors each layer of the
      student's trained model selects, the share of them that several layers use, and the choice it decides
  4.2 the trade-off of global sharing: accuracy of VB-LoRA and LoRA at equal stored bytes (bytes of the
      student's saved files, accuracies over seeds) and the verdict the seed spread allows
  4.3 why VB-LoRA suits multi-task use: storage of N task adapters from the student's saved files, the LoRA /
      VB-LoRA ratio at N = 100, and task switching on one base model
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch import nn

from peftlab.checks._core import checkpoint, choice, expect
from peftlab.checks._core import close as _close
from peftlab.checks._core import number as _number

WEEK = "04"

__all__ = ["admixture", "build_A", "file_bytes", "q4_1", "q4_2", "q4_3", "selection_counts"]


def _choice(value, letters: str = "abc") -> str:
    return choice(value, letters)


def _peft_layer(n_in: int, n_out: int, r: int, N: int, b: int, k: int, logits_A, logits_B, bank):
    """One ``nn.Linear`` under peft's VB-LoRA holding exactly these logits and bank."""
    from peft import VBLoRAConfig, get_peft_model

    model = get_peft_model(nn.Sequential(nn.Linear(n_in, n_out)),
                           VBLoRAConfig(r=r, num_vectors=N, vector_length=b, topk=k, target_modules=["0"]))
    layer = model.base_model.model[0]
    with torch.no_grad():
        layer.vblora_logits_A["default"].copy_(logits_A)
        layer.vblora_logits_B["default"].copy_(logits_B)
        model.base_model.vblora_vector_bank["default"].copy_(bank)
    return model.eval(), layer


# ---------------------------------------------------------------------------------------------- E1
@checkpoint(WEEK, "E1", points=1, title="top-k admixture: u = Σ_{top-k} softmax(z_topk)_j · V[i_j]", reference=("peftlab.methods.vblora:topk_admixture",))
def admixture(fn, hidden: bool = False) -> None:
    from peftlab.methods.vblora import topk_admixture

    cases = [((5, 9), 4, 2), ((3, 2, 12), 6, 3)] + ([((7, 5), 3, 1), ((2, 4), 8, 4)] if hidden else [])
    for i, (zshape, b, k) in enumerate(cases):
        g = torch.Generator().manual_seed(60 + i)
        N = zshape[-1]
        z = torch.randn(*zshape, generator=g)
        V = torch.rand(N, b, generator=g) - 0.5
        z_, V_ = z.clone().requires_grad_(True), V.clone().requires_grad_(True)
        u = fn(z_, V_, k)
        expect(isinstance(u, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(u).__name__})")
        expected_shape = (*zshape[:-1], b)
        expect(tuple(u.shape) == expected_shape,
               f"출력 shape는 logits의 (…, N) 대신 (…, b) = {expected_shape}여야 합니다 (받은 것: {tuple(u.shape)})")
        with torch.no_grad():
            dense = torch.softmax(z, -1) @ V
            expect(k == N or not _close(u.detach(), dense),
                   "softmax를 N개 전체에 적용했습니다: 먼저 topk(z, k)로 k개를 고르고, 그 k개의 값에만 softmax를 쓰세요")
            v, idx = z.topk(k, dim=-1)
            expect(k == 1 or not _close(u.detach(), (v.unsqueeze(-1) * V[idx]).sum(-2)),
                   "top-k 값을 가중치로 그대로 썼습니다: softmax(topk 값)으로 합이 1이 되게 하세요")
            expect(k == 1 or not _close(u.detach(), V[idx].mean(-2)),
                   "k개 벡터를 단순 평균했습니다: softmax(top-k 로짓) 가중치로 더하세요")
            low_v, low_i = (-z).topk(k, dim=-1)
            expect(k == N or not _close(u.detach(), (torch.softmax(-low_v, -1).unsqueeze(-1) * V[low_i]).sum(-2)),
                   "가장 작은 k개를 골랐습니다: topk는 가장 큰 로짓 k개입니다")
            ours = topk_admixture(z, V, k)
        expect(_close(u.detach(), ours, atol=1e-6),
               "peftlab의 topk_admixture와 값이 다릅니다: (v, i) = topk(z, k), w = softmax(v), u = Σ_j w_j V[i_j]")
        theirs_fn = _peft_admixture()
        expect(_close(u.detach(), theirs_fn(z, V, k), atol=1e-6), "Hugging Face peft의 VB-LoRA와 값이 다릅니다")
        expect(u.requires_grad, "출력에 gradient가 흐르지 않습니다: logits와 bank로 계산하세요 (no_grad 안에서 계산하지 마세요)")
        w = torch.randn(u.shape, generator=g)
        (u * w).sum().backward()
        z_ref, V_ref = z.clone().requires_grad_(True), V.clone().requires_grad_(True)
        (topk_admixture(z_ref, V_ref, k) * w).sum().backward()
        expect(z_.grad is not None and V_.grad is not None, "logits와 bank 모두 gradient를 받아야 합니다")
        expect(_close(z_.grad, z_ref.grad, atol=1e-6) and _close(V_.grad, V_ref.grad, atol=1e-6),
               "값은 맞지만 gradient가 다릅니다: 고른 k개 로짓과 k개 bank 행만 gradient를 받아야 합니다 "
               "(topk 값에 softmax, V[i]로 행을 모으기)")


def _peft_admixture():
    """peft's VB-LoRA sub-vector function (the layer's ``_get_low_rank_matrix``; it does not use ``self``)."""
    from peft.tuners.vblora.layer import Linear

    return lambda z, V, k: Linear._get_low_rank_matrix(None, z, V, k)


# ---------------------------------------------------------------------------------------------- E2
@checkpoint(WEEK, "E2", points=1, title="A from the bank: A[i, j·b:(j+1)·b] = u(logits_A[i, j]), shape (r, in)", reference=("peftlab.methods.vblora:assemble_A",))
def build_A(fn, hidden: bool = False) -> None:
    from peftlab.methods.vblora import assemble_A

    cases = [(3, 12, 8, 10, 4, 2), (2, 16, 16, 6, 8, 3)] + ([(4, 6, 6, 5, 3, 1), (1, 8, 16, 12, 4, 2)] if hidden else [])
    for i, (r, n_in, n_out, N, b, k) in enumerate(cases):
        g = torch.Generator().manual_seed(70 + i)
        la = torch.randn(r, n_in // b, N, generator=g)
        lb = torch.randn(n_out // b, r, N, generator=g)
        V = torch.rand(N, b, generator=g) - 0.5
        A = fn(la.clone(), V.clone(), k)
        expect(isinstance(A, torch.Tensor), f"torch.Tensor를 반환해야 합니다 (받은 것: {type(A).__name__})")
        expect(tuple(A.shape) == (r, n_in), f"A의 shape는 (r, in) = {(r, n_in)}여야 합니다 (받은 것: {tuple(A.shape)})")
        ours = assemble_A(la, V, k)
        from peftlab.methods.vblora import topk_admixture

        u = topk_admixture(la, V, k)  # (r, in/b, b)
        expect(n_in == b or r == 1 or not _close(A.detach(), u.transpose(0, 1).reshape(-1, b).reshape(r, n_in), atol=1e-6)
               or _close(ours, u.transpose(0, 1).reshape(-1, b).reshape(r, n_in), atol=1e-6),
               "조각의 순서가 틀렸습니다: A의 i번째 행은 logits_A[i, 0], logits_A[i, 1], … 의 조각을 차례로 이어 붙입니다")
        expect(_close(A.detach(), ours, atol=1e-6),
               "peftlab의 assemble_A와 다릅니다: U_A = u(logits_A) (r, in/b, b)를 (r, in)으로 reshape 하세요")
        _, layer = _peft_layer(n_in, n_out, r, N, b, k, la, lb, V)
        theirs, _ = layer._get_lora_matrices("default")
        expect(_close(A.detach(), theirs.detach(), atol=1e-6), "Hugging Face peft의 VB-LoRA 레이어가 만든 A와 다릅니다")


# ---------------------------------------------------------------------------------------------- 4.1
def selection_counts(model: nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """Per VB-LoRA layer: how many of its logit vectors (A's and B's pieces) put each bank vector in their top-k."""
    from peftlab.methods.vblora import vblora_layers

    out = {}
    for name, layer in vblora_layers(model).items():
        if not layer.has_adapter(adapter_name):
            continue
        N, k = layer.num_vectors[adapter_name], layer.topk[adapter_name]
        counts = torch.zeros(N, dtype=torch.long)
        for logits in (layer.vblora_logits_A[adapter_name], layer.vblora_logits_B[adapter_name]):
            idx = logits.detach().cpu().topk(k, dim=-1).indices.reshape(-1)
            counts += torch.bincount(idx, minlength=N)
        out[name] = counts
    return out


def _shared_fraction(counts: dict[str, torch.Tensor]) -> float:
    used_by = (torch.stack([c > 0 for c in counts.values()]).sum(0))
    used = int((used_by >= 1).sum())
    return float((used_by >= 2).sum()) / used if used else 0.0


@checkpoint(WEEK, "4.1", points=1, title="global sharing vs per-layer LoRA — which bank vectors your layers pick")
def q4_1(choice, usage, shared_fraction, model) -> None:
    truth = selection_counts(model)
    expect(bool(truth), "model에는 VB-LoRA 어댑터가 붙은 여러분의 학습된 모델을 넘기세요")
    expect(isinstance(usage, dict) and set(usage) == set(truth),
           f"usage는 VB-LoRA 층 이름 → (N,) 개수 텐서의 dict여야 합니다 ({len(truth)}개 층)")
    for name, counts in truth.items():
        got = usage[name]
        expect(isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(counts.shape),
               f"usage[{name!r}]의 shape는 (N,) = {tuple(counts.shape)}여야 합니다")
        expect(int(got.sum()) == int(counts.sum()),
               f"usage[{name!r}]의 합은 그 층의 로짓 벡터 수 × k = {int(counts.sum())}여야 합니다 "
               "(A와 B의 모든 조각이 k개씩 고릅니다)")
        expect(torch.equal(got.long().cpu(), counts),
               f"usage[{name!r}]가 이 모델에서 센 값과 다릅니다: 각 로짓 벡터의 topk(k) 인덱스를 bank 벡터마다 세세요")
    frac = _number(shared_fraction, "shared_fraction")
    expect(abs(frac - _shared_fraction(truth)) < 1e-6,
           "shared_fraction = (두 개 이상의 층이 고른 bank 벡터 수) / (한 층이라도 고른 bank 벡터 수)")
    expect(_choice(choice) == ("b" if _shared_fraction(truth) >= 0.5 else "a"),
           "여러분의 shared_fraction을 보세요: 층들이 bank 벡터를 나눠 가졌나요, 같은 벡터를 함께 썼나요?")


# ---------------------------------------------------------------------------------------------- 4.2
def file_bytes(folder) -> int:
    """Bytes on disk of a saved adapter folder (every file in it)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _verdict(acc: dict[str, list[float]]) -> str:
    """a: VB-LoRA ahead by more than the seed spread; c: LoRA ahead so; b: a tie within the spread."""
    gap = statistics.mean(acc["VB-LoRA"]) - statistics.mean(acc["LoRA"])
    noise = max(statistics.stdev(acc["VB-LoRA"]), statistics.stdev(acc["LoRA"]), 0.005)
    return "a" if gap > noise else ("c" if -gap > noise else "b")


@checkpoint(WEEK, "4.2", points=1, title="global sharing vs per-layer adaptation — accuracy at equal stored bytes")
def q4_2(choice, stored, byte_ratio, acc, folders) -> None:
    expect(isinstance(folders, dict) and set(folders) == {"LoRA", "VB-LoRA"},
           "folders는 {'LoRA': 폴더, 'VB-LoRA': 폴더} — 여러분이 저장한 두 어댑터입니다")
    truth = {m: file_bytes(f) for m, f in folders.items()}
    expect(isinstance(stored, dict) and set(stored) == set(truth), "stored는 {'LoRA': 바이트, 'VB-LoRA': 바이트}입니다")
    for m in truth:
        expect(int(_number(stored[m], f"stored[{m!r}]")) == truth[m],
               f"stored[{m!r}]가 저장된 폴더의 파일 크기 합({truth[m]} B)과 다릅니다: 디스크의 바이트를 재세요")
    ratio = _number(byte_ratio, "byte_ratio")
    expect(abs(ratio - truth["VB-LoRA"] / truth["LoRA"]) < 1e-6, "byte_ratio = stored['VB-LoRA'] / stored['LoRA']")
    expect(0.75 <= ratio <= 1.33, f"두 어댑터의 저장 크기가 같지 않습니다 (비 {ratio:.2f}): 같은 바이트에서 비교하세요")
    expect(isinstance(acc, dict) and set(acc) == {"LoRA", "VB-LoRA"}
           and all(isinstance(v, (list, tuple)) and len(v) >= 2 for v in acc.values()),
           "acc는 {'LoRA': [시드별 정확도…], 'VB-LoRA': […]} (시드 2개 이상)입니다")
    for m, values in acc.items():
        for v in values:
            expect(0.0 <= _number(v, f"acc[{m!r}]") <= 1.0, "정확도는 0과 1 사이입니다")
    expect(_choice(choice) == _verdict({m: [float(v) for v in vs] for m, vs in acc.items()}),
           "평균의 차이를 시드 사이의 흩어짐(표준편차, 최소 0.005)과 비교하세요: 흩어짐보다 클 때만 차이입니다")


# ---------------------------------------------------------------------------------------------- 4.3
@checkpoint(WEEK, "4.3", points=1, title="multi-task storage: N task adapters, LoRA vs VB-LoRA, and task switching")
def q4_3(choice, per_task, storage, ratio_100, task_folders, n_tasks) -> None:
    expect(isinstance(task_folders, dict) and set(task_folders) == {"LoRA", "VB-LoRA"}
           and all(isinstance(v, (list, tuple)) and len(v) >= 2 for v in task_folders.values()),
           "task_folders는 {'LoRA': [작업별 폴더…], 'VB-LoRA': […]} 입니다")
    truth = {m: statistics.mean(file_bytes(f) for f in fs) for m, fs in task_folders.items()}
    expect(isinstance(per_task, dict) and set(per_task) == set(truth), "per_task는 {'LoRA': …, 'VB-LoRA': …}입니다")
    for m in truth:
        expect(abs(_number(per_task[m], f"per_task[{m!r}]") - truth[m]) < 1e-6,
               f"per_task[{m!r}]는 여러분이 저장한 작업별 폴더 크기의 평균({truth[m]:.1f} B)이어야 합니다")
    expect(isinstance(n_tasks, (list, tuple)) and len(n_tasks) >= 2 and 100 in n_tasks,
           "n_tasks는 작업 수의 목록이고 100을 포함합니다")
    expect(isinstance(storage, dict) and set(storage) == set(truth)
           and all(len(storage[m]) == len(n_tasks) for m in truth),
           "storage[method]는 n_tasks의 각 N에 대한 총 저장 바이트 목록입니다")
    for m in truth:
        for n, s in zip(n_tasks, storage[m], strict=True):
            expect(abs(_number(s, "storage 값") - n * truth[m]) <= 1e-6 * max(1.0, n * truth[m]),
                   f"storage[{m!r}]에서 N={n}: 작업마다 어댑터 하나 → N × per_task[{m!r}]")
    r100 = _number(ratio_100, "ratio_100")
    expect(abs(r100 - truth["LoRA"] / truth["VB-LoRA"]) < 1e-6, "ratio_100 = storage LoRA / storage VB-LoRA at N = 100")
    expect(_choice(choice) == ("a" if truth["LoRA"] > truth["VB-LoRA"] else "b"),
           "N이 커질 때 어느 쪽 총 저장량이 더 천천히 늘어나는지, 여러분의 per_task로 보세요")
