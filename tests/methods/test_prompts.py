"""Prompt tuning and prefix tuning: parity with peft's ``PromptTuningConfig`` / ``PrefixTuningConfig`` (logits,
loss, gradients) on a tiny Llama (CAUSAL_LM, grouped-query attention) and a tiny BERT (SEQ_CLS), the init modes,
interop of prompt-tuning files both ways on the course's tiny models, closed-form counts, bad input.

Recipe: the same base twice; peft's prompt/prefix tensors copied into peftlab's wrapper; compared in fp32.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import skip_if_peft_fails, tiny_bert, tiny_llama
from peft import PeftModel, PromptTuningInit, TaskType, get_peft_model
from peft import PrefixTuningConfig as PeftPrefixConfig
from peft import PromptTuningConfig as PeftPromptConfig

import peftlab
from peftlab.core.interop import CONFIG_NAME, WEIGHTS_NAME
from peftlab.methods.prompts import (
    PrefixTuningConfig,
    PrefixTuningModel,
    PromptTuningConfig,
    PromptTuningModel,
    apply_prefix_tuning,
    apply_prompt_tuning,
    cache_keyword,
)

ATOL = 1e-5


MODELS = {"llama": (tiny_llama, "CAUSAL_LM"), "bert": (tiny_bert, "SEQ_CLS")}


def _batch(kind: str):
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (2, 7), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    labels = ids.clone() if kind == "llama" else torch.tensor([0, 1])
    return ids, mask, labels


def _grad_close(mine: torch.Tensor, theirs: torch.Tensor) -> None:
    assert mine is not None and theirs is not None and theirs.abs().sum() > 0
    scale = max(1.0, theirs.abs().max().item())
    assert (mine - theirs).abs().max().item() <= ATOL * scale


def _compare(ours, theirs, kind: str, pairs):
    """Logits and loss (with and without a padding mask), then the gradients of each (our tensor, peft's) pair."""
    ids, mask, labels = _batch(kind)
    for m in (None, mask):
        a, b = ours(input_ids=ids, attention_mask=m), theirs(input_ids=ids, attention_mask=m)
        assert a.logits.shape == b.logits.shape
        assert (a.logits - b.logits).abs().max().item() <= ATOL
    a = ours(input_ids=ids, attention_mask=mask, labels=labels)
    b = theirs(input_ids=ids, attention_mask=mask, labels=labels)
    assert abs(a.loss.item() - b.loss.item()) <= ATOL
    a.loss.backward()
    b.loss.backward()
    for mine, peft_tensor in pairs:
        _grad_close(mine.grad, peft_tensor.grad)


# --------------------------------------------------------------------------- prompt tuning
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_prompt_tuning_matches_peft(kind):
    build, task = MODELS[kind]
    base = build()
    theirs = get_peft_model(copy.deepcopy(base), PeftPromptConfig(task_type=task, num_virtual_tokens=4))
    ours = apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=4)
    table = theirs.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        ours.prompt_embeddings.copy_(table)
    _compare(ours, theirs, kind, [(ours.prompt_embeddings, table)])
    if kind == "llama":  # a causal LM's logits cover the virtual positions too
        assert ours(input_ids=_batch(kind)[0]).logits.shape[1] == 4 + 7
    assert peftlab.count_parameters(ours).trainable == 4 * 32  # T·d


def test_prompt_is_the_manual_concatenation():
    base = tiny_llama()
    ours = apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=3, seed=0)
    ids = _batch("llama")[0]
    embeds = torch.cat([ours.prompt_embeddings.unsqueeze(0).expand(2, -1, -1), base.model.embed_tokens(ids)], 1)
    assert torch.equal(ours(input_ids=ids).logits, base(inputs_embeds=embeds).logits)


def test_token_type_ids_are_prefixed_for_an_encoder():
    base = tiny_bert()
    theirs = get_peft_model(copy.deepcopy(base), PeftPromptConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
    ours = apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=3)
    with torch.no_grad():
        ours.prompt_embeddings.copy_(theirs.prompt_encoder["default"].embedding.weight)
    ids = _batch("bert")[0]
    types = torch.zeros_like(ids)
    types[:, 4:] = 1
    assert torch.allclose(ours(input_ids=ids, token_type_ids=types).logits,
                          theirs(input_ids=ids, token_type_ids=types).logits, atol=ATOL)


