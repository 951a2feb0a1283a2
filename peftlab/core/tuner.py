"""How a method's config becomes adapter layers, and the model-level operations every method shares.

::

    config (LoRAConfig, …) ──inject(model, config, name)──▶ find targets ─▶ validate every layer ─▶ wrap ─▶ freeze
                                                              (suffix/regex)    (nothing changed yet)

* **Registry.** A method registers once (:func:`register_method`): its name, its config class and its
  layer classes (:class:`peftlab.core.layer.AdapterLayer` subclasses, each saying which base layer types it
  wraps). :func:`inject` dispatches on the config's type.
* **Config protocol.** A method's config is a validated dataclass extending
  :class:`peftlab.core.config.AdapterConfig` (its class attribute ``method`` is the registered name) with ``target_modules``,
  ``modules_to_save`` and a method ``layer_hparams(module_name, base_layer) -> dict`` giving the keyword
  arguments of ``AdapterLayer.add_adapter`` for that layer (per-layer values such as ``rank_pattern``
  resolve there). A config whose per-layer values depend on all targets (WaveFT's
  ``proportional_parameters``) also defines ``bind_targets(targets)``; :func:`inject` calls it first.
* **Model-level operations**, named after peft's ``PeftModel`` methods so peft users recognise them:
  :func:`set_adapter`, :func:`merge_adapter`, :func:`unmerge_adapter`, :func:`merge_and_unload`,
  :func:`unload`, :func:`disable_adapter` (a context manager), :func:`delete_adapter`, and
  :func:`count_parameters`. They work on every registered method because they only use the
  ``AdapterLayer`` interface (and, on a model-level method's wrapper, its ``base_model``, ``adapter_name`` and
  ``disable_adapter()``).
* **Shared state.** :func:`shared_parameter` keeps one tensor per model that several layers use (VB-LoRA's
  vector bank): registered once under ``peftlab_shared`` on the model, referenced by each layer.
* **Model-level methods.** Prompt tuning and prefix tuning add no layer: they wrap the whole model (their
  ``apply_*`` returns a wrapper module). They register with ``wrapper=`` (their wrapper class) and no layers;
  :func:`inject` refuses their configs (naming the ``apply_*`` to use), and the model-level operations act on the
  wrapper, which holds one adapter, ``"default"``: :func:`disable_adapter` runs the base model without the
  virtual tokens, :func:`unload` returns the wrapped base model, :func:`active_adapters` / :func:`set_adapter`
  know ``"default"``, and merging (:func:`merge_adapter`, :func:`merge_and_unload`) or deleting the one adapter is
  refused — virtual tokens are no weight change (as in peft, where prompt learning cannot be merged).
* **Comparison recipes.** A method may register how ``peftlab compare`` builds it (``recipe=``, a
  :class:`peftlab.core.recipe.Recipe`, and ``variants=`` for named settings compared as methods of their own:
  LoRA's ``"rslora"``); :mod:`peftlab.compare` derives its method table from the registry.

The configs of the adapters on a model are kept as ``model.peftlab_config`` (adapter name → config).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from peftlab.core.config import AdapterConfig
from peftlab.core.layer import AdapterLayer, check_adapter_name
from peftlab.core.recipe import Recipe
from peftlab.core.targets import (
    ParameterCount,
    count_parameters,
    find_targets,
    modules_matching,
    replace_modules,
)

__all__ = [
    "MethodSpec",
    "active_adapters",
    "adapter_layers",
    "bind_targets",
    "count_parameters",
    "ParameterCount",
    "delete_adapter",
    "disable_adapter",
    "get_method",
    "inject",
    "merge_adapter",
    "merge_and_unload",
    "method_for_config",
    "model_level_method",
    "register_method",
    "registry",
    "set_adapter",
    "shared_parameter",
    "unload",
    "unmerge_adapter",
]

CONFIG_ATTR = "peftlab_config"
SHARED_ATTR = "peftlab_shared"


# ---------------------------------------------------------------------- registry
@dataclass(frozen=True)
class MethodSpec:
    """What the tuner knows of a method.

    ``examples`` are config keyword arguments the contract test (``tests/core/test_contract.py``) applies to
    its small test models: ``{"model": "mlp" | "bert", "config": {...}}``. A method registers at least one,
    so it gets every invariant checked by registering.

    ``reference(base, config)`` is the model a fresh adapter must reproduce: by default the base itself; a
    method that changes the base (QLoRA quantizes it) returns a copy of the base as the method sees it.
    ``tolerances`` relaxes named contract checks for a method where an invariant holds only approximately by
    construction (QLoRA: ``"merged_output"``, since merging re-quantizes ``W + ΔW``); each entry is explained
    where the method registers.
    ``mergeable=False`` marks a method whose update is not a weight change (the Houlsby adapter: a nonlinear
    bottleneck after a layer); its layers refuse to merge and the contract test checks that refusal instead.

    ``shared_trainable(config)`` is the closed-form count of the model-level shared tensors one adapter adds
    (VB-LoRA's vector bank: ``N·b``); the layers' ``num_trainable`` do not include them.

    ``wrapper`` marks a *model-level* method (prompt and prefix tuning): instead of layers (``layers`` is
    empty) its ``apply_*`` wraps the whole model in an instance of ``wrapper``, an ``nn.Module`` with
    ``base_model`` (the frozen model inside), ``adapter_name`` (its one adapter, ``"default"``) and a
    ``disable_adapter()`` context manager. It has no contract-test examples (the contract is the layers');
    its own test file checks it.

    ``recipe`` is how ``peftlab compare`` builds the method (:class:`peftlab.core.recipe.Recipe`); ``variants`` are
    further recipes of the same method that the comparison runs under names of their own (LoRA's
    ``"rslora"``). :attr:`recipes` is both, the method's own name first.
    """

    name: str
    config_cls: type
    layers: tuple[type[AdapterLayer], ...]
    examples: tuple[dict, ...] = field(default_factory=tuple)
    reference: Callable[[nn.Module, object], nn.Module] | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    mergeable: bool = True
    shared_trainable: Callable[[object], int] | None = None
    wrapper: type[nn.Module] | None = None
    recipe: Recipe | None = None
    variants: dict[str, Recipe] = field(default_factory=dict)

    @property
    def model_level(self) -> bool:
        """True for a method that wraps the model instead of adding layers (prompt and prefix tuning)."""
        return self.wrapper is not None

    @property
    def recipes(self) -> dict[str, Recipe]:
        """``peftlab compare``'s names for this method → their recipes: the method's own name first (if it has
        a recipe), then its variants."""
        return {**({self.name: self.recipe} if self.recipe is not None else {}), **self.variants}

    def reference_model(self, base: nn.Module, config) -> nn.Module:
        return base if self.reference is None else self.reference(base, config)

    def tolerance(self, check: str, default: float) -> float:
        return float(self.tolerances.get(check, default))

    def layer_for(self, base_layer: nn.Module) -> type[AdapterLayer]:
        for cls in self.layers:
            if isinstance(base_layer, cls.base_types):
                return cls
        kinds = ", ".join(k.__name__ for cls in self.layers for k in cls.base_types)
        raise TypeError(f"method {self.name!r} cannot wrap a {type(base_layer).__name__}; it wraps {kinds}")

    @property
    def base_types(self) -> tuple[type, ...]:
        return tuple(k for cls in self.layers for k in cls.base_types)


_REGISTRY: dict[str, MethodSpec] = {}


def register_method(name: str, config_cls: type, layers: Sequence[type[AdapterLayer]],
                    examples: Sequence[dict] = (), reference: Callable | None = None,
                    tolerances: dict[str, float] | None = None, mergeable: bool = True,
                    shared_trainable: Callable[[object], int] | None = None, *,
                    wrapper: type[nn.Module] | None = None, recipe: Recipe | None = None,
                    variants: dict[str, Recipe] | None = None) -> MethodSpec:
    """Register a method (called once, at the bottom of its file in ``peftlab/methods/``).

    ``config_cls`` is a subclass of :class:`peftlab.core.config.AdapterConfig` (never the base itself) whose class
    attribute ``method`` is ``name``. A layer method gives its ``layers``; a model-level method gives
    ``layers=()``, ``wrapper=`` its wrapper class and ``mergeable=False``. ``recipe`` / ``variants``: how
    ``peftlab compare`` builds it (see :class:`MethodSpec`); a variant's name must be no other method's or
    variant's. Everything is checked before the registry changes."""
    if not (isinstance(config_cls, type) and issubclass(config_cls, AdapterConfig)) or config_cls is AdapterConfig:
        raise TypeError(f"config_cls of {name!r} must be a subclass of peftlab.core.config.AdapterConfig (not the base "
                        f"itself), got {config_cls!r}")
    if config_cls.method != name:
        raise ValueError(f"{config_cls.__name__}.method must be the method's name {name!r}, got "
                         f"{config_cls.method!r}")
    if name in _REGISTRY and _REGISTRY[name].config_cls is not config_cls:
        raise ValueError(f"a method named {name!r} is already registered")
    for cls in layers:
        if not (isinstance(cls, type) and issubclass(cls, AdapterLayer)):
            raise TypeError(f"layers of {name!r} must be AdapterLayer subclasses, got {cls!r}")
    if wrapper is None and not layers:
        raise ValueError(f"method {name!r}: give its layers (AdapterLayer subclasses), or wrapper= its wrapper "
                         f"class for a model-level method")
    if wrapper is not None:
        if not (isinstance(wrapper, type) and issubclass(wrapper, nn.Module)):
            raise TypeError(f"wrapper of {name!r} must be an nn.Module subclass, got {wrapper!r}")
        if layers or mergeable or examples:
            raise ValueError(f"method {name!r}: a model-level method (wrapper=) has layers=(), examples=() and "
                             f"mergeable=False; got layers={tuple(layers)!r}, {len(tuple(examples))} examples, "
                             f"mergeable={mergeable!r}")
    variants = dict(variants or {})
    for key, value in [(name, recipe), *variants.items()]:
        if value is not None and not isinstance(value, Recipe):
            raise TypeError(f"recipe {key!r} of method {name!r} must be a peftlab.core.recipe.Recipe, got {value!r}")
    taken = {n: spec.name for spec in _REGISTRY.values() if spec.name != name for n in (spec.name, *spec.variants)}
    clash = sorted(n for n in [name, *variants] if n in taken)
    if clash or name in variants:
        raise ValueError(f"method {name!r}: the name(s) {clash or [name]} are taken (method or variant names "
                         f"must be unique across the registry: {sorted(taken)})")
    spec = MethodSpec(name=name, config_cls=config_cls, layers=tuple(layers), examples=tuple(examples),
                      reference=reference, tolerances=dict(tolerances or {}), mergeable=bool(mergeable),
                      shared_trainable=shared_trainable, wrapper=wrapper, recipe=recipe, variants=variants)
    _REGISTRY[name] = spec
    return spec


def registry() -> dict[str, MethodSpec]:
    """Every registered method by name (importing :mod:`peftlab` registers the built-in ones)."""
    return dict(_REGISTRY)


def get_method(name: str) -> MethodSpec:
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def method_for_config(config) -> MethodSpec:
    """The method of ``config``: the registered config class nearest in its class's MRO, so a subclass of
    ``LoRAConfig`` is LoRA and ``DoRAConfig`` (itself a ``LoRAConfig``) is DoRA. The base
    :class:`~peftlab.core.config.AdapterConfig` is never a method: a ``TypeError`` names the method configs."""
    for klass in type(config).__mro__:
        if klass is AdapterConfig:  # the base is no method: nothing below it in the MRO is either
            break
        for spec in _REGISTRY.values():
            if spec.config_cls is klass:
                return spec
    known = ", ".join(spec.config_cls.__name__ for spec in _REGISTRY.values())
    kind = type(config).__name__
    if type(config) is AdapterConfig:
        why = "AdapterConfig is the base of the method configs, not a method"
    elif isinstance(config, AdapterConfig) and type(config).method is None:
        why = f"{kind} sets no method (an AdapterConfig subclass names it in its class attribute 'method')"
    elif isinstance(config, AdapterConfig):
        why = f"{kind} (method {type(config).method!r}) is not a registered method's config"
    else:
        why = f"got {kind}"
    raise TypeError(f"config must be one of the method configs ({known}) or a subclass of one; {why}")


def registered_layer_class(layer: AdapterLayer) -> type[AdapterLayer]:
    """The registered layer class ``layer`` is an instance of, most specific first (``DoRALinear`` for a DoRA
    layer, though it is also a ``LoRALinear``; the reference class for a speed-tuned twin of it)."""
    registered = {cls for spec in _REGISTRY.values() for cls in spec.layers}
    for klass in type(layer).__mro__:
        if klass in registered:
            return klass
    raise TypeError(f"{type(layer).__name__} is not a layer of any registered method")


def method_of_layer(layer: AdapterLayer) -> MethodSpec:
    """The registered method whose layer class :func:`registered_layer_class` finds for ``layer``."""
    klass = registered_layer_class(layer)
    return next(spec for spec in _REGISTRY.values() if klass in spec.layers)


def _all_layer_types() -> tuple[type[AdapterLayer], ...]:
    return tuple(cls for spec in _REGISTRY.values() for cls in spec.layers) or (AdapterLayer,)


# ---------------------------------------------------------------------- inject
def adapter_layers(model: nn.Module, kind: type | tuple[type, ...] = AdapterLayer) -> dict[str, AdapterLayer]:
    """Every adapter layer of ``model`` by module name; ``kind`` keeps only layers of that class (e.g. ``LoRALayer``)."""
    return {name: mod for name, mod in model.named_modules() if isinstance(mod, AdapterLayer) and isinstance(mod, kind)}


def _configs(model: nn.Module) -> dict:
    return dict(getattr(model, CONFIG_ATTR, None) or {})


def inject(model: nn.Module, config, adapter_name: str = "default") -> nn.Module:
    """Add adapter ``adapter_name`` described by ``config`` to ``model`` in place; returns ``model``.

    1. targets: the modules ``config.target_modules`` selects (list of suffixes or one regex, as peft);
    2. every target is validated (its hyper-parameters, finite weights, no other method on it) and
       ``modules_to_save`` is resolved — before anything changes, so a bad argument leaves ``model`` as it was;
    3. targets are wrapped (a layer this method already wraps gets a second adapter);
    4. everything is frozen except the active adapters' tensors and ``modules_to_save``.

    The model stores a copy of ``config`` (``model.peftlab_config[adapter_name]``); ``config`` itself is not changed.
    """
    spec = method_for_config(config)
    if spec.model_level:
        raise TypeError(f"config: {type(config).__name__} is the config of {spec.name!r}, a model-level method that "
                        f"wraps the whole model instead of adding layers, so inject (which adds layers in place) "
                        f"cannot apply it; use peftlab.apply_{spec.name}(model, ...), which returns the wrapper")
    check_adapter_name(adapter_name)
    config = copy.deepcopy(config)  # the model keeps its own copy: binding it to the targets never touches the caller's
    configs = _configs(model)
    if adapter_name in configs:
        raise ValueError(f"model already has an adapter named {adapter_name!r}; pick another adapter_name "
                         f"or delete_adapter(model, {adapter_name!r}) first")
    names = find_targets(model, config.target_modules, allowed=spec.base_types, wrapped=_all_layer_types())
    plan: dict[str, tuple[type[AdapterLayer], dict]] = {}
    bases: dict[str, tuple[nn.Module, type[AdapterLayer]]] = {}
    for name in names:
        mod = model.get_submodule(name)
        if isinstance(mod, AdapterLayer):
            if method_of_layer(mod) is not spec:
                raise ValueError(f"layer {name!r} already carries a {type(mod).__name__} adapter; peftlab does not "
                                 f"mix methods on one layer (merge_and_unload it first)")
            bases[name] = (mod.base_layer, type(mod))
        else:
            bases[name] = (mod, spec.layer_for(mod))
    bind_targets(config, {name: base for name, (base, _) in bases.items()})
    for name, (base, layer_cls) in bases.items():
        hparams = config.layer_hparams(name, base)
        try:
            layer_cls.check(base, **hparams)
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"layer {name!r}: {exc}") from None
        weight = getattr(base, "weight", None)
        if isinstance(weight, torch.Tensor) and not weight.is_meta and weight.is_floating_point() \
                and not torch.isfinite(weight).all():
            raise ValueError(f"the weight of {name!r} contains NaN or Inf; refusing to add an adapter to it")
        plan[name] = (layer_cls, hparams)
    for key in config.modules_to_save:
        if not modules_matching(model, key):
            raise ValueError(f"modules_to_save entry {key!r} matches no module of the model")

    def wrap(name: str, mod: nn.Module) -> nn.Module:
        layer_cls, hparams = plan[name]
        if isinstance(mod, AdapterLayer):
            mod.add_adapter(adapter_name, **hparams)
            return mod
        return layer_cls(mod, adapter_name=adapter_name, **hparams)

    replace_modules(model, names, wrap)
    hook = getattr(config, "bind_model", None)
    if hook is not None:  # model-level state of the adapter (VB-LoRA's shared vector bank)
        hook(model, adapter_name)
    configs[adapter_name] = config
    setattr(model, CONFIG_ATTR, configs)
    _refreeze(model)
    return model


def bind_targets(config, targets: dict[str, nn.Module]) -> None:
    """Show a config all its target (base) layers before ``layer_hparams`` is asked per layer.

    Optional part of the config protocol: a config whose per-layer values depend on the whole set of
    targets (WaveFT's ``proportional_parameters`` shares one budget by layer size) defines
    ``bind_targets(targets)``; for the others this does nothing.
    """
    hook = getattr(config, "bind_targets", None)
    if hook is not None:
        hook(dict(targets))


def _saved_modules(model: nn.Module) -> list[str]:
    keys = sorted({k for cfg in _configs(model).values() for k in getattr(cfg, "modules_to_save", [])})
    return [name for key in keys for name in modules_matching(model, key)]


def _refreeze(model: nn.Module) -> None:
    """Trainable: the active adapters' tensors, shared tensors, and ``modules_to_save``; frozen: the rest."""
    keep: set[int] = set()
    for layer in adapter_layers(model).values():
        for name in layer.active_adapters:
            keep.update(id(p) for p in layer.adapter_parameters(name).values())
    shared = getattr(model, SHARED_ATTR, None)
    if shared is not None:  # a shared tensor an adapter reads follows that adapter; one no layer reads stays trainable
        used = _shared_in_use(model)
        keep.update(id(p) for p in shared.parameters() if id(p) not in used)
    for name in _saved_modules(model):
        keep.update(id(p) for p in model.get_submodule(name).parameters())
    for param in model.parameters():
        param.requires_grad_(id(param) in keep)


def _shared_in_use(model: nn.Module) -> set[int]:
    """ids of the tensors some adapter of some layer reads (its ``adapter_parameters``)."""
    return {id(p) for layer in adapter_layers(model).values() for name in layer.adapter_names
            for p in layer.adapter_parameters(name).values()}


class SharedTensors(nn.ParameterDict):
    """The model-level shared slot (``model.peftlab_shared``): a ``ParameterDict`` that passes its input through
    unchanged when called, because an ``nn.Sequential`` model calls every child in turn, this one included."""

    __call__ = nn.Module.__call__

    def forward(self, input):  # noqa: A002  (nn.Sequential passes one positional input)
        return input


def shared_parameter(model: nn.Module, key: str, create: Callable[[], torch.Tensor]) -> nn.Parameter:
    """The model's one shared tensor named ``key``, created by ``create()`` on first use.

    It is registered once, as ``model.peftlab_shared[key]``, so ``parameters()`` and ``state_dict()`` hold
    it once however many layers use it.
    """
    shared = getattr(model, SHARED_ATTR, None)
    if shared is None:
        shared = SharedTensors()
        model.add_module(SHARED_ATTR, shared)
    if key not in shared:
        shared[key] = nn.Parameter(create())
    return shared[key]


# ---------------------------------------------------------------------- model-level operations
def model_level_method(model: nn.Module) -> MethodSpec | None:
    """The model-level method (prompt or prefix tuning) whose wrapper ``model`` is, or None for any other model."""
    for spec in _REGISTRY.values():
        if spec.wrapper is not None and isinstance(model, spec.wrapper):
            return spec
    return None


def _wrapper_names(model: nn.Module, names: str | Sequence[str], arg: str) -> list[str]:
    """``names`` checked against a wrapper's one adapter (``model.adapter_name``, ``"default"``)."""
    names = [names] if isinstance(names, str) else list(names)
    bad = [n for n in names if n != model.adapter_name]
    if bad or not names:
        raise ValueError(f"{arg}: unknown adapter(s) {bad}; the {type(model).__name__} has one adapter, "
                         f"[{model.adapter_name!r}]")
    return names


def _no_merge(model: nn.Module, spec: MethodSpec, operation: str) -> ValueError:
    return ValueError(f"model: {operation} is not possible on a {type(model).__name__} ({spec.name}): its virtual "
                      f"tokens are inputs, not a weight change, so there is nothing to merge (as in peft, prompt "
                      f"learning cannot be merged); unload(model) returns the base model, and "
                      f"disable_adapter(model) runs it without the virtual tokens")


def _layers_or_raise(model: nn.Module) -> dict[str, AdapterLayer]:
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("model has no adapter layers; add one first (peftlab.apply_lora or peftlab.inject)")
    return layers


def _known(model: nn.Module, layers: dict[str, AdapterLayer]) -> list[str]:
    seen: list[str] = []
    for layer in layers.values():
        seen += [n for n in layer.adapter_names if n not in seen]
    return seen


def _check_names(model: nn.Module, names: str | Sequence[str], arg: str) -> list[str]:
    names = [names] if isinstance(names, str) else list(names)
    layers = _layers_or_raise(model)
    known = _known(model, layers)
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"{arg}: unknown adapter(s) {bad}; the model has {known}")
    return names


