"""VPT: the conformance suite, the paper's parameter counts, and the forward pass against the formula."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
import torch
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, ImageClassifier, get_method
from adapterzoo.backbones import describe_backbone, load_backbone
from adapterzoo.testing import (
    LABELS,
    MethodConformance,
    images,
    perturb_trainable,
    save_tiny_backbone,
)

pytestmark = pytest.mark.adapterzoo_method("vpt")  # `backbone_path`: every tiny backbone VPT serves


class TestVPTShallow(MethodConformance):
    method = "vpt"
    options = {"num_tokens": 3}


class TestVPTDeep(MethodConformance):
    method = "vpt"
    options = {"num_tokens": 3, "deep": True}


class TestVPTDeepProjected(MethodConformance):
    method = "vpt"
    options = {"num_tokens": 2, "deep": True, "projection_dim": 8, "dropout": 0.1}


def run_layer(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One encoder layer on ``x`` with no attention mask (CLIP's and SigLIP's layers take it positionally)."""
    takes_mask = "attention_mask" in inspect.signature(layer.forward).parameters
    out = layer(x, None) if takes_mask else layer(x)
    return out[0] if isinstance(out, tuple) else out


def vpt_params(model) -> dict[str, torch.Tensor | torch.nn.Module | None]:
    embeddings = model.task_model.backbone.embeddings
    return {
        "prompts": embeddings.vpt_prompts["default"],
        "deep": embeddings.vpt_deep_prompts["default"] if "default" in embeddings.vpt_deep_prompts else None,
        "projection": embeddings.vpt_projection["default"],
        "head": model.task_model.classifier.modules_to_save["default"],
    }


def formula_logits(backbone: transformers.PreTrainedModel, params: dict, pixel_values: torch.Tensor) -> torch.Tensor:
    """VPT as METHODS.md writes it, on an untouched backbone with the same weights.

    x = [prefix tokens (CLS; DeiT's distillation token; DINOv2's registers; none for SigLIP), proj(P), patches] after
    the embeddings; before layer i >= 1 (deep) the prompt slots are replaced by proj(P_i); the prompts are dropped
    after the last layer; logits = head(pooled), pooled as transformers' classifier of the architecture pools (CLS,
    the mean of the patch tokens, or both), with the final norm where that classifier applies it.
    """
    parts = describe_backbone(backbone)
    k, project = parts.num_prefix_tokens, params["projection"]
    tokens = backbone.embeddings(pixel_values)
    batch, m = tokens.shape[0], params["prompts"].shape[1]
    x = torch.cat([tokens[:, :k], project(params["prompts"]).expand(batch, -1, -1), tokens[:, k:]], dim=1)
    if parts.pre_norm:
        x = backbone.get_submodule(parts.pre_norm)(x)
    for i, layer in enumerate(backbone.get_submodule(parts.layers)):
        if params["deep"] is not None and i > 0:
            deep = project(params["deep"][i - 1]).unsqueeze(0).expand(batch, -1, -1)
            x = torch.cat([x[:, :k], deep, x[:, k + m :]], dim=1)
        x = run_layer(layer, x)
    x = torch.cat([x[:, :k], x[:, k + m :]], dim=1)
    if parts.default_head_norm == "tokens":
        x = backbone.get_submodule(parts.final_norm)(x)
    cls, patches = x[:, 0], x[:, k:].mean(dim=1)
    pooled = {"cls": cls, "mean": patches, "cls+mean": torch.cat([cls, patches], dim=-1)}[parts.default_pooling]
    if parts.default_head_norm == "pooled":
        pooled = backbone.get_submodule(parts.final_norm)(pooled)
    head = params["head"]
    return pooled @ head.weight.T + head.bias


@pytest.mark.parametrize(
    "options",
    [{"num_tokens": 3}, {"num_tokens": 3, "deep": True}, {"num_tokens": 2, "deep": True, "projection_dim": 5}],
    ids=["shallow", "deep", "deep-projected"],
)
def test_forward_matches_the_formula(backbone_path: Path, options: dict) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="vpt", labels=LABELS, **options)
    perturb_trainable(model, seed=3, scale=0.5)
    model.eval()
    plain = load_backbone(str(backbone_path)).eval()
    with torch.no_grad():
        expected = formula_logits(plain, vpt_params(model), images())
        assert torch.allclose(model(images()).logits, expected, atol=1e-6)


