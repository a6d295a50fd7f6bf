"""The VPT tuner: finds the patch embeddings and the encoder layers by structure and wraps them (see layer.py)."""

from __future__ import annotations

import math
import re

from torch import nn

from adapterzoo.backbones import BackboneParts, describe_backbone
from adapterzoo.heads import LinearHead
from adapterzoo.tuners import TowerTuner

from .config import VPTConfig
from .layer import VPTEmbeddings, VPTEncoderLayer, VPTLayer


class VPTModel(TowerTuner):
    """Visual Prompt Tuning (Jia et al., ECCV 2022) as a PEFT tuner.

    Wraps the patch embeddings (prompt insertion) and every encoder layer (deep replacement, prompt removal after
    the last layer, frozen layers kept in eval mode).
    """

    prefix = "vpt_"
    tuner_layer_cls = VPTLayer

    def target_pattern(self, parts: BackboneParts, config: VPTConfig) -> str:
        return rf"(?:{re.escape(parts.embeddings)}|{re.escape(parts.layers)}\.\d+)"

    def _create_and_replace(
        self,
        peft_config: VPTConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **kwargs,
    ) -> None:
        if isinstance(target, VPTLayer):
            target.update_layer(adapter_name, peft_config)
            return
        parts = describe_backbone(self.model)
        if current_key == parts.embeddings:
            new_module = VPTEmbeddings(target, adapter_name, peft_config, parts)
        else:
            index = parts.layer_paths.index(current_key)
            new_module = VPTEncoderLayer(
                target,
                adapter_name,
                peft_config,
                prompt_source=self.model.get_submodule(parts.embeddings),
                index=index,
                is_last=index == parts.num_layers - 1,
            )
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)


def init_head(head: LinearHead) -> None:
    """VPT's head init (reference ``src/models/mlp.py``): Kaiming-normal weight (fan-out), bias -log(0.99 / 0.01)."""
    nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
    nn.init.constant_(head.bias, -math.log((1 - 0.01) / 0.01))
