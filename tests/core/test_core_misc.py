"""device, env, spectrum, train: small units the notebooks lean on."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bert

import peftlab
from peftlab import device, env
from peftlab.analysis import svd as spectrum
from peftlab.cli import main as cli_main
from peftlab.train import EncodedSplit, evaluate_accuracy, train_classifier


def test_pick_device_and_dtype_on_cpu(monkeypatch):
    monkeypatch.delenv("PEFTLAB_DEVICE", raising=False)
    if not torch.cuda.is_available():
        assert device.pick_dtype("cpu") == torch.float32
        assert device.bf16_supported("cpu") is False
    monkeypatch.setenv("PEFTLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="PEFTLAB_DEVICE"):
        device.pick_device()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="cuda"):
            device.pick_device("cuda")


def test_configure_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        for var in ("PEFTLAB_THREADS", "OMP_NUM_THREADS"):
            monkeypatch.delenv(var, raising=False)
        torch.set_num_threads(2)
        assert device.configure_threads("colab", "cpu") == 2  # other profiles keep torch's default
        assert device.configure_threads("tiny", "cpu") == 1  # the tiny models run on one CPU thread
        torch.set_num_threads(2)
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # an explicit OpenMP setting is left alone
        assert device.configure_threads("tiny", "cpu") == 2
        monkeypatch.setenv("PEFTLAB_THREADS", "3")  # PEFTLAB_THREADS wins
        assert device.configure_threads("tiny", "cpu") == 3
        for bad in ("0", "two", "-1", ""):
            monkeypatch.setenv("PEFTLAB_THREADS", bad)
            torch.set_num_threads(2)
            with pytest.raises(ValueError, match="PEFTLAB_THREADS must be a positive integer"):
                device.configure_threads("tiny", "cpu")
            assert torch.get_num_threads() == 2  # nothing changed
    finally:
        torch.set_num_threads(before)


def test_env_check_prints_ok_lines(capsys):
    assert env.check() is True
    out = capsys.readouterr().out
    assert "[OK] torch" in out and "[OK] peft" in out and "profile" in out


def test_cli_env(capsys):
    assert cli_main(["env"]) == 0
    assert "[OK]" in capsys.readouterr().out


def test_spectrum_energy():
    g = torch.Generator().manual_seed(0)
    low = torch.randn(30, 2, generator=g) @ torch.randn(2, 20, generator=g)
    assert spectrum.energy_captured(low, 2) == pytest.approx(1.0, abs=1e-9)
    assert spectrum.energy_captured(spectrum.random_like(low), 2) < 0.5
    curve = spectrum.energy_curve(torch.randn(6, 4, generator=g))
    assert curve.shape == (4,) and torch.all(curve[1:] >= curve[:-1]) and curve[-1] == pytest.approx(1.0)
    rnd = spectrum.random_like(low)
    assert rnd.norm().item() == pytest.approx(low.double().norm().item())
    with pytest.raises(ValueError, match="r must be an int in"):
        spectrum.energy_captured(low, 0)
    with pytest.raises(ValueError, match="2-D"):
        spectrum.singular_values(torch.ones(3))
    with pytest.raises(ValueError, match="all zeros"):
        spectrum.energy_curve(torch.zeros(3, 3))


def _toy_split(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 64, (n, 8), generator=g)
    labels = (ids[:, 0] > 34).long()  # learnable from the first token
    return EncodedSplit(ids, torch.ones_like(ids), labels)


def test_train_classifier_learns_and_is_deterministic():
    data = _toy_split()
    m1 = peftlab.apply_lora(tiny_bert(), r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
    m2 = peftlab.apply_lora(tiny_bert(), r=4, alpha=8, target_modules=["query", "value"], modules_to_save=["classifier"])
    r1 = train_classifier(m1, data, data, epochs=2, lr=1e-2, batch_size=16, device="cpu")
    r2 = train_classifier(m2, data, data, epochs=2, lr=1e-2, batch_size=16, device="cpu")
    assert r1.losses == r2.losses and len(r1.losses) == 8 and len(r1.valid_accuracy) == 2
    assert 0.0 <= evaluate_accuracy(m1, data) <= 1.0


def test_train_classifier_bad_input():
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(tiny_bert(), _toy_split(), epochs=0)
    frozen = tiny_bert()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_classifier(frozen, _toy_split())


def test_linear_probe_separates_what_the_features_carry():
    from peftlab.train import linear_probe

    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (400,), generator=g)
    informative = torch.randn(400, 8, generator=g) + 3.0 * y[:, None].float()  # shifted by the label
    noise = torch.randn(400, 8, generator=g)
    assert linear_probe(informative[:300], y[:300], informative[300:], y[300:]) > 0.95
    assert linear_probe(noise[:300], y[:300], noise[300:], y[300:]) < 0.65
    correct = linear_probe(informative[:300], y[:300], informative[300:], y[300:], per_example=True)
    assert correct.shape == (100,) and set(correct.tolist()) <= {0.0, 1.0}
    assert correct.mean().item() == linear_probe(informative[:300], y[:300], informative[300:], y[300:])
    with pytest.raises(ValueError, match="same d"):
        linear_probe(noise[:, :3], y, noise, y)


def test_mean_pooled_features_ignore_padding():
    from helpers import tiny_bert

    from peftlab.train import EncodedSplit, mean_pooled_features

    model = tiny_bert()
    ids = torch.tensor([[5, 6, 7, 0, 0], [5, 6, 7, 9, 9]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    feats = mean_pooled_features(model, EncodedSplit(ids, mask, torch.tensor([0, 1])))
    alone = mean_pooled_features(model, EncodedSplit(ids[:1, :3], mask[:1, :3], torch.tensor([0])))
    assert feats.shape == (2, 32) and torch.allclose(feats[0], alone[0], atol=1e-5)


def test_inject_keeps_a_copy_and_finds_the_method_by_class():
    """``inject`` never changes the caller's config (the model stores a copy bound to its targets), and a
    subclass of a method's config is that method."""
    from torch import nn

    from peftlab.methods.lora import LoRAConfig
    from peftlab.methods.waveft import WaveFTConfig

    config = WaveFTConfig(n_frequency=8, proportional_parameters=True, target_modules=["0", "2"])
    model = peftlab.inject(nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6)), config)
    stored = model.peftlab_config["default"]
    assert stored is not config and stored == config
    assert config._proportional is None and stored._proportional == {"0": 11, "2": 5}  # 16 split 240:120

    class MyLoRA(LoRAConfig):
        pass

    model = peftlab.inject(nn.Sequential(nn.Linear(4, 4)), MyLoRA(r=2, target_modules=["0"]))
    assert isinstance(model[0], peftlab.LoRALinear) and not isinstance(model[0], peftlab.DoRALinear)
