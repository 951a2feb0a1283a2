r"""WaveFT: a sparse update learned in the wavelet domain (Bilican, Yılmaz, Tekalp, Cinbiş, 2025,
"Exploring Sparsity for Parameter Efficient Fine Tuning Using Wavelets", arXiv 2505.12532).

Notation as in :mod:`peftlab.methods.lora` (PyTorch's and peft's): a frozen ``nn.Linear`` holds
``W0 ∈ R^{out×in}``; ``x ∈ R^{…×in}``. WaveFT does not look at ``W0`` at all. It learns a sparse update
"in the wavelet domain of the residual matrix" (the paper's words; the residual is ``ΔW``): ``n`` wavelet
coefficients — peft's ``waveft_spectrum[name] ∈ R^n``, ``n = n_frequency`` — initialised to **zero**, at
``n`` fixed random positions, mapped to weight space by one level of the inverse 2-D discrete wavelet
transform (IDWT)::

    ΔW = s · crop( R_H · Q · R_Wᵀ ) ∈ R^{out×in}          s = ``scaling`` (default 25)

* ``L``: the filter length of the wavelet (db1/haar: 2, db2: 4, sym4: 8, coif1: 6 …), ``p = L − 2``.
* ``H = out + p``, ``Wd = in + p``, each rounded up to even (peft's padding, so that the transform's
  boundary loss of ``p`` samples still leaves ``out × in``).
* ``Q ∈ R^{H×Wd}``: zero except at the ``n`` coefficient positions, which hold the spectrum. The positions
  are drawn once, exactly as peft draws them: ``idx = randperm(out·in, Generator().manual_seed(seed))[:n]``,
  ``(idx // in, idx % in)``, shifted by ``(⌊(H−out)/2⌋, ⌊(Wd−in)/2⌋)`` into the padded grid
  (``random_loc_seed``, default 777; the same seed for every layer; *not saved* — regenerated on load).
* ``R_N ∈ R^{(N−p)×N}`` (``R_H``, ``R_Wd``; ``R_W`` in the formula): the synthesis (inverse-DWT) matrix of
  one axis of even length ``N``, built from pywt's reconstruction taps ``lo = rec_lo``, ``hi = rec_hi``: for
  ``k < N/2``, ``R[i, k] = lo[i + p − 2k]`` and ``R[i, N/2 + k] = hi[i + p − 2k]`` (zero where the tap
  index leaves ``[0, L)``). It is exactly
  ``conv_transpose1d(·, filter, stride=2)`` followed by the transform's crop of ``p`` samples per side, so
  ``R_H Q R_Wᵀ`` is peft's ``waverec2d`` (a port of ptwt), and ``pywt.waverec2`` for every mode but
  ``"periodization"``. ``crop`` keeps the first ``out`` rows and ``in`` columns (peft's centre crop, whose
  start is 0 here).
* Layout: peft fills a dense ``H×Wd`` matrix ``[[cA, cH], [cV, cD]]`` and splits it into pywt's sub-bands;
  pywt's ``cH`` is "detail along the rows" (high-pass on the first axis), so in the matrix form the two
  off-diagonal blocks trade places: ``Q = [[cA, cV], [cH, cD]]``. peftlab moves each position once, at
  creation (:func:`matrix_positions`).

The layer computes exactly that: :meth:`WaveFTLinear.coefficients` scatters the spectrum into ``Q``,
:func:`idwt2` multiplies by the synthesis matrices (built once per (size, family) and cached; stored sparse on
the CPU, since each row holds only ``L`` taps), and the
forward is ``y = base(x) + x ΔWᵀ``, as peft's (peft rebuilds ``ΔW`` with a 4-channel ``conv_transpose2d``
over the padded grid instead). :mod:`peftlab.methods.fast.waveft` computes the same faster (``Q``'s ``n·L²``
non-zero terms instead of two matrix products, ``ΔW`` folded into one product with ``W0``, or never formed
for a large sparse layer); ``peftlab.methods.fast.use_fast(model)`` selects it.

``use_idwt=False``: no transform; ``ΔW = s · C0`` with ``C0 ∈ R^{out×in}`` zero except at the positions
(a sparse update directly in weight space, SHiRA-like). Trainable parameters per layer: ``n``.
``proportional_parameters=True`` gives a layer ``max(1, round(in·out / Σ(in·out) · n·L_t))`` instead
(``L_t`` = number of target layers, the sums over them, as peft); ``n_frequency_pattern`` overrides ``n``
per layer (regex keys, as LoRA's ``rank_pattern``). Merging folds ``ΔW`` into ``W0``; unmerge subtracts it.

Families: every orthogonal wavelet peft accepts that it (and pywt) has taps for — ``db1…db10``,
``sym2…sym10``, ``coif1…coif5`` — plus ``haar`` (= db1; peft's config rejects the name). peft's config
also accepts ``db11…db38``, ``sym11…sym20``, ``coif6…coif17``, then fails at the first forward (no taps);
peftlab refuses them up front, as it refuses non-orthogonal wavelets (bior, rbio), for which ``R`` would
not be the transform's inverse. peft 0.21.2's own filter tables for coif4 (taps off by up to 1.2e-2, not
orthonormal) and coif5 (48 taps instead of 30; its first forward fails) are not those wavelets: peftlab
computes pywt's, and its peft codec (below) refuses to exchange coif4/coif5 adapters with peft.

**Lecture erratum.** The lecture says WaveFT computes ``C = DWT(W0)``, trains a masked ``C`` and sets
``ΔW = IDWT(C_train)``. There is no DWT of ``W0`` anywhere: the paper (and peft) train a sparse,
zero-initialised coefficient set of ``ΔW`` itself, at random positions, and add ``s·IDWT`` of it to
``W0``; a fresh adapter is exactly the base model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
import torch
from torch import nn

from peftlab.core import argcheck
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.layer import AdapterLayer
from peftlab.core.peft_format import Codec, register_codec
from peftlab.core.recipe import Recipe, head, targets
from peftlab.core.targets import pattern_key
from peftlab.core.tuner import inject, register_method

__all__ = [
    "FAMILIES",
    "WaveFTConfig",
    "WaveFTLinear",
    "apply_waveft",
    "coefficient_locations",
    "filter_taps",
    "idwt2",
    "matrix_positions",
    "padded_shape",
    "synthesis_matrix",
]

#: the wavelet families peftlab implements: orthogonal, with taps in pywt and in peft
FAMILIES: tuple[str, ...] = (
    tuple(f"db{i}" for i in range(1, 11)) + tuple(f"sym{i}" for i in range(2, 11))
    + tuple(f"coif{i}" for i in range(1, 6)) + ("haar",)
)
_ALIASES = {"haar": "db1"}
_ALLOWED = "db1…db10, sym2…sym10, coif1…coif5 or haar (= db1)"


def _canonical(family: str) -> str:
    return _ALIASES.get(family, family)


def _check_family(family) -> None:
    if not isinstance(family, str):
        raise TypeError(f"wavelet_family must be a string naming a wavelet, got {family!r}")
    if family in FAMILIES:
        return
    import pywt

    known = family in pywt.wavelist(kind="discrete")
    if known and not pywt.Wavelet(family).orthogonal:
        why = "is not orthogonal (its synthesis matrix is not the transform's inverse; peft does not accept it)"
    elif re.fullmatch(r"db([1-9]|[12]\d|3[0-8])|sym([2-9]|1\d|20)|coif([1-9]|1[0-7])", family):
        why = ("has no filter taps in peft's WaveFT (peft's config accepts the name, then fails at the first "
               "forward)")
    elif known:
        why = "is not one of peft's WaveFT families"
    else:
        why = "is not a known wavelet"
    raise ValueError(f"wavelet_family={family!r} {why}; allowed: {_ALLOWED}")


# ---------------------------------------------------------------------- the transform as matrices
@cache
def _taps(family: str) -> tuple[np.ndarray, np.ndarray]:
    import pywt

    wavelet = pywt.Wavelet(_canonical(family))
    return np.asarray(wavelet.rec_lo, dtype=np.float64), np.asarray(wavelet.rec_hi, dtype=np.float64)


def filter_taps(family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """pywt's reconstruction taps ``(rec_lo, rec_hi)`` of ``family`` (float64, length L)."""
    _check_family(family)
    lo, hi = _taps(family)
    return torch.from_numpy(lo.copy()), torch.from_numpy(hi.copy())


