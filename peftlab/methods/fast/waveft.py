r"""WaveFT, speed-tuned: the same ``ΔW`` and output as :class:`peftlab.methods.waveft.WaveFTLinear` (the
reference, which forms ``Q`` and calls :func:`~peftlab.methods.waveft.idwt2`), computed three cheaper ways.

1. **Sparse terms.** ``Q`` has ``n`` non-zeros and each column of ``R_H`` / ``R_W`` at most ``L``, so
   ``R_H Q R_Wᵀ`` reduces to its ``n·L²`` non-zero terms, ``ΔW = s · Σ_k q_k · R_H[:, a_k] R_W[:, b_k]ᵀ``,
   accumulated in one ``index_add`` — no ``H×Wd`` grid. Where the dense product is cheaper (very dense ``Q``
   or long filters: its multiply-adds ≤ ``dense_product_factor`` × the ``n·L²`` terms) it is used instead.
2. **Fused forward.** ``ΔW`` is added into a copy of ``W0`` and the layer runs one product,
   ``y = x (W0 + ΣΔW)ᵀ + b``: one matmul forward and one for ``x``'s gradient instead of two each.
3. **Factored forward** (large layer, sparse spectrum, training): ``ΔW`` is never formed,
   ``x ΔWᵀ = s · (x R_W)[:, b] · diag(q) · R_H[:, a]ᵀ``, where ``x R_W`` is a strided view of ``x`` times the
   ``L×2`` taps and ``R_Hᵀ`` an overlap-add of ``L`` taps at stride 2 — ``O(L·(in+out) + n)`` per token.
   :meth:`FastWaveFTLinear.factored` picks it when ``factored_cost_factor·(L·(in+out) + 2n) < in·out``.

The per-adapter constants (term indices and weights, synthesis matrices) are derived from the adapter's
positions when first needed and kept per (device, dtype); they are not saved. Agreement with the reference
(values and gradients) is ``tests/methods/test_fast.py``'s.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.methods.waveft import (
    WaveFTLinear,
    filter_taps,
    matrix_positions,
    padded_shape,
    synthesis_matrix,
)

__all__ = ["FastWaveFTLinear"]


def _band(pos: torch.Tensor, n_pad: int, n_keep: int, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-zeros of the columns ``pos`` of ``R_{n_pad}[:n_keep]``: indices and values, each (len(pos), L).

    Entries outside ``[0, n_keep)`` get index 0 and value 0.
    """
    lo, hi = filter_taps(family)
    L = lo.numel()
    half = n_pad // 2
    is_hi = pos >= half
    k = torch.where(is_hi, pos - half, pos)
    t = torch.arange(L)
    idx = 2 * k[:, None] - (L - 2) + t[None, :]
    val = torch.where(is_hi[:, None], hi[None, :], lo[None, :])
    inside = (idx >= 0) & (idx < n_keep)
    return torch.where(inside, idx, 0), torch.where(inside, val, torch.zeros((), dtype=val.dtype))


