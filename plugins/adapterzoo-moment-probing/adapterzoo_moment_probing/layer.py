"""Where Moment Probing works.

`MomentProbingHead` replaces the task model's head with the MP head (`MomentProbing`): first-order logits from the CLS
token, second-order logits from cross-covariances of groups of projected patch tokens, averaged. For MP+, `PSRPMLP`
wraps each block's MLP and recalibrates its output to b(x) + (1 + w(x)) * MLP(LN(x)), x being the MLP's residual
input (the core's `MLPInput` on the norm before the MLP hands it over); one down-projection feeds both w and b.
"""

from __future__ import annotations

from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from adapterzoo.tuners import MLPBranchLayer, WrappingLayer

from .config import MomentProbingConfig


def _trunc_normal_linear(in_features: int, out_features: int, bias: bool = True) -> nn.Linear:
    """A linear layer initialised as timm's ``init_weights`` does: trunc-normal(0.02) weight, zero bias."""
    linear = nn.Linear(in_features, out_features, bias=bias)
    nn.init.trunc_normal_(linear.weight, std=0.02)
    if bias:
        nn.init.zeros_(linear.bias)
    return linear


def group_pairs(cross_type: str, num_heads: int) -> list[tuple[int, int]]:
    """The channel groups whose cross-covariance MP takes: adjacent, opposite halves, or all pairs."""
    if cross_type == "near":
        return [(i, i + 1) for i in range(num_heads - 1)]
    if cross_type == "n/2":
        return [(i, i + num_heads // 2) for i in range(num_heads // 2)]
    return list(combinations(range(num_heads), 2))


def strided_side(size: int) -> int:
    """The side of a square map after two 3x3 convolutions of stride 2 without padding (128 -> 63 -> 31)."""
    for _ in range(2):
        size = (size - 3) // 2 + 1
    return size


class MomentProbing(nn.Module):
    """The MP head. ``forward`` takes the final token sequence (prefix tokens, CLS first, then patches) and returns
    class logits."""

    def __init__(self, hidden_size: int, num_labels: int, num_prefix_tokens: int, config: MomentProbingConfig):
        super().__init__()
        group = config.hidden_dim // config.num_heads
        self.num_heads = config.num_heads
        self.num_prefix_tokens = num_prefix_tokens
        self.pairs = group_pairs(config.cross_type, config.num_heads)
        self.normalise = config.cross_type != "cn2"  # the reference leaves cn2's matrices unnormalised
        self.per_channel_mean = config.mean_removal == "channel"
        self.proj = _trunc_normal_linear(hidden_size, config.hidden_dim)
        self.norm = nn.LayerNorm(group)
        channels = len(self.pairs)
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, bias=False),
            nn.GELU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, bias=False),
        )
        self.classifier1 = _trunc_normal_linear(hidden_size, num_labels)
        self.classifier2 = _trunc_normal_linear(channels * strided_side(group) ** 2, num_labels)

    def cross_covariance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """(1/N) a^T b of two (B, N, g) groups after mean removal: one mean per sample (reference) or per channel."""
        dims = 1 if self.per_channel_mean else (1, 2)
        a, b = a - a.mean(dim=dims, keepdim=True), b - b.mean(dim=dims, keepdim=True)
        return a.transpose(1, 2) @ b / a.shape[1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.num_prefix_tokens :]
        # The first-order statistic: CLS, or the mean token of a backbone without one (SigLIP, Swin).
        cls = tokens[:, 0] if self.num_prefix_tokens else patches.mean(dim=1)
        z = self.proj(patches)
        batch, count, width = z.shape
        groups = z.reshape(batch, count, self.num_heads, width // self.num_heads).permute(2, 0, 1, 3)
        normed = [self.norm(group) for group in groups]
        matrices = torch.stack([self.cross_covariance(normed[i], normed[j]) for i, j in self.pairs], dim=1)
        if self.normalise:
            matrices = F.normalize(matrices, dim=2)  # every column of every matrix to unit norm
        second_order = self.classifier2(self.convs(matrices).flatten(1))
        return (self.classifier1(cls) + second_order) / 2


class PSRP(nn.Module):
    """Partially shared recalibration: w, b = up_w(relu(down(x))), up_b(relu(down(x))), one shared down-projection."""

    def __init__(self, hidden_size: int, reduction: int):
        super().__init__()
        self.down = _trunc_normal_linear(hidden_size, reduction, bias=False)
        self.up_weight = _trunc_normal_linear(reduction, hidden_size, bias=False)
        self.up_bias = _trunc_normal_linear(reduction, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = F.relu(self.down(x))
        return self.up_weight(hidden), self.up_bias(hidden)


MERGE_REFUSAL = "Moment Probing's head and PSRP depend on the input; there is nothing to fold."


class MomentProbingHead(WrappingLayer):
    """Replaces the task model's head with the MP head while an MP adapter is active."""

    adapter_layer_names = ("mp_head",)
    merge_refusal = MERGE_REFUSAL

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: MomentProbingConfig, *, hidden_size: int,
                 num_prefix_tokens: int):  # fmt: skip
        super().__init__(base_layer)
        self.hidden_size = hidden_size
        self.num_prefix_tokens = num_prefix_tokens
        self.mp_head = nn.ModuleDict()
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: MomentProbingConfig) -> None:
        num_labels = self.base_layer.out_features
        self.mp_head[adapter_name] = MomentProbing(self.hidden_size, num_labels, self.num_prefix_tokens, config)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        adapter = self.active_adapter_here()
        return self.base_layer(tokens) if adapter is None else self.mp_head[adapter](tokens)


class PSRPMLP(MLPBranchLayer):
    """Wraps a block's MLP: returns b(x) + (1 + w(x)) * MLP(LN(x)), with x the MLP's residual input."""

    adapter_layer_names = ("mp_psrp",)
    merge_refusal = MERGE_REFUSAL

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: MomentProbingConfig, *, hidden_size: int,
                 block: nn.Module):  # fmt: skip
        super().__init__(base_layer, block=block)
        self.hidden_size = hidden_size
        self.mp_psrp = nn.ModuleDict()
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: MomentProbingConfig) -> None:
        self.mp_psrp[adapter_name] = PSRP(self.hidden_size, config.psrp_reduction)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        output = self.base_layer(hidden)
        adapter = self.active_adapter_here()
        if adapter is None:
            return output
        weight, bias = self.mp_psrp[adapter](self.residual_input())
        return bias + (1 + weight) * output
