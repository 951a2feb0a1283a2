"""The config base (:mod:`peftlab.core.config`) and the one-place defaults of every method.

* every method's config extends :class:`~peftlab.core.config.AdapterConfig` and names its method;
* the base is never a method: :func:`peftlab.inject` and :func:`peftlab.core.tuner.register_method` refuse it, and a
  config naming no registered method, with an error that says what is allowed;
* every default of a method's ``apply_*`` and of its layers' ``__init__`` / ``check`` / ``create`` /
  ``param_shapes`` / ``num_trainable`` is its config's field default, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import peftlab
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.tuner import get_method, method_for_config, register_method, registry
from peftlab.methods.prompts import PrefixTuningConfig, PromptTuningConfig

METHODS = sorted(registry())
#: the methods that add layers (the model-level ones, prompt and prefix tuning, wrap the model and take no targets)
LAYERED = sorted(name for name, spec in registry().items() if not spec.model_level)
LAYER_METHODS = ("__init__", "check", "create", "param_shapes", "num_trainable")
#: ``apply_*`` arguments whose default is ``None`` for "empty" (the config's field is an empty list or dict)
EMPTY_AS_NONE = ("modules_to_save", "rank_pattern", "alpha_pattern", "n_frequency_pattern")
#: ``apply_*`` defaults that differ from the config's on purpose: Houlsby adapters train the LayerNorms and the
#: head of a BERT classifier unless told otherwise (``HoulsbyConfig`` alone saves nothing)
DELIBERATE = {("apply_houlsby_adapter", "modules_to_save"): ("LayerNorm", "classifier")}


def _model() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


# ---------------------------------------------------------------------- the base
@pytest.mark.parametrize("name", METHODS)
def test_every_method_config_extends_the_base_and_names_its_method(name):
    config_cls = get_method(name).config_cls
    assert issubclass(config_cls, AdapterConfig) and config_cls is not AdapterConfig
    assert config_cls.method == name
    assert method_for_config(config_cls()).name == name


@pytest.mark.parametrize("config_cls", [PromptTuningConfig, PrefixTuningConfig])
def test_prompt_configs_extend_the_base(config_cls):
    assert issubclass(config_cls, AdapterConfig)
    with pytest.raises(TypeError, match="modules_to_save must be a list of module names"):
        config_cls(modules_to_save="classifier")
    assert config_cls(modules_to_save=("classifier",)).modules_to_save == ["classifier"]


def test_the_base_handed_to_inject_is_refused_naming_the_method_configs():
    model = _model()
    with pytest.raises(TypeError) as info:
        peftlab.inject(model, AdapterConfig())
    message = str(info.value)
    assert "AdapterConfig is the base of the method configs, not a method" in message
    for name in METHODS:
        assert get_method(name).config_cls.__name__ in message
    assert not hasattr(model, "peftlab_config")


def test_a_config_without_a_method_is_refused_naming_the_method_configs():
    @dataclass
    class NoMethodConfig(AdapterConfig):
        target_modules: list[str] | str = names_field("0")
        modules_to_save: list[str] = names_field()

    with pytest.raises(TypeError, match=r"LoRAConfig.*NoMethodConfig sets no method \(.*class attribute 'method'"):
        peftlab.inject(_model(), NoMethodConfig())


def test_a_config_of_an_unregistered_method_is_refused():
    @dataclass
    class UnregisteredConfig(AdapterConfig):
        target_modules: list[str] | str = names_field("0")
        modules_to_save: list[str] = names_field()

        method = "not_registered"

    with pytest.raises(TypeError, match="UnregisteredConfig \\(method 'not_registered'\\) is not a registered"):
        peftlab.inject(_model(), UnregisteredConfig())
    with pytest.raises(TypeError, match=r"'prompt_tuning', a model-level method.*peftlab\.apply_prompt_tuning"):
        peftlab.inject(_model(), PromptTuningConfig())  # a wrapper, applied by apply_prompt_tuning


def test_a_user_subclass_of_a_method_config_is_that_method():
    @dataclass
    class MyLoRAConfig(peftlab.LoRAConfig):
        note: str = "mine"

    model = peftlab.inject(_model(), MyLoRAConfig(r=2, target_modules=["0"]))
    assert isinstance(model[0], peftlab.LoRALinear)


def test_register_method_refuses_the_base_and_a_mismatched_name():
    before = registry()
    layers = get_method("lora").layers
    with pytest.raises(TypeError, match="subclass of peftlab.core.config.AdapterConfig \\(not the base itself\\)"):
        register_method("base", AdapterConfig, layers)
    with pytest.raises(TypeError, match="subclass of peftlab.core.config.AdapterConfig"):
        register_method("plain", dict, layers)
    with pytest.raises(ValueError, match="LoRAConfig.method must be the method's name 'renamed', got 'lora'"):
        register_method("renamed", peftlab.LoRAConfig, layers)
    assert registry().keys() == before.keys()


def test_the_prompt_methods_are_registered_model_level_methods():
    assert {"prompt_tuning", "prefix_tuning"} <= set(METHODS) and not {"prompt_tuning", "prefix_tuning"} & set(LAYERED)
    assert method_for_config(PromptTuningConfig()).name == "prompt_tuning"
    assert method_for_config(PrefixTuningConfig()).name == "prefix_tuning"


@pytest.mark.parametrize("name", LAYERED)
def test_the_base_checks_the_target_fields(name):
    config_cls = get_method(name).config_cls
    with pytest.raises(TypeError, match="target_modules must be a list of names or one regex string"):
        config_cls(target_modules=5)
    with pytest.raises(TypeError, match="modules_to_save must be a list of module names"):
        config_cls(modules_to_save="classifier")
    extra = {"feedforward_modules": []} if name == "ia3" else {}  # IA³: feed-forward modules must be targets
    config = config_cls(target_modules=("0",), modules_to_save=("classifier",), **extra)
    assert config.target_modules == ["0"] and config.modules_to_save == ["classifier"]


@pytest.mark.parametrize("name", METHODS)
def test_to_dict_is_every_field_and_the_method(name):
    config = get_method(name).config_cls()
    out = config.to_dict()
    assert list(out) == [f.name for f in dataclasses.fields(config)] + ["method"]
    assert out["method"] == name


# ---------------------------------------------------------------------- defaults in one place
def _agrees(default, expected) -> bool:
    if isinstance(default, tuple) and isinstance(expected, list):
        return list(default) == expected
    return type(default) is type(expected) and default == expected


def _check_defaults(where: str, func, defaults: dict, label: str = "") -> int:
    """Every parameter of ``func`` named after a config field has the field's default; returns how many."""
    checked = 0
    for param in inspect.signature(func).parameters.values():
        if param.name not in defaults or param.default is inspect.Parameter.empty:
            continue
        expected = defaults[param.name]
        if (label, param.name) in DELIBERATE:
            assert param.default == DELIBERATE[(label, param.name)], f"{where}: {param.name}"
        elif param.default is None and param.name in EMPTY_AS_NONE:
            assert expected in ([], {}), f"{where}: {param.name}=None stands for an empty value, config has {expected!r}"
        else:
            assert _agrees(param.default, expected), \
                f"{where}: {param.name}={param.default!r} but the config's default is {expected!r}"
        checked += 1
    return checked


