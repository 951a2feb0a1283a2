"""Machinery shared by every week's checks.

A check is a function decorated with :func:`checkpoint`. It

* prints one stable line when it passes (``✅ 체크포인트 1.2 — 공개 체크 통과``),
* raises :class:`CheckFailed` (an ``AssertionError`` subclass) with a specific hint when it fails,
* turns a student's ``NotImplementedError`` or any other exception raised by the student's code
  into a :class:`CheckFailed` that says so, and
* reports the outcome to :data:`reporter` (a no-op for students; the grader installs its own).

Checks never read the notebook file: on Colab there is none on disk.

Two rules keep a checkpoint the student's own work (``docs/notebook-style.md``):

* **No answer key in a student release.** A reasoning item whose right answer is fixed (a letter, a set of
  letters) reads it with :func:`answer_key` from ``peftlab/checks/_keys.py``, which stays with the
  instructor: ``peftlab build-student --release`` leaves it out. Without it the public check validates the
  answer's form and self-consistency only and says "정답은 채점 때 확인합니다"; the grader, which runs
  the instructor's copy, has the keys.
* **No pass by calling the kit's reference.** ``checkpoint(..., reference=("module:name", …))`` names the
  kit functions or classes an exercise re-implements. While the check runs, a call into one of them made
  from code outside the kit (the student's function, a lambda, a subclass) fails the check, and so does
  handing the reference itself (or a subclass, a ``functools.partial``) to the check.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CheckFailed", "CheckInfo", "REGISTRY", "RESULTS", "answer_key", "checkpoint", "expect", "has_answer_keys",
           "set_reporter"]


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
    #: ``"module:name"`` of the kit functions/classes the exercise re-implements (see :func:`checkpoint`)
    reference: tuple[str, ...] = field(default=())


#: every registered check, keyed by ``"<week>:<id>"`` (e.g. ``"01:1.2"``)
REGISTRY: dict[str, CheckInfo] = {}
#: the latest outcome of every check run in this process: key → (passed, hint); read by :func:`check_all`
RESULTS: dict[str, tuple[bool, str]] = {}


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


def correctness_matrix(x, what: str):
    """Per-example correctness shaped (n_seeds ≥ 2, n_examples ≥ 2), 0/1, as a float64 numpy array, else a hint
    (the rows of :func:`peftlab.train.per_example_correct`, one per seed)."""
    import numpy as np
    import torch

    try:
        arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    expect(arr is not None and arr.ndim == 2 and arr.shape[0] >= 2 and arr.shape[1] >= 2,
           f"{what}는 시드마다 한 행, 테스트 예제마다 한 열인 (시드 수 ≥ 2, 예제 수) 배열이어야 합니다 "
           f"(peftlab.train.per_example_correct를 시드마다 쌓은 것)")
    expect(bool(np.isin(arr, (0.0, 1.0)).all()), f"{what}의 값은 예제마다 맞으면 1, 틀리면 0입니다 (per_example_correct)")
    return arr


# ------------------------------------------------------------------------------------------ answer keys
#: set inside a check when it asked for a key that this copy of the kit does not hold
_key_missing: contextvars.ContextVar[bool] = contextvars.ContextVar("peftlab_key_missing", default=False)


def has_answer_keys() -> bool:
    """True in the instructor's copy (``peftlab/checks/_keys.py`` present), False in a student release."""
    try:
        importlib.import_module("peftlab.checks._keys")
    except ImportError:
        return False
    return True


def answer_key(week: str, check_id: str):
    """The fixed answer of reasoning item ``week``/``check_id`` (a letter, a frozenset of letters, …), or
    ``None`` in a student release, where the check then validates form only and says so."""
    try:
        keys = importlib.import_module("peftlab.checks._keys").KEYS
    except ImportError:
        _key_missing.set(True)
        return None
    return keys[f"{week}:{check_id}"]


# ------------------------------------------------------------------------- reference-shortcut guard
_KIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # .../peftlab


def _resolve(spec: str):
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _codes(obj) -> set:
    """Code objects of a function, or of every function defined in the class and its kit base classes."""
    if inspect.isclass(obj):
        out = set()
        for klass in obj.__mro__:
            if not klass.__module__.startswith("peftlab."):
                continue
            for value in vars(klass).values():
                fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
                if isinstance(fn, property):
                    fn = fn.fget
                if inspect.isfunction(fn):
                    out.add(fn.__code__)
        return out
    fn = inspect.unwrap(obj)
    return {fn.__code__} if inspect.isfunction(fn) else set()


def _is_outside_kit(filename: str) -> bool:
    """A frame of code the student wrote (a notebook cell, a test's lambda): not in ``peftlab/``, not in an
    installed library, not in the standard library."""
    if filename.startswith("<frozen") or filename.startswith("<string>"):
        return False
    path = os.path.abspath(filename)
    return not path.startswith(_KIT_DIR + os.sep) and not path.startswith(_library_roots())