def active_adapters(model: nn.Module) -> list[str]:
    """Names active in at least one layer, in first-seen order (a prompt/prefix wrapper: ``["default"]``)."""
    if model_level_method(model) is not None:
        return [model.adapter_name]
    out: list[str] = []
    for layer in adapter_layers(model).values():
        out += [n for n in layer.active_adapters if n not in out]
    return out


def set_adapter(model: nn.Module, names: str | Sequence[str]) -> nn.Module:
    """Activate exactly ``names`` (one or several: their contributions add up) in every layer that has them.

    Only active adapters stay trainable. A merged model is unmerged first (with a warning), as in peft.
    A prompt/prefix wrapper holds one adapter, ``"default"``: setting it changes nothing, any other name is refused.
    """
    if model_level_method(model) is not None:
        _wrapper_names(model, names, "names")
        return model
    names = _check_names(model, names, "names")
    layers = adapter_layers(model)
    if any(layer.merged for layer in layers.values()):
        warnings.warn("the model has merged adapters; unmerging them before switching adapters", stacklevel=2)
        unmerge_adapter(model)
    for layer in layers.values():
        layer.set_adapter([n for n in names if layer.has_adapter(n)])
    _refreeze(model)
    return model


def merge_adapter(model: nn.Module, adapter_names: str | Sequence[str] | None = None,
                  safe_merge: bool = False) -> nn.Module:
    """Fold adapters into the base weights, in place: the active ones, or ``adapter_names``.

    Each layer merges only the adapters it has (a layer without them is left alone) and skips those
    already merged. With ``safe_merge`` a NaN/Inf anywhere stops the merge and undoes what this call merged.
    A prompt/prefix wrapper cannot be merged (``ValueError``).
    """
    spec = model_level_method(model)
    if spec is not None:
        raise _no_merge(model, spec, "merge_adapter")
    layers = _layers_or_raise(model)
    wanted = None if adapter_names is None else _check_names(model, adapter_names, "adapter_names")
    done: list[tuple[AdapterLayer, int]] = []
    try:
        for layer in layers.values():
            pool = layer.active_adapters if wanted is None else wanted
            todo = [n for n in pool if layer.has_adapter(n) and n not in layer.merged_adapters]
            if todo:
                before = len(layer.merged_adapters)
                layer.merge(todo, safe_merge=safe_merge)
                done.append((layer, before))
    except Exception:
        with torch.no_grad():
            for layer, before in reversed(done):
                while len(layer.merged_adapters) > before:
                    layer.unmerge_one(layer.merged_adapters[-1])
                    layer.merged_adapters.pop()
        raise
    return model


