r"""QR-Adaptor: per-layer bit-width and LoRA rank chosen together under a memory budget
(Zhou et al., arXiv 2505.03802; the v4 title is "Balancing Fidelity and Plasticity: Aligning Mixed-Precision
Fine-Tuning with Linguistic Hierarchies"; the authors' code is ``harrysyz99/qr_adapter``).

Problem. A model has ``L`` search units (here: decoder layers, or any grouping of its ``nn.Linear`` layers).
Unit ``ℓ`` gets a base bit-width ``q_ℓ ∈ Q`` and a LoRA rank ``r_ℓ ∈ R``; a configuration is
``C = ((q_1, r_1), …, (q_L, r_L))``. Two objectives, both minimised:

    P(C) = task loss after a short LoRA fine-tune of the quantized model     (gradient-free: measured)
    M(C) = bytes of the quantized base weights + their constants + the 16-bit LoRA factors
    subject to  M(C) ≤ B  (the budget)

Search space (this module's defaults, those of the authors' released code): ``Q = {2, 3, 4, 8}``,
``R = {2, 4, 8}`` (the code uses {4, 8, 16} on 4B–8B models; the tiny LM's layers are 96 wide). Per bit-width, with
``n = out·in`` weights of a Linear and blocks of ``b = 64``:

* 2 and 3 bits: symmetric blockwise absmax integers (:func:`peftlab.quant.quantize_absmax`: levels
  ``k/(2^{q−1}−1)``; 2-bit is therefore *ternary* {−1, 0, 1}·c, one code of four unused), the codes packed
  into a bit stream (:func:`pack_bits`), one fp32 absmax per block:
  ``⌈n·q/8⌉ + 4·⌈n/b⌉`` bytes;
* 4 bits: NF4 from :mod:`peftlab.quant` with double quantization, exactly what ``apply_qlora`` stores:
  ``⌈n/2⌉ + ⌈n/b⌉ + 4 + 4·⌈⌈n/b⌉/256⌉`` bytes (codes, 8-bit constants, their mean, second-level constants);
* 8 bits: **INT8** blockwise absmax (not unquantized): ``n + 4·⌈n/b⌉`` bytes;
* 16 bits (baselines only, not in the default search set): the weight kept in bf16, ``2n`` bytes;
* LoRA (``A ∈ R^{r×in}``, ``B ∈ R^{out×r}``) in 16 bits: ``2·r·(in + out)`` bytes.

``M(C)`` sums these over the searched Linears and equals the ``nbytes`` of the tensors
:func:`quantize_weight` and 16-bit LoRA factors really hold (``tests/test_qr_adaptor.py``). The paper's Eq. 1–3
count HQQ's 16-bit scale and zero point per group of 128 instead; embeddings, norms and the LM head are the
same in every configuration and are not counted.

Three phases (as in the paper and its code; sizes scaled down for a CPU):

I. **Sensitivity → warm start.** ``I_q(ℓ)``: loss increase when unit ℓ alone is quantized to the lowest
   bit-width; ``I_r(ℓ)``: loss drop from a short LoRA fine-tune at the highest rank on unit ℓ alone. Both are
   min-max normalised to [0, 1] and mapped to the nearest allowed value
   ``q_ℓ = round_Q(q_min + (q_max − q_min)·Î_q(ℓ))``, ``r_ℓ = round_R(r_min + (r_max − r_min)·Î_r(ℓ))``
   (:func:`warm_start`), then repaired to the budget.
II. **Constrained NSGA-II ("PRGA").** A population of the warm start and jittered copies; offspring by
   ``k`` random one-step moves on the ``Q``/``R`` ladders ("atomic edits"); every candidate repaired to
   the budget by the cheapest downgrade (:func:`repair`: the one-rung downgrade with the smallest
   ``(I(ℓ) + ε)/ΔM``); all offspring get a *low-fidelity* evaluation (few fine-tuning steps), those with the
   lowest low-fidelity loss a *high-fidelity* one (more steps); survivors chosen by
   :func:`nsga2_select` (elitism: parents and offspring compete). Every candidate is repaired, so all are
   feasible and constrained domination reduces to plain domination.
III. **Bayesian-optimisation refinement.** A Gaussian process (Matérn-5/2 + white noise, hand-written in
   :func:`gp_posterior`) on ``ψ(C) = [s_q(q_ℓ)…, s_r(r_ℓ)…, mean(I·s_q), mean(I·s_r)]`` (``s`` = position
   on the ladder in [0, 1], ``I = ½Î_q + ½Î_r``) models the utility
   ``f = α·P̂ − (1−α)·M̂`` (``P̂`` = min-max normalised −loss, ``M̂`` = normalised bytes, ``α = 0.6``) of the
   high-fidelity records; candidates are the budget-repaired one-step neighbours of the Pareto set; the one
   with the largest expected improvement is evaluated at high fidelity, up to ``bo_iterations`` times or
   until the largest EI falls below ``1e-4``.

Departures from the authors' code, all for a 2-core CPU: a population of 6–8 (not 40), 2 moves per offspring
(not 5), 2–4 generations (not 12–15), no hypervolume early stop, and the paper's MLP surrogate that picks which
offspring get a high-fidelity run is replaced by their low-fidelity losses themselves. Evaluations are cached
by (configuration, fidelity), and everything is seeded, so a search repeats exactly.
"""

