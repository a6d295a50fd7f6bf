"""DVPT: the conformance suite, parameter counts, the zero gate, and the forward pass against the formula."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, ImageClassifier, get_method, train
from adapterzoo.backbones import describe_backbone, load_backbone
from adapterzoo.data import builtin_dataset
from adapterzoo.testing import (
    LABELS,
    MethodConformance,
    images,
    perturb_trainable,
)

pytestmark = pytest.mark.adapterzoo_method("dvpt")  # `backbone_path`: every tiny backbone DVPT serves

SMALL = {"num_prompts": 3, "bottleneck": 5}
ALTERNATIVES = {
    "queries": "static",
    "keys_include_cls": True,
    "output_tokens": "prompts",
    "scale": "r",
    "activation": "quick_gelu",
}


class TestDVPTShared(MethodConformance):
    method = "dvpt"
    options = SMALL


class TestDVPTUnshared(MethodConformance):
    method = "dvpt"
    options = {**SMALL, "share_every": 1}


class TestDVPTAlternatives(MethodConformance):
    method = "dvpt"
    options = {**SMALL, **ALTERNATIVES}


@pytest.mark.parametrize("share_every, modules", [(3, 4), (1, 12)])
def test_parameter_counts_on_vit_b16(share_every: int, modules: int) -> None:
    task_model = ImageClassifier(
        transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False), list("abcde")
    )
    method = get_method("dvpt")
    peft_model = get_peft_model(task_model, method.make_config(task_model, share_every=share_every))
    counts: dict[str, int] = {}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            part = next(p for p in ("dvpt_modules", "dvpt_prompts", "dvpt_positions", "dvpt_head") if p in name)
            counts[part] = counts.get(part, 0) + param.numel()
    one_module = 768 * 20 + 20 + 20 * 768 + 768 + 1
    assert one_module == 31_509
    assert counts["dvpt_modules"] == modules * one_module
    assert counts["dvpt_prompts"] + counts["dvpt_positions"] == 2 * 50 * 768 == 76_800
    assert counts["dvpt_head"] == 768 * 5
    assert sum(counts.values()) == {4: 202_836, 12: 454_908}[modules] + 768 * 5


def _child(layer: torch.nn.Module, *names: str) -> torch.nn.Module:
    """The first of ``names`` that ``layer`` has (each architecture names its norms and attention its own way)."""
    return next(getattr(layer, name) for name in names if hasattr(layer, name))


def _scale(layer: torch.nn.Module, name: str):
    """DINOv2's layer scale, or the identity for layers without one."""
    return getattr(layer, name) if hasattr(layer, name) else (lambda t: t)


