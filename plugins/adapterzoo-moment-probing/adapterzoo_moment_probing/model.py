"""The Moment Probing tuner: replaces the task model's head; for MP+, wraps each block's MLP and the norm before it."""

from __future__ import annotations

import re

from torch import nn

from adapterzoo.backbones import MLP_NORMS, BackboneParts, describe_backbone, mlp_block
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.tuners import TowerTuner

from .config import MomentProbingConfig
from .layer import PSRPMLP, MomentProbingHead, MomentProbingLayer, PSRPInput


class MomentProbingModel(TowerTuner):
    """Moment Probing (Gao et al., ICCV 2023) as a PEFT tuner on an `ImageClassifier`."""

    prefix = "mp_"
    tuner_layer_cls = MomentProbingLayer

    def target_pattern(self, parts: BackboneParts, config: MomentProbingConfig) -> str:
        head = re.escape(ImageClassifier.head_module)
        if not config.plus:
            return head
        norm, mlp = mlp_block(self.model)
        return rf"(?:{head}|{re.escape(parts.layers)}\.\d+\.(?:{norm}|{mlp}))"

    def _create_and_replace(
        self,
        peft_config: MomentProbingConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **kwargs,
    ) -> None:
        if isinstance(target, MomentProbingLayer):
            target.update_layer(adapter_name, peft_config)
            return
        parts = describe_backbone(self.model)
        if current_key == ImageClassifier.head_module:
            new_module = MomentProbingHead(
                target, adapter_name, peft_config,
                hidden_size=parts.hidden_size, num_prefix_tokens=parts.num_prefix_tokens,
            )  # fmt: skip
        elif target_name in MLP_NORMS:
            new_module = PSRPInput(target, adapter_name)
        else:
            norm = next(name for name in MLP_NORMS if hasattr(parent, name))
            new_module = PSRPMLP(
                target, adapter_name, peft_config, hidden_size=parts.hidden_size, block=parent, norm_name=norm
            )
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)
