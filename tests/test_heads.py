"""The default image-classification head is transformers' own for each architecture, and old heads still rebuild."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers

from adapterzoo.architectures import find_architecture
from adapterzoo.backbones import describe_backbone
from adapterzoo.heads import LinearHead
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.testing import VISION_KINDS, images, tiny_backbone


def _tower(kind: str) -> transformers.PreTrainedModel:
    backbone = tiny_backbone(kind)
    return getattr(backbone, "vision_model", None) if kind in ("clip", "siglip") else backbone


def _as_transformers(task_model: ImageClassifier) -> transformers.PreTrainedModel:
    """transformers' classification model of the architecture holding the task model's backbone and head weights."""
    backbone = task_model.backbone
    arch = find_architecture(backbone.config.model_type)
    config = copy.deepcopy(backbone.config)
    config.num_labels = len(task_model.labels)
    classifier_cls = getattr(transformers, arch.classification_class)
    if arch.classification_prefix == "vision_model":  # CLIP's and SigLIP's classes take the whole model's config
        whole = classifier_cls.config_class
        config = whole(vision_config=config.to_dict(), num_labels=len(task_model.labels))
    model = classifier_cls(config).eval()
    missing, _ = getattr(model, arch.classification_prefix).load_state_dict(backbone.state_dict(), strict=False)
    assert not [key for key in missing if "head" not in key]  # SigLIP's unused attention-pooling head only
    model.classifier.load_state_dict(task_model.classifier.state_dict())
    return model


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_the_default_head_computes_what_transformers_classifier_does(kind: str) -> None:
    task_model = ImageClassifier(_tower(kind), ["a", "b", "c"]).eval()
    torch.nn.init.normal_(task_model.classifier.weight)
    pixel_values = images(2)
    with torch.no_grad():
        expected = _as_transformers(task_model)(pixel_values=pixel_values).logits
        torch.testing.assert_close(task_model(pixel_values).logits, expected, atol=1e-5, rtol=1e-5)


def test_dinov2_concatenates_the_cls_token_and_the_mean_of_the_patch_tokens_after_the_registers() -> None:
    backbone = tiny_backbone("dinov2_with_registers").eval()
    task_model = ImageClassifier(backbone, ["a", "b"]).eval()
    head = task_model.classifier
    assert head.in_features == 2 * describe_backbone(backbone).hidden_size
    tokens = backbone(pixel_values=images(2)).last_hidden_state
    registers = backbone.config.num_register_tokens
    pooled = torch.cat([tokens[:, 0], tokens[:, 1 + registers :].mean(dim=1)], dim=-1)
    torch.testing.assert_close(task_model(images(2)).logits, pooled @ head.weight.T + head.bias)


def test_beit_normalises_the_mean_of_the_patch_tokens_and_a_tuned_norm_is_the_one_applied() -> None:
    backbone = tiny_backbone("beit").eval()
    task_model = ImageClassifier(backbone, ["a", "b"]).eval()
    copied_head = copy.deepcopy(task_model.classifier)  # as PEFT copies a trained head
    with torch.no_grad():
        backbone.pooler.layernorm.weight.mul_(3.0)  # the copy must apply the backbone's norm, not a frozen copy of it
        tokens = backbone(pixel_values=images(2)).last_hidden_state
        pooled = backbone.pooler.layernorm(tokens[:, 1:].mean(dim=1))
        torch.testing.assert_close(copied_head(tokens), pooled @ copied_head.weight.T + copied_head.bias)
    assert "pooled_norm" not in dict(task_model.classifier.named_modules())


def test_legacy_settings_rebuild_the_per_token_norm_head() -> None:
    """Adapters saved before format version 2 normalised every CLIP token and pooled the CLS token."""
    tower = _tower("clip").eval()
    legacy = ImageClassifier(tower, ["a", "b"], pooling="cls", final_norm="tokens").eval()
    with torch.no_grad():
        tokens = tower.post_layernorm(tower(pixel_values=images(2)).last_hidden_state)
        expected = tokens[:, 0] @ legacy.classifier.weight.T + legacy.classifier.bias
        torch.testing.assert_close(legacy(images(2)).logits, expected)
    assert legacy.settings() == {"type": "linear", "pooling": "cls", "final_norm": "tokens"}
    assert ImageClassifier(tower, ["a", "b"]).settings() == {"type": "linear", "pooling": "mean", "final_norm": "none"}


def test_a_norm_the_sequence_already_passed_cannot_apply_again_and_cls_pooling_needs_a_cls_token() -> None:
    with pytest.raises(ValueError, match="final_norm 'pooled' is not one of tokens, none"):
        ImageClassifier(tiny_backbone("vit"), ["a", "b"], final_norm="pooled")
    with pytest.raises(ValueError, match="CLS\\+MEAN pooling needs a backbone with a CLS token"):
        LinearHead(8, 2, pooling="cls+mean", num_prefix_tokens=0)


def test_a_copy_of_the_whole_model_applies_its_own_borrowed_norm() -> None:
    """A deep copy of the task model (an export's) must not reach back into the original's backbone."""
    task_model = ImageClassifier(tiny_backbone("beit"), ["a", "b"]).eval()
    copied = copy.deepcopy(task_model)
    with torch.no_grad():
        before = task_model(images(2)).logits
        copied.backbone.pooler.layernorm.weight.mul_(3.0)
        torch.testing.assert_close(task_model(images(2)).logits, before, atol=0, rtol=0)
        tokens = copied.backbone(pixel_values=images(2)).last_hidden_state
        pooled = copied.backbone.pooler.layernorm(tokens[:, 1:].mean(dim=1))
        head = copied.classifier
        torch.testing.assert_close(copied(images(2)).logits, pooled @ head.weight.T + head.bias)
