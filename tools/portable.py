"""Validate every solution notebook's stored outputs under CPU kernel paths other than this machine's own.

Stored outputs are executed on one machine; a student's or instructor's CPU picks other SIMD kernels
(PyTorch's ATen dispatch, oneDNN, MKL), rounds differently in the last bits, and training amplifies that.
This runs ``pytest --nbval-lax`` on each notebook alone, once per kernel path, with the knobs that force
another path on this machine, and prints a table of pass/fail and seconds (the budget is 120 s a notebook).

Usage: ``python tools/portable.py [PATH ...] [--jobs N] [--notebooks GLOB]``; PATH ∈ native, avx2, generic
(default: avx2 generic). ``make test-portable`` runs it; run it after ``make execute``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 120

#: environment that forces each kernel path (every knob a CPU's results can depend on)
PATHS = {
    "native": {},
    # an AVX2 machine without AVX-512 (e.g. a 2-core cloud AMD EPYC of the Zen 2/3 generations)
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
    # PyTorch's generic (non-vectorised) ATen kernels, oneDNN at SSE4.1, MKL's bitwise-compatible path
    "generic": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
}
COMMON = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PEFTLAB_PROFILE": "tiny", "HF_HUB_OFFLINE": "1",
          "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "MPLBACKEND": "Agg"}


def capability(env: dict[str, str]) -> str:
    """The ATen CPU capability a process started with ``env`` runs on."""
    out = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def validate(notebook: Path, env: dict[str, str]) -> tuple[bool, float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "--nbval-current-env", "--nbval-cell-timeout=300", str(notebook.relative_to(ROOT))],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return done.returncode == 0, seconds, "; ".join(failed)[:400] or done.stdout.strip().splitlines()[-1:][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["avx2", "generic"],
                        help=f"kernel paths to validate under: {', '.join(PATHS)} (default: avx2 generic)")
    parser.add_argument("--jobs", type=int, default=2, help="notebooks validated at once (one core each)")
    parser.add_argument("--notebooks", default="solutions/[0-9][0-9]_*.ipynb", help="glob under the project root")
    args = parser.parse_args(argv)
    unknown = [p for p in args.paths if p not in PATHS]
    if unknown:
        parser.error(f"unknown kernel path(s) {unknown}; allowed: {', '.join(PATHS)}")
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    notebooks = sorted(ROOT.glob(args.notebooks))
    if not notebooks:
        parser.error(f"no notebook matches {args.notebooks!r}")

    native = capability({**os.environ, **COMMON})
    print(f"this CPU's native ATen path: {native}")
    ok = True
    for name in args.paths:
        env = {**os.environ, **COMMON, **PATHS[name]}
        cap = capability(env)
        same = name != "native" and cap == native and not {"MKL_CBWR", "ONEDNN_MAX_CPU_ISA"} & set(PATHS[name])
        knobs = " ".join(f"{k}={v}" for k, v in PATHS[name].items()) or "(no knobs)"
        print(f"\n== {name}: ATen {cap}; {knobs}" + ("  [same as native on this CPU]" if same else ""))
        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(validate, notebooks, [env] * len(notebooks)))
        for nb, (passed, seconds, detail) in zip(notebooks, results, strict=True):
            flag = "" if seconds <= BUDGET_S else f"  over the {BUDGET_S} s budget"
            print(f"{nb.name:<26} {'pass' if passed else 'FAIL':<5} {seconds:6.0f} s{flag}"
                  + ("" if passed else f"\n    {detail}"))
            ok &= passed
    print("\nall notebooks validate on every path" if ok else "\nsome notebooks do not validate: see FAIL above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