from __future__ import annotations

import copy
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from peftlab.core import argcheck
from peftlab.core.targets import LLAMA_LINEARS
from peftlab.quant import BLOCKSIZE
from peftlab.quant.lowbit import (
    SUPPORTED_BITS,
    check_bits,
    dequantize_weight,
    pack_bits,
    quantize_weight,
    roundtrip,
    stored_nbytes,
    unpack_bits,
    weight_nbytes,
)
from peftlab.train import (
    answer_batch,
    answer_loss,
    encode_answer_pairs,
    fit,
    index_batches,
    labels_loss,
    make_optimizer,
)

__all__ = [
    "BLOCKSIZE",
    "SEARCH_BITS",
    "SEARCH_RANKS",
    "SUPPORTED_BITS",
    "LoRAFinetuneEvaluator",
    "MemoryModel",
    "Record",
    "SearchResult",
    "SearchSpace",
    "crowding_distance",
    "dequantize_weight",
    "dominates",
    "expected_improvement",
    "gp_posterior",
    "layer_groups",
    "lora_nbytes",
    "min_max",
    "mutate",
    "neighbours",
    "non_dominated_sort",
    "nsga2_select",
    "pack_bits",
    "qr_adaptor_search",
    "quantize_weight",
    "repair",
    "roundtrip",
    "stored_nbytes",
    "unpack_bits",
    "warm_start",
    "weight_nbytes",
]

#: The default search set (the authors' released code: {2, 3, 4, 8}).
SEARCH_BITS = (2, 3, 4, 8)
#: The default rank set (small: the tiny LM's layers are 96 wide).
SEARCH_RANKS = (2, 4, 8)
#: Bytes per LoRA parameter (adapters counted in 16 bits, as the paper does).
LORA_BYTES = 2

LayerChoice = tuple[int, int]          # (bits, rank) of one search unit
Config = tuple[LayerChoice, ...]       # one choice per search unit, in SearchSpace.layers order


# ============================================================================================ search space
def _check_int_set(name: str, values, allowed: Iterable[int] | None = None) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of ints, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty: the search space needs at least one value")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{name} must hold ints, got {v!r}")
    if allowed is not None:
        allowed = tuple(allowed)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise ValueError(f"{name}={values!r}: {bad} not supported; allowed: {allowed}")
    elif any(v < 1 for v in values):
        raise ValueError(f"{name}={values!r}: ranks must be ints ≥ 1")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r} repeats a value")
    return tuple(sorted(values))


