"""Grader-side half of running one graded notebook: a fresh sandboxed kernel, driven cell by cell.

:func:`run_graded` starts ``python -m peftlab.instructor._kernel_guard`` in a new session with two
private pipes (control and results), connects with jupyter_client over ``ipc`` sockets (so the
kernel needs no network at all), executes every code cell with a per-cell and a total deadline and
asks the guard for the signed outcome of each check cell. Outputs are collected only to save the
executed notebook for the instructor; scores never come from them.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client import BlockingKernelClient
from nbformat import NotebookNode

from peftlab.instructor._kernel_guard import TRAILER_NAME, sign
from peftlab.instructor.notebook import CHECK, cell_role, cell_role_id

__all__ = ["CheckOutcome", "GraderSetupError", "Limits", "RunOutcome", "run_graded", "sandbox_plan", "sweep_cgroups"]

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_MAX_OUTPUT_CHARS = 20_000  # per cell, in the saved executed notebook
_GUARD_REPLY_S = 10.0


@dataclass(frozen=True)
class Limits:
    """Resource limits for one notebook."""

    cell_timeout: float = 120.0
    timeout: float = 600.0
    memory_mb: int = 4096
    startup_timeout: float = 60.0
    interrupt_grace: float = 5.0


@dataclass
class CheckOutcome:
    """What the guard reported for one check cell."""

    passed: bool = False
    hint: str = ""


@dataclass
class RunOutcome:
    """The result of running one graded notebook."""

    status: str = "ok"  # ok / timeout / crashed
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sandbox: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    executed: NotebookNode | None = None


class GraderSetupError(RuntimeError):
    """The grader itself could not start a kernel or load the checks (not the student's fault)."""


# --- sandbox plan ----------------------------------------------------------------------------------


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _make_cgroups(name: str, memory_mb: int) -> list[Path]:
    """cgroup v1 memory (+pids) groups for one kernel, where the machine lets us create them."""
    made: list[Path] = []
    if not _is_root():
        return made
    plan = {
        "memory": {"memory.limit_in_bytes": memory_mb * 2**20, "memory.memsw.limit_in_bytes": memory_mb * 2**20},
        "pids": {"pids.max": 512},
    }
    for controller, settings in plan.items():
        base = _CGROUP_ROOT / controller
        if not (base / "cgroup.procs").exists():
            continue
        group = base / "peftlab-grade" / name
        try:
            group.mkdir(parents=True, exist_ok=True)
            for fname, value in settings.items():
                if (group / fname).exists():
                    (group / fname).write_text(str(value))
            made.append(group)
        except OSError:
            _remove_cgroup(group)
    return made


def _remove_cgroup(group: Path) -> None:
    procs = group / "cgroup.procs"
    for _ in range(50):
        try:
            pids = [int(p) for p in procs.read_text().split()] if procs.exists() else []
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)


def sweep_cgroups() -> None:
    """Remove empty per-kernel cgroups a killed grader left behind."""
    for controller in ("memory", "pids"):
        base = _CGROUP_ROOT / controller / "peftlab-grade"
        if not base.is_dir():
            continue
        for group in base.iterdir():
            try:
                if group.is_dir() and not (group / "cgroup.procs").read_text().strip():
                    group.rmdir()
            except OSError:
                pass


def _oom_killed(groups: list[Path]) -> bool:
    for group in groups:
        oom = group / "memory.oom_control"
        try:
            for line in oom.read_text().splitlines():
                if line.startswith("oom_kill ") and int(line.split()[1]) > 0:
                    return True
        except OSError:
            continue
    return False


