"""``peftlab compare``: every method of the kit on one task, one budget, one evaluation, several seeds.

A *cell* is one (method, seed). Every cell of a comparison shares the task, the data split, the number of
optimizer steps, the batch size, the schedule (AdamW, 6 % linear warm-up, linear decay) and the evaluation;
only the method and its learning rate differ. Each method's learning rate is the best of a small grid on
the *validation* split, averaged over the tuning seeds :data:`TUNE_SEEDS` (disjoint from the test seeds
0, 1, 2), for each training-set size the course compares (:func:`tune_learning_rates`, ``peftlab compare
--tune-lr``); :data:`LEARNING_RATES` holds those sweeps' winners for the tiny profile, one table per sweep
(``sentiment`` = every training example, ``sentiment_n100`` = the first 100, …).

Per cell the comparison records

* ``trainable`` / ``trainable_pct`` — parameters that receive gradients (shared tensors counted once);
* ``adapter_bytes`` — bytes on disk of what a user ships for this task: the peft adapter folder written by
  :func:`peftlab.save_peft_adapter` where peft has the method (``adapter_format = peft``), else the
  trainable tensors in one safetensors file (``safetensors``); full fine-tuning ships every parameter;
* ``seconds_per_step`` — wall time of the optimizer steps divided by their number (model loading, data
  preparation and evaluation are outside the timer), with ``jobs`` (cells running at once) beside it: only a
  run with ``jobs = 1`` times a method alone, and its seeds are repeats of the same computation, so their
  spread is the timing noise floor (:func:`timing_noise`);
* ``peak_memory_bytes`` — on CUDA ``torch.cuda.max_memory_allocated`` during training; on the CPU the peak
  of live tensor bytes of one training step, counted from the tensors themselves: parameters (frozen and
  quantized buffers included), gradients, optimizer states and the activations autograd saves for the
  backward pass. (Python's ``tracemalloc`` does not see torch's CPU allocator, and process RSS mixes in
  the interpreter, libraries and allocator caches, so neither measures the method.)
* the task metric — ``accuracy`` on the sentiment test split, or ``exact_match`` of greedy answers on the
  instruction test split.

Results live in ``OUT/cells/*.json`` (one file per finished cell, written atomically), so a run that is
killed keeps what it finished and the next run does only the rest. ``OUT/config.json`` pins the
configuration; a different configuration in the same folder is refused. ``results.csv``, ``summary.csv``,
``results.json`` and ``plots/`` are rebuilt from the cells at the end of every run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import statistics
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from peftlab.core.fileio import atomic_write
from peftlab.core.recipe import ENCODER_TARGETS, LLAMA_TARGETS, TASKS, head, initial_seed, targets

__all__ = ["ALIASES", "CompareConfig", "ENCODER_TARGETS", "LLAMA_TARGETS", "METHODS", "LEARNING_RATES", "TASKS",
           "TUNE_SEEDS", "canonical_method", "known_methods", "methods_from_registry", "parse_methods",
           "per_example_scores", "run_comparison", "run_cell", "stored_comparison", "summarize", "sweep_name",
           "timing_noise", "tune_learning_rates"]

LR_GRID = (3e-4, 1e-3, 3e-3, 1e-2)
#: seeds of the learning-rate sweeps: disjoint from the test seeds (0, 1, 2) of every stored comparison
TUNE_SEEDS = (100, 101)
#: grid steps a learning-rate sweep may add beyond either edge of LR_GRID when the best rate is on that edge
LR_MAX_EXTEND = 2

_targets = targets  # the names this module used before the recipes moved beside the methods
_head = head
torch_initial_seed = initial_seed


# ---------------------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    """How one method turns a freshly loaded model into the model to train (``build(model, task)``)."""

    name: str
    summary: str
    build: Callable
    tasks: tuple[str, ...] = TASKS


def _full(model, task):
    for p in model.parameters():
        p.requires_grad_(True)
    return model


#: the comparison's own baseline, which is no registered method: every parameter trained
FULL = Method("full", "full fine-tuning: every parameter", _full)

#: the names ``peftlab compare`` used before it took the registry's; still accepted by ``--methods``,
#: ``CompareConfig.learning_rates`` and :func:`per_example_scores`, and mapped to the registry's name
ALIASES = {"adapter": "houlsby", "prompt": "prompt_tuning", "prefix": "prefix_tuning"}


def methods_from_registry() -> dict[str, Method]:
    """The comparison's method table: :data:`FULL`, then every recipe the registered methods declare
    (``register_method(..., recipe=..., variants=...)``, in the registry's order, a method's variants after it),
    each under its registry name (a variant under its own: LoRA's ``"rslora"``)."""
    from peftlab.core.tuner import registry

    table = {FULL.name: FULL}
    for spec in registry().values():
        for name, recipe in spec.recipes.items():
            table[name] = Method(name, recipe.summary, recipe.build, recipe.tasks)
    return table


#: name → :class:`Method`, derived from the registry when this module is imported (:func:`methods_from_registry`)
METHODS: dict[str, Method] = methods_from_registry()


def canonical_method(name: str) -> str:
    """``name``, or the registry's name for an old alias (:data:`ALIASES`: ``"adapter"`` → ``"houlsby"``, …)."""
    return ALIASES.get(name, name)


def sweep_name(task: str, train_size: int | None) -> str:
    """Name of the learning-rate sweep for ``task`` trained on ``train_size`` examples (None: all):
    ``sentiment``, ``sentiment_n100``, … (the file ``peftlab/compare_lr/<name>.json``)."""
    return task if train_size is None else f"{task}_n{train_size}"


def _swept_rates() -> dict[str, dict[str, float]]:
    """``compare_lr/<sweep>.json``: the learning-rate sweeps behind :data:`LEARNING_RATES` (every score kept)."""
    folder = Path(__file__).parent.with_name("compare_lr")
    out: dict[str, dict[str, float]] = {t: {} for t in TASKS}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        out[path.stem] = {m: float(v["best"]) for m, v in data["methods"].items() if v.get("best") is not None}
    return out


#: Learning rate per sweep and method: the best of LR_GRID on the validation split, mean over TUNE_SEEDS,
#: 150 steps, tiny profile, as measured by ``peftlab compare --tune-lr --task TASK [--train-size N] --methods ...
#: --out DIR`` (``make compare-lr``) and stored with all its scores in ``peftlab/compare_lr/<sweep>.json``.
#: Keys: :func:`sweep_name` (``"sentiment"``: every training example; ``"sentiment_n100"``: the first 100).
LEARNING_RATES: dict[str, dict[str, float]] = _swept_rates()


def known_methods() -> list[str]:
    return list(METHODS)


def _alias_note() -> str:
    return ", ".join(f"{old} → {new}" for old, new in ALIASES.items())


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """``"all"`` or a comma-separated list of known method names (order kept, duplicates dropped). The old names
    of :data:`ALIASES` are accepted and become the registry's (``"adapter"`` → ``"houlsby"``, …)."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if names == ["all"]:
        return known_methods()
    if not names:
        raise ValueError(f"--methods is empty; known methods: {', '.join(known_methods())} (or 'all')")
    unknown = [n for n in names if canonical_method(n) not in METHODS]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {', '.join(unknown)}; known methods: "
                         f"{', '.join(known_methods())} (or 'all'; old names accepted: {_alias_note()})")
    return list(dict.fromkeys(canonical_method(n) for n in names))


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    items = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    try:
        seeds = [int(s) for s in items if str(s) != ""]
    except ValueError:
        raise ValueError(f"--seeds={text!r}: expected comma-separated integers such as 0,1,2") from None
    if not seeds:
        raise ValueError("--seeds is empty: give at least one seed, e.g. --seeds 0,1,2")
    if any(s < 0 for s in seeds):
        raise ValueError(f"--seeds={text!r}: seeds must be ≥ 0")
    return list(dict.fromkeys(seeds))


# ----------------------------------------------------------------------------------------------- config
@dataclass
class CompareConfig:
    """Everything two comparisons must share for their cells to be comparable (pinned in config.json)."""

    task: str = "sentiment"
    profile: str = "tiny"
    steps: int = 150
    batch_size: int = 32
    train_size: int | None = None  # first N training examples (selection-guide experiments); None = all
    learning_rates: dict = field(default_factory=dict)  # per method; default: LEARNING_RATES[task]
    warmup_ratio: float = 0.06

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task={self.task!r}: expected one of {', '.join(TASKS)}")
        if self.profile not in ("tiny", "colab"):
            raise ValueError(f"profile={self.profile!r}: expected 'tiny' or 'colab'")
        for name in ("steps", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name}={v!r}: expected a positive integer")
        if self.train_size is not None and (not isinstance(self.train_size, int) or self.train_size <= 0):
            raise ValueError(f"train_size={self.train_size!r}: expected a positive integer or null")
        self.learning_rates = _canonical_keys(self.learning_rates, "learning_rates")
        for k, v in self.learning_rates.items():
            if k not in METHODS:
                raise ValueError(f"learning_rates: unknown method {k!r}; known methods: {', '.join(METHODS)}")
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"learning_rates[{k!r}]={v!r}: expected a positive finite number")

    def lr(self, method: str) -> float:
        return self.lr_source(method)[0]

    def lr_source(self, method: str) -> tuple[float, str]:
        """The learning rate of ``method`` and where it comes from: this configuration, the sweep for this
        training-set size, or (no such sweep) the sweep on every training example, said so."""
        if method in self.learning_rates:
            return float(self.learning_rates[method]), "config"
        own = sweep_name(self.task, self.train_size)
        if method in LEARNING_RATES.get(own, {}):
            return LEARNING_RATES[own][method], f"sweep {own}"
        if method in LEARNING_RATES.get(self.task, {}):
            return LEARNING_RATES[self.task][method], f"sweep {self.task} (every training example; no sweep for {own})"
        raise ValueError(f"method {method!r} has no learning rate for task {self.task!r}: sweep it with "
                         f"`peftlab compare --tune-lr --task {self.task} --methods {method} --out DIR`, "
                         f"or give one in --config ({{\"learning_rates\": {{\"{method}\": 0.001}}}})")

    def pinned(self) -> dict:
        d = asdict(self)
        known = set(self.learning_rates) | set(LEARNING_RATES.get(self.task, {})) | set(
            LEARNING_RATES.get(sweep_name(self.task, self.train_size), {}))
        d["learning_rates"] = {m: self.lr(m) for m in METHODS if m in known}
        return d


def _canonical_keys(table: dict, where: str) -> dict:
    """``table`` with the old method names of :data:`ALIASES` replaced by the registry's (order kept); an old and
    a new name of the same method both present is refused."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}={table!r}: expected a mapping of method name to value")
    out: dict = {}
    given: dict[str, str] = {}  # canonical name → the key it came from
    for k, v in table.items():
        name = canonical_method(k)
        if name in out:
            raise ValueError(f"{where}: {given[name]!r} and {k!r} name the same method ({_alias_note()}); give one")
        out[name], given[name] = v, k
    return out


