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
    means = _class_means(x, labels, num_classes)
    centred = x - means[labels]
    n, dim = x.shape
    covariance = torch.cov(centred.T)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    precision = dim * torch.linalg.pinv((n - 1) * covariance + covariance.trace() * eye)
    return _discriminant(means, precision, num_classes)


def gda_base_head(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The base-to-novel variant's head of the fitted classes (main_base2new.py): as `gda_head`, with the precision
    pinv(mean over classes of each class's covariance), unshrunk."""
    x = features.double()
    means = _class_means(x, labels, num_classes)
    covariances = torch.stack([torch.cov(x[labels == k].T) for k in range(num_classes)])
    return _discriminant(means, torch.linalg.pinv(covariances.mean(0)), num_classes)


def gda_novel_head(
    samples: torch.Tensor, text: torch.Tensor, neighbours: int, copies: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The base-to-novel variant's head of classes never fitted, one per row of ``text`` (their normalised text
    features), synthesised from the fitted ``samples`` (main_base2new.py). For each text feature w: V, the
    ``neighbours`` samples of largest w·v; the class mean is the mean of V and ``copies`` copies of w; the KS precision
    around w is D·pinv((k−1)S_w + tr(S_w)I), S_w = (V−w)ᵀ(V−w)/(k−1). The precisions are averaged over the rows; the
    prior is uniform over ``num_classes`` (all the current classes)."""
    x, w = samples.double(), text.double()
    dim = x.shape[1]
    nearest = x[(w @ x.T).topk(neighbours, dim=1).indices]  # (rows, k, dim)
    means = (nearest.sum(1) + copies * w) / (neighbours + copies)
    eye = torch.eye(dim, dtype=x.dtype, device=x.device)
    precision = torch.zeros_like(eye)
    # One D×D at a time: a batch of ImageNet's 500 new classes would take a gigabyte at D = 512.
    for row, neighbourhood in zip(w, nearest, strict=True):
        offsets = neighbourhood - row
        scatter = offsets.T @ offsets  # (k−1)·S_w
        precision += dim * torch.linalg.pinv(scatter + scatter.trace() / (neighbours - 1) * eye)
    return _discriminant(means, precision / len(w), num_classes)


def _class_means(x: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.stack([x[labels == k].mean(0) for k in range(num_classes)])


def _discriminant(means: torch.Tensor, precision: torch.Tensor, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """W = P μᵀ and b_k = log(1/num_classes) − ½ μ_k P μ_kᵀ, in float32."""
    weight = precision @ means.T
    prior = torch.log(torch.tensor(1.0 / num_classes, dtype=means.dtype))
    bias = prior - 0.5 * ((means @ precision) * means).sum(-1)
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
