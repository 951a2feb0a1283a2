"""The method table (:mod:`peftlab.compare.methods`): the registry's recipes under the registry's names, the old
names as aliases, every method trainable on its task's tiny model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import peftlab
from peftlab import compare as C

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("task", C.TASKS)
def test_every_method_builds_and_trains_on_its_tiny_model(task):
    """Every method of the comparison attaches to the task's tiny model (whatever its widths) and one
    backward pass reaches only what it trains."""
    import torch

    from peftlab.models import load_causal_lm, load_encoder_classifier

    torch.manual_seed(0)
    for name, spec in C.METHODS.items():
        if task not in spec.tasks:
            continue
        base = load_encoder_classifier(2, pretrained=True) if task == "sentiment" else load_causal_lm()
        model = spec.build(base, task)
        trainable = [p for p in model.parameters() if p.requires_grad]
        assert trainable, f"{name} on {task}: nothing to train"
        ids = torch.randint(10, 200, (2, 12))
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids))
        out.logits.float().pow(2).mean().backward()
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable), f"{name} on {task}: no gradient"


def test_method_table_is_derived_from_the_registry(monkeypatch):
    from peftlab.core import tuner
    from peftlab.core.recipe import Recipe

    expected = ["full"] + [n for spec in tuner.registry().values() for n in spec.recipes]
    assert list(C.METHODS) == expected == list(C.methods_from_registry())
    assert expected == ["full", "lora", "rslora", "dora", "waveft", "qlora", "vblora", "ia3", "prompt_tuning",
                        "prefix_tuning", "houlsby"]  # the course's order, which the stored runs keep
    for name, method in C.METHODS.items():
        if name != "full":
            owner = next(spec for spec in tuner.registry().values() if name in spec.recipes)
            assert method.build is owner.recipes[name].build and method.summary == owner.recipes[name].summary
    assert set(C.METHODS) - {"full", "rslora"} == set(tuner.registry())  # every registered method is compared

    # a method registered with a recipe joins the table (its own file is all it needs)
    @dataclass
    class NewConfig(peftlab.LoRAConfig):
        method = "new_method"

    monkeypatch.setattr(tuner, "_REGISTRY", dict(tuner._REGISTRY))
    build = C.METHODS["lora"].build
    tuner.register_method("new_method", NewConfig, tuner.get_method("lora").layers,
                          examples=tuner.get_method("lora").examples, recipe=Recipe("a new one", build))
    table = C.methods_from_registry()
    assert list(table)[-1] == "new_method" and table["new_method"].summary == "a new one"
    with pytest.raises(ValueError, match=r"the name\(s\) \['rslora'\] are taken"):
        tuner.register_method("rslora", type("RsConfig", (NewConfig,), {"method": "rslora"}),
                              tuner.get_method("lora").layers, recipe=Recipe("x", build))
    with pytest.raises(TypeError, match="must be a peftlab.core.recipe.Recipe"):
        tuner.register_method("new_method", NewConfig, tuner.get_method("lora").layers, recipe=build)
    assert "rslora" not in tuner._REGISTRY and tuner._REGISTRY["new_method"].recipe.summary == "a new one"


def test_old_method_names_are_accepted_as_aliases(tmp_path, monkeypatch, capsys):
    assert C.ALIASES == {"adapter": "houlsby", "prompt": "prompt_tuning", "prefix": "prefix_tuning"}
    assert C.parse_methods("adapter,prompt,prefix,houlsby") == ["houlsby", "prompt_tuning", "prefix_tuning"]
    assert not set(C.ALIASES) & set(C.parse_methods("all"))
    assert C.CompareConfig(learning_rates={"prompt": 0.1, "lora": 0.01}).learning_rates == {"prompt_tuning": 0.1,
                                                                                          "lora": 0.01}
    with pytest.raises(ValueError, match="'prefix' and 'prefix_tuning' name the same method"):
        C.CompareConfig(learning_rates={"prefix": 0.1, "prefix_tuning": 0.1})
    with pytest.raises(ValueError, match=r"unknown method\(s\) prompts; .*old names accepted: adapter → houlsby"):
        C.parse_methods("prompts")
    records = [{"method": "houlsby", "seed": 0, "status": "ok", "per_example": "01"}]
    assert C.per_example_scores(records, "adapter")[1].tolist() == [[0, 1]]
    # an old command line runs the renamed methods
    from peftlab.cli import main

    seen = []
    monkeypatch.setattr(C, "run_comparison", lambda methods, *a, **k: seen.append(methods) or [])
    assert main(["compare", "--methods", "lora,adapter,prompt,prefix", "--out", str(tmp_path / "o")]) == 0
    assert seen == [["lora", "houlsby", "prompt_tuning", "prefix_tuning"]]
    capsys.readouterr()
