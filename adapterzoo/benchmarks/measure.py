"""The measurements, one function each: parameters and file size, a training step, inference latency, VPT's
overhead over the tokens it adds, the feature cache's speed-up, and accuracy over seeds."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.backbones import describe_backbone, load_backbone
from adapterzoo.benchmarks.shapes import Row, Shape
from adapterzoo.benchmarks.worker import measure
from adapterzoo.data.builtin import SHAPES, builtin_dataset
from adapterzoo.data.loading import few_shot
from adapterzoo.pretraining import TARGET_SHAPES, local_hub, pretrained_backbone
from adapterzoo.registry import get_method
from adapterzoo.remote_code import load_auto
from adapterzoo.training import base_to_novel, evaluate, train
from adapterzoo.training.fit import is_fitted
from adapterzoo.training.protocols import adapt


def attach(row: Row, backbone: Path, labels: list[str], **extra: Any) -> AdapterModel:
    torch.manual_seed(0)
    task = "clip-classification" if row.clip else "image-classification"
    return AutoAdapter.from_backbone(str(backbone), method=row.method, labels=labels, task=task, **row.options, **extra)


def parameters_and_size(row: Row, backbone: Path, shape: Shape, classes: int, workdir: Path) -> dict:
    """Trainable parameters (against the formula, and as a share of the backbone) and the saved adapter's size."""
    model = attach(row, backbone, [str(i) for i in range(classes)])
    trainable = model.trainable_parameters
    frozen = model.task_model.clip if row.clip else model.task_model.backbone
    # The backbone's own weights (full fine-tuning's trained copy, under modules_to_save, is not a second backbone).
    backbone_parameters = sum(p.numel() for n, p in frozen.named_parameters() if "modules_to_save" not in n)
    if row.method == "full":
        formula = backbone_parameters + shape.width * classes + classes
    else:
        formula = row.formula(shape, classes) if row.formula else None
    folder = model.save_pretrained(workdir / "adapter")
    return {
        "trainable": trainable,
        "percent_of_backbone": 100 * trainable / backbone_parameters,
        "formula": formula,
        "formula_text": row.formula_text,
        "matches_formula": None if formula is None else formula == trainable,
        "file_bytes": (folder / "adapter_model.safetensors").stat().st_size,
    }


