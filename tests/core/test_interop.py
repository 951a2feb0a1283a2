"""peft's adapter format, both ways: peft → peftlab and peftlab → peft, outputs identical."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from helpers import mlp, randomize_lora, tiny_bert
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

import peftlab
from peftlab.core.interop import CONFIG_NAME, WEIGHTS_NAME
from peftlab.methods.lora import lora_layers

IDS = torch.randint(0, 64, (2, 7), generator=torch.Generator().manual_seed(0))


def _peft_adapter(tmp_path, use_rslora=False, task_type="SEQ_CLS"):
    base = tiny_bert()
    cfg = LoraConfig(task_type=task_type, r=4, lora_alpha=8, target_modules=["query", "value"], use_rslora=use_rslora)
    theirs = get_peft_model(copy.deepcopy(base), cfg)
    randomize_lora(theirs)
    with torch.no_grad():  # the new classification head is trained too: make it differ from base
        for n, p in theirs.named_parameters():
            if "modules_to_save" in n:
                p.add_(0.5)
    theirs.save_pretrained(tmp_path / "peft")
    return base, theirs.eval()


@pytest.mark.parametrize("use_rslora", [False, True])
def test_peft_to_peftlab(tmp_path, use_rslora):
    base, theirs = _peft_adapter(tmp_path, use_rslora)
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    assert len(lora_layers(ours)) == 4
    assert torch.allclose(ours(input_ids=IDS).logits, theirs(input_ids=IDS).logits, atol=1e-5)
    assert ours.peftlab_config["default"].use_rslora == use_rslora
    assert sorted(ours.peftlab_config["default"].modules_to_save) == ["classifier"]


@pytest.mark.parametrize("use_rslora", [False, True])
def test_peftlab_to_peft(tmp_path, use_rslora):
    base = tiny_bert()
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=["query", "value"],
                              use_rslora=use_rslora, modules_to_save=["classifier"])
    randomize_lora(ours)
    with torch.no_grad():
        ours.classifier.weight.add_(0.5)
    peftlab.save_peft_adapter(ours, tmp_path / "ours", base_model_name_or_path="tiny-bert")
    theirs = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.allclose(theirs(input_ids=IDS).logits, ours.eval()(input_ids=IDS).logits, atol=1e-5)
    # and the file round-trips into peftlab again
    again = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.equal(again(input_ids=IDS).logits, ours(input_ids=IDS).logits)


def test_saved_files_are_safetensors_and_json(tmp_path):
    ours = peftlab.apply_lora(mlp(), r=2, alpha=4, target_modules=["0"])
    folder = peftlab.save_peft_adapter(ours, tmp_path / "a")
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    cfg = json.loads((folder / CONFIG_NAME).read_text())
    assert cfg["peft_type"] == "LORA" and cfg["r"] == 2 and cfg["lora_alpha"] == 4.0
    assert sorted(load_file(folder / WEIGHTS_NAME)) == ["base_model.model.0.lora_A.weight", "base_model.model.0.lora_B.weight"]


def _assert_untouched(model, before):
    assert not lora_layers(model) and not hasattr(model, "peftlab_config")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_shape_mismatch_names_the_tensor(tmp_path):
    _, _ = _peft_adapter(tmp_path)
    other = tiny_bert()
    other.bert.encoder.layer[1].attention.self.value = torch.nn.Linear(32, 16)  # different shape
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match=r"layer\.1\.attention\.self\.value\.lora_B\.weight has shape"):
        peftlab.load_peft_adapter(other, tmp_path / "peft")
    _assert_untouched(other, before)


def test_wrong_base_model(tmp_path):
    _peft_adapter(tmp_path)
    model = mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="which the model does not have"):
        peftlab.load_peft_adapter(model, tmp_path / "peft")
    _assert_untouched(model, before)


def test_corrupt_safetensors(tmp_path):
    _peft_adapter(tmp_path)
    path = tmp_path / "peft" / WEIGHTS_NAME
    path.write_bytes(path.read_bytes()[:100])
    model = tiny_bert()
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        peftlab.load_peft_adapter(model, tmp_path / "peft")
    assert not lora_layers(model)


def test_missing_half_of_a_pair(tmp_path):
    _peft_adapter(tmp_path)
    path = tmp_path / "peft" / WEIGHTS_NAME
    tensors = load_file(path)
    del tensors["base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight"]
    save_file(tensors, path)
    with pytest.raises(ValueError, match=r"query\.lora_B\.weight is missing"):
        peftlab.load_peft_adapter(tiny_bert(), tmp_path / "peft")


@pytest.mark.parametrize("edit, words", [
    ({"peft_type": "LOHA"}, "peft_type='LOHA'"),  # IA3 is supported now (Week 00)
    ({"bias": "all"}, "bias='all'"),
    ({"fan_in_fan_out": True}, "fan_in_fan_out"),
])
def test_unsupported_configs(tmp_path, edit, words):
    _peft_adapter(tmp_path)
    path = tmp_path / "peft" / CONFIG_NAME
    cfg = json.loads(path.read_text())
    cfg.update(edit)
    path.write_text(json.dumps(cfg))
    model = tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=words) as info:
        peftlab.load_peft_adapter(model, tmp_path / "peft")
    assert CONFIG_NAME in str(info.value)
    _assert_untouched(model, before)


def test_unknown_peft_type_lists_supported(tmp_path):
    _peft_adapter(tmp_path)
    path = tmp_path / "peft" / CONFIG_NAME
    path.write_text(json.dumps({**json.loads(path.read_text()), "peft_type": "BOFT"}))
    with pytest.raises(ValueError, match=r"supported: LORA"):
        peftlab.load_peft_adapter(tiny_bert(), tmp_path / "peft")


def test_codec_registry_refuses_a_second_codec_and_keeps_interop_names():
    from peftlab.core import interop, peft_format
    from peftlab.methods.qlora import QLoRALinear

    assert interop.codecs() == peft_format.codecs() and interop.Codec is peft_format.Codec
    assert (interop.CONFIG_NAME, interop.WEIGHTS_NAME, interop.PREFIX) == (
        "adapter_config.json", "adapter_model.safetensors", "base_model.model.")
    before = peft_format.codecs()
    with pytest.raises(ValueError, match="a peft codec for method 'lora' is already registered"):
        peft_format.register_codec(before["lora"])
    with pytest.raises(ValueError, match="a peft codec for method 'qlora' is already registered"):
        peft_format.register_same_file("qlora", "lora", {}, claims=lambda *a: None)
    with pytest.raises(ValueError, match="codec='boft': no peft codec of that name is registered"):
        peft_format.register_same_file("newq", "boft", {}, claims=lambda *a: None)
    with pytest.raises(ValueError, match=r"tensor_keys: layer class\(es\) \['QLoRALinear'\] already have"):
        peft_format.register_same_file("newq", "lora", {QLoRALinear: {}}, claims=lambda *a: None)
    with pytest.raises(TypeError, match="codec must be a Codec"):
        peft_format.register_codec({"method": "x"})
    prompt = peft_format.wrapper_codec_for_file({"peft_type": "PROMPT_TUNING"})
    with pytest.raises(ValueError, match="a peft codec for method 'prompt_tuning' is already registered"):
        peft_format.register_wrapper_codec(prompt)
    with pytest.raises(ValueError, match="a peft codec for method 'lora' is already registered"):
        peft_format.register_wrapper_codec(peft_format.WrapperCodec("lora", "X", torch.nn.Module, print, print))
    with pytest.raises(TypeError, match="codec must be a WrapperCodec"):
        peft_format.register_wrapper_codec(before["lora"])
    assert peft_format.wrapper_codec_for_model(tiny_bert()) is None
    assert peft_format.wrapper_codec_for_file({"peft_type": "PREFIX_TUNING"}) is None
    assert peft_format.supported()[-1] == "PROMPT_TUNING"
    assert peft_format.codecs() == before and peft_format.codec_for_method("qlora") is before["lora"]
    assert [s.method for s in peft_format.same_file_methods("lora")] == ["qlora"]


def test_rank_and_alpha_pattern_both_ways(tmp_path):
    """Per-layer ranks (QR-Adaptor's output) travel through peft's rank_pattern / alpha_pattern."""
    base = tiny_bert()
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                     rank_pattern={"layer.0.attention.self.value": 2, "query": 6}, alpha_pattern={"value": 3})
    theirs = get_peft_model(copy.deepcopy(base), cfg)
    randomize_lora(theirs)
    theirs.save_pretrained(tmp_path / "peft")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    layers = lora_layers(ours)
    assert layers["bert.encoder.layer.0.attention.self.value"].r["default"] == 2
    assert layers["bert.encoder.layer.1.attention.self.value"].r["default"] == 4
    assert layers["bert.encoder.layer.1.attention.self.query"].r["default"] == 6
    assert layers["bert.encoder.layer.1.attention.self.value"].scaling["default"] == 3 / 4
    assert torch.allclose(ours(input_ids=IDS).logits, theirs.eval()(input_ids=IDS).logits, atol=1e-5)
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    back = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.allclose(back(input_ids=IDS).logits, ours(input_ids=IDS).logits, atol=1e-5)


def test_embedding_target_with_dropout_loads(tmp_path):
    """Regression: peft accepts lora_dropout with an embedding target (and applies none there)."""
    base = tiny_bert()
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["word_embeddings", "query"], lora_dropout=0.1)
    theirs = get_peft_model(copy.deepcopy(base), cfg)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_embedding_A" in name or "lora_B" in name:
                p.normal_(std=0.1)
    theirs.save_pretrained(tmp_path / "peft")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    assert ours.peftlab_config["default"].dropout == 0.1
    assert torch.allclose(ours(input_ids=IDS).logits, theirs.eval()(input_ids=IDS).logits, atol=1e-5)


def test_copy_from_peft_public_helper():
    base = tiny_bert()
    targets = ["word_embeddings", "query", "value"]
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8,
                                                             target_modules=targets))
    randomize_lora(theirs)
    ours = peftlab.apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules=targets,
                              modules_to_save=["classifier"])
    peftlab.copy_from_peft(theirs, ours)
    assert torch.allclose(ours.eval()(input_ids=IDS).logits, theirs.eval()(input_ids=IDS).logits, atol=1e-5)
    other = peftlab.apply_lora(copy.deepcopy(base), r=2, alpha=8, target_modules=targets)
    snapshot = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(ValueError, match="has shape"):
        peftlab.copy_from_peft(theirs, other)
    assert all(torch.equal(snapshot[k], v) for k, v in other.state_dict().items())


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=CONFIG_NAME):
        peftlab.load_peft_adapter(mlp(), tmp_path / "nothing")


def test_embedding_adapter_both_ways(tmp_path):
    base = tiny_bert()
    targets = ["word_embeddings", "query", "value"]
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_embedding_A" in name or "lora_B" in name:
                p.normal_(std=0.1)
    theirs.save_pretrained(tmp_path / "peft")
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    assert torch.allclose(ours(input_ids=IDS).logits, theirs.eval()(input_ids=IDS).logits, atol=1e-5)
    peftlab.save_peft_adapter(ours, tmp_path / "ours")
    assert sorted(load_file(tmp_path / "ours" / WEIGHTS_NAME)) == sorted(load_file(tmp_path / "peft" / WEIGHTS_NAME))
    back = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "ours").eval()
    assert torch.allclose(back(input_ids=IDS).logits, ours(input_ids=IDS).logits, atol=1e-5)


def test_llama_embedding_target_with_saved_base_layer(tmp_path):
    """peft saves a targeted Llama ``embed_tokens`` base weight with the adapter (``….base_layer.weight``);
    peftlab loads it into the base layer, as ``PeftModel`` does (here it differs from the base model's)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=32)).eval()
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"]))
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "lora_embedding_A" in name or "lora_B" in name:
                p.normal_(std=0.1)
        theirs.base_model.model.model.embed_tokens.base_layer.weight.mul_(1.5)
    with pytest.warns(UserWarning, match="save_embedding_layers"):
        theirs.save_pretrained(tmp_path / "peft")
    assert "base_model.model.model.embed_tokens.base_layer.weight" in load_file(tmp_path / "peft" / WEIGHTS_NAME)
    ours = peftlab.load_peft_adapter(copy.deepcopy(base), tmp_path / "peft").eval()
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ours(input_ids=ids).logits, theirs.eval()(input_ids=ids).logits, atol=1e-5)
    reloaded = PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "peft").eval()
    assert torch.allclose(reloaded(input_ids=ids).logits, ours(input_ids=ids).logits, atol=1e-5)
