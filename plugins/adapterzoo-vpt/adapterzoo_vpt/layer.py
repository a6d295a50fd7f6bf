"""Where VPT's prompts go.

`VPTEmbeddings` wraps the patch embeddings and inserts the prompts right after the prefix tokens, after the position
embeddings were added, so prompts carry none: ``[CLS, P_1..P_m, patches]``. `VPTEncoderLayer` wraps each encoder
layer: in VPT-deep, layers 1..L-1 first *replace* the prompt slots with their own prompts (the previous layer's prompt
outputs are discarded); the last layer removes the prompt slots from its output, so the head sees the backbone's own
token layout and pools CLS, never a prompt. Both keep the frozen backbone in eval mode, as the reference does.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from adapterzoo.backbones import BackboneParts
from adapterzoo.tuners import WrappingLayer

from .config import VPTConfig


def insert_tokens(tokens: torch.Tensor, new: torch.Tensor, at: int) -> torch.Tensor:
    return torch.cat([tokens[:, :at], new.to(tokens.dtype), tokens[:, at:]], dim=1)


def replace_tokens(tokens: torch.Tensor, new: torch.Tensor, at: int) -> torch.Tensor:
    return torch.cat([tokens[:, :at], new.to(tokens.dtype), tokens[:, at + new.shape[1] :]], dim=1)


def remove_tokens(tokens: torch.Tensor, count: int, at: int) -> torch.Tensor:
    return torch.cat([tokens[:, :at], tokens[:, at + count :]], dim=1)


class VPTLayer(WrappingLayer):
    """What both VPT wrappers share: the prompt counts per adapter, and a frozen backbone kept in eval mode."""

    other_param_names = ("vpt_num_tokens",)
    merge_refusal = "VPT adds prompt tokens to the sequence; there are no weights to fold them into."

    def __init__(self, base_layer: nn.Module):
        super().__init__(base_layer)
        self.vpt_num_tokens: dict[str, int] = {}

    def create_adapter(self, adapter_name: str, config: VPTConfig) -> None:
        self.vpt_num_tokens[adapter_name] = config.num_tokens

    def train(self, mode: bool = True) -> VPTLayer:
        # The reference's train() keeps the frozen embeddings and encoder in eval mode: no dropout in the backbone
        # while the prompts (and their dropout) train.
        super().train(mode)
        self.base_layer.train(False)
        return self


class VPTEmbeddings(VPTLayer):
    """Wraps the patch embeddings, inserts the prompts after the prefix tokens, and holds all VPT parameters.

    Parameters per adapter (d = hidden size, p = ``projection_dim`` or d, L = layers, m = ``num_tokens``):
    ``vpt_prompts`` (1, m, p), in VPT-deep ``vpt_deep_prompts`` (L-1, m, p), and ``vpt_projection`` (Linear(p, d),
    or Identity). Prompts are drawn from uniform(-v, v) with v = sqrt(6 / (channels * patch^2 + p)): Xavier-uniform
    with the patch's pixel count as fan-in, 0.0625 for ViT-B/16.
    """

    adapter_layer_names = ("vpt_prompts", "vpt_deep_prompts", "vpt_projection")
    other_param_names = ("vpt_num_tokens", "vpt_dropout")

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: VPTConfig, parts: BackboneParts):
        super().__init__(base_layer)
        self.num_prefix_tokens = parts.num_prefix_tokens
        self.hidden_size = parts.hidden_size
        self.num_layers = parts.num_layers
        self.patch_pixels = parts.num_channels * parts.patch_size**2
        self.vpt_prompts = nn.ParameterDict()
        self.vpt_deep_prompts = nn.ParameterDict()
        self.vpt_projection = nn.ModuleDict()
        self.vpt_dropout = nn.ModuleDict()
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: VPTConfig) -> None:
        super().create_adapter(adapter_name, config)
        width = config.projection_dim or self.hidden_size
        bound = math.sqrt(6.0 / (self.patch_pixels + width))
        shallow = torch.empty(1, config.num_tokens, width).uniform_(-bound, bound)
        self.vpt_prompts[adapter_name] = nn.Parameter(shallow)
        if config.deep:
            deep = torch.empty(self.num_layers - 1, config.num_tokens, width).uniform_(-bound, bound)
            self.vpt_deep_prompts[adapter_name] = nn.Parameter(deep)
        if config.projection_dim:
            projection = nn.Linear(width, self.hidden_size)
            nn.init.kaiming_normal_(projection.weight, a=0, mode="fan_out")
        else:
            projection = nn.Identity()
        self.vpt_projection[adapter_name] = projection
        self.vpt_dropout[adapter_name] = nn.Dropout(config.dropout)

    def prompts(self, adapter_name: str, layer_index: int, batch_size: int) -> torch.Tensor | None:
        """The (batch, m, d) prompts entering layer ``layer_index``, or None where the layer keeps the previous ones.

        Dropout is applied after expanding to the batch, so every sample gets its own mask, as in the reference.
        """
        if layer_index == 0:
            raw = self.vpt_prompts[adapter_name]
        elif adapter_name in self.vpt_deep_prompts:
            raw = self.vpt_deep_prompts[adapter_name][layer_index - 1 : layer_index]
        else:
            return None
        projected = self.vpt_projection[adapter_name](raw)
        return self.vpt_dropout[adapter_name](projected.expand(batch_size, -1, -1))

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        tokens = self.base_layer(*args, **kwargs)
        adapter = self.active_adapter_here()
        if adapter is None:
            return tokens
        return insert_tokens(tokens, self.prompts(adapter, 0, tokens.shape[0]), at=self.num_prefix_tokens)


class VPTEncoderLayer(VPTLayer):
    """Wraps encoder layer ``index``: replaces the prompt slots before it (VPT-deep, index > 0) and, in the last
    layer, removes them after it. It holds no parameters: the prompts live in `VPTEmbeddings`."""

    adapter_layer_names = ()

    def __init__(
        self,
        base_layer: nn.Module,
        adapter_name: str,
        config: VPTConfig,
        *,
        prompt_source: VPTEmbeddings,
        index: int,
        is_last: bool,
    ):
        super().__init__(base_layer)
        self.index = index
        self.is_last = is_last
        # A plain reference, not a submodule: the prompts are registered (and saved) once, in VPTEmbeddings.
        object.__setattr__(self, "prompt_source", prompt_source)
        self.update_layer(adapter_name, config)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        adapter = self.active_adapter_here()
        if adapter is None:
            return self.base_layer(hidden_states, *args, **kwargs)
        at = self.prompt_source.num_prefix_tokens
        prompts = self.prompt_source.prompts(adapter, self.index, hidden_states.shape[0]) if self.index else None
        if prompts is not None:
            hidden_states = replace_tokens(hidden_states, prompts, at)
        output = self.base_layer(hidden_states, *args, **kwargs)
        if not self.is_last:
            return output
        if isinstance(output, tuple):  # transformers releases whose layers return (hidden_states, ...)
            return (remove_tokens(output[0], self.vpt_num_tokens[adapter], at), *output[1:])
        return remove_tokens(output, self.vpt_num_tokens[adapter], at)
