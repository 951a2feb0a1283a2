"""Command line: ``peftlab env | run | execute | build-student | grade | memory``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_env(args: argparse.Namespace) -> int:
    from peftlab.env import check

    return 0 if check(verbose=True) else 1


def _cmd_run(args: argparse.Namespace) -> int:
    from peftlab.instructor.execute import run_course

    return run_course(Path(args.src), Path(args.out), names=args.notebooks, timeout=args.cell_timeout)


def _cmd_execute(args: argparse.Namespace) -> int:
    from peftlab.instructor.execute import execute_in_place

    return execute_in_place([Path(p) for p in args.paths], timeout=args.cell_timeout)


def _cmd_build_student(args: argparse.Namespace) -> int:
    from peftlab.instructor.publish import project_root, publish_course

    src = Path(args.src)
    if (src.resolve().parent / "pyproject.toml").is_file() and src.resolve().parent == project_root():
        # the project's own solutions/: Colab links and setup cells follow [tool.peftlab] in pyproject.toml
        for path in publish_course(src):
            print(f"updated from [tool.peftlab]: {path.name}")
    if args.release is not None:
        from peftlab.instructor.release import build_release

        build_release(Path(args.src), Path(args.release))
        return 0
    from peftlab.instructor.student import build_student

    build_student(Path(args.src), Path(args.dst))
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from peftlab.instructor.grade import grade_cli

    return grade_cli(args)


def _cmd_memory(args: argparse.Namespace) -> int:
    from peftlab.analysis.memory import estimate_training_memory, format_estimates, memory_table

    opts = {"batch": args.batch, "seq": args.seq, "r": args.r, "dtype": args.dtype,
            "gradient_checkpointing": args.checkpointing, "double_quant": not args.no_double_quant}
    methods = ("full", "lora", "qlora") if args.method == "all" else (args.method,)
    if args.table or args.config is None:
        models = ("7B", "13B", "65B")
        estimates = memory_table(models, methods, **opts)
        names = [m for m in models for _ in methods]
    else:
        estimates = [estimate_training_memory(args.config, m, **opts) for m in methods]
        names = [str(args.config)[-8:]] * len(methods)
    print(f"batch={args.batch} seq={args.seq} r={args.r} dtype={args.dtype} "
          f"gradient_checkpointing={args.checkpointing} double_quant={not args.no_double_quant}")
    print(format_estimates(estimates, names))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="peftlab", description="PEFT course kit")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("env", help="check dependencies, device, bf16 support and profile")
    s.set_defaults(func=_cmd_env)

    s = sub.add_parser("run", help="execute the solution notebooks headless into HTML and print a summary")
    s.add_argument("notebooks", nargs="*", help="notebook names or stems (default: all in SRC)")
    s.add_argument("--src", default="solutions", help="folder of source notebooks (default: solutions)")
    s.add_argument("--out", default="build", help="output folder (default: build)")
    s.add_argument("--cell-timeout", type=float, default=600.0, help="seconds per cell")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("execute", help="re-execute notebooks in place so stored outputs are current")
    s.add_argument("paths", nargs="+", help="notebooks or folders of notebooks")
    s.add_argument("--cell-timeout", type=float, default=600.0, help="seconds per cell")
    s.set_defaults(func=_cmd_execute)

    s = sub.add_parser("build-student", help="write student notebooks (no solutions, no hidden tests)")
    s.add_argument("src", nargs="?", default="solutions", help="source notebooks (default: solutions)")
    s.add_argument("dst", nargs="?", default="notebooks", help="student notebooks (default: notebooks)")
    s.add_argument("--release", metavar="DIR", default=None,
                   help="write a whole student release (notebooks + package, no solutions) into DIR")
    s.set_defaults(func=_cmd_build_student)

    s = sub.add_parser("grade", help="grade a folder of submitted notebooks for one week")
    s.add_argument("week", help="week number or notebook stem, e.g. 01 or 01_lora_review")
    s.add_argument("submissions", help="folder with one .ipynb per student")
    s.add_argument("--out", required=True, help="output folder for grades.csv and feedback")
    s.add_argument("-j", "--jobs", type=int, default=1, help="parallel workers (default: 1)")
    s.add_argument("--solutions", default="solutions", help="folder of solution notebooks")
    s.add_argument("--cell-timeout", type=float, default=120.0, help="seconds per cell")
    s.add_argument("--timeout", type=float, default=600.0, help="seconds per notebook")
    s.add_argument("--memory-mb", type=int, default=4096, help="memory limit per notebook (MiB)")
    s.add_argument("--force", action="store_true", help="regrade students already in grades.csv")
    s.set_defaults(func=_cmd_grade)

    s = sub.add_parser("memory", help="estimate training memory of full FT / LoRA / QLoRA from a model config")
    s.add_argument("config", nargs="?", default=None,
                   help="config.json, a model folder, or 7B/13B/33B/65B (default: the 7B/13B/65B table)")
    s.add_argument("--table", action="store_true", help="the LLaMA 7B / 13B / 65B table")
    s.add_argument("--method", default="all", choices=["all", "full", "lora", "qlora"])
    s.add_argument("--batch", type=int, default=1)
    s.add_argument("--seq", type=int, default=512)
    s.add_argument("-r", "--r", type=int, default=16, help="LoRA rank")
    s.add_argument("--dtype", default="bf16", choices=["bf16", "fp16", "fp32"], help="weights / compute dtype")
    s.add_argument("--checkpointing", action="store_true", help="gradient checkpointing")
    s.add_argument("--no-double-quant", action="store_true", help="QLoRA without double quantization")
    s.set_defaults(func=_cmd_memory)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