def test_head_sees_the_backbones_own_token_layout(backbone_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="vpt", labels=LABELS, num_tokens=4, deep=True)
    with torch.no_grad():
        tokens = model.task_model.encode(images(2))
    patches = (32 // 8) ** 2
    assert tokens.shape == (2, describe_backbone(model.task_model.backbone).num_prefix_tokens + patches, 32)


@pytest.mark.parametrize("deep, expected", [(True, 460_800), (False, 38_400)])
def test_parameter_counts_on_vit_b16(deep: bool, expected: int) -> None:
    config = transformers.ViTConfig()  # the ViT-B/16 shape: d = 768, 12 layers, 224 px, patch 16
    task_model = ImageClassifier(transformers.ViTModel(config, add_pooling_layer=False), ["a", "b"])
    method = get_method("vpt")
    peft_model = get_peft_model(task_model, method.make_config(task_model, num_tokens=50, deep=deep))
    prompts = sum(p.numel() for n, p in peft_model.named_parameters() if ".vpt_" in n)
    assert prompts == expected == (12 if deep else 1) * 50 * 768
    bound = math.sqrt(6 / (3 * 16 * 16 + 768))
    assert bound == 0.0625
    values = peft_model.base_model.model.backbone.embeddings.vpt_prompts["default"]
    assert values.abs().max() <= bound and values.abs().max() > 0.95 * bound
    assert abs(values.std().item() - bound / math.sqrt(3)) < 0.01 * bound / math.sqrt(3) * 10


def test_head_init_follows_the_reference() -> None:
    backbone = transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False)
    labels = [str(i) for i in range(100)]
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(backbone, method="vpt", labels=labels, image_processor=object())
    head = model.task_model.classifier.modules_to_save["default"]
    assert torch.all(head.bias == -math.log(99))
    assert abs(head.weight.std().item() - math.sqrt(2 / 100)) < 0.02 * math.sqrt(2 / 100)


def test_frozen_backbone_runs_without_dropout_while_training(tmp_path: Path) -> None:
    path = save_tiny_backbone(tmp_path, "vit", hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    model = AutoAdapter.from_backbone(str(path), method="vpt", labels=LABELS, num_tokens=3, deep=True).train()
    dropouts = {n: m for n, m in model.task_model.backbone.named_modules() if isinstance(m, torch.nn.Dropout)}
    prompt_dropouts = [m for n, m in dropouts.items() if ".vpt_dropout." in n]
    backbone_dropouts = [m for n, m in dropouts.items() if ".vpt_dropout." not in n]
    assert prompt_dropouts and all(m.training for m in prompt_dropouts)
    assert backbone_dropouts and not any(m.training for m in backbone_dropouts)
    with torch.no_grad():
        assert torch.equal(model(images()).logits, model(images()).logits)


def test_prompt_dropout_draws_a_mask_per_sample(backbone_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="vpt", labels=LABELS, num_tokens=4, dropout=0.5)
    same_image = images(1).expand(2, -1, -1, -1)
    with torch.no_grad():
        model.train()
        torch.manual_seed(0)
        trained = model(same_image).logits
        model.eval()
        evaluated = model(same_image).logits
    assert not torch.allclose(trained[0], trained[1])
    assert torch.allclose(evaluated[0], evaluated[1], atol=1e-6)


def test_merging_is_refused_with_a_reason(backbone_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="vpt", labels=LABELS)
    with pytest.raises(NotImplementedError, match="cannot be merged.*prompt tokens"):
        model.merge()


def test_invalid_option_values_are_refused(backbone_path: Path) -> None:
    for options in ({"num_tokens": 0}, {"dropout": 1.0}, {"projection_dim": 0}):
        with pytest.raises(ValueError):
            AutoAdapter.from_backbone(str(backbone_path), method="vpt", labels=LABELS, **options)
