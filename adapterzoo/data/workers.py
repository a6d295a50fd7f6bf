"""How many processes load data, and the `DataLoader` options that keep an accelerator fed.

``num_workers="auto"`` feeding an accelerator takes every CPU this process may use but one (the one that drives the
device), at most 8. Training on the CPU it is 0: the step's threads already use every core, and workers would only
take cores from it. Workers decode, augment and preprocess images; they are persistent (started once per loader, not
every epoch) and, on CUDA, put batches in pinned memory so that copies to the device overlap compute.
"""

from __future__ import annotations

import os
from typing import Any

import torch

MAX_AUTO_WORKERS = 8


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def resolve_workers(num_workers: int | str, device: torch.device) -> int:
    """``num_workers`` as a count for loading onto ``device``: an int stays; ``"auto"`` is 0 on the CPU, else every
    available CPU but one, at most 8."""
    if num_workers != "auto":
        return int(num_workers)
    if device.type == "cpu":
        return 0
    return max(0, min(MAX_AUTO_WORKERS, available_cpus() - 1))


def loader_options(num_workers: int | str, device: torch.device) -> dict[str, Any]:
    """`DataLoader` keyword arguments for ``num_workers`` loading onto ``device``."""
    workers = resolve_workers(num_workers, device)
    return {"num_workers": workers, "persistent_workers": workers > 0, "pin_memory": device.type == "cuda"}
