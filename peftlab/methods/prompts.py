r"""Prompt tuning (Lester, Al-Rfou, Constant, 2021, arXiv 2104.08691) and prefix tuning (Li & Liang, 2021,
arXiv 2101.00190): the input-side methods. They add no layer to the model; they add *virtual tokens*.

Notation: a transformer with ``L`` layers, hidden size ``d``, ``H`` attention heads of size ``d_h = d/H``
(``H_kv`` key/value heads under grouped-query attention, ``d_kv = H_kv·d_h``), a batch of ``B`` sequences
of ``n`` tokens, and ``T`` virtual tokens (``num_virtual_tokens``).

**Prompt tuning** learns ``P ∈ R^{T×d}`` (peft's ``prompt_embeddings``) and prepends it to the embedded
input, so the frozen model reads ``T + n`` positions::

    E = word_embeddings(input_ids)                 (B, n, d)
    inputs_embeds = [P; E]                         (B, T + n, d)      P broadcast over the batch
    attention_mask = [1_T; mask]                   (B, T + n)
    labels (causal LM) = [−100 × T; labels]        the virtual positions are never predicted

A causal LM's logits then have ``T + n`` positions (as peft's); a classifier pools over the sequence as
usual (BERT's ``[CLS]`` pooler reads position 0, which is now the first virtual token — peft does the same).
``token_type_ids`` of an encoder get ``T`` zeros in front; explicit ``position_ids`` are dropped with a warning.
Init (peft's ``prompt_tuning_init``): ``"random"`` N(0, 1) (``nn.Embedding``'s), ``"sample_vocab"`` the
embeddings of ``T`` vocabulary rows drawn uniformly, ``"text"`` the embeddings of a tokenised text,
repeated or cut to ``T`` tokens (the paper's class-label / vocabulary init). Trainable: ``T·d``.

**Prefix tuning** learns, for every layer ℓ, a key prefix and a value prefix ``K_ℓ, V_ℓ ∈ R^{T×d_kv}`` that
every real token attends to in addition to the real keys and values::

    head_i(ℓ) = softmax(Q_i [K_ℓ,i ; K_i]ᵀ / √d_h) [V_ℓ,i ; V_i]

All ``2L`` prefixes come out of one matrix ``M ∈ R^{T×2L·d_kv}`` (peft's layout): ``M`` viewed as
``(B, T, 2L, H_kv, d_h)`` and permuted to ``(2L, B, H_kv, T, d_h)``; layer ℓ's key is slice ``2ℓ`` and its
value slice ``2ℓ+1``. They enter the model as a key/value cache (``past_key_values``, a transformers
``DynamicCache``), so real tokens take positions ``T … T+n−1`` and the attention mask gets ``T`` ones in
front. ``M`` is either learned directly (``Embedding(T, 2L·d_kv)``, N(0, 1), or zeros with ``init="zero"``)
or, with ``prefix_projection=True`` (the paper's reparametrisation, which it found trains more stably), made
by an MLP from a smaller table: ``M = tanh(E_p W_1ᵀ + b_1) W_2ᵀ + b_2`` with ``E_p ∈ R^{T×d_kv}``,
``W_1 ∈ R^{h×d_kv}``, ``W_2 ∈ R^{2L·d_kv×h}`` (``h`` = ``encoder_hidden_size``, default ``d_kv``; peft sizes
the table by ``d_kv``, which is ``d`` without grouped-query attention). Trainable: ``T·2L·d_kv`` without
projection; ``T·d_kv + (d_kv·h + h) + (h·2L·d_kv + 2L·d_kv)`` with it (after training only ``M`` is needed).

Both are wrappers (:class:`PromptTuningModel`, :class:`PrefixTuningModel`) around the unchanged model,
which is frozen except ``modules_to_save`` (a classifier head). ``peftlab.save_peft_adapter`` /
``peftlab.load_peft_adapter`` exchange prompt-tuning adapters with peft (``PROMPT_TUNING``) through the
:class:`~peftlab.core.peft_format.WrapperCodec` registered at the bottom of this file (the table as
``prompt_embeddings``, ``T×d``; saved modules as ``base_model.<name>``).

Both are registered (at the bottom of this file) as *model-level* methods under peft's names (``PeftType``
``PROMPT_TUNING`` / ``PREFIX_TUNING``, lower-cased): ``"prompt_tuning"`` and ``"prefix_tuning"``, with their
wrapper class and no layers. So ``peftlab.core.tuner.method_for_config`` knows their configs, and the model-level
operations act on a wrapper: ``peftlab.disable_adapter(wrapper)`` runs the base model without the virtual
tokens, ``peftlab.unload(wrapper)`` returns the base model, and merging is refused (virtual tokens are no
weight change). A wrapper holds one adapter, named ``"default"``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from peftlab.core import argcheck, peft_format
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.peft_format import WrapperCodec
from peftlab.core.recipe import Recipe, head, initial_seed
from peftlab.core.targets import modules_matching
from peftlab.core.tuner import register_method

__all__ = [
    "PrefixTuningConfig",
    "PrefixTuningModel",
    "PromptTuningConfig",
    "PromptTuningModel",
    "apply_prefix_tuning",
    "apply_prompt_tuning",
    "task_type_of",
]

PROMPT_INITS = ("random", "sample_vocab", "text")
PREFIX_INITS = ("random", "zero")
TASK_TYPES = ("CAUSAL_LM", "SEQ_CLS")


def _check_tokens(value) -> int:
    return argcheck.positive_int("num_virtual_tokens", value)


def _check_task(value) -> str | None:
    return value if value is None else argcheck.one_of("task_type", value, TASK_TYPES, note=" or None (from the model)")


def task_type_of(model: nn.Module) -> str:
    """``"CAUSAL_LM"`` or ``"SEQ_CLS"`` from the model's class name (``…ForCausalLM``, ``…ForSequenceClassification``)."""
    name = type(model).__name__
    if name.endswith("ForCausalLM") or name.endswith("LMHeadModel"):
        return "CAUSAL_LM"
    if name.endswith("ForSequenceClassification"):
        return "SEQ_CLS"
    raise ValueError(f"cannot tell the task of a {name}; pass task_type= one of {TASK_TYPES}")