def sandbox_plan(mask: list[Path], extra_keep: Sequence[str] = ()) -> dict[str, Any]:
    """The kernel-side sandbox configuration (what the guard will try before student code)."""
    root = _is_root()
    cfg: dict[str, Any] = {
        "namespaces": root,
        "mask": [str(p.resolve()) for p in mask if p.exists()],
        "scratch": ["/tmp", "/var/tmp", "/dev/shm", "/run/lock"],
        "rlimit_fsize": 512 * 2**20,
        "rlimit_nproc": 512 if root else None,
    }
    if root:
        hide = [p for p in ("/root", "/home") if os.path.isdir(p)]
        needed = [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[2]), *extra_keep]
        needed += [os.environ[n] for n in ("HF_HOME", "PEFTLAB_DATA") if os.environ.get(n)]
        cfg["hide"] = hide
        cfg["keep"] = sorted({str(Path(k).resolve()) for k in needed
                              if any(str(Path(k).resolve()).startswith(h + "/") for h in hide)})
        # a checkout or virtualenv under /tmp (or another scratch folder) must stay visible there too
        under_scratch = sorted({str(Path(k).resolve()) for k in needed
                                if any(str(Path(k).resolve()).startswith(d + "/") for d in cfg["scratch"])})
        cfg["keep_scratch"] = [k for k in under_scratch
                               if not any(k != o and k.startswith(o + "/") for o in under_scratch)]
        uid = 2_000_000 + secrets.randbelow(1_000_000)  # a throw-away uid no file on disk belongs to
        cfg.update(uid=uid, gid=uid)
    return cfg


# --- result pipe ---------------------------------------------------------------------------------


class _ResultPipe:
    """Reads the guard's signed JSON lines; drops anything unsigned or stale."""

    def __init__(self, fd: int, key: bytes):
        self.fd = fd
        self.key = key
        self.buf = b""

    def wait_for(self, op: str, timeout: float, nonce: str | None = None) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict) or msg.get("mac") != sign(self.key, msg):
                    continue
                if msg.get("op") == op and (nonce is None or msg.get("nonce") == nonce):
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk
                if len(self.buf) > 4 * 2**20:  # a flood from the student's side of the pipe
                    self.buf = self.buf[-65536:]


# --- the run -------------------------------------------------------------------------------------


