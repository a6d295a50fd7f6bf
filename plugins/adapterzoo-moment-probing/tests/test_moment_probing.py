"""Moment Probing: the conformance suite, the paper's parameter counts, and the head and PSRP against their formulas."""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, ImageClassifier, UnsupportedBackboneError, get_method, train
from adapterzoo.backbones import load_backbone
from adapterzoo.data import builtin_dataset
from adapterzoo.testing import LABELS, VISION_KINDS, MethodConformance, images, perturb_trainable, save_tiny_backbone


class TestMomentProbing(MethodConformance):
    method = "moment-probing"
    options = {"hidden_dim": 32}


class TestMomentProbingPlus(MethodConformance):
    method = "moment-probing"
    options = {"hidden_dim": 32, "plus": True, "psrp_reduction": 4}
    kinds = tuple(kind for kind in VISION_KINDS if kind != "swin")  # PSRP refuses hierarchical backbones


def attach(backbone: transformers.PreTrainedModel, labels: list[str], **options):
    task_model = ImageClassifier(backbone, labels)
    method = get_method("moment-probing")
    return get_peft_model(task_model, method.make_config(task_model, head_module="classifier", **options))


@pytest.mark.parametrize("plus, expected", [(False, 4_047_146), (True, 4_489_514)])
def test_parameter_counts_on_vit_b16_with_1000_classes(plus: bool, expected: int) -> None:
    backbone = transformers.ViTModel(transformers.ViTConfig(), add_pooling_layer=False)
    model = attach(backbone, [str(i) for i in range(1000)], plus=plus)
    counts = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            part = name.split(".mp_")[1].split(".")[2 if "mp_head" in name else 0]
            counts[part] = counts.get(part, 0) + param.numel()
    assert sum(counts.values()) == expected
    assert counts["proj"] == 768 * 512 + 512 and counts["norm"] == 256 and counts["convs"] == 162
    assert counts["classifier1"] + counts["classifier2"] == 3_653_000  # what the paper reports as MP's 3.65M
    assert counts["classifier2"] == 2883 * 1000 + 1000  # the reference's hard-coded 2883 = 3 x 31 x 31
    if plus:
        assert counts["psrp"] == 12 * (768 * 16 * 3) == 442_368


def formula_logits(mp, tokens: torch.Tensor, pairs, normalise: bool, per_channel: bool, prefix: int = 1):
    """METHODS.md's MP head, written out: CLS logits and cross-covariance logits of the patch tokens, averaged (the mean
    patch token stands in for CLS on a backbone without one)."""
    patches = tokens[:, prefix:]
    cls = tokens[:, 0] if prefix else patches.mean(dim=1)
    z = patches @ mp.proj.weight.T + mp.proj.bias
    b, n, width = z.shape
    g = width // 4
    groups = [z[:, :, k * g : (k + 1) * g] for k in range(4)]
    normed = [F.layer_norm(x, (g,), mp.norm.weight, mp.norm.bias) for x in groups]
    matrices = []
    for i, j in pairs:
        x, y = normed[i], normed[j]
        if per_channel:
            x, y = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
        else:
            x, y = x - x.mean((1, 2), keepdim=True), y - y.mean((1, 2), keepdim=True)
        m = torch.einsum("bnc,bnd->bcd", x, y) / n
        matrices.append(m / m.norm(dim=1, keepdim=True).clamp_min(1e-12) if normalise else m)
    stack = torch.stack(matrices, 1)
    conv1, conv2 = mp.convs[0].weight, mp.convs[2].weight
    features = F.conv2d(F.gelu(F.conv2d(stack, conv1, stride=2)), conv2, stride=2).reshape(b, -1)
    first = cls @ mp.classifier1.weight.T + mp.classifier1.bias
    second = features @ mp.classifier2.weight.T + mp.classifier2.bias
    return (first + second) / 2


@pytest.mark.parametrize(
    "cross_type, pairs, normalise",
    [
        ("near", [(0, 1), (1, 2), (2, 3)], True),
        ("n/2", [(0, 2), (1, 3)], True),
        ("cn2", list(combinations(range(4), 2)), False),
    ],
)
@pytest.mark.parametrize("mean_removal", ["sample", "channel"])
def test_the_head_matches_the_formula(cross_type: str, pairs, normalise: bool, mean_removal: str) -> None:
    from adapterzoo_moment_probing.config import MomentProbingConfig
    from adapterzoo_moment_probing.layer import MomentProbing

    torch.manual_seed(0)
    config = MomentProbingConfig(hidden_dim=64, cross_type=cross_type, mean_removal=mean_removal)
    mp = MomentProbing(hidden_size=24, num_labels=5, num_prefix_tokens=1, config=config)
    for module in (mp.norm, mp.convs[0], mp.convs[2]):
        perturb_trainable(module, seed=1, scale=0.3)
    tokens = torch.randn(3, 1 + 49, 24)
    expected = formula_logits(mp, tokens, pairs, normalise, mean_removal == "channel")
    assert torch.allclose(mp(tokens), expected, atol=1e-5)


