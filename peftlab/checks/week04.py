"""Checks for Week 04 — VB-LoRA (``solutions/04_vblora.ipynb``).

Exercises (the student writes code):
  E1  ``topk_admixture(logits, bank, k)`` → the softmax-weighted sum of the top-k bank vectors of every logit
      vector; compared with peftlab's and with peft's VB-LoRA layer, values and gradients (only the k selected
      logits and bank rows get gradient)
  E2  ``build_A(logits_A, bank, k)`` → A (r, in) assembled piece by piece; compared with peftlab and with the A
      of a live peft VB-LoRA layer
Checkpoint questions of the lecture's VB-LoRA part (section 4), each on the student's own run:
  4.1 how VB-LoRA's sharing differs from LoRA's per-layer matrices: what training changed in the routing — the
      student's own function for the fraction of logit vectors whose top-k set of bank vectors moved from
      initialisation (run on their model, on itself and on random logits), that fraction, the same under random
      logits (the null range), and the choice that comparison decides
  4.2 the trade-off of global sharing: accuracy of VB-LoRA and LoRA at equal stored bytes (bytes of the
      student's saved files) and the verdict of :func:`peftlab.analysis.stats.paired_comparison` on the
      per-example correctness over the seeds (a tie where the interval says so)
  4.3 why VB-LoRA suits multi-task use: storage of N task adapters from the student's saved files, the LoRA /
      VB-LoRA ratio at N = 100, the paired verdict per task (VB-LoRA, LoRA or a tie), and the choice those
      verdicts decide (does the smaller file cost accuracy?)
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

__all__ = ["MIN_EFFECT", "admixture", "bank_sharing", "build_A", "file_bytes", "layers_per_vector", "q4_1", "q4_2",
           "q4_3", "selection_counts", "verdict_4_2", "verdicts_4_3"]

#: the smallest accuracy difference of interest for the paired verdicts of 4.2 and 4.3 (half a point)
MIN_EFFECT = 0.005
#: random-logit draws behind the reference null range of 4.1, and how far a student's range may lie from it
NULL_DRAWS = 1000
NULL_TOLERANCE = 0.15


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
def _logits(model: nn.Module, adapter_name: str = "default") -> tuple[dict, int, int]:
    """Every logit vector of every VB-LoRA layer, ``{layer: (logits_A, logits_B)}`` (detached, CPU), with k and N."""
    from peftlab.methods.vblora import vblora_layers

    out, ks, ns = {}, set(), set()
    for name, layer in vblora_layers(model).items():
        if not layer.has_adapter(adapter_name):
            continue
        out[name] = (layer.vblora_logits_A[adapter_name].detach().cpu(), layer.vblora_logits_B[adapter_name].detach().cpu())
        ks.add(layer.topk[adapter_name])
        ns.add(layer.num_vectors[adapter_name])
    k, n = (ks.pop(), ns.pop()) if out else (0, 0)
    return out, k, n


def _count(logits: dict, k: int, n: int) -> dict[str, torch.Tensor]:
    """``{layer: (N,) int64}``: how many of the layer's logit vectors put each bank vector in their top-k."""
    return {name: sum(torch.bincount(z.topk(k, dim=-1).indices.reshape(-1), minlength=n) for z in pair)
            for name, pair in logits.items()}


