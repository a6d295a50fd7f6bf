"""CoCoOp: the conformance suite, the paper's parameter count, initialisation, the batched text pass against the
reference's per-image loop written out from the formula, the refusals, and the base-to-novel protocol, on a tiny
CLIP with the zoo's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from adapterzoo_maple.benchmarks import cocoop_parameters, cocoop_rows, cocoop_text_pass_speedup
from peft import get_peft_model

from adapterzoo import AutoAdapter, CLIPClassifier, base_to_novel, get_method
from adapterzoo.backbones import load_clip
from adapterzoo.benchmarks.shapes import SHAPES
from adapterzoo.data import builtin_dataset
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.testing import LABELS, CLIPMethodConformance, images, perturb_trainable, save_tiny_backbone


class TestCoCoOp(CLIPMethodConformance):
    method = "cocoop"


def clip_b16_classifier() -> CLIPClassifier:
    """A CLIP ViT-B/16-shaped model (text width 512, image features 512), random weights."""
    one_layer = {"num_hidden_layers": 1}  # the count does not depend on the depth
    config = transformers.CLIPConfig(vision_config={"patch_size": 16, **one_layer}, text_config=one_layer,
                                     projection_dim=512)  # fmt: skip
    return CLIPClassifier(transformers.CLIPModel(config), builtin_clip_tokenizer(), ["cat", "dog"])


def trainable_by_part(options: dict) -> dict[str, int]:
    task_model = clip_b16_classifier()
    peft_model = get_peft_model(task_model, get_method("cocoop").make_config(task_model, **options))
    counts: dict[str, int] = {}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            part = name.split(".cocoop_")[1].split(".")[0]
            counts[part] = counts.get(part, 0) + param.numel()
    return counts


def test_cocoop_trains_35_360_parameters_on_clip_b16() -> None:
    counts = trainable_by_part({})
    assert counts == {"context": 4 * 512, "meta_net": (512 * 32 + 32) + (32 * 512 + 512)}
    assert sum(counts.values()) == 35_360 == cocoop_parameters(SHAPES["base"], 100)
    assert sum(trainable_by_part({"context_init": None, "num_context": 16}).values()) == 41_504
    assert cocoop_rows(SHAPES["base"])[0].formula is cocoop_parameters


def test_cocoop_starts_from_a_photo_of_a_with_a_default_meta_net(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="cocoop", labels=LABELS)
    learner = model.task_model.clip.text_model.embeddings.token_embedding
    words = model.task_model.tokenizer("a photo of a")["input_ids"][1:-1]
    assert torch.equal(learner.cocoop_context["default"], learner.base_layer.weight[words])
    assert learner.active_template() == "a photo of a {}."
    net = learner.cocoop_meta_net["default"]
    feature_dim = model.task_model.clip.config.projection_dim  # 16 on the tiny CLIP: a hidden width of 1
    assert net.linear1.weight.shape == (feature_dim // 16, feature_dim)
    assert net.linear2.weight.shape == (learner.base_layer.weight.shape[1], feature_dim // 16)
    assert net.linear1.weight.abs().max() <= 1 / feature_dim**0.5  # PyTorch's default: U(±1/√fan_in)
    assert get_method("cocoop").recipe == {
        "optimizer": "sgd", "lr": 0.002, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "cosine", "epochs": 10,
        "batch_size": 1, "warmup_ratio": 0.1, "warmup_lr": 1e-5, "augment": True,
    }  # fmt: skip


def per_image_loop(model, plain: transformers.CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """CoCoOp as the reference runs it: per image, π = W₂ ReLU(W₁ f̂ + b₁) + b₂ added to every context vector, then
    every class's prompt "[SOS][ctx+π]{class}.[EOS]" alone through an untouched CLIP's text tower."""
    learner = model.task_model.clip.text_model.embeddings.token_embedding
    ctx, net = learner.cocoop_context["default"], learner.cocoop_meta_net["default"]
    tokenizer, text = model.task_model.tokenizer, plain.text_model
    rows = []
    for pixels in pixel_values:
        image = F.normalize(plain.get_image_features(pixel_values=pixels[None]).pooler_output[0], dim=-1)
        hidden = F.relu(F.linear(image, net.linear1.weight, net.linear1.bias))
        bias = F.linear(hidden, net.linear2.weight, net.linear2.bias)
        logits = []
        for name in model.task_model.class_names:
            ids = torch.tensor(tokenizer(f"a photo of a {name}.")["input_ids"])
            tokens = text.embeddings.token_embedding(ids)
            tokens = torch.cat([tokens[:1], ctx + bias, tokens[1 + len(ctx) :]])
            x = (tokens + text.embeddings.position_embedding(torch.arange(len(ids))))[None]
            mask = torch.full((len(ids), len(ids)), float("-inf")).triu(1)[None, None]
            for layer in text.encoder.layers:
                x = layer(x, mask)
            pooled = text.final_layer_norm(x)[0, len(ids) - 1]  # the end-of-text token, last when unpadded
            logits.append(plain.logit_scale.exp() * image @ F.normalize(plain.text_projection(pooled), dim=-1))
        rows.append(torch.stack(logits))
    return torch.stack(rows)


def test_the_batched_text_pass_equals_the_per_image_loop(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="cocoop", labels=["cat", "dog", "tall bird"])
    perturb_trainable(model, seed=5, scale=0.5)
    model.eval()
    plain, _ = load_clip(str(clip_path))
    with torch.no_grad():
        batched = model(images(5)).logits
        assert torch.allclose(batched, per_image_loop(model, plain.eval(), images(5)), atol=1e-5)
        one_by_one = torch.cat([model(images(5)[i : i + 1]).logits for i in range(5)])
        assert torch.allclose(batched, one_by_one, atol=1e-5)
        assert not torch.allclose(batched[0] - batched[0].mean(), batched[1] - batched[1].mean())


def test_cocoop_refuses_a_backbone_without_a_text_tower_and_text_without_images(
    clip_path: Path, tmp_path: Path
) -> None:
    vit = save_tiny_backbone(tmp_path / "vit", "vit")
    with pytest.raises(Exception, match="Method 'cocoop'.*'vit' model.*needs a vision-language CLIP"):
        AutoAdapter.from_backbone(str(vit), method="cocoop", labels=LABELS)
    model = AutoAdapter.from_backbone(str(clip_path), method="cocoop", labels=LABELS)
    with pytest.raises(ValueError, match="conditions the class prompts on each image: pass the image features"):
        model.task_model.encode_text()
    ids = model.task_model.prompt_ids("a photo of a {}.")
    with pytest.raises(RuntimeError, match="CoCoOp's prompts depend on the image"):
        model.task_model.clip.get_text_features(input_ids=ids)
    with model.peft_model.disable_adapter():
        assert model.task_model.encode_text().shape == (3, model.task_model.clip.config.projection_dim)


def test_cocoop_trains_on_cached_features_in_the_base_to_novel_protocol(clip_path: Path, tmp_path: Path) -> None:
    shapes = ["circle", "square", "triangle", "cross"]
    train_data = builtin_dataset("shapes", "train", num_per_class=2, classes=shapes)
    test_data = builtin_dataset("shapes", "test", num_per_class=2, classes=shapes)
    model = AutoAdapter.from_backbone(str(clip_path), method="cocoop", labels=shapes)
    result = base_to_novel(model, train_data, test_data, shots=2, epochs=1, batch_size=2, augment=False,
                           output_dir=tmp_path, progress=False)  # fmt: skip
    assert result.training.steps == 2 and model.labels == ["circle", "square"]
    assert result.novel_classes == ["triangle", "cross"]
    assert json.loads((tmp_path / "log.jsonl").read_text().splitlines()[0])["cached_features"] is True
    assert 0 <= result.harmonic_mean <= 1


def test_the_text_pass_speedup_is_measured() -> None:
    measured = cocoop_text_pass_speedup("tiny", batch=2, classes=3, repeats=1)
    assert measured["batched_seconds"] > 0 and measured["speedup"] > 0