@dataclass
class PromptTuningConfig(AdapterConfig):
    """Prompt tuning (peft's ``PromptTuningConfig`` names in brackets).

    ``num_virtual_tokens`` [same], ``init`` [prompt_tuning_init: "random", "sample_vocab", "text"],
    ``init_text`` [prompt_tuning_init_text] (required for "text"), ``task_type`` ("CAUSAL_LM", "SEQ_CLS" or
    None: from the model), ``modules_to_save`` (e.g. a classifier head).
    """

    num_virtual_tokens: int = 8
    init: str = "random"
    init_text: str | None = None
    task_type: str | None = None
    modules_to_save: list[str] = names_field()

    method = "prompt_tuning"

    def __post_init__(self) -> None:
        _check_tokens(self.num_virtual_tokens)
        argcheck.one_of("init", self.init, PROMPT_INITS)
        if self.init == "text" and (not isinstance(self.init_text, str) or not self.init_text.strip()):
            raise ValueError(f"init='text' needs init_text, a non-empty string; got {self.init_text!r}")
        _check_task(self.task_type)
        super().__post_init__()  # modules_to_save (no target_modules: the wrapper takes the whole model)


@dataclass
class PrefixTuningConfig(AdapterConfig):
    """Prefix tuning (peft's ``PrefixTuningConfig`` names in brackets).

    ``num_virtual_tokens`` [same], ``prefix_projection`` [same] (the reparametrising MLP),
    ``encoder_hidden_size`` [same] (its hidden width h; None: ``d_kv``), ``init`` ("random" N(0, 1), or "zero"
    [init_weights="zero"]: ``M = 0`` at start, the MLP's last layer zeroed with the projection; zero keys and values
    still take a share of the attention, so this is not the base model's output), ``task_type``,
    ``modules_to_save``.
    """

    num_virtual_tokens: int = 8
    prefix_projection: bool = False
    encoder_hidden_size: int | None = None
    init: str = "random"
    task_type: str | None = None
    modules_to_save: list[str] = names_field()

    method = "prefix_tuning"

    def __post_init__(self) -> None:
        _check_tokens(self.num_virtual_tokens)
        argcheck.flag("prefix_projection", self.prefix_projection)
        h = self.encoder_hidden_size
        if h is not None and (isinstance(h, bool) or not isinstance(h, int) or h <= 0):
            raise ValueError(f"encoder_hidden_size={h!r} is not allowed: expected an int ≥ 1 or None")
        argcheck.one_of("init", self.init, PREFIX_INITS)
        _check_task(self.task_type)
        super().__post_init__()  # modules_to_save (no target_modules: the wrapper takes the whole model)


