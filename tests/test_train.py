"""The package's one training loop (``peftlab.train.fit``), its schedule, batch order and answer-only batches,
and that every trainer of the package runs on them."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from torch import nn

import peftlab
from peftlab import train as T

ROOT = Path(peftlab.__file__).resolve().parent


# ------------------------------------------------------------------------------------------------ schedule
def test_linear_schedule_values():
    # 10 steps, 2 warm-up steps: 1/2, 1, then (10 − s)/8 down to 1/8 at the last step
    got = [T.warmup_decay(s, 10, 2) for s in range(11)]
    assert got == [0.5, 1.0, 1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0]
    # no warm-up: the first step takes the full rate and the decay runs over every step
    assert [T.warmup_decay(s, 4, 0) for s in range(4)] == [1.0, 0.75, 0.5, 0.25]
    # at least one warm-up step (compare, the data build's probes) is another schedule than none
    assert [T.warmup_decay(s, 4, 1) for s in range(4)] == [1.0, 1.0, 2 / 3, 1 / 3]
    assert T.warmup_decay(20, 10, 2) == 0.0  # past the end: never below 0


def test_cosine_schedule_values():
    assert [T.warmup_decay(s, 12, 2, "cosine") for s in range(2)] == [0.5, 1.0]
    assert T.warmup_decay(2, 12, 2, "cosine") == 1.0
    assert T.warmup_decay(7, 12, 2, "cosine") == pytest.approx(0.5)
    assert T.warmup_decay(12, 12, 2, "cosine") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="decay='step'"):
        T.warmup_decay(0, 10, 1, "step")


def test_warmup_steps_rounds_down_with_a_floor():
    assert T.warmup_steps(150, 0.06) == 9
    assert T.warmup_steps(16, 0.06) == 0 and T.warmup_steps(16, 0.06, at_least=1) == 1
    assert T.warmup_steps(10, 1.0) == 10
    with pytest.raises(ValueError, match="ratio=1.5"):
        T.warmup_steps(10, 1.5)
    with pytest.raises(ValueError, match="at_least=-1"):
        T.warmup_steps(10, 0.1, at_least=-1)
    with pytest.raises(ValueError, match="total=0"):
        T.warmup_steps(0, 0.1)


# ------------------------------------------------------------------------------------------- batch order
def _perms(seed: int, n: int, k: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g).tolist() for _ in range(k)]


def test_index_batches_by_epoch():
    p = _perms(3, 10, 2)
    got = list(T.index_batches(10, 4, torch.Generator().manual_seed(3), epochs=2))
    assert got == [p[0][0:4], p[0][4:8], p[0][8:10], p[1][0:4], p[1][4:8], p[1][8:10]]
    assert list(T.index_batches(5, 2, epochs=1)) == [[0, 1], [2, 3], [4]]  # no generator: in order


def test_index_batches_by_steps_reshuffle_and_carry():
    p = _perms(1, 10, 3)
    reshuffled = list(T.index_batches(10, 4, torch.Generator().manual_seed(1), steps=5))
    assert reshuffled == [p[0][0:4], p[0][4:8], p[1][0:4], p[1][4:8], p[2][0:4]]  # the 2 left over are dropped
    carried = list(T.index_batches(10, 4, torch.Generator().manual_seed(1), steps=4, leftover="carry"))
    assert carried == [p[0][0:4], p[0][4:8], p[0][8:10] + p[1][0:2], p[1][2:6]]
    # fewer examples than a batch: every step is one whole new pass, in both modes; "reshuffle" draws its first
    # pass before the first step and, as it cannot fill a batch, draws the next at once (compare's order)
    q = _perms(2, 3, 3)
    assert list(T.index_batches(3, 4, torch.Generator().manual_seed(2), steps=2)) == q[1:3]
    assert list(T.index_batches(3, 4, torch.Generator().manual_seed(2), steps=2, leftover="carry")) == q[0:2]


def test_index_batches_bad_input():
    with pytest.raises(ValueError, match="either epochs or steps"):  # at the call, before any batch is taken
        T.index_batches(10, 2, epochs=1, steps=3)
    with pytest.raises(ValueError, match="either epochs or steps"):
        T.index_batches(10, 2)
    with pytest.raises(ValueError, match="leftover='drop'"):
        T.index_batches(10, 2, steps=3, leftover="drop")
    with pytest.raises(ValueError, match="batch_size=0"):
        T.index_batches(10, 0, epochs=1)


# ------------------------------------------------------------------------------------ answer-only batches
def test_answer_batch_masks_prompt_and_padding():
    ids, attn, labels = T.answer_batch([([5, 6, 7, 8], 2), ([9, 10, 11], 1)], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 8], [9, 10, 11, 0]]
    assert attn.tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert labels.tolist() == [[-100, -100, 7, 8], [-100, 10, 11, -100]]
    _, _, every = T.answer_batch([([5, 6, 7, 8], 2), ([9, 10, 11], 1)], pad_id=0, answer_only=False)
    assert every.tolist() == [[5, 6, 7, 8], [9, 10, 11, -100]]
    with pytest.raises(ValueError, match=r"pairs\[0\]: prompt length 5"):
        T.answer_batch([([1, 2], 5)], pad_id=0)
    with pytest.raises(ValueError, match="pairs is empty"):
        T.answer_batch([], pad_id=0)


def test_encode_answer_pairs_instruction_and_plain_text():
    from peftlab.data import format_instruction
    from peftlab.models import load_tokenizer

    tok = load_tokenizer("causal_lm")
    row = {"instruction": "프랑스의 수도는?", "output": "파리"}
    (full, k), (text, k0) = T.encode_answer_pairs(tok, [row, "사과는 과일이다."])
    prompt = tok(format_instruction(row["instruction"]))["input_ids"]
    assert full[:k] == prompt and k == len(prompt) and full[-1] == tok.eos_token_id
    assert full[:-1] == tok(format_instruction(row["instruction"], row["output"]))["input_ids"]
    assert k0 == 0 and text == tok("사과는 과일이다.")["input_ids"] + [tok.eos_token_id]
    # the labels of the batch are the answer and [EOS] only
    _, _, labels = T.answer_batch([(full, k)], tok.pad_token_id)
    assert labels[0][labels[0] != -100].tolist() == full[k:]


class _Parrot(nn.Module):
    """A stub causal LM: after any token but ``word`` it predicts ``word``, after ``word`` it predicts ``then``;
    ``virtual`` extra positions before the text, as prompt tuning returns."""

    def __init__(self, vocab: int, word: int, then: int, virtual: int = 0):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.vocab, self.word, self.then, self.virtual = vocab, word, then, virtual

    def forward(self, input_ids, attention_mask):
        nxt = torch.where(input_ids == self.word, self.then, self.word)
        logits = nn.functional.one_hot(nxt, self.vocab).float()
        pad = torch.zeros(input_ids.shape[0], self.virtual, self.vocab)
        return type("Out", (), {"logits": torch.cat([pad, logits], 1)})()


def test_greedy_answers_stop_at_eos_and_read_text_positions():
    from peftlab.models import load_tokenizer

    tok = load_tokenizer("causal_lm")
    word = tok("파리")["input_ids"][-1]
    text = tok.decode([word], skip_special_tokens=True).strip()
    for virtual in (0, 3):
        stops = _Parrot(len(tok), word, tok.eos_token_id, virtual)
        assert T.greedy_answers(stops, tok, ["프랑스의 수도는?", "짧은 질문"], batch_size=1) == [text, text]
    repeats = _Parrot(len(tok), word, word)  # never [EOS]: max_new_tokens tokens
    assert T.greedy_answers(repeats, tok, ["질문"], max_new_tokens=3) == [
        tok.decode([word] * 3, skip_special_tokens=True).split("\n")[0].strip()]
    with pytest.raises(ValueError, match="max_new_tokens=0"):
        T.greedy_answers(repeats, tok, ["질문"], max_new_tokens=0)


# -------------------------------------------------------------------------------------------------- fit
def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Dropout(0.1), nn.Tanh(), nn.Linear(8, 3))


def _data(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return x, (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()


def _loss(model, batch):
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def test_fit_is_the_textbook_loop_with_the_schedule():
    x, y = _data()
    idx = list(T.index_batches(len(x), 5, torch.Generator().manual_seed(0), epochs=2))
    total, warm = len(idx), 2
    # by hand: forward, zero_grad, backward, step, schedule step
    ref = _net()
    opt = torch.optim.AdamW(ref.parameters(), lr=0.05, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
    torch.manual_seed(7)
    ref.train()
    want = []
    for i in idx:
        loss = _loss(ref, (x[i], y[i]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        want.append(loss.item())
    # the same through fit, with the rate of every step recorded before its forward
    net = _net()
    opt = T.make_optimizer(net, 0.05, weight_decay=0.01)
    rates, after = [], []
    torch.manual_seed(7)
    got = T.fit(net, ((x[i], y[i]) for i in idx), _loss, opt, total_steps=total, warmup=warm,
                before_step=lambda step, batch: rates.append(opt.param_groups[0]["lr"]),
                after_step=lambda step, loss: after.append((step, loss)))
    assert got == want and after == list(enumerate(want))
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values(), strict=True))
    assert rates == [0.05 * T.warmup_decay(s, total, warm) for s in range(total)]
    assert not net.training  # eval mode after training


def test_fit_constant_rate_clipping_and_param_groups():
    x, y = _data()
    net = _net()
    opt = T.make_optimizer(net, 0.1, lr_by_name={"3.": 0.01})  # the last Linear ("3.weight", "3.bias")
    assert sorted(g["lr"] for g in opt.param_groups) == [0.01, 0.1]
    norms = []
    _step = opt.step

    def step(*a, **k):  # the gradient norm the optimizer sees
        norms.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in net.parameters()])).item())
        return _step(*a, **k)

    opt.step = step
    T.fit(net, [(x * 100, y)] * 3, _loss, opt, clip_grad_norm=0.5)
    assert len(norms) == 3 and max(norms) <= 0.5 + 1e-5
    assert sorted(g["lr"] for g in opt.param_groups) == [0.01, 0.1]  # no schedule: the rates stay


def test_fit_bad_input():
    net = _net()
    opt = T.make_optimizer(net, 0.1)
    with pytest.raises(ValueError, match="warmup=-1"):
        T.fit(net, [], _loss, opt, total_steps=3, warmup=-1)
    with pytest.raises(ValueError, match="decay='exp'"):
        T.fit(net, [], _loss, opt, total_steps=3, decay="exp")
    with pytest.raises(ValueError, match="clip_grad_norm=0"):
        T.fit(net, [], _loss, opt, clip_grad_norm=0)
    with pytest.raises(ValueError, match="lr=0"):
        T.make_optimizer(net, 0)
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        T.make_optimizer(net, 0.1)


# ------------------------------------------------------------------------------ every trainer uses fit
def _calls(path: Path) -> list[tuple[str, int]]:
    """``(what, line)`` for every ``….backward(…)``, ``….step()`` on an optimizer-like name and scheduler
    construction in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr = node.func.attr
            owner = ast.unparse(node.func.value)
            if attr == "backward" or (attr == "step" and any(w in owner for w in ("opt", "sched", "scaler"))) \
                    or attr in ("LambdaLR", "StepLR", "CosineAnnealingLR", "LinearLR", "OneCycleLR"):
                out.append((f"{owner}.{attr}", node.lineno))
    return out


