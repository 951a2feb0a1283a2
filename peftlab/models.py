"""Base models of the course, per profile, all loaded with ``from_pretrained(path_or_hub_id)``.

* ``tiny`` (default; offline, CPU): the kit's own tiny models in ``data/models`` — a BERT-style
  encoder pretrained with masked-LM loss and a Llama-style causal LM, both made by
  ``python -m peftlab.datagen``.
* ``colab`` (GPU, network): Hub models, ``klue/bert-base`` and ``Qwen/Qwen2.5-0.5B``; with
  ``PEFTLAB_COLAB_STANDINS=1``, offline stand-ins of the same architectures (:mod:`peftlab.standins`).

The profile comes from the argument, else ``$PEFTLAB_PROFILE``, else ``"tiny"``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from peftlab.profile import HUB_MODELS, PROFILE_ENV, PROFILES, data_root, get_profile

__all__ = [
    "HUB_MODELS", "PROFILE_ENV", "PROFILES", "TINY_MODELS", "get_profile", "load_causal_lm",
    "load_encoder_classifier", "load_tokenizer", "model_path",
]

KINDS = ("encoder", "causal_lm")
#: Folder names under ``data/models`` for the tiny profile.
TINY_MODELS = {"encoder": "tiny-ko-bert", "causal_lm": "tiny-ko-llama"}


def model_path(kind: str, profile: str | None = None) -> str:
    """Where ``kind`` ("encoder" or "causal_lm") loads from: a local folder (tiny) or a Hub id (colab)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: unknown model kind; allowed: {', '.join(map(repr, KINDS))}")
    if get_profile(profile) == "colab":
        from peftlab import standins

        if standins.enabled():  # $PEFTLAB_COLAB_STANDINS=1: offline stand-ins with the Hub models' layout
            return str(standins.ensure(kind))
        return HUB_MODELS[kind]
    folder = data_root() / "models" / TINY_MODELS[kind]
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"kind={kind!r}: no model at {folder}; rebuild the data with `make data`")
    return str(folder)


@contextlib.contextmanager
def _quiet_transformers():
    """Silence the 'newly initialized weights' report and the weight-loading progress bar: for a classifier
    built on an MLM checkpoint the classifier head is new by design (the notebook says so), and a progress
    bar in a notebook's stored output is noise that differs on every run."""
    from transformers.utils import logging

    old = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(old)
        if bars:
            logging.enable_progress_bar()


def load_tokenizer(kind: str = "encoder", profile: str | None = None):
    """The tokenizer that belongs to ``model_path(kind)`` (a transformers fast tokenizer)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path(kind, profile))
    if kind == "causal_lm" and tok.pad_token is None:  # Hub causal LMs often ship without one
        tok.pad_token = tok.eos_token
    return tok


def load_encoder_classifier(num_labels: int = 2, pretrained: bool = True, profile: str | None = None, **kwargs):
    """An ``AutoModelForSequenceClassification`` on the encoder.

    ``pretrained=True`` loads the pretrained weights (the tiny encoder ships its pooler, as BERT checkpoints
    do; only the classifier is newly initialised);
    ``pretrained=False`` builds the same configuration with random weights — the from-scratch
    baseline, used with the same tokenizer. Seed with ``torch.manual_seed`` first for a
    reproducible head/initialisation.
    """
    if not isinstance(num_labels, int) or isinstance(num_labels, bool) or num_labels < 2:
        raise ValueError(f"num_labels={num_labels!r}: expected an int >= 2")
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained={pretrained!r}: expected True or False")
    from transformers import AutoConfig, AutoModelForSequenceClassification

    path = model_path("encoder", profile)
    with _quiet_transformers():
        if pretrained:
            return AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **kwargs)
        config = AutoConfig.from_pretrained(path, num_labels=num_labels)
        return AutoModelForSequenceClassification.from_config(config, **kwargs)


def load_causal_lm(profile: str | None = None, **kwargs):
    """An ``AutoModelForCausalLM`` (tiny Llama, or Qwen2.5-0.5B on colab); kwargs go to ``from_pretrained``
    (e.g. ``dtype=torch.bfloat16``, ``quantization_config=...``)."""
    from transformers import AutoModelForCausalLM

    with _quiet_transformers():
        return AutoModelForCausalLM.from_pretrained(model_path("causal_lm", profile), **kwargs)


def tiny_model_dir(kind: str) -> Path:
    """The tiny profile's folder for ``kind``, whatever ``$PEFTLAB_PROFILE`` says."""
    return Path(model_path(kind, "tiny"))
