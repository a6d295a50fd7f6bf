"""The AdaptFormer tuner: wraps every transformer block (Swin's inside its stages too) in an `AdaptFormerBlock`, and
the reference's head initialisation."""

from __future__ import annotations

from torch import nn

from adapterzoo.backbones import BackboneParts
from adapterzoo.heads import LinearHead
from adapterzoo.tuners import TowerTuner

from .config import AdaptFormerConfig
from .layer import AdaptFormerBlock


class AdaptFormerModel(TowerTuner):
    """AdaptFormer (Chen et al., NeurIPS 2022) as a PEFT tuner: one parallel branch per block."""

    prefix = "adaptformer_"
    tuner_layer_cls = AdaptFormerBlock

    def target_pattern(self, parts: BackboneParts, config: AdaptFormerConfig) -> str:
        return parts.block_pattern

    def wrap(
        self, target: nn.Module, adapter_name: str, config: AdaptFormerConfig, **where: object
    ) -> AdaptFormerBlock:
        return AdaptFormerBlock(target, adapter_name, config)


def init_head(head: LinearHead) -> None:
    """The reference's head init (``main_image.py``, after MoCo v3): weight from a truncated N(0, 0.01²); the bias
    keeps PyTorch's default, as there."""
    nn.init.trunc_normal_(head.weight, std=0.01)
