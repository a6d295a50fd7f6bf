"""The SSF tuner: finds SSF's sites in a vision tower by structure and roles, and wraps each in an `SSFLayer`.

The sites, for any architecture (METHODS.md lists them for ViT; the reference inserts SSF after every linear layer,
convolution and norm, never after an activation, a softmax or a residual add):

- the patch-embedding convolution inside ``parts.embeddings``, and any norm there (Swin's);
- the norm before the encoder (``parts.pre_norm``: CLIP's), where there is one;
- in every transformer block, its norms (before attention and before the MLP) and its linear layers of the roles q, k,
  v, o, fc1 and fc2 (fc1's output, before the activation; fc2's, before the residual add);
- the final norm (``parts.final_norm``).
"""

from __future__ import annotations

import re

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from adapterzoo.backbones import BackboneParts, resolve_linear_roles
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.tuners import TowerTuner

from .config import SSFConfig
from .layer import SSFLayer

ROLES = ("q", "k", "v", "o", "fc1", "fc2")


def plain(module: nn.Module) -> nn.Module:
    """The module itself, or the one inside an adapter's wrapper."""
    return module.get_base_layer() if isinstance(module, BaseTunerLayer) else module


def modules_of_kind(root: nn.Module, kind: type[nn.Module], *, direct: bool = False) -> list[str]:
    """Local paths in ``root`` of the modules of ``kind`` (its children only when ``direct``), seen through adapters'
    wrappers: a wrapped one is found at its wrapper's path, and nothing inside a found one is searched."""
    found: list[str] = []
    for path, module in plain(root).named_children() if direct else root.named_modules():
        inside = any(path.startswith(f"{outer}.") for outer in found)
        if path and not inside and isinstance(plain(module), kind):
            found.append(path)
    return found


class SSFModel(TowerTuner):
    """SSF (Lian et al., NeurIPS 2022) as a PEFT tuner: every site gets its own scale and shift."""

    prefix = "ssf_"
    tuner_layer_cls = SSFLayer

    def target_pattern(self, parts: BackboneParts, config: SSFConfig) -> str:
        return "|".join(f"(?:{site})" for site in self.sites(parts))

    def sites(self, parts: BackboneParts) -> list[str]:
        """Regexes of SSF's sites on the backbone ``parts`` describes (see the module's docstring)."""
        embeddings = self.model.get_submodule(parts.embeddings)
        convolutions = modules_of_kind(embeddings, nn.Conv2d)
        if len(convolutions) != 1:
            raise UnsupportedBackboneError(
                f"Method 'ssf' needs one patch-embedding convolution in the '{parts.architecture}' embeddings; "
                f"found {len(convolutions)}.",
                reason="SSF needs one patch-embedding convolution",
            )
        first_block = self.model.get_submodule(parts.first_block)
        block_norms = modules_of_kind(first_block, nn.LayerNorm, direct=True)
        if not block_norms:
            raise UnsupportedBackboneError(
                f"Method 'ssf' found no LayerNorm in the '{parts.architecture}' blocks.",
                reason="SSF scales and shifts the blocks' LayerNorms, and its blocks have none",
            )
        local = [f"{parts.embeddings}.{path}" for path in convolutions + modules_of_kind(embeddings, nn.LayerNorm)]
        around = [parts.pre_norm, parts.final_norm] if parts.pre_norm else [parts.final_norm]
        norms = rf"{parts.block_pattern}\.(?:{'|'.join(re.escape(name) for name in block_norms)})"
        return [*(re.escape(path) for path in local + around), norms, resolve_linear_roles(self.model, ROLES)]

    def wrap(self, target: nn.Module, adapter_name: str, config: SSFConfig, **where: object) -> SSFLayer:
        return SSFLayer(target, adapter_name, config)
