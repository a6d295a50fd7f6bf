"""`run_benchmarks`: every measurement, for every installed method plus the linear probe and full fine-tuning."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import transformers
from tqdm.auto import tqdm

from adapterzoo.benchmarks import measure, multi, pipeline, report
from adapterzoo.benchmarks.command import PLOTTING
from adapterzoo.benchmarks.shapes import CLIP_CLASSES, NUM_CLASSES, SHAPES, Shape, rows_for
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.environment import require_extra
from adapterzoo.readme_blocks import find_block
from adapterzoo.registry import get_method, list_methods


def vit(shape: Shape) -> transformers.ViTModel:
    """A random-weight ViT of ``shape``, without the pooler (as the task models use it)."""
    config = transformers.ViTConfig(
        hidden_size=shape.width, num_hidden_layers=shape.depth, num_attention_heads=shape.heads,
        intermediate_size=shape.mlp, image_size=shape.image, patch_size=shape.patch,
    )  # fmt: skip
    return transformers.ViTModel(config, add_pooling_layer=False)


def clip(shape: Shape) -> transformers.CLIPModel:
    """A random-weight CLIP whose vision tower has ``shape``, with the offline tokenizer's vocabulary."""
    tokenizer = builtin_clip_tokenizer()
    vision = {
        "hidden_size": shape.width, "num_hidden_layers": shape.depth, "num_attention_heads": shape.heads,
        "intermediate_size": shape.mlp, "image_size": shape.image, "patch_size": shape.patch,
    }  # fmt: skip
    text = {
        "hidden_size": shape.text_width, "num_hidden_layers": shape.depth, "num_attention_heads": shape.text_heads,
        "intermediate_size": 4 * shape.text_width, "vocab_size": len(tokenizer), "max_position_embeddings": 77,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }  # fmt: skip
    config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=shape.text_width)
    return transformers.CLIPModel(config)


def save_backbones(size: str, folder: Path) -> dict[str, Path]:
    """A random-weight ViT and CLIP of ``size``, saved as Hub checkpoints with their processors."""
    shape = SHAPES[size]
    torch.manual_seed(0)
    paths = {"vit": folder / f"vit-{size}", "clip": folder / f"clip-{size}"}
    vit(shape).save_pretrained(paths["vit"])
    transformers.ViTImageProcessorPil(size={"height": shape.image, "width": shape.image}).save_pretrained(paths["vit"])
    clip(shape).save_pretrained(paths["clip"])
    images = transformers.CLIPImageProcessorPil(size={"shortest_edge": shape.image}, crop_size=shape.image)
    transformers.CLIPProcessor(image_processor=images, tokenizer=builtin_clip_tokenizer()).save_pretrained(
        paths["clip"]
    )
    return paths


