"""QR-Adaptor (peftlab.qr_adaptor) against the paper's definitions: NSGA-II ranking, crowding distance,
budget repair, the memory model (closed form = bytes of the real tensors), warm start, GP/EI, the search."""

from __future__ import annotations

import copy
import math
import random

import pytest
import torch

from peftlab import qr_adaptor as qa
from peftlab.core.targets import LLAMA_LINEARS
from peftlab.quant import lowbit

LLAMA_TARGETS = list(LLAMA_LINEARS)


def _tiny_llama(seed=0, hidden=64, inter=96, layers=2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32)
    return LlamaForCausalLM(cfg)


# ============================================================================================ ranking
POINTS = [(1, 5), (2, 3), (3, 1), (2, 4), (4, 4), (3, 3), (1, 5)]


def test_non_dominated_sort_hand_example():
    # (2,4) and (3,3) are dominated by (2,3) [and (3,3) by (3,1)]; (4,4) by those; (1,5) twice: a tie, one front
    assert qa.non_dominated_sort(POINTS) == [[0, 1, 2, 6], [3, 5], [4]]


def test_non_dominated_sort_edge_cases():
    assert qa.non_dominated_sort([]) == []
    assert qa.non_dominated_sort([(3.0, 1.0)]) == [[0]]
    assert qa.non_dominated_sort([(1, 1), (1, 1), (1, 1)]) == [[0, 1, 2]]        # equal points: one front
    assert qa.non_dominated_sort([(3,), (1,), (2,), (1,)]) == [[1, 3], [2], [0]]  # one objective = sorting
    # three objectives: (1,1,1) dominates all; (2,0,5) and (0,2,5) are incomparable with it? no: 0<1 → front 0
    assert qa.non_dominated_sort([(1, 1, 1), (2, 2, 2), (0, 2, 5), (2, 0, 5)]) == [[0, 2, 3], [1]]
    with pytest.raises(ValueError, match="NaN"):
        qa.non_dominated_sort([(1, float("nan"))])
    with pytest.raises(ValueError, match="same number"):
        qa.non_dominated_sort([(1, 2), (1, 2, 3)])


def test_every_front_is_non_dominated_and_dominated_by_the_previous():
    rng = random.Random(0)
    pts = [(rng.randint(0, 6), rng.randint(0, 6)) for _ in range(40)]
    fronts = qa.non_dominated_sort(pts)
    assert sorted(i for f in fronts for i in f) == list(range(40))
    for k, front in enumerate(fronts):
        assert not any(qa.dominates(pts[i], pts[j]) for i in front for j in front)
        if k:
            assert all(any(qa.dominates(pts[i], pts[j]) for i in fronts[k - 1]) for j in front)


def test_crowding_distance_hand_example():
    # f1 range 4: interior (1,2) → (2-0)/4, (2,1) → (4-1)/4; f2 range 4: (2,1) → (2-0)/4, (1,2) → (4-1)/4
    cd = qa.crowding_distance([(0, 4), (1, 2), (2, 1), (4, 0)])
    assert cd[0] == math.inf and cd[3] == math.inf
    assert cd[1] == pytest.approx(0.5 + 0.75) and cd[2] == pytest.approx(0.75 + 0.5)


def test_crowding_distance_edge_cases():
    assert qa.crowding_distance([]) == []
    assert qa.crowding_distance([(1, 2)]) == [math.inf]
    assert qa.crowding_distance([(1, 2), (2, 1)]) == [math.inf, math.inf]
    # an objective on which every point is equal adds nothing; the extremes (first/last by index) stay infinite
    cd = qa.crowding_distance([(0, 7), (1, 7), (3, 7)])
    assert cd[0] == math.inf and cd[2] == math.inf and cd[1] == pytest.approx(1.0)