def load_config_file(path: str | os.PathLike) -> dict:
    """Keys of a ``--config`` JSON file: any field of :class:`CompareConfig` (task, profile, steps,
    batch_size, train_size, learning_rates, warmup_ratio)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config={path}: no such file")
    data = json.loads(p.read_text(encoding="utf-8"))
    allowed = set(CompareConfig.__dataclass_fields__)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"--config {path}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return data


# ------------------------------------------------------------------------------------------------ tasks
class _SentimentTask:
    metric = "accuracy"

    def __init__(self, cfg: CompareConfig, split: str = "test"):
        from peftlab.data import load_sentiment
        from peftlab.models import load_tokenizer
        from peftlab.train import encode

        data = load_sentiment(cfg.profile)
        tok = load_tokenizer("encoder", cfg.profile)
        train = data["train"]
        if cfg.train_size is not None:
            train = train.select(range(min(cfg.train_size, len(train))))
        self.train = encode(train, tok)
        self.eval = encode(data[split], tok)
        self.cfg = cfg

    def model(self):
        from peftlab.models import load_encoder_classifier

        return load_encoder_classifier(2, pretrained=True, profile=self.cfg.profile)

    def batch(self, idx):
        from peftlab.train import _trim

        ids, mask = _trim(self.train.input_ids[idx], self.train.attention_mask[idx])
        return {"input_ids": ids, "attention_mask": mask}, self.train.labels[idx]

    def n_train(self) -> int:
        return len(self.train)

    @staticmethod
    def loss(model, inputs, labels):
        import torch.nn.functional as F

        return F.cross_entropy(model(**inputs).logits.float(), labels)

    def evaluate(self, model) -> list[int]:
        """1 where the model classifies a test review right, 0 where not, in the split's order."""
        from peftlab.train import predict_logits

        pred = predict_logits(model, self.eval, device=next(model.parameters()).device).argmax(-1).cpu()
        return (pred == self.eval.labels).int().tolist()