@dataclass(frozen=True)
class SearchSpace:
    """The per-unit choices: ``layers`` (names of the search units), ``bits`` ⊆ :data:`SUPPORTED_BITS`,
    ``ranks`` (ints ≥ 1). Both value sets are kept sorted (the "ladders" that moves step along)."""

    layers: tuple[str, ...]
    bits: tuple[int, ...] = SEARCH_BITS
    ranks: tuple[int, ...] = SEARCH_RANKS

    def __post_init__(self) -> None:
        if isinstance(self.layers, str) or not isinstance(self.layers, Iterable):
            raise TypeError(f"layers must be a sequence of unit names, got {self.layers!r}")
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("layers is empty: the search space needs at least one unit")
        if not all(isinstance(n, str) and n for n in layers) or len(set(layers)) != len(layers):
            raise ValueError(f"layers must be distinct non-empty strings, got {layers!r}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "bits", _check_int_set("bits", self.bits, SUPPORTED_BITS))
        object.__setattr__(self, "ranks", _check_int_set("ranks", self.ranks))

    @property
    def size(self) -> int:
        """Number of configurations: ``(|Q|·|R|)^L``."""
        return (len(self.bits) * len(self.ranks)) ** len(self.layers)

    def uniform(self, bits: int, rank: int) -> Config:
        """The same ``(bits, rank)`` on every unit (``bits``/``rank`` must be supported, not necessarily searched)."""
        _check_int_set("bits", (bits,), SUPPORTED_BITS)
        _check_int_set("ranks", (rank,))
        return tuple((bits, rank) for _ in self.layers)

    def check(self, config) -> Config:
        """``config`` as a tuple of ``(bits, rank)`` pairs, validated against this space."""
        try:
            config = tuple((int(b), int(r)) for b, r in config)
        except (TypeError, ValueError):
            raise TypeError(f"config must be a sequence of (bits, rank) pairs, got {config!r}") from None
        if len(config) != len(self.layers):
            raise ValueError(f"config has {len(config)} entries; the space has {len(self.layers)} layers")
        for name, (b, r) in zip(self.layers, config, strict=True):
            if b not in self.bits:
                raise ValueError(f"config[{name!r}] bits={b} is not in the search space's bits {self.bits}")
            if r not in self.ranks:
                raise ValueError(f"config[{name!r}] rank={r} is not in the search space's ranks {self.ranks}")
        return config


def layer_groups(model: nn.Module, by: str = "layer",
                 targets: Sequence[str] = LLAMA_LINEARS) -> dict[str, list[str]]:
    """Search units of a decoder: ``by="layer"`` → one unit per decoder layer (``model.layers.3``) holding its
    target Linears; ``by="linear"`` → one unit per Linear. Values are full module names."""
    if by not in ("layer", "linear"):
        raise ValueError(f"by={by!r} is not allowed: expected 'layer' or 'linear'")
    out: dict[str, list[str]] = {}
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and name.rsplit(".", 1)[-1] in targets:
            m = re.match(r"(.*\.layers\.\d+)\.", name)
            if m is None:
                continue
            out.setdefault(m.group(1) if by == "layer" else name, []).append(name)
    if not out:
        raise ValueError(f"model has no Linear named {list(targets)} inside a '.layers.<i>.' block")
    return out


# ============================================================================================ memory model
def lora_nbytes(in_features: int, out_features: int, rank: int) -> int:
    """Bytes of LoRA's ``A`` (r×in) and ``B`` (out×r) in 16 bits: ``2·r·(in + out)``."""
    return LORA_BYTES * rank * (in_features + out_features)


class MemoryModel:
    """``M(C)`` for a model: ``shapes[unit]`` lists the ``(out, in)`` of every Linear in the unit.

    ``bytes(config)`` = Σ_units Σ_Linears ``weight_nbytes(out·in, q) + lora_nbytes(in, out, r)``.
    """

    def __init__(self, shapes: dict[str, Sequence[tuple[int, int]]], blocksize: int = BLOCKSIZE):
        if not isinstance(shapes, dict) or not shapes:
            raise ValueError("shapes must be a non-empty dict: unit name → list of (out, in)")
        self.shapes = {k: [tuple(s) for s in v] for k, v in shapes.items()}
        for k, v in self.shapes.items():
            if not v or any(len(s) != 2 or min(s) < 1 for s in v):
                raise ValueError(f"shapes[{k!r}] must be a non-empty list of (out, in) pairs of ints ≥ 1")
        self.blocksize = blocksize
        self.layers = tuple(self.shapes)

    @classmethod
    def from_model(cls, model: nn.Module, groups: dict[str, list[str]], blocksize: int = BLOCKSIZE) -> MemoryModel:
        mods = dict(model.named_modules())
        return cls({u: [tuple(mods[n].weight.shape) for n in names] for u, names in groups.items()}, blocksize)

    def layer_bytes(self, layer: str, bits: int, rank: int) -> int:
        return sum(weight_nbytes(o * i, bits, self.blocksize) + lora_nbytes(i, o, rank) for o, i in self.shapes[layer])

    def bytes(self, config: Sequence[LayerChoice]) -> int:
        if len(config) != len(self.layers):
            raise ValueError(f"config has {len(config)} entries; the memory model has {len(self.layers)} layers")
        return sum(self.layer_bytes(name, b, r) for name, (b, r) in zip(self.layers, config, strict=True))

    def minimum(self, space: SearchSpace) -> int:
        """The smallest ``M`` in ``space`` (lowest bits and rank everywhere)."""
        return self.bytes(space.uniform(space.bits[0], space.ranks[0]))

    def maximum(self, space: SearchSpace) -> int:
        return self.bytes(space.uniform(space.bits[-1], space.ranks[-1]))


# ============================================================================================ Pareto ranking
def _as_points(points) -> list[tuple[float, ...]]:
    pts = [tuple(float(v) for v in p) for p in points]
    if pts and len({len(p) for p in pts}) != 1:
        raise ValueError("every point needs the same number of objectives")
    if any(math.isnan(v) for p in pts for v in p):
        raise ValueError("points contain NaN")
    return pts


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """``a`` Pareto-dominates ``b`` (all objectives minimised): no worse in every one, better in at least one."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(x < y for x, y in zip(a, b, strict=True))


def non_dominated_sort(points) -> list[list[int]]:
    """NSGA-II's fast non-dominated sort (Deb et al., 2002): fronts of indices into ``points``, every
    objective minimised. Front 0 holds the points nobody dominates; front k those dominated only by points of
    earlier fronts. Equal points do not dominate each other, so duplicates share a front. Indices within a
    front are ascending."""
    pts = _as_points(points)
    n = len(pts)
    dominated_by_me: list[list[int]] = [[] for _ in range(n)]
    count = [0] * n
    for i in range(n):
        for j in range(i + 1, n):
            if dominates(pts[i], pts[j]):
                dominated_by_me[i].append(j)
                count[j] += 1
            elif dominates(pts[j], pts[i]):
                dominated_by_me[j].append(i)
                count[i] += 1
    fronts: list[list[int]] = []
    current = [i for i in range(n) if count[i] == 0]
    while current:
        fronts.append(sorted(current))
        nxt = []
        for i in current:
            for j in dominated_by_me[i]:
                count[j] -= 1
                if count[j] == 0:
                    nxt.append(j)
        current = nxt
    return fronts


def crowding_distance(points) -> list[float]:
    """NSGA-II's crowding distance of each point of one front: per objective, sort the points and add
    ``(f[next] − f[prev]) / (f_max − f_min)`` to each interior point; the points at an objective's extremes
    (first and last in the sort, ties broken by index) get ``inf``. An objective on which all points are
    equal adds nothing."""
    pts = _as_points(points)
    n = len(pts)
    dist = [0.0] * n
    if n == 0:
        return dist
    for m in range(len(pts[0])):
        order = sorted(range(n), key=lambda i: (pts[i][m], i))
        lo, hi = pts[order[0]][m], pts[order[-1]][m]
        dist[order[0]] = dist[order[-1]] = math.inf
        if hi == lo:
            continue
        for k in range(1, n - 1):
            i = order[k]
            if dist[i] != math.inf:
                dist[i] += (pts[order[k + 1]][m] - pts[order[k - 1]][m]) / (hi - lo)
    return dist


def nsga2_select(points, k: int) -> list[int]:
    """Elitist NSGA-II survival: whole fronts in order while they fit, then the last front's points with the
    largest crowding distance (ties by index). Returns ``k`` indices (all if fewer points)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k={k!r} is not allowed: expected an int ≥ 0")
    chosen: list[int] = []
    pts = _as_points(points)
    for front in non_dominated_sort(pts):
        if len(chosen) + len(front) <= k:
            chosen += front
            continue
        cd = crowding_distance([pts[i] for i in front])
        ranked = sorted(range(len(front)), key=lambda j: (-cd[j], front[j]))
        chosen += [front[j] for j in ranked[: k - len(chosen)]]
        break
    return chosen


# ============================================================================================ moves and repair
def _step(values: tuple[int, ...], v: int, d: int) -> int | None:
    i = values.index(v) + d
    return values[i] if 0 <= i < len(values) else None


def repair(config: Sequence[LayerChoice], space: SearchSpace, memory: MemoryModel, budget: int,
           importance_q: Sequence[float] | None = None, importance_r: Sequence[float] | None = None,
           eps: float = 1e-3) -> Config:
    """Downgrade ``config`` until ``M ≤ budget``: each time apply the single one-rung downgrade (one unit's
    bits or its rank one step down its ladder) with the smallest ``(I(ℓ) + ε) / ΔM`` — least importance lost
    per byte saved (``I_q`` for a bit downgrade, ``I_r`` for a rank downgrade; ties: the first unit, bits
    before rank). Raises ``ValueError`` if ``budget`` is below the smallest configuration of ``space``."""
    config = space.check(config)
    low = memory.minimum(space)
    if budget < low:
        raise ValueError(f"budget={budget} bytes is below the smallest configuration of the search space "
                         f"({low} bytes: bits {space.bits[0]}, rank {space.ranks[0]} everywhere)")
    n = len(space.layers)
    iq = [0.0] * n if importance_q is None else [float(v) for v in importance_q]
    ir = [0.0] * n if importance_r is None else [float(v) for v in importance_r]
    if len(iq) != n or len(ir) != n:
        raise ValueError(f"importance_q / importance_r need one value per layer ({n})")
    cfg = list(config)
    size = memory.bytes(cfg)
    while size > budget:
        best = None
        for idx, (b, r) in enumerate(cfg):
            for kind, new in (("q", (_step(space.bits, b, -1), r)), ("r", (b, _step(space.ranks, r, -1)))):
                if None in new:
                    continue
                name = space.layers[idx]
                saved = memory.layer_bytes(name, b, r) - memory.layer_bytes(name, *new)
                if saved <= 0:
                    continue
                cost = ((iq if kind == "q" else ir)[idx] + eps) / saved
                if best is None or cost < best[0]:
                    best = (cost, idx, new)
        if best is None:  # cannot happen when budget ≥ minimum; kept as a guard
            raise ValueError(f"cannot repair {tuple(cfg)} to budget={budget}")
        _, idx, new = best
        size += memory.layer_bytes(space.layers[idx], *new) - memory.layer_bytes(space.layers[idx], *cfg[idx])
        cfg[idx] = new
    return tuple(cfg)


def mutate(config: Sequence[LayerChoice], space: SearchSpace, rng: random.Random, moves: int = 2) -> Config:
    """``moves`` random atomic edits: pick a unit, bits or rank, and step one rung up or down its ladder
    (a move off the end of a ladder is redrawn)."""
    cfg = list(space.check(config))
    done = 0
    while done < moves:
        idx = rng.randrange(len(cfg))
        kind = rng.choice("qr")
        d = rng.choice((-1, 1))
        b, r = cfg[idx]
        new = (_step(space.bits, b, d), r) if kind == "q" else (b, _step(space.ranks, r, d))
        if None in new:
            if len(space.bits) == 1 and len(space.ranks) == 1:
                break
            continue
        cfg[idx] = new
        done += 1
    return tuple(cfg)


def neighbours(config: Sequence[LayerChoice], space: SearchSpace) -> list[Config]:
    """Every configuration one rung away from ``config`` on one unit's bits or rank."""
    out = []
    for idx, (b, r) in enumerate(config):
        for new in ((_step(space.bits, b, -1), r), (_step(space.bits, b, 1), r),
                    (b, _step(space.ranks, r, -1)), (b, _step(space.ranks, r, 1))):
            if None not in new:
                out.append(tuple(config[:idx]) + (new,) + tuple(config[idx + 1:]))
    return out


# ============================================================================================ Phase I
def min_max(values: Sequence[float]) -> list[float]:
    """Min-max normalise to [0, 1]; all equal → all 0."""
    vals = [float(v) for v in values]
    lo, hi = min(vals), max(vals)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in vals]


