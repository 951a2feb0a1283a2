"""Kernel-side half of the grader: sandbox the kernel process, then guard the checks.

Run by the grader as ``python -m peftlab.instructor._kernel_guard --ctl-fd R --res-fd W -f CONN``.
Before any student code runs it

1. reads its configuration (and the per-notebook secret key) from the control pipe ``R``;
2. sandboxes its own process where it can: joins the memory/pids cgroups, enters new network and
   mount namespaces (no network; solution, submission and output folders hidden under empty
   tmpfs mounts), sets rlimits, drops root to a throw-away uid (see :class:`Sandbox`);
3. imports the week's check modules and snapshots everything a student might patch (the checks,
   ``peftlab.checks._core``, builtins, ``sys.exit``/``os._exit``, IPython's shell and kernel
   methods, input/AST transformers and event hooks);
4. starts a thread that serves the grader over the pipes, then starts the ipykernel.

Scoring channel. For each check cell the grader sends ``arm`` (check id, nonce, trailer token) over
the control pipe; the guard thread restores every snapshot, installs its reporter in
``peftlab.checks._core`` and arms. The grader then executes the check cell with a trailer
``_peftlab_cell_done_(token)`` appended. The reporter accepts a report only while armed, only for
the armed check id, and only when called from the genuine ``checkpoint`` wrapper around the
genuine check function. On ``end`` the guard sends back ``{passed, completed, hint}`` signed with
HMAC-SHA256 under the secret key; ``completed`` means the trailer ran, i.e. the whole cell
(hidden tests included) finished without an exception. Nothing printed by the notebook is read.

This is in-process code: a student who studies this file can still defeat it (frame inspection,
``gc``, ctypes). It stops the known exploits of notebook graders, not a determined attacker; the
OS-level sandbox is what protects the machine. See ``docs/grading.md``.
"""

from __future__ import annotations

import argparse
import builtins
import ctypes
import ctypes.util
import hashlib
import hmac
import importlib
import json
import os
import resource
import sys
import tempfile
import threading
from typing import Any

TRAILER_NAME = "_peftlab_cell_done_"

_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_REMOUNT = 32
_MS_BIND = 4096
_MNT_DETACH = 2
_MS_MOVE = 8192
_PR_SET_DUMPABLE = 4
_PR_SET_PDEATHSIG = 1


def sign(key: bytes, payload: dict[str, Any]) -> str:
    """HMAC-SHA256 of a message's canonical JSON (without its ``mac`` field)."""
    body = json.dumps({k: v for k, v in payload.items() if k != "mac"}, sort_keys=True, ensure_ascii=True)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


# --- OS-level sandbox ---------------------------------------------------------------------------