def test_no_training_loop_outside_fit():
    """Only ``peftlab.train.fit`` steps an optimizer or a schedule; ``peftlab/checks`` only takes gradients
    (a layer's backward against a reference), and trains nothing."""
    train = ROOT / "train.py"
    tree = ast.parse(train.read_text(encoding="utf-8"))
    fit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "fit")
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for what, line in _calls(path):
            if rel == "train.py" and fit.lineno <= line <= fit.end_lineno:
                continue
            if rel.startswith("checks/") and what.endswith(".backward"):
                continue
            found.setdefault(rel, []).append(f"{what} (line {line})")
    assert found == {}, f"training steps outside peftlab.train.fit: {found}"


def test_the_finder_sees_a_loop(tmp_path):
    src = tmp_path / "loop.py"
    src.write_text("def go(model, opt, sched, loss):\n    loss.backward()\n    opt.step()\n    sched.step()\n"
                   "    s = torch.optim.lr_scheduler.LambdaLR(opt, f)\n")
    assert [w for w, _ in _calls(src)] == ["loss.backward", "opt.step", "sched.step", "torch.optim.lr_scheduler.LambdaLR"]


@pytest.mark.parametrize("module, function", [
    ("peftlab.train", "train_classifier"), ("peftlab.train", "linear_probe"), ("peftlab.compare", "run_cell"),
    ("peftlab.qr_adaptor", "LoRAFinetuneEvaluator.finetune"), ("peftlab.datagen.lmprobe", "lora_tune"),
    ("peftlab.datagen.probe", "finetune_classifier"), ("peftlab.datagen.probe", "linear_probe"),
    ("peftlab.datagen.pretrain", "pretrain_mlm"), ("peftlab.datagen.pretrain", "pretrain_clm"),
    ("peftlab.datagen.pretrain", "pretrain_encoder"),
])
def test_each_trainer_calls_fit(module, function):
    import importlib
    import inspect

    obj = importlib.import_module(module)
    for part in function.split("."):
        obj = getattr(obj, part)
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(obj)))
    called = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert "fit" in called, f"{module}.{function} does not call peftlab.train.fit"


