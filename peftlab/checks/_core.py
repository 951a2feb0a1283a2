"""Machinery shared by every week's checks.

A check is a function decorated with :func:`checkpoint`. It

* prints one stable line when it passes (``✅ 체크포인트 1.2 — 공개 체크 통과``),
* raises :class:`CheckFailed` (an ``AssertionError`` subclass) with a specific hint when it fails,
* turns a student's ``NotImplementedError`` or any other exception raised by the student's code
  into a :class:`CheckFailed` that says so, and
* reports the outcome to :data:`reporter` (a no-op for students; the grader installs its own).

Checks never read the notebook file: on Colab there is none on disk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["CheckFailed", "CheckInfo", "REGISTRY", "checkpoint", "expect", "set_reporter"]


class CheckFailed(AssertionError):
    """A checkpoint did not pass. ``hint`` says what to look at."""

    def __init__(self, check_id: str, hint: str):
        self.check_id = check_id
        self.hint = hint
        super().__init__(f"❌ 체크포인트 {check_id}: {hint}")


@dataclass(frozen=True)
class CheckInfo:
    id: str
    week: str
    points: float
    title: str


#: every registered check, keyed by ``"<week>:<id>"`` (e.g. ``"01:1.2"``)
REGISTRY: dict[str, CheckInfo] = {}


def _noop_reporter(info: CheckInfo, passed: bool, hint: str) -> None:
    return None


reporter: Callable[[CheckInfo, bool, str], None] = _noop_reporter


def set_reporter(fn: Callable[[CheckInfo, bool, str], None] | None) -> None:
    """Install the callable that receives every check outcome (``None`` restores the no-op)."""
    global reporter
    reporter = fn or _noop_reporter


class _Hint(Exception):
    """Internal: raised by :func:`expect` inside a check body."""


def expect(condition: bool, hint: str) -> None:
    """Inside a check body: fail with ``hint`` unless ``condition`` holds."""
    if not condition:
        raise _Hint(hint)


def close(a, b, atol: float = 1e-5, rtol: float = 1e-5) -> bool:
    """``a`` is a tensor of ``b``'s shape, equal to ``b`` within ``atol + rtol·|b|`` (compared in ``b``'s dtype)."""
    import torch

    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.to(b.dtype), b, atol=atol, rtol=rtol)


def choice(value, letters: str = "abcd") -> str:
    """A student's multiple-choice answer: one of ``letters`` (any case, spaces ignored), else a hint."""
    expect(value is not None, f"답(choice)을 고르세요: {', '.join(repr(c) for c in letters)} 중 하나")
    expect(isinstance(value, str) and len(value.strip()) == 1 and value.strip().lower() in letters,
           f"choice는 {', '.join(repr(c) for c in letters)} 중 하나의 문자열이어야 합니다 (받은 것: {value!r})")
    return value.strip().lower()


def number(value, what: str) -> float:
    """A student's number (int, float, or a one-element tensor / numpy value) as a finite float, else a hint."""
    import math

    expect(value is not None, f"{what} 값을 채우세요")
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        size = value.numel() if hasattr(value, "numel") else getattr(value, "size", 1)
        expect(size == 1, f"{what}은(는) 숫자 하나여야 합니다")
        value = value.item()
    expect(isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value),
           f"{what}은(는) 유한한 숫자여야 합니다 (받은 것: {value!r})")
    return float(value)


def checkpoint(week: str, check_id: str, points: float = 1.0, title: str = ""):
    """Register a check function under ``week``/``check_id`` worth ``points``."""

    info = CheckInfo(id=check_id, week=week, points=float(points), title=title)
    key = f"{week}:{check_id}"
    if key in REGISTRY:
        raise ValueError(f"check {key!r} is registered twice")
    REGISTRY[key] = info

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                fn(*args, **kwargs)
            except _Hint as exc:
                failure = CheckFailed(check_id, str(exc))
            except CheckFailed as exc:
                failure = exc
            except NotImplementedError:
                failure = CheckFailed(
                    check_id, "아직 구현하지 않았습니다 (NotImplementedError). '# YOUR CODE HERE' 부분을 채우세요."
                )
            except Exception as exc:  # the student's code raised something
                failure = CheckFailed(check_id, f"코드 실행 중 예외가 났습니다: {type(exc).__name__}: {exc}")
            else:
                reporter(info, True, "")
                print(f"✅ 체크포인트 {check_id} — 공개 체크 통과")
                return None
            reporter(info, False, failure.hint)
            raise failure from None

        wrapper.check_info = info
        return wrapper

    return decorate
