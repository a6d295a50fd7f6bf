"""The options and entry point of ``adapterzoo bench`` and ``benchmarks/run.py``; the measuring (torch and all) is
imported when the benchmark runs, not when the command line starts."""

from __future__ import annotations

import argparse

from adapterzoo.benchmarks.shapes import SHAPES
from adapterzoo.environment import require_extra

PLOTTING = "Plotting the benchmark results"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``adapterzoo bench`` and ``benchmarks/run.py``."""
    parser.add_argument("--size", choices=tuple(SHAPES), default="small",
                        help="timing size: small (ViT-S/16, CPU), base (ViT-B/16, GPU), tiny (tests)")  # fmt: skip
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16", "bf16", "fp16"), default="float32",
                        help="autocast precision of the training steps")  # fmt: skip
    parser.add_argument("--batch", type=int, default=8, help="batch size of the step and latency measurements")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per method (after a warm-up)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the accuracy runs")
    parser.add_argument("--output", default="benchmarks/results", help="folder for results.json, results.md, plots")
    parser.add_argument("--readme", help="also write the table into this README between the benchmark markers")
    parser.add_argument("--skip", nargs="*", default=(), choices=("params", "steps", "latency", "overhead", "cache",
                        "pipeline", "multi", "accuracy"), help="sections to leave out")  # fmt: skip
    parser.add_argument("--only", choices=("compile",),
                        help="run only this section, which the full run leaves out: compile (eager against "
                        "torch.compile per method; its own JSON, Markdown and README block)")  # fmt: skip
    parser.add_argument("--methods", nargs="+", help="with --only compile: these methods' rows only (default: all)")
    parser.add_argument("--compile-backend", default="inductor", help="with --only compile: the torch.compile backend")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def main(args: argparse.Namespace) -> int:
    """Run the benchmarks as ``args`` say and print the table; without matplotlib, refuse before torch even loads."""
    require_extra("bench", PLOTTING)
    from adapterzoo.benchmarks import report
    from adapterzoo.benchmarks.run import run_benchmarks
    from adapterzoo.progress import transformers_bars_off

    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(args.dtype, args.dtype)
    if args.only == "compile":
        from adapterzoo.benchmarks.compiled import markdown, run_compile_benchmark

        with transformers_bars_off():
            results = run_compile_benchmark(
                size=args.size, device=args.device, dtype=dtype, batch=args.batch, repeats=max(args.steps, 3),
                backend=args.compile_backend, methods=tuple(args.methods) if args.methods else None,
                output=args.output, readme=args.readme, progress=args.progress,
            )  # fmt: skip
        print(markdown(results))
        print(f"\nWritten to {args.output} in {results['seconds']:.0f} s.")
        return 0
    with transformers_bars_off():  # the benchmark loads a model a hundred times
        results = run_benchmarks(
            size=args.size, device=args.device, dtype=dtype, batch=args.batch, steps=args.steps, seeds=args.seeds,
            output=args.output, readme=args.readme, skip=tuple(args.skip), progress=args.progress,
        )  # fmt: skip
    print(report.markdown(results))
    print(f"\nWritten to {args.output} in {results['seconds']:.0f} s.")
    return 0
