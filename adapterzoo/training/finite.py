"""Stopping, or skipping the update, on a NaN or infinite loss or gradient, before it reaches the weights."""

from __future__ import annotations

import math

import torch
from accelerate import Accelerator

from adapterzoo.errors import NonFiniteError


class FiniteGuard:
    """Checks each micro-batch's loss, and the gradients' norm when they are clipped, before the update they feed.

    ``mode="stop"`` raises `NonFiniteError` naming the step, the learning rate and the last finite loss; the update is
    not made and nothing is saved after it, so the newest checkpoint stays the last good one. ``mode="skip"`` leaves
    the update out and counts it, as mixed-precision loss scalers do. Across processes the value is averaged first,
    so every process takes the same decision.
    """

    def __init__(self, accelerator: Accelerator, mode: str):
        self.accelerator = accelerator
        self.mode = mode
        self.last_finite_loss: float | None = None
        self.skipped_updates = 0

    def finite(self, value: torch.Tensor, what: str, *, step: int, lr: float) -> bool:
        """Whether ``value`` (a loss or a gradient norm at optimizer step ``step``) is finite; see the class."""
        value = value.detach().float()
        if self.accelerator.num_processes > 1:
            value = self.accelerator.reduce(value, reduction="mean")
        number = value.item()
        if math.isfinite(number):
            if what == "loss":
                self.last_finite_loss = number
            return True
        if self.mode == "skip":
            self.skipped_updates += 1
            return False
        last = "none yet" if self.last_finite_loss is None else f"{self.last_finite_loss:.6g}"
        raise NonFiniteError(
            f"The {what} is {number} at step {step} (learning rate {lr:g}); the last finite loss was {last}. "
            "Training stopped before this update, and nothing was saved after it: lower the learning rate (or "
            "clip gradients with max_grad_norm) and resume from the last checkpoint with resume_from='latest', or "
            "pass nonfinite='skip' to leave such updates out."
        )
