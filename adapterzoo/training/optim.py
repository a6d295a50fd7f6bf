"""Optimizer and learning-rate schedule from a `TrainingConfig`: only trainable parameters reach the optimizer."""

from __future__ import annotations

import math

import torch
from torch import nn

from adapterzoo.training.config import TrainingConfig


def learning_rate(config: TrainingConfig, total_batch_size: int) -> float:
    """``lr`` if set, else ``base_lr`` scaled linearly by the total batch size over 256 (VPT's rule)."""
    if config.lr is not None:
        return config.lr
    if config.base_lr is not None:
        return config.base_lr * total_batch_size / 256
    raise ValueError("Set lr (or base_lr, scaled by the batch size); the method's recipe sets neither.")


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The parameters that train, by name; an error that says why when there are none."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError(
            "The model has no trainable parameters: its method trains nothing (zero-shot), or it was loaded without "
            "is_trainable=True."
        )
    return trainable


def build_optimizer(model: nn.Module, config: TrainingConfig, lr: float) -> torch.optim.Optimizer:
    """An optimizer over the trainable parameters; biases and other 1-D parameters (norms) get no weight decay."""
    trainable = trainable_parameters(model)
    groups = [
        {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum)
    return torch.optim.AdamW(groups, lr=lr)


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainingConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Warmup (a linear ramp, or ``warmup_lr`` held constant), then cosine, linear or constant decay."""
    warmup = config.warmup_steps if config.warmup_steps is not None else round(config.warmup_ratio * total_steps)
    base_lrs = [group["lr"] for group in optimizer.param_groups]

    def factor(step: int) -> float:
        if step < warmup:
            return config.warmup_lr / base_lrs[0] if config.warmup_lr is not None else (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        if config.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        if config.scheduler == "linear":
            return max(0.0, 1 - progress)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