#: the defaults, read by ``apply_prompt_tuning`` and ``apply_prefix_tuning``
_PROMPT = PromptTuningConfig()
_PREFIX = PrefixTuningConfig()


# ---------------------------------------------------------------------- shared wrapper logic
class _VirtualTokenModel(nn.Module):
    """What both wrappers share: the frozen model, the task, ``modules_to_save``, the prefixed mask."""

    def __init__(self, model: nn.Module, config):
        super().__init__()
        task = config.task_type or task_type_of(model)
        saved = [name for key in config.modules_to_save for name in modules_matching(model, key)]
        missing = [key for key in config.modules_to_save if not modules_matching(model, key)]
        if missing:
            raise ValueError(f"modules_to_save entry {missing[0]!r} matches no module of the model")
        self.base_model = model
        self.config = config
        self.task_type = task
        for param in model.parameters():
            param.requires_grad_(False)
        for name in saved:
            for param in model.get_submodule(name).parameters():
                param.requires_grad_(True)

    #: the one adapter a wrapper holds (the name peft gives it, and the only one ``save_peft_adapter`` accepts)
    adapter_name = "default"

    @property
    def num_virtual_tokens(self) -> int:
        return self.config.num_virtual_tokens if self.adapters_enabled else 0

    adapters_enabled = True

    @contextmanager
    def disable_adapter(self):
        """Within the block the wrapper computes the base model (no virtual tokens), as peft's ``disable_adapter``."""
        self.adapters_enabled = False
        try:
            yield self
        finally:
            self.adapters_enabled = True

    def _mask(self, attention_mask: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if attention_mask is None:
            return None
        ones = torch.ones(batch, self.num_virtual_tokens, dtype=attention_mask.dtype, device=attention_mask.device)
        return torch.cat([ones, attention_mask], dim=1)

    @staticmethod
    def _batch(input_ids, inputs_embeds) -> int:
        if input_ids is None and inputs_embeds is None:
            raise ValueError("pass input_ids or inputs_embeds")
        return (input_ids if input_ids is not None else inputs_embeds).shape[0]


def _model_dims(model: nn.Module) -> tuple[int, int, int, int]:
    """``(L, d, H_kv, d_h)`` from a transformers config."""
    cfg = model.config
    d = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    return cfg.num_hidden_layers, d, kv_heads, head_dim


# ---------------------------------------------------------------------- prompt tuning
class PromptTuningModel(_VirtualTokenModel):
    """A frozen transformers model reading ``T`` trainable virtual token embeddings before its input.

    ``prompt_embeddings``: (T, d). ``forward`` takes the model's usual arguments and returns its output
    (a causal LM's logits cover the ``T`` virtual positions too, as peft's). ``with wrapper.disable_adapter():``
    computes the base model.
    """

    def __init__(self, model: nn.Module, config: PromptTuningConfig, tokenizer=None, generator=None):
        if not isinstance(config, PromptTuningConfig):
            raise TypeError(f"config must be a PromptTuningConfig, got {type(config).__name__}")
        if config.init == "text" and tokenizer is None:
            raise ValueError("init='text' needs tokenizer= (to turn init_text into token ids)")
        super().__init__(model, config)
        #: the tokenizer's name (written as peft's ``tokenizer_name_or_path`` when saving a "text" init)
        self.tokenizer_name = getattr(tokenizer, "name_or_path", None) or None
        embed = model.get_input_embeddings()
        T, d = config.num_virtual_tokens, embed.embedding_dim
        if config.init == "random":
            values = torch.randn(T, d, generator=generator)
        else:
            if config.init == "sample_vocab":
                ids = torch.randint(0, embed.num_embeddings, (T,), generator=generator)
            else:
                ids = list(tokenizer(config.init_text)["input_ids"])
                ids = (ids * -(-T // len(ids)))[:T]  # repeat, then cut to T tokens
                ids = torch.tensor(ids, dtype=torch.long)
            values = embed.weight.detach()[ids.to(embed.weight.device)].float().cpu()
        self.prompt_embeddings = nn.Parameter(values.to(embed.weight.device))

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, token_type_ids=None,
                position_ids=None, **kwargs):
        if not self.adapters_enabled:
            return self.base_model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                   labels=labels, token_type_ids=token_type_ids, position_ids=position_ids, **kwargs)
        batch = self._batch(input_ids, inputs_embeds)
        if position_ids is not None:
            warnings.warn("position_ids are ignored with prompt tuning (the virtual tokens shift every position)",
                          stacklevel=2)
        if inputs_embeds is None:
            inputs_embeds = self.base_model.get_input_embeddings()(input_ids)
        T = self.num_virtual_tokens
        prompts = self.prompt_embeddings.to(inputs_embeds.dtype).unsqueeze(0).expand(batch, -1, -1)
        inputs_embeds = torch.cat([prompts, inputs_embeds], dim=1)
        if labels is not None and self.task_type == "CAUSAL_LM":
            labels = torch.cat([torch.full((batch, T), -100, dtype=labels.dtype, device=labels.device), labels], 1)
        if token_type_ids is not None:
            if self.task_type == "SEQ_CLS":
                zeros = torch.zeros(batch, T, dtype=token_type_ids.dtype, device=token_type_ids.device)
                kwargs["token_type_ids"] = torch.cat([zeros, token_type_ids], dim=1)
            else:
                warnings.warn("token_type_ids are ignored with prompt tuning of a causal LM", stacklevel=2)
        return self.base_model(inputs_embeds=inputs_embeds, attention_mask=self._mask(attention_mask, batch),
                               labels=labels, **kwargs)


def apply_prompt_tuning(model: nn.Module, num_virtual_tokens: int = _PROMPT.num_virtual_tokens,
                        init: str = _PROMPT.init, init_text: str | None = _PROMPT.init_text, tokenizer=None,
                        task_type: str | None = _PROMPT.task_type,
                        modules_to_save: Sequence[str] | None = None, seed: int | None = None) -> PromptTuningModel:
    """Wrap ``model`` (frozen) with ``num_virtual_tokens`` trainable prompt embeddings; returns the wrapper.

    ``init``: "random", "sample_vocab" or "text" (with ``init_text`` and ``tokenizer``); ``seed`` fixes the
    random/sampled init. ``modules_to_save``: modules that stay trainable (a classifier head).
    """
    config = PromptTuningConfig(num_virtual_tokens=num_virtual_tokens, init=init, init_text=init_text,
                                task_type=task_type, modules_to_save=list(modules_to_save or []))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return PromptTuningModel(model, config, tokenizer=tokenizer, generator=generator)


# ---------------------------------------------------------------------- prefix tuning
class PrefixEncoder(nn.Module):
    """``M ∈ R^{T×2L·d_kv}``: ``embedding`` directly, or ``transform(embedding)`` with the projection (peft's names)."""

    def __init__(self, T: int, d: int, out: int, projection: bool, hidden: int, init: str, generator=None):
        super().__init__()
        self.projection = projection
        if projection:
            self.embedding = nn.Embedding(T, d)
            self.transform = nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, out))
            if init == "zero":
                with torch.no_grad():
                    self.transform[-1].weight.zero_()
                    self.transform[-1].bias.zero_()
        else:
            self.embedding = nn.Embedding(T, out)
            with torch.no_grad():
                if init == "zero":
                    self.embedding.weight.zero_()
                elif generator is not None:
                    self.embedding.weight.copy_(torch.randn(T, out, generator=generator))

    def forward(self) -> torch.Tensor:
        table = self.embedding.weight
        return self.transform(table) if self.projection else table