def _round_to(values: tuple[int, ...], x: float) -> int:
    return min(values, key=lambda v: (abs(v - x), v))


def warm_start(importance_q: Sequence[float], importance_r: Sequence[float], space: SearchSpace) -> Config:
    """Phase I's mapping: ``q_ℓ = round_Q(q_min + (q_max − q_min)·Î_q(ℓ))`` and the same for ranks with
    ``Î_r``, ``Î`` the min-max normalised sensitivities; ``round_Q`` = the nearest allowed value (ties to the
    smaller)."""
    n = len(space.layers)
    if len(importance_q) != n or len(importance_r) != n:
        raise ValueError(f"importance_q and importance_r need one value per layer ({n}), "
                         f"got {len(importance_q)} and {len(importance_r)}")
    nq, nr = min_max(importance_q), min_max(importance_r)
    q0, q1, r0, r1 = space.bits[0], space.bits[-1], space.ranks[0], space.ranks[-1]
    return tuple((_round_to(space.bits, q0 + (q1 - q0) * a), _round_to(space.ranks, r0 + (r1 - r0) * c))
                 for a, c in zip(nq, nr, strict=True))


# ============================================================================================ Phase III: GP + EI
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


# ============================================================================================ search
@dataclass
class Record:
    """One configuration the search has seen: its bytes and its losses at each fidelity (``None`` = not run)."""

    config: Config
    nbytes: int
    low: float | None = None
    high: float | None = None
    origin: str = ""  # "warm start", "population", "offspring g<k>", "bo <k>", "baseline"