def unmerge_adapter(model: nn.Module) -> nn.Module:
    """Undo every merge, in place: each layer subtracts exactly what it merged, newest first. A prompt/prefix
    wrapper is never merged: nothing to undo."""
    if model_level_method(model) is not None:
        return model
    for layer in _layers_or_raise(model).values():
        layer.unmerge()
    return model


def _unwrap(model: nn.Module, merge: bool, safe_merge: bool, adapter_names) -> nn.Module:
    from peftlab.core.targets import get_submodule_parent

    layers = _layers_or_raise(model)
    if merge:
        merge_adapter(model, adapter_names, safe_merge=safe_merge)
    else:
        unmerge_adapter(model)
    for name, layer in layers.items():
        parent, attr = get_submodule_parent(model, name)
        setattr(parent, attr, layer.unloaded_base(merge))
    for attr in (CONFIG_ATTR, SHARED_ATTR):
        if hasattr(model, attr):
            delattr(model, attr)
    return model


def merge_and_unload(model: nn.Module, safe_merge: bool = False,
                     adapter_names: str | Sequence[str] | None = None) -> nn.Module:
    """Merge (the active, or ``adapter_names``) adapters and put the plain base layers back.

    What is left is the original architecture (``nn.Linear`` / ``nn.Embedding``) with merged weights:
    inference costs exactly what the base model costs. ``modules_to_save`` keep their trained values.
    A prompt/prefix wrapper cannot be merged (``ValueError``; :func:`unload` returns its base model).
    """
    spec = model_level_method(model)
    if spec is not None:
        raise _no_merge(model, spec, "merge_and_unload")
    return _unwrap(model, True, safe_merge, adapter_names)