def test_nsga2_select_keeps_fronts_then_the_least_crowded():
    pts = [(0, 4), (1, 2), (2, 1), (4, 0), (5, 5)]
    assert sorted(qa.nsga2_select(pts, 4)) == [0, 1, 2, 3]
    assert sorted(qa.nsga2_select(pts, 2)) == [0, 3]  # the extremes (infinite crowding distance)
    assert sorted(qa.nsga2_select(pts, 3)) == [0, 1, 3]  # tie at 1.25: the lower index
    assert sorted(qa.nsga2_select(pts, 10)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="k="):
        qa.nsga2_select(pts, -1)


# ============================================================================================ memory model
def test_lora_nbytes_hand_value():
    assert qa.lora_nbytes(16, 8, 4) == 2 * 4 * 24  # A (4×16) and B (8×4) in 16 bits
    assert qa.weight_nbytes is lowbit.weight_nbytes  # the memory model counts the stored weights of quant.lowbit


def test_memory_model_of_a_llama_equals_its_quantized_weights_and_16bit_lora():
    import peftlab

    model = _tiny_llama()
    groups = qa.layer_groups(model)
    assert list(groups) == ["model.layers.0", "model.layers.1"] and all(len(v) == 7 for v in groups.values())
    mem = qa.MemoryModel.from_model(model, groups)
    config = ((3, 2), (8, 4))
    rank_pattern = {name: r for (_, r), names in zip(config, groups.values(), strict=True) for name in names}
    peftlab.apply_lora(model, r=8, target_modules=LLAMA_TARGETS, rank_pattern=rank_pattern)
    total = 0
    mods = dict(model.named_modules())
    for (bits, rank), names in zip(config, groups.values(), strict=True):
        for name in names:
            layer = mods[name]
            total += qa.stored_nbytes(qa.quantize_weight(layer.base_layer.weight, bits))
            a, b = layer.lora_A["default"], layer.lora_B["default"]
            assert a.shape[0] == rank  # the per-unit rank reached LoRA through rank_pattern
            total += qa.stored_nbytes([a.detach().to(torch.bfloat16), b.detach().to(torch.bfloat16)])
    assert mem.bytes(config) == total
    assert mem.minimum(qa.SearchSpace(tuple(groups))) == mem.bytes(((2, 2), (2, 2)))


# ============================================================================================ repair
def _small():
    space = qa.SearchSpace(("a", "b"))
    mem = qa.MemoryModel({"a": [(8, 16)], "b": [(8, 16)]})  # 128 weights: 2→40, 3→56, 4→74, 8→136 B; LoRA 48r B
    return space, mem


def test_repair_hand_examples():
    space, mem = _small()
    assert mem.bytes(((8, 4), (8, 4))) == 2 * (136 + 192)
    # budget 500: the rank downgrades cost ε/96 (I_r = 0) — a first (ties go to the first unit), then b
    assert qa.repair(((8, 4), (8, 4)), space, mem, 500, [1.0, 0.0], [0.0, 0.0]) == ((8, 2), (8, 2))
    # budget 400: then b's bits (I_q = 0) go 8 → 4 (saves 62 B) and 4 → 3 (18 B, ε/18 ≪ (1+ε)/62 for a)
    assert qa.repair(((8, 4), (8, 4)), space, mem, 400, [1.0, 0.0], [0.0, 0.0]) == ((8, 2), (3, 2))
    # with the importances swapped, a is the one downgraded
    assert qa.repair(((8, 4), (8, 4)), space, mem, 400, [0.0, 1.0], [0.0, 0.0]) == ((3, 2), (8, 2))
    # within budget: unchanged
    assert qa.repair(((4, 2), (3, 2)), space, mem, 10_000) == ((4, 2), (3, 2))