class _InstructionTask:
    metric = "exact_match"

    def __init__(self, cfg: CompareConfig, split: str = "test"):
        from peftlab.data import load_instructions
        from peftlab.models import load_tokenizer
        from peftlab.train import encode_answer_pairs

        data = load_instructions(cfg.profile)
        self.tok = tok = load_tokenizer("causal_lm", cfg.profile)
        rows = data["train"]
        if split == "validation":  # the instruction set has no validation split: hold out the last 20 % of train
            cut = int(0.8 * len(rows))
            rows, self.eval_rows = rows.select(range(cut)), [dict(r) for r in rows.select(range(cut, len(rows)))]
        else:
            self.eval_rows = [dict(r) for r in data["test"]]
        if cfg.train_size is not None:
            rows = rows.select(range(min(cfg.train_size, len(rows))))
        self.pairs = encode_answer_pairs(tok, rows)  # loss on the answer tokens and [EOS] only
        self.cfg = cfg

    def model(self):
        from peftlab.models import load_causal_lm

        return load_causal_lm(self.cfg.profile)

    def n_train(self) -> int:
        return len(self.pairs)

    def batch(self, idx):
        from peftlab.train import answer_batch

        ids, mask, labels = answer_batch([self.pairs[int(i)] for i in idx], self.tok.pad_token_id)
        return {"input_ids": ids, "attention_mask": mask}, labels

    @staticmethod
    def loss(model, inputs, labels):
        import torch.nn.functional as F

        logits = _text_logits(model(**inputs).logits, inputs["input_ids"])[:, :-1].float()
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100)

    def evaluate(self, model) -> list[int]:
        """Exact match of greedy answers (up to 8 new tokens, stop at EOS or a newline): 1 or 0 per test row."""
        from peftlab.train import greedy_answers

        answers = greedy_answers(model, self.tok, [r["instruction"] for r in self.eval_rows], batch_size=64)
        return [int(a == r["output"]) for a, r in zip(answers, self.eval_rows, strict=True)]


