"""Training checkpoints: the trainable state only (adapter and head), optimizer, schedule, RNG and data position.

A checkpoint is a folder ``<output_dir>/checkpoints/step-<N>/`` written atomically (`adapterzoo.atomic_folder`): it
exists complete or not at all, and a damaged one is named, file and all, with the earlier ones that can be resumed
instead. Resuming from it continues exactly where the run was, so a stopped-and-resumed run ends with the same weights
as an uninterrupted one. Tensors are saved with safetensors or ``torch.save`` and read back with ``weights_only=True``.
"""

from __future__ import annotations

import io
import json
import random
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from adapterzoo.atomic_folder import atomic_directory, damaged_files
from adapterzoo.errors import CheckpointError
from adapterzoo.faults import fault_point
from adapterzoo.saving import write_weights

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


@contextmanager
def rng_untouched() -> Iterator[None]:
    """Run a block (evaluation) without moving any random generator training draws from: a run interrupted there
    and resumed then sees the very draws an uninterrupted run sees."""
    state = capture_rng()
    try:
        yield
    finally:
        restore_rng(state)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def _torch_bytes(value: Any) -> bytes:
    """``torch.save`` into memory, so that the file is written by Python (a full disk is then a plain ENOSPC)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def save_checkpoint(
    output_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: Progress,
    rng: dict[str, Any],
    config: dict[str, Any],
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Write a checkpoint of step ``progress.step``: the trainable weights, the optimizer's, scheduler's and (fp16) loss
    scaler's states, the RNG states, progress and config."""
    folder = output_dir / "checkpoints" / f"step-{progress.step:08d}"
    with atomic_directory(folder, marker=STATE_NAME) as staging:
        write_weights(staging / TRAINABLE_NAME, trainable_state(model))
        fault_point("checkpoint-write")
        optimizer_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        if scaler is not None:
            optimizer_state["scaler"] = scaler.state_dict()
        (staging / OPTIMIZER_NAME).write_bytes(_torch_bytes(optimizer_state))
        (staging / RNG_NAME).write_bytes(_torch_bytes(rng))
        (staging / STATE_NAME).write_text(json.dumps({"progress": asdict(progress), "config": config}, indent=2))
    return folder


def _checkpoints(output_dir: Path) -> list[Path]:
    return sorted(p.parent for p in (output_dir / "checkpoints").glob("step-*/" + STATE_NAME))


def _damaged(folder: Path, name: str, reason: str) -> CheckpointError:
    checkpoints = _checkpoints(folder.parent.parent)
    earlier = [p for p in checkpoints if p.name < folder.name and not damaged_files(p, STATE_NAME)]
    instead = f" Resume from {earlier[-1]} instead." if earlier else " No earlier checkpoint is intact."
    return CheckpointError(f"The checkpoint {folder} is damaged: {folder / name} {reason}.{instead}")


def load_checkpoint(
    folder: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[Progress, dict[str, Any]]:
    """Load a checkpoint into the model (its trainable parameters), optimizer, scheduler and (fp16, when the checkpoint
    has its state) loss scaler; return progress and RNG.

    A missing, truncated or unreadable file raises a `CheckpointError` naming it and the newest earlier intact
    checkpoint.
    """
    if not (folder / STATE_NAME).is_file():
        raise CheckpointError(f"{folder} is not a training checkpoint ({STATE_NAME} is missing).")
    if damaged := damaged_files(folder, STATE_NAME):
        raise _damaged(folder, damaged[0], "is missing, truncated or unreadable")
    try:
        state = json.loads((folder / STATE_NAME).read_text())
        progress = Progress(**state["progress"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(folder, STATE_NAME, f"cannot be read ({exc})") from exc
    try:
        weights = load_file(folder / TRAINABLE_NAME)
    except Exception as exc:  # safetensors raises its own error types for truncated and corrupt files
        raise _damaged(folder, TRAINABLE_NAME, f"cannot be read ({exc})") from exc
    expected = trainable_state(model)
    if weights.keys() != expected.keys():
        missing, unexpected = sorted(expected.keys() - weights.keys()), sorted(weights.keys() - expected.keys())
        raise CheckpointError(
            f"{folder} was saved from another model: missing {missing[:3]}, unexpected {unexpected[:3]}."
        )
    bundles = {}
    for name in (OPTIMIZER_NAME, RNG_NAME):
        try:
            bundles[name] = torch.load(folder / name, weights_only=True)
        except Exception as exc:  # torch.load raises RuntimeError, EOFError, UnpicklingError... for damaged files
            raise _damaged(folder, name, f"cannot be read ({type(exc).__name__}: {exc})") from exc
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name])
    optimizer.load_state_dict(bundles[OPTIMIZER_NAME]["optimizer"])
    scheduler.load_state_dict(bundles[OPTIMIZER_NAME]["scheduler"])
    if scaler is not None and "scaler" in bundles[OPTIMIZER_NAME]:
        scaler.load_state_dict(bundles[OPTIMIZER_NAME]["scaler"])
    return progress, bundles[RNG_NAME]


def latest_checkpoint(output_dir: Path) -> Path | None:
    found = _checkpoints(output_dir)
    return found[-1] if found else None


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` most recent checkpoints."""
    for folder in _checkpoints(output_dir)[:-keep]:
        shutil.rmtree(folder, ignore_errors=True)