def selection_counts(model: nn.Module, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """Per VB-LoRA layer: how many of its logit vectors (A's and B's pieces) put each bank vector in their top-k."""
    logits, k, n = _logits(model, adapter_name)
    return _count(logits, k, n)


def layers_per_vector(counts: dict[str, torch.Tensor]) -> float:
    """The mean, over the N bank vectors, of the number of layers that select it at least once (per-layer LoRA: 1)."""
    return torch.stack([c > 0 for c in counts.values()]).sum(0).float().mean().item()


def _random_like(logits: dict, gen: torch.Generator) -> dict:
    return {name: tuple(torch.randn(z.shape, generator=gen) for z in pair) for name, pair in logits.items()}


def _null_range(logits: dict, k: int, n: int, draws: int = NULL_DRAWS, seed: int = 0) -> tuple[float, float]:
    """2.5 % and 97.5 % quantiles of :func:`layers_per_vector` when every logit is an independent N(0, 1) draw."""
    gen = torch.Generator().manual_seed(seed)
    null = torch.tensor([layers_per_vector(_count(_random_like(logits, gen), k, n)) for _ in range(draws)])
    low, high = null.quantile(torch.tensor([0.025, 0.975], dtype=null.dtype)).tolist()
    return low, high


def _side(sharing: float, low: float, high: float) -> str:
    return "a" if sharing < low else ("c" if sharing > high else "b")


def bank_sharing(model: nn.Module, draws: int = NULL_DRAWS, seed: int = 0) -> dict:
    """How many layers select each bank vector in ``model`` against random logits of the same shapes:
    ``{"sharing", "low", "high", "layers", "choice"}`` (``choice``: the letter of 4.1 that the comparison decides)."""
    logits, k, n = _logits(model)
    sharing = layers_per_vector(_count(logits, k, n))
    low, high = _null_range(logits, k, n, draws, seed)
    return {"sharing": sharing, "low": low, "high": high, "layers": len(logits), "choice": _side(sharing, low, high)}


def _expect_usage(got, truth: dict[str, torch.Tensor], what: str) -> None:
    expect(isinstance(got, dict) and set(got) == set(truth),
           f"my_usage는 {{층 이름: (N,) 개수 텐서}} dict를 돌려줘야 합니다 ({what}: 층 {len(truth)}개)")
    for name, counts in truth.items():
        c = got[name]
        expect(isinstance(c, torch.Tensor) and tuple(c.shape) == tuple(counts.shape),
               f"my_usage(…)[{name!r}]의 shape는 (N,) = {tuple(counts.shape)}여야 합니다 ({what})")
        expect(int(c.sum()) == int(counts.sum()),
               f"my_usage(…)[{name!r}]의 합은 그 층의 로짓 벡터 수 × k = {int(counts.sum())}여야 합니다 "
               f"(A와 B의 모든 조각이 k개씩 고릅니다; {what})")
        expect(torch.equal(c.detach().long().cpu(), counts),
               f"my_usage(…)[{name!r}]가 센 값과 다릅니다 ({what}): 각 로짓 벡터의 topk(k) 인덱스를 bank 벡터마다 세세요")


#: 4.1: random-logit draws behind the reference null range of the moved fraction, and the tolerance on a student's
MOVED_DRAWS = 300
MOVED_TOLERANCE = 0.02


def _moved(init: dict, trained: dict, k: int) -> float:
    """Fraction of all logit vectors (every layer, A's and B's pieces) whose top-k index *set* differs."""
    changed = total = 0
    for name, pair in trained.items():
        for z0, z in zip(init[name], pair, strict=True):
            a = z0.topk(k, dim=-1).indices.sort(dim=-1).values.reshape(-1, k)
            b = z.topk(k, dim=-1).indices.sort(dim=-1).values.reshape(-1, k)
            changed += int((a != b).any(dim=-1).sum())
            total += a.shape[0]
    return changed / total


def _moved_null(init: dict, k: int, draws: int = MOVED_DRAWS, seed: int = 0) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    null = torch.tensor([_moved(init, _random_like(init, gen), k) for _ in range(draws)], dtype=torch.float64)
    low, high = null.quantile(torch.tensor([0.025, 0.975], dtype=null.dtype)).tolist()
    return low, high


def _answer_4_1(moved: float, low: float) -> str:
    return "c" if moved == 0 else ("a" if moved < low else "b")


@checkpoint(WEEK, "4.1", points=1,
            title="global sharing vs per-layer LoRA — which bank vectors training changed, against random logits")
def q4_1(choice, moved_fn, moved, null_range, init_model, model) -> None:
    trained, k, n = _logits(model)
    init, k0, n0 = _logits(init_model)
    expect(bool(trained) and bool(init), "init_model과 model에는 VB-LoRA 어댑터가 붙은 모델(학습 전과 학습 뒤)을 넘기세요")
    expect(set(init) == set(trained) and (k0, n0) == (k, n)
           and all(a.shape == b.shape for name in init for a, b in zip(init[name], trained[name], strict=True)),
           "init_model은 학습한 모델과 같은 설정·같은 시드로 새로 만든 모델이어야 합니다")
    expect(callable(moved_fn), "moved_fn에는 여러분의 함수 my_moved(init_logits, logits, k)를 넘기세요")
    truth = _moved(init, trained, k)
    copy_of = lambda d: {m: tuple(z.clone() for z in pair) for m, pair in d.items()}  # noqa: E731
    got = _number(moved_fn(copy_of(init), copy_of(trained), k), "my_moved(init_logits, logits, k)")
    expect(abs(got - truth) < 1e-9,
           "my_moved가 센 비율이 다릅니다: 로짓 벡터마다 학습 전과 뒤의 top-k 인덱스 **집합**이 다른지 보고, "
           "모든 층의 A와 B 로짓 벡터 수로 나누세요")
    same = _moved(init, init, k)
    expect(abs(_number(moved_fn(copy_of(init), copy_of(init), k), "my_moved") - same) < 1e-9,
           "my_moved(init_logits, init_logits, k)는 0이어야 합니다 (같은 로짓이면 바뀐 선택이 없습니다)")
    rand = _random_like(trained, torch.Generator().manual_seed(41))
    expect(abs(_number(moved_fn(copy_of(init), rand, k), "my_moved") - _moved(init, rand, k)) < 1e-9,
           "my_moved가 무작위 로짓에서 다른 값을 냅니다: 넘겨받은 로짓으로 계산하세요")
    m = _number(moved, "moved")
    expect(abs(m - truth) < 1e-9, "moved = 여러분의 모델에서 my_moved(init_logits, logits, K)")
    expect(isinstance(null_range, (tuple, list)) and len(null_range) == 2,
           "null_range는 무작위 로짓에서 잰 moved의 (2.5 % 분위수, 97.5 % 분위수) 두 수입니다")
    low, high = (_number(v, "null_range") for v in null_range)
    expect(low <= high, "null_range는 (작은 쪽, 큰 쪽) 순서입니다")
    ref_low, ref_high = _moved_null(init, k)
    expect(abs(low - ref_low) <= MOVED_TOLERANCE and abs(high - ref_high) <= MOVED_TOLERANCE,
           f"null_range = ({low:.3f}, {high:.3f})가 무작위 로짓의 기준선과 맞지 않습니다: 학습된 로짓을 같은 shape의 "
           "독립 N(0, 1) 값으로 바꿔 학습 전 로짓과 비교하기를 200번 이상 반복하고, 그 moved 값들의 2.5 %·97.5 % 분위수를 쓰세요")
    expect(_choice(choice) in {_answer_4_1(m, low), _answer_4_1(m, ref_low)},
           "여러분의 moved가 0인지, null_range보다 작은지, 그 안(또는 위)에 있는지 보고 고르세요")


# ---------------------------------------------------------------------------------------------- 4.2
def file_bytes(folder) -> int:
    """Bytes on disk of a saved adapter folder (every file in it)."""
    folder = Path(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def _scores(correct, what: str):
    """Per-example 0/1 correctness of one method: ``(n_seeds, n_examples)`` or ``(n_examples,)``, as a 2-D tensor."""
    if isinstance(correct, (list, tuple)) and correct and all(isinstance(c, torch.Tensor) for c in correct):
        expect(len({tuple(c.shape) for c in correct}) == 1, f"{what}의 시드별 텐서는 shape가 같아야 합니다")
        correct = torch.stack([c.detach().float().cpu() for c in correct])
    expect(isinstance(correct, torch.Tensor), f"{what}에는 per_example_correct가 돌려준 0/1 텐서(시드마다 하나)를 넣으세요")
    t = correct.detach().float().cpu()
    t = t.unsqueeze(0) if t.dim() == 1 else t
    expect(t.dim() == 2 and t.shape[1] >= 2, f"{what}의 shape는 (시드 수, 테스트 예시 수)입니다 (받은 것: {tuple(correct.shape)})")
    expect(bool(((t == 0) | (t == 1)).all()), f"{what}는 예시마다 맞으면 1, 틀리면 0입니다 (정확도가 아니라 정답 여부)")
    return t


def _verdict_text(r) -> str:
    return f"차이 {r.diff:+.4f}, 95 % 신뢰구간 [{r.low:+.4f}, {r.high:+.4f}], 최소 효과 {MIN_EFFECT}"


def verdict_4_2(correct: dict) -> tuple[str, object]:
    """The 4.2 letter from :func:`paired_comparison` of VB-LoRA against LoRA on per-example correctness:
    ``a`` VB-LoRA significantly better, ``b`` no significant difference, ``c`` LoRA significantly better."""
    from peftlab.analysis.stats import paired_comparison

    r = paired_comparison(_scores(correct["VB-LoRA"], "correct['VB-LoRA']").numpy(),
                          _scores(correct["LoRA"], "correct['LoRA']").numpy(), min_effect=MIN_EFFECT)
    return {"a": "a", "tie": "b", "b": "c"}[r.verdict], r


@checkpoint(WEEK, "4.2", points=1, title="global sharing vs per-layer adaptation — accuracy at equal stored bytes, paired over seeds and examples")
def q4_2(choice, stored, byte_ratio, correct, folders) -> None:
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
    expect(isinstance(correct, dict) and set(correct) == {"LoRA", "VB-LoRA"},
           "correct는 {'LoRA': [시드별 per_example_correct…], 'VB-LoRA': […]}입니다")
    a, b = _scores(correct["VB-LoRA"], "correct['VB-LoRA']"), _scores(correct["LoRA"], "correct['LoRA']")
    expect(a.shape == b.shape, "두 방법의 correct는 같은 시드, 같은 테스트 예시여야 짝지어 비교할 수 있습니다 (shape가 같아야 함)")
    right, r = verdict_4_2(correct)
    expect(_choice(choice) == right,
           f"{_verdict_text(r)}: 구간이 0을 품지 않고 차이가 최소 효과 이상일 때만 한쪽이 유의하게 낫습니다")


# ---------------------------------------------------------------------------------------------- 4.3
TASK_VERDICTS = ("VB-LoRA", "LoRA", "tie")


def verdicts_4_3(task_correct: dict) -> dict[str, tuple[str, object]]:
    """Per task: "VB-LoRA", "LoRA" or "tie" from :func:`paired_comparison` of VB-LoRA against LoRA, with the result."""
    from peftlab.analysis.stats import paired_comparison

    out = {}
    for task, per in task_correct.items():
        expect(isinstance(per, dict) and set(per) == {"LoRA", "VB-LoRA"},
               f"task_correct[{task!r}]는 {{'LoRA': per_example_correct, 'VB-LoRA': …}}입니다")
        a = _scores(per["VB-LoRA"], f"task_correct[{task!r}]['VB-LoRA']")
        b = _scores(per["LoRA"], f"task_correct[{task!r}]['LoRA']")
        expect(a.shape == b.shape, f"task_correct[{task!r}]: 두 방법은 같은 테스트 예시로 재야 합니다")
        r = paired_comparison(a.numpy(), b.numpy(), min_effect=MIN_EFFECT)
        out[task] = ({"a": "VB-LoRA", "b": "LoRA", "tie": "tie"}[r.verdict], r)
    return out


@checkpoint(WEEK, "4.3", points=1, title="multi-task storage and accuracy: N task adapters, LoRA vs VB-LoRA, paired per task")
def q4_3(choice, verdicts, per_task, storage, ratio_100, task_folders, n_tasks, task_correct) -> None:
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
    expect(isinstance(task_correct, dict) and len(task_correct) >= 2,
           "task_correct는 {작업: {'LoRA': per_example_correct, 'VB-LoRA': …}} (작업 두 개 이상)입니다")
    want = verdicts_4_3(task_correct)
    expect(isinstance(verdicts, dict) and set(verdicts) == set(want),
           f"verdicts에는 작업마다 {', '.join(repr(v) for v in TASK_VERDICTS)} 중 하나를 넣으세요 (작업: {', '.join(want)})")
    for task, (right, r) in want.items():
        got = verdicts[task]
        expect(got in TASK_VERDICTS, f"verdicts[{task!r}]는 {', '.join(repr(v) for v in TASK_VERDICTS)} 중 하나입니다 (받은 것: {got!r})")
        expect(got == right, f"verdicts[{task!r}]: VB-LoRA − LoRA {_verdict_text(r)} — 구간이 0을 품지 않고 차이가 "
                             "최소 효과 이상일 때만 한쪽이 유의하게 낫습니다")
    expect(_choice(choice) == _choice_4_3(want), "여러분의 작업별 판정(verdicts)을 모두 보고 고르세요")


def _choice_4_3(verdicts: dict) -> str:
    """a: no task differs significantly; b: VB-LoRA significantly worse on at least one task; c: significantly
    better on at least one and worse on none."""
    found = {v for v, _ in verdicts.values()}
    return "b" if "LoRA" in found else ("c" if "VB-LoRA" in found else "a")