def _text_logits(logits, input_ids):
    """The logits of the text positions: prompt tuning returns its virtual positions first (as peft does)."""
    return logits[:, logits.shape[1] - input_ids.shape[1]:]


def _task(cfg: CompareConfig, split: str = "test"):
    return (_SentimentTask if cfg.task == "sentiment" else _InstructionTask)(cfg, split)


# ---------------------------------------------------------------------------------------------- measuring
def _tensor_bytes(model, optimizer) -> int:
    """Bytes of every live tensor a training step holds besides activations: parameters and buffers once
    each (quantized weights included), gradients, optimizer states."""
    seen: set[int] = set()
    total = 0
    for t in [*model.parameters(), *model.buffers()]:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
        if getattr(t, "grad", None) is not None:
            total += t.grad.numel() * t.grad.element_size()
    for state in optimizer.state.values():
        for v in state.values():
            if hasattr(v, "numel") and v.dim() > 0:
                total += v.numel() * v.element_size()
    return total


def _activation_bytes(task, model, inputs, labels) -> int:
    """Bytes autograd saves for the backward pass of one step (each storage counted once, parameters excluded)."""
    import torch

    params = {p.data_ptr() for p in model.parameters()}
    seen: set[int] = set()
    total = [0]

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in seen and ptr not in params:
            seen.add(ptr)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        task.loss(model, inputs, labels)
    return total[0]


def _adapter_bytes(method: str, model, folder: Path, task: str) -> tuple[int, str]:
    """Bytes on disk of what ships for this task, and the format written."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    if method != "full":
        from peftlab.core.interop import save_peft_adapter

        try:
            save_peft_adapter(model, folder, task_type="SEQ_CLS" if task == "sentiment" else "CAUSAL_LM")
            return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()), "peft"
        except (ValueError, TypeError, KeyError):  # no peft format for this method (prefix, Houlsby adapter)
            for f in folder.iterdir():
                f.unlink()
    tensors = {n: p.detach().contiguous().cpu() for n, p in model.named_parameters() if p.requires_grad}
    if method == "full":  # the whole model is the checkpoint: count its bytes, don't write a copy per seed
        return sum(t.numel() * t.element_size() for t in tensors.values()), "full-model"
    save_file(tensors, str(folder / "adapter.safetensors"))
    return (folder / "adapter.safetensors").stat().st_size, "safetensors"


def run_cell(cfg: CompareConfig, method: str, seed: int, out: Path | None = None, task=None) -> dict:
    """Train ``method`` with ``seed`` under ``cfg`` and measure it; returns the cell's record."""
    import torch

    from peftlab.core.targets import count_parameters
    from peftlab.device import pick_device
    from peftlab.methods.fast import use_fast
    from peftlab.train import fit, index_batches, make_optimizer, warmup_steps

    spec = METHODS[method]
    task = task or _task(cfg)
    device = pick_device() if cfg.profile == "colab" else torch.device("cpu")
    torch.manual_seed(seed)
    model = use_fast(spec.build(task.model(), cfg.task))  # the speed-tuned layers: the same numbers, sooner
    model.to(device)
    counts = count_parameters(model)
    lr = cfg.lr(method)
    opt = make_optimizer(model, lr)
    gen = torch.Generator().manual_seed(seed)
    # data preparation outside the timer: every step's batch first (a pass that cannot fill a batch is reshuffled)
    batches = [task.batch(idx) for idx in index_batches(task.n_train(), cfg.batch_size, gen, steps=cfg.steps)]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    peak, paused = 0, [0.0]

    def measure(step, batch):
        nonlocal peak
        if step == 1 and not cuda:  # one step's activations, measured once the optimizer holds its states
            t_pause = time.perf_counter()
            peak = _tensor_bytes(model, opt) + _activation_bytes(task, model, *batch)
            paused[0] += time.perf_counter() - t_pause

    t0 = time.perf_counter()
    losses = fit(model, batches, lambda model, batch: task.loss(model, *batch), opt, total_steps=cfg.steps,
                 warmup=warmup_steps(cfg.steps, cfg.warmup_ratio, at_least=1), device=device, before_step=measure)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0 - paused[0]
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    elif cfg.steps == 1:
        peak = _tensor_bytes(model, opt)
    per_example = task.evaluate(model)
    metric = sum(per_example) / len(per_example)
    folder = (out or Path(".")) / "adapters" / f"{method}-seed{seed}"
    nbytes, fmt = _adapter_bytes(method, model, folder, cfg.task)
    return {"method": method, "seed": seed, "status": "ok", "error": "", "lr": lr, "lr_source": cfg.lr_source(method)[1],
            "trainable": counts.trainable, "total": counts.total,
            "trainable_pct": round(100 * counts.trainable / counts.total, 4),
            "adapter_bytes": nbytes, "adapter_format": fmt,
            "seconds_per_step": round(seconds / cfg.steps, 5), "peak_memory_bytes": int(peak),
            "memory_source": "cuda.max_memory_allocated" if cuda else "tensor bytes (params+grads+optimizer+activations)",
            "metric": task.metric, "value": round(float(metric), 4), "final_loss": round(losses[-1], 4),
            "device": device.type, "per_example": "".join(str(int(v)) for v in per_example)}