def training_step(
    row: Row,
    backbone: Path,
    shape: Shape,
    *,
    device: str,
    dtype: str,
    batch: int,
    steps: int,
    isolated: bool = True,
    flops: bool = False,
) -> dict:
    """Seconds per training step and peak memory, measured in a fresh process (see `worker`); not ``isolated``, in
    this one (quick, for tests: the peak memory is then this process's so far); with ``flops``, also one step's
    counted FLOPs. A fitted method (GDA, Tip-Adapter) has no step: its fit is measured instead (``fit_seconds``, also
    reported as ``step_seconds``)."""
    fitted = bool(getattr(get_method(row.method).config_cls, "fitted", False))
    spec = {"method": row.method, "options": row.options, "clip": row.clip, "backbone": str(backbone),
            "device": device, "dtype": dtype, "batch": batch, "steps": steps, "image": shape.image,
            "fit": fitted, "flops": flops}  # fmt: skip
    if not isolated:
        return measure(spec)
    command = [sys.executable, "-m", "adapterzoo.benchmarks.worker", json.dumps(spec)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"Measuring a training step of {row.label} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_device(device: str) -> None:
    """Refuse a CUDA device this torch cannot reach, before any measuring."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device is available to torch {torch.__version__}.")


def interleaved_medians(
    functions: Sequence[Callable[[], object]], repeats: int, device: torch.device, warmups: int = 1
) -> list[float]:
    """The median seconds of ``repeats`` calls of each function, alternated after ``warmups`` calls of each, so that
    other work on the machine weighs on all alike; on CUDA each call is timed between synchronisations."""
    for _ in range(warmups):
        for function in functions:
            function()
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(repeats):
        for function, measured in zip(functions, times, strict=True):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            function()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            measured.append(time.perf_counter() - started)
    return [statistics.median(measured) for measured in times]


def seconds_per_call(function: Callable[[], object], repeats: int) -> float:
    """The median time of ``repeats`` calls, after one warm-up call."""
    with torch.no_grad():
        function()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def latency(row: Row, backbone: Path, shape: Shape, *, batch: int, repeats: int, device: str) -> dict:
    """Inference time per batch with the adapter, as a ratio to the same model with the adapter disabled; for a
    mergeable method also merged (which should cost what the plain backbone costs)."""
    model = attach(row, backbone, [str(i) for i in range(10)]).to(device).eval()
    pixel_values = torch.randn(batch, 3, shape.image, shape.image, device=device)
    adapted = seconds_per_call(lambda: model(pixel_values), repeats)
    with model.peft_model.disable_adapter():
        plain = seconds_per_call(lambda: model(pixel_values), repeats)
    report = {"inference_seconds": adapted, "plain_seconds": plain, "latency_ratio": adapted / plain}
    if row.method in ("lora", "loha", "lokr", "ia3", "oft", "boft", "vera", "fourierft") and not row.clip:
        model.merge()
        report["merged_latency_ratio"] = seconds_per_call(lambda: model(pixel_values), repeats) / plain
    return report


def vpt_overhead(backbone: Path, shape: Shape, *, batch: int, repeats: int, device: str) -> dict:
    """VPT-deep's forward against the work it implies: the plain backbone's layers on the same number of tokens
    (embeddings, prompts inserted once, every layer, the final norm and head), written out with plain modules."""
    row = Row("vpt-deep (50)", "vpt", {"num_tokens": 50, "deep": True})
    model = attach(row, backbone, [str(i) for i in range(10)]).to(device).eval()
    plain = load_backbone(str(backbone)).to(device).eval()
    parts = describe_backbone(plain)
    layers = list(plain.get_submodule(parts.layers))
    head = model.task_model.classifier.modules_to_save["default"]
    prompts = torch.randn(batch, 50, shape.width, device=device)
    pixel_values = torch.randn(batch, 3, shape.image, shape.image, device=device)

    def implied() -> torch.Tensor:
        x = plain.embeddings(pixel_values)
        x = torch.cat([x[:, :1], prompts, x[:, 1:]], dim=1)
        for layer in layers:
            x = layer(x)
        return head(plain.get_submodule(parts.final_norm)(x))  # the head pools CLS

    adapted = seconds_per_call(lambda: model(pixel_values), repeats)
    reference = seconds_per_call(implied, repeats)
    return {"vpt_deep_seconds": adapted, "same_tokens_seconds": reference, "overhead_ratio": adapted / reference}


def cache_speedup(method: str, backbone: Path, shape: Shape, *, images: int, epochs: int, workdir: Path) -> dict:
    """Training time with the frozen-feature cache and without it (same data, epochs and result)."""
    data = builtin_dataset("shapes", "train", num_per_class=max(1, images // 4), image_size=shape.image,
                           classes=SHAPES[:4])  # fmt: skip
    runs = {}
    for cache in ("no", "yes"):
        row = Row(method, method, {"hidden_dim": 64} if method == "moment-probing" else {})
        model = attach(row, backbone, list(SHAPES[:4]))
        started = time.perf_counter()
        train(model, data, epochs=epochs, batch_size=16, cache_features=cache, output_dir=workdir / f"{method}-{cache}",
              progress=False)  # fmt: skip
        runs[cache] = (time.perf_counter() - started, evaluate(model, data)["accuracy"])
    return {"uncached_seconds": runs["no"][0], "cached_seconds": runs["yes"][0],
            "speedup": runs["no"][0] / runs["yes"][0], "same_accuracy": runs["no"][1] == runs["yes"][1]}  # fmt: skip


def accuracy(rows: list[Row], *, seeds: int, quick: bool, workdir: Path, progress: bool) -> dict[str, dict]:
    """Accuracy on the embedded transfer task with the zoo's small pretrained backbones, mean and std over seeds.

    Vision rows: the pretrained ViT adapted to the four shapes it never saw (64 images each, 20 epochs). CLIP rows:
    base-to-novel harmonic mean on the pretrained CLIP (16 shots), with each method's recipe.
    """
    per_class, epochs, shots = (4, 1, 2) if quick else (64, 20, 16)
    train_data = builtin_dataset("shapes", "train", num_per_class=per_class, classes=TARGET_SHAPES)
    test_data = builtin_dataset("shapes", "test", num_per_class=8 if quick else 50, classes=TARGET_SHAPES)
    clip_train = builtin_dataset("shapes", "train", num_per_class=shots)
    clip_test = builtin_dataset("shapes", "test", num_per_class=8 if quick else 50)
    clip_validation = builtin_dataset("shapes", "validation", num_per_class=4 if quick else 16, seed=1)
    results = {}
    with local_hub():
        vit = pretrained_backbone("vit", quick=quick, progress=progress)
        clip = pretrained_backbone("clip", quick=quick, progress=progress)
        layers = load_auto("AutoConfig", clip).text_config.num_hidden_layers
        with tqdm(total=len(rows) * seeds, desc="accuracy", disable=not progress) as bar:
            for row in rows:
                scores = []
                for seed in range(seeds):
                    bar.set_postfix_str(f"{row.label}, seed {seed}")
                    options = {"depth": max(1, round(9 / 12 * layers))} if row.method == "maple" else {}
                    torch.manual_seed(seed)
                    model = AutoAdapter.from_backbone(
                        clip if row.clip else vit, method=row.method, labels=SHAPES if row.clip else TARGET_SHAPES,
                        **{**row.options, **options},
                    )  # fmt: skip
                    output = workdir / f"accuracy-{len(results)}-{seed}"
                    if row.clip and row.protocol == "few-shot":
                        extra = {"epochs": 1} if quick else {}
                        adapt(model, few_shot(clip_train, shots, seed=seed), clip_validation, seed=seed,
                              output_dir=output, progress=False, **extra)  # fmt: skip
                        scores.append(evaluate(model, clip_test)["accuracy"])
                    elif row.clip:
                        extra = {"epochs": 1} if quick else {}
                        search = clip_validation if is_fitted(model) else None
                        result = base_to_novel(model, clip_train, clip_test, validation_dataset=search, shots=shots,
                                               seed=seed, output_dir=output, progress=False, **extra)  # fmt: skip
                        scores.append(result.harmonic_mean)
                    else:
                        train(model, train_data, epochs=epochs, batch_size=32, seed=seed, output_dir=output,
                              progress=False)  # fmt: skip
                        scores.append(evaluate(model, test_data)["accuracy"])
                    bar.update()
                metric = "harmonic mean (base-to-novel)" if row.clip else "accuracy (unseen shapes)"
                results[row.label] = {
                    "metric": "accuracy (few-shot, all classes)" if row.protocol == "few-shot" else metric,
                    "mean": statistics.mean(scores),
                    "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                    "scores": scores,
                    "trainable_on_small_backbone": model.trainable_parameters,
                }
    return results


def temporary_folder() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="adapterzoo-bench-")
