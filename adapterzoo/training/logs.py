"""Run logs: the console, a JSON-lines file, and TensorBoard when it is installed (a notice says when it is not);
the main process only."""

from __future__ import annotations

import json
import time
from functools import cache
from numbers import Number
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from adapterzoo.environment import install_hint

LOG_NAME = "log.jsonl"


class RunLogger:
    """Writes each record as one JSON line of ``<output_dir>/log.jsonl`` and its numbers to TensorBoard."""

    def __init__(self, output_dir: Path, *, enabled: bool):
        self.enabled = enabled
        self.path = output_dir / LOG_NAME
        self.tensorboard = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional
            tensorboard_missing()
            return
        self.tensorboard = SummaryWriter(str(output_dir / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"time": round(time.time(), 3), **record}, default=str) + "\n")
        if self.tensorboard is not None and "step" in record:
            for key, value in record.items():
                if isinstance(value, Number) and key not in ("step", "epoch"):
                    self.tensorboard.add_scalar(key.replace("eval_", "eval/"), value, record["step"])

    def console(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


@cache
def tensorboard_missing() -> None:
    """Say that TensorBoard logging is off and how to turn it on: once per process, not once per run."""
    tqdm.write(f"TensorBoard logging is off: tensorboard is not installed ({install_hint('tensorboard')}).")