class Sandbox:
    """Applies the configured OS limits to the current process; records what worked."""

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self.applied: dict[str, str] = {}
        self.workdir: str | None = None

    def apply(self) -> dict[str, str]:
        self._cgroups()
        self._namespaces()
        self._rlimits()
        self._drop_privileges()
        self.die_with_parent(self.cfg.get("parent_pid", os.getppid()))
        if "network" not in self.applied:
            self._socket_guard()
        return self.applied

    def _cgroups(self) -> None:
        for path in self.cfg.get("cgroups", []):
            try:
                with open(os.path.join(path, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
                self.applied[f"cgroup:{path.split('/')[-3]}"] = "joined"
            except OSError as exc:
                self.applied[f"cgroup:{path}"] = f"failed: {exc}"

    def _namespaces(self) -> None:
        if not self.cfg.get("namespaces"):
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        if libc.unshare(_CLONE_NEWNET | _CLONE_NEWNS) != 0:
            self.applied["namespaces"] = f"failed: errno {ctypes.get_errno()}"
            return
        self.applied["network"] = "new empty network namespace (no interfaces up)"
        # private propagation first, so that the masks below never reach the host
        if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
            self.applied["mounts"] = f"failed: make-private errno {ctypes.get_errno()}"
            return
        self._hide(libc)
        masked = []
        for path in self.cfg.get("mask", []):
            if not os.path.isdir(path):
                continue
            flags = _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC
            if libc.mount(b"tmpfs", path.encode(), b"tmpfs", flags, b"size=4k,mode=000") == 0:
                masked.append(path)
            else:
                self.applied[f"mask:{path}"] = f"failed: errno {ctypes.get_errno()}"
        self.applied["mounts"] = f"{len(masked)} folders hidden"
        self._scratch(libc)

    def _hide(self, libc: Any) -> None:
        """Empty, read-only tmpfs over ``hide`` folders (e.g. /root), re-exposing the ``keep`` paths.

        ``keep`` holds what the kernel needs under them: the Python installation, the package.
        Each kept tree is bind-mounted to a staging folder first, then back onto its own path.
        """
        keep = [k for k in self.cfg.get("keep", []) if os.path.isdir(k)]
        staged = []
        for i, path in enumerate(keep):
            stage = os.path.join(os.getcwd(), f".keep{i}")
            os.makedirs(stage, exist_ok=True)
            if libc.mount(path.encode(), stage.encode(), None, _MS_BIND | _MS_REC, None) == 0:
                staged.append((path, stage))
        hidden = []
        for path in self.cfg.get("hide", []):
            if os.path.isdir(path) and libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                                                  b"size=64k,mode=755") == 0:
                hidden.append(path)
        for path, stage in staged:
            os.makedirs(path, mode=0o755, exist_ok=True)
            libc.mount(stage.encode(), path.encode(), None, _MS_BIND | _MS_REC, None)
            libc.umount2(stage.encode(), _MNT_DETACH)
        for path in hidden:  # no new files in the hidden folders; kept trees keep their own flags
            libc.mount(b"none", path.encode(), None, _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV, b"")
        if hidden:
            self.applied["hidden"] = f"{', '.join(hidden)} (keeping {len(staged)} paths)"

    def _scratch(self, libc: Any) -> None:
        """Fresh private tmpfs over /tmp, /var/tmp, /dev/shm; HOME, TMPDIR and cwd move there."""
        size = self.cfg.get("scratch_mb", 256)
        done = []
        keep = [k for k in self.cfg.get("keep_scratch", []) if os.path.isdir(k)]
        for path in self.cfg.get("scratch", []):
            if not os.path.isdir(path):
                continue
            opts = f"size={size}m,mode=1777".encode()
            under = [k for k in keep if k.startswith(path + "/")]
            if not under:
                if libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) == 0:
                    done.append(path)
                continue
            # Build the fresh tmpfs aside, bind the kept trees (e.g. a checkout in /tmp) into it,
            # then move it over `path` in one step: the kept trees stay reachable at their own paths.
            stage = os.path.join(os.getcwd(), f".scratch{len(done)}")
            os.makedirs(stage, exist_ok=True)
            if libc.mount(b"tmpfs", stage.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, opts) != 0:
                self.applied[f"scratch:{path}"] = f"failed: errno {ctypes.get_errno()}"
                continue
            for kept in under:
                target = stage + kept[len(path):]
                os.makedirs(target, mode=0o755, exist_ok=True)
                libc.mount(kept.encode(), target.encode(), None, _MS_BIND | _MS_REC, None)
            for parent in {os.path.dirname(stage + k[len(path):]) for k in under}:
                while parent != stage:  # folders leading to a kept tree: traversable, not listable
                    os.chmod(parent, 0o711)
                    parent = os.path.dirname(parent)
            os.chmod(stage, 0o1777)
            if libc.mount(stage.encode(), path.encode(), None, _MS_MOVE, None) == 0:
                done.append(path)
            else:
                self.applied[f"scratch:{path}"] = f"failed to move: errno {ctypes.get_errno()}"
                libc.umount2(stage.encode(), _MNT_DETACH)
        if "/tmp" not in done:
            return
        uid, gid = self.cfg.get("uid"), self.cfg.get("gid")
        for sub in ("home", "work", "tmp"):
            os.makedirs(f"/tmp/{sub}", mode=0o700, exist_ok=True)
            if uid is not None:
                os.chown(f"/tmp/{sub}", uid, gid)
        os.environ.update(HOME="/tmp/home", TMPDIR="/tmp/tmp")
        # tempfile caches its folder on first use (the old TMPDIR, now hidden under the fresh /tmp)
        tempfile.tempdir = None
        self.workdir = "/tmp/work"  # entered once the kernel has bound its sockets in the old cwd
        self.applied["scratch"] = f"private tmpfs on {', '.join(done)}; cwd /tmp/work"

    def _rlimits(self) -> None:
        limits = {
            "RLIMIT_AS": self.cfg.get("rlimit_as"),
            "RLIMIT_FSIZE": self.cfg.get("rlimit_fsize"),
            "RLIMIT_CORE": 0,
            "RLIMIT_NPROC": self.cfg.get("rlimit_nproc"),
        }
        for name, value in limits.items():
            if value is None:
                continue
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
                self.applied[name] = str(value)
            except (ValueError, OSError) as exc:
                self.applied[name] = f"failed: {exc}"

    def _drop_privileges(self) -> None:
        uid = self.cfg.get("uid")
        if uid is None:
            return
        try:
            os.setgroups([])
            os.setgid(self.cfg["gid"])
            os.setuid(uid)
            self.applied["uid"] = str(uid)
        except OSError as exc:
            self.applied["uid"] = f"failed: {exc}"
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        except OSError:
            pass

    def die_with_parent(self, parent: int) -> None:
        """SIGKILL this kernel when the grader dies (set after the uid change, which clears it)."""
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, 9, 0, 0, 0)
            self.applied["pdeathsig"] = "SIGKILL when the grader dies"
        except OSError:
            pass
        if os.getppid() != parent:
            os._exit(1)

    def _socket_guard(self) -> None:
        """Fallback when no network namespace: refuse inet sockets in Python (bypassable)."""
        import socket

        real_init = socket.socket.__init__

        def guarded_init(sock, family=-1, type=-1, proto=-1, fileno=None):  # noqa: A002
            if family in (socket.AF_INET, socket.AF_INET6):
                raise PermissionError("network access is disabled while grading")
            real_init(sock, family, type, proto, fileno)

        socket.socket.__init__ = guarded_init
        self.applied["network"] = "Python-level socket guard only (no network namespace)"