def test_repair_meets_every_feasible_budget_and_rejects_an_infeasible_one():
    space, mem = _small()
    low = mem.minimum(space)
    assert low == 2 * (40 + 96)
    rng = random.Random(1)
    for _ in range(50):
        cfg = tuple((rng.choice(space.bits), rng.choice(space.ranks)) for _ in space.layers)
        budget = rng.randint(low, mem.maximum(space))
        fixed = qa.repair(cfg, space, mem, budget, [rng.random(), rng.random()], [rng.random(), rng.random()])
        assert mem.bytes(fixed) <= budget
        assert all(fb <= b and fr <= r for (fb, fr), (b, r) in zip(fixed, cfg, strict=True))  # only downgrades
    assert qa.repair(((8, 8), (8, 8)), space, mem, low) == ((2, 2), (2, 2))
    with pytest.raises(ValueError, match=f"below the smallest configuration.*{low} bytes"):
        qa.repair(((8, 8), (8, 8)), space, mem, low - 1)


# ============================================================================================ space, warm start
def test_search_space_bad_input():
    with pytest.raises(ValueError, match="layers is empty"):
        qa.SearchSpace(())
    with pytest.raises(ValueError, match="bits is empty"):
        qa.SearchSpace(("a",), bits=())
    with pytest.raises(ValueError, match="ranks is empty"):
        qa.SearchSpace(("a",), ranks=[])
    with pytest.raises(ValueError, match=r"\[5\] not supported"):
        qa.SearchSpace(("a",), bits=(4, 5))
    with pytest.raises(ValueError, match="ranks must be ints ≥ 1"):
        qa.SearchSpace(("a",), ranks=(0, 2))
    with pytest.raises(TypeError, match="ints"):
        qa.SearchSpace(("a",), ranks=(2.5,))
    with pytest.raises(ValueError, match="distinct"):
        qa.SearchSpace(("a", "a"))
    space = qa.SearchSpace(("a", "b"), bits=(8, 2, 4), ranks=(8, 2))
    assert space.bits == (2, 4, 8) and space.ranks == (2, 8) and space.size == 36
    with pytest.raises(ValueError, match="bits=3 is not in"):
        space.check(((3, 2), (4, 2)))
    with pytest.raises(ValueError, match="rank=4 is not in"):
        space.check(((2, 4), (4, 2)))
    with pytest.raises(ValueError, match="1 entries"):
        space.check(((2, 2),))
    with pytest.raises(ValueError, match="bits=\\(7,\\)"):
        space.uniform(7, 2)


def test_warm_start_hand_example():
    space = qa.SearchSpace(("a", "b", "c"))
    # Î_q = 0, .5, 1 → 2 + 6·Î = 2, 5, 8 → {2, 4, 8}; Î_r = 1, 0, .25 → 2 + 6·Î = 8, 2, 3.5 → {8, 2, 4}
    assert qa.warm_start([0.0, 0.5, 1.0], [4.0, 0.0, 1.0], space) == ((2, 8), (4, 2), (8, 4))
    assert qa.min_max([3.0, 3.0]) == [0.0, 0.0]
    with pytest.raises(ValueError, match="one value per layer"):
        qa.warm_start([1.0], [1.0, 2.0, 3.0], space)


# ============================================================================================ GP and EI
def test_gp_interpolates_and_is_unsure_far_away():
    x = torch.tensor([[0.0], [0.5], [1.0]])
    y = torch.tensor([0.0, 1.0, 0.0])
    mean, std = qa.gp_posterior(x, y, torch.tensor([[0.0], [0.5], [1.0], [5.0]]))
    assert torch.allclose(mean[:3], y.double(), atol=0.02)
    assert float(std[:3].max()) < 0.05 < float(std[3])


def test_expected_improvement_formula():
    ei = qa.expected_improvement(torch.tensor([1.0, 3.0, -10.0]), torch.tensor([1.0, 1e-9, 1.0]), best=1.0)
    assert ei[0] == pytest.approx(1 / math.sqrt(2 * math.pi))  # σ·φ(0)
    assert ei[1] == pytest.approx(2.0)                          # certain improvement of 2
    assert ei[2] == pytest.approx(0.0, abs=1e-12)


