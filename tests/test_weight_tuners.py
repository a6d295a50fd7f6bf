"""LoRA and PEFT's other weight tuners through the zoo: conformance, per-backbone targets, merging."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from adapterzoo import AutoAdapter
from adapterzoo.testing import (
    LABELS,
    VISION_KINDS,
    CLIPMethodConformance,
    MethodConformance,
    images,
    perturb_trainable,
)


class TestLoRA(MethodConformance):
    method = "lora"


class TestDoRA(MethodConformance):
    method = "lora"
    options = {"use_dora": True, "r": 4}


class TestLoHa(MethodConformance):
    method = "loha"
    options = {"r": 4}


class TestLoKr(MethodConformance):
    method = "lokr"
    options = {"r": 4}


class TestIA3(MethodConformance):
    method = "ia3"


class TestOFT(MethodConformance):
    method = "oft"
    options = {"oft_block_size": 8}


class TestBOFT(MethodConformance):
    method = "boft"
    options = {"boft_block_size": 4}
    # PEFT's fast BOFT kernel fails to build on a machine without CUDA, and says so twice.
    allowed_warnings = ("Failed to load the CUDA extension", "Setting boft_n_butterfly_factor to 1")


class TestVeRA(MethodConformance):
    method = "vera"
    options = {"r": 8}


class TestFourierFT(MethodConformance):
    method = "fourierft"
    options = {"n_frequency": 64}


MERGEABLE = [
    ("lora", {}),
    ("lora", {"use_dora": True}),
    ("loha", {"r": 4}),
    ("lokr", {"r": 4}),
    ("ia3", {}),
    ("oft", {"oft_block_size": 8}),
    ("boft", {"boft_block_size": 4}),
    ("vera", {"r": 8}),
    ("fourierft", {"n_frequency": 64}),
]


@pytest.mark.parametrize(
    "method, options", MERGEABLE, ids=[f"{m}{'-dora' if o.get('use_dora') else ''}" for m, o in MERGEABLE]
)
def test_merging_keeps_the_outputs(vit_path: Path, method: str, options: dict) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method=method, labels=LABELS, **options)
    perturb_trainable(model, seed=0)
    model.eval()
    with torch.no_grad():
        unmerged = model(images()).logits
        model.merge()
        assert torch.allclose(model(images()).logits, unmerged, atol=1e-5)
        model.unmerge()
        assert torch.allclose(model(images()).logits, unmerged, atol=1e-5)
        plain = model.merge_and_unload()
        assert not any(isinstance(m, BaseTunerLayer) for m in plain.modules())
        assert torch.allclose(plain(images()).logits, unmerged, atol=1e-5)


def test_lora_targets_the_backbones_q_and_v_by_default(vit_path: Path, clip_path: Path) -> None:
    for path, expected in ((vit_path, "attention.{}_proj"), (clip_path, "self_attn.{}_proj")):
        model = AutoAdapter.from_backbone(str(path), method="lora", labels=LABELS)
        targeted = sorted(model.peft_model.base_model.targeted_module_names)
        layers = range(3)
        layer_path = "backbone.layers" if path == vit_path else "backbone.encoder.layers"
        assert targeted == sorted(f"{layer_path}.{i}.{expected.format(x)}" for i in layers for x in "qv")


def test_targets_can_be_roles_or_peft_names(vit_path: Path) -> None:
    by_role = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, target_modules=["o", "fc1"])
    assert {n.rsplit(".", 2)[-2:][-1] for n in by_role.peft_model.base_model.targeted_module_names} == {"o_proj", "fc1"}
    by_name = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, target_modules=["fc2"])
    assert all(n.endswith("mlp.fc2") for n in by_name.peft_model.base_model.targeted_module_names)


def test_ia3_rescales_the_mlp_output_layer_input(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="ia3", labels=LABELS)
    layers = [m for n, m in model.named_modules() if isinstance(m, BaseTunerLayer)]
    assert sorted({type(m).__name__ for m in layers}) == ["Linear"]
    feedforward = [n for n, m in model.named_modules() if isinstance(m, BaseTunerLayer) and m.is_feedforward]
    assert len(feedforward) == 3 and all(n.endswith("mlp.fc2") for n in feedforward)


LORA_DEFAULT_TARGETS = {
    "vit": "layers.{i}.attention.{x}_proj",
    "clip": "encoder.layers.{i}.self_attn.{x}_proj",
    "deit": "layers.{i}.attention.{x}_proj",
    "dinov2": "encoder.layer.{i}.attention.{x}_proj",
    "dinov2_with_registers": "encoder.layer.{i}.attention.{x}_proj",
    "siglip": "encoder.layers.{i}.self_attn.{x}_proj",
    "beit": "layers.{i}.attention.{x}_proj",
    "swin": "encoder.layers.{stage}.blocks.{i}.attention.{x}_proj",
}


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_lora_defaults_to_attention_q_and_v_in_every_block_of_every_architecture(
    kind: str, tiny_backbone_path: Callable[[str], Path]
) -> None:
    model = AutoAdapter.from_backbone(str(tiny_backbone_path(kind)), method="lora", labels=LABELS)
    targeted = sorted(model.peft_model.base_model.targeted_module_names)
    pattern = "backbone." + LORA_DEFAULT_TARGETS[kind]
    swin_blocks = [{"stage": stage, "i": i} for stage in range(2) for i in range(2)]
    blocks = swin_blocks if kind == "swin" else [{"i": i} for i in range(3)]
    assert targeted == sorted(pattern.format(**block, x=x) for block in blocks for x in "qv")


class TestLoRAOnCLIPClassification(CLIPMethodConformance):
    method = "lora"


def test_lora_on_a_clip_classifier_adapts_the_vision_tower_unless_asked(clip_path: Path) -> None:
    vision_only = AutoAdapter.from_backbone(str(clip_path), method="lora", labels=LABELS, task="clip-classification")
    targeted = vision_only.peft_model.base_model.targeted_module_names
    assert len(targeted) == 6 and all(name.startswith("clip.vision_model.") for name in targeted)
    text = r"clip\.text_model\.encoder\.layers\.\d+\.self_attn\.(q_proj|v_proj)"
    both = AutoAdapter.from_backbone(
        str(clip_path), method="lora", labels=LABELS, task="clip-classification", target_modules=text
    )
    assert all(name.startswith("clip.text_model.") for name in both.peft_model.base_model.targeted_module_names)
    perturb_trainable(both, seed=2)
    with torch.no_grad():
        adapted = both.eval()(images()).logits
        with both.peft_model.disable_adapter():
            plain = both(images()).logits  # the text features are recomputed, not served from a stale cache
    assert not torch.allclose(adapted, plain)