# --- snapshots -----------------------------------------------------------------------------------


class Snapshot:
    """Saved state of objects a student might patch, restorable from the guard thread."""

    def __init__(self) -> None:
        self._dicts: list[tuple[Any, dict[str, Any]]] = []
        self._attrs: list[tuple[Any, str, Any]] = []
        self._lists: list[tuple[Any, str, list]] = []
        self._instances: list[tuple[Any, set[str]]] = []

    def module(self, mod: Any) -> None:
        self._dicts.append((mod, dict(vars(mod))))

    def cls(self, klass: type) -> None:
        self._dicts.append((klass, {k: v for k, v in vars(klass).items() if not k.startswith("__")}))

    def attr(self, obj: Any, name: str) -> None:
        self._attrs.append((obj, name, getattr(obj, name)))

    def list_attr(self, obj: Any, name: str) -> None:
        self._lists.append((obj, name, list(getattr(obj, name))))

    def instance(self, obj: Any) -> None:
        """Remember which attributes live on the instance; later ones that shadow methods go."""
        self._instances.append((obj, set(vars(obj))))

    def restore(self) -> None:
        for obj, saved in self._dicts:
            target = vars(obj)
            if isinstance(obj, type):
                for key, value in saved.items():
                    if target.get(key) is not value:
                        setattr(obj, key, value)
            else:
                for key in [k for k in target if k not in saved]:
                    del target[key]
                target.update(saved)
        for obj, name, value in self._attrs:
            if getattr(obj, name, None) is not value:
                setattr(obj, name, value)
        for obj, name, value in self._lists:
            current = getattr(obj, name)
            if isinstance(current, list):
                current[:] = value
            else:
                setattr(obj, name, list(value))
        for obj, names in self._instances:
            own = vars(obj)
            for key in [k for k in own if k not in names and callable(getattr(type(obj), k, None))]:
                del own[key]