def test_train_classifier_runs_fit_with_its_schedule(monkeypatch):
    from peftlab.train import EncodedSplit

    seen = {}
    real = T.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "fit", spy)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.EmbeddingBag(20, 3)

        def forward(self, input_ids, attention_mask):
            return type("Out", (), {"logits": self.emb(input_ids)})()

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 20, (10, 4), generator=g)
    split = EncodedSplit(ids, torch.ones_like(ids), (ids[:, 0] % 3).long())
    res = T.train_classifier(Net(), split, split, epochs=2, batch_size=4, warmup_ratio=0.5, device="cpu")
    assert seen["total_steps"] == 6 and seen["warmup"] == 3
    assert res.steps == 6 and len(res.losses) == 6 and len(res.valid_accuracy) == 2
    assert all(math.isfinite(v) for v in res.losses)


# ------------------------------------------------------------------- the numbers of the loops before fit
# Measured with the loops that train_classifier and LoRAFinetuneEvaluator.finetune had before they ran on fit
# (their own schedule and batch order): fit with their options gives the same numbers.
def test_train_classifier_numbers_unchanged():
    from helpers import tiny_bert

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 64, (40, 8), generator=g)
    split = T.EncodedSplit(ids, torch.ones_like(ids), (ids[:, 0] > 34).long())
    m = peftlab.apply_lora(tiny_bert(), r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
    r = T.train_classifier(m, split, epochs=2, lr=1e-2, batch_size=16, warmup_ratio=0.1, seed=1, device="cpu")
    assert r.losses == pytest.approx([0.692861, 0.688487, 0.696341, 0.690362, 0.685199, 0.694914], abs=2e-6)


def test_qr_evaluator_numbers_unchanged():
    from transformers import LlamaConfig, LlamaForCausalLM

    from peftlab import qr_adaptor as qa
    from peftlab.models import load_tokenizer

    tok = load_tokenizer("causal_lm")
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64))
    rows = [{"instruction": "당근의 종류는?", "output": "채소"}, {"instruction": "프랑스의 수도는?", "output": "파리"},
            "사과는 과일이다."]
    ev = qa.LoRAFinetuneEvaluator(lm, tok, qa.layer_groups(lm), rows, rows, steps={"high": 4}, batch_size=2, lr=1e-2)
    assert ev(((8, 2), (4, 4)), "high") == pytest.approx(7.743429, abs=2e-6)
