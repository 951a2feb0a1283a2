"""Speed-tuned twins of the reference layers, selected explicitly.

Each file in ``peftlab/methods/`` is the reference: its layer computes the paper's formula as written.
A twin here subclasses that layer, adds no tensors and changes only *how* the same numbers are computed:

* :class:`~peftlab.methods.fast.waveft.FastWaveFTLinear` — ``ΔW`` from its ``n·L²`` sparse terms, folded into
  one product with ``W0`` or applied factored (never formed) for a large sparse layer;
* :class:`~peftlab.methods.fast.dora.FastDoRALinear` / ``FastDoRAEmbedding`` — the row norm without forming
  the out×in matrix;
* :class:`~peftlab.methods.fast.vblora.FastVBLoRALinear` — A and B from one top-k call.

``use_fast(model)`` turns every layer with a twin into it, in place (``use_fast(model, False)`` back); saving,
loading, merging and the model-level operations treat a twin as its reference layer. Call it after the last
``inject`` (a layer wrapped later is a reference layer). ``tests/methods/test_fast.py`` proves each twin equal to
its reference (values and gradients); ``benchmarks/run.py`` times both against peft.
"""

from __future__ import annotations

from torch import nn

from peftlab.core import argcheck
from peftlab.core.layer import AdapterLayer
from peftlab.methods.dora import DoRAEmbedding, DoRALinear
from peftlab.methods.fast.dora import FastDoRAEmbedding, FastDoRALinear
from peftlab.methods.fast.vblora import FastVBLoRALinear
from peftlab.methods.fast.waveft import FastWaveFTLinear
from peftlab.methods.vblora import VBLoRALinear
from peftlab.methods.waveft import WaveFTLinear

__all__ = ["TWINS", "use_fast"]

#: reference layer class → its speed-tuned twin
TWINS: dict[type[AdapterLayer], type[AdapterLayer]] = {
    WaveFTLinear: FastWaveFTLinear,
    DoRALinear: FastDoRALinear,
    DoRAEmbedding: FastDoRAEmbedding,
    VBLoRALinear: FastVBLoRALinear,
}


def use_fast(model: nn.Module, fast: bool = True) -> nn.Module:
    """Make every adapter layer of ``model`` that has a twin the twin (``fast=True``) or the reference
    (``fast=False``), in place; returns ``model``. Layers without a twin are left as they are."""
    argcheck.flag("fast", fast)
    back = {twin: ref for ref, twin in TWINS.items()}
    for module in model.modules():
        kind = type(module)
        new = TWINS.get(kind) if fast else back.get(kind)
        if new is not None:
            module.__class__ = new
    return model
