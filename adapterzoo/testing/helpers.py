"""What method tests feed a model and do to it: class labels, reproducible images, and adapters moved off their
initialisation. Plain torch, no pytest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from adapterzoo.testing.backbones import TINY_SIZES

LABELS = ("cat", "dog", "bird")
"""Three class labels, the tests' default task."""


def images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Reproducible noise images of the tiny backbones' size: (batch, 3, size, size)."""
    size = TINY_SIZES["image_size"]
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def separable_images(labels: torch.Tensor, seed: int = 1) -> torch.Tensor:
    """Noisy images whose brightness gives their label away, so any method that learns can fit them (random noise
    alone is nearly one point for a random tiny CLIP, and no text-side prompt could tell its images apart)."""
    brightness = (labels.float() - labels.float().mean()).view(-1, 1, 1, 1)
    return 0.2 * images(len(labels), seed=seed) + 1.5 * brightness


def perturb_trainable(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    """Move every trainable parameter away from its initialisation, reproducibly.

    Many adapters start as the identity (LoRA's B = 0), which would make an "equal outputs" check pass for the wrong
    reason.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator, dtype=param.dtype) * scale)


def adam_losses(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    labels: torch.Tensor,
    steps: int,
    call: Callable[..., Any] | None = None,
    until: Callable[[list[float]], bool] | None = None,
) -> list[float]:
    """The losses of ``steps`` Adam steps (lr 1e-2) on ``model``'s trainable parameters, each forward through
    ``call`` (default: the model; a compiled model, or a function that runs it under autocast); with ``until``, fewer
    when ``until(losses)`` holds first (a check that the loss falls within ``steps`` stops when it has)."""
    call = model if call is None else call
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = call(pixel_values, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if until is not None and until(losses):
            break
    return losses


def fell_below(fraction: float) -> Callable[[list[float]], bool]:
    """``until`` for `adam_losses`: the last loss is below ``fraction`` of the first."""
    return lambda losses: losses[-1] < fraction * losses[0]
