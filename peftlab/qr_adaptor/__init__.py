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
:func:`quantize_weight` and 16-bit LoRA factors really hold (``tests/quant/test_lowbit.py``, ``tests/qr_adaptor/test_qr_adaptor.py``). The paper's Eq. 1–3
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

Where each part lives (every name below is importable from ``peftlab.qr_adaptor`` itself):

=================  =======================================================================================
``space``          ``SEARCH_BITS``, ``SEARCH_RANKS``, ``SearchSpace``, ``layer_groups`` (the search units)
``memory``         ``M(C)``: ``MemoryModel``, ``lora_nbytes`` (the base weights' bytes: :mod:`peftlab.quant.lowbit`)
``pareto``         ``dominates``, ``non_dominated_sort``, ``crowding_distance``, ``nsga2_select``
``moves``          ``mutate``, ``neighbours``, ``repair`` (budget), ``min_max``, ``warm_start`` (Phase I)
``bayes``          ``gp_posterior``, ``expected_improvement`` (Phase III)
``search``         ``qr_adaptor_search`` (the three phases), ``Record``, ``SearchResult``
``evaluator``      ``LoRAFinetuneEvaluator``: P(C), a short LoRA fine-tune through :func:`peftlab.train.fit`
=================  =======================================================================================
"""


from peftlab.qr_adaptor.bayes import expected_improvement, gp_posterior
from peftlab.qr_adaptor.evaluator import LoRAFinetuneEvaluator
from peftlab.qr_adaptor.memory import LORA_BYTES, MemoryModel, lora_nbytes
from peftlab.qr_adaptor.moves import min_max, mutate, neighbours, repair, warm_start
from peftlab.qr_adaptor.pareto import crowding_distance, dominates, non_dominated_sort, nsga2_select
from peftlab.qr_adaptor.search import Record, SearchResult, qr_adaptor_search
from peftlab.qr_adaptor.space import SEARCH_BITS, SEARCH_RANKS, Config, LayerChoice, SearchSpace, layer_groups
from peftlab.quant import BLOCKSIZE
from peftlab.quant.lowbit import (
    SUPPORTED_BITS,
    dequantize_weight,
    pack_bits,
    quantize_weight,
    roundtrip,
    stored_nbytes,
    unpack_bits,
    weight_nbytes,
)

__all__ = [
    "BLOCKSIZE",
    "LORA_BYTES",
    "SEARCH_BITS",
    "SEARCH_RANKS",
    "SUPPORTED_BITS",
    "Config",
    "LayerChoice",
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