@pytest.mark.parametrize("prefix", [0, 2, 3], ids=["no CLS (SigLIP, Swin)", "CLS + distillation (DeiT)", "registers"])
def test_the_head_reads_cls_and_only_the_patch_tokens(prefix: int) -> None:
    from adapterzoo_moment_probing.config import MomentProbingConfig
    from adapterzoo_moment_probing.layer import MomentProbing

    torch.manual_seed(0)
    config = MomentProbingConfig(hidden_dim=64)
    mp = MomentProbing(hidden_size=24, num_labels=5, num_prefix_tokens=prefix, config=config)
    tokens = torch.randn(3, prefix + 49, 24)
    expected = formula_logits(mp, tokens, [(0, 1), (1, 2), (2, 3)], True, False, prefix=prefix)
    assert torch.allclose(mp(tokens), expected, atol=1e-5)


def test_mp_plus_refuses_a_hierarchical_backbone(tmp_path: Path) -> None:
    swin = save_tiny_backbone(tmp_path / "swin", "swin")
    with pytest.raises(UnsupportedBackboneError, match="plus=True .*'swin' architecture: PSRP shares one"):
        AutoAdapter.from_backbone(str(swin), method="moment-probing", labels=LABELS, plus=True)
    AutoAdapter.from_backbone(str(swin), method="moment-probing", labels=LABELS, hidden_dim=32)  # MP itself serves it


def test_linear_layers_start_trunc_normal_and_the_rest_at_pytorch_defaults() -> None:
    from adapterzoo_moment_probing.config import MomentProbingConfig
    from adapterzoo_moment_probing.layer import MomentProbing

    mp = MomentProbing(hidden_size=768, num_labels=1000, num_prefix_tokens=1, config=MomentProbingConfig())
    for linear in (mp.proj, mp.classifier1, mp.classifier2):
        assert abs(linear.weight.std().item() - 0.02) < 0.001  # timm's trunc_normal_: cut at +-2, i.e. 100 std
        assert torch.all(linear.bias == 0)
    assert torch.all(mp.norm.weight == 1) and torch.all(mp.norm.bias == 0)


def test_psrp_recalibrates_the_mlp_branch_as_the_formula_says(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="moment-probing", labels=LABELS, hidden_dim=32, plus=True)
    perturb_trainable(model, seed=2, scale=0.3)
    model.eval()
    plain = load_backbone(str(vit_path)).eval()
    wrapped_layers = model.task_model.backbone.layers
    with torch.no_grad():
        h = plain.embeddings(images())
        for layer, wrapped in zip(plain.layers, wrapped_layers, strict=True):
            h = h + layer.attention(layer.layernorm_before(h))[0]
            psrp = wrapped.mlp.mp_psrp["default"]
            hidden = F.relu(h @ psrp.down.weight.T)
            w, b = hidden @ psrp.up_weight.weight.T, hidden @ psrp.up_bias.weight.T
            h = h + b + (1 + w) * layer.mlp(layer.layernorm_after(h))
        expected = plain.layernorm(h)
        assert torch.allclose(model.task_model.encode(images()), expected, atol=1e-5)


def test_mp_trains_on_cached_features_and_mp_plus_says_why_it_cannot(vit_path: Path, tmp_path: Path) -> None:
    data = builtin_dataset("shapes", "train", num_per_class=3, classes=["circle", "square", "star"])
    labels = ["circle", "square", "star"]
    mp = AutoAdapter.from_backbone(str(vit_path), method="moment-probing", labels=labels, hidden_dim=32)
    before = {n: p.clone() for n, p in mp.named_parameters() if p.requires_grad}
    train(mp, data, epochs=2, batch_size=3, output_dir=tmp_path / "mp", progress=False)
    start = json.loads((tmp_path / "mp" / "log.jsonl").read_text().splitlines()[0])
    assert start["cached_features"] is True
    assert all(not torch.equal(before[n], p) for n, p in mp.named_parameters() if p.requires_grad)
    plus = AutoAdapter.from_backbone(str(vit_path), method="moment-probing", labels=labels, hidden_dim=32, plus=True)
    with pytest.raises(ValueError, match="MP\\+ \\(plus=True\\) recalibrates every block with PSRP"):
        train(plus, data, cache_features="yes", output_dir=tmp_path / "plus", progress=False)


def test_merging_is_refused_with_a_reason(vit_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="moment-probing", labels=LABELS, hidden_dim=32)
    with pytest.raises(NotImplementedError, match="cannot be merged.*depend on the input"):
        model.merge()


@pytest.mark.parametrize(
    "options, message",
    [({"cross_type": "far"}, "cross_type"), ({"mean_removal": "none"}, "mean_removal"), ({"hidden_dim": 30}, "split")],
)
def test_invalid_option_values_are_refused(vit_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AutoAdapter.from_backbone(str(vit_path), method="moment-probing", labels=LABELS, **options)
