"""The GPU benchmark (``benchmarks/gpu.sh``, ``python -m adapterzoo.benchmarks.gpu``): every installed method's
training step on ViT-B/16 (CLIP ViT-B/16 for the CLIP methods) in bf16, with step time, images per second, peak
memory, the step's counted FLOPs and MFU; the data pipeline with 16 workers; a batch mixing 8 adapters against one
adapter (`adapterzoo.benchmarks.multi`); and eager against ``torch.compile`` for a few methods
(`adapterzoo.benchmarks.compiled`). Writes ``gpu.json`` and ``gpu.md``.

On a GPU each step is measured in this process (the peak memory, ``torch.cuda.max_memory_allocated``, is reset per
method, and a process per method would spend the run starting CUDA), on the CPU in a process per method (peak RSS),
except at tiny size. ``--device cpu --size tiny`` runs the whole path in seconds: the tests' dry run.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import torch
import transformers
from tqdm.auto import tqdm

from adapterzoo.benchmarks import compiled, flops, measure, multi, pipeline, report
from adapterzoo.benchmarks.shapes import SHAPES, Row, rows_for
from adapterzoo.registry import get_method, list_methods

T = TypeVar("T")
# Each row compiles its training step and its inference, which is slow: by default the GPU run compiles a few rows.
COMPILED_METHODS = ("lora", "vpt", "coop")


def select_rows(rows: list[Row], methods: Sequence[str] | None) -> list[Row]:
    """The rows of ``methods`` (method names; all rows when None), refusing a name no row has."""
    if methods is None:
        return rows
    known = sorted({row.method for row in rows})
    unknown = [name for name in methods if name not in known]
    if unknown:
        raise ValueError(f"--methods {' '.join(unknown)}: no such installed method; choose from {', '.join(known)}.")
    return [row for row in rows if row.method in methods]


def resolve_peak(device: str, given: float | None) -> tuple[float | None, str]:
    """The bf16 peak (TFLOP/s) to compute MFU against, and where it came from (or why MFU is left out)."""
    if given is not None:
        return given, f"given: {given} TFLOP/s"
    if torch.device(device).type != "cuda":
        return None, f"MFU left out: no known peak for {device} (give --peak-tflops)"
    name = torch.cuda.get_device_name(torch.device(device))
    peak = flops.peak_tflops(name)
    if peak is None:
        return None, f"MFU left out: {name} is not in the table of known peaks (give --peak-tflops)"
    return peak, f"{name}'s dense bf16 peak, {peak} TFLOP/s"


def compiled_section(
    rows: list[Row], backbones: dict[str, Path], size: str, backend: str = compiled.DEFAULT_BACKEND, **settings: Any
) -> dict:
    """Eager against compiled training step and inference per row (`adapterzoo.benchmarks.compiled.compare`, with
    ``settings``: device, dtype, batch, repeats), in that module's results format."""
    methods = {
        row.label: compiled.compare(
            row, backbones["clip" if row.clip else "vit"], SHAPES[size], backend=backend, **settings
        )
        for row in rows
    }
    return {"settings": {**settings, "size": size, "backend": backend}, "methods": methods}