def formula_logits(model, backbone, pixel_values: torch.Tensor, options: dict, with_modules: bool = True):
    """DVPT as the plugin README writes it, on an untouched backbone with the same weights."""
    embeddings = model.task_model.backbone.embeddings
    prompts = embeddings.dvpt_prompts["default"] + embeddings.dvpt_positions["default"]
    modules = embeddings.dvpt_modules["default"]
    head = model.task_model.classifier.dvpt_head["default"]
    parts = describe_backbone(backbone)
    k, m, share = parts.num_prefix_tokens, prompts.shape[1], options.get("share_every", 3)
    act = (lambda t: t * torch.sigmoid(1.702 * t)) if options.get("activation") == "quick_gelu" else F.gelu
    x = torch.cat([prompts.expand(pixel_values.shape[0], -1, -1), backbone.embeddings(pixel_values)], dim=1)
    if parts.pre_norm:
        x = backbone.get_submodule(parts.pre_norm)(x)
    for index, layer in enumerate(backbone.get_submodule(parts.layers)):
        normed = _child(layer, "layernorm_before", "layer_norm1", "norm1")(x)
        attention = _child(layer, "attention", "self_attn")(normed)
        x = x + _scale(layer, "layer_scale1")(attention[0] if isinstance(attention, tuple) else attention)
        out = layer.mlp(_child(layer, "layernorm_after", "layer_norm2", "norm2")(x))
        if with_modules:
            module = modules[index // share]
            h = act(x @ module.down.weight.T + module.down.bias)
            q = (
                act(prompts @ module.down.weight.T + module.down.bias)
                if options.get("queries") == "static"
                else h[:, :m]
            )
            kv = h[:, m:] if options.get("keys_include_cls") else h[:, m + k :]
            scale = (x.shape[-1] if options.get("scale", "d") == "d" else h.shape[-1]) ** -0.5
            o = torch.softmax(q @ kv.transpose(1, 2) * scale, dim=-1) @ kv
            delta = module.gate * (torch.cat([o, h[:, m:]], dim=1) @ module.up.weight.T + module.up.bias)
            if options.get("output_tokens") == "prompts":
                delta[:, m:] = 0
            out = _scale(layer, "layer_scale2")(out) + delta
        else:
            out = _scale(layer, "layer_scale2")(out)
        x = x + out
    pooled = backbone.get_submodule(parts.final_norm)(x)[:, : m + parts.num_class_tokens].mean(dim=1)
    return pooled @ head.weight.T


@pytest.mark.parametrize("options", [{}, {"share_every": 1}, ALTERNATIVES], ids=["shared", "unshared", "alternatives"])
def test_forward_matches_the_formula(backbone_path: Path, options: dict) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="dvpt", labels=LABELS, **SMALL, **options)
    perturb_trainable(model, seed=4, scale=0.5)
    model.eval()
    plain = load_backbone(str(backbone_path)).eval()
    with torch.no_grad():
        assert torch.allclose(model(images()).logits, formula_logits(model, plain, images(), options), atol=1e-5)


def test_with_the_gate_at_zero_the_modules_add_nothing(backbone_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="dvpt", labels=LABELS, **SMALL).eval()
    modules = model.task_model.backbone.embeddings.dvpt_modules["default"]
    assert all(module.gate.item() == 0 for module in modules)
    perturb_trainable(modules, seed=5, scale=0.5)  # every module weight moves ...
    with torch.no_grad():
        for module in modules:
            module.gate.zero_()  # ... but the gate stays shut
        without_modules = formula_logits(model, load_backbone(str(backbone_path)).eval(), images(), {}, False)
        assert torch.allclose(model(images()).logits, without_modules, atol=1e-6)


def test_initialisation_follows_the_released_code() -> None:
    task_model = ImageClassifier(transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False), ["a", "b"])
    peft_model = get_peft_model(task_model, get_method("dvpt").make_config(task_model))
    embeddings = peft_model.base_model.model.backbone.embeddings
    prompts, positions = embeddings.dvpt_prompts["default"], embeddings.dvpt_positions["default"]
    assert abs(prompts.std().item() - 1) < 0.02 and abs(positions.std().item() - 768**-0.5) < 0.02 * 768**-0.5 * 10


def test_training_uses_the_papers_recipe(backbone_path: Path, tmp_path: Path) -> None:
    data = builtin_dataset("counts", "train", num_per_class=2, classes=["one", "two", "three"])
    model = AutoAdapter.from_backbone(str(backbone_path), method="dvpt", labels=["one", "two", "three"], **SMALL)
    train(model, data, epochs=1, batch_size=3, output_dir=tmp_path, progress=False)
    start = json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])
    config = start["config"]
    assert (config["optimizer"], start["lr"], config["weight_decay"], config["max_grad_norm"]) == (
        "adamw",
        5e-4,
        1e-4,
        1.0,
    )
    assert math.isclose(config["warmup_ratio"], 5 / 60)


def test_merging_is_refused_with_a_reason(backbone_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(backbone_path), method="dvpt", labels=LABELS, **SMALL)
    with pytest.raises(NotImplementedError, match="cannot be merged.*DVPT adds prompt tokens"):
        model.merge()


@pytest.mark.parametrize("options", [{"queries": "both"}, {"scale": "sqrt"}, {"share_every": 0}, {"num_prompts": 0}])
def test_invalid_option_values_are_refused(backbone_path: Path, options: dict) -> None:
    with pytest.raises(ValueError):
        AutoAdapter.from_backbone(str(backbone_path), method="dvpt", labels=LABELS, **options)
