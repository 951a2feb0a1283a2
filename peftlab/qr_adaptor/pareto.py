"""Pareto ranking for NSGA-II: domination, non-dominated sorting, crowding distance, elitist selection."""

from __future__ import annotations

import math
from collections.abc import Sequence


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
