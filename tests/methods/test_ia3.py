"""IA³: the paper's definitions (peft's per-layer form), parity with peft ``IA3Config`` (logits, gradients,
merged weights), interop both ways on BERT- and Llama-like models (SEQ_CLS, CAUSAL_LM), bad input.

Parity recipe: the same base twice, peft's ``ia3_l`` randomised (``l ← 1 + N(0, 0.3²)``),
copied into peftlab by peft's state-dict names, compared in fp32.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import tiny_bert, tiny_llama
from peft import IA3Config as PeftIA3Config
from peft import PeftModel, TaskType, get_peft_model
from torch import nn

import peftlab
from peftlab.core.interop import CONFIG_NAME
from peftlab.methods.ia3 import IA3Config, IA3Linear, ia3_layers, is_feedforward

ATOL = 1e-5


CASES = {
    "bert": (tiny_bert, ["key", "value", "output.dense"], ["output.dense"]),
    "bert-regex": (tiny_bert, r".*\.(query|value|intermediate\.dense)", r".*intermediate\.dense"),
    "llama": (tiny_llama, ["k_proj", "v_proj", "down_proj"], ["down_proj"]),
    "llama-more": (tiny_llama, ["q_proj", "o_proj", "up_proj", "gate_proj", "down_proj"], ["down_proj", "up_proj"]),
}


def _ids(seed=0):
    return torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(seed))


def randomize_ia3(model: nn.Module, seed: int = 1, std: float = 0.3) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "ia3_l" in name:
                p.copy_(1 + torch.randn(p.shape, generator=gen) * std)


def _pair(case: str):
    build, targets, ff = CASES[case]
    base = build()
    theirs = get_peft_model(copy.deepcopy(base), PeftIA3Config(target_modules=targets, feedforward_modules=ff))
    ours = peftlab.apply_ia3(copy.deepcopy(base), target_modules=targets, feedforward_modules=ff)
    randomize_ia3(theirs)
    peftlab.copy_from_peft(theirs, ours)
    return base, ours, theirs


# --------------------------------------------------------------------------- the definitions
def test_output_and_input_scaling_are_the_formulas():
    torch.manual_seed(0)
    base = nn.Linear(6, 4)
    x = torch.randn(3, 6)
    out_layer = IA3Linear(copy.deepcopy(base), is_feedforward=False)
    in_layer = IA3Linear(copy.deepcopy(base), is_feedforward=True)
    assert out_layer.ia3_l["default"].shape == (4, 1) and in_layer.ia3_l["default"].shape == (1, 6)
    assert torch.equal(out_layer(x), base(x)) and torch.equal(in_layer(x), base(x))  # ones: the base model
    l_out, l_in = torch.rand(4) + 0.5, torch.rand(6) + 0.5
    with torch.no_grad():
        out_layer.ia3_l["default"].copy_(l_out.view(4, 1))
        in_layer.ia3_l["default"].copy_(l_in.view(1, 6))
    W, b = base.weight, base.bias
    assert torch.allclose(out_layer(x), (x @ W.T + b) * l_out, atol=1e-6)  # the bias is scaled too
    assert torch.allclose(in_layer(x), (x * l_in) @ W.T + b, atol=1e-6)  # the bias is not
    assert IA3Linear.num_trainable(base, is_feedforward=False) == 4
    assert IA3Linear.num_trainable(base, is_feedforward=True) == 6
    out_layer.merge()
    assert torch.allclose(out_layer.base_layer.weight, l_out.view(4, 1) * W, atol=1e-7)  # rows: diag(l) W
    assert torch.allclose(out_layer.base_layer.bias, l_out * b, atol=1e-7)
    in_layer.merge()
    assert torch.allclose(in_layer.base_layer.weight, W * l_in.view(1, 6), atol=1e-7)  # columns: W diag(l)
    assert torch.equal(in_layer.base_layer.bias, b)
    out_layer.unmerge()
    in_layer.unmerge()
    assert torch.allclose(out_layer.base_layer.weight, W, atol=1e-6)
    assert torch.allclose(out_layer.base_layer.bias, b, atol=1e-6)
    assert torch.allclose(in_layer.base_layer.weight, W, atol=1e-6)


def test_two_adapters_multiply():
    torch.manual_seed(0)
    layer = IA3Linear(nn.Linear(5, 3), is_feedforward=False)
    layer.add_adapter("second", is_feedforward=False)
    with torch.no_grad():
        layer.ia3_l["default"].fill_(2.0)
        layer.ia3_l["second"].fill_(0.25)
    x = torch.randn(2, 5)
    assert torch.allclose(layer(x), layer.base_layer(x) * 0.5, atol=1e-6)


def test_feedforward_matching_is_peft_endswith():
    """peft's rule for a list: plain ``str.endswith`` (so "output.dense" selects attention.output.dense too)."""
    assert is_feedforward("bert.encoder.layer.0.attention.output.dense", ["output.dense"])
    assert is_feedforward("bert.encoder.layer.0.output.dense", ["output.dense"])
    assert not is_feedforward("bert.encoder.layer.0.intermediate.dense", ["output.dense"])
    assert is_feedforward("model.layers.0.mlp.down_proj", r".*down_proj")
    assert not is_feedforward("model.layers.0.mlp.down_proj", r"down_proj")  # a regex matches the whole name
    _, ours, theirs = _pair("bert")
    peft_ff = {n.removeprefix("base_model.model."): m.is_feedforward for n, m in theirs.named_modules()
               if hasattr(m, "is_feedforward")}
    assert peft_ff == {n: layer.is_feedforward["default"] for n, layer in ia3_layers(ours).items()}