def padded_shape(n_out: int, n_in: int, family: str) -> tuple[int, int]:
    """peft's padded grid ``(H, Wd)``: ``out + L − 2`` and ``in + L − 2``, each rounded up to even."""
    p = len(_taps(family)[0]) - 2
    return n_out + p + (n_out + p) % 2, n_in + p + (n_in + p) % 2


@lru_cache(maxsize=64)
def _synthesis_np(n: int, family: str) -> np.ndarray:
    lo, hi = _taps(family)
    L = len(lo)
    p, half = L - 2, n // 2
    R = np.zeros((n - p, n))
    for k in range(half):
        for t in range(L):
            i = 2 * k - p + t
            if 0 <= i < n - p:
                R[i, k] = lo[t]
                R[i, half + k] = hi[t]
    R.setflags(write=False)
    return R


def synthesis_matrix(n: int, family: str, dtype: torch.dtype = torch.float64,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """``R_n ∈ R^{(n−L+2)×n}``, one level of the inverse DWT along one axis as a matrix.

    Columns ``[0, n/2)`` take the approximation coefficients, ``[n/2, n)`` the details:
    ``R[i, k] = rec_lo[i + L − 2 − 2k]``, ``R[i, n/2 + k] = rec_hi[i + L − 2 − 2k]``. Built once per
    ``(n, family)`` (cached). ``n`` must be even.
    """
    _check_family(family)
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n % 2:
        raise ValueError(f"n={n!r}: the synthesis matrix needs an even length ≥ 2")
    if n < len(_taps(family)[0]) - 2:
        raise ValueError(f"n={n} is shorter than the {family} filter's boundary loss {len(_taps(family)[0]) - 2}")
    return torch.from_numpy(_synthesis_np(n, family).copy()).to(dtype=dtype, device=device)


@lru_cache(maxsize=32)
def _shared_synthesis_matrix(n: int, family: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """:func:`synthesis_matrix` on ``(dtype, device)``, built once and shared by every layer of that size (read,
    never written: :func:`idwt2` only multiplies by it). On the CPU it is stored sparse: ``R`` is banded, ``L``
    non-zeros per row, so ``R @ Q`` costs ``L·n·m`` multiply-adds instead of ``n²·m`` (the same product;
    elsewhere the dense matrix, which accelerators multiply fast)."""
    R = synthesis_matrix(n, family, dtype, device)
    return R.to_sparse() if R.device.type == "cpu" else R


def idwt2(Q: torch.Tensor, family: str) -> torch.Tensor:
    """One level of the inverse 2-D DWT of ``Q = [[cA, cV], [cH, cD]]`` (pywt's sub-band names) as two
    matrix products, ``R_H Q R_Wᵀ``: equal to ``pywt.waverec2([cA, (cH, cV, cD)], family, mode="zero")``
    and to peft's ``waverec2d`` of the dense ``[[cA, cH], [cV, cD]]``. ``R_H`` and ``R_W`` are built once per
    (size, family, dtype, device) and reused; ``R_H Q R_Wᵀ`` is computed as ``(R_W (R_H Q)ᵀ)ᵀ`` so that each
    synthesis matrix is on the left of its product (where a sparse matrix can be)."""
    H, Wd = Q.shape[-2:]
    R_H = _shared_synthesis_matrix(H, family, Q.dtype, Q.device)
    R_W = _shared_synthesis_matrix(Wd, family, Q.dtype, Q.device)
    return (R_W @ (R_H @ Q).T).T


def coefficient_locations(n_out: int, n_in: int, n_frequency: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """peft's coefficient positions in the ``out×in`` grid: ``randperm(out·in)`` from ``seed``, first ``n``."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n_out * n_in, generator=generator)[:n_frequency]
    return idx // n_in, idx % n_in


def matrix_positions(rows: torch.Tensor, cols: torch.Tensor, n_out: int, n_in: int,
                     family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Where peft's positions land in the matrix-form ``Q`` (padding offset, off-diagonal blocks swapped)."""
    H, Wd = padded_shape(n_out, n_in, family)
    r = rows + (H - n_out) // 2
    c = cols + (Wd - n_in) // 2
    H2, W2 = H // 2, Wd // 2
    block_r, block_c = (r >= H2).long(), (c >= W2).long()
    return r - block_r * H2 + block_c * H2, c - block_c * W2 + block_r * W2


# ---------------------------------------------------------------------- config
def _check_count(name: str, value) -> None:
    argcheck.positive_int(name, value, "an int ≥ 1 (the number of trainable coefficients)")


def _check_scaling(scaling) -> None:
    argcheck.number("scaling", scaling, allowed="a finite number")


def _check_seed(seed) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):  # any int, negative too (argcheck.positive_int would refuse)
        raise TypeError(f"random_loc_seed must be an int, got {type(seed).__name__} ({seed!r})")
    try:
        torch.Generator().manual_seed(seed)
    except (RuntimeError, OverflowError, ValueError):
        raise ValueError(f"random_loc_seed={seed} is not allowed: expected an int in [−2⁶³, 2⁶⁴)") from None


@dataclass
class WaveFTConfig(AdapterConfig):
    """A WaveFT adapter's settings, validated at construction (peft's ``WaveFTConfig`` names).

    ``n_frequency`` (trainable coefficients per layer), ``scaling`` (s), ``wavelet_family``, ``use_idwt``,
    ``random_loc_seed``, ``proportional_parameters``, ``n_frequency_pattern`` (per-layer ``n``: regex keys
    matched at the end of the module name, first match wins), ``init_weights`` (True: zeros; False:
    ``0.01·randn``, as peft), ``target_modules`` (``nn.Linear`` layers: name suffixes or one regex),
    ``modules_to_save``.
    """

    n_frequency: int = 2592
    scaling: float = 25.0
    wavelet_family: str = "db1"
    use_idwt: bool = True
    random_loc_seed: int = 777
    proportional_parameters: bool = False
    n_frequency_pattern: dict[str, int] = field(default_factory=dict)
    init_weights: bool = True
    target_modules: list[str] | str = names_field("query", "value")
    modules_to_save: list[str] = names_field()

    method = "waveft"

    def __post_init__(self) -> None:
        _check_count("n_frequency", self.n_frequency)
        _check_scaling(self.scaling)
        self.scaling = float(self.scaling)
        _check_family(self.wavelet_family)
        argcheck.flag("use_idwt", self.use_idwt)
        _check_seed(self.random_loc_seed)
        argcheck.flag("proportional_parameters", self.proportional_parameters)
        argcheck.flag("init_weights", self.init_weights)
        if not isinstance(self.n_frequency_pattern, dict):
            raise TypeError(f"n_frequency_pattern must be a dict of module-name pattern → int, "
                            f"got {self.n_frequency_pattern!r}")
        for key, value in self.n_frequency_pattern.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"n_frequency_pattern keys must be non-empty strings, got {key!r}")
            _check_count(f"n_frequency_pattern[{key!r}]", value)
        super().__post_init__()  # target_modules, modules_to_save
        self._proportional: dict[str, int] | None = None

    def bind_targets(self, targets: dict[str, nn.Module]) -> None:
        """Called by :func:`peftlab.inject` with every target layer before ``layer_hparams``: with
        ``proportional_parameters`` a layer's ``n`` depends on all of them (peft's allocation)."""
        if not self.proportional_parameters:
            return
        sizes = {name: WaveFTLinear.dims(base) for name, base in targets.items() if isinstance(base, nn.Linear)}
        if not sizes:
            raise ValueError("proportional_parameters: no nn.Linear target layers to share n_frequency among")
        total = sum(n_in * n_out for n_in, n_out in sizes.values())
        budget = self.n_frequency * len(sizes)
        self._proportional = {name: max(1, round((n_in * n_out) / total * budget))
                              for name, (n_in, n_out) in sizes.items()}

    def n_frequency_for(self, module_name: str) -> int:
        if self.proportional_parameters:
            if self._proportional is None or module_name not in self._proportional:
                raise ValueError(f"proportional_parameters: {module_name!r} was not among the targets this config "
                                 "was bound to (peftlab.inject binds them)")
            return self._proportional[module_name]
        key = pattern_key(self.n_frequency_pattern, module_name)
        return self.n_frequency if key is None else self.n_frequency_pattern[key]

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        """Keyword arguments of ``add_adapter`` for the layer called ``module_name``."""
        return {"n_frequency": self.n_frequency_for(module_name), "scaling": self.scaling,
                "wavelet_family": self.wavelet_family, "use_idwt": self.use_idwt,
                "random_loc_seed": self.random_loc_seed, "init_weights": self.init_weights}


#: the defaults, read by every signature below (the layer's and ``apply_waveft``'s)
_D = WaveFTConfig()


# ---------------------------------------------------------------------- layer
class WaveFTLinear(AdapterLayer):
    r"""A frozen ``nn.Linear`` plus one or more named WaveFT adapters.

    ``y = x (W0 + Σ_{a active, not merged} ΔW_a)ᵀ + b`` with ``ΔW_a = s_a · crop(R_H Q_a R_Wᵀ)``.

    Shapes: ``waveft_spectrum[a]``: (n,), ``waveft_indices[a]``: (2, n) (peft's row/column positions in the
    out×in grid, regenerated from the seed), ``delta_weight(a)``: (out, in).
    """

    adapter_param_names = ("waveft_spectrum",)
    adapter_state_names = ("waveft_n_frequency", "waveft_scaling", "waveft_wavelet_family",
                           "waveft_random_loc_seed", "waveft_use_idwt", "waveft_indices")
    base_types = (nn.Linear,)

    def __init__(self, base_layer: nn.Linear, n_frequency: int = _D.n_frequency, scaling: float = _D.scaling,
                 wavelet_family: str = _D.wavelet_family, use_idwt: bool = _D.use_idwt,
                 random_loc_seed: int = _D.random_loc_seed, init_weights: bool = _D.init_weights, adapter_name: str | None = "default"):
        super().__init__(base_layer)
        self.in_features, self.out_features = self.dims(base_layer)
        if adapter_name is not None:
            self.add_adapter(adapter_name, n_frequency=n_frequency, scaling=scaling, wavelet_family=wavelet_family,
                             use_idwt=use_idwt, random_loc_seed=random_loc_seed, init_weights=init_weights)

    @classmethod
    def check(cls, base_layer: nn.Module, n_frequency: int = _D.n_frequency, scaling: float = _D.scaling,
              wavelet_family: str = _D.wavelet_family, use_idwt: bool = _D.use_idwt,
              random_loc_seed: int = _D.random_loc_seed, init_weights: bool = _D.init_weights) -> None:
        n_in, n_out = cls.dims(base_layer)
        _check_count("n_frequency", n_frequency)
        if n_frequency > n_in * n_out:
            raise ValueError(f"n_frequency={n_frequency} is not allowed for a {n_out}×{n_in} layer: need "
                             f"1 ≤ n_frequency ≤ in·out = {n_in * n_out}")
        _check_scaling(scaling)
        _check_family(wavelet_family)
        argcheck.flag("use_idwt", use_idwt)
        _check_seed(random_loc_seed)
        argcheck.flag("init_weights", init_weights)

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, n_frequency: int = _D.n_frequency, **_) -> dict[str, tuple[int, ...]]:
        return {"waveft_spectrum": (n_frequency,)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, n_frequency: int = _D.n_frequency, **_) -> int:
        """``n``: one trainable coefficient per position, whatever the layer's size."""
        return n_frequency

    def create(self, adapter_name: str, n_frequency: int = _D.n_frequency, scaling: float = _D.scaling,
               wavelet_family: str = _D.wavelet_family, use_idwt: bool = _D.use_idwt,
               random_loc_seed: int = _D.random_loc_seed, init_weights: bool = _D.init_weights) -> None:
        """Spectrum (n,): zero (``init_weights=True``) or ``0.01·randn`` (peft's draw); positions from the seed."""
        weight = self.base_layer.weight
        if init_weights:
            spectrum = torch.zeros(n_frequency)
        else:
            spectrum = torch.randn(n_frequency) * 0.01
        self.waveft_spectrum[adapter_name] = nn.Parameter(spectrum.to(dtype=weight.dtype, device=weight.device))
        rows, cols = coefficient_locations(self.out_features, self.in_features, n_frequency, random_loc_seed)
        self.waveft_n_frequency[adapter_name] = n_frequency
        self.waveft_scaling[adapter_name] = float(scaling)
        self.waveft_wavelet_family[adapter_name] = wavelet_family
        self.waveft_random_loc_seed[adapter_name] = random_loc_seed
        self.waveft_use_idwt[adapter_name] = use_idwt
        self.waveft_indices[adapter_name] = torch.stack([rows, cols])

    def coefficients(self, adapter_name: str = "default") -> torch.Tensor:
        """``Q ∈ R^{H×Wd}``: zero except the spectrum at its matrix-form positions (:func:`matrix_positions`).
        Without the transform, ``C0 ∈ R^{out×in}``: the spectrum at peft's positions."""
        spectrum = self.waveft_spectrum[adapter_name]
        rows, cols = self.waveft_indices[adapter_name].to(spectrum.device)
        n_out, n_in = self.out_features, self.in_features
        if not self.waveft_use_idwt[adapter_name]:
            return torch.zeros(n_out, n_in, dtype=spectrum.dtype, device=spectrum.device).index_put((rows, cols), spectrum)
        family = self.waveft_wavelet_family[adapter_name]
        H, Wd = padded_shape(n_out, n_in, family)
        Q = torch.zeros(H, Wd, dtype=spectrum.dtype, device=spectrum.device)
        return Q.index_put(matrix_positions(rows, cols, n_out, n_in, family), spectrum)

    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔW = s · crop(R_H Q R_Wᵀ)`` (:func:`idwt2`), or ``s · C0`` without the transform; shape (out, in).

        The layer's forward is :class:`~peftlab.core.layer.AdapterLayer`'s: ``base_layer(x) + x ΔWᵀ``, as peft's.
        """
        Q = self.coefficients(adapter_name)
        if self.waveft_use_idwt[adapter_name]:
            Q = idwt2(Q, self.waveft_wavelet_family[adapter_name])[: self.out_features, : self.in_features]
        return (self.waveft_scaling[adapter_name] * Q).to(self.base_weight().dtype)

    def extra_repr(self) -> str:
        parts = [f"{n}: n_frequency={self.waveft_n_frequency[n]}, scaling={self.waveft_scaling[n]:g}, "
                 f"wavelet_family={self.waveft_wavelet_family[n]}, use_idwt={self.waveft_use_idwt[n]}"
                 for n in self.adapter_names]
        return f"adapters=[{'; '.join(parts)}]"


# ---------------------------------------------------------------------- model level
def apply_waveft(
    model: nn.Module,
    n_frequency: int = _D.n_frequency,
    scaling: float = _D.scaling,
    wavelet_family: str = _D.wavelet_family,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    use_idwt: bool = _D.use_idwt,
    random_loc_seed: int = _D.random_loc_seed,
    proportional_parameters: bool = _D.proportional_parameters,
    n_frequency_pattern: dict[str, int] | None = None,
    init_weights: bool = _D.init_weights,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
) -> nn.Module:
    """Wrap the target ``nn.Linear`` layers of ``model`` with WaveFT, in place, and freeze everything else;
    the convenient form of ``peftlab.inject(model, WaveFTConfig(...), adapter_name)``.

    Each layer learns ``n_frequency`` wavelet coefficients of its update (zero at the start, so the model
    is unchanged until trained). Nothing is changed if any argument is invalid. Returns ``model``.
    """
    config = WaveFTConfig(
        n_frequency=n_frequency, scaling=scaling, wavelet_family=wavelet_family, use_idwt=use_idwt,
        random_loc_seed=random_loc_seed, proportional_parameters=proportional_parameters,
        n_frequency_pattern=dict(n_frequency_pattern or {}), init_weights=init_weights,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        modules_to_save=list(modules_to_save or []))
    return inject(model, config, adapter_name)


def _compare_waveft(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: a quarter of LoRA r=8's parameters on a square d×d layer (2·8·d → 4·d coefficients)."""
    d = model.config.hidden_size
    return apply_waveft(model, n_frequency=4 * d, target_modules=targets(task), modules_to_save=head(task))


