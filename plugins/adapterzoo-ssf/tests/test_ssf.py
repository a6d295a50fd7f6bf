"""SSF: the kit's conformance suite, the paper's parameter count, the forward pass against the formula, merging, and
the recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, ImageClassifier, get_method
from adapterzoo.backbones import load_backbone
from adapterzoo.testing import LABELS, MethodConformance, images, perturb_trainable
from adapterzoo.training.config import TrainingConfig
from adapterzoo.training.optim import build_optimizer


class TestSSF(MethodConformance):
    method = "ssf"


def vit_b16_ssf() -> torch.nn.Module:
    """SSF on a ViT-B/16-shaped backbone (d = 768, 12 layers, MLP 3072), random weights, two classes."""
    task_model = ImageClassifier(transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False), ["a", "b"])
    return get_peft_model(task_model, get_method("ssf").make_config(task_model, head_module="classifier"))


def test_parameter_count_on_vit_b16_is_the_papers_formula() -> None:
    model = vit_b16_ssf()
    count = sum(p.numel() for name, p in model.named_parameters() if ".ssf_" in name)
    d, layers = 768, 12
    assert count == layers * 22 * d + 4 * d == 205_824  # 2·(d + 3d + d + d + 4d + d) per block, patch embed, final norm
    scales = torch.cat([p.detach() for name, p in model.named_parameters() if ".ssf_scale." in name])
    shifts = torch.cat([p.detach() for name, p in model.named_parameters() if ".ssf_shift." in name])
    assert abs(scales.mean().item() - 1) < 1e-3 and abs(scales.std().item() - 0.02) < 1e-3
    assert abs(shifts.mean().item()) < 1e-3 and abs(shifts.std().item() - 0.02) < 1e-3


# METHODS.md's sites in an HF ViT (module paths of this transformers release), each applying y = γ ⊙ x + β to the
# module's output: the patch embeddings' tokens (before CLS and the positions), both norms of every block, q, k, v,
# the attention output, fc1 before the activation, fc2 before the residual add, and the final norm.
BLOCK_SITES = ("layernorm_before", "attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj",
               "layernorm_after", "mlp.fc1", "mlp.fc2")  # fmt: skip


def ssf_values(model, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    layer = model.task_model.backbone.get_submodule(path)
    return layer.ssf_scale["default"], layer.ssf_shift["default"]


def test_forward_matches_the_formula_applied_by_hooks(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="ssf", labels=LABELS)
    perturb_trainable(model, seed=3, scale=0.3)
    model.eval()
    plain = ImageClassifier(load_backbone(str(vit_path)), list(LABELS)).eval()
    plain.classifier.load_state_dict(model.task_model.classifier.modules_to_save["default"].state_dict())
    sites = {"embeddings.patch_embeddings": ssf_values(model, "embeddings.patch_embeddings.projection")}
    for i in range(len(plain.backbone.layers)):
        sites |= {f"layers.{i}.{site}": ssf_values(model, f"layers.{i}.{site}") for site in BLOCK_SITES}
    sites["layernorm"] = ssf_values(model, "layernorm")
    for path, (scale, shift) in sites.items():
        plain.backbone.get_submodule(path).register_forward_hook(
            lambda module, args, output, scale=scale, shift=shift: scale * output + shift
        )
    with torch.no_grad():
        assert torch.allclose(model(images()).logits, plain(pixel_values=images()).logits, atol=1e-5)


def test_merging_folds_into_the_weights_and_keeps_the_logits(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="ssf", labels=LABELS)
    perturb_trainable(model, seed=4, scale=0.3)
    model.eval()
    with torch.no_grad():
        before = model(images()).logits
        plain = model.merge_and_unload()
        assert not any(".ssf_" in name for name, _ in plain.named_parameters())
        assert torch.allclose(plain(pixel_values=images()).logits, before, atol=1e-5)


@pytest.mark.parametrize("kind, layer", [("clip", "Conv2d"), ("beit", "Linear")])
def test_merging_is_refused_where_a_shift_has_no_bias_to_fold_into(
    tiny_backbone_path: Callable[[str], Path], kind: str, layer: str
) -> None:
    model = AutoAdapter.from_backbone(str(tiny_backbone_path(kind)), method="ssf", labels=LABELS)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(NotImplementedError, match=f"cannot be merged.*this {layer} has none.*nothing was merged"):
        model.merge()
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())


def test_only_the_heads_weight_is_decayed() -> None:
    model = vit_b16_ssf()
    config = TrainingConfig.resolve(get_method("ssf").recipe, {})
    assert (config.optimizer, config.scheduler, config.weight_decay) == ("adamw", "cosine", 0.05)
    optimizer = build_optimizer(model, config, lr=1e-3)
    decayed = [p for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]]
    assert [p.shape for p in decayed] == [torch.Size([2, 768])]


def test_a_negative_init_std_is_refused(vit_path: Path) -> None:
    with pytest.raises(ValueError, match="init_std"):
        AutoAdapter.from_backbone(str(vit_path), method="ssf", labels=LABELS, init_std=-1.0)
