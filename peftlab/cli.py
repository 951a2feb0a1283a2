"""Command line: ``peftlab env | run | execute | build-student | points | grade | validate | memory | compare``."""

from __future__ import annotations

import argparse
import json
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


def _cmd_validate(args: argparse.Namespace) -> int:
    from peftlab.validate import validate_cli

    return validate_cli(args)


def _cmd_points(args: argparse.Namespace) -> int:
    from peftlab.instructor.points import render_folder

    for path in render_folder(Path(args.src)):
        print(f"points rendered from the registry: {path.name}")
    return 0


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


def _cmd_compare(args: argparse.Namespace) -> int:
    from peftlab.compare import (
        LR_GRID,
        TUNE_SEEDS,
        CompareConfig,
        canonical_method,
        format_summary,
        load_config_file,
        parse_methods,
        parse_seeds,
        run_comparison,
        summarize,
        tune_learning_rates,
    )

    try:
        methods = parse_methods(args.methods)
        opts = load_config_file(args.config) if args.config else {}
        for key in ("task", "profile", "steps", "train_size"):
            value = getattr(args, key)
            if value is not None:
                opts[key] = value
        cfg = CompareConfig(**opts)
        from peftlab.device import configure_threads

        configure_threads(cfg.profile)  # tiny on the CPU: one thread per process, as the notebooks run
        if args.jobs < 1:
            raise ValueError(f"--jobs={args.jobs}: expected a positive integer")
        if args.tune_lr:
            tune_seeds = parse_seeds(args.seeds) if args.seeds is not None else list(TUNE_SEEDS)
            sweep_file = Path(args.out) / "learning_rates.json"
            known, old = {}, {}
            if sweep_file.is_file() and not args.force:  # a sweep of the same setting goes on where it stopped
                old = json.loads(sweep_file.read_text(encoding="utf-8"))
                same = (old.get("task"), old.get("profile"), old.get("steps"), old.get("seeds"), old.get("train_size"),
                        old.get("batch_size", cfg.batch_size)) == (cfg.task, cfg.profile, cfg.steps, tune_seeds,
                                                                   cfg.train_size, cfg.batch_size)
                if same:  # a sweep written under the old names (compare.ALIASES) is read under the registry's
                    old["methods"] = {canonical_method(m): v for m, v in old.get("methods", {}).items()}
                    known = {m: v["scores"] for m, v in old["methods"].items()}
                    print(f"reusing the scores in {sweep_file} (--force measures them again)")
                else:
                    old = {}
            table = tune_learning_rates(methods, cfg, LR_GRID, seeds=tune_seeds, known=known)
            Path(args.out).mkdir(parents=True, exist_ok=True)
            if known:
                table = {**{m: v for m, v in old["methods"].items()}, **table}
            sweep_file.write_text(json.dumps(
                {"task": cfg.task, "profile": cfg.profile, "steps": cfg.steps, "batch_size": cfg.batch_size,
                 "train_size": cfg.train_size, "grid": list(LR_GRID), "seeds": tune_seeds,
                 "methods": {m: {"best": v["best"], "edge": v.get("edge"),
                                 "scores": {str(k): s for k, s in v["scores"].items()}}
                             for m, v in table.items()}}, indent=2) + "\n")
            # the winners as a --config file for the comparison itself
            (Path(args.out) / "compare_config.json").write_text(json.dumps(
                {"task": cfg.task, "profile": cfg.profile, "steps": cfg.steps, "batch_size": cfg.batch_size,
                 "train_size": cfg.train_size, "learning_rates": {m: v["best"] for m, v in table.items() if v["best"] is not None}}, indent=2) + "\n")
            print(f"wrote {sweep_file} (every score) and {Path(args.out) / 'compare_config.json'}: "
                  f"peftlab compare --config {Path(args.out) / 'compare_config.json'} --methods ... --out DIR")
            return 0
        seeds = parse_seeds(args.seeds if args.seeds is not None else "0,1,2")
        records = run_comparison(methods, seeds, args.out, cfg, jobs=args.jobs, force=args.force)
    except ValueError as exc:
        print(f"peftlab compare: error: {exc}", file=sys.stderr)
        return 2
    print(f"task={cfg.task} profile={cfg.profile} steps={cfg.steps} batch={cfg.batch_size} seeds={seeds}")
    print(format_summary(summarize(records)))
    failed = [r for r in records if r.get("status") != "ok"]
    for r in failed:
        print(f"FAILED {r['method']} seed {r['seed']}: {r['error']}", file=sys.stderr)
    print(f"results: {Path(args.out) / 'results.csv'}, {Path(args.out) / 'summary.csv'}, plots in {Path(args.out) / 'plots'}")
    return 1 if failed else 0


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

    s = sub.add_parser("validate", help="run your notebook from the top and print every check's outcome")
    s.add_argument("week", help="week number, e.g. 01")
    s.add_argument("notebook", help="your notebook, e.g. notebooks/01_lora_review.ipynb")
    s.add_argument("--timeout", type=float, default=600.0, help="seconds per cell")
    s.set_defaults(func=_cmd_validate)

    s = sub.add_parser("points", help="render every heading's, rubric's and week total's points from the check registry")
    s.add_argument("src", nargs="?", default="solutions", help="solution notebooks (default: solutions)")
    s.set_defaults(func=_cmd_points)

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
    s.add_argument("--manual", metavar="SCORES.csv", default=None,
                   help="merge the instructor's essay scores (student + one column per essay id, as in "
                        "OUT/essays_template.csv) into grades.csv and write OUT/gradebook.csv")
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

    s = sub.add_parser("compare", help="train every method on one task with one budget over seeds; tables and plots")
    s.add_argument("--methods", default="all",
                   help="comma-separated method names (the registry's: lora, houlsby, prompt_tuning, …; the old names "
                        "adapter, prompt, prefix are accepted), or 'all' (default)")
    s.add_argument("--seeds", default=None,
                   help="comma-separated seeds (default: 0,1,2; with --tune-lr the tuning seeds 100,101, kept apart from the test seeds)")
    s.add_argument("--out", required=True, help="output folder (results.csv, summary.csv, results.json, plots/)")
    s.add_argument("--task", default=None, choices=["sentiment", "instructions"], help="default: sentiment")
    s.add_argument("--profile", default=None, choices=["tiny", "colab"], help="default: tiny")
    s.add_argument("--steps", type=int, default=None, help="optimizer steps per cell (default: 150)")
    s.add_argument("--train-size", type=int, default=None, dest="train_size",
                   help="train on the first N training examples only (default: all)")
    s.add_argument("--jobs", type=int, default=1, help="cells run in parallel processes (default: 1)")
    s.add_argument("--config", default=None, help="JSON file with CompareConfig fields (learning_rates, train_size, ...)")
    s.add_argument("--force", action="store_true", help="rerun cells that already finished")
    s.add_argument("--tune-lr", action="store_true",
                   help="sweep each method's learning rate on the validation split (mean over the seeds) and write learning_rates.json")
    s.set_defaults(func=_cmd_compare)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