def _field_defaults(config_cls) -> dict:
    config = config_cls()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


@pytest.mark.parametrize("name", LAYERED)
def test_layer_and_apply_defaults_are_the_configs(name):
    spec = get_method(name)
    defaults = _field_defaults(spec.config_cls)
    module = sys.modules[spec.config_cls.__module__]
    applies = [obj for key, obj in vars(module).items() if key.startswith("apply_") and inspect.isfunction(obj)
               and obj.__module__ == module.__name__]
    assert len(applies) == 1, f"{module.__name__}: one apply_* expected, found {[f.__name__ for f in applies]}"
    apply = applies[0]
    assert _check_defaults(apply.__name__, apply, defaults, apply.__name__) >= 2
    # a layer's hyper-parameters are the keyword arguments the config gives it: every one that is a config field
    hparams = set(spec.config_cls().layer_hparams("0", nn.Linear(4, 4))) & set(defaults)
    for layer in spec.layers:
        checked = sum(_check_defaults(f"{layer.__name__}.{meth}", getattr(layer, meth), defaults)
                      for meth in LAYER_METHODS)
        assert checked >= 1, f"{layer.__name__}: no default compared"
        for meth in ("check", "create"):
            params = inspect.signature(getattr(layer, meth)).parameters
            named = {p for p in params if p in hparams}
            takes_rest = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            assert named == hparams or takes_rest, f"{layer.__name__}.{meth} lacks {sorted(hparams - named)}"


@pytest.mark.parametrize(("apply", "config_cls"), [(peftlab.apply_prompt_tuning, PromptTuningConfig),
                                                   (peftlab.apply_prefix_tuning, PrefixTuningConfig)])
def test_prompt_apply_defaults_are_the_configs(apply, config_cls):
    defaults = _field_defaults(config_cls)
    assert _check_defaults(apply.__name__, apply, defaults, apply.__name__) == len(defaults)


def test_the_defaults_check_catches_a_drift():
    def apply_drifted(model, r: int = 9, alpha: float = 16.0):
        return model

    with pytest.raises(AssertionError, match="r=9 but the config's default is 8"):
        _check_defaults("apply_drifted", apply_drifted, _field_defaults(peftlab.LoRAConfig))
    with pytest.raises(AssertionError, match="alpha=16 but"):  # an int where the config holds a float
        _check_defaults("apply_drifted", lambda model, alpha=16: model, _field_defaults(peftlab.LoRAConfig))


def test_qlora_default_targets_are_the_llama_linears():
    from peftlab.core.targets import LLAMA_LINEARS
    from peftlab.methods.qlora import apply_qlora

    assert inspect.signature(apply_qlora).parameters["target_modules"].default == LLAMA_LINEARS
    assert peftlab.QLoRAConfig().target_modules == list(LLAMA_LINEARS)
    assert torch.float32 == peftlab.QLoRAConfig().compute_dtype


def test_register_method_checks_a_model_level_method():
    from peftlab.methods.prompts import PromptTuningModel

    before = registry()
    spec = get_method("prompt_tuning")
    with pytest.raises(ValueError, match="give its layers .* or wrapper= its wrapper class"):
        register_method("prompt_tuning", PromptTuningConfig, ())
    with pytest.raises(TypeError, match="wrapper of 'prompt_tuning' must be an nn.Module subclass"):
        register_method("prompt_tuning", PromptTuningConfig, (), mergeable=False, wrapper=dict)
    with pytest.raises(ValueError, match=r"has layers=\(\), examples=\(\) and mergeable=False; .*mergeable=True"):
        register_method("prompt_tuning", PromptTuningConfig, (), wrapper=PromptTuningModel)
    with pytest.raises(ValueError, match=r"got layers=\(<class .*LoRALinear"):
        register_method("prompt_tuning", PromptTuningConfig, get_method("lora").layers, mergeable=False,
                        wrapper=PromptTuningModel)
    assert registry() == before and get_method("prompt_tuning") is spec