class PrefixTuningModel(_VirtualTokenModel):
    """A frozen transformers model whose every attention layer also attends to ``T`` trainable key/value prefixes.

    ``prefix_encoder`` makes ``M`` (T, 2L·d_kv); :meth:`past_key_values` turns it into the cache the model reads.
    """

    def __init__(self, model: nn.Module, config: PrefixTuningConfig, generator=None):
        if not isinstance(config, PrefixTuningConfig):
            raise TypeError(f"config must be a PrefixTuningConfig, got {type(config).__name__}")
        super().__init__(model, config)
        L, d, kv_heads, head_dim = _model_dims(model)
        self.num_layers, self.kv_heads, self.head_dim = L, kv_heads, head_dim
        d_kv = kv_heads * head_dim  # peft's token_dim for prefix tuning: d, or H_kv·d_h under grouped-query attention
        hidden = config.encoder_hidden_size or d_kv
        self._cache_keyword = cache_keyword(model.forward)
        self.prefix_encoder = PrefixEncoder(config.num_virtual_tokens, d_kv, 2 * L * d_kv,
                                            config.prefix_projection, hidden, config.init, generator)

    def prefix_matrix(self) -> torch.Tensor:
        """``M``: (T, 2L·d_kv)."""
        return self.prefix_encoder()

    def past_key_values(self, batch: int):
        """A ``DynamicCache`` holding layer ℓ's key/value prefixes, each (B, H_kv, T, d_h)."""
        from transformers import DynamicCache

        T, L = self.num_virtual_tokens, self.num_layers
        M = self.prefix_matrix()
        dtype = next((p.dtype for p in self.base_model.parameters() if p.is_floating_point()), M.dtype)
        # (T, 2L·d_kv) → (2L, H_kv, T, d_h); the batch is a broadcast view, not B copies (peft copies)
        kv = M.to(dtype).view(T, 2 * L, self.kv_heads, self.head_dim).permute(1, 2, 0, 3)
        cache = DynamicCache()
        for layer in range(L):
            key, value = (kv[2 * layer + i].unsqueeze(0).expand(batch, -1, -1, -1) for i in (0, 1))
            cache.update(key, value, layer)
        return cache

    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, labels=None, position_ids=None,
                **kwargs):
        model = self.base_model
        if not self.adapters_enabled:
            return model(input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                         labels=labels, position_ids=position_ids, **kwargs)
        batch = self._batch(input_ids, inputs_embeds)
        if position_ids is not None:
            position_ids = position_ids + self.num_virtual_tokens
        args = dict(input_ids=input_ids, inputs_embeds=inputs_embeds, attention_mask=self._mask(attention_mask, batch),
                    **kwargs)
        if position_ids is not None:
            args["position_ids"] = position_ids
        if self._cache_keyword is not None:
            return model(labels=labels, **{self._cache_keyword: self.past_key_values(batch)}, **args)
        return self._classify(args, labels, batch)

    def _classify(self, args: dict, labels, batch: int):
        """A classifier whose forward takes no cache (BERT): run its backbone with the cache, then pool and classify
        as the model itself does (peft does the same)."""
        from transformers.modeling_outputs import SequenceClassifierOutput

        model = self.base_model
        backbone = getattr(model, model.base_model_prefix, None)
        keyword = None if backbone is None else cache_keyword(backbone.forward)
        if keyword is None:
            raise TypeError(f"prefix tuning needs a model whose forward (or whose backbone's forward) takes a key/value "
                            f"cache ('cache' or 'past_key_values'); {type(model).__name__} takes neither")
        outputs = backbone(**{keyword: self.past_key_values(batch)}, **args)
        pooled = outputs[1] if len(outputs) > 1 else outputs[0]
        if hasattr(model, "dropout"):
            pooled = model.dropout(pooled)
        head = next((getattr(model, n) for n in ("classifier", "score") if hasattr(model, n)), None)
        if head is None:
            raise TypeError(f"{type(model).__name__} takes no key/value cache and has no 'classifier' or 'score' head "
                            f"to run after its backbone; prefix tuning supports causal LMs and sequence classifiers")
        logits = head(pooled)
        loss = None
        if labels is not None:
            if model.num_labels == 1:
                loss = nn.functional.mse_loss(logits.squeeze(-1), labels.float())
            else:
                loss = nn.functional.cross_entropy(logits.view(-1, model.num_labels), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=logits)


