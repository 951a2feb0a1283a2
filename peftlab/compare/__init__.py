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

The package, one concern a module (each imports only those above it in this list; every name below is also
importable from ``peftlab.compare`` itself):

* :mod:`peftlab.compare.methods` — the method table :data:`METHODS` (:data:`FULL`, then the registry's recipes:
  :func:`methods_from_registry`), the old names :data:`ALIASES`, :func:`parse_methods`, :func:`parse_seeds`;
* :mod:`peftlab.compare.config` — :class:`CompareConfig`, the swept :data:`LEARNING_RATES` (read from
  ``peftlab/compare_lr/``, :data:`LR_FOLDER`), :data:`LR_GRID`, :data:`TUNE_SEEDS`, :func:`load_config_file`;
* :mod:`peftlab.compare.tasks` — the sentiment and instruction tasks (data, model, batches, loss, evaluation);
* :mod:`peftlab.compare.cell` — :func:`run_cell`: one (method, seed) trained and measured (time, memory, bytes);
* :mod:`peftlab.compare.report` — :func:`summarize`, :func:`timing_noise`, :func:`per_example_scores`,
  :func:`format_summary` and the result files and plots (:func:`write_results`);
* :mod:`peftlab.compare.run` — :func:`run_comparison` (an output folder, resuming, ``jobs`` worker processes)
  and the stored comparisons of ``peftlab/compare_runs/`` (:func:`stored_comparison`);
* :mod:`peftlab.compare.sweep` — :func:`tune_learning_rates` (``peftlab compare --tune-lr``).
"""

from __future__ import annotations

from peftlab.compare.cell import run_cell
from peftlab.compare.config import (
    LEARNING_RATES,
    LR_FOLDER,
    LR_GRID,
    LR_MAX_EXTEND,
    TUNE_SEEDS,
    CompareConfig,
    load_config_file,
    sweep_name,
)
from peftlab.compare.methods import (
    ALIASES,
    FULL,
    METHODS,
    Method,
    canonical_method,
    known_methods,
    methods_from_registry,
    parse_methods,
    parse_seeds,
)
from peftlab.compare.report import (
    RESULT_COLUMNS,
    SUMMARY_COLUMNS,
    format_summary,
    per_example_scores,
    plot_results,
    summarize,
    timing_noise,
    write_results,
)
from peftlab.compare.run import STORED_RUNS, run_comparison, stored_comparison, stored_run_names
from peftlab.compare.sweep import tune_learning_rates
from peftlab.core.recipe import ENCODER_TARGETS, LLAMA_TARGETS, TASKS

__all__ = ["ALIASES", "CompareConfig", "ENCODER_TARGETS", "FULL", "LEARNING_RATES", "LLAMA_TARGETS", "LR_FOLDER",
           "LR_GRID", "LR_MAX_EXTEND", "METHODS", "Method", "RESULT_COLUMNS", "STORED_RUNS", "SUMMARY_COLUMNS", "TASKS",
           "TUNE_SEEDS", "canonical_method", "format_summary", "known_methods", "load_config_file",
           "methods_from_registry", "parse_methods", "parse_seeds", "per_example_scores", "plot_results", "run_cell",
           "run_comparison", "stored_comparison", "stored_run_names", "summarize", "sweep_name", "timing_noise",
           "tune_learning_rates", "write_results"]