@dataclass
class SearchResult:
    records: dict[Config, Record]
    pareto: list[Config]                 # high-fidelity Pareto set (loss, bytes), ascending bytes
    best: Config                         # lowest high-fidelity loss within the budget
    budget: int
    warm_start: Config
    evaluations: dict[str, int]          # runs actually computed per fidelity (cache misses)
    seconds: float
    history: list[dict] = field(default_factory=list)  # per phase/generation: best loss, evaluations so far

    def table(self) -> list[Record]:
        """High-fidelity records, ascending bytes."""
        return sorted((r for r in self.records.values() if r.high is not None), key=lambda r: (r.nbytes, r.high))


Evaluate = Callable[[Config, str], float]


def qr_adaptor_search(evaluate: Evaluate, space: SearchSpace, memory: MemoryModel, budget: int,
                      importance_q: Sequence[float], importance_r: Sequence[float], *, population: int = 8,
                      generations: int = 3, moves: int = 2, jitter: int = 4, high_per_generation: int = 2,
                      bo_iterations: int = 3, alpha: float = 0.6, seed: int = 0,
                      extra_initial: Sequence[Sequence[LayerChoice]] = (),
                      log: Callable[[str], None] | None = None) -> SearchResult:
    """Phases II and III of QR-Adaptor (Phase I's sensitivities come in as ``importance_q``/``importance_r``).

    ``evaluate(config, fidelity)`` returns the loss of ``config`` at ``fidelity`` ("low" or "high");
    it is called at most once per (config, fidelity): results are cached in the returned records.
    ``extra_initial``: configurations added to the initial population besides the warm start and its jittered
    copies (e.g. the uniform configuration that defines the budget, so that elitism keeps it until something
    beats it); each is repaired to the budget.
    Deterministic for a given ``seed`` and a deterministic ``evaluate``.
    """
    for name, v, low in (("population", population, 2), ("generations", generations, 0), ("moves", moves, 1),
                         ("jitter", jitter, 0), ("high_per_generation", high_per_generation, 1),
                         ("bo_iterations", bo_iterations, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"{name}={v!r} is not allowed: expected an int ≥ {low}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r} is not allowed: expected a number in [0, 1]")
    if tuple(memory.layers) != tuple(space.layers):
        raise ValueError("memory and space must describe the same layers in the same order")
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise TypeError(f"budget must be an int (bytes), got {budget!r}")
    low_bytes = memory.minimum(space)
    if budget < low_bytes:
        raise ValueError(f"budget={budget} bytes is below the smallest configuration of the search space "
                         f"({low_bytes} bytes: bits {space.bits[0]}, rank {space.ranks[0]} everywhere)")
    t0 = time.perf_counter()
    rng = random.Random(seed)
    say = log or (lambda s: None)
    iq, ir = min_max(importance_q), min_max(importance_r)
    imp = [0.5 * a + 0.5 * b for a, b in zip(iq, ir, strict=True)]
    records: dict[Config, Record] = {}
    counts = {"low": 0, "high": 0}
    history: list[dict] = []

    def fix(cfg) -> Config:
        return repair(cfg, space, memory, budget, iq, ir)

    def record(cfg: Config, origin: str) -> Record:
        if cfg not in records:
            records[cfg] = Record(cfg, memory.bytes(cfg), origin=origin)
        return records[cfg]

    def run(cfg: Config, fidelity: str, origin: str) -> float:
        rec = record(cfg, origin)
        if getattr(rec, fidelity) is None:
            setattr(rec, fidelity, float(evaluate(cfg, fidelity)))
            counts[fidelity] += 1
        return getattr(rec, fidelity)

    def promote(cands: list[Config], k: int, origin: str) -> None:
        """High-fidelity runs for the ``k`` candidates with the lowest low-fidelity loss (ties: fewer bytes) not
        yet run at high fidelity — the paper ranks them by a surrogate's predicted performance."""
        todo = sorted((c for c in dict.fromkeys(cands) if records[c].high is None),
                      key=lambda c: (records[c].low, records[c].nbytes))
        for c in todo[:k]:
            run(c, "high", origin)

    def snapshot(phase: str) -> None:
        highs = [r for r in records.values() if r.high is not None]
        best = min(highs, key=lambda r: (r.high, r.nbytes)) if highs else None
        history.append({"phase": phase, "low": counts["low"], "high": counts["high"],
                        "best_high": None if best is None else best.high,
                        "seconds": time.perf_counter() - t0})
        say(f"{phase}: {counts['low']} low / {counts['high']} high evaluations, best high-fidelity loss "
            f"{'—' if best is None else f'{best.high:.4f}'}")

    # ---- initial population: warm start + jittered copies (≤ `jitter` random per-unit resets each)
    start = fix(warm_start(importance_q, importance_r, space))
    pop: list[Config] = [start]
    for extra in extra_initial:
        cfg = fix(space.check(extra))
        if cfg not in pop:
            pop.append(cfg)
    tries = 0
    while len(pop) < population and tries < 50 * population:
        tries += 1
        cfg = list(start)
        for _ in range(rng.randint(1, max(jitter, 1))):
            cfg[rng.randrange(len(cfg))] = (rng.choice(space.bits), rng.choice(space.ranks))
        cfg = fix(cfg)
        if cfg not in pop:
            pop.append(cfg)
    for c in pop:
        run(c, "low", "warm start" if c == start else "initial" if c in pop[: 1 + len(extra_initial)] else "population")
    promote(pop, high_per_generation, "population")
    snapshot("initial population")

    # ---- Phase II: generations of NSGA-II
    for g in range(1, generations + 1):
        children: list[Config] = []
        for parent in pop:
            for _ in range(20):  # a child not seen yet, if one can be found
                child = fix(mutate(parent, space, rng, moves))
                if child not in records and child not in children:
                    break
            children.append(child)
        for c in children:
            run(c, "low", f"offspring g{g}")
        promote(children, high_per_generation, f"offspring g{g}")
        union = list(dict.fromkeys(pop + children))
        keep = nsga2_select([(records[c].low, records[c].nbytes) for c in union], population)
        pop = [union[i] for i in keep]
        snapshot(f"generation {g}")

    # ---- Phase III: Bayesian optimisation around the high-fidelity Pareto set
    for it in range(1, bo_iterations + 1):
        highs = [r for r in records.values() if r.high is not None]
        front = [highs[i] for i in non_dominated_sort([(r.high, r.nbytes) for r in highs])[0]]
        cands = list(dict.fromkeys(fix(n) for r in front for n in neighbours(r.config, space)))
        cands = [c for c in cands if records.get(c) is None or records[c].high is None]
        if not cands or len(highs) < 2:
            break
        losses = [r.high for r in highs]
        sizes = [r.nbytes for r in highs] + [memory.bytes(c) for c in cands]
        lmin, lmax = min(losses), max(losses)
        smin, smax = min(sizes), max(sizes)

        x = torch.tensor([_embed(r.config, space, imp) for r in highs])
        y = torch.tensor([_utility(r.high, r.nbytes, (lmin, lmax), (smin, smax), alpha) for r in highs])
        # the memory part of the utility is known exactly; the GP models the utility as a whole, as the paper
        mean, std = gp_posterior(x, y, torch.tensor([_embed(c, space, imp) for c in cands]))
        ei = expected_improvement(mean, std, float(y.max()))
        j = int(torch.argmax(ei))
        if float(ei[j]) < 1e-4:
            break
        run(cands[j], "high", f"bo {it}")
        snapshot(f"BO iteration {it}")

    highs = [r for r in records.values() if r.high is not None]
    front_idx = non_dominated_sort([(r.high, r.nbytes) for r in highs])[0]
    pareto = [highs[i].config for i in sorted(front_idx, key=lambda i: (highs[i].nbytes, highs[i].high))]
    best = min(highs, key=lambda r: (r.high, r.nbytes)).config
    return SearchResult(records=records, pareto=pareto, best=best, budget=budget, warm_start=start,
                        evaluations=dict(counts), seconds=time.perf_counter() - t0, history=history)


# ============================================================================================ evaluation
class LoRAFinetuneEvaluator:
    """``evaluate(config, fidelity)`` for a causal LM: quantize each unit's Linears to its bit-width, put LoRA of
    its rank on them (α = 2r, the authors' code; ranks reach LoRA through ``rank_pattern``/``alpha_pattern``),
    fine-tune ``steps[fidelity]`` AdamW steps on the answer tokens of ``train_rows``, and return the mean answer
    loss (nats per answer token, [EOS] included) on ``calib_rows``.

    The quantized base is simulated exactly: each Linear's weight is replaced by ``Ŵ`` (:func:`roundtrip`), which
    is what a quantized layer computes with (for 4 bits the same ``Ŵ`` as ``apply_qlora``'s
    ``QuantLinear``); storage is what :class:`MemoryModel` counts. Same seed, same batches and same LoRA
    initialisation for every configuration; results are cached per (configuration, fidelity), and
    ``evaluations``/``seconds`` count what was really computed.
    """

    def __init__(self, model: nn.Module, tokenizer, groups: dict[str, list[str]], train_rows, calib_rows, *,
                 steps: dict[str, int] | None = None, lr: float = 5e-3, batch_size: int = 16, seed: int = 0):
        self.model = model
        self.groups = groups
        self.layers = tuple(groups)
        self.pad_id = tokenizer.pad_token_id
        self._tok = tokenizer
        self.train = encode_answer_pairs(tokenizer, train_rows)
        self.calib = encode_answer_pairs(tokenizer, calib_rows)
        if not self.train or not self.calib:
            raise ValueError("train_rows and calib_rows must not be empty")
        self.steps = dict(steps or {"low": 8, "high": 24})
        for k, v in self.steps.items():
            argcheck.positive_int(f"steps[{k!r}]", v)
        self.lr, self.batch_size, self.seed = lr, batch_size, seed
        mods = dict(model.named_modules())
        self._original = {n: mods[n].weight.detach().clone() for names in groups.values() for n in names}
        self._quantized: dict[tuple[str, int], torch.Tensor] = {}
        self.cache: dict[tuple[Config, str], float] = {}
        self.line_cache: dict[tuple[Config, str], list[float]] = {}
        self.evaluations = {k: 0 for k in self.steps}
        self.seconds = 0.0

    # -- helpers
    def quantized(self, name: str, bits: int) -> torch.Tensor:
        key = (name, bits)
        if key not in self._quantized:
            self._quantized[key] = roundtrip(self._original[name], bits)
        return self._quantized[key]

    def build(self, config: Sequence[LayerChoice], ranks: bool = True) -> nn.Module:
        """A copy of the model with every unit's Linears at their bit-width and (``ranks``) LoRA of their rank."""
        from peftlab.methods.lora import apply_lora

        model = copy.deepcopy(self.model)
        mods = dict(model.named_modules())
        rank_pattern, alpha_pattern = {}, {}
        for unit, (bits, rank) in zip(self.layers, config, strict=True):
            for name in self.groups[unit]:
                if bits is not None:  # None: keep the weight as loaded
                    with torch.no_grad():
                        mods[name].weight.copy_(self.quantized(name, bits))
                rank_pattern[re.escape(name)] = rank
                alpha_pattern[re.escape(name)] = 2.0 * rank
        if ranks:
            targets = [n for names in self.groups.values() for n in names]
            torch.manual_seed(self.seed)
            apply_lora(model, r=config[0][1], alpha=2.0 * config[0][1], target_modules=targets,
                       rank_pattern=rank_pattern, alpha_pattern=alpha_pattern)
        return model

    def finetune(self, model: nn.Module, steps: int) -> nn.Module:
        """``steps`` AdamW steps at the constant rate ``lr`` on the answer tokens of the training rows (batches in
        a seeded order that carries a pass's leftover rows into the next batch); ``model`` in eval mode after."""
        gen = torch.Generator().manual_seed(self.seed)
        batches = (answer_batch([self.train[i] for i in idx], self.pad_id)
                   for idx in index_batches(len(self.train), self.batch_size, gen, steps=steps, leftover="carry"))
        fit(model, batches, labels_loss, make_optimizer(model, self.lr))
        return model

    def loss(self, model: nn.Module, answer_only: bool = True, pairs=None) -> float:
        """Mean next-token loss on the calibration set: the answer tokens (default) or every token."""
        return answer_loss(model, self.calib if pairs is None else pairs, self.pad_id, 128, answer_only)

    @torch.no_grad()
    def row_losses(self, model: nn.Module, answer_only: bool = True, pairs=None) -> list[float]:
        """Per row of the calibration set (default ``pairs``): its mean next-token loss (nats per target token
        of that row) — the per-example scores a paired comparison of two configurations needs."""
        model.eval()
        pairs = self.calib if pairs is None else pairs
        out: list[float] = []
        for i in range(0, len(pairs), 128):
            ids, attn, labels = answer_batch(pairs[i: i + 128], self.pad_id, answer_only)
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1]
            tgt = labels[:, 1:]
            nll = nn.functional.cross_entropy(logits.float().transpose(1, 2), tgt, reduction="none")  # (rows, T)
            sel = (tgt != -100).to(nll.dtype)
            out += ((nll * sel).sum(dim=1) / sel.sum(dim=1)).tolist()
        return out

    # -- the objective
    def _check_fidelity(self, config, fidelity: str):
        if fidelity not in self.steps:
            raise ValueError(f"fidelity={fidelity!r} is not allowed: expected one of {tuple(self.steps)}")
        return tuple((int(b), int(r)) for b, r in config)

    def __call__(self, config: Sequence[LayerChoice], fidelity: str = "high") -> float:
        config = self._check_fidelity(config, fidelity)
        key = (config, fidelity)
        if key not in self.cache:
            t0 = time.perf_counter()
            model = self.finetune(self.build(config), self.steps[fidelity])
            self.cache[key] = self.loss(model)
            self.evaluations[fidelity] += 1
            self.seconds += time.perf_counter() - t0
        return self.cache[key]

    def line_losses(self, config: Sequence[LayerChoice], fidelity: str = "high") -> list[float]:
        """The fine-tune of ``evaluate(config, fidelity)``, scored per calibration row (:meth:`row_losses`):
        one loss per row, in the rows' order, so two configurations can be compared row by row (paired). Fills
        the scalar cache too (the same fine-tune gives the same mean loss) and is cached itself."""
        config = self._check_fidelity(config, fidelity)
        key = (config, fidelity)
        if key not in self.line_cache:
            t0 = time.perf_counter()
            model = self.finetune(self.build(config), self.steps[fidelity])
            if key not in self.cache:
                self.cache[key] = self.loss(model)
                self.evaluations[fidelity] += 1
            self.line_cache[key] = self.row_losses(model)
            self.seconds += time.perf_counter() - t0
        return list(self.line_cache[key])

    # -- Phase I
    def quant_sensitivity(self, bits: int = 2, texts: Sequence[str] | None = None, steps: int | None = None,
                          rank: int | None = None) -> list[float]:
        """``I_q(ℓ)``: loss increase when unit ℓ alone is stored at ``bits`` (every other unit as loaded).

        ``steps=None``: the *base model's* next-token loss on ``texts`` (every token; the paper's calibration
        text, WikiText-2 there), no adapter, no training. ``steps=k``: the answer loss on the calibration
        rows after ``k`` fine-tuning steps with LoRA of ``rank`` on every unit (early-training loss, the
        quantity the search optimises)."""
        check_bits(bits)
        if (steps is None) == (texts is None):
            raise ValueError("give either texts (base-model loss) or steps (early-training loss), not both")
        t0 = time.perf_counter()
        pairs = None if texts is None else [(self._tok(t)["input_ids"], 0) for t in texts]

        mods = dict(self.model.named_modules())

        def measure(cfg):
            if steps is not None:
                return self.loss(self.finetune(self.build(cfg), steps))
            swapped = [n for (b, _), u in zip(cfg, self.layers, strict=True) if b is not None for n in self.groups[u]]
            bits_of = {n: b for (b, _), u in zip(cfg, self.layers, strict=True) for n in self.groups[u]}
            try:  # forward only: swap the weights in place (no copy of the model), then put them back
                with torch.no_grad():
                    for n in swapped:
                        mods[n].weight.copy_(self.quantized(n, bits_of[n]))
                return self.loss(self.model, answer_only=False, pairs=pairs)
            finally:
                with torch.no_grad():
                    for n in swapped:
                        mods[n].weight.copy_(self._original[n])

        r = rank or 1
        ref = measure([(None, r)] * len(self.layers))
        out = []
        for i in range(len(self.layers)):
            cfg: list = [(None, r)] * len(self.layers)
            cfg[i] = (bits, r)
            out.append(measure(cfg) - ref)
        self.seconds += time.perf_counter() - t0
        return out

    def rank_sensitivity(self, rank: int, steps: int) -> list[float]:
        """``I_r(ℓ)``: drop of the calibration answer loss after ``steps`` fine-tuning steps with LoRA of
        ``rank`` on unit ℓ alone (unquantized base), from the untuned model's loss."""
        from peftlab.methods.lora import apply_lora

        t0 = time.perf_counter()
        ref = self.loss(self.model)
        out = []
        for unit in self.layers:
            model = copy.deepcopy(self.model)
            torch.manual_seed(self.seed)
            apply_lora(model, r=rank, alpha=2.0 * rank, target_modules=list(self.groups[unit]))
            out.append(ref - self.loss(self.finetune(model, steps)))
        self.seconds += time.perf_counter() - t0
        return out