# ============================================================================================ the search
def _synthetic(space, sensitive=(4.0, 0.2, 0.2, 0.2)):
    """A loss where unit 0 is quantization-sensitive and rank helps a little; high fidelity is lower."""
    err = {2: 1.0, 3: 0.35, 4: 0.12, 8: 0.01}
    calls = []

    def evaluate(cfg, fidelity):
        calls.append((cfg, fidelity))
        q = sum(s * err[b] for s, (b, _) in zip(sensitive, cfg, strict=True))
        r = sum(0.05 / rk for _, rk in cfg)
        return q + r + (0.3 if fidelity == "low" else 0.0)

    return evaluate, calls


def _setup():
    space = qa.SearchSpace(("l0", "l1", "l2", "l3"))
    mem = qa.MemoryModel({u: [(64, 64), (128, 64)] for u in space.layers})
    budget = mem.bytes(space.uniform(4, 4))
    return space, mem, budget


def test_search_is_deterministic_within_budget_and_caches():
    space, mem, budget = _setup()
    results = []
    for _ in range(2):
        evaluate, calls = _synthetic(space)
        res = qa.qr_adaptor_search(evaluate, space, mem, budget, [4.0, 0.2, 0.2, 0.2], [0.1, 0.2, 0.3, 0.4],
                                   population=8, generations=3, bo_iterations=3, seed=3)
        assert len(calls) == len(set(calls)) == res.evaluations["low"] + res.evaluations["high"]
        results.append((res, calls))
    (a, calls_a), (b, calls_b) = results
    assert calls_a == calls_b and a.pareto == b.pareto and a.best == b.best
    assert all(r.nbytes <= budget for r in a.records.values())
    highs = {c: r.high for c, r in a.records.items() if r.high is not None}
    pts = [(highs[c], mem.bytes(c)) for c in a.pareto]
    assert not any(qa.dominates(p, q) for p in pts for q in pts)
    assert all(not qa.dominates((h, mem.bytes(c)), p) for c, h in highs.items() for p in pts)
    assert a.best in a.pareto and highs[a.best] == min(highs.values())
    # the search improves on its warm start, and its best-so-far never gets worse
    evaluate, _ = _synthetic(space)
    assert highs[a.best] < evaluate(a.warm_start, "high")
    bests = [h["best_high"] for h in a.history]
    assert bests == sorted(bests, reverse=True)
    # the budget-repaired warm start: the sensitive unit (I_q largest) keeps the most bits
    assert a.warm_start[0][0] == max(b for b, _ in a.warm_start)
    assert [h["phase"] for h in a.history][:2] == ["initial population", "generation 1"]


def test_search_bad_input():
    space, mem, budget = _setup()
    evaluate, _ = _synthetic(space)
    imp = [1.0, 1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="below the smallest configuration"):
        qa.qr_adaptor_search(evaluate, space, mem, mem.minimum(space) - 1, imp, imp)
    with pytest.raises(ValueError, match="population=1"):
        qa.qr_adaptor_search(evaluate, space, mem, budget, imp, imp, population=1)
    with pytest.raises(ValueError, match="alpha"):
        qa.qr_adaptor_search(evaluate, space, mem, budget, imp, imp, alpha=2)
    other = qa.SearchSpace(("x", "l1", "l2", "l3"))
    with pytest.raises(ValueError, match="same layers"):
        qa.qr_adaptor_search(evaluate, other, mem, budget, imp, imp)


