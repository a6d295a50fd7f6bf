"""AdaptFormer: the kit's conformance suite, the paper's parameter count, the forward pass against the formula applied
by hooks, identity at initialisation, the head's init and the recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, ImageClassifier, get_method
from adapterzoo.backbones import describe_backbone, load_backbone
from adapterzoo.testing import LABELS, MethodConformance, images, perturb_trainable
from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.optim import learning_rate


class TestAdaptFormer(MethodConformance):
    method = "adaptformer"
    options = {"bottleneck": 4}


def adapter_count(bottleneck: int) -> int:
    """AdaptFormer's trainable parameters (head excluded) on a ViT-B/16-shaped backbone, random weights."""
    task_model = ImageClassifier(transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False), ["a", "b"])
    config = get_method("adaptformer").make_config(task_model, head_module="classifier", bottleneck=bottleneck)
    model = get_peft_model(task_model, config)
    return sum(p.numel() for name, p in model.named_parameters() if ".adaptformer_" in name and p.requires_grad)


def test_parameter_count_on_vit_b16_is_the_papers_formula() -> None:
    d, layers = 768, 12
    for r, expected in ((64, 1_189_632), (8, 156_768)):  # METHODS.md §7: 1.19 M at the default, 0.16 M at r = 8
        assert adapter_count(r) == layers * (2 * d * r + r + d) == expected


# Where the branch's output joins each block, per architecture: after the MLP on ViT; on DINOv2 after the layer scale
# that follows the MLP, so that the branch is not scaled by it (the reference adds it after the MLP's drop path).
JOINS = {"vit": ("layernorm_after", "mlp"), "dinov2": ("norm2", "layer_scale2")}


def formula_hooks(block: torch.nn.Module, norm: str, join: str, branch: torch.nn.ModuleDict, scale: float) -> None:
    """On an untouched block: capture x' (the input of the norm before the MLP) and add s·up(ReLU(down(x'))) (after
    the branch's own LayerNorm, when it has one) to the output of ``join``."""
    seen: dict[str, torch.Tensor] = {}

    def capture(module: torch.nn.Module, args: tuple) -> None:
        seen["x"] = args[0]

    def add(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = seen["x"]
        if "norm" in branch:
            x = F.layer_norm(x, x.shape[-1:], branch["norm"].weight, branch["norm"].bias, branch["norm"].eps)
        down, up = branch["down"], branch["up"]
        return output + scale * (F.relu(x @ down.weight.T + down.bias) @ up.weight.T + up.bias)

    block.get_submodule(norm).register_forward_pre_hook(capture)
    block.get_submodule(join).register_forward_hook(add)


@pytest.mark.parametrize("kind, layernorm", [("vit", False), ("vit", True), ("dinov2", False)])
def test_forward_matches_the_formula_applied_by_hooks(
    tiny_backbone_path: Callable[[str], Path], kind: str, layernorm: bool
) -> None:
    path = str(tiny_backbone_path(kind))
    model = AutoAdapter.from_backbone(path, method="adaptformer", labels=LABELS, bottleneck=4, scale=0.3,
                                      layernorm=layernorm)  # fmt: skip
    perturb_trainable(model, seed=3, scale=0.3)
    model.eval()
    plain = ImageClassifier(load_backbone(path), list(LABELS)).eval()
    plain.classifier.load_state_dict(model.task_model.classifier.modules_to_save["default"].state_dict())
    norm, join = JOINS[kind]
    for block_path in describe_backbone(plain.backbone).layer_paths:
        block, wrapper = plain.backbone.get_submodule(block_path), model.task_model.backbone.get_submodule(block_path)
        if kind == "dinov2":  # a layer scale other than 1 in both models, so that its place is tested
            for scaled in (block, wrapper.base_layer):
                scaled.layer_scale2.lambda1.data.fill_(0.5)
        formula_hooks(block, norm, join, wrapper.adaptformer_branch["default"], scale=0.3)
    with torch.no_grad():
        assert torch.allclose(model(images()).logits, plain(pixel_values=images()).logits, atol=1e-5)


@pytest.mark.parametrize("kind", ["vit", "swin", "clip"])
def test_a_fresh_adapter_computes_the_backbone_exactly(tiny_backbone_path: Callable[[str], Path], kind: str) -> None:
    path = str(tiny_backbone_path(kind))
    model = AutoAdapter.from_backbone(path, method="adaptformer", labels=LABELS).eval()
    plain = ImageClassifier(load_backbone(path), list(LABELS)).eval()
    plain.classifier.load_state_dict(model.task_model.classifier.modules_to_save["default"].state_dict())
    with torch.no_grad():
        assert torch.equal(model(images()).logits, plain(pixel_values=images()).logits)


def test_the_reference_init_and_dropout_are_the_defaults(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="adaptformer", labels=LABELS)
    block = model.task_model.backbone.layers[0]
    down, up = block.adaptformer_branch["default"]["down"], block.adaptformer_branch["default"]["up"]
    assert down.weight.shape == (64, 32) and down.weight.abs().max() <= 32**-0.5  # Kaiming-uniform, a = √5: ±1/√d
    assert down.weight.std() > 0 and not down.bias.any() and not up.weight.any() and not up.bias.any()
    assert (block.adaptformer_scale["default"], block.adaptformer_dropout["default"]) == (0.1, 0.1)
    assert "norm" not in block.adaptformer_branch["default"]


def test_the_head_starts_as_the_reference() -> None:
    head = torch.nn.Linear(768, 1000)
    get_method("adaptformer").head_initializer(head)
    assert abs(head.weight.std().item() - 0.01) < 5e-4 and head.weight.abs().max() <= 2


def test_the_recipe_is_the_references() -> None:
    config = TrainingConfig.resolve(get_method("adaptformer").recipe, {})
    assert (config.optimizer, config.momentum, config.weight_decay) == ("sgd", 0.9, 0.0)
    assert (config.scheduler, config.warmup_ratio, config.epochs, config.augment) == ("cosine", 0.2, 100, True)
    assert learning_rate(config, total_batch_size=1024) == 0.4


@pytest.mark.parametrize("option", [{"bottleneck": 0}, {"dropout": 1.0}])
def test_bad_values_are_refused(vit_path: Path, option: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(option))):
        AutoAdapter.from_backbone(str(vit_path), method="adaptformer", labels=LABELS, **option)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_dropout_acts_on_the_branch_only_while_training(vit_path: Path, dropout: float) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="adaptformer", labels=LABELS, dropout=dropout)
    perturb_trainable(model, seed=5, scale=0.3)
    with torch.no_grad():
        model.train()  # the tiny backbone has no dropout of its own: only the branch's can make two passes differ
        assert torch.equal(model(images()).logits, model(images()).logits) == (dropout == 0.0)
        model.eval()
        assert torch.equal(model(images()).logits, model(images()).logits)