register_method(
    "waveft", WaveFTConfig, (WaveFTLinear,),
    examples=(
        {"model": "mlp", "config": {"n_frequency": 40, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"n_frequency": 30, "scaling": 5.0, "wavelet_family": "db3",
                                    "target_modules": ["0", "2"], "random_loc_seed": 5,
                                    "n_frequency_pattern": {"2": 17}}},
        {"model": "mlp", "config": {"n_frequency": 25, "wavelet_family": "sym4", "target_modules": ["0", "2"],
                                    "proportional_parameters": True}},
        {"model": "mlp", "config": {"n_frequency": 25, "use_idwt": False, "target_modules": ["0", "2"]}},
        {"model": "bert", "config": {"n_frequency": 64, "scaling": 10.0, "wavelet_family": "coif1",
                                     "target_modules": ["query", "value", "dense"],
                                     "modules_to_save": ["classifier"]}},
    ),
    recipe=Recipe("WaveFT, n_frequency = 4·hidden per target, db1", _compare_waveft),
)


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
# peft 0.21.2 ships its own filter table for WaveFT; two entries are not the named wavelet [measured]:
# coif4's taps differ from pywt's by up to 1.2e-2 (Σh² = 1.0099, not orthonormal) and coif5 has 48 taps
# instead of 30 (its ΔW comes out smaller than the layer, and the first forward fails). Used only where
# peft itself cannot be imported to compare.
_PEFT_WAVEFT_BAD_TAPS = ("coif4", "coif5")


