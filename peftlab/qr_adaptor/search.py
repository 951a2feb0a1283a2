"""The three-phase search: warm start, constrained NSGA-II with two fidelities, BO refinement."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from peftlab.qr_adaptor.bayes import _embed, _utility, expected_improvement, gp_posterior
from peftlab.qr_adaptor.memory import MemoryModel
from peftlab.qr_adaptor.moves import min_max, mutate, neighbours, repair, warm_start
from peftlab.qr_adaptor.pareto import non_dominated_sort, nsga2_select
from peftlab.qr_adaptor.space import Config, LayerChoice, SearchSpace


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