def per_example_scores(records, method: str):
    """``(n_seeds, n_examples)`` 0/1 scores of ``method``'s finished cells, rows in ascending seed order, columns
    in test-split order: the input :func:`peftlab.analysis.stats.paired_comparison` pairs by position.
    Returns ``(seeds, array)``; raises ``ValueError`` when no finished cell of ``method`` records them."""
    import numpy as np

    if not any(r.get("method") == method for r in records):  # an old name (ALIASES) for records of the new one
        method = canonical_method(method)
    rows = sorted((r["seed"], r["per_example"]) for r in records
                  if r.get("method") == method and r.get("status", "ok") == "ok" and r.get("per_example"))
    if not rows:
        raise ValueError(f"method={method!r}: no finished cell records per-example scores (recompute it with this "
                         f"version of peftlab compare)")
    return [s for s, _ in rows], np.array([[int(c) for c in text] for _, text in rows], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ a run
def _cell_path(out: Path, method: str, seed: int) -> Path:
    return out / "cells" / f"{method}__seed{seed}.json"


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _pin(out: Path, cfg: CompareConfig, methods: Sequence[str]) -> None:
    """Write config.json, or check that the folder's pinned configuration agrees with ``cfg``: every field
    equal, and the same learning rate for every method both know (a method new to the folder is added)."""
    path = out / "config.json"
    pinned = cfg.pinned()
    pinned["learning_rates"] = {m: cfg.lr(m) for m in methods}
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        old["learning_rates"] = _canonical_keys(old.get("learning_rates", {}), f"{path}: learning_rates")
        diff = [f"{k}: {old.get(k)!r} → {pinned.get(k)!r}" for k in sorted(set(old) | set(pinned))
                if k != "learning_rates" and old.get(k) != pinned.get(k)]
        old_lr = old.get("learning_rates", {})
        diff += [f"learning rate of {m}: {old_lr[m]!r} → {v!r}" for m, v in pinned["learning_rates"].items()
                 if m in old_lr and old_lr[m] != v]
        if diff:
            raise ValueError(f"--out {out} holds results of a different configuration ({'; '.join(diff)}). "
                             f"Use another --out folder, or delete {out} to start over with this configuration.")
        pinned["learning_rates"] = {**old_lr, **pinned["learning_rates"]}
    _write_json(path, pinned)


def _worker(args) -> dict:
    cfg_dict, method, seed, out, threads, jobs = args
    import torch

    torch.set_num_threads(threads)
    cfg = CompareConfig(**cfg_dict)
    return _safe_cell(cfg, method, seed, Path(out), jobs=jobs)


def _safe_cell(cfg, method, seed, out, task=None, jobs: int = 1) -> dict:
    try:
        rec = run_cell(cfg, method, seed, out, task)
        rec["jobs"] = jobs  # cells running at once: 1 = timed alone
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded and the others go on
        rec = {"method": method, "seed": seed, "status": "error",
               "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=8)}
    _write_json(_cell_path(out, method, seed), rec)
    return rec


def run_comparison(methods: Sequence[str], seeds: Sequence[int], out: str | os.PathLike,
                   cfg: CompareConfig | None = None, jobs: int = 1, force: bool = False,
                   progress: bool = True, log: Callable = print) -> list[dict]:
    """Run every (method, seed) cell not yet finished in ``out`` and rebuild the result files."""
    methods, seeds = parse_methods(methods), parse_seeds(seeds)
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs={jobs!r}: expected a positive integer")
    cfg = cfg or CompareConfig()
    for m in methods:
        cfg.lr(m)  # every requested method has a learning rate, before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _pin(out, cfg, methods)
    todo = []
    for m in methods:
        for s in seeds:
            p = _cell_path(out, m, s)
            if force or not p.is_file() or json.loads(p.read_text(encoding="utf-8")).get("status") != "ok":
                todo.append((m, s))
    done = len(methods) * len(seeds) - len(todo)
    if done:
        log(f"{done} finished cell(s) kept in {out}/cells; {len(todo)} to run")
    from tqdm.auto import tqdm

    bar = tqdm(total=len(todo), desc="compare", unit="cell", disable=not progress or not todo)
    if jobs == 1 or len(todo) <= 1:
        task = _task(cfg) if todo else None
        for m, s in todo:
            bar.set_postfix_str(f"{m} seed {s}")
            _safe_cell(cfg, m, s, out, task)
            bar.update()
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, (os.cpu_count() or 1) // jobs)
        args = [(asdict(cfg), m, s, str(out), threads, jobs) for m, s in todo]
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for fut in as_completed([ex.submit(_worker, a) for a in args]):
                rec = fut.result()
                bar.set_postfix_str(f"{rec['method']} seed {rec['seed']}")
                bar.update()
    bar.close()
    records = [json.loads(_cell_path(out, m, s).read_text(encoding="utf-8")) for m in methods for s in seeds]
    write_results(out, cfg, records)
    return records


# ------------------------------------------------------------------------------------------ stored runs
#: finished comparisons of the tiny profile that the course reads (``config.json`` + ``cells/`` of a run of
#: :func:`run_comparison`; made by ``python -m peftlab.compare_runs``, see its README)
STORED_RUNS = Path(__file__).parent.with_name("compare_runs")


def stored_run_names() -> list[str]:
    return sorted(p.name for p in STORED_RUNS.iterdir() if (p / "config.json").is_file()) if STORED_RUNS.is_dir() else []


def stored_comparison(name: str, out: str | os.PathLike, recompute: bool = False, jobs: int = 1,
                      progress: bool = False, log: Callable = print) -> list[dict]:
    """Copy the stored comparison ``name`` into ``out`` and finish it there with :func:`run_comparison`.

    The stored cells are the finished cells of that comparison, so nothing is trained when they match the
    present configuration (the same fields and learning rates; otherwise :func:`run_comparison` refuses,
    naming the difference). With ``recompute`` only the configuration is copied and every cell is trained
    again in ``out`` (cells deleted from ``out/cells`` later are retrained the same way by
    :func:`run_comparison`). Returns the records, as run_comparison.
    """
    import shutil

    src = STORED_RUNS / name
    if not (src / "config.json").is_file():
        raise ValueError(f"name={name!r}: no stored comparison of that name; stored: {', '.join(stored_run_names())}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"out={out}: the folder is not empty; give a new or empty folder")
    pinned = json.loads((src / "config.json").read_text(encoding="utf-8"))
    methods = list(pinned["learning_rates"])
    seeds = sorted({int(p.stem.rsplit("__seed", 1)[1]) for p in (src / "cells").glob("*__seed*.json")})
    fields = {k: v for k, v in pinned.items() if k in CompareConfig.__dataclass_fields__}
    cfg = CompareConfig(**fields)
    if recompute:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / "config.json", out / "config.json")
    else:
        shutil.copytree(src, out, dirs_exist_ok=True)
    return run_comparison(methods, seeds, out, cfg, jobs=jobs, progress=progress, log=log)


# --------------------------------------------------------------------------------------------- results
RESULT_COLUMNS = ["method", "seed", "status", "metric", "value", "trainable", "trainable_pct", "adapter_bytes",
                  "adapter_format", "seconds_per_step", "peak_memory_bytes", "memory_source", "lr", "final_loss",
                  "device", "error"]
SUMMARY_COLUMNS = ["method", "cells_ok", "metric", "mean", "std", "trainable", "trainable_pct", "adapter_bytes",
                   "seconds_per_step", "time_spread", "peak_memory_bytes"]


def summarize(records: Sequence[dict]) -> list[dict]:
    """Per method: mean ± std (sample std over seeds; 0 for one seed) of the metric, medians of the rest, and
    ``time_spread``: (slowest − fastest) / median of its seconds per step over the seeds (the same computation
    repeated, so timing noise; meaningful when the cells ran one at a time, ``jobs`` = 1)."""
    rows = []
    for m in dict.fromkeys(r["method"] for r in records):
        ok = [r for r in records if r["method"] == m and r.get("status") == "ok"]
        if not ok:
            rows.append({"method": m, "cells_ok": 0})
            continue
        vals = [r["value"] for r in ok]

        def med(k, ok=ok):
            return statistics.median(r[k] for r in ok)

        rows.append({"method": m, "cells_ok": len(ok), "metric": ok[0]["metric"],
                     "mean": round(statistics.fmean(vals), 4),
                     "std": round(statistics.stdev(vals), 4) if len(vals) > 1 else 0.0,
                     "trainable": int(med("trainable")), "trainable_pct": round(med("trainable_pct"), 4),
                     "adapter_bytes": int(med("adapter_bytes")), "seconds_per_step": round(med("seconds_per_step"), 5),
                     "time_spread": round((max(r["seconds_per_step"] for r in ok) - min(r["seconds_per_step"] for r in ok))
                                          / med("seconds_per_step"), 4),
                     "jobs": max(r.get("jobs", 0) for r in ok),
                     "peak_memory_bytes": int(med("peak_memory_bytes"))})
    return rows


def timing_noise(records: Sequence[dict]) -> float:
    """The timing noise floor of a comparison: the median over methods of each method's ``time_spread``
    (relative range of seconds per step over its seeds, which repeat the same computation). A step-time
    ratio closer to 1 than this is not a measured difference. Raises ``ValueError`` when the cells ran
    several at a time (``jobs`` > 1: they timed each other) or a method has fewer than 2 finished cells."""
    rows = [r for r in summarize(records) if r.get("cells_ok")]
    if not rows or any(r["cells_ok"] < 2 for r in rows):
        raise ValueError("records: every method needs ≥ 2 finished cells (seeds) to measure timing noise")
    if any(r.get("jobs", 0) != 1 for r in rows):
        raise ValueError("records: cells ran several at a time (jobs > 1) or do not record jobs; time them one "
                         "at a time (peftlab compare --jobs 1)")
    return float(statistics.median(r["time_spread"] for r in rows))


def format_summary(rows: Sequence[dict]) -> str:
    w = max([8, *(len(str(r["method"])) for r in rows)])  # the method column fits the longest name
    top = f"{'method':<{w}} {'cells':>5} {'metric':>17} {'trainable':>10} {'%':>8} {'adapter':>10} {'s/step':>8} {'peak mem':>9}"
    lines = [top, "-" * len(top)]
    for r in rows:
        if not r.get("cells_ok"):
            lines.append(f"{r['method']:<{w}} {0:>5}  (every cell failed: see results.csv)")
            continue
        lines.append(f"{r['method']:<{w}} {r['cells_ok']:>5} {r['mean']:>9.4f} ± {r['std']:<5.4f} {r['trainable']:>10,} "
                     f"{r['trainable_pct']:>7.3f}% {_human(r['adapter_bytes']):>10} {r['seconds_per_step']:>8.4f} "
                     f"{_human(r['peak_memory_bytes']):>9}")
    return "\n".join(lines)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _csv(columns: Sequence[str], rows: Sequence[dict]) -> str:
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_results(out: Path, cfg: CompareConfig, records: Sequence[dict]) -> None:
    from peftlab.env import versions

    summary = summarize(records)
    atomic_write(out / "results.csv", _csv(RESULT_COLUMNS, records))
    atomic_write(out / "summary.csv", _csv(SUMMARY_COLUMNS, summary))
    import torch

    env = {"versions": versions(), "device": records[0].get("device", "cpu") if records else "cpu",
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "torch_threads": torch.get_num_threads(), "profile": cfg.profile}
    _write_json(out / "results.json", {"config": cfg.pinned(), "environment": env, "summary": summary,
                                       "cells": list(records)})
    plot_results(out, summary, records)


def plot_results(out: Path, summary: Sequence[dict], records: Sequence[dict]) -> list[Path]:
    # matplotlib's object API: files only, without touching pyplot's backend (a notebook keeps inline plots)
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    ok = [r for r in summary if r.get("cells_ok")]
    if not ok:
        return []
    plots = out / "plots"
    plots.mkdir(exist_ok=True)
    metric = ok[0]["metric"]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    colors = colormaps["tab20"].colors
    for i, r in enumerate(ok):  # a colour and a marker per method (eleven methods outrun one 10-colour cycle)
        ax.errorbar(r["trainable"], r["mean"], yerr=r["std"], fmt="osD^v<>ph*X"[i % 11], capsize=3,
                    color=colors[(2 * i) % 20 if i < 10 else (2 * i + 1) % 20], label=r["method"])
        ax.annotate(r["method"], (r["trainable"], r["mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel(f"{metric} (mean ± std over seeds)")
    ax.set_title(f"{metric} vs trainable parameters")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    p1 = plots / "metric_vs_params.png"
    fig.savefig(p1, dpi=110)
    fig = Figure(figsize=(9, 3.6))
    axes = fig.subplots(1, 2)
    names = [r["method"] for r in ok]
    axes[0].bar(names, [r["seconds_per_step"] * 1e3 for r in ok])
    axes[0].set_ylabel("ms per training step (median)")
    axes[0].set_title("step time")
    axes[1].bar(names, [r["peak_memory_bytes"] / 2**20 for r in ok])
    axes[1].set_ylabel("peak memory, MiB (median)")
    axes[1].set_title("training memory")
    for a in axes:
        a.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    p2 = plots / "time_memory.png"
    fig.savefig(p2, dpi=110)
    return [p1, p2]


# --------------------------------------------------------------------------------------- learning rates
def _half_decade(lr: float, up: bool) -> float:
    """The next rate of the 1-3-10 series (…, 1e-3, 3e-3, 1e-2, …) above or below ``lr``."""
    exp = math.floor(math.log10(lr) + 1e-9)
    one = 10.0**exp  # lr is about 1·10^exp or 3·10^exp
    if lr / one < 2:
        nxt = 3 * one if up else 0.3 * one
    else:
        nxt = 10 * one if up else one
    return float(f"{nxt:.3g}")


def tune_learning_rates(methods: Sequence[str], cfg: CompareConfig | None = None, grid: Sequence[float] = LR_GRID,
                        seeds: Sequence[int] = TUNE_SEEDS, log: Callable = print, known: dict | None = None,
                        max_extend: int = LR_MAX_EXTEND) -> dict[str, dict]:
    """For each method, the learning rate with the best validation metric, averaged over ``seeds`` (keep them
    disjoint from the seeds a comparison reports), and every point of the sweep. The sentiment task uses its
    validation split; the instruction task the last 20 % of its train split. ``cfg.train_size`` applies:
    tune once per training-set size.

    The sweep starts on ``grid``. When the best rate sits on an edge of what was tried, the sweep goes one
    grid step further out on that side (the 1-3-10 series: 1e-2 → 3e-2 → 1e-1; at most ``max_extend`` steps
    per side); a winner still on an edge after that is flagged (``edge``: "upper" or "lower", else None), so
    "the limit was reached" is recorded, not hidden. ``known`` holds mean scores already measured
    (``{method: {lr: score}}``, e.g. a stored sweep of the same seeds) that are not measured again.
    """
    import tempfile

    cfg = cfg or CompareConfig()
    grid = sorted(float(g) for g in grid)
    if len(grid) < 2 or grid[0] <= 0:
        raise ValueError(f"grid={grid!r}: expected at least two positive learning rates")
    seeds = parse_seeds(seeds)
    task = None
    table = {}
    for m in parse_methods(methods):
        scores = {float(k): float(v) for k, v in ((known or {}).get(m) or {}).items()}

        def score(lr: float, m: str = m, scores: dict = scores) -> float:
            nonlocal task
            lr = float(f"{lr:.3g}")
            if lr not in scores:
                task = task or _task(cfg, split="validation")
                c = CompareConfig(**{**asdict(cfg), "learning_rates": {m: lr}})
                values = []
                with tempfile.TemporaryDirectory() as tmp:
                    for seed in seeds:
                        try:
                            values.append(run_cell(c, m, seed, Path(tmp), task)["value"])
                        except Exception as exc:  # noqa: BLE001 - a diverging lr is a result of the sweep
                            values.append(float("nan"))
                            log(f"  {m} lr={lr:g} seed {seed}: {type(exc).__name__}: {exc}")
                scores[lr] = round(sum(values) / len(values), 5)
            return scores[lr]

        for lr in grid:
            score(lr)
        for _ in range(max_extend):
            finite = {k: v for k, v in scores.items() if v == v}
            if not finite:
                break
            best = max(finite, key=lambda k: (finite[k], -k))
            tried = sorted(scores)
            if best == tried[-1]:
                score(_half_decade(best, up=True))
            elif best == tried[0]:
                score(_half_decade(best, up=False))
            else:
                break
        scores = dict(sorted(scores.items()))
        finite = {k: v for k, v in scores.items() if v == v}
        best = max(finite, key=lambda k: (finite[k], -k)) if finite else None
        tried = sorted(scores)
        edge = None if best is None or len(tried) < 2 else (
            "upper" if best == tried[-1] else "lower" if best == tried[0] else None)
        table[m] = {"best": best, "scores": scores, "edge": edge}
        log(f"{m:<8} " + "  ".join(f"{lr:g}: {v:.4f}" for lr, v in scores.items()) + f"  → {best:g}"
            + (f"  (on the {edge} edge after {max_extend} extensions)" if edge else ""))
    return table
