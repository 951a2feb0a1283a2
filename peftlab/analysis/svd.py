"""Singular-value views of a weight update ΔW ∈ R^{out×in} (Week 01: why LoRA's low rank works).

``σ₁ ≥ σ₂ ≥ … ≥ σ_min(out,in) ≥ 0`` are the singular values of ΔW and ``‖ΔW‖²_F = Σ σᵢ²``.
By the Eckart–Young theorem the best rank-r approximation keeps the top r of them, so

    energy(r) = Σ_{i ≤ r} σᵢ² / Σ_i σᵢ²

is the share of ΔW that a rank-r update (such as LoRA's B A) can represent at best.
"""

from __future__ import annotations

import torch

__all__ = ["singular_values", "energy_captured", "energy_curve", "random_like"]


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