# ============================================================================================ the evaluator
def test_evaluator_builds_quantized_bases_with_per_unit_ranks_and_caches():
    from transformers import PreTrainedTokenizerFast

    from peftlab.models import load_tokenizer

    tok = load_tokenizer("causal_lm")
    assert isinstance(tok, PreTrainedTokenizerFast)
    model = _tiny_llama()
    model.resize_token_embeddings(len(tok))
    groups = qa.layer_groups(model)
    texts = ["사과는 과일이다.", "서울은 수도이다.", "고양이는 동물이다.", "당근은 채소이다."]
    rows = [{"instruction": "당근의 종류는?", "output": "채소", "task": "category"}]
    ev = qa.LoRAFinetuneEvaluator(model, tok, groups, texts, texts[:2] + rows, steps={"low": 1, "high": 2},
                                  batch_size=2)
    cfg = ((4, 2), (2, 4))
    built = ev.build(cfg)
    mods = dict(built.named_modules())
    for (bits, rank), names in zip(cfg, groups.values(), strict=True):
        for name in names:
            assert mods[name].lora_A["default"].shape[0] == rank
            assert mods[name].scaling["default"] == pytest.approx(2.0)  # α = 2r
            assert torch.equal(mods[name].base_layer.weight, qa.roundtrip(dict(model.named_modules())[name].weight, bits))
    loss = ev(cfg, "low")
    assert math.isfinite(loss) and ev(cfg, "low") == loss and ev.evaluations == {"low": 1, "high": 0}
    ev(cfg, "high")
    assert ev.evaluations == {"low": 1, "high": 1}
    with pytest.raises(ValueError, match="fidelity"):
        ev(cfg, "medium")
    # per calibration row: the same fine-tune, scored row by row; token-weighted, the rows give the mean loss
    rows_loss = ev.line_losses(cfg, "high")
    assert len(rows_loss) == len(ev.calib) and ev.evaluations == {"low": 1, "high": 1}  # the scalar was cached
    targets = [len(seq) - 1 - k if k == 0 else len(seq) - k for seq, k in ev.calib]
    assert sum(v * t for v, t in zip(rows_loss, targets, strict=True)) / sum(targets) == pytest.approx(ev(cfg, "high"), rel=1e-5)
    assert ev.line_losses(cfg, "high") == rows_loss
    other = ((2, 2), (2, 2))
    ev.line_losses(other, "low")
    assert ev.evaluations == {"low": 2, "high": 1} and ev(other, "low") == ev.cache[(other, "low")]
    with pytest.raises(ValueError, match="fidelity"):
        ev.line_losses(cfg, "medium")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    iq = ev.quant_sensitivity(2, texts=texts)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # weights put back
    ir = ev.rank_sensitivity(2, steps=1)
    assert len(iq) == len(ir) == 2 and all(math.isfinite(v) for v in iq + ir)
    # I_q by hand for unit 1: its Linears at 2 bits, every token of the texts, minus the unquantized loss
    ref = copy.deepcopy(model)
    for name in groups["model.layers.1"]:
        with torch.no_grad():
            ref.get_submodule(name).weight.copy_(qa.roundtrip(model.get_submodule(name).weight, 2))
    pairs = [(tok(t)["input_ids"], 0) for t in texts]
    assert iq[1] == pytest.approx(ev.loss(ref, answer_only=False, pairs=pairs)
                                  - ev.loss(model, answer_only=False, pairs=pairs), abs=1e-6)
    with pytest.raises(ValueError, match="either texts"):
        ev.quant_sensitivity(2)
    assert dict(model.named_modules())["model.layers.0.self_attn.q_proj"].weight.requires_grad  # model untouched


def test_neighbours_and_mutation_move_one_rung_at_a_time():
    space = qa.SearchSpace(("a", "b"))
    assert sorted(qa.neighbours(((2, 2), (8, 8)), space)) == sorted(
        [((3, 2), (8, 8)), ((2, 4), (8, 8)), ((2, 2), (4, 8)), ((2, 2), (8, 4))])

    def rungs(c1, c2):
        return sum(abs(space.bits.index(b1) - space.bits.index(b2)) + abs(space.ranks.index(r1) - space.ranks.index(r2))
                   for (b1, r1), (b2, r2) in zip(c1, c2, strict=True))

    start = ((4, 4), (4, 4))
    for seed in range(20):
        child = qa.mutate(start, space, random.Random(seed), moves=2)
        assert space.check(child) == child and rungs(start, child) in (0, 2)
        assert child == qa.mutate(start, space, random.Random(seed), moves=2)  # seeded
