"""What `torch.compile` gains per method: a training step and an inference batch, eager and compiled, timed in one
process, interleaved (eager, compiled, eager, ...) after warm-up calls that compile, so that both see the same
machine load; reported as compiled / eager ratios (below 1: compiling pays).

A method that declares its training untraceable (`Method.compile_blocker`) has its inference timed only; a fitted
method (GDA, Tip-Adapter) its inference, since its fit is closed-form work outside any forward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch._dynamo
from tqdm.auto import tqdm

from adapterzoo.benchmarks.measure import attach, check_device, interleaved_medians, temporary_folder
from adapterzoo.benchmarks.shapes import SHAPES, Row, Shape, rows_for
from adapterzoo.compiling import DEFAULT_BACKEND, check_backend, prepare_to_compile
from adapterzoo.readme_blocks import find_block, replace_block
from adapterzoo.registry import get_method, list_methods

START = "<!-- compile-benchmark: written by `adapterzoo bench --only compile --readme README.md` -->"
END = "<!-- /compile-benchmark -->"
LABELS = [str(i) for i in range(10)]


def _interleaved(eager: Callable[[], object], compiled: Callable[[], object], repeats: int, device) -> dict:
    """Median seconds of ``eager`` and ``compiled`` calls, alternated, after two warm-up calls of each (the compiled
    one's first call compiles; the second settles any recompile)."""
    eager_seconds, compiled_seconds = interleaved_medians((eager, compiled), repeats, device, warmups=2)
    return {
        "eager_seconds": eager_seconds,
        "compiled_seconds": compiled_seconds,
        "ratio": compiled_seconds / eager_seconds,
    }


def compare(
    row: Row,
    backbone,
    shape: Shape,
    *,
    device: str,
    dtype: str,
    batch: int,
    repeats: int,
    backend: str = DEFAULT_BACKEND,
) -> dict:
    """Eager and compiled training step (forward, backward, AdamW) and inference batch of ``row``."""
    torch._dynamo.reset()  # every row compiles afresh, within the recompile limit
    target, precision = torch.device(device), getattr(torch, dtype)
    model = attach(row, backbone, LABELS).to(target)
    prepare_to_compile(model)
    compiled = torch.compile(model, backend=backend)
    pixel_values = torch.randn(batch, 3, shape.image, shape.image, device=target)
    labels = torch.randint(len(LABELS), (batch,), device=target)
    autocast = torch.autocast(target.type, dtype=precision, enabled=precision != torch.float32)
    method = get_method(row.method)
    parameters = [p for p in model.parameters() if p.requires_grad]
    fitted = bool(getattr(method.config_cls, "fitted", False))
    result: dict = {}
    if parameters and not fitted and method.compile_blocker is None:
        optimizer = torch.optim.AdamW(parameters)

        def step(call: Callable) -> Callable[[], None]:
            def run() -> None:
                with autocast:
                    loss = call(pixel_values, labels=labels).loss
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            return run

        model.train()
        result["step"] = _interleaved(step(model), step(compiled), repeats, target)
    model.eval()

    def infer(call: Callable) -> Callable[[], object]:
        def run() -> object:
            with torch.no_grad(), autocast:
                return call(pixel_values).logits

        return run

    result["inference"] = _interleaved(infer(model), infer(compiled), repeats, target)
    return result


def markdown(results: dict) -> str:
    """The compile section as Markdown: per row, the compiled / eager ratios and the eager times they divide."""
    settings, machine = results["settings"], results["machine"]
    lines = [
        f"`torch.compile` ({settings['backend']}) against eager, at {settings['size']} size, batch "
        f"{settings['batch']}, {settings['device']} ({machine['cpu_count']} cores, {machine['torch_threads']} torch "
        f"thread(s), torch {machine['torch']}), {settings['dtype']}: median of {settings['repeats']} "
        "interleaved calls after warm-up, as compiled / eager (below 1: compiled is faster). — : the row has no "
        "compiled training step (nothing to train, a fitted method, or a training that cannot trace).",
        "",
        "| method | training step, eager | compiled ×eager | inference, eager | compiled ×eager |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, row in results["methods"].items():
        step, inference = row.get("step"), row["inference"]
        step_cells = f"{1000 * step['eager_seconds']:.1f} ms | {step['ratio']:.2f}" if step else "— | —"
        lines.append(
            f"| {label} | {step_cells} | {1000 * inference['eager_seconds']:.1f} ms | {inference['ratio']:.2f} |"
        )
    return "\n".join(lines)


def run_compile_benchmark(
    *,
    size: str = "small",
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 8,
    repeats: int = 3,
    backend: str = DEFAULT_BACKEND,
    methods: tuple[str, ...] | None = None,
    output: str | Path = "benchmarks/results",
    readme: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """`compare` every benchmark row (of ``methods``, default all installed) at ``size``; write ``compile.json`` and
    ``compile.md`` to ``output``, and the table into ``readme`` between this section's markers."""
    from adapterzoo.benchmarks import report
    from adapterzoo.benchmarks.run import save_backbones

    if readme is not None:
        find_block(Path(readme), START, END)  # refused now rather than after the measuring
    check_device(device)
    check_backend(backend)
    for name in methods or ():
        get_method(name)  # an unknown name is refused, naming what is installed
    installed = [get_method(info.name) for info in list_methods() if methods is None or info.name in methods]
    rows = rows_for(SHAPES[size], installed)
    results: dict = {
        "machine": report.machine(device, dtype),
        "settings": {
            "size": size,
            "batch": batch,
            "repeats": repeats,
            "backend": backend,
            "device": device,
            "dtype": dtype,
        },  # fmt: skip
        "methods": {},
    }
    started = time.perf_counter()
    with temporary_folder() as folder:
        backbones = save_backbones(size, Path(folder))
        for row in tqdm(rows, desc="eager and compiled", disable=not progress):
            backbone = backbones["clip" if row.clip else "vit"]
            results["methods"][row.label] = compare(
                row, backbone, SHAPES[size], device=device, dtype=dtype, batch=batch, repeats=repeats, backend=backend
            )
    results["seconds"] = time.perf_counter() - started
    folder = Path(output)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compile.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (folder / "compile.md").write_text(table + "\n")
    if readme is not None:
        replace_block(Path(readme), START, END, f"{START}\n\n{table}\n\n{END}")
    return results
