r"""Magnitude and direction of a weight, and how fine-tuning changes them (Week 03: DoRA).

DoRA (Liu et al., 2024, arXiv 2402.09353) writes a weight as ``W = m · V / ‖V‖_c``. In PyTorch's out×in
layout the paper's "column" is one output unit, i.e. one *row* of ``W``::

    m_j = ‖W[j, :]‖₂                      (out,)     the magnitude of output unit j
    D[j, :] = W[j, :] / m_j               (out, in)  its direction, a unit vector

The paper's weight-decomposition analysis (§3, Eq. 3–4) compares a fine-tuned weight ``W_t`` with the
pre-trained ``W0`` unit by unit and averages over the ``out`` units::

    ΔM_t = mean_j | ‖W_t[j]‖ − ‖W0[j]‖ |             magnitude change
    ΔD_t = mean_j ( 1 − cos(W_t[j], W0[j]) )          direction change

For LoRA ``W_t = W0 + s·B A``; for DoRA ``W_t = diag(m/‖W0 + s·B A‖)(W0 + s·B A)``, whose row norms are ``m``
and whose directions are those of ``W0 + s·B A`` (so ΔM uses DoRA's ``m`` and ΔD its ``V``, as the paper);
for full fine-tuning the trained weight itself. :func:`adapted_weight` returns that matrix for any of the three,
and :class:`WeightSnapshots` records it during training (a forward pre-hook; no change to the training loop).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["WeightSnapshots", "adapted_weight", "magnitude_direction", "magnitude_direction_change", "pearson",
           "spearman", "unit_changes"]


def magnitude_direction(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(m, D)`` with ``m = ‖W‖_row`` (out,) and ``D = W / m`` row by row (out, in), so ``W = diag(m) · D``."""
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D out×in matrix, got shape {tuple(weight.shape)}")
    w = weight.detach()
    m = torch.linalg.vector_norm(w, dim=1)
    if bool((m == 0).any()):
        raise ValueError("a row of the weight is all zeros: its direction is undefined")
    return m, w / m.unsqueeze(1)


def unit_changes(w0: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per output unit j (float64, shape (out,) each): ``(|‖W[j]‖ − ‖W0[j]‖|, 1 − cos(W[j], W0[j]))``."""
    if w0.shape != w.shape or w0.dim() != 2:
        raise ValueError(f"w0 and w must be 2-D with the same shape, got {tuple(w0.shape)} and {tuple(w.shape)}")
    w0, w = w0.detach().double().cpu(), w.detach().double().cpu()
    m0, m = torch.linalg.vector_norm(w0, dim=1), torch.linalg.vector_norm(w, dim=1)
    cos = (w0 * w).sum(dim=1) / (m0 * m)
    return (m - m0).abs(), 1 - cos


def magnitude_direction_change(w0: torch.Tensor, w: torch.Tensor) -> tuple[float, float]:
    """The paper's ``(ΔM, ΔD)`` of ``w`` against ``w0`` (both out×in): the means of :func:`unit_changes`."""
    dm, dd = unit_changes(w0, w)
    return float(dm.mean()), float(dd.mean())


def adapted_weight(module: nn.Module, adapter_name: str = "default") -> torch.Tensor:
    """The out×in weight a layer computes with (a detached copy, on the CPU).

    ``nn.Linear``: its weight; a LoRA layer: ``W0 + s·B A``; a DoRA layer: ``diag(m/n)(W0 + s·B A)``.
    """
    from peftlab.core.layer import AdapterLayer
    from peftlab.methods.dora import DoRALayer

    with torch.no_grad():
        if isinstance(module, DoRALayer):
            w = module.oriented(module.merged_weight(adapter_name))
        elif isinstance(module, AdapterLayer):
            w = module.base_weight()
            if adapter_name not in module.merged_adapters:
                w = w + module.delta_weight(adapter_name).to(w.dtype)
        elif isinstance(module, nn.Linear):
            w = module.weight
        else:
            raise TypeError(f"expected an nn.Linear or a peftlab adapter layer, got {type(module).__name__}")
        return w.detach().float().cpu().clone()


class WeightSnapshots:
    """Record :func:`adapted_weight` of some layers every ``every`` training steps.

    A forward pre-hook on ``model`` counts forward passes in training mode (one per optimizer step with
    :func:`peftlab.train.train_classifier`; evaluation passes are not counted) and, before step ``k`` with
    ``k % every == 0``, stores the weights reached after ``k`` steps. Call :meth:`record` once after training for
    the final weights, and :meth:`remove` to detach the hook. ``steps`` and ``weights[name]`` are parallel lists.
    """

    def __init__(self, model: nn.Module, names: list[str], every: int):
        if every < 1:
            raise ValueError(f"every must be ≥ 1, got {every}")
        self.model, self.names, self.every = model, list(names), every
        self.steps: list[int] = []
        self.weights: dict[str, list[torch.Tensor]] = {name: [] for name in self.names}
        self._count = 0
        self._handle = model.register_forward_pre_hook(self._hook)

    def _hook(self, module, args) -> None:
        if module.training:
            if self._count % self.every == 0:
                self.record(self._count)
            self._count += 1

    def record(self, step: int | None = None) -> None:
        """Store the current weights, as after ``step`` optimizer steps (default: every step counted so far)."""
        step = self._count if step is None else step
        if self.steps and self.steps[-1] == step:
            return
        self.steps.append(step)
        for name in self.names:
            self.weights[name].append(adapted_weight(self.model.get_submodule(name)))

    def remove(self) -> None:
        self._handle.remove()


def pearson(x, y) -> float:
    """Pearson correlation of two equally long sequences of numbers (nan if either is constant)."""
    x, y = torch.as_tensor(x, dtype=torch.float64).flatten(), torch.as_tensor(y, dtype=torch.float64).flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"need two sequences of the same length ≥ 2, got {x.numel()} and {y.numel()}")
    xc, yc = x - x.mean(), y - y.mean()
    denom = xc.norm() * yc.norm()
    return float((xc * yc).sum() / denom) if denom > 0 else float("nan")


def _ranks(v: torch.Tensor) -> torch.Tensor:
    """Ranks 0 … n−1 of a 1-D float64 tensor, ties sharing their average rank."""
    order = torch.argsort(v, stable=True)
    ranks = torch.empty_like(v)
    ranks[order] = torch.arange(v.numel(), dtype=v.dtype)
    values, inverse = torch.unique(v, return_inverse=True)
    if values.numel() < v.numel():  # average the ranks of tied values
        sums = torch.zeros(values.numel(), dtype=v.dtype).index_add_(0, inverse, ranks)
        counts = torch.zeros(values.numel(), dtype=v.dtype).index_add_(0, inverse, torch.ones_like(v))
        ranks = (sums / counts)[inverse]
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation: :func:`pearson` of the ranks (ties get their average rank; nan if constant).

    Unchanged by any increasing transform of x or y (a log axis, a matrix's overall scale), so it compares
    matrices and time steps of different size on the same footing.
    """
    x, y = torch.as_tensor(x, dtype=torch.float64).flatten(), torch.as_tensor(y, dtype=torch.float64).flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"need two sequences of the same length ≥ 2, got {x.numel()} and {y.numel()}")
    return pearson(_ranks(x), _ranks(y))