def run_gpu_benchmark(
    *,
    device: str = "cuda",
    size: str = "base",
    dtype: str = "bfloat16",
    batch: int = 128,
    steps: int = 10,
    methods: Sequence[str] | None = None,
    compiled_methods: Sequence[str] = COMPILED_METHODS,
    compile_backend: str = compiled.DEFAULT_BACKEND,
    workers: tuple[int | str, ...] = (0, "auto", 16),
    pipeline_images: int = 512,
    peak: float | None = None,
    output: str | Path = "benchmarks/results",
    progress: bool = True,
) -> dict:
    """Measure as the module says and write ``gpu.json`` and ``gpu.md`` into ``output``; ``peak`` (TFLOP/s) overrides
    the table of known devices; ``compiled_methods`` (of those measured) are also compiled, with ``compile_backend``."""
    from adapterzoo.benchmarks.run import save_backbones  # the random-weight backbones of the main benchmark

    measure.check_device(device)
    target = torch.device(device)
    shape = SHAPES[size]
    rows = select_rows(rows_for(shape, [get_method(info.name) for info in list_methods()]), methods)
    peak_value, peak_source = resolve_peak(device, peak)
    results: dict = {
        "machine": report.machine(device, dtype),
        "settings": {
            "size": size,
            "batch": batch,
            "steps": steps,
            "image": shape.image,
            "peak_tflops": peak_value,
            "peak_source": peak_source,
        },
        "methods": {},
    }
    errors: dict[str, str] = {}
    started = time.perf_counter()
    with measure.temporary_folder() as folder:
        backbones = save_backbones(size, Path(folder))
        for row in tqdm(rows, desc="training steps", disable=not progress):
            kind = "clip" if row.clip else "vit"
            step = attempt(errors, row.label, partial(
                measure.training_step, row, backbones[kind], shape, device=device, dtype=dtype, batch=batch,
                steps=steps, isolated=target.type == "cpu" and size != "tiny", flops=True,
            ))  # fmt: skip
            if step is not None:
                results["methods"][row.label] = {"backbone": kind, **step, **rates(step, batch, peak_value)}
            if target.type == "cuda":
                gc.collect()  # the model's reference cycles, so that its memory returns to the device
                torch.cuda.empty_cache()
        processor = transformers.AutoImageProcessor.from_pretrained(backbones["vit"])

        def mixed_batches() -> dict:
            with torch.autocast(target.type, dtype=getattr(torch, dtype), enabled=dtype != "float32"):
                return multi.mixed_batches(backbones["vit"], shape, Path(folder) / "multi", batch=batch,
                                           repeats=steps, device=device)  # fmt: skip

        sections = {
            "pipeline": partial(pipeline.throughput, processor, images=pipeline_images, batch=batch, workers=workers,
                                device=device),
            "multi_adapter": mixed_batches,
            "compiled": partial(compiled_section, [row for row in rows if row.method in compiled_methods], backbones,
                                size, compile_backend, device=device, dtype=dtype, batch=batch, repeats=steps),
        }  # fmt: skip
        for key, section in sections.items():
            measured = attempt(errors, key, section)
            if measured is not None:
                results[key] = measured
    results["errors"] = errors
    results["seconds"] = time.perf_counter() - started
    write(results, Path(output))
    return results


def attempt(errors: dict[str, str], key: str, measurement: Callable[[], T]) -> T | None:
    """``measurement()``; if it fails, None, and its error recorded under ``key``: on a rented GPU one failure costs
    its row, not the run."""
    try:
        return measurement()
    except Exception as error:  # whatever fails in one measurement
        errors[key] = f"{type(error).__name__}: {error}"[:500]
        return None


def rates(step: dict, batch: int, peak: float | None) -> dict:
    """Images per second of a step, and its TFLOP/s and MFU where its FLOPs were counted (a fit has none)."""
    if "fit_seconds" in step:
        return {}
    achieved = step["flops"] / step["step_seconds"] / 1e12
    return {
        "images_per_second": batch / step["step_seconds"],
        "tflops_per_second": achieved,
        "mfu": None if peak is None else flops.mfu(step["flops"], step["step_seconds"], peak),
    }