def _peft_waveft_taps_differ(family: str) -> bool:
    """Whether the installed peft's WaveFT taps for ``family`` are not pywt's (peftlab computes pywt's)."""
    family = "db1" if family == "haar" else family
    try:
        from peft.tuners.waveft.wavelet import Wavelet
    except ImportError:
        return family in _PEFT_WAVEFT_BAD_TAPS
    try:
        theirs = torch.tensor(Wavelet(family).rec_lo, dtype=torch.float64)
    except ValueError:
        return True
    ours = filter_taps(family)[0]
    return theirs.shape != ours.shape or bool((theirs - ours).abs().max() > 1e-10)


def _check_waveft_family(family: str, where: str) -> None:
    if _peft_waveft_taps_differ(family):
        raise ValueError(f"{where}: wavelet_family={family!r}: peft's WaveFT filter table for {family} is not the "
                         f"{family} wavelet (peft 0.21.2: coif4's taps are off by up to 1.2e-2, coif5's table has 48 "
                         "taps and fails at the first forward), so a peftlab adapter (pywt's taps) and peft's would "
                         "compute different updates; exchange adapters of another family")


def _waveft_to_peft(cfg: WaveFTConfig) -> dict:
    _check_waveft_family(cfg.wavelet_family, "save_peft_adapter")
    return {
        "n_frequency": cfg.n_frequency, "scaling": cfg.scaling,
        "wavelet_family": "db1" if cfg.wavelet_family == "haar" else cfg.wavelet_family,  # peft rejects "haar"
        "use_idwt": cfg.use_idwt, "random_loc_seed": cfg.random_loc_seed,
        "proportional_parameters": cfg.proportional_parameters,
        "n_frequency_pattern": dict(cfg.n_frequency_pattern), "init_weights": cfg.init_weights,
        "fan_in_fan_out": False, "bias": "none",
    }


