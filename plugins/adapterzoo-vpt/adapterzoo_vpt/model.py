"""The VPT tuner: finds the patch embeddings and the encoder layers by structure and wraps them (see layer.py)."""

from __future__ import annotations

import math
import re

from torch import nn

from adapterzoo.backbones import BackboneParts
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

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: VPTConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> VPTLayer:
        if key == parts.embeddings:
            return VPTEmbeddings(target, adapter_name, config, parts)
        index = parts.layer_paths.index(key)
        return VPTEncoderLayer(
            target,
            adapter_name,
            config,
            prompt_source=self.model.get_submodule(parts.embeddings),
            index=index,
            is_last=index == parts.num_layers - 1,
        )


def init_head(head: LinearHead) -> None:
    """VPT's head init (reference ``src/models/mlp.py``): Kaiming-normal weight (fan-out), bias -log(0.99 / 0.01)."""
    nn.init.kaiming_normal_(head.weight, a=0, mode="fan_out")
    nn.init.constant_(head.bias, -math.log((1 - 0.01) / 0.01))