def run_benchmarks(
    *,
    size: str = "small",
    device: str = "cpu",
    dtype: str = "float32",
    batch: int = 8,
    steps: int = 3,
    seeds: int = 3,
    output: str | Path = "benchmarks/results",
    readme: str | Path | None = None,
    skip: tuple[str, ...] = (),
    progress: bool = True,
) -> dict:
    """Measure and write results; ``size`` is the timing size (tiny, small, base), ``skip`` names sections to leave
    out ("params", "steps", "latency", "overhead", "cache", "pipeline", "multi", "accuracy")."""
    require_extra("bench", PLOTTING)  # refused now rather than after the measuring, as a README without its block
    if readme is not None:
        find_block(Path(readme), report.START, report.END)  # refused now rather than after the measuring
    measure.check_device(device)
    count_size = "tiny" if size == "tiny" else "base"
    methods = [get_method(info.name) for info in list_methods()]
    installed = {method.name for method in methods}
    rows = rows_for(SHAPES[count_size], methods)
    timing_rows = rows_for(SHAPES[size], methods)
    results: dict = {
        "machine": report.machine(device, dtype),
        "settings": {
            "timing_size": size,
            "count_size": count_size,
            "batch": batch,
            "steps": steps,
            "seeds": seeds,
            "classes": NUM_CLASSES if count_size == "base" else 10,
            "clip_classes": CLIP_CLASSES,
        },  # fmt: skip
        "methods": {row.label: {} for row in rows},
    }
    started = time.perf_counter()
    with measure.temporary_folder() as folder:
        workdir = Path(folder)
        counted = save_backbones(count_size, workdir / "count")
        timed = counted if size == count_size else save_backbones(size, workdir / "time")
        if "params" not in skip:
            classes = results["settings"]["classes"]
            for row in tqdm(rows, desc="parameters and file sizes", disable=not progress):
                backbone = counted["clip" if row.clip else "vit"]
                number = CLIP_CLASSES if row.clip else classes
                results["methods"][row.label].update(
                    measure.parameters_and_size(row, backbone, SHAPES[count_size], number, workdir / row.method)
                )
        if "steps" not in skip:
            full = {}
            # Full fine-tuning of each backbone first (the reference of the ratios), then every row.
            with tqdm(total=2 + len(timing_rows), desc="training steps", disable=not progress) as bar:
                for kind in ("vit", "clip"):
                    reference = next(row for row in timing_rows if row.method == "full")
                    full[kind] = measure.training_step(reference, timed[kind], SHAPES[size], device=device,
                                                       dtype=dtype, batch=batch, steps=steps,
                                                       isolated=size != "tiny")  # fmt: skip
                    bar.update()
                for row in timing_rows:
                    backbone = timed["clip" if row.clip else "vit"]
                    step = measure.training_step(row, backbone, SHAPES[size], device=device, dtype=dtype,
                                                 batch=batch, steps=steps, isolated=size != "tiny")  # fmt: skip
                    reference = full["clip" if row.clip else "vit"]
                    results["methods"][row.label].update(
                        step, step_ratio=step["step_seconds"] / reference["step_seconds"],
                        memory_ratio=step["peak_memory_mb"] / reference["peak_memory_mb"],
                    )  # fmt: skip
                    bar.update()
            results["full_fine_tuning_reference"] = full
        if "latency" not in skip:
            for row in tqdm(timing_rows, desc="inference latency", disable=not progress):
                if row.method in ("full", "linear-probe", "zero-shot"):
                    continue  # nothing between the backbone and its plain self
                results["methods"][row.label].update(
                    measure.latency(
                        row,
                        timed["clip" if row.clip else "vit"],
                        SHAPES[size],
                        batch=batch,
                        repeats=max(steps, 3),
                        device=device,
                    )  # fmt: skip
                )
        if "overhead" not in skip and "vpt" in installed:
            results["vpt_overhead"] = measure.vpt_overhead(timed["vit"], SHAPES[size], batch=batch,
                                                           repeats=max(steps, 3), device=device)  # fmt: skip
        if "cache" not in skip:
            images, epochs = (8, 1) if size == "tiny" else (64, 3)
            methods = [m for m in ("linear-probe", "moment-probing") if m in installed]
            results["cache_speedup"] = {
                method: measure.cache_speedup(
                    method, timed["vit"], SHAPES[size], images=images, epochs=epochs, workdir=workdir / "cache"
                )  # fmt: skip
                for method in tqdm(methods, desc="feature cache", disable=not progress)
            }
        if "pipeline" not in skip:
            processor = transformers.AutoImageProcessor.from_pretrained(timed["vit"])
            images = 8 if size == "tiny" else 128
            results["pipeline"] = pipeline.throughput(processor, images=images, batch=batch, device=device)
        if "multi" not in skip:
            results["multi_adapter"] = multi.mixed_batches(
                timed["vit"], SHAPES[size], workdir / "multi", batch=4 * batch, repeats=max(steps, 3), device=device
            )
        if "accuracy" not in skip:
            scores = measure.accuracy(rows, seeds=seeds, quick=size == "tiny", workdir=workdir, progress=progress)
            for label, score in scores.items():
                results["methods"][label]["accuracy"] = score
    results["seconds"] = time.perf_counter() - started
    report.write(results, Path(output), Path(readme) if readme else None)
    return results