def cache_keyword(forward) -> str | None:
    """The keyword under which ``forward`` takes a key/value cache: ``"cache"`` (transformers ≥ 5.24),
    ``"past_key_values"`` (earlier releases), or ``None`` when it takes none (a classifier such as BERT's)."""
    parameters = inspect.signature(forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def apply_prefix_tuning(model: nn.Module, num_virtual_tokens: int = _PREFIX.num_virtual_tokens,
                        prefix_projection: bool = _PREFIX.prefix_projection,
                        encoder_hidden_size: int | None = _PREFIX.encoder_hidden_size, init: str = _PREFIX.init,
                        task_type: str | None = _PREFIX.task_type,
                        modules_to_save: Sequence[str] | None = None, seed: int | None = None) -> PrefixTuningModel:
    """Wrap ``model`` (frozen) with trainable per-layer key/value prefixes; returns the wrapper."""
    config = PrefixTuningConfig(num_virtual_tokens=num_virtual_tokens, prefix_projection=prefix_projection,
                                encoder_hidden_size=encoder_hidden_size, init=init, task_type=task_type,
                                modules_to_save=list(modules_to_save or []))
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    return PrefixTuningModel(model, config, generator=generator)


# ---------------------------------------------------------------------- prompt tuning in peft's file format
# peft names the prompt table ``prompt_embeddings`` (T·S × d) and the saved modules ``base_model.<name>`` (a prompt
# learning PeftModel wraps the transformers model directly, without a tuner model in between).
_PROMPT_PREFIX = "base_model."
_PROMPT_INITS = {"random": "RANDOM", "sample_vocab": "SAMPLE_VOCAB", "text": "TEXT"}


def _save_prompt_tuning(model: PromptTuningModel, folder: Path, adapter_name: str, base_model_name_or_path,
                        task_type) -> Path:
    if adapter_name != "default":
        raise ValueError(f"adapter_name={adapter_name!r}: a PromptTuningModel holds one prompt, named 'default'")
    base = model.base_model
    config = model.config
    tensors = {"prompt_embeddings": model.prompt_embeddings.detach()}
    saved = [name for key in config.modules_to_save for name in modules_matching(base, key)]
    for name in saved:
        for pname, param in base.get_submodule(name).named_parameters():
            tensors[f"{_PROMPT_PREFIX}{name}.{pname}"] = param.detach()
    cfg = base.config
    init = _PROMPT_INITS[config.init]
    if init == "TEXT" and not model.tokenizer_name:
        init = "RANDOM"  # peft refuses TEXT without a tokenizer name; the init does not matter to a loaded adapter
    peft_config = {
        "peft_type": "PROMPT_TUNING", "task_type": task_type or model.task_type,
        "base_model_name_or_path": base_model_name_or_path,
        "num_virtual_tokens": config.num_virtual_tokens, "token_dim": model.prompt_embeddings.shape[1],
        "num_transformer_submodules": 1, "num_attention_heads": cfg.num_attention_heads,
        "num_layers": cfg.num_hidden_layers, "prompt_tuning_init": init,
        "prompt_tuning_init_text": config.init_text if init == "TEXT" else None, "tokenizer_name_or_path": model.tokenizer_name,
        "modules_to_save": list(config.modules_to_save) or None, "inference_mode": True,
    }
    tensors = {k: v.contiguous().cpu().clone() for k, v in tensors.items()}
    return peft_format.write_files(folder, tensors, peft_config)


def _load_prompt_tuning(model: nn.Module, folder: Path, cfg: dict, adapter_name: str) -> PromptTuningModel:
    """A peft PROMPT_TUNING folder as a :class:`PromptTuningModel` around ``model``; validated before anything changes."""
    where_cfg, where = str(folder / peft_format.CONFIG_NAME), str(folder / peft_format.WEIGHTS_NAME)
    if adapter_name != "default":
        raise ValueError(f"adapter_name={adapter_name!r}: a PromptTuningModel holds one prompt, named 'default'")
    submodules = cfg.get("num_transformer_submodules") or 1
    if submodules != 1:
        raise ValueError(f"{where_cfg}: num_transformer_submodules={submodules} (encoder-decoder models) is not "
                         "implemented in peftlab; it reads decoder-only and encoder-only models (1)")
    task = cfg.get("task_type")
    if task not in (None, "CAUSAL_LM", "SEQ_CLS"):
        raise ValueError(f"{where_cfg}: task_type={task!r} is not implemented in peftlab; it reads CAUSAL_LM and SEQ_CLS")
    T = cfg.get("num_virtual_tokens")
    if isinstance(T, bool) or not isinstance(T, int) or T <= 0:
        raise ValueError(f"{where_cfg}: num_virtual_tokens={T!r}; expected an int ≥ 1")
    state = peft_format.read_tensors(folder)
    if "prompt_embeddings" not in state:
        raise ValueError(f"{where}: tensor prompt_embeddings is missing")
    table = state.pop("prompt_embeddings")
    d = model.get_input_embeddings().embedding_dim
    if tuple(table.shape) != (T, d) or not table.is_floating_point() or not torch.isfinite(table).all():
        raise ValueError(f"{where}: tensor prompt_embeddings has shape {tuple(table.shape)}; the model needs a finite "
                         f"({T}, {d}) table (num_virtual_tokens × the model's embedding size)")
    params = dict(model.named_parameters())
    others = {}
    for key, value in state.items():
        name = key[len(_PROMPT_PREFIX):] if key.startswith(_PROMPT_PREFIX) else key
        if name not in params:
            raise ValueError(f"{where}: tensor {key} matches no parameter of the model")
        if tuple(params[name].shape) != tuple(value.shape):
            raise ValueError(f"{where}: tensor {key} has shape {tuple(value.shape)}, the model's parameter has "
                             f"{tuple(params[name].shape)}")
        others[name] = value
    saved = sorted({k for k in (cfg.get("modules_to_save") or []) if modules_matching(model, k)})
    config = PromptTuningConfig(num_virtual_tokens=T, task_type=task, modules_to_save=saved)
    wrapper = PromptTuningModel(model, config)
    with torch.no_grad():
        wrapper.prompt_embeddings.copy_(table)
        for name, value in others.items():
            params[name].copy_(value)
    return wrapper


# ---------------------------------------------------------------------- registry and comparison recipes
def _compare_prompt_tuning(model: nn.Module, task: str) -> PromptTuningModel:
    """``peftlab compare``: 16 virtual tokens initialised from vocabulary rows drawn with the cell's seed."""
    return apply_prompt_tuning(model, num_virtual_tokens=16, init="sample_vocab", modules_to_save=head(task),
                               seed=int(initial_seed()))


def _compare_prefix_tuning(model: nn.Module, task: str) -> PrefixTuningModel:
    """``peftlab compare``: 16 key/value prefixes per layer, N(0, 1) from the cell's seed, no projection."""
    return apply_prefix_tuning(model, num_virtual_tokens=16, modules_to_save=head(task), seed=int(initial_seed()))


# model-level methods: no layers, no contract-test examples (tests/methods/test_prompts.py checks them), not mergeable
register_method("prompt_tuning", PromptTuningConfig, (), mergeable=False, wrapper=PromptTuningModel,
                recipe=Recipe("prompt tuning: 16 virtual tokens, vocabulary-sampled init", _compare_prompt_tuning))
peft_format.register_wrapper_codec(WrapperCodec("prompt_tuning", "PROMPT_TUNING", PromptTuningModel,
                                                save=_save_prompt_tuning, load=_load_prompt_tuning))
register_method("prefix_tuning", PrefixTuningConfig, (), mergeable=False, wrapper=PrefixTuningModel,
                recipe=Recipe("prefix tuning: 16 key/value prefixes per layer", _compare_prefix_tuning))
