"""Where AdaptFormer works: `AdaptFormerBlock` wraps a whole transformer block.

The branch reads x', the block's residual stream after attention, which HF blocks hand to no submodule but the norm
before the MLP; the block's output, x' + MLP(LN(x')) after any layer scale and drop path, is where the branch's output
is added, as the reference adds it (``models/custom_modules.py``, ``Block.forward``): so the wrapper captures the
norm's input during the block's own forward and adds s·up(dropout(ReLU(down(x')))) to what the block returns.
The norm's pre-hook is registered once, when the wrapper is made, and records only while the wrapper's forward asks
it to: registering a hook inside the forward would be a graph break for TorchDynamo (`torch.compile`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from adapterzoo.backbones import mlp_norm
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.tuners import WrappingLayer

from .config import AdaptFormerConfig


def branch(width: int, config: AdaptFormerConfig) -> nn.ModuleDict:
    """One adapter's modules: ``down`` (d -> r) and ``up`` (r -> d), with the reference's "lora" init (``down``'s
    weight Kaiming-uniform with a = √5, every other tensor zero, so the branch starts at exactly zero), and ``norm``
    with the ``layernorm`` option."""
    modules = nn.ModuleDict({"down": nn.Linear(width, config.bottleneck), "up": nn.Linear(config.bottleneck, width)})
    with torch.no_grad():
        nn.init.kaiming_uniform_(modules["down"].weight, a=math.sqrt(5))
        nn.init.zeros_(modules["down"].bias)
        nn.init.zeros_(modules["up"].weight)
        nn.init.zeros_(modules["up"].bias)
    if config.layernorm:
        modules["norm"] = nn.LayerNorm(width)
    return modules


class AdaptFormerBlock(WrappingLayer):
    """Wraps one transformer block and adds its AdaptFormer branch to the block's output (per adapter:
    ``adaptformer_branch``, see `branch`; ``adaptformer_scale`` and ``adaptformer_dropout``, plain numbers)."""

    adapter_layer_names = ("adaptformer_branch",)
    other_param_names = ("adaptformer_scale", "adaptformer_dropout")
    merge_refusal = "AdaptFormer's branch is nonlinear (a ReLU between its projections): no weights can absorb it"

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: AdaptFormerConfig):
        super().__init__(base_layer)
        self.norm_name = mlp_norm(base_layer)
        norm = getattr(base_layer, self.norm_name, None) if self.norm_name else None
        if not isinstance(norm, nn.LayerNorm):
            raise UnsupportedBackboneError(
                f"Method 'adaptformer' reads the input of the LayerNorm before each block's MLP; a "
                f"{type(base_layer).__name__} has none.",
                reason="AdaptFormer needs a LayerNorm before each block's MLP",
            )
        self.width = norm.normalized_shape[-1]
        self._norm_inputs: list[torch.Tensor] | None = None
        norm.register_forward_pre_hook(self._record_norm_input)
        self.adaptformer_branch = nn.ModuleDict()
        self.adaptformer_scale: dict[str, float] = {}
        self.adaptformer_dropout: dict[str, float] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: AdaptFormerConfig) -> None:
        self.adaptformer_branch[adapter_name] = branch(self.width, config)
        self.adaptformer_scale[adapter_name] = config.scale
        self.adaptformer_dropout[adapter_name] = config.dropout

    def delta(self, adapter_name: str, x: torch.Tensor) -> torch.Tensor:
        """The branch's output for the residual stream ``x``: s·up(dropout(ReLU(down(x))))."""
        modules = self.adaptformer_branch[adapter_name]
        if "norm" in modules:
            x = modules["norm"](x)
        hidden = F.dropout(F.relu(modules["down"](x)), self.adaptformer_dropout[adapter_name], self.training)
        return modules["up"](hidden) * self.adaptformer_scale[adapter_name]

    def _record_norm_input(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if self._norm_inputs is not None:
            self._norm_inputs.append(inputs[0])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        adapter = self.active_adapter_here()
        if adapter is None:
            return self.base_layer(*args, **kwargs)
        self._norm_inputs = []
        try:
            output = self.base_layer(*args, **kwargs)
            captured = self._norm_inputs[0]
        finally:
            self._norm_inputs = None
        delta = self.delta(adapter, captured)
        if isinstance(output, tuple):  # blocks that return (hidden_states, attention weights), Swin's
            return (output[0] + delta, *output[1:])
        return output + delta
