"""SSF-ADA, the method's one operator: y = γ ⊙ f(x) + β, with f the wrapped linear layer, convolution or norm and γ, β
one value per output channel (the last dimension; a convolution's channel dimension, 1), shared by every token.

It folds into f's own weights (`SSFLayer.fold`): weight' = diag(γ) weight, bias' = γ ⊙ bias + β, for a linear
layer, a convolution (its output channels) and a norm's affine alike.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.tuners import WrappingLayer

from .config import SSFConfig


def output_channels(module: nn.Module) -> tuple[int, int]:
    """(channels, channel dimension) of ``module``'s output; a module of any other kind is refused."""
    if isinstance(module, nn.Linear):
        return module.out_features, -1
    if isinstance(module, nn.Conv2d):
        return module.out_channels, 1
    if isinstance(module, nn.LayerNorm) and module.weight is not None:
        return module.normalized_shape[-1], -1
    raise UnsupportedBackboneError(
        f"Method 'ssf' scales and shifts the outputs of linear layers, convolutions and affine LayerNorms, "
        f"not of a {type(module).__name__}.",
        reason="SSF acts only after linear layers, convolutions and affine LayerNorms",
    )


class SSFLayer(WrappingLayer):
    """Wraps one linear layer, convolution or norm and scales and shifts its output channels (parameters per adapter:
    ``ssf_scale`` and ``ssf_shift``, one value per channel each)."""

    adapter_layer_names = ("ssf_scale", "ssf_shift")

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: SSFConfig):
        super().__init__(base_layer)
        self.channels, self.channel_dim = output_channels(base_layer)
        self.ssf_scale = nn.ParameterDict()
        self.ssf_shift = nn.ParameterDict()
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: SSFConfig) -> None:
        self.ssf_scale[adapter_name] = nn.Parameter(torch.empty(self.channels).normal_(1.0, config.init_std))
        self.ssf_shift[adapter_name] = nn.Parameter(torch.empty(self.channels).normal_(0.0, config.init_std))

    def along_channels(self, values: torch.Tensor, ndim: int) -> torch.Tensor:
        """``values`` (one per channel) shaped to broadcast over an ``ndim``-dimensional output (or weight)."""
        if self.channel_dim == -1:
            return values
        return values.view(-1, *[1] * (ndim - 2))

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        output = self.base_layer(x, *args, **kwargs)
        adapter = self.active_adapter_here()
        if adapter is None:
            return output
        scale, shift = self.ssf_scale[adapter], self.ssf_shift[adapter]
        return output * self.along_channels(scale, output.ndim) + self.along_channels(shift, output.ndim)

    def merge_blocker(self, adapter_name: str) -> str | None:
        if adapter_name in self.served:
            base = self.get_base_layer()
            if base.bias is None:
                # Adding a bias would compute the right thing, but the merged model would no longer be its
                # architecture: saved and loaded as such, the new bias (the shift) would be silently dropped.
                return (
                    f"SSF's shift folds into a bias, and this {type(base).__name__} has none (its architecture "
                    "defines it without one, so a bias added here would be lost when the merged model is saved)"
                )
            if not self.ssf_scale[adapter_name].all():
                return "a zero scale cannot be unfolded"
        return super().merge_blocker(adapter_name)

    def fold(self, adapter_name: str) -> None:
        base = self.get_base_layer()
        scale, shift = self.ssf_scale[adapter_name].detach(), self.ssf_shift[adapter_name].detach()
        base.weight.data *= self._weight_scale(scale, base.weight)
        base.bias.data = base.bias.data * scale + shift

    def unfold(self, adapter_name: str) -> None:
        base = self.get_base_layer()
        scale, shift = self.ssf_scale[adapter_name].detach(), self.ssf_shift[adapter_name].detach()
        base.weight.data /= self._weight_scale(scale, base.weight)
        base.bias.data = (base.bias.data - shift) / scale

    @staticmethod
    def _weight_scale(scale: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``scale`` along the output axis of ``weight`` (a linear's or convolution's first axis; a norm's only)."""
        return scale.view(-1, *[1] * (weight.ndim - 1))
