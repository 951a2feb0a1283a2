"""Phase III: a Gaussian process (Matérn-5/2) on configuration features and expected improvement."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from peftlab.qr_adaptor.space import Config, SearchSpace


def _matern52(x1: torch.Tensor, x2: torch.Tensor, length: float) -> torch.Tensor:
    d = torch.cdist(x1, x2) / length
    s5 = math.sqrt(5.0) * d
    return (1 + s5 + 5.0 / 3.0 * d ** 2) * torch.exp(-s5)


def gp_posterior(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor,
                 lengths: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0), noise: float = 1e-3
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and standard deviation of a zero-mean GP, kernel ``σ²·Matérn-5/2(ℓ) + noise·I``, on
    standardised targets; ``ℓ`` is the value of ``lengths`` with the highest log marginal likelihood and ``σ²``
    its closed-form optimum. Float64 throughout."""
    x, xt = x_train.double(), x_test.double()
    y = y_train.double().reshape(-1)
    mu, sd = y.mean(), y.std() if y.numel() > 1 else torch.tensor(1.0, dtype=torch.float64)
    sd = sd if sd > 0 else torch.tensor(1.0, dtype=torch.float64)
    z = (y - mu) / sd
    n = z.numel()
    best = None
    for ell in lengths:
        k = _matern52(x, x, ell) + noise * torch.eye(n, dtype=torch.float64)
        chol = torch.linalg.cholesky(k)
        alpha = torch.cholesky_solve(z[:, None], chol)
        sigma2 = float(z @ alpha[:, 0]) / n  # amplitude that maximises the likelihood for this ℓ
        sigma2 = max(sigma2, 1e-9)
        lml = -0.5 * n * math.log(sigma2) - float(torch.log(torch.diagonal(chol)).sum())
        if best is None or lml > best[0]:
            best = (lml, ell, chol, alpha, sigma2)
    _, ell, chol, alpha, sigma2 = best
    ks = _matern52(xt, x, ell)
    mean = ks @ alpha[:, 0]
    v = torch.cholesky_solve(ks.T, chol)
    var = (1.0 + noise - (ks * v.T).sum(1)).clamp(min=1e-12) * sigma2
    return mean * sd + mu, var.sqrt() * sd


def expected_improvement(mean: torch.Tensor, std: torch.Tensor, best: float, xi: float = 0.0) -> torch.Tensor:
    """EI for maximisation: ``(μ − f* − ξ)Φ(z) + σφ(z)``, ``z = (μ − f* − ξ)/σ``."""
    imp = mean - best - xi
    z = imp / std
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    pdf = torch.exp(-0.5 * z ** 2) / math.sqrt(2 * math.pi)
    return (imp * cdf + std * pdf).clamp(min=0.0)


def _embed(config: Config, space: SearchSpace, importance: Sequence[float]) -> list[float]:
    sq = [space.bits.index(b) / max(len(space.bits) - 1, 1) for b, _ in config]
    sr = [space.ranks.index(r) / max(len(space.ranks) - 1, 1) for _, r in config]
    n = len(config)
    return sq + sr + [sum(i * s for i, s in zip(importance, sq, strict=True)) / n,
                      sum(i * s for i, s in zip(importance, sr, strict=True)) / n]


def _utility(loss: float, nbytes: int, losses: tuple[float, float], sizes: tuple[int, int], alpha: float) -> float:
    """Phase III's scalar utility ``α·P̂ − (1−α)·M̂``: ``P̂`` = −loss and ``M̂`` = bytes, min-max normalised."""
    (lmin, lmax), (smin, smax) = losses, sizes
    p = 0.0 if lmax == lmin else (lmax - loss) / (lmax - lmin)
    m = 0.0 if smax == smin else (nbytes - smin) / (smax - smin)
    return alpha * p - (1 - alpha) * m
