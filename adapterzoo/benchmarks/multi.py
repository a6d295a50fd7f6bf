"""Many adapters on one backbone: a batch that mixes ``adapters`` adapters (examples interleaved) against the same
batch through one adapter, and the weights one backbone with all of them holds against as many separate models.

Each row's adapters are saved and loaded back onto one model (`AdapterModel.load_adapter`), as a server holds them.
LoRA mixes per example in every layer (PEFT's mixed batch); other methods run one pass per adapter in the batch.
"""

from __future__ import annotations

import itertools
from functools import partial
from pathlib import Path

import torch
from torch import nn

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.benchmarks.measure import attach, interleaved_medians
from adapterzoo.benchmarks.shapes import Row, Shape

ROWS = (
    Row("lora (r 8, q v)", "lora", {"r": 8, "lora_alpha": 8}),
    Row("vpt-deep (50)", "vpt", {"num_tokens": 50, "deep": True}),
)
"""LoRA (PEFT's mixed batch) and a prompt method (one pass per adapter)."""


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the parameters and buffers ``model`` holds, each tensor counted once."""
    tensors = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def mixed_batches(
    backbone: Path,
    shape: Shape,
    workdir: Path,
    *,
    adapters: int = 8,
    batch: int = 32,
    repeats: int = 3,
    device: str = "cpu",
    rows: tuple[Row, ...] = ROWS,
) -> dict[str, dict]:
    """Per row: seconds per batch through one adapter and mixed over ``adapters`` adapters, their throughput ratio
    (mixed / one, 1 meaning no cost), and the weights held by one model with every adapter against ``adapters``
    separate models (MiB)."""
    pixel_values = torch.randn(batch, 3, shape.image, shape.image, device=device)
    names = [f"task{i % adapters}" for i in range(batch)]
    results = {}
    for row in rows:
        model, single_bytes = _loaded(row, backbone, workdir / row.method, adapters)
        model = model.to(device).eval()
        with torch.no_grad():
            calls = (partial(model, pixel_values), partial(model, pixel_values, adapter_names=names))
            one, mixed = interleaved_medians(calls, repeats, torch.device(device))
        results[row.label] = {
            "adapters": adapters,
            "batch": batch,
            "one_adapter_seconds": one,
            "mixed_seconds": mixed,
            "throughput_ratio": one / mixed,
            "shared_backbone_mib": weight_bytes(model) / 2**20,
            "separate_models_mib": adapters * single_bytes / 2**20,
        }
    return results


def _loaded(row: Row, backbone: Path, folder: Path, adapters: int) -> tuple[AdapterModel, int]:
    """One model holding ``adapters`` saved adapters of ``row`` (named task0, task1, ...), and the weight bytes of
    the model with its first adapter alone."""
    labels = [str(i) for i in range(10)]
    folders = [attach(row, backbone, labels).save_pretrained(folder / f"task{i}") for i in range(adapters)]
    model = AutoAdapter.from_pretrained(folders[0], adapter_name="task0")
    single_bytes = weight_bytes(model)
    for path in folders[1:]:
        model.load_adapter(path)
    return model, single_bytes
