"""Singular-value views of a weight update ΔW ∈ R^{out×in} (Week 01: why LoRA's low rank works).

``σ₁ ≥ σ₂ ≥ … ≥ σ_min(out,in) ≥ 0`` are the singular values of ΔW and ``‖ΔW‖²_F = Σ σᵢ²``.
By the Eckart–Young theorem the best rank-r approximation keeps the top r of them, so

    energy(r) = Σ_{i ≤ r} σᵢ² / Σ_i σᵢ²

is the share of ΔW that a rank-r update (such as LoRA's B A) can represent at best.
"""

from __future__ import annotations

import torch

__all__ = ["amplification_factor", "energy_captured", "energy_curve", "random_like", "rank_for_energy",
           "singular_values"]


def singular_values(delta_w: torch.Tensor) -> torch.Tensor:
    """σ of a 2-D matrix, descending, computed in float64."""
    if delta_w.dim() != 2:
        raise ValueError(f"delta_w must be a 2-D matrix, got shape {tuple(delta_w.shape)}")
    return torch.linalg.svdvals(delta_w.detach().double().cpu())


def energy_curve(delta_w: torch.Tensor) -> torch.Tensor:
    """``energy(r)`` for r = 1 … min(out, in)."""
    s2 = singular_values(delta_w) ** 2
    total = s2.sum()
    if total == 0:
        raise ValueError("delta_w is all zeros: it has no energy to split")
    return torch.cumsum(s2, 0) / total


def energy_captured(delta_w: torch.Tensor, r: int) -> float:
    """Share of ‖ΔW‖²_F in the top-r singular values (1 ≤ r ≤ min(out, in))."""
    full = min(delta_w.shape)
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= full:
        raise ValueError(f"r must be an int in [1, {full}] for a {tuple(delta_w.shape)} matrix, got {r!r}")
    return float(energy_curve(delta_w)[r - 1])


def random_like(delta_w: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """A Gaussian matrix with ΔW's shape and Frobenius norm: the 'no structure' baseline."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(delta_w.shape, generator=g, dtype=torch.float64)
    return noise * (delta_w.detach().double().norm() / noise.norm())


def rank_for_energy(matrix: torch.Tensor, share: float = 0.9) -> int:
    """The smallest r with ``energy(r) ≥ share``: how many directions hold that share of ‖·‖²_F."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ValueError(f"share must be a number in (0, 1], got {share!r}")
    curve = energy_curve(matrix)
    return int(torch.searchsorted(curve, torch.tensor(float(share), dtype=curve.dtype) - 1e-12).item()) + 1


def amplification_factor(delta_w: torch.Tensor, w0: torch.Tensor, r: int) -> float:
    """LoRA paper §7.3: ``‖ΔW‖_F / ‖U_rᵀ W0 V_r‖_F`` with U_r, V_r the top-r singular vectors of ΔW.

    How strongly ΔW amplifies the directions it lives in, compared with how much W0 already has there:
    a large factor means ΔW emphasises directions that W0 does *not* already emphasise.
    """
    if delta_w.shape != w0.shape:
        raise ValueError(f"delta_w {tuple(delta_w.shape)} and w0 {tuple(w0.shape)} must have the same shape")
    full = min(delta_w.shape)
    if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= full:
        raise ValueError(f"r must be an int in [1, {full}], got {r!r}")
    d, w = delta_w.detach().double().cpu(), w0.detach().double().cpu()
    U, _, Vh = torch.linalg.svd(d, full_matrices=False)
    projected = U[:, :r].T @ w @ Vh[:r].T
    return float(d.norm() / projected.norm())
