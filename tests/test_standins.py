"""The colab profile's offline stand-ins (peftlab/standins.py) and the Colab rehearsal (make rehearse-colab).

The stand-ins must agree with the real Hub checkpoints in every property the kit's code depends on; the values below
are copied from the public files ``config.json`` / ``tokenizer_config.json`` of klue/bert-base and
Qwen/Qwen2.5-0.5B on the Hugging Face Hub (read once, by hand: nothing here touches the network).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from peftlab import data, models, standins
from peftlab.instructor import rehearse

ROOT = Path(__file__).resolve().parents[1]

#: https://huggingface.co/klue/bert-base/blob/main/config.json
KLUE_BERT_BASE_CONFIG = {
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
    "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": 32000,
}
#: https://huggingface.co/klue/bert-base/blob/main/tokenizer_config.json (+ the vocab's first five entries)
KLUE_BERT_BASE_TOKENIZER = {
    "do_lower_case": False, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
    "mask_token": "[MASK]", "model_max_length": 512,
    "ids": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "[MASK]": 4},
}
#: https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json
QWEN25_05B_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
    "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
    "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
    "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16", "use_cache": True,
    "use_mrope": False, "use_sliding_window": False, "vocab_size": 151936,
}
#: https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/tokenizer_config.json
QWEN25_05B_TOKENIZER = {
    "add_bos_token": False, "bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
    "model_max_length": 131072, "ids": {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
}
#: what a stand-in may change: the width, nothing else
WIDTHS = {"hidden_size", "intermediate_size"}


@pytest.fixture(scope="module")
def standin_env(tmp_path_factory):
    """colab profile + stand-ins at size 2, in a private cache folder."""
    saved = {k: os.environ.get(k) for k in ("PEFTLAB_PROFILE", standins.STANDINS_ENV, standins.SIZE_ENV,
                                            standins.STANDIN_DIR_ENV)}
    os.environ.update({"PEFTLAB_PROFILE": "colab", standins.STANDINS_ENV: "1", standins.SIZE_ENV: "2",
                       standins.STANDIN_DIR_ENV: str(tmp_path_factory.mktemp("standins"))})
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_switch_values_and_errors(monkeypatch):
    monkeypatch.delenv(standins.STANDINS_ENV, raising=False)
    assert not standins.enabled()
    monkeypatch.setenv(standins.STANDINS_ENV, "1")
    assert standins.enabled()
    monkeypatch.setenv(standins.STANDINS_ENV, "yes")
    with pytest.raises(ValueError, match="PEFTLAB_COLAB_STANDINS='yes'"):
        standins.enabled()
    monkeypatch.delenv(standins.SIZE_ENV, raising=False)
    assert standins.size() == 16
    for bad in ("3", "0", "wide"):
        monkeypatch.setenv(standins.SIZE_ENV, bad)
        with pytest.raises(ValueError, match="PEFTLAB_COLAB_STANDIN_SIZE"):
            standins.size()
    with pytest.raises(ValueError, match="name='gpt'"):
        standins.ensure("gpt")


def test_without_the_switch_colab_still_names_the_hub(monkeypatch):
    monkeypatch.setenv("PEFTLAB_PROFILE", "colab")
    monkeypatch.setenv(standins.STANDINS_ENV, "0")
    assert models.model_path("encoder") == "klue/bert-base"
    assert models.model_path("causal_lm") == "Qwen/Qwen2.5-0.5B"
    calls = []

    def fake_load_dataset(*args, **kwargs):
        calls.append((args, kwargs))
        raise RuntimeError("stop")

    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    with pytest.raises(RuntimeError, match="stop"):
        data.load_sentiment()
    assert calls == [((data.NSMC_HUB_ID,), {"revision": data.NSMC_REVISION})]
    monkeypatch.setenv(standins.STANDINS_ENV, "1")
    monkeypatch.setenv("PEFTLAB_PROFILE", "tiny")  # the switch never touches the tiny profile
    assert models.model_path("encoder").endswith("tiny-ko-bert")


def test_recorded_real_values_are_the_ones_the_standins_use():
    for kind, real in (("encoder", KLUE_BERT_BASE_CONFIG), ("causal_lm", QWEN25_05B_CONFIG)):
        for key, value in standins.REAL_CONFIGS[kind].items():
            assert real[key] == value, (kind, key)


def _compare(config, real: dict) -> None:
    got = config.to_dict()
    rope = got.get("rope_parameters") or {}
    for key, value in real.items():
        if key in WIDTHS | {"architectures", "torch_dtype", "initializer_range", "transformers_version"}:
            continue
        if key not in got and value is False:
            continue  # an option this transformers version no longer has (use_mrope), off in the Hub file
        if key == "sliding_window" and not real.get("use_sliding_window"):
            continue  # unused without use_sliding_window (transformers stores None then, for the Hub file too)
        actual = rope.get(key, got.get(key)) if key == "rope_theta" else got.get(key)
        assert actual == value, f"{config.model_type}: {key} is {actual!r}, the Hub model has {value!r}"


def test_encoder_standin_matches_klue_bert_base(standin_env):
    path = models.model_path("encoder")
    assert Path(path).is_dir() and path.startswith(os.environ[standins.STANDIN_DIR_ENV])
    model = models.load_encoder_classifier(num_labels=2)
    assert type(model).__name__ == "BertForSequenceClassification"
    _compare(model.config, KLUE_BERT_BASE_CONFIG)
    assert model.config.hidden_size == 12 * 2
    layers = {n.split(".")[3] for n, _ in model.named_modules() if n.startswith("bert.encoder.layer.")}
    assert layers == {str(i) for i in range(12)}
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert {"query", "key", "value", "dense", "pooler", "classifier", "word_embeddings"} <= names
    assert model.bert.pooler is not None
    tok = models.load_tokenizer("encoder")
    assert type(tok).__name__ == "BertTokenizer" and tok.model_max_length == KLUE_BERT_BASE_TOKENIZER["model_max_length"]
    for token, token_id in KLUE_BERT_BASE_TOKENIZER["ids"].items():
        assert tok.convert_tokens_to_ids(token) == token_id
    ids = tok("연기가 정말 좋았다.")["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and max(ids) < model.config.vocab_size
    with torch.no_grad():
        assert tuple(model(**tok(["좋았다", "지루했다 정말"], padding=True, return_tensors="pt")).logits.shape) == (2, 2)


def test_causal_lm_standin_matches_qwen25_05b(standin_env):
    lm = models.load_causal_lm()
    assert type(lm).__name__ == "Qwen2ForCausalLM"
    _compare(lm.config, QWEN25_05B_CONFIG)
    cfg = lm.config
    head = cfg.hidden_size // cfg.num_attention_heads
    attn = lm.model.layers[0].self_attn
    assert len(lm.model.layers) == 24 and head == 2
    assert attn.q_proj.out_features == 14 * head and attn.k_proj.out_features == attn.v_proj.out_features == 2 * head
    assert all(m.bias is not None for m in (attn.q_proj, attn.k_proj, attn.v_proj)) and attn.o_proj.bias is None
    assert lm.lm_head.weight is lm.model.embed_tokens.weight  # tied
    assert {"gate_proj", "up_proj", "down_proj"} <= {n.rsplit(".", 1)[-1] for n, _ in lm.named_modules()}
    tok = models.load_tokenizer("causal_lm")
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.bos_token is None and tok.padding_side == "right"
    assert tok.eos_token == tok.pad_token == QWEN25_05B_TOKENIZER["eos_token"]
    assert tok.model_max_length == QWEN25_05B_TOKENIZER["model_max_length"]
    for token, token_id in QWEN25_05B_TOKENIZER["ids"].items():
        assert tok.convert_tokens_to_ids(token) == token_id
    text = data.format_instruction("2 더하기 3는?", "5")
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text and ids[0] != tok.eos_token_id  # byte-level BPE, no bos added
    batch = tok(["짧다", text], padding=True, return_tensors="pt")
    assert batch["input_ids"][0, -1] == 151643  # right padding with <|endoftext|>
    with torch.no_grad():
        out = lm(**batch, labels=batch["input_ids"])
    assert out.logits.shape[-1] == QWEN25_05B_CONFIG["vocab_size"] and torch.isfinite(out.loss)


def test_nsmc_standin_has_nsmcs_schema_and_loads_through_load_dataset(standin_env):
    from datasets import load_dataset

    raw = load_dataset(standins.nsmc_dir())
    assert set(raw) == {"train", "test"}
    assert raw["train"].column_names == ["id", "document", "label"]
    assert raw["train"].features["label"].names == ["negative", "positive"]
    assert any(not d.strip() for d in raw["train"]["document"])  # empty documents, as NSMC has
    sentiment = data.load_sentiment()
    assert {k: len(v) for k, v in sentiment.items()} == standins.NSMC_SIZES
    assert sentiment["train"].column_names == ["text", "label"]
    assert all(t.strip() for t in sentiment["test"]["text"])
    assert set(sentiment["train"]["label"]) == {0, 1}


def test_hub_cache_mirror_serves_hub_ids_offline(standin_env):
    cache = standins.hub_cache()
    script = ("from transformers import AutoConfig, AutoTokenizer\n"
              "c = AutoConfig.from_pretrained('Qwen/Qwen2.5-0.5B')\n"
              "t = AutoTokenizer.from_pretrained('klue/bert-base')\n"
              "print(c.model_type, c.num_key_value_heads, type(t).__name__)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert done.stdout.split() == ["qwen2", "2", "BertTokenizer"], done.stderr[-2000:]


def test_device_guard_runs_as_kit_code():
    """The checks refuse answers that call a reference implementation from code outside the kit; the guard wraps
    every module call, so its frames must count as the kit's (else every reference check would fail)."""
    script = _guard_script("from peftlab.instructor import _device_guard as g\n"
                           "from peftlab.checks._core import _is_outside_kit\n"
                           "print(_is_outside_kit(g._guarded_call.__code__.co_filename), "
                           "_is_outside_kit('/somewhere/else.py'))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]


def _guard_script(body: str) -> str:
    return "\n".join(["import torch", "from peftlab.instructor.rehearse import DEVICE_GUARD",
                      "exec(DEVICE_GUARD)", "from peftlab.device import pick_device", "DEVICE = pick_device()", body])


@pytest.mark.parametrize(("body", "caught"), [
    # a model sent to DEVICE called with inputs left on the host (Week 02's demo cell, before the fix)
    ("m = torch.nn.Linear(4, 2).to(DEVICE)\nx = torch.randn(3, 4)\nm(x)", True),
    # a tensor from the device handed to matplotlib/numpy without .cpu()
    ("m = torch.nn.Linear(4, 2).to(DEVICE)\ny = m(torch.randn(3, 4).to(DEVICE)).detach()\n(y * 2).numpy()", True),
    ("m = torch.nn.Linear(4, 2).to(DEVICE)\nimport numpy as np\nnp.asarray(m.weight.detach().double())", True),
    # correct placement: inputs moved, derived tensors, results brought back with .cpu()
    ("m = torch.nn.Linear(4, 2).to(DEVICE)\nx = torch.randn(3, 5, device=DEVICE)[:, :4]\n"
     "y = m(x).softmax(-1)\nm(torch.zeros(1, 4).to(DEVICE))\ny.detach().cpu().numpy()", False),
    # a model left on the host with host inputs is fine
    ("m = torch.nn.Linear(4, 2)\nm(torch.randn(3, 4)).detach().numpy()", False),
])
def test_device_guard_catches_placement_bugs_on_a_cpu(body, caught):
    done = subprocess.run([sys.executable, "-c", _guard_script(body)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PEFTLAB_DEVICE": "cpu", "OMP_NUM_THREADS": "1"})
    assert ("DeviceGuardError" in done.stderr) == caught, done.stderr[-2000:]
    assert (done.returncode != 0) == caught


_PROBE = ("from peftlab import models, train\n"
          "tok = models.load_tokenizer('encoder', profile='{profile}')\n"
          "model = models.load_encoder_classifier(profile='{profile}')\n"
          "split = train.encode({{'text': ['재미있는 영화였다'] * 300, 'label': [1] * 300}}, tok)\n")


@pytest.mark.parametrize(("body", "caught"), [
    # Week 01's first linear probe: bert-base's features over the whole split on the CPU, the model never sent to DEVICE
    (_PROBE.format(profile="colab") + "train.mean_pooled_features(model, split, device='cpu')", True),
    (_PROBE.format(profile="colab") + "train.mean_pooled_features(model, split)", True),
    # the same loop on the device, and a short host demo (a few rows) of the same model
    (_PROBE.format(profile="colab") + "train.mean_pooled_features(model.to(DEVICE), split, device=DEVICE)", False),
    (_PROBE.format(profile="colab") + "train.predict_logits(model, train.encode({'text': ['좋다'] * 8, "
     "'label': [1] * 8}, tok))", False),
    # training with device=DEVICE (the function re-creates the torch.device: the same device, another object)
    (_PROBE.format(profile="colab") + "train.train_classifier(model, split, epochs=1, lr=1e-3, batch_size=32, "
     "device=DEVICE)\ntrain.evaluate_accuracy(model, split)", False),
    # the tiny models run on the CPU by design (Weeks 05-07 say so): not a colab-profile model
    (_PROBE.format(profile="tiny") + "train.mean_pooled_features(model, split, device='cpu')", False),
])
def test_device_guard_catches_a_colab_model_left_on_the_host(body, caught, tmp_path):
    env = {**os.environ, "PEFTLAB_DEVICE": "cpu", "OMP_NUM_THREADS": "1", "PEFTLAB_COLAB_STANDINS": "1",
           "PEFTLAB_STANDIN_DIR": str(tmp_path / "standins")}
    done = subprocess.run([sys.executable, "-c", _guard_script(body)], capture_output=True, text=True, timeout=300,
                          env=env, cwd=ROOT)
    assert ("DeviceGuardError" in done.stderr) == caught, done.stderr[-2000:]
    assert (done.returncode != 0) == caught, done.stderr[-2000:]
    if caught:
        assert "colab-profile model" in done.stderr and "Send the model to DEVICE" in done.stderr


def test_first_error_names_the_cell_and_line():
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x"), nbformat.v4.new_code_cell("a = 1\nb = a / 0")]
    nb.cells[1].outputs = [nbformat.v4.new_output(
        "error", ename="ZeroDivisionError", evalue="division by zero",
        traceback=["\x1b[0;31m----\x1b[0m", "Cell \x1b[0;32mIn[2], line 2\x1b[0m\n      1 a = 1\n----> 2 b = a / 0\n",
                   "\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"])]
    cell, line, message, tail = rehearse.first_error(nb)
    assert (cell, line, message) == (1, "b = a / 0", "ZeroDivisionError: division by zero")
    assert tail.endswith("ZeroDivisionError: division by zero")
    assert rehearse.first_error(nbformat.v4.new_notebook()) == (None, None, None, None)


@pytest.mark.slow
def test_week07_rehearses_on_the_colab_standins(tmp_path):
    """`make rehearse-colab` on one notebook: Week 07 end to end on the colab profile, offline, guarded."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PEFTLAB_STANDIN_DIR": str(tmp_path / "standins")}
    done = subprocess.run([sys.executable, "-m", "peftlab.instructor.rehearse", "07", "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500, env=env)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "07_compare.ipynb  pass" in done.stdout
    executed = json.loads((tmp_path / "out" / "07_compare.ipynb").read_text(encoding="utf-8"))
    assert "profile=colab" in json.dumps(executed["cells"][3]["outputs"])
