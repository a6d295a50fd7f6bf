"""The linear-probe and full fine-tuning baselines: methods like any other, through PEFT and the same trainer."""

from __future__ import annotations

from pathlib import Path

import torch

from adapterzoo import AutoAdapter
from adapterzoo.testing import LABELS, MethodConformance, images


class TestLinearProbe(MethodConformance):
    method = "linear-probe"
    has_adapter_layers = False


class TestFullFineTuning(MethodConformance):
    method = "full"
    has_adapter_layers = False


def test_the_linear_probe_trains_only_the_head(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="linear-probe", labels=LABELS)
    head = model.task_model.classifier.modules_to_save["default"]
    assert model.trainable_parameters == head.weight.numel() + head.bias.numel() == 32 * 3 + 3


def test_full_fine_tuning_trains_a_copy_of_every_backbone_weight(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="full", labels=LABELS)
    backbone = model.task_model.backbone
    pretrained = sum(p.numel() for p in backbone.original_module.parameters())
    assert model.trainable_parameters == pretrained + 32 * 3 + 3
    assert not any(p.requires_grad for p in backbone.original_module.parameters())
    with torch.no_grad():
        before = model(images()).logits
        next(backbone.modules_to_save["default"].parameters()).add_(1.0)
        assert not torch.equal(model(images()).logits, before)