class FastWaveFTLinear(WaveFTLinear):
    """:class:`WaveFTLinear` with ``ΔW`` from its sparse terms and a fused or factored forward (module docstring)."""

    #: the dense product ``R_H Q R_Wᵀ`` is used when its multiply-adds are at most this many times the
    #: sparse form's ``n·L²`` terms (a BLAS multiply-add is that much cheaper than a scattered add)
    dense_product_factor = 32
    #: how much dearer a scattered operation per token is than one multiply-add of ``ΔW``'s gradient product
    factored_cost_factor = 100
    #: ``None``: choose per adapter (:meth:`factored`); ``"fused"`` / ``"factored"``: always that way
    forward_mode: str | None = None

    # ------------------------------------------------------------------ derived constants
    def _key(self, adapter_name: str) -> tuple:
        return (adapter_name, self.waveft_n_frequency[adapter_name], self.waveft_wavelet_family[adapter_name],
                self.waveft_use_idwt[adapter_name], self.waveft_random_loc_seed[adapter_name])

    def _cache(self) -> dict:
        cache = self.__dict__.get("_fast_cache")
        if cache is None:
            cache = self.__dict__["_fast_cache"] = {}
        return cache

    def terms(self, adapter_name: str) -> dict:
        """The non-zero terms of ``R_H Q R_Wᵀ`` (cropped), per coefficient: flat index into ΔW and weight (fp64)."""
        cache = self._cache()
        key = (self._key(adapter_name), "terms")
        if key not in cache:
            rows, cols = self.waveft_indices[adapter_name].cpu()
            n_out, n_in = self.out_features, self.in_features
            family = self.waveft_wavelet_family[adapter_name]
            if not self.waveft_use_idwt[adapter_name]:
                cache[key] = {"flat": rows * n_in + cols, "weight": torch.ones(rows.numel(), 1, dtype=torch.float64)}
            else:
                qr, qc = matrix_positions(rows, cols, n_out, n_in, family)
                H, Wd = padded_shape(n_out, n_in, family)
                r_idx, r_val = _band(qr, H, n_out, family)
                c_idx, c_val = _band(qc, Wd, n_in, family)
                flat = (r_idx[:, :, None] * n_in + c_idx[:, None, :]).reshape(-1)
                weight = (r_val[:, :, None] * c_val[:, None, :]).reshape(rows.numel(), -1)
                cache[key] = {"flat": flat, "weight": weight, "matrix_rows": qr, "matrix_cols": qc, "padded": (H, Wd)}
        return cache[key]

    def _on(self, adapter_name: str, what: str, make, device, dtype) -> torch.Tensor:
        """A per-adapter constant on ``device`` (floating ones in ``dtype``), made once."""
        cache = self._cache()
        key = (self._key(adapter_name), what, device, dtype)
        if key not in cache:
            value = make()
            cache[key] = value.to(device=device, dtype=dtype if value.is_floating_point() else value.dtype)
        return cache[key]

    def _dense_is_cheaper(self, adapter_name: str) -> bool:
        terms = self.terms(adapter_name)
        if "padded" not in terms:
            return False
        H, Wd = terms["padded"]
        n_out, n_in = self.out_features, self.in_features
        dense = min(n_out * H * Wd + n_out * Wd * n_in, H * Wd * n_in + n_out * H * n_in)
        return dense <= self.dense_product_factor * terms["weight"].numel()

    # ------------------------------------------------------------------ ΔW
    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        return self._delta(adapter_name)

    def _delta(self, adapter_name: str, onto: torch.Tensor | None = None) -> torch.Tensor:
        """``ΔW``, or ``onto + ΔW`` (same dtype) with the sparse terms added straight into a copy of ``onto``."""
        spectrum = self.waveft_spectrum[adapter_name]
        dtype = self.base_weight().dtype
        work = torch.float32 if spectrum.device.type == "cpu" and dtype in (torch.float16, torch.bfloat16) else dtype
        q = spectrum.to(work) * self.waveft_scaling[adapter_name]
        terms = self.terms(adapter_name)
        device, n_out, n_in = spectrum.device, self.out_features, self.in_features
        if self._dense_is_cheaper(adapter_name):
            family = self.waveft_wavelet_family[adapter_name]
            H, Wd = terms["padded"]
            R_H = self._on(adapter_name, "R_H", lambda: synthesis_matrix(H, family)[:n_out], device, work)
            R_W = self._on(adapter_name, "R_W", lambda: synthesis_matrix(Wd, family)[:n_in], device, work)
            rows = self._on(adapter_name, "qr", lambda: terms["matrix_rows"], device, None)
            cols = self._on(adapter_name, "qc", lambda: terms["matrix_cols"], device, None)
            Q = torch.zeros(H, Wd, dtype=work, device=device).index_put((rows, cols), q)
            left_first = n_out * H * Wd + n_out * Wd * n_in <= H * Wd * n_in + n_out * H * n_in
            delta = (R_H @ Q) @ R_W.T if left_first else R_H @ (Q @ R_W.T)
        else:
            flat = self._on(adapter_name, "flat", lambda: terms["flat"], device, None)
            weight = self._on(adapter_name, "weight", lambda: terms["weight"], device, work)
            values = (q[:, None] * weight).reshape(-1)
            if onto is not None and onto.dtype == work:
                return onto.reshape(-1).index_add(0, flat, values).view(n_out, n_in)
            delta = torch.zeros(n_out * n_in, dtype=work, device=device).index_add(0, flat, values).view(n_out, n_in)
        return delta.to(dtype) if onto is None else onto + delta.to(dtype)

    # ------------------------------------------------------------------ forward
    def factored(self, adapter_name: str) -> bool:
        """Whether the forward applies this adapter factored (:meth:`adapter_forward`) rather than in ``W0 + ΔW``.

        Folded into the weight, training pays one extra ``out×in`` product per token for ``ΔW``'s gradient;
        factored, it pays about ``L·(in + out) + 2n`` scattered operations per token instead, so a large layer
        with a sparse spectrum is applied factored. Without gradients, folding is always cheaper.
        """
        if self.forward_mode is not None:
            return self.forward_mode == "factored"
        spectrum = self.waveft_spectrum[adapter_name]
        if not (torch.is_grad_enabled() and spectrum.requires_grad):
            return False
        family = self.waveft_wavelet_family[adapter_name]
        L = filter_taps(family)[0].numel() if self.waveft_use_idwt[adapter_name] else 1
        n = self.waveft_n_frequency[adapter_name]
        cost = self.factored_cost_factor * (L * (self.in_features + self.out_features) + 2 * n)
        return cost < self.in_features * self.out_features

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """``F.linear(x, W0 + Σ ΔW, b)`` plus the factored contribution of adapters applied factored."""
        names = [n for n in self.active_adapters if n not in self.merged_adapters] if self.adapters_enabled else []
        base = self.base_layer
        if not names or args or kwargs or type(base) is not nn.Linear or x.dtype != base.weight.dtype:
            return super().forward(x, *args, **kwargs)
        factored = [n for n in names if self.factored(n)]
        weight = base.weight
        for name in names:
            if name not in factored:
                weight = self._delta(name, onto=weight)  # W0 + ΔW in one pass (W0 itself is not modified)
        result = F.linear(x, weight, base.bias)
        for name in factored:
            result = self.adapter_forward(name, x, result)
        return result

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """``result + x ΔWᵀ`` without forming ΔW: ``x ΔWᵀ = s · (x R_W)[:, b] diag(q) R_H[:, a]ᵀ``.

        ``x R_W`` is one analysis step of ``x``'s rows: R_W has ``L`` non-zeros per column at stride 2, so it is
        a strided view of ``x`` (windows of ``L``, step 2) times the ``L×2`` tap matrix ``[lo, hi]``; the
        ``n`` selected columns are gathered and scaled by ``s·q``; multiplying by ``R_Hᵀ`` puts each back into
        its sub-band slot and overlap-adds ``L`` taps per coefficient at stride 2, then crops to ``out``.
        """
        spectrum = self.waveft_spectrum[adapter_name]
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).to(spectrum.dtype)
        q = spectrum * self.waveft_scaling[adapter_name]
        terms = self.terms(adapter_name)
        device, n_out, n_in = spectrum.device, self.out_features, self.in_features
        if "padded" not in terms:  # use_idwt=False: ΔW = s·C0
            indices = self.waveft_indices[adapter_name]
            rows = self._on(adapter_name, "rows", lambda: indices[0], device, None)
            cols = self._on(adapter_name, "cols", lambda: indices[1], device, None)
            z = x2.index_select(1, cols) * q
            extra = torch.zeros(x2.shape[0], n_out, dtype=z.dtype, device=device).index_add(1, rows, z)
            return result + extra.reshape(*shape[:-1], n_out).to(result.dtype)
        family = self.waveft_wavelet_family[adapter_name]
        H, Wd = terms["padded"]
        lo, hi = (t.tolist() for t in filter_taps(family))  # Python floats: no dtype promotion
        p, m = len(lo) - 2, len(lo) // 2
        qr = self._on(adapter_name, "qr", lambda: terms["matrix_rows"], device, None)
        qc = self._on(adapter_name, "qc", lambda: terms["matrix_cols"], device, None)
        # Tokens run along the columns (rows = features), so every step below moves whole rows.
        # Analysis along in: (x R_W)ᵀ[k] = Σ_t lo[t]·x[2k − p + t], detail rows likewise with hi.
        xpad = F.pad(x2.T, (0, 0, p, Wd - n_in)).view(Wd // 2 + m - 1, 2, -1)
        W2 = Wd // 2
        u_lo = sum(lo[2 * j + e] * xpad[j: j + W2, e] for j in range(m) for e in (0, 1))
        u_hi = sum(hi[2 * j + e] * xpad[j: j + W2, e] for j in range(m) for e in (0, 1))
        z = torch.cat([u_lo, u_hi]).index_select(0, qc) * q[:, None]  # (n, T): the selected columns, ·s·q
        # Synthesis along out: sub-band rows of Q·(…), each expanded by the taps at stride 2 and overlap-added.
        slots = torch.zeros(H, x2.shape[0], dtype=z.dtype, device=device).index_add(0, qr, z)
        s_lo, s_hi = slots[: H // 2], slots[H // 2:]
        parity = [sum(F.pad(lo[2 * j + e] * s_lo + hi[2 * j + e] * s_hi, (0, 0, j, m - 1 - j)) for j in range(m))
                  for e in (0, 1)]
        full = torch.stack(parity, 1).reshape(H + p, -1)
        extra = full[p: p + n_out].T
        return result + extra.reshape(*shape[:-1], n_out).to(result.dtype)
