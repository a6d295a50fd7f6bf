"""The Moment Probing tuner: replaces the task model's head; for MP+, wraps each block's MLP and the norm before it."""

from __future__ import annotations

import re

from torch import nn

from adapterzoo.backbones import BackboneParts, mlp_norm
from adapterzoo.errors import UnsupportedBackboneError
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.tuners import MLPInput, TowerTuner, WrappingLayer

from .config import MomentProbingConfig
from .layer import PSRPMLP, MomentProbingHead


class MomentProbingModel(TowerTuner):
    """Moment Probing (Gao et al., ICCV 2023) as a PEFT tuner on an `ImageClassifier`."""

    prefix = "mp_"
    tuner_layer_cls = WrappingLayer

    def target_pattern(self, parts: BackboneParts, config: MomentProbingConfig) -> str:
        if config.plus and parts.is_hierarchical:
            why = "PSRP shares one down-projection across all blocks, whose width the stages of a hierarchy change"
            raise UnsupportedBackboneError(
                f"Method 'moment-probing' with plus=True (PSRP) cannot serve the '{parts.architecture}' architecture: "
                f"{why}. Use plus=False (MP), which reads only the final tokens.",
                reason=why,
            )
        head = re.escape(ImageClassifier.head_module)
        return rf"(?:{head}|{self.mlp_pattern(parts)})" if config.plus else head

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: MomentProbingConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        if key == ImageClassifier.head_module:
            return MomentProbingHead(
                target, adapter_name, config, hidden_size=parts.hidden_size, num_prefix_tokens=parts.num_prefix_tokens
            )
        if name == mlp_norm(parent):
            return MLPInput(target, adapter_name)
        return PSRPMLP(target, adapter_name, config, hidden_size=parts.hidden_size, block=parent)
