"""Datasets of the course: the embedded ``tiny`` data under ``data/`` and their ``colab`` Hub twins.

The tiny profile reads only local files made by ``python -m peftlab.datagen --out data`` (``make
data``); nothing here touches the network unless the ``colab`` profile is asked for.

Data root: ``$PEFTLAB_DATA`` if set, else the repository's ``data/`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from peftlab.profile import DATA_ENV, data_root, get_profile

__all__ = [
    "DATA_ENV", "NSMC_HUB_ID", "NSMC_REVISION", "PROMPT_TEMPLATE", "data_root", "format_instruction",
    "load_corpus", "load_instructions", "load_sentiment", "load_world_heldout", "read_jsonl", "tokenize_sentiment",
]

#: NSMC (Naver sentiment movie corpus) on the Hub; its parquet conversion loads without a script.
NSMC_HUB_ID = "e9t/nsmc"
NSMC_REVISION = "refs/convert/parquet"
#: colab-profile sample sizes (NSMC has 150k/50k rows; a T4 session wants far fewer).
NSMC_SIZES = {"train": 20_000, "validation": 2_000, "test": 5_000}
SPLITS = {"train": "train", "validation": "valid", "test": "test"}


#: How an instruction becomes model text: the prompt, then " " + the answer when training.
PROMPT_TEMPLATE = "질문: {instruction}\n답:"


def format_instruction(instruction: str, output: str | None = None) -> str:
    """The prompt for ``instruction``; with ``output`` the full training text (prompt + " " + output)."""
    prompt = PROMPT_TEMPLATE.format(instruction=instruction)
    return prompt if output is None else f"{prompt} {output}"


def _resolve(profile: str | None) -> str:
    return get_profile(profile)


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSON-lines file."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_sentiment(profile: str | None = None):
    """Korean movie-review sentiment: ``DatasetDict`` with train/validation/test, columns text, label.

    tiny: the generated reviews in ``data/sentiment`` (3000/500/2000, balanced, 1 = 긍정).
    colab: a random sample of NSMC from the Hub (sizes in ``NSMC_SIZES``; validation is carved out
    of NSMC's train split); with ``PEFTLAB_COLAB_STANDINS=1`` the same sampling of a local stand-in with
    NSMC's schema (:mod:`peftlab.standins`, sizes ``standins.NSMC_SIZES``).
    """
    from datasets import Dataset, DatasetDict

    if _resolve(profile) == "colab":
        from peftlab import standins

        if standins.enabled():  # $PEFTLAB_COLAB_STANDINS=1: a local folder with NSMC's schema, same loader
            return _load_nsmc(standins.nsmc_dir(), None, standins.NSMC_SIZES)
        return _load_nsmc()
    root = data_root() / "sentiment"
    out = {}
    for split, stem in SPLITS.items():
        rows = read_jsonl(root / f"{stem}.jsonl")
        out[split] = Dataset.from_dict({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    return DatasetDict(out)


def _load_nsmc(source: str = NSMC_HUB_ID, revision: str | None = NSMC_REVISION, sizes: dict | None = None):
    """NSMC (``source``: the Hub id, or a local folder with its schema) sampled to ``sizes`` (default NSMC_SIZES)."""
    from datasets import DatasetDict, load_dataset

    raw = load_dataset(source, revision=revision) if revision else load_dataset(source)
    raw = raw.filter(lambda r: bool(r["document"]) and bool(r["document"].strip()))
    raw = raw.rename_column("document", "text").select_columns(["text", "label"])
    train = raw["train"].shuffle(seed=0)
    sizes = NSMC_SIZES if sizes is None else sizes
    n_tr, n_va, n_te = sizes["train"], sizes["validation"], sizes["test"]
    return DatasetDict({
        "train": train.select(range(n_tr)),
        "validation": train.select(range(n_tr, n_tr + n_va)),
        "test": raw["test"].shuffle(seed=0).select(range(n_te)),
    })


def load_corpus() -> list[str]:
    """The unlabeled pretraining corpus (one sentence per line) of the tiny profile."""
    path = data_root() / "corpus" / "ko_corpus.txt"
    return path.read_text(encoding="utf-8").splitlines()


def load_world_heldout() -> list[str]:
    """Knowledge lines the tiny causal LM never read (new sentences about the facts of ``ko_world.txt``). With the
    corpus's last 1,000 lines they are its held-out text, knowledge text in the same share of tokens as in its
    pretraining (``data/README.md``)."""
    path = data_root() / "corpus" / "ko_world_heldout.txt"
    return path.read_text(encoding="utf-8").splitlines()


def load_instructions(profile: str | None = None):
    """Short Korean instruction/answer pairs: ``DatasetDict`` train/test with columns instruction,
    output, task; the test split also has ``phrasing`` (``train``: asked in a phrasing the train split
    uses; ``new``: in one it never uses). Both profiles use the embedded set (its answers are
    exact-match checkable); turn a row into model text with :func:`format_instruction`."""
    from datasets import Dataset, DatasetDict

    _resolve(profile)  # validates the profile name
    root = data_root() / "instructions"
    out = {}
    for split in ("train", "test"):
        rows = read_jsonl(root / f"{split}.jsonl")
        cols = ("instruction", "output", "task") + (("phrasing",) if rows and "phrasing" in rows[0] else ())
        out[split] = Dataset.from_dict({k: [r[k] for r in rows] for k in cols})
    return DatasetDict(out)


def tokenize_sentiment(dataset, tokenizer, max_length: int = 32):
    """Tokenise the ``text`` column (truncation, no padding; pad per batch with a collator).

    Works on a ``Dataset`` or a ``DatasetDict``; keeps ``label``, drops ``text``.
    """
    if not isinstance(max_length, int) or max_length < 4:
        raise ValueError(f"max_length={max_length!r}: expected an int >= 4")

    def enc(batch):
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    return dataset.map(enc, batched=True, remove_columns=["text"])