@functools.lru_cache(maxsize=1)
def _library_roots() -> tuple[str, ...]:
    """Folders of the standard library and of installed packages (site-packages, Colab's dist-packages)."""
    import site
    import sysconfig

    roots = {v for k, v in sysconfig.get_paths().items() if k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's old site module
        pass
    return tuple(os.path.abspath(r) + os.sep for r in roots if r)


def _same_as_reference(value, refs) -> str | None:
    """The name of the reference ``value`` is (itself, unwrapped, a partial of it, a subclass of it)."""
    while isinstance(value, functools.partial):
        value = value.func
    value = inspect.unwrap(value) if callable(value) else value
    for spec, ref in refs:
        if value is ref or (inspect.isclass(value) and inspect.isclass(ref) and issubclass(value, ref)):
            return spec
        if inspect.ismethod(value) and value.__func__ is getattr(ref, "__func__", None):
            return spec
    return None


class _ReferenceGuard:
    """``sys.setprofile`` hook: records the first call into a reference code object made (at any depth) from a
    frame outside the kit."""

    def __init__(self, refs, stop):
        self.stop = stop  # the check's wrapper frame: the walk up the stack ends there
        self.codes = {}
        for spec, ref in refs:
            for code in _codes(ref):
                self.codes[code] = spec
        self.hit: str | None = None
        self._previous = None

    def _hook(self, frame, event, arg):
        if event == "call" and self.hit is None and frame.f_code in self.codes:
            caller = frame.f_back
            while caller is not None and caller is not self.stop:
                if caller.f_code in self.codes:  # the reference calling itself / its own methods: keep walking
                    caller = caller.f_back
                    continue
                if _is_outside_kit(caller.f_code.co_filename):
                    self.hit = self.codes[frame.f_code]
                    break
                caller = caller.f_back
        if self._previous is not None:
            self._previous(frame, event, arg)

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


def _shortcut_hint(spec: str) -> str:
    return (f"키트의 참조 구현 {spec.replace(':', '.')}을(를) 불렀습니다: 이 연습은 그 식을 직접 구현하는 것입니다 "
            "(torch 연산으로 쓰세요; 참조는 연습 뒤에서 비교에만 씁니다)")


def checkpoint(week: str, check_id: str, points: float = 1.0, title: str = "", reference: tuple[str, ...] = ()):
    """Register a check function under ``week``/``check_id`` worth ``points``.

    ``reference``: ``"module:name"`` of the kit's own implementations of what the exercise asks for; a
    student answer that is one of them, or that calls one of them, fails (see the module docstring)."""

    reference = tuple(reference)
    info = CheckInfo(id=check_id, week=week, points=float(points), title=title, reference=reference)
    key = f"{week}:{check_id}"
    if key in REGISTRY:
        raise ValueError(f"check {key!r} is registered twice")
    REGISTRY[key] = info

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            token = _key_missing.set(False)
            guard = None
            try:
                if reference:
                    refs = [(spec, _resolve(spec)) for spec in reference]
                    for value in list(args) + list(kwargs.values()):
                        if callable(value) and (same := _same_as_reference(value, refs)):
                            raise _Hint(_shortcut_hint(same))
                    guard = _ReferenceGuard(refs, stop=sys._getframe())
                    with guard:
                        fn(*args, **kwargs)
                    if guard.hit:
                        raise _Hint(_shortcut_hint(guard.hit))
                else:
                    fn(*args, **kwargs)
            except _Hint as exc:
                hint = _shortcut_hint(guard.hit) if guard is not None and guard.hit else str(exc)
                failure = CheckFailed(check_id, hint)
            except CheckFailed as exc:
                failure = exc
            except NotImplementedError:
                failure = CheckFailed(
                    check_id, "아직 구현하지 않았습니다 (NotImplementedError). '# YOUR CODE HERE' 부분을 채우세요."
                )
            except Exception as exc:  # the student's code raised something
                if guard is not None and guard.hit:
                    failure = CheckFailed(check_id, _shortcut_hint(guard.hit))
                else:
                    failure = CheckFailed(check_id, f"코드 실행 중 예외가 났습니다: {type(exc).__name__}: {exc}")
            else:
                form_only = _key_missing.get()
                _key_missing.reset(token)
                RESULTS[key] = (True, "정답은 채점 때 확인합니다" if form_only else "")
                reporter(info, True, "")
                if form_only:
                    print(f"✅ 체크포인트 {check_id} — 형식 확인 (정답은 채점 때 확인합니다)")
                else:
                    print(f"✅ 체크포인트 {check_id} — 공개 체크 통과")
                return None
            _key_missing.reset(token)
            RESULTS[key] = (False, failure.hint)
            reporter(info, False, failure.hint)
            raise failure from None

        wrapper.check_info = info
        return wrapper

    return decorate
