r"""DoRA, speed-tuned: the forward's row norm ``‖W0 + s·B A‖_row`` without forming the out×in matrix.

Row j of ``W + s·B A`` has squared norm ``w_j² + 2s·c_j + s²·d_j`` with ``w = ‖W‖_row``,
``c = rowsum((W Aᵀ) ⊙ B)`` and ``d = rowsum((B (A Aᵀ)) ⊙ B)``, so ``n = w · sqrt(1 + (2s·c + s²·d) / w²)``:
O(out·in·r) work and O(out·r) memory instead of an out×in temporary (the reference,
:func:`peftlab.methods.dora.direction_norm`, forms the matrix, as peft does). Everything else — the
magnitude, the forward's formula, merging (which forms the matrix anyway) — is the reference layer's.
Agreement with the reference (values and gradients) is ``tests/methods/test_fast.py``'s.
"""

from __future__ import annotations

import torch

from peftlab.methods.dora import DoRAEmbedding, DoRALinear

__all__ = ["FactoredNorm", "FastDoRAEmbedding", "FastDoRALinear"]


class FactoredNorm:
    """The forward's norm of a DoRA layer computed factored (module docstring); mixed in before the layer class."""

    #: smallest weight (out·in) for which the norm is computed factored: below it forming the matrix is as fast
    #: (measured crossover on CPU between 512×512 and 512×1024)
    factored_norm_min_numel = 1 << 18

    def forward_norm(self, adapter_name: str, weight: torch.Tensor) -> torch.Tensor:
        """``‖W + s·B A‖_row`` (no gradient). It equals ``w`` exactly while ``B A = 0`` and the direct norm to a
        few ulps. Where the rows nearly cancel (``n < 0.3·w``), in half precision, and for layers under
        ``factored_norm_min_numel`` weights it returns the reference's direct norm."""
        if weight.dtype not in (torch.float32, torch.float64) or weight.numel() < self.factored_norm_min_numel:
            return self.weight_norm(adapter_name, weight)
        A, B = self.factors(adapter_name)
        s = self.scaling[adapter_name]
        W = self.oriented(weight)
        with torch.no_grad():
            A, B = A.to(W.dtype), B.to(W.dtype)
            w = torch.linalg.vector_norm(W, dim=1)
            c = ((W @ A.T) * B).sum(dim=1)
            d = ((B @ (A @ A.T)) * B).sum(dim=1)
            q = 1 + (2 * s * c + (s * s) * d) / (w * w)
            if not bool(torch.isfinite(q).all()) or bool((q < 0.09).any()):
                return self.weight_norm(adapter_name, weight)
            return w * q.sqrt()


class FastDoRALinear(FactoredNorm, DoRALinear):
    """:class:`~peftlab.methods.dora.DoRALinear` with the factored forward norm."""


class FastDoRAEmbedding(FactoredNorm, DoRAEmbedding):
    """:class:`~peftlab.methods.dora.DoRAEmbedding` with the factored forward norm."""
