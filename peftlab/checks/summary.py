"""``check_all(week)``: where a notebook stands — every check of the week with its latest outcome in this session."""

from __future__ import annotations

import importlib

from peftlab.checks._core import REGISTRY, RESULTS
from peftlab.checks.essays import essays_of

__all__ = ["check_all"]

def check_all(week: str | None = None) -> dict:
    """Where this notebook stands: every check of ``week`` (default: the week of the last check run) with its
    latest outcome in this session — passed, failed (with the hint) or not run yet — the auto-checked points
    earned so far, and the essays the instructor scores. Run it as the notebook's last cell (on Colab too).
    Returns ``{"week", "passed", "failed", "not_run", "points", "max_points", "essay_points"}``."""
    if week is None:
        ran = [k.split(":")[0] for k in RESULTS]
        if not ran:
            raise ValueError("check_all(): no check has run in this session yet; pass the week, e.g. check_all('01')")
        week = ran[-1]
    week = str(week).zfill(2)
    try:
        importlib.import_module(f"peftlab.checks.week{week}")
    except ImportError:
        if not any(info.week == week for info in REGISTRY.values()):
            raise ValueError(f"week={week!r}: no checks for this week (peftlab/checks/week{week}.py)") from None
    def order(info):  # exercises E1, E2, … first, then the lecture's questions 1.1, 1.2, …
        if info.id.startswith("E") and info.id[1:].isdigit():
            return (0, (int(info.id[1:]),))
        return (1, tuple(int(p) if p.isdigit() else 0 for p in info.id.split(".")))

    infos = sorted((info for info in REGISTRY.values() if info.week == week), key=order)
    passed, failed, not_run = [], [], []
    earned = 0.0
    print(f"Week {week} — 자동 채점 체크 (auto-checks), 이 세션의 마지막 결과")
    for info in infos:
        outcome = RESULTS.get(f"{week}:{info.id}")
        if outcome is None:
            not_run.append(info.id)
            print(f"  ⏳ {info.id:<5} ({info.points:g}점) 아직 실행하지 않았습니다")
        elif outcome[0]:
            passed.append(info.id)
            earned += info.points
            note = f" — {outcome[1]}" if outcome[1] else ""
            print(f"  ✅ {info.id:<5} ({info.points:g}점) 통과{note}")
        else:
            failed.append(info.id)
            print(f"  ❌ {info.id:<5} ({info.points:g}점) {outcome[1]}")
    total = sum(info.points for info in infos)
    essays = sum(info.points for info in essays_of(week).values())
    print(f"공개 체크 {earned:g} / {total:g}점 (숨은 테스트는 채점 때 함께 돕니다); 서술 {essays:g}점은 강사가 채점합니다.")
    return {"week": week, "passed": passed, "failed": failed, "not_run": not_run, "points": earned,
            "max_points": total, "essay_points": essays}
