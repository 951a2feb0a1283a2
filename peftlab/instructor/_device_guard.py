"""The colab rehearsal's device guard (see :mod:`peftlab.instructor.rehearse`), installed by :func:`install` in a kernel.

Placement is tracked as a flag on tensors and modules (True: on the device that ``pick_device()`` chose, False: on the
host, None: unknown), since on a CPU-only machine both are the CPU. It lives in a kit file, so the checks' guard
against calling a reference implementation (``peftlab.checks._core``) sees its frames as the kit's own.

A model of the colab profile (``peftlab.profile.HUB_MODELS`` or a stand-in folder) left on the host is no mismatch, only
slow on Colab: the guard counts the input rows it reads there and raises past ``HOST_ROWS`` (256).
"""
# ruff: noqa


class DeviceGuardError(RuntimeError):
    """A tensor on the wrong side of the host/device line (what a GPU would refuse), or a colab-profile model running a
    long loop on the host (what a GPU would run minutes too slowly)."""


def install():
    """Patch torch in this process (once): see the module docstring."""
    if globals().get("_INSTALLED"):
        return
    globals()["_INSTALLED"] = True
    exec(compile(_SOURCE, __file__, "exec"), globals())


_SOURCE = r'''
import sys as _sys
import threading as _threading

import torch as _torch
from torch.overrides import TorchFunctionMode as _Mode

import peftlab.device as _pd

_ACCEL = _pd.pick_device()
_orig_pick = _pd.pick_device


def _pick(prefer=None):
    d = _orig_pick(prefer)
    return _ACCEL if d == _ACCEL else d


for _m in list(_sys.modules.values()):  # every module that already holds pick_device gets the tracked one
    if getattr(_m, "__name__", "").startswith("peftlab") and getattr(_m, "pick_device", None) is _orig_pick:
        _m.pick_device = _pick
_FLAG = "_peftlab_on_device"
_state = _threading.local()


def _target(dev):
    # True: pick_device()'s own device object or any CUDA spelling; False: the string "cpu"; None: anything else
    if isinstance(dev, _torch.Tensor):
        return getattr(dev, _FLAG, False)
    if dev is _ACCEL or isinstance(dev, int):
        return True
    if isinstance(dev, str):
        return True if dev.startswith("cuda") else (False if dev == "cpu" else None)
    if isinstance(dev, _torch.device) and dev.type == "cuda":
        return True
    return None


def _flag_of(t):
    return getattr(t, _FLAG, False)


def _mark(obj, value, depth=0):
    if isinstance(obj, _torch.Tensor):
        try:
            setattr(obj, _FLAG, value)
        except Exception:
            pass
    elif depth < 2 and isinstance(obj, (list, tuple)):
        for o in obj:
            _mark(o, value, depth + 1)
    elif depth < 2 and isinstance(obj, dict):
        for o in obj.values():
            _mark(o, value, depth + 1)


def _tensors(obj, depth=0):
    if isinstance(obj, _torch.Tensor):
        yield obj
    elif depth < 2 and isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o, depth + 1)
    elif depth < 2 and isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o, depth + 1)


_MOVES = {_torch.Tensor.to, _torch.Tensor.cuda, _torch.Tensor.cpu}


class _Propagate(_Mode):
    # outside model calls, a result takes the placement of its inputs (or of device=...)
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if getattr(_state, "depth", 0) or getattr(_state, "moving", False) or func in _MOVES:
            return out
        if "device" in kwargs and kwargs["device"] is not None:
            flag = _target(kwargs["device"])
        else:
            flag = next((getattr(t, _FLAG) for t in _tensors(args) if hasattr(t, _FLAG)), None)
        if flag is not None and not any(out is t for t in _tensors(args)):
            _mark(out, flag)
        return out


def _module_move(self, target, orig, *args, **kwargs):
    _state.moving = True
    try:
        out = orig(self, *args, **kwargs)
    finally:
        _state.moving = False
    for m in self.modules():
        m.__dict__[_FLAG] = target
    for t in list(self.parameters()) + list(self.buffers()):
        _mark(t, target)
    return out


_orig_mod_to, _orig_mod_cuda, _orig_mod_cpu = _torch.nn.Module.to, _torch.nn.Module.cuda, _torch.nn.Module.cpu


def _mod_to(self, *args, **kwargs):
    dev = kwargs.get("device", args[0] if args else None)
    if dev is None or isinstance(dev, _torch.dtype):
        return _orig_mod_to(self, *args, **kwargs)
    target = _target(dev)
    if target is None and isinstance(dev, _torch.device) and dev == _ACCEL:
        target = True  # torch.device(DEVICE) is a new object of the same value: code that passes DEVICE on
    return _module_move(self, target, _orig_mod_to, *args, **kwargs)


_torch.nn.Module.to = _mod_to
_torch.nn.Module.cuda = lambda self, *a, **k: _module_move(self, True, _orig_mod_cuda, *a, **k)
_torch.nn.Module.cpu = lambda self, *a, **k: _module_move(self, False, _orig_mod_cpu, *a, **k)

_orig_t_to, _orig_t_cuda, _orig_t_cpu = _torch.Tensor.to, _torch.Tensor.cuda, _torch.Tensor.cpu


def _moved(self, out, target):
    if getattr(_state, "moving", False):
        return out
    if out is self:
        if target == getattr(self, _FLAG, False):
            return out
        out = self.view_as(self) if self.layout == _torch.strided else self.clone()
    _mark(out, target)
    return out


def _t_to(self, *args, **kwargs):
    dev = kwargs.get("device", args[0] if args else None)
    out = _orig_t_to(self, *args, **kwargs)
    if dev is None or isinstance(dev, _torch.dtype):
        return _moved(self, out, getattr(self, _FLAG, False))
    return _moved(self, out, _target(dev))


def _t_cuda(self, *args, **kwargs):
    return _moved(self, _orig_t_cuda(self, *args, **kwargs) if _torch.cuda.is_available() else self, True)


def _t_cpu(self, *args, **kwargs):
    return _moved(self, _orig_t_cpu(self, *args, **kwargs), False)


_torch.Tensor.to, _torch.Tensor.cuda, _torch.Tensor.cpu = _t_to, _t_cuda, _t_cpu
_orig_call = _torch.nn.Module.__call__

# A colab-profile model (a Hub id of peftlab.profile.HUB_MODELS, or a stand-in folder) that never went to the device
# runs on the CPU on Colab too: no device mismatch, only a loop minutes long (Week 01's first linear probe over 25k
# reviews). The guard counts the rows such a model reads on the host and stops past HOST_ROWS.
HOST_ROWS = 256
_HUB = "_peftlab_colab_model"
import weakref as _weakref

_host_rows = _weakref.WeakKeyDictionary()  # per module object: a deepcopy starts its own count


def _colab_model_name(module):
    if _HUB in module.__dict__:
        return module.__dict__[_HUB]
    from peftlab.profile import HUB_MODELS
    from peftlab.standins import cache_root

    root, found = str(cache_root().resolve()), None
    for m in module.modules():
        path = getattr(getattr(m, "config", None), "_name_or_path", None)
        if isinstance(path, str) and path:
            if path in HUB_MODELS.values():
                found = path
            else:
                try:
                    from pathlib import Path as _Path

                    if str(_Path(path).resolve()).startswith(root):
                        found = path
                except (OSError, ValueError):
                    pass
            break
    module.__dict__[_HUB] = found
    return found


def _count_host_rows(module, args, kwargs):
    rows = next((t.shape[0] for t in _tensors((args, kwargs)) if t.dim() >= 1), 0)
    if not rows or (name := _colab_model_name(module)) is None:
        return
    total = _host_rows.get(module, 0) + rows
    _host_rows[module] = total
    if total > HOST_ROWS:
        raise DeviceGuardError(
            f"{type(module).__name__} ({name}, a colab-profile model) has read {total} input rows on the host "
            f"without being sent to the device: on Colab this loop runs on the CPU (no error, only minutes). "
            f"Send the model to DEVICE (model.to(DEVICE) or the function's device=DEVICE) before the loop")


def _guarded_call(self, *args, **kwargs):
    if getattr(_state, "depth", 0):
        return _orig_call(self, *args, **kwargs)
    model_on = self.__dict__.get(_FLAG)
    if model_on is not None:
        for t in _tensors((args, kwargs)):
            flag = getattr(t, _FLAG, False)
            if flag is None or flag == model_on or t.dim() == 0 or isinstance(t, _torch.nn.Parameter):
                continue
            raise DeviceGuardError(
                f"{type(self).__name__} was moved to {'the device (.to(DEVICE))' if model_on else 'the host'} but is "
                f"called with a {tuple(t.shape)} tensor on {'the host' if model_on else 'the device'}: on a GPU this is "
                "a device mismatch (every input on the model's device)")
    if model_on is not True:
        _count_host_rows(self, args, kwargs)
    _state.depth = 1
    try:
        out = _orig_call(self, *args, **kwargs)
    finally:
        _state.depth = 0
    if model_on is not None:
        _mark(out, model_on)
    return out


_torch.nn.Module.__call__ = _guarded_call
_orig_array, _orig_numpy = _torch.Tensor.__array__, _torch.Tensor.numpy


def _host_only(t, what):
    if getattr(t, _FLAG, False) is True and _ACCEL.type != "cpu" and t.device.type == "cpu":
        return  # a real accelerator: torch itself checks
    if getattr(t, _FLAG, False) is True:
        raise DeviceGuardError(f"a {tuple(t.shape)} tensor on the device reaches {what}: call .cpu() first "
                               "(on a GPU: \"can't convert cuda:0 device type tensor to numpy\")")


def _array(self, *args, **kwargs):
    _host_only(self, "numpy/matplotlib")
    return _orig_array(self, *args, **kwargs)


def _numpy(self, *args, **kwargs):
    _host_only(self, ".numpy()")
    return _orig_numpy(self, *args, **kwargs)


_torch.Tensor.__array__, _torch.Tensor.numpy = _array, _numpy
_propagate = _Propagate()
_propagate.__enter__()
'''