def _kernel_env(home: Path) -> dict[str, str]:
    """A minimal environment: no secrets, no paths to the course repository beyond the package."""
    bin_dir = str(Path(sys.executable).parent)
    env = {
        "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home / "home"),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "PEFTLAB_GRADING": "1",
        "PEFTLAB_PROFILE": os.environ.get("PEFTLAB_PROFILE", "tiny"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    for name in ("PEFTLAB_DATA", "HF_HOME"):  # where the course data lives, if not the default
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


def _collect_output(cell: NotebookNode, msg: dict[str, Any], budget: list[int]) -> None:
    kind = msg["header"]["msg_type"]
    if kind not in ("stream", "display_data", "execute_result", "error"):
        return
    if budget[0] <= 0:
        return
    try:
        out = nbformat.v4.output_from_msg(msg)
    except (ValueError, KeyError):
        return
    size = len(json.dumps(out, default=str))
    budget[0] -= size
    if budget[0] < 0:
        out = nbformat.v4.new_output("stream", name="stderr", text="[peftlab grade: output truncated]\n")
    cell.outputs.append(out)


class _Kernel:
    """One sandboxed kernel process and a client connected to it."""

    def __init__(self, workroot: Path, cfg: dict[str, Any], limits: Limits, cancel: threading.Event):
        self.limits = limits
        self.cancel = cancel
        self.key = secrets.token_bytes(32)
        if cfg.get("uid") is not None:  # a throw-away uid per kernel: kernels cannot see each other
            uid = 2_000_000 + secrets.randbelow(1_000_000)
            cfg = dict(cfg, uid=uid, gid=uid)
        self.dir = Path(tempfile.mkdtemp(prefix="k-", dir=workroot))
        for sub in ("home", "tmp"):
            (self.dir / sub).mkdir()
        uid = cfg.get("uid")
        if uid is not None:
            for p in (self.dir, self.dir / "home", self.dir / "tmp"):
                os.chown(p, uid, cfg["gid"])
        self.groups = _make_cgroups(self.dir.name, limits.memory_mb)
        cfg = dict(cfg, cgroups=[str(g) for g in self.groups], key=self.key.hex(), parent_pid=os.getpid())
        if not any(g.parent.parent.name == "memory" for g in self.groups):
            cfg["rlimit_as"] = limits.memory_mb * 2**20  # fallback when no memory cgroup

        conn = {"transport": "ipc", "ip": "k", "shell_port": 1, "iopub_port": 2, "stdin_port": 3,
                "control_port": 4, "hb_port": 5, "key": secrets.token_hex(32),
                "signature_scheme": "hmac-sha256", "kernel_name": "peftlab-grade"}
        conn_file = self.dir / "kernel.json"
        conn_file.write_text(json.dumps(conn))
        os.chmod(conn_file, 0o400)
        if uid is not None:
            os.chown(conn_file, uid, cfg["gid"])

        ctl_r, self.ctl_w = os.pipe()
        self.res_r, res_w = os.pipe()
        cmd = [sys.executable, "-m", "peftlab.instructor._kernel_guard",
               "--ctl-fd", str(ctl_r), "--res-fd", str(res_w), "-f", "kernel.json"]
        self.log = open(self.dir.parent / f"{self.dir.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, cwd=self.dir, env=_kernel_env(self.dir), pass_fds=(ctl_r, res_w),
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        os.close(ctl_r)
        os.close(res_w)
        self.pipe = _ResultPipe(self.res_r, self.key)
        self._send(cfg)
        ready = self.pipe.wait_for("ready", limits.startup_timeout)
        if ready is None:
            tail = self.log_tail()
            self.close()
            raise GraderSetupError(f"the grading kernel did not start:\n{tail}")
        if ready.get("error"):
            self.close()
            raise GraderSetupError(f"the grading kernel could not load the checks: {ready['error']}")
        self.sandbox: dict[str, str] = ready.get("sandbox", {})
        self.checks_loaded: list[str] = ready.get("checks", [])

        try:
            client = BlockingKernelClient()
            client.load_connection_info(dict(conn, ip=str(self.dir / "k")))
            client.start_channels()
            self.client = client
            client.wait_for_ready(timeout=limits.startup_timeout)
        except BaseException as exc:
            tail = self.log_tail()
            self.close()
            raise GraderSetupError(f"could not connect to the grading kernel ({exc}):\n{tail}") from exc

    def _send(self, payload: dict[str, Any]) -> None:
        try:
            os.write(self.ctl_w, (json.dumps(payload) + "\n").encode())
        except OSError:
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self) -> str:
        self.log.flush()
        try:
            return (self.dir.parent / f"{self.dir.name}.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def interrupt(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGINT)
        except OSError:
            pass

    def oom_killed(self) -> bool:
        return _oom_killed(self.groups)

    def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            client.stop_channels()
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for group in self.groups:
            _remove_cgroup(group)
        for fd in (self.ctl_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.environ.get("PEFTLAB_GRADE_KEEP_LOGS"):
            return
        try:
            (self.dir.parent / f"{self.dir.name}.log").unlink()
        except OSError:
            pass

    # execution

    def execute(self, cell: NotebookNode, code: str, deadline: float) -> str:
        """Run ``code``; return ``ok``, ``error``, ``timeout`` (interrupted, kernel usable) or ``dead``."""
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False, stop_on_error=False)
        cell.outputs = []
        budget = [_MAX_OUTPUT_CHARS]
        status = "ok"
        interrupted_at: float | None = None
        while True:
            now = time.monotonic()
            if self.cancel.is_set():
                raise KeyboardInterrupt
            if not self.alive():
                return "dead"
            if interrupted_at is None and now > deadline:
                self.interrupt()
                interrupted_at = now
            if interrupted_at is not None and now > interrupted_at + self.limits.interrupt_grace:
                return "stuck"
            try:
                msg = self.client.get_iopub_msg(timeout=0.25)
            except Exception:  # queue.Empty
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "error":
                status = "error"
            if kind == "status" and msg["content"].get("execution_state") == "idle":
                break
            _collect_output(cell, msg, budget)
        self._drain_shell(msg_id)
        return "timeout" if interrupted_at is not None else status

    def _drain_shell(self, msg_id: str) -> None:
        end = time.monotonic() + 2
        while time.monotonic() < end:
            try:
                reply = self.client.get_shell_msg(timeout=0.5)
            except Exception:
                return
            if reply.get("parent_header", {}).get("msg_id") == msg_id:
                return

    def arm(self, check_id: str) -> tuple[str, str] | None:
        nonce, token = secrets.token_hex(16), secrets.token_hex(16)
        self._send({"op": "arm", "check": check_id, "nonce": nonce, "token": token})
        armed = self.pipe.wait_for("armed", _GUARD_REPLY_S, nonce)
        return (nonce, token) if armed is not None and armed.get("check") == check_id else None

    def end(self, nonce: str) -> dict[str, Any] | None:
        self._send({"op": "end", "nonce": nonce})
        return self.pipe.wait_for("result", _GUARD_REPLY_S, nonce)


def run_graded(nb: NotebookNode, workroot: Path, cfg: dict[str, Any], limits: Limits,
               check_ids: list[str], cancel: threading.Event | None = None) -> RunOutcome:
    """Execute the graded notebook ``nb`` in a fresh sandboxed kernel and score its check cells.

    ``cfg`` is :func:`sandbox_plan` plus ``week``, ``check_modules`` and ``pythonpath``. Checks that
    never ran (kernel died, total timeout) score zero with a note saying why.
    """
    start = time.monotonic()
    outcome = RunOutcome(checks={cid: CheckOutcome(hint="실행되지 않았습니다 (not run)") for cid in check_ids})
    executed = nbformat.from_dict(json.loads(json.dumps(nb)))
    outcome.executed = executed
    kernel = _Kernel(workroot, cfg, limits, cancel or threading.Event())
    outcome.sandbox = kernel.sandbox
    total_deadline = start + limits.timeout
    try:
        for index, cell in enumerate(executed.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            now = time.monotonic()
            if now >= total_deadline:
                outcome.status = "timeout"
                outcome.notes.append(f"전체 시간 제한 {limits.timeout:.0f}s 초과 (notebook timeout)")
                break
            deadline = min(now + limits.cell_timeout, total_deadline)
            check_id = cell_role_id(cell) if cell_role(cell) == CHECK else None
            armed = kernel.arm(check_id) if check_id else None
            code = cell.source
            if armed is not None:
                code = f"{code}\n{TRAILER_NAME}({armed[1]!r})\n"
            result = kernel.execute(cell, code, deadline)
            if check_id is not None:
                outcome.checks[check_id] = _score(kernel, armed, result)
            if result == "timeout":
                outcome.status = "timeout"
                outcome.notes.append(f"셀 {index}: 시간 제한 {limits.cell_timeout:.0f}s 초과로 중단 (cell timeout, interrupted)")
            elif result == "stuck":
                outcome.status = "timeout"
                outcome.notes.append(f"셀 {index}: 시간 제한 초과, 중단되지 않아 커널 종료 (cell timeout, kernel killed)")
                break
            elif result == "dead":
                outcome.status = "crashed"
                why = "메모리 한도 초과 (memory limit)" if kernel.oom_killed() else "커널이 종료됨 (kernel died)"
                outcome.notes.append(f"셀 {index}: {why}")
                break
    finally:
        kernel.close()
        outcome.seconds = time.monotonic() - start
    return outcome


def _score(kernel: _Kernel, armed: tuple[str, str] | None, result: str) -> CheckOutcome:
    if armed is None:
        return CheckOutcome(False, "채점기가 체크를 준비하지 못했습니다 (grader could not arm the check)")
    if result in ("dead", "stuck"):
        return CheckOutcome(False, "커널이 체크 도중 종료되었습니다 (kernel died during the check)")
    reply = kernel.end(armed[0])
    if reply is None:
        return CheckOutcome(False, "체크 결과를 받지 못했습니다 (no result from the check)")
    if result == "timeout":
        return CheckOutcome(False, "시간 제한을 넘었습니다 (cell timeout)")
    if not reply.get("reported"):
        return CheckOutcome(False, reply.get("hint") or "체크가 실행되지 않았습니다 (the check never ran)")
    if not reply.get("passed"):
        return CheckOutcome(False, reply.get("hint") or "체크 실패 (check failed)")
    if not reply.get("completed"):
        return CheckOutcome(False, "공개 체크는 통과했지만 숨은 테스트(hidden tests)에서 실패했습니다")
    return CheckOutcome(True, "")