def test_init_modes():
    from peftlab.models import load_causal_lm, load_tokenizer, model_path

    base = tiny_llama()
    table = base.model.embed_tokens.weight
    sampled = apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=5, init="sample_vocab", seed=0)
    assert all(any(torch.equal(row, t) for t in table) for row in sampled.prompt_embeddings)
    random = apply_prompt_tuning(copy.deepcopy(base), num_virtual_tokens=64, seed=0)
    assert abs(random.prompt_embeddings.std().item() - 1.0) < 0.1  # nn.Embedding's N(0, 1)
    # "text": the tokenised text, repeated to T tokens: equal to peft's TEXT init on the course's tiny LM
    lm, tok = load_causal_lm(), load_tokenizer("causal_lm")
    text = "the movie was"
    n = len(tok(text)["input_ids"])
    ours = apply_prompt_tuning(copy.deepcopy(lm), num_virtual_tokens=n + 2, init="text", init_text=text, tokenizer=tok)
    theirs = get_peft_model(copy.deepcopy(lm), PeftPromptConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=n + 2, prompt_tuning_init=PromptTuningInit.TEXT,
        prompt_tuning_init_text=text, tokenizer_name_or_path=model_path("causal_lm")))
    assert torch.equal(ours.prompt_embeddings, theirs.prompt_encoder["default"].embedding.weight)
    ids = tok(text)["input_ids"]
    assert torch.equal(ours.prompt_embeddings[n:], lm.get_input_embeddings().weight[ids[:2]])  # wraps around


def _course(task: str):
    from peftlab.models import load_causal_lm, load_encoder_classifier

    if task == "SEQ_CLS":
        return load_encoder_classifier(num_labels=2, pretrained=True).eval()
    return load_causal_lm().eval()