def _waveft_from_peft(cfg: dict, where: str) -> dict:
    if cfg.get("bias", "none") != "none":
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} is not implemented in peftlab; it reads bias='none'")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    kwargs = {
        "n_frequency": cfg.get("n_frequency", _D.n_frequency), "scaling": cfg.get("scaling", _D.scaling),
        "wavelet_family": cfg.get("wavelet_family", _D.wavelet_family), "use_idwt": cfg.get("use_idwt", _D.use_idwt),
        "random_loc_seed": cfg.get("random_loc_seed", _D.random_loc_seed),
        "proportional_parameters": cfg.get("proportional_parameters", _D.proportional_parameters),
        "n_frequency_pattern": dict(cfg.get("n_frequency_pattern") or {}),
        "init_weights": cfg.get("init_weights", _D.init_weights),
    }
    try:
        WaveFTConfig(**kwargs)  # every field validated, with its name, before anything is read further
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    _check_waveft_family(kwargs["wavelet_family"], where)
    return kwargs


# WaveFT saves only the spectrum; the coefficient positions are regenerated from random_loc_seed.
register_codec(Codec(
    method="waveft", peft_type="WAVEFT",
    tensor_keys={WaveFTLinear: {"waveft_spectrum": ".waveft_spectrum"}},
    accepts=lambda cfg: cfg.get("peft_type") == "WAVEFT",
    to_peft=_waveft_to_peft, from_peft=_waveft_from_peft,
))
