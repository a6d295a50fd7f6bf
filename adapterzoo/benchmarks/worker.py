"""One training-step measurement (or, for a fitted method, one fit's) in a process of its own, so that its peak
memory is its own.

``python -m adapterzoo.benchmarks.worker '<json spec>'`` prints one JSON line: seconds per step (or of the fit) and
peak memory during the steps (resident set size on CPU, ``torch.cuda.max_memory_allocated`` on a GPU). The peak is
reset after the model is loaded, so that loading's transient copies of the weights do not hide what training costs.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import time
from pathlib import Path

import torch

from adapterzoo.auto import AutoAdapter
from adapterzoo.benchmarks.flops import count_flops
from adapterzoo.data.builtin import SHAPES, builtin_dataset
from adapterzoo.training.fit import fit

LABELS = [str(i) for i in range(10)]
STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_rss() -> None:
    """On Linux, writing 5 to ``clear_refs`` resets the process's peak resident set size (``VmHWM``)."""
    try:
        CLEAR_REFS.write_text("5")
    except OSError:
        pass  # elsewhere the peak is the whole process's, loading included


def peak_rss_mb() -> float:
    if STATUS.exists():
        line = next(line for line in STATUS.read_text().splitlines() if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def reset_peak(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_peak_rss()


def peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb()


def measure_step(spec: dict) -> dict:
    """Train ``spec['steps']`` steps (after one warm-up) of ``spec['method']`` at ``spec['batch']`` on random data;
    with ``spec['flops']``, also count one more (untimed) step's FLOPs (`flops.count_flops`)."""
    device, dtype = torch.device(spec["device"]), getattr(torch, spec["dtype"])
    torch.manual_seed(0)
    task = "clip-classification" if spec["clip"] else "image-classification"
    model = AutoAdapter.from_backbone(spec["backbone"], method=spec["method"], labels=LABELS, task=task,
                                      **spec["options"]).to(device).train()  # fmt: skip
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters) if parameters else None
    size = spec["image"]
    pixel_values = torch.randn(spec["batch"], 3, size, size, device=device)
    labels = torch.randint(len(LABELS), (spec["batch"],), device=device)
    reset_peak(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(pixel_values, labels=labels).loss
        if optimizer is not None:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    step()
    counted = {"flops": count_flops(step)} if spec.get("flops") else {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - started) / spec["steps"]
    return {"step_seconds": seconds, "peak_memory_mb": peak_mb(device), **counted}


def measure_fit(spec: dict) -> dict:
    """A fitted method's counterpart of a step: one `adapterzoo.fit` of ``spec['method']`` (CLIP) on the toy shapes
    (``spec['batch']`` images over its classes, at least two each, and one validation image each, at the spec's
    image size, with the method's own augmented views), its seconds and its peak memory."""
    device, dtype = torch.device(spec["device"]), getattr(torch, spec["dtype"])
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(spec["backbone"], method=spec["method"], labels=list(SHAPES),
                                      task="clip-classification", **spec["options"]).to(device)  # fmt: skip
    shots = max(2, spec["batch"] // len(SHAPES))
    few_shot = builtin_dataset("shapes", "train", num_per_class=shots, image_size=spec["image"])
    validation = builtin_dataset("shapes", "validation", num_per_class=1, image_size=spec["image"], seed=1)
    reset_peak(device)
    started = time.perf_counter()
    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        fit(model, few_shot, validation)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {"step_seconds": seconds, "fit_seconds": seconds, "peak_memory_mb": peak_mb(device)}


def measure(spec: dict) -> dict:
    """A training step's measurement, or a fit's when ``spec['fit']``."""
    return measure_fit(spec) if spec.get("fit") else measure_step(spec)


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