# --- the guard -----------------------------------------------------------------------------------


class Guard:
    """Holds the secret, the genuine checks and the per-cell state; serves the grader."""

    def __init__(self, cfg: dict[str, Any], key: bytes, res_fd: int):
        self.week: str = cfg["week"]
        self.key = key
        self.res_fd = res_fd
        self.lock = threading.Lock()
        self.armed: str | None = None
        self.nonce = ""
        self.token = ""
        self.reports: list[tuple[bool, str]] = []
        self.completed = False
        self.tampered = ""
        self.snapshot = Snapshot()
        self.real_fn: dict[str, Any] = {}
        self.real_code: dict[str, Any] = {}
        self.wrapper_code: Any = None
        self.run_code_code: Any = None
        self.shell: Any = None
        self.core: Any = None
        self._callbacks: dict[str, list] = {}
        self._builtins: dict[str, Any] = {}

    # setup

    def load_checks(self, modules: list[str]) -> None:
        """Import the check modules and remember the genuine wrappers of this week's checks."""
        from peftlab.checks import _core

        self.core = _core
        for name in modules:
            mod = importlib.import_module(name)
            self.snapshot.module(mod)
            for value in vars(mod).values():
                info = getattr(value, "check_info", None)
                if info is None or info.week != self.week or not callable(value):
                    continue
                closure = dict(zip(value.__code__.co_freevars, value.__closure__ or (), strict=False))
                inner = closure.get("fn")
                if inner is None:
                    continue
                self.wrapper_code = value.__code__
                self.real_fn[info.id] = inner.cell_contents
                self.real_code[info.id] = inner.cell_contents.__code__
                for fn in (value, inner.cell_contents):
                    for attr in ("__code__", "__defaults__", "__kwdefaults__"):
                        self.snapshot.attr(fn, attr)
                for cell in value.__closure__ or ():
                    self.snapshot.attr(cell, "cell_contents")
        _core.set_reporter(self.report)
        self.snapshot.module(_core)

    def guard_shell(self, shell: Any, kernel: Any) -> None:
        """Snapshot the IPython shell/kernel and builtins once they exist (before student code)."""
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = shell
        self.run_code_code = InteractiveShell.run_code.__code__
        for klass in type(shell).__mro__ + type(kernel).__mro__:
            if klass.__module__.startswith(("IPython", "ipykernel")):
                self.snapshot.cls(klass)
        self.snapshot.instance(shell)
        self.snapshot.instance(kernel)
        for name in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
            self.snapshot.list_attr(shell, name)
        self._callbacks = {event: list(cbs) for event, cbs in shell.events.callbacks.items()}
        self.snapshot.attr(sys, "exit")
        self.snapshot.attr(os, "_exit")
        self.snapshot.attr(sys, "excepthook")
        self._builtins = dict(vars(builtins))

    # the grader's side

    def send(self, payload: dict[str, Any]) -> None:
        payload["mac"] = sign(self.key, payload)
        data = (json.dumps(payload, ensure_ascii=True) + "\n").encode()
        os.write(self.res_fd, data)

    def restore(self) -> None:
        self.snapshot.restore()
        vars(builtins).update(self._builtins)
        if self.shell is not None:
            for event, saved in self._callbacks.items():
                self.shell.events.callbacks[event] = list(saved)
            self.shell.user_ns[TRAILER_NAME] = self.cell_done
        if self.core is not None:
            self.core.reporter = self.report

    def arm(self, check_id: str, nonce: str, token: str) -> None:
        with self.lock:
            self.restore()
            self.armed, self.nonce, self.token = check_id, nonce, token
            self.reports, self.completed, self.tampered = [], False, ""
        self.send({"op": "armed", "nonce": nonce, "check": check_id})

    def end(self, nonce: str) -> None:
        with self.lock:
            if nonce != self.nonce or self.armed is None:
                return
            passed = bool(self.reports) and all(ok for ok, _ in self.reports) and not self.tampered
            hint = next((h for ok, h in self.reports if not ok), "") or self.tampered
            msg = {"op": "result", "nonce": nonce, "check": self.armed, "passed": passed,
                   "completed": self.completed, "reported": bool(self.reports), "hint": hint}
            self.armed, self.token = None, ""
        self.send(msg)

    # called from inside the kernel

    def report(self, info: Any, passed: bool, hint: str) -> None:
        """The reporter installed in ``peftlab.checks._core``: record genuine outcomes only."""
        caller = sys._getframe(1)
        with self.lock:
            if self.armed is None or getattr(info, "id", None) != self.armed:
                return
            if getattr(info, "week", None) != self.week:
                return
            fn = caller.f_locals.get("fn")
            real = self.real_fn.get(self.armed)
            if caller.f_code is not self.wrapper_code or fn is not real or fn.__code__ is not self.real_code[self.armed]:
                self.tampered = "체크 함수가 바뀌었습니다 (check function was replaced)"
                return
            self.reports.append((bool(passed), str(hint)))

    def cell_done(self, token: str) -> None:
        """The trailer appended to each check cell: proves the whole cell ran to its end."""
        caller = sys._getframe(1)
        with self.lock:
            if (self.armed is not None and hmac.compare_digest(str(token), self.token)
                    and caller.f_code.co_name == "<module>" and caller.f_back is not None
                    and caller.f_back.f_code is self.run_code_code):
                self.completed = True

    def serve(self, ctl_fd: int) -> None:
        """Guard thread: read JSON lines from the grader until the pipe closes."""
        with os.fdopen(ctl_fd, "r", encoding="utf-8", closefd=True) as ctl:
            for line in ctl:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("op") == "arm":
                    self.arm(msg["check"], msg["nonce"], msg["token"])
                elif msg.get("op") == "end":
                    self.end(msg["nonce"])