# --------------------------------------------------------------------------- parity with peft
@pytest.mark.parametrize("case", sorted(CASES))
def test_logits_and_gradients_match_peft(case):
    _, ours, theirs = _pair(case)
    ids = _ids()
    y_ours, y_theirs = ours(input_ids=ids).logits, theirs(input_ids=ids).logits
    assert (y_ours - y_theirs).abs().max().item() <= ATOL
    y_ours.pow(2).sum().backward()
    y_theirs.pow(2).sum().backward()
    params = dict(theirs.named_parameters())
    for name, layer in ia3_layers(ours).items():
        mine = layer.ia3_l["default"].grad
        peft_grad = params[f"base_model.model.{name}.ia3_l.default"].grad
        assert mine is not None and peft_grad.abs().sum() > 0, name
        scale = max(1.0, peft_grad.abs().max().item())
        assert (mine - peft_grad).abs().max().item() <= ATOL * scale, name
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("case", ["bert", "llama"])
def test_merged_weights_match_peft(case):
    _, ours, theirs = _pair(case)
    ids = _ids()
    plain_ours = peftlab.merge_and_unload(ours)
    plain_theirs = theirs.merge_and_unload()
    ours_sd, theirs_sd = plain_ours.state_dict(), plain_theirs.state_dict()
    assert set(ours_sd) == set(theirs_sd)
    for key, value in ours_sd.items():
        assert torch.allclose(value, theirs_sd[key], atol=1e-6), key
    assert torch.allclose(plain_ours(input_ids=ids).logits, plain_theirs(input_ids=ids).logits, atol=ATOL)


# --------------------------------------------------------------------------- interop on the course's tiny models
def _course_model(task: str):
    from peftlab.models import load_causal_lm, load_encoder_classifier

    if task == "SEQ_CLS":
        return load_encoder_classifier(num_labels=2, pretrained=True).eval(), ["key", "value", "output.dense"], \
            ["output.dense"]
    return load_causal_lm().eval(), ["k_proj", "v_proj", "down_proj"], ["down_proj"]


@pytest.mark.parametrize("task", ["SEQ_CLS", "CAUSAL_LM"])
def test_peft_files_load_and_save_with_peft_logits(task, tmp_path):
    base, targets, ff = _course_model(task)
    ids = torch.randint(5, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    theirs = get_peft_model(copy.deepcopy(base), PeftIA3Config(task_type=getattr(TaskType, task),
                                                               target_modules=targets, feedforward_modules=ff))
    randomize_ia3(theirs)
    if task == "SEQ_CLS":  # peft trains (and saves) the head too
        with torch.no_grad():
            for n, p in theirs.named_parameters():
                if "classifier" in n and p.requires_grad:
                    p.add_(0.5)
    theirs.eval().save_pretrained(tmp_path / "peft")
    expected = theirs(input_ids=ids, attention_mask=mask).logits
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft")
    got = ours(input_ids=ids, attention_mask=mask).logits
    assert (got - expected).abs().max().item() <= 1e-4
    # and back: peftlab writes a folder peft loads with the same logits
    peftlab.save_peft_adapter(ours, tmp_path / "ours", task_type=task)
    cfg = json.loads((tmp_path / "ours" / CONFIG_NAME).read_text())
    assert cfg["peft_type"] == "IA3" and set(cfg["feedforward_modules"]) == set(ff)
    again = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert (again(input_ids=ids, attention_mask=mask).logits - expected).abs().max().item() <= 1e-4


# --------------------------------------------------------------------------- bad input
def test_feedforward_module_must_be_a_target():
    with pytest.raises(ValueError, match="feedforward_modules.*not among target_modules"):
        IA3Config(target_modules=["key", "value"], feedforward_modules=["output.dense"])
    with pytest.raises(ValueError, match="feedforward_modules"):
        PeftIA3Config(target_modules=["key", "value"], feedforward_modules=["output.dense"])  # peft agrees
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="not among target_modules"):
        peftlab.apply_ia3(model, target_modules=["key"], feedforward_modules=["output.dense"])
    assert not ia3_layers(model) and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("field, value, exc", [
    ("target_modules", 3, TypeError), ("feedforward_modules", None, TypeError),
    ("feedforward_modules", [""], TypeError), ("init_ia3_weights", "yes", TypeError),
    ("modules_to_save", "classifier", TypeError),
])
def test_bad_fields(field, value, exc):
    with pytest.raises(exc, match=field):
        IA3Config(**{"target_modules": ["key"], "feedforward_modules": [], field: value})


def test_unmerge_warns_for_a_zero_entry():
    layer = IA3Linear(nn.Linear(4, 3), is_feedforward=False)
    with torch.no_grad():
        layer.ia3_l["default"][0] = 0.0
    with pytest.warns(UserWarning, match="cannot restore"):
        layer.merge()


def test_peft_file_without_feedforward_modules_is_refused(tmp_path):
    base = tiny_bert()
    theirs = get_peft_model(copy.deepcopy(base), PeftIA3Config(target_modules=["key"], feedforward_modules=[]))
    theirs.save_pretrained(tmp_path)
    path = tmp_path / CONFIG_NAME
    cfg = json.loads(path.read_text())
    cfg.pop("feedforward_modules")
    path.write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="feedforward_modules"):
        peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path)