def markdown(results: dict) -> str:
    """The GPU run as a Markdown table and the pipeline's lines."""
    machine, settings = results["machine"], results["settings"]
    lines = [
        f"Measured on {machine.get('gpu', machine['device'])} ({machine['dtype']}, torch {machine['torch']}), "
        f"{settings['size']} size at {settings['image']} px, batch {settings['batch']}, {settings['steps']} timed "
        "steps after a warm-up. FLOPs counted by torch.utils.flop_counter over one training step; "
        + (f"MFU against {settings['peak_source']}." if settings["peak_tflops"] else f"{settings['peak_source']}."),
        "",
        "| method | backbone | step (ms) | images/s | peak memory (MiB) | GFLOP/step | TFLOP/s | MFU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in results["methods"].items():
        if "fit_seconds" in row:
            lines.append(f"| {label} | {row['backbone']} | fit: {1000 * row['fit_seconds']:.0f} | — | "
                         f"{row['peak_memory_mb']:.0f} | — | — | — |")  # fmt: skip
            continue
        mfu = "—" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%"
        lines.append(
            f"| {label} | {row['backbone']} | {1000 * row['step_seconds']:.1f} | {row['images_per_second']:.0f} | "
            f"{row['peak_memory_mb']:.0f} | {row['flops'] / 1e9:.3g} | {row['tflops_per_second']:.1f} | {mfu} |"
        )
    lines += ["", *report.pipeline_lines(results), *report.multi_adapter_lines(results)]
    lines += [f"Failed: {key}: {error}" for key, error in results.get("errors", {}).items()]
    if results.get("compiled", {}).get("methods"):
        lines += ["", compiled.markdown({**results["compiled"], "machine": results["machine"]})]
    return "\n".join(lines)


def write(results: dict, folder: Path) -> list[Path]:
    """gpu.json and gpu.md in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "gpu.json", folder / "gpu.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results) + "\n")
    return paths


def worker_count(text: str) -> int | str:
    """A ``--workers`` value: a count, or "auto"."""
    if text == "auto" or text.isdigit():
        return text if text == "auto" else int(text)
    raise argparse.ArgumentTypeError(f"'{text}' is not a worker count: give a number or auto.")


def parser() -> argparse.ArgumentParser:
    """The options of ``python -m adapterzoo.benchmarks.gpu`` (what ``benchmarks/gpu.sh`` passes on)."""
    options = argparse.ArgumentParser(prog="python -m adapterzoo.benchmarks.gpu", description=__doc__,
                                      formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    options.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a dry run")
    options.add_argument("--size", choices=tuple(SHAPES), default="base", help="base: ViT-B/16 (default); tiny: tests")
    options.add_argument("--dtype", choices=("bfloat16", "float16", "float32", "bf16", "fp16"), default="bfloat16",
                         help="autocast precision of the steps (default: bfloat16)")  # fmt: skip
    options.add_argument("--batch", type=int, default=128, help="images per step (default: 128)")
    options.add_argument("--steps", type=int, default=10, help="timed steps per method after a warm-up (default: 10)")
    options.add_argument("--methods", nargs="+", help="only these methods (default: every installed one)")
    options.add_argument("--compiled", nargs="*", default=list(COMPILED_METHODS), metavar="METHOD",
                         help="methods also timed compiled (default: lora vpt coop; none if empty)")  # fmt: skip
    options.add_argument("--compile-backend", default=compiled.DEFAULT_BACKEND,
                         help="their torch.compile backend (default: inductor)")  # fmt: skip
    options.add_argument("--workers", nargs="+", type=worker_count, default=[0, "auto", 16],
                         help="data-pipeline worker counts (default: 0 auto 16)")  # fmt: skip
    options.add_argument("--pipeline-images", type=int, default=512, help="images per pipeline pass (default: 512)")
    options.add_argument("--peak-tflops", type=float, help="the device's bf16 peak, for a device not in the table")
    options.add_argument("--output", default="benchmarks/results", help="folder for gpu.json and gpu.md")
    options.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Run the GPU benchmark from the command line and print its table."""
    args = parser().parse_args(argv)
    from adapterzoo.progress import transformers_bars_off

    dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(args.dtype, args.dtype)
    with transformers_bars_off():
        results = run_gpu_benchmark(
            device=args.device, size=args.size, dtype=dtype, batch=args.batch, steps=args.steps, methods=args.methods,
            compiled_methods=args.compiled, compile_backend=args.compile_backend, workers=tuple(args.workers),
            pipeline_images=args.pipeline_images, peak=args.peak_tflops, output=args.output, progress=args.progress,
        )  # fmt: skip
    print(markdown(results))
    print(f"\nWritten to {args.output}/gpu.json and gpu.md in {results['seconds']:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
