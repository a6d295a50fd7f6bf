"""Training checkpoints: the trainable state only (adapter and head), optimizer, schedule, RNG and data position.

A checkpoint is a folder ``<output_dir>/checkpoints/step-<N>/`` written atomically: it exists complete or not at all.
Resuming from it continues exactly where the run was, so a stopped-and-resumed run ends with the same weights as an
uninterrupted one. Tensors are saved with safetensors or ``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from adapterzoo.errors import CheckpointError
from adapterzoo.saving import atomic_directory, write_weights

STATE_NAME = "trainer_state.json"
TRAINABLE_NAME = "trainable.safetensors"
OPTIMIZER_NAME = "optimizer.pt"
RNG_NAME = "rng.pt"


@dataclass
class Progress:
    """Where a run is: finished optimizer steps, the epoch, how many of its micro-batches are consumed, the best."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    best_metric: float | None = None
    best_step: int | None = None


def capture_rng() -> dict[str, Any]:
    """The state of every random generator training draws from."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [name, torch.from_numpy(keys.copy()), position, has_gauss, cached_gaussian],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy(), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    output_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
    rng: dict[str, Any],
    config: dict[str, Any],
) -> Path:
    folder = output_dir / "checkpoints" / f"step-{progress.step:08d}"
    with atomic_directory(folder, marker=STATE_NAME) as staging:
        write_weights(staging / TRAINABLE_NAME, trainable_state(model))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, staging / OPTIMIZER_NAME)
        torch.save(rng, staging / RNG_NAME)
        (staging / STATE_NAME).write_text(json.dumps({"progress": asdict(progress), "config": config}, indent=2))
    return folder


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[Progress, dict[str, Any]]:
    """Load a checkpoint into the model (its trainable parameters), optimizer and scheduler; return progress and RNG."""
    if not (folder / STATE_NAME).is_file():
        raise CheckpointError(f"{folder} is not a training checkpoint ({STATE_NAME} is missing).")
    weights = load_file(folder / TRAINABLE_NAME)
    expected = trainable_state(model)
    if weights.keys() != expected.keys():
        missing, unexpected = sorted(expected.keys() - weights.keys()), sorted(weights.keys() - expected.keys())
        raise CheckpointError(
            f"{folder} was saved from another model: missing {missing[:3]}, unexpected {unexpected[:3]}."
        )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name])
    bundle = torch.load(folder / OPTIMIZER_NAME, weights_only=True)
    optimizer.load_state_dict(bundle["optimizer"])
    scheduler.load_state_dict(bundle["scheduler"])
    state = json.loads((folder / STATE_NAME).read_text())
    return Progress(**state["progress"]), torch.load(folder / RNG_NAME, weights_only=True)


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = sorted((output_dir / "checkpoints").glob("step-*/" + STATE_NAME))
    return found[-1].parent if found else None


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints."""
    found = sorted(p.parent for p in (output_dir / "checkpoints").glob("step-*/" + STATE_NAME))
    for folder in found[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)