def unload(model: nn.Module) -> nn.Module:
    """Remove every adapter without merging: the base model with its original weights.

    A prompt/prefix wrapper returns the model it wraps (``model.base_model``, its ``modules_to_save`` with their
    trained values); the wrapper itself is left as it was."""
    if model_level_method(model) is not None:
        return model.base_model
    return _unwrap(model, False, False, None)


@contextmanager
def disable_adapter(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block the model computes the base model's output (merged adapters are unmerged first
    and merged again afterwards). A prompt/prefix wrapper runs its base model without the virtual tokens."""
    if model_level_method(model) is not None:
        with model.disable_adapter():
            yield model
        return
    layers = list(_layers_or_raise(model).values())
    remerge = {id(layer): list(layer.merged_adapters) for layer in layers}
    for layer in layers:
        layer.unmerge()
        layer.adapters_enabled = False
    try:
        yield model
    finally:
        for layer in layers:
            layer.adapters_enabled = True
            if remerge[id(layer)]:
                layer.merge(remerge[id(layer)])


def delete_adapter(model: nn.Module, adapter_name: str) -> nn.Module:
    """Remove ``adapter_name`` from every layer and from ``model.peftlab_config``. A merged adapter must be
    unmerged first. Layers left with no adapter keep wrapping their base layer (they compute it unchanged).

    A prompt/prefix wrapper holds exactly one adapter, which cannot be deleted (``ValueError``; :func:`unload`
    returns the base model)."""
    spec = model_level_method(model)
    if spec is not None:
        _wrapper_names(model, adapter_name, "adapter_name")
        raise ValueError(f"adapter_name={adapter_name!r}: a {type(model).__name__} ({spec.name}) holds exactly one "
                         f"adapter, which cannot be deleted; unload(model) returns the base model without it")
    _check_names(model, adapter_name, "adapter_name")
    layers = adapter_layers(model)
    merged = [name for name, layer in layers.items() if adapter_name in layer.merged_adapters]
    if merged:
        raise RuntimeError(f"adapter {adapter_name!r} is merged into {merged[:3]}…; unmerge_adapter(model) first")
    read = {id(p) for layer in layers.values() if layer.has_adapter(adapter_name)
            for p in layer.adapter_parameters(adapter_name).values()}
    for layer in layers.values():
        if layer.has_adapter(adapter_name):
            layer.delete_adapter(adapter_name)
    shared = getattr(model, SHARED_ATTR, None)
    if shared is not None:  # a shared tensor (VB-LoRA's bank) that only the deleted adapter read goes with it
        used = _shared_in_use(model)
        for key in [k for k, p in shared.items() if id(p) in read and id(p) not in used]:
            del shared[key]
    configs = _configs(model)
    configs.pop(adapter_name, None)
    setattr(model, CONFIG_ATTR, configs)
    _refreeze(model)
    return model
