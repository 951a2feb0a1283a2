r"""VB-LoRA: every LoRA matrix of the model assembled from one shared vector bank (Li, Han, Ji, 2024,
"VB-LoRA: Extreme Parameter Efficient Fine-Tuning with Vector Banks", arXiv 2405.15179, NeurIPS 2024).

Notation as in :mod:`peftlab.methods.lora` (PyTorch's and peft's): a frozen ``nn.Linear`` holds
``W0 ∈ R^{out×in}``; ``x ∈ R^{…×in}``; ``ΔW = B A`` with ``A ∈ R^{r×in}``, ``B ∈ R^{out×r}``.

**Vector bank.** One matrix per adapter, shared by *every* adapted layer of the model::

    V ∈ R^{N×b}          N = ``num_vectors`` (default 256), b = ``vector_length`` (default 256)

initialised U(−β, β), β = ``init_vector_bank_bound`` (0.02). peftlab keeps it in the model's shared slot
(:func:`peftlab.core.tuner.shared_parameter`): one ``nn.Parameter`` registered once, as
``model.peftlab_shared.vblora_vector_bank_<adapter>``; each layer holds a reference to it (not registered
again), so ``parameters()``, ``state_dict()`` and a saved file hold it once. peft keeps it as
``base_model.vblora_vector_bank.<adapter>``.

**Sub-vectors and logits.** A and B are cut into length-b pieces: A's rows into ``in/b`` pieces, B's
columns into ``out/b`` pieces (``in`` and ``out`` must be divisible by b). Every piece has its own
learned logit vector over the bank (peft's names, init N(0, σ²), σ = ``init_logits_std`` = 0.1)::

    vblora_logits_A ∈ R^{r × (in/b) × N}        vblora_logits_B ∈ R^{(out/b) × r × N}

**Top-k admixture.** For one logit vector ``z ∈ R^N``: ``(v, i) = topk(z, k)``, ``w = softmax(v) ∈ R^k``
and the piece is ``u(z) = Σ_{j<k} w_j V[i_j] ∈ R^b`` (k = ``topk``, default 2). Only the k selected
logits and the k selected bank rows receive gradient.

**Assembly.** ``U_A = u(logits_A) ∈ R^{r×(in/b)×b}``, ``A = U_A.reshape(r, in)`` — so
``A[i, j·b:(j+1)·b] = u(logits_A[i, j])``; ``U_B = u(logits_B) ∈ R^{(out/b)×r×b}``,
``B = U_B.transpose(1, 2).reshape(out, r)`` — so ``B[j·b:(j+1)·b, i] = u(logits_B[j, i])``.

**Forward**, with no α/r scaling (the scale is 1), never forming ΔW::

    y = x W0ᵀ + b0 + (dropout(x) Aᵀ) Bᵀ

**Merge** ``W0 ← W0 + B A``; unmerge subtracts it. A fresh adapter is *not* zero: bank and logits are
both random, so ``|ΔW_ij| ≤ r·β²`` at the start (each entry of A and B is a convex combination of bank
entries) — small, not exact. The contract test registers that (``tolerances={"fresh_output": …}``).

**Trainable parameters:** ``N·b`` (the bank, once per model) ``+ Σ_layers N·r·(in/b + out/b)`` (logits).

**Storage.** Saved "full", a file holds the bank and all logits (fp32). Saved "top-k only"
(``save_only_topk_weights=True``, peft's format), each logit vector becomes its k indices (in the smallest
integer dtype that holds N−1: uint8 for N < 2⁸, int16 < 2¹⁵, int32 < 2³¹, else int64) and the first
k−1 of its k softmax weights (the last is 1 − their sum), so the file needs
``4·N·b + Σ_rows (k·|idx| + 4·(k−1))`` bytes instead of ``4·N·b + 4·Σ_rows N`` (:func:`storage_bytes`).
Loading such a file rebuilds each logit vector as ``log w`` at the saved indices and ``−∞`` elsewhere:
inference and merging give the same outputs (to ~1e-8), but **training it again raises a RuntimeError**,
as in peft: the file no longer holds the N−k other logits of each piece, whose order decides which bank
vectors enter the top-k as training moves, and with ``−∞`` there they could never be selected; inventing
finite values would train a different adapter than the one that was saved. Train from the full file.

**Lecture erratum.** The lecture dates VB-LoRA to 2023 (it is May 2024, NeurIPS 2024) and writes
``A_l = Σ_i w_{l,i} v_i U_{l,i}`` with a top-k *similarity* between ``A_l`` and the bank. There are no
matrices ``U``, no similarity scores, and no per-layer weight over whole matrices: each length-b piece of
A and B has its own learned logit vector, and the piece is the softmax-weighted sum of the top-k bank
vectors that its logits select.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from peftlab.core import argcheck
from peftlab.core.config import AdapterConfig, names_field
from peftlab.core.layer import AdapterLayer
from peftlab.core.peft_format import Codec, register_codec
from peftlab.core.recipe import Recipe, head, targets
from peftlab.core.tuner import adapter_layers, inject, register_method, shared_parameter

__all__ = [
    "VBLORA_BANK_KEY",
    "VBLoRAConfig",
    "VBLoRALinear",
    "apply_vblora",
    "assemble_A",
    "assemble_B",
    "index_dtype",
    "storage_bytes",
    "topk_admixture",
    "vblora_layers",
    "vector_bank",
]

BANK_KEY = "vblora_vector_bank_{}"


# ---------------------------------------------------------------------- the method's formulas
def topk_admixture(logits: torch.Tensor, bank: torch.Tensor, topk: int) -> torch.Tensor:
    """``u(z) = Σ_{j<k} softmax(topk(z).values)_j · V[topk(z).indices_j]`` for every logit vector ``z``.

    ``logits``: (…, N), ``bank``: (N, b) → (…, b).
    """
    values, indices = logits.topk(topk, dim=-1)
    weights = torch.softmax(values, dim=-1)
    picked = bank.index_select(0, indices.reshape(-1)).view(*indices.shape, bank.shape[-1])  # (…, k, b): V[i]
    return (weights.unsqueeze(-1) * picked).sum(-2)


def assemble_A(logits_A: torch.Tensor, bank: torch.Tensor, topk: int) -> torch.Tensor:
    """``A = u(logits_A).reshape(r, in)``: logits (r, in/b, N), bank (N, b) → A (r, in)."""
    return topk_admixture(logits_A, bank, topk).reshape(logits_A.shape[0], -1)


def assemble_B(logits_B: torch.Tensor, bank: torch.Tensor, topk: int) -> torch.Tensor:
    """``B = u(logits_B).transpose(1, 2).reshape(out, r)``: logits (out/b, r, N), bank (N, b) → B (out, r)."""
    return topk_admixture(logits_B, bank, topk).transpose(1, 2).reshape(-1, logits_B.shape[1])


def index_dtype(num_vectors: int) -> torch.dtype:
    """The smallest integer dtype peft uses for top-k indices into a bank of ``num_vectors`` rows."""
    if num_vectors < 2**8:
        return torch.uint8
    if num_vectors < 2**15:
        return torch.int16
    if num_vectors < 2**31:
        return torch.int32
    return torch.int64


# ---------------------------------------------------------------------- config
def _check_topk(topk, num_vectors) -> None:
    argcheck.positive_int("topk", topk, "an int with 1 ≤ topk ≤ num_vectors")
    if topk > num_vectors:
        raise ValueError(f"topk={topk} is not allowed: it picks topk of the num_vectors={num_vectors} bank vectors, "
                         f"so 1 ≤ topk ≤ {num_vectors}")


@dataclass
class VBLoRAConfig(AdapterConfig):
    """A VB-LoRA adapter's settings, validated at construction (peft's ``VBLoRAConfig`` names and defaults).

    ``r`` (rank of A and B), ``num_vectors`` (N), ``vector_length`` (b), ``topk`` (k),
    ``vblora_dropout`` (on A's input), ``save_only_topk_weights`` (write the top-k-only format),
    ``init_vector_bank_bound`` (β: bank ~ U(−β, β)), ``init_logits_std`` (σ: logits ~ N(0, σ²)),
    ``target_modules`` (``nn.Linear`` layers: name suffixes or one regex), ``modules_to_save``.
    """

    r: int = 4
    num_vectors: int = 256
    vector_length: int = 256
    topk: int = 2
    vblora_dropout: float = 0.0
    save_only_topk_weights: bool = False
    init_vector_bank_bound: float = 0.02
    init_logits_std: float = 0.1
    target_modules: list[str] | str = names_field("query", "value")
    modules_to_save: list[str] = names_field()

    method = "vblora"

    def __post_init__(self) -> None:
        argcheck.positive_int("r", self.r)
        argcheck.positive_int("num_vectors", self.num_vectors, "an int ≥ 1 (the number of vectors in the bank)")
        argcheck.positive_int("vector_length", self.vector_length, "an int ≥ 1 dividing every target's in and out features")
        _check_topk(self.topk, self.num_vectors)
        argcheck.number("vblora_dropout", self.vblora_dropout, at_least=0.0, below=1.0, allowed="a probability in [0, 1)")
        argcheck.flag("save_only_topk_weights", self.save_only_topk_weights)
        argcheck.number("init_vector_bank_bound", self.init_vector_bank_bound, at_least=0.0, allowed="a finite number ≥ 0")
        argcheck.number("init_logits_std", self.init_logits_std, at_least=0.0, allowed="a finite number ≥ 0")
        super().__post_init__()  # target_modules, modules_to_save

    def layer_hparams(self, module_name: str, base_layer: nn.Module) -> dict:
        """Keyword arguments of ``add_adapter`` for the layer called ``module_name`` (the same for every layer)."""
        return {"r": self.r, "num_vectors": self.num_vectors, "vector_length": self.vector_length,
                "topk": self.topk, "vblora_dropout": self.vblora_dropout, "init_logits_std": self.init_logits_std}

    def bind_model(self, model: nn.Module, adapter_name: str) -> None:
        """Called by :func:`peftlab.inject` once the layers are wrapped: create the adapter's bank in the model's
        shared slot and give every VB-LoRA layer of ``adapter_name`` a reference to it."""
        layers = [layer for layer in vblora_layers(model).values() if layer.has_adapter(adapter_name)]
        like = layers[0].vblora_logits_A[adapter_name] if layers else torch.empty(0)
        bound = self.init_vector_bank_bound

        def create() -> torch.Tensor:
            bank = torch.empty(self.num_vectors, self.vector_length, dtype=like.dtype, device=like.device)
            return nn.init.uniform_(bank, -bound, bound)

        bank = shared_parameter(model, BANK_KEY.format(adapter_name), create)
        for layer in layers:
            layer.vblora_vector_bank[adapter_name] = bank


#: the defaults, read by every signature below (the layer's and ``apply_vblora``'s)
_D = VBLoRAConfig()


# ---------------------------------------------------------------------- layer
class VBLoRALinear(AdapterLayer):
    r"""A frozen ``nn.Linear`` plus one or more named VB-LoRA adapters.

    ``y = base_layer(x) + Σ_{a active, not merged} (dropout_a(x) A_aᵀ) B_aᵀ`` with ``A_a``, ``B_a``
    assembled from the shared bank ``V_a`` by the top-k admixture of ``vblora_logits_A[a]`` / ``_B[a]``.

    Shapes: ``vblora_logits_A[a]``: (r, in/b, N), ``vblora_logits_B[a]``: (out/b, r, N),
    ``vblora_vector_bank[a]``: (N, b) — the model's shared Parameter, referenced here, not registered;
    ``delta_weight(a)``: (out, in).
    """

    adapter_param_names = ("vblora_logits_A", "vblora_logits_B")
    adapter_module_names = ("vblora_dropout",)
    adapter_state_names = ("r", "topk", "num_vectors", "vector_length", "vblora_vector_bank")
    base_types = (nn.Linear,)

    def __init__(self, base_layer: nn.Linear, r: int = _D.r, num_vectors: int = _D.num_vectors,
                 vector_length: int = _D.vector_length, topk: int = _D.topk,
                 vblora_dropout: float = _D.vblora_dropout, init_logits_std: float = _D.init_logits_std,
                 adapter_name: str | None = "default", vector_bank: nn.Parameter | None = None):
        super().__init__(base_layer)
        self.in_features, self.out_features = self.dims(base_layer)
        if adapter_name is not None:
            self.add_adapter(adapter_name, r=r, num_vectors=num_vectors, vector_length=vector_length, topk=topk,
                             vblora_dropout=vblora_dropout, init_logits_std=init_logits_std)
            if vector_bank is not None:
                self.set_vector_bank(adapter_name, vector_bank)

    # ------------------------------------------------------------------ what the core asks of a method
    @classmethod
    def check(cls, base_layer: nn.Module, r: int = _D.r, num_vectors: int = _D.num_vectors,
              vector_length: int = _D.vector_length, topk: int = _D.topk,
              vblora_dropout: float = _D.vblora_dropout, init_logits_std: float = _D.init_logits_std) -> None:
        argcheck.positive_int("r", r)
        argcheck.positive_int("num_vectors", num_vectors, "an int ≥ 1 (the number of vectors in the bank)")
        argcheck.positive_int("vector_length", vector_length, "an int ≥ 1 dividing the layer's in and out features")
        _check_topk(topk, num_vectors)
        argcheck.number("vblora_dropout", vblora_dropout, at_least=0.0, below=1.0, allowed="a probability in [0, 1)")
        argcheck.number("init_logits_std", init_logits_std, at_least=0.0, allowed="a finite number ≥ 0")
        n_in, n_out = cls.dims(base_layer)
        bad = [f"{what}={n}" for what, n in (("in_features", n_in), ("out_features", n_out)) if n % vector_length]
        if bad:
            raise ValueError(f"vector_length={vector_length} must divide in_features and out_features of this "
                             f"{n_out}×{n_in} layer, but {' and '.join(bad)} "
                             f"{'is' if len(bad) == 1 else 'are'} not divisible by {vector_length}")

    @classmethod
    def param_shapes(cls, base_layer: nn.Module, r: int = _D.r, num_vectors: int = _D.num_vectors,
                     vector_length: int = _D.vector_length, **_) -> dict[str, tuple[int, ...]]:
        n_in, n_out = cls.dims(base_layer)
        return {"vblora_logits_A": (r, n_in // vector_length, num_vectors),
                "vblora_logits_B": (n_out // vector_length, r, num_vectors),
                "vblora_vector_bank": (num_vectors, vector_length)}

    @classmethod
    def num_trainable(cls, base_layer: nn.Module, r: int = _D.r, num_vectors: int = _D.num_vectors,
                      vector_length: int = _D.vector_length, **_) -> int:
        """``N·r·(in/b + out/b)``: this layer's logits. The bank (``N·b``, once per model) is the method's
        shared count (:func:`shared_trainable`), not any one layer's."""
        n_in, n_out = cls.dims(base_layer)
        return num_vectors * r * (n_in // vector_length + n_out // vector_length)

    def create(self, adapter_name: str, r: int = _D.r, num_vectors: int = _D.num_vectors,
               vector_length: int = _D.vector_length, topk: int = _D.topk,
               vblora_dropout: float = _D.vblora_dropout, init_logits_std: float = _D.init_logits_std) -> None:
        """Logits A (r, in/b, N) and B (out/b, r, N) ~ N(0, σ²). The bank is given by the model
        (:meth:`VBLoRAConfig.bind_model`, or :meth:`set_vector_bank` for a layer used alone)."""
        weight = self.base_layer.weight
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        b = vector_length
        logits_A = torch.empty(r, self.in_features // b, num_vectors, dtype=dtype, device=weight.device)
        logits_B = torch.empty(self.out_features // b, r, num_vectors, dtype=dtype, device=weight.device)
        nn.init.normal_(logits_A, 0.0, init_logits_std)
        nn.init.normal_(logits_B, 0.0, init_logits_std)
        self.vblora_logits_A[adapter_name] = nn.Parameter(logits_A)
        self.vblora_logits_B[adapter_name] = nn.Parameter(logits_B)
        self.vblora_dropout[adapter_name] = nn.Dropout(vblora_dropout) if vblora_dropout > 0 else nn.Identity()
        self.r[adapter_name] = r
        self.topk[adapter_name] = topk
        self.num_vectors[adapter_name] = num_vectors
        self.vector_length[adapter_name] = vector_length

    def set_vector_bank(self, adapter_name: str, bank: nn.Parameter) -> None:
        """Point ``adapter_name`` at ``bank`` (N, b) — normally the model's shared Parameter."""
        shape = (self.num_vectors[adapter_name], self.vector_length[adapter_name])
        if not isinstance(bank, torch.Tensor) or tuple(bank.shape) != shape:
            raise ValueError(f"vector bank of adapter {adapter_name!r} must be a tensor of shape {shape} "
                             f"(num_vectors, vector_length), got {getattr(bank, 'shape', type(bank).__name__)}")
        self.vblora_vector_bank[adapter_name] = bank

    def adapter_parameters(self, adapter_name: str) -> dict[str, nn.Parameter]:
        """The logits of ``adapter_name`` and the (shared) bank they read."""
        out = super().adapter_parameters(adapter_name)
        if adapter_name in self.vblora_vector_bank:
            out["vblora_vector_bank"] = self.vblora_vector_bank[adapter_name]
        return out

    # ------------------------------------------------------------------ A, B, ΔW
    def _bank(self, adapter_name: str) -> torch.Tensor:
        if adapter_name not in self.vblora_vector_bank:
            raise RuntimeError(f"VB-LoRA adapter {adapter_name!r} has no vector bank yet: add it with "
                               "peftlab.inject / apply_vblora (which create the model's shared bank), or "
                               "call set_vector_bank on a layer used alone")
        return self.vblora_vector_bank[adapter_name]

    def lora_matrices(self, adapter_name: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` of ``adapter_name``: A (r, in), B (out, r), assembled from the bank
        (:func:`assemble_A`, :func:`assemble_B`)."""
        bank = self._bank(adapter_name)
        logits_A, logits_B = self.vblora_logits_A[adapter_name], self.vblora_logits_B[adapter_name]
        k = self.topk[adapter_name]
        return assemble_A(logits_A, bank.to(logits_A.dtype), k), assemble_B(logits_B, bank.to(logits_B.dtype), k)

    def delta_weight(self, adapter_name: str = "default") -> torch.Tensor:
        """``ΔW = B A`` with shape (out, in), in the base weight's dtype (no α/r scaling)."""
        A, B = self.lora_matrices(adapter_name)
        return (B @ A).to(self.base_weight().dtype)

    def _check_trainable(self, adapter_name: str) -> None:
        logits = self.vblora_logits_A[adapter_name]
        if self.training and torch.is_grad_enabled() and logits.requires_grad and torch.isinf(logits[0, 0]).any():
            raise RuntimeError(
                f"VB-LoRA adapter {adapter_name!r} was loaded from a top-k-only file (save_only_topk_weights=True): "
                "its logits outside the top-k are −inf, so it can be used for inference and merging but not "
                "trained again. Train from the full file (save_only_topk_weights=False), or call model.eval() / "
                "torch.no_grad() for inference.")

    def adapter_forward(self, adapter_name: str, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        """``result + (dropout(x) Aᵀ) Bᵀ``: two thin products, ΔW is never formed."""
        self._check_trainable(adapter_name)
        A, B = self.lora_matrices(adapter_name)
        h = self.vblora_dropout[adapter_name](x.to(A.dtype))
        return result + F.linear(F.linear(h, A), B).to(result.dtype)

    def extra_repr(self) -> str:
        parts = [f"{n}: r={self.r[n]}, num_vectors={self.num_vectors[n]}, vector_length={self.vector_length[n]}, "
                 f"topk={self.topk[n]}" for n in self.adapter_names]
        return f"adapters=[{'; '.join(parts)}]"


# ---------------------------------------------------------------------- model level
def vblora_layers(model: nn.Module) -> dict[str, VBLoRALinear]:
    """Every VB-LoRA layer of ``model`` by module name."""
    return adapter_layers(model, VBLoRALinear)


def vector_bank(model: nn.Module, adapter_name: str = "default") -> nn.Parameter:
    """The shared bank ``V`` (N, b) of ``adapter_name``: the one Parameter every layer of that adapter reads."""
    shared = getattr(model, "peftlab_shared", None)
    key = BANK_KEY.format(adapter_name)
    if shared is None or key not in shared:
        raise ValueError(f"adapter_name={adapter_name!r}: the model has no VB-LoRA vector bank of that adapter")
    return shared[key]


def shared_trainable(config: VBLoRAConfig) -> int:
    """The closed-form count of the model-level shared tensors of one adapter: the bank, ``N·b``."""
    return config.num_vectors * config.vector_length


def storage_bytes(model: nn.Module, adapter_name: str = "default") -> dict[str, int]:
    """Bytes of tensor data a saved adapter holds (``modules_to_save`` not included), in closed form.

    ``full``: bank + every logit (``N·b + Σ_rows N`` values); ``topk_only``: bank + per logit row k indices
    (:func:`index_dtype`) and k−1 weights. The file on disk adds a small JSON header to each.
    """
    layers = {n: lay for n, lay in vblora_layers(model).items() if lay.has_adapter(adapter_name)}
    if not layers:
        raise ValueError(f"adapter_name={adapter_name!r}: the model has no VB-LoRA layers of that adapter")
    bank = vector_bank(model, adapter_name)
    value = bank.element_size()
    rows = sum(lay.vblora_logits_A[adapter_name].numel() // lay.num_vectors[adapter_name]
               + lay.vblora_logits_B[adapter_name].numel() // lay.num_vectors[adapter_name] for lay in layers.values())
    first = next(iter(layers.values()))
    n, k = first.num_vectors[adapter_name], first.topk[adapter_name]
    idx = torch.empty((), dtype=index_dtype(n)).element_size()
    logits_value = first.vblora_logits_A[adapter_name].element_size()
    return {"full": bank.numel() * value + rows * n * logits_value,
            "topk_only": bank.numel() * value + rows * (k * idx + (k - 1) * logits_value)}


def apply_vblora(
    model: nn.Module,
    r: int = _D.r,
    num_vectors: int = _D.num_vectors,
    vector_length: int = _D.vector_length,
    topk: int = _D.topk,
    target_modules: str | Sequence[str] = tuple(_D.target_modules),
    vblora_dropout: float = _D.vblora_dropout,
    save_only_topk_weights: bool = _D.save_only_topk_weights,
    init_vector_bank_bound: float = _D.init_vector_bank_bound,
    init_logits_std: float = _D.init_logits_std,
    modules_to_save: Sequence[str] | None = None,
    adapter_name: str = "default",
) -> nn.Module:
    """Wrap the target ``nn.Linear`` layers of ``model`` with VB-LoRA over one shared vector bank, in place,
    and freeze everything else; the convenient form of ``peftlab.inject(model, VBLoRAConfig(...), adapter_name)``.

    Nothing is changed if any argument is invalid (e.g. a target whose width ``vector_length`` does not
    divide). Returns ``model``.
    """
    config = VBLoRAConfig(
        r=r, num_vectors=num_vectors, vector_length=vector_length, topk=topk, vblora_dropout=vblora_dropout,
        save_only_topk_weights=save_only_topk_weights, init_vector_bank_bound=init_vector_bank_bound,
        init_logits_std=init_logits_std,
        target_modules=target_modules if isinstance(target_modules, str) else list(target_modules),
        modules_to_save=list(modules_to_save or []))
    return inject(model, config, adapter_name)


def _compare_vblora(model: nn.Module, task: str) -> nn.Module:
    """``peftlab compare``: r = 4, a bank of 256 vectors, top-2.

    VB-LoRA cuts every A row and B column into pieces of vector_length: 64 divides the encoder's widths
    (128/256) and those of the usual Hub models; the tiny causal LM's hidden width 96 takes 32."""
    names = targets(task)
    dims = [d for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)
            and name.rsplit(".", 1)[-1] in names for d in (mod.in_features, mod.out_features)]
    length = 64 if all(d % 64 == 0 for d in dims) else 32
    return apply_vblora(model, r=4, num_vectors=256, vector_length=length, topk=2, target_modules=names,
                        modules_to_save=head(task))


register_method(
    "vblora", VBLoRAConfig, (VBLoRALinear,),
    examples=(
        {"model": "mlp", "config": {"r": 4, "num_vectors": 10, "vector_length": 2, "target_modules": ["0", "2"]}},
        {"model": "mlp", "config": {"r": 2, "num_vectors": 7, "vector_length": 2, "topk": 3,
                                    "init_logits_std": 1.0, "target_modules": ["0", "2"]}},
        {"model": "bert", "config": {"r": 3, "num_vectors": 16, "vector_length": 8, "topk": 2,
                                     "target_modules": ["query", "value", "dense"],
                                     "modules_to_save": ["classifier"]}},
    ),
    # The fresh adapter is not zero (random bank and logits, as in the paper and peft): |ΔW_ij| ≤ r·β².
    tolerances={"fresh_output": 1e-2},
    shared_trainable=shared_trainable,
    recipe=Recipe("VB-LoRA r=4, bank of 256 vectors of length 64 (32 for a width of 96), top-2", _compare_vblora),
)


# ---------------------------------------------------------------------- peft's file (peftlab.core.peft_format)
# VB-LoRA: the bank is one model-level tensor in peft's file ("base_model.vblora_vector_bank"); inside
# peftlab's generic reader/writer every layer carries it as "<module>.vblora_vector_bank" (the same Parameter).
VBLORA_BANK_KEY = "base_model.vblora_vector_bank"
_VBLORA_LOGITS = (".vblora_logits_A", ".vblora_logits_B")


def _vblora_to_peft(cfg: VBLoRAConfig) -> dict:
    return {
        "r": cfg.r, "num_vectors": cfg.num_vectors, "vector_length": cfg.vector_length, "topk": cfg.topk,
        "vblora_dropout": cfg.vblora_dropout, "save_only_topk_weights": cfg.save_only_topk_weights,
        "init_vector_bank_bound": cfg.init_vector_bank_bound, "init_logits_std": cfg.init_logits_std,
        "fan_in_fan_out": False, "bias": "none",
    }


def _vblora_from_peft(cfg: dict, where: str) -> dict:
    for key in ("num_vectors", "vector_length"):
        if key not in cfg:
            raise ValueError(f"{where}: missing required field {key!r}")
    if cfg.get("bias", "none") != "none":
        raise ValueError(f"{where}: bias={cfg.get('bias')!r} is not implemented in peftlab; it reads bias='none'")
    if cfg.get("fan_in_fan_out"):
        raise ValueError(f"{where}: fan_in_fan_out=true (transformers Conv1D layers) is not implemented in peftlab")
    kwargs = {
        "r": cfg.get("r", _D.r), "num_vectors": cfg["num_vectors"], "vector_length": cfg["vector_length"],
        "topk": cfg.get("topk", _D.topk), "vblora_dropout": cfg.get("vblora_dropout") or 0.0,
        "save_only_topk_weights": bool(cfg.get("save_only_topk_weights", _D.save_only_topk_weights)),
        "init_vector_bank_bound": cfg.get("init_vector_bank_bound", _D.init_vector_bank_bound),
        "init_logits_std": cfg.get("init_logits_std", _D.init_logits_std),
    }
    try:
        VBLoRAConfig(**kwargs)  # every field validated, with its name, before anything is read further
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return kwargs


def _vblora_pack(tensors: dict[str, torch.Tensor], config: VBLoRAConfig) -> dict[str, torch.Tensor]:
    """One bank under peft's key; with ``save_only_topk_weights`` each logit vector becomes its top-k indices
    (smallest integer dtype for N) and the first k−1 of its top-k softmax weights."""
    out: dict[str, torch.Tensor] = {}
    bank = None
    for key, value in tensors.items():
        if key.endswith(".vblora_vector_bank"):
            bank = value
        elif config.save_only_topk_weights and key.endswith(_VBLORA_LOGITS):
            values, indices = value.topk(config.topk, dim=-1)
            out[f"{key}_topk_indices"] = indices.to(index_dtype(config.num_vectors)).contiguous()
            out[f"{key}_topk_weights"] = torch.softmax(values, dim=-1)[..., :-1].contiguous()
        else:
            out[key] = value
    if bank is not None:
        out[VBLORA_BANK_KEY] = bank
    return out


def _vblora_unpack(state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The file's form back to per-layer tensors: logits rebuilt from top-k files (``log w`` at the saved
    indices, −∞ elsewhere, as peft does), and the bank given to every layer that has logits."""
    state = dict(state)
    if VBLORA_BANK_KEY not in state:
        raise ValueError(f"{where}: tensor {VBLORA_BANK_KEY} (the shared vector bank) is missing")
    bank = state.pop(VBLORA_BANK_KEY)
    if bank.dim() != 2 or not bank.is_floating_point() or not torch.isfinite(bank).all():
        raise ValueError(f"{where}: tensor {VBLORA_BANK_KEY} must be a finite floating-point (num_vectors, "
                         f"vector_length) matrix, got {bank.dtype} of shape {tuple(bank.shape)}")
    n = bank.shape[0]
    for key in [k for k in state if k.endswith("_topk_indices")]:
        base_key = key[: -len("_topk_indices")]
        wkey = f"{base_key}_topk_weights"
        indices = state.pop(key)
        if wkey not in state:
            raise ValueError(f"{where}: tensor {wkey} is missing (it goes with {key})")
        weights = state.pop(wkey)
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise ValueError(f"{where}: tensor {key} must hold integer indices, got {indices.dtype}")
        if tuple(weights.shape) != (*indices.shape[:-1], indices.shape[-1] - 1):
            raise ValueError(f"{where}: tensor {wkey} has shape {tuple(weights.shape)}; with {key} of shape "
                             f"{tuple(indices.shape)} it must be {(*indices.shape[:-1], indices.shape[-1] - 1)}")
        idx = indices.to(torch.long)
        if idx.numel() and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"{where}: tensor {key} holds indices outside [0, {n}) (the bank has {n} vectors)")
        if not weights.is_floating_point() or not torch.isfinite(weights).all() or (weights < 0).any() \
                or (weights.sum(-1) > 1 + 1e-5).any():
            raise ValueError(f"{where}: tensor {wkey} must hold finite weights ≥ 0 summing to at most 1")
        full = torch.cat([weights, 1 - weights.sum(-1, keepdim=True)], dim=-1)
        logits = torch.full((*idx.shape[:-1], n), float("-inf"), dtype=weights.dtype)
        state[base_key] = logits.scatter(-1, idx, torch.log(full))
    modules = {k[: -len(s)] for k in state for s in _VBLORA_LOGITS if k.endswith(s)}
    for module in modules:
        state[f"{module}.vblora_vector_bank"] = bank
    return state


# VB-LoRA: per-layer logits, one shared bank; "full" or "top-k only" (save_only_topk_weights).
register_codec(Codec(
    method="vblora", peft_type="VBLORA",
    tensor_keys={VBLoRALinear: {"vblora_logits_A": ".vblora_logits_A", "vblora_logits_B": ".vblora_logits_B",
                                "vblora_vector_bank": ".vblora_vector_bank"}},
    accepts=lambda cfg: cfg.get("peft_type") == "VBLORA",
    to_peft=_vblora_to_peft, from_peft=_vblora_from_peft,
    pack=_vblora_pack, unpack=_vblora_unpack, may_be_neg_inf=("vblora_logits_A", "vblora_logits_B"),
))
