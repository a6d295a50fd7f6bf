"""Where DVPT works.

`DVPTEmbeddings` wraps the patch embeddings and prepends m prompts, each with its own learnable position embedding:
``[P_1..P_m, CLS, patches]``. It also holds the DVPT modules. `DVPTMLP` wraps each block's MLP and adds the module's
output, computed from the MLP's residual input x, in parallel with the MLP: ``x + MLP(LN(x)) + Δ(x)``. `DVPTHead`
replaces the head: a linear layer on the mean of the final (normalised) prompt and CLS tokens.

The module (`DVPTModule`), with h = act(W_down x) of width r:

    q  = h[:, :m]                         (or act(W_down P), the learnable prompts: queries="static")
    kv = h[:, m+1:]                       (patch tokens; h[:, m:] with keys_include_cls)
    o  = softmax(q kvᵀ / √d) kv           (/ √r with scale="r")
    Δ  = gate · W_up([o, h[:, m:]])       (the prompt slots carry o; with output_tokens="prompts" only they get Δ)

The gate starts at zero, so a fresh DVPT model computes what the backbone computes with the prompts prepended.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from adapterzoo.backbones import BackboneParts
from adapterzoo.tuners import MLPBranchLayer, WrappingLayer

from .config import DVPTConfig

MERGE_REFUSAL = "DVPT adds prompt tokens and input-dependent attention; there are no weights to fold them into."


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class DVPTModule(nn.Module):
    """One DVPT module (see the module docstring); shared by ``share_every`` consecutive blocks."""

    def __init__(self, hidden_size: int, config: DVPTConfig, num_prefix_tokens: int):
        super().__init__()
        self.down = nn.Linear(hidden_size, config.bottleneck)
        self.up = nn.Linear(config.bottleneck, hidden_size)
        self.gate = nn.Parameter(torch.zeros(1))
        self.activation = quick_gelu if config.activation == "quick_gelu" else F.gelu
        self.num_prompts = config.num_prompts
        self.first_key = config.num_prompts + (0 if config.keys_include_cls else num_prefix_tokens)
        self.static_queries = config.queries == "static"
        self.prompts_only = config.output_tokens == "prompts"
        self.scale = (hidden_size if config.scale == "d" else config.bottleneck) ** -0.5

    def forward(self, x: torch.Tensor, prompts: torch.Tensor) -> torch.Tensor:
        """Δ for the residual stream ``x`` (B, m + prefix + N, d); ``prompts`` are the (1, m, d) prompt tokens."""
        m = self.num_prompts
        h = self.activation(self.down(x))
        queries = self.activation(self.down(prompts)).expand(x.shape[0], -1, -1) if self.static_queries else h[:, :m]
        keys = h[:, self.first_key :]
        attended = torch.softmax(queries @ keys.transpose(1, 2) * self.scale, dim=-1) @ keys
        delta = self.gate * self.up(torch.cat([attended, h[:, m:]], dim=1))
        if self.prompts_only:
            delta = torch.cat([delta[:, :m], torch.zeros_like(delta[:, m:])], dim=1)
        return delta


class DVPTLayer(WrappingLayer):
    merge_refusal = MERGE_REFUSAL


class DVPTEmbeddings(DVPTLayer):
    """Wraps the patch embeddings, prepends the prompts (with their position embeddings) and holds the DVPT modules.

    Per adapter: ``dvpt_prompts`` (1, m, d) drawn from N(0, 1), ``dvpt_positions`` (1, m, d) from N(0, 1/d), as the
    released code; ``dvpt_modules``, one `DVPTModule` per group of ``share_every`` blocks.
    """

    adapter_layer_names = ("dvpt_prompts", "dvpt_positions", "dvpt_modules")
    other_param_names = ("dvpt_share_every",)

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: DVPTConfig, parts: BackboneParts):
        super().__init__(base_layer)
        self.hidden_size = parts.hidden_size
        self.num_layers = parts.num_layers
        self.num_prefix_tokens = parts.num_prefix_tokens
        self.dvpt_prompts = nn.ParameterDict()
        self.dvpt_positions = nn.ParameterDict()
        self.dvpt_modules = nn.ModuleDict()
        self.dvpt_share_every: dict[str, int] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: DVPTConfig) -> None:
        shape = (1, config.num_prompts, self.hidden_size)
        self.dvpt_prompts[adapter_name] = nn.Parameter(torch.randn(shape))
        self.dvpt_positions[adapter_name] = nn.Parameter(torch.randn(shape) * self.hidden_size**-0.5)
        groups = math.ceil(self.num_layers / config.share_every)
        modules = [DVPTModule(self.hidden_size, config, self.num_prefix_tokens) for _ in range(groups)]
        self.dvpt_modules[adapter_name] = nn.ModuleList(modules)
        self.dvpt_share_every[adapter_name] = config.share_every

    def prompt_tokens(self, adapter_name: str) -> torch.Tensor:
        return self.dvpt_prompts[adapter_name] + self.dvpt_positions[adapter_name]

    def module_for(self, adapter_name: str, layer_index: int) -> DVPTModule:
        return self.dvpt_modules[adapter_name][layer_index // self.dvpt_share_every[adapter_name]]

    def forward(self, *args, **kwargs) -> torch.Tensor:
        tokens = self.base_layer(*args, **kwargs)
        adapter = self.active_adapter_here()
        if adapter is None:
            return tokens
        prompts = self.prompt_tokens(adapter).to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        return torch.cat([prompts, tokens], dim=1)


class DVPTMLP(MLPBranchLayer):
    """Wraps block ``index``'s MLP and adds its DVPT module's output: MLP(LN(x)) + Δ(x)."""

    merge_refusal = MERGE_REFUSAL

    def __init__(self, base_layer: nn.Module, adapter_name: str, *, index: int, prompt_source: DVPTEmbeddings,
                 block: nn.Module):  # fmt: skip
        super().__init__(base_layer, block=block)
        self.index = index
        # A plain reference: the modules and prompts are registered (and saved) once, in DVPTEmbeddings.
        object.__setattr__(self, "prompt_source", prompt_source)
        self.update_layer(adapter_name)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        output = self.base_layer(hidden)
        adapter = self.active_adapter_here()
        if adapter is None:
            return output
        module = self.prompt_source.module_for(adapter, self.index)
        return output + module(self.residual_input(), self.prompt_source.prompt_tokens(adapter))


class DVPTHead(DVPTLayer):
    """Replaces the head: ``dvpt_head`` (a linear layer without bias) on the mean of the prompt and class tokens (CLS;
    DeiT's distillation token too; not DINOv2's registers, which follow them)."""

    adapter_layer_names = ("dvpt_head",)
    other_param_names = ("dvpt_pooled",)

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: DVPTConfig, *, hidden_size: int,
                 num_class_tokens: int):  # fmt: skip
        super().__init__(base_layer)
        self.hidden_size = hidden_size
        self.num_class_tokens = num_class_tokens
        self.dvpt_head = nn.ModuleDict()
        self.dvpt_pooled: dict[str, int] = {}
        self.update_layer(adapter_name, config)

    def create_adapter(self, adapter_name: str, config: DVPTConfig) -> None:
        self.dvpt_head[adapter_name] = nn.Linear(self.hidden_size, self.base_layer.out_features, bias=False)
        self.dvpt_pooled[adapter_name] = config.num_prompts + self.num_class_tokens

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        adapter = self.active_adapter_here()
        if adapter is None:
            return self.base_layer(tokens)
        return self.dvpt_head[adapter](tokens[:, : self.dvpt_pooled[adapter]].mean(dim=1))