@pytest.mark.parametrize("task", ["SEQ_CLS", "CAUSAL_LM"])
def test_prompt_tuning_files_both_ways(task, tmp_path):
    base = _course(task)
    ids = torch.randint(5, 200, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[0, -4:] = 0
    theirs = get_peft_model(copy.deepcopy(base), PeftPromptConfig(task_type=getattr(TaskType, task),
                                                                  num_virtual_tokens=5))
    with torch.no_grad():  # a trained head, so the saved classifier matters
        for n, p in theirs.named_parameters():
            if "classifier" in n and p.requires_grad:
                p.add_(0.5)
    theirs.eval().save_pretrained(tmp_path / "peft")
    expected = theirs(input_ids=ids, attention_mask=mask).logits
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft")
    assert isinstance(ours, PromptTuningModel)
    assert (ours(input_ids=ids, attention_mask=mask).logits - expected).abs().max().item() <= 1e-4
    assert peftlab.count_parameters(ours).trainable == theirs.get_nb_trainable_parameters()[0]
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    cfg = json.loads((tmp_path / "ours" / CONFIG_NAME).read_text())
    assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["task_type"] == task
    again = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert (again(input_ids=ids, attention_mask=mask).logits - expected).abs().max().item() <= 1e-4


def test_text_init_saves_and_loads_in_peft(tmp_path):
    from peftlab.models import load_causal_lm, load_tokenizer

    lm, tok = load_causal_lm(), load_tokenizer("causal_lm")
    ours = apply_prompt_tuning(copy.deepcopy(lm), num_virtual_tokens=4, init="text", init_text="great film",
                               tokenizer=tok)
    peftlab.save_peft_adapter(ours, tmp_path)
    ids = torch.randint(5, 200, (1, 6), generator=torch.Generator().manual_seed(0))
    again = PeftModel.from_pretrained(copy.deepcopy(lm), tmp_path).eval()
    assert torch.allclose(again(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5)


def test_bad_prompt_files_change_nothing(tmp_path):
    base = tiny_bert()
    theirs = get_peft_model(copy.deepcopy(base), PeftPromptConfig(task_type="SEQ_CLS", num_virtual_tokens=3))
    theirs.save_pretrained(tmp_path)
    cfg_path = tmp_path / CONFIG_NAME
    good = json.loads(cfg_path.read_text())
    for edit, words in (({"num_virtual_tokens": 4}, "prompt_embeddings has shape"),
                        ({"num_transformer_submodules": 2}, "num_transformer_submodules"),
                        ({"task_type": "SEQ_2_SEQ_LM"}, "task_type")):
        cfg_path.write_text(json.dumps({**good, **edit}))
        model = copy.deepcopy(base)
        flags = [p.requires_grad for p in model.parameters()]
        with pytest.raises(ValueError, match=words):
            peftlab.load_peft_adapter(model, tmp_path)
        assert flags == [p.requires_grad for p in model.parameters()]
    assert (tmp_path / WEIGHTS_NAME).is_file()


# --------------------------------------------------------------------------- prefix tuning
@pytest.mark.parametrize("projection", [False, True])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_prefix_tuning_matches_peft(kind, projection):
    build, task = MODELS[kind]
    base = build()
    with skip_if_peft_fails():  # peft's own prefix tuning must run on the installed transformers
        theirs = get_peft_model(copy.deepcopy(base), PeftPrefixConfig(
            task_type=task, num_virtual_tokens=3, prefix_projection=projection, encoder_hidden_size=16))
        theirs(input_ids=_batch(kind)[0])
    ours = apply_prefix_tuning(copy.deepcopy(base), num_virtual_tokens=3, prefix_projection=projection,
                               encoder_hidden_size=16)
    peft_encoder = theirs.prompt_encoder["default"]
    ours.prefix_encoder.load_state_dict(peft_encoder.state_dict())
    pairs = [(p, dict(peft_encoder.named_parameters())[n]) for n, p in ours.prefix_encoder.named_parameters()]
    _compare(ours, theirs, kind, pairs)
    # the closed form: L = 2 layers, d_kv = H_kv·d_h (16 under the Llama's grouped-query attention, 32 for BERT)
    T, L, h = 3, 2, 16
    d_kv = 16 if kind == "llama" else 32
    expected = T * d_kv + (d_kv * h + h) + (h * 2 * L * d_kv + 2 * L * d_kv) if projection else T * 2 * L * d_kv
    assert peftlab.count_parameters(ours).trainable == expected
    classifier = sum(p.numel() for n, p in theirs.named_parameters() if p.requires_grad and "classifier" in n)
    assert expected == theirs.get_nb_trainable_parameters()[0] - classifier


def test_prefix_is_the_hand_built_cache():
    """Layer ℓ's keys/values are slices 2ℓ, 2ℓ+1 of M viewed as (B, T, 2L, H_kv, d_h); real tokens sit at T…T+n−1."""
    from transformers import DynamicCache

    base = tiny_llama()
    ours = apply_prefix_tuning(copy.deepcopy(base), num_virtual_tokens=3, seed=0)
    ids = _batch("llama")[0]
    M = ours.prefix_encoder.embedding.weight.detach()
    kv = M.view(3, 4, 2, 8).unsqueeze(0).expand(2, -1, -1, -1, -1)  # (B, T, 2L, H_kv, d_h)
    cache = DynamicCache()
    for layer in range(2):
        cache.update(kv[:, :, 2 * layer].transpose(1, 2), kv[:, :, 2 * layer + 1].transpose(1, 2), layer)
    expected = base(input_ids=ids, **{cache_keyword(base.forward): cache},
                    position_ids=torch.arange(3, 10).expand(2, -1)).logits
    assert torch.allclose(ours(input_ids=ids).logits, expected, atol=1e-6)


def test_prefix_zero_init_zeroes_the_prefix():
    base = tiny_llama()
    for projection in (False, True):
        ours = apply_prefix_tuning(copy.deepcopy(base), num_virtual_tokens=2, prefix_projection=projection,
                                   init="zero")
        assert torch.equal(ours.prefix_matrix(), torch.zeros(2, 2 * 2 * 16))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("config_cls", [PromptTuningConfig, PrefixTuningConfig])
@pytest.mark.parametrize("value, exc", [(0, ValueError), (-3, ValueError), (2.0, TypeError), (True, TypeError)])
def test_num_virtual_tokens_must_be_positive(config_cls, value, exc):
    with pytest.raises(exc, match="num_virtual_tokens"):
        config_cls(num_virtual_tokens=value)


@pytest.mark.parametrize("make, words", [
    (lambda: PromptTuningConfig(init="vocab"), "init"),
    (lambda: PromptTuningConfig(init="text"), "init_text"),
    (lambda: PromptTuningConfig(task_type="SEQ_2_SEQ_LM"), "task_type"),
    (lambda: PrefixTuningConfig(encoder_hidden_size=0), "encoder_hidden_size"),
    (lambda: PrefixTuningConfig(init="ones"), "init"),
])
def test_bad_fields(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_bad_wrapping_changes_nothing():
    model = tiny_bert()
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(ValueError, match="modules_to_save"):
        apply_prompt_tuning(model, num_virtual_tokens=2, modules_to_save=["no_such_head"])
    with pytest.raises(ValueError, match="tokenizer"):
        apply_prompt_tuning(model, num_virtual_tokens=2, init="text", init_text="hi")
    with pytest.raises(TypeError, match="PrefixTuningConfig"):
        PrefixTuningModel(model, PromptTuningConfig())
    assert flags == [p.requires_grad for p in model.parameters()]


def test_disable_adapter_gives_the_base_model():
    for kind, apply in (("llama", apply_prompt_tuning), ("bert", apply_prefix_tuning)):
        build, _ = MODELS[kind]
        base = build()
        ours = apply(copy.deepcopy(base), num_virtual_tokens=3, seed=0)
        ids, mask, _ = _batch(kind)
        with ours.disable_adapter():
            assert torch.equal(ours(input_ids=ids, attention_mask=mask).logits,
                               base(input_ids=ids, attention_mask=mask).logits)
        assert ours(input_ids=ids, attention_mask=mask).logits.shape[1] == (10 if kind == "llama" else 2)


# ---------------------------------------------------------------------- the registry and the model-level operations
WRAPPERS = {"prompt_tuning": ("llama", apply_prompt_tuning, PromptTuningModel, PromptTuningConfig),
            "prefix_tuning": ("bert", apply_prefix_tuning, PrefixTuningModel, PrefixTuningConfig)}


def _wrapped(name: str):
    kind, apply, _, _ = WRAPPERS[name]
    base = MODELS[kind][0]()
    return base, apply(copy.deepcopy(base), num_virtual_tokens=3, seed=0), kind


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_registered_as_a_model_level_method_under_peft_names(name):
    from peft import PeftType

    from peftlab.core.tuner import get_method, method_for_config, model_level_method, registry

    _, _, wrapper_cls, config_cls = WRAPPERS[name]
    spec = get_method(name)
    assert name in registry() and spec.model_level and spec.layers == () and not spec.mergeable
    assert spec.wrapper is wrapper_cls and spec.config_cls is config_cls and config_cls.method == name
    assert PeftType(name.upper()).value.lower() == name  # peft's PROMPT_TUNING / PREFIX_TUNING
    assert method_for_config(config_cls()) is spec
    _, wrapper, _ = _wrapped(name)
    assert model_level_method(wrapper) is spec and model_level_method(wrapper.base_model) is None
    with pytest.raises(TypeError, match=rf"model-level method.*peftlab\.apply_{name}\(model"):
        peftlab.inject(tiny_bert(), config_cls())


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_peftlab_disable_adapter_runs_the_base_model(name):
    base, wrapper, kind = _wrapped(name)
    ids, mask, _ = _batch(kind)
    with_tokens = wrapper(input_ids=ids, attention_mask=mask).logits
    with peftlab.disable_adapter(wrapper) as inside:
        assert inside is wrapper
        assert torch.equal(wrapper(input_ids=ids, attention_mask=mask).logits,
                           base(input_ids=ids, attention_mask=mask).logits)
    assert torch.equal(wrapper(input_ids=ids, attention_mask=mask).logits, with_tokens)  # the tokens are back
    with pytest.raises(RuntimeError, match="inside"), peftlab.disable_adapter(wrapper):
        raise RuntimeError("inside")
    assert wrapper.adapters_enabled  # back on after an error in the block too


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_active_and_set_adapter_know_the_one_adapter(name):
    _, wrapper, _ = _wrapped(name)
    flags = [p.requires_grad for p in wrapper.parameters()]
    assert peftlab.active_adapters(wrapper) == ["default"]
    assert peftlab.set_adapter(wrapper, "default") is wrapper and peftlab.set_adapter(wrapper, ["default"]) is wrapper
    with pytest.raises(ValueError, match=r"names: unknown adapter\(s\) \['other'\]; .* has one adapter, \['default'\]"):
        peftlab.set_adapter(wrapper, ["default", "other"])
    assert flags == [p.requires_grad for p in wrapper.parameters()]


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_merging_and_deleting_are_refused_and_unload_returns_the_base(name):
    base, wrapper, kind = _wrapped(name)
    state = {k: v.clone() for k, v in wrapper.state_dict().items()}
    for op in (peftlab.merge_adapter, peftlab.merge_and_unload):
        with pytest.raises(ValueError, match=rf"model: {op.__name__} is not possible on a {type(wrapper).__name__} "
                                             rf"\({name}\).*cannot be merged.*unload\(model\) returns the base model"):
            op(wrapper)
    with pytest.raises(ValueError, match=r"adapter_name='default': .* holds exactly one adapter, which cannot be "
                                         r"deleted; unload\(model\)"):
        peftlab.delete_adapter(wrapper, "default")
    with pytest.raises(ValueError, match=r"adapter_name: unknown adapter\(s\) \['x'\]"):
        peftlab.delete_adapter(wrapper, "x")
    assert peftlab.unmerge_adapter(wrapper) is wrapper  # never merged: nothing to undo
    assert all(torch.equal(v, state[k]) for k, v in wrapper.state_dict().items())  # the refusals changed nothing
    plain = peftlab.unload(wrapper)
    assert plain is wrapper.base_model and not isinstance(plain, type(wrapper))
    ids, mask, _ = _batch(kind)
    assert torch.equal(plain(input_ids=ids, attention_mask=mask).logits, base(input_ids=ids, attention_mask=mask).logits)
