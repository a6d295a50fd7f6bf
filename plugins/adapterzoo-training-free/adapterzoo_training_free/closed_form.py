"""The closed forms: GDA's linear head and Tip-Adapter's cache, from normalised features and class ids."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F


def gda_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GDA's W (dim, classes) and b (classes): class means μ, the shared covariance Σ̂ of the centred features
    (divisor n−1), the precision P = D·pinv((n−1)Σ̂ + tr(Σ̂)I), W = P μᵀ and b_k = log(1/N) − ½ μ_k P μ_kᵀ.
    Computed in float64 (the reference computes the statistics in fp32 at least)."""
    x = features.double()
    means = torch.stack([x[labels == k].mean(0) for k in range(num_classes)])
    centred = x - means[labels]
    n, dim = x.shape
    covariance = torch.cov(centred.T)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    precision = dim * torch.linalg.pinv((n - 1) * covariance + covariance.trace() * eye)
    weight = precision @ means.T
    bias = torch.log(torch.tensor(1.0 / num_classes, dtype=x.dtype)) - 0.5 * ((means @ precision) * means).sum(-1)
    return weight.float(), bias.float()


def tip_cache(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tip-Adapter's keys (the L2-normalised features, one row per few-shot example) and one-hot values."""
    return F.normalize(features.float(), dim=-1), F.one_hot(labels, num_classes).float()


def tip_logits(features: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float) -> torch.Tensor:
    """The cache branch before α: exp(−β(1 − f Fᵀ)) L."""
    return torch.exp(-beta * (1 - features @ keys.T)) @ values


def grid(scale: float, steps: int) -> list[float]:
    """The reference's search grid: 0.1 + i·(scale − 0.1)/steps for i < steps."""
    return [0.1 + i * (scale - 0.1) / steps for i in range(steps)]


def best(candidates: Iterable[tuple[Any, torch.Tensor]], base_logits: torch.Tensor, labels: torch.Tensor) -> Any:
    """The key of the (key, extra logits) pair whose ``base_logits + extra`` is most accurate, the first on ties
    (a generator keeps one candidate's logits in memory at a time)."""
    chosen, top = None, -1.0
    for key, extra in candidates:
        score = ((base_logits + extra).argmax(-1) == labels).float().mean().item()
        if score > top:
            chosen, top = key, score
    return chosen