def _read_line(fd: int) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        buf += chunk
    return buf


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ctl-fd", type=int, required=True)
    parser.add_argument("--res-fd", type=int, required=True)
    args, kernel_argv = parser.parse_known_args(argv)

    cfg = json.loads(_read_line(args.ctl_fd))
    key = bytes.fromhex(cfg.pop("key"))
    conn_arg = kernel_argv.index("-f") + 1 if "-f" in kernel_argv else None
    conn_text = open(kernel_argv[conn_arg]).read() if conn_arg is not None else None  # noqa: SIM115
    sandbox = Sandbox(cfg)
    applied = sandbox.apply()
    if sandbox.workdir and conn_text is not None:
        # the old path is now under the fresh /tmp; the ipc sockets still bind in the old cwd
        fd = os.open("/tmp/home/kernel.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(conn_text)
        kernel_argv[conn_arg] = "/tmp/home/kernel.json"
    for path in reversed(cfg.get("pythonpath", [])):
        sys.path.insert(0, path)

    guard = Guard(cfg, key, args.res_fd)
    errors = ""
    try:
        guard.load_checks(cfg.get("check_modules", []))
    except Exception as exc:  # reported to the grader, which marks the run as failed
        errors = f"{type(exc).__name__}: {exc}"

    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(kernel_argv)
    if sandbox.workdir:
        os.chdir(sandbox.workdir)
    guard.guard_shell(app.shell, app.kernel)
    guard.restore()
    guard.send({"op": "ready", "sandbox": applied, "checks": sorted(guard.real_fn), "error": errors,
                "uid": os.getuid(), "pid": os.getpid()})
    threading.Thread(target=guard.serve, args=(args.ctl_fd,), daemon=True, name="peftlab-guard").start()
    app.start()


if __name__ == "__main__":
    main()
