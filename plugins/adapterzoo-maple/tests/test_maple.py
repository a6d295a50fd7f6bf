"""MaPLe and CoOp: the conformance suite, the paper's parameter counts, initialisation, and the forward pass against
the formulas, on a tiny CLIP with the zoo's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
from peft import get_peft_model

from adapterzoo import AutoAdapter, CLIPClassifier, get_method, train
from adapterzoo.backbones import load_clip
from adapterzoo.data import builtin_dataset
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, CLIPMethodConformance, images, perturb_trainable, save_tiny_backbone


class TestCoOp(CLIPMethodConformance):
    method = "coop"
    options = {"num_context": 4}


class TestCoOpFromAPhrase(CLIPMethodConformance):
    method = "coop"
    options = {"context_init": "a photo of a"}


class TestMaPLe(CLIPMethodConformance):
    method = "maple"
    options = {"depth": 3}


class TestMaPLeRandomContext(CLIPMethodConformance):
    method = "maple"
    options = {"depth": 2, "context_init": None}


def clip_b16_classifier() -> CLIPClassifier:
    """A CLIP ViT-B/16-shaped model (text width 512, vision width 768, 12 layers each), random weights."""
    config = transformers.CLIPConfig(vision_config={"patch_size": 16}, projection_dim=512)
    return CLIPClassifier(transformers.CLIPModel(config), builtin_clip_tokenizer(), ["cat", "dog"])


def test_maple_trains_3_555_072_parameters_on_clip_b16() -> None:
    task_model = clip_b16_classifier()
    peft_model = get_peft_model(task_model, get_method("maple").make_config(task_model))
    counts: dict[str, int] = {}
    for name, param in peft_model.named_parameters():
        if param.requires_grad:
            part = name.split(".maple_")[1].split(".")[0]
            counts[part] = counts.get(part, 0) + param.numel()
    assert counts == {
        "context": 2 * 512,
        "vision_projection": 512 * 768 + 768,
        "deep_text": 8 * 2 * 512,
        "deep_projections": 8 * (512 * 768 + 768),
    }
    assert sum(counts.values()) == 3_555_072 == 2 * 512 * 9 + 9 * (512 * 768 + 768)


def test_coop_trains_16_context_vectors() -> None:
    task_model = clip_b16_classifier()
    peft_model = get_peft_model(task_model, get_method("coop").make_config(task_model))
    assert peft_model.get_nb_trainable_parameters()[0] == 16 * 512 == 8_192


def test_maple_starts_from_the_words_a_photo_and_keeps_of_a_frozen(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="maple", labels=LABELS, depth=3)
    learner = model.task_model.clip.text_model.embeddings.token_embedding
    tokenizer = model.task_model.tokenizer
    words = tokenizer("a photo")["input_ids"][1:-1]
    assert torch.equal(learner.maple_context["default"], learner.base_layer.weight[words])
    assert learner.active_template() == "a photo of a {}."
    projections = learner.maple_deep_projections["default"]
    assert all(torch.equal(p.weight, projections[0].weight) for p in projections)  # clones of one layer
    assert not torch.equal(projections[0].weight, learner.maple_vision_projection["default"].weight)


def test_random_contexts_use_placeholder_words_and_n_0_002() -> None:
    task_model = clip_b16_classifier()
    peft_model = get_peft_model(task_model, get_method("coop").make_config(task_model))
    context = peft_model.base_model.model.clip.text_model.embeddings.token_embedding
    assert context.active_template() == " ".join(["X"] * 16) + " {}."
    assert abs(context.coop_context["default"].std().item() - 0.02) < 0.003
    maple = clip_b16_classifier()
    maple_model = get_peft_model(maple, get_method("maple").make_config(maple))
    deep = maple_model.base_model.model.clip.text_model.embeddings.token_embedding.maple_deep_text["default"]
    assert deep.shape == (8, 2, 512) and abs(deep.std().item() - 0.02) < 0.002


def causal_mask(length: int) -> torch.Tensor:
    return torch.full((length, length), float("-inf")).triu(1)[None, None]


def formula_logits(model, plain: transformers.CLIPModel, pixel_values: torch.Tensor, depth: int) -> torch.Tensor:
    """MaPLe as METHODS.md writes it, on an untouched CLIP with the same weights."""
    learner = model.task_model.clip.text_model.embeddings.token_embedding
    ctx = learner.maple_context["default"]
    deep_text = learner.maple_deep_text["default"]
    to_vision = [learner.maple_vision_projection["default"], *learner.maple_deep_projections["default"]]
    n, classifier = ctx.shape[0], model.task_model
    prompts = [f"a photo of a {c}." for c in classifier.class_names]
    ids = classifier.tokenizer(prompts, padding=True, return_tensors="pt")["input_ids"]
    text = plain.text_model
    x = text.embeddings.token_embedding(ids)
    x = torch.cat([x[:, :1], ctx.expand(len(ids), -1, -1), x[:, 1 + n :]], dim=1)
    x = x + text.embeddings.position_embedding(torch.arange(ids.shape[1]))
    for i, layer in enumerate(text.encoder.layers):
        if 1 <= i < depth:
            x = torch.cat([x[:, :1], deep_text[i - 1].expand(len(ids), -1, -1), x[:, 1 + n :]], dim=1)
        x = layer(x, causal_mask(ids.shape[1]))
    x = text.final_layer_norm(x)
    eot = (ids == classifier.tokenizer.eos_token_id).int().argmax(-1)
    text_features = F.normalize(plain.text_projection(x[torch.arange(len(ids)), eot]), dim=-1)
    vision = plain.vision_model
    v = vision.embeddings(pixel_values)
    v = torch.cat([v, to_vision[0](ctx).expand(len(v), -1, -1)], dim=1)
    v = vision.pre_layrnorm(v)
    for i, layer in enumerate(vision.encoder.layers):
        if 1 <= i < depth:
            v = torch.cat([v[:, :-n], to_vision[i](deep_text[i - 1]).expand(len(v), -1, -1)], dim=1)
        v = layer(v, None)
    image_features = F.normalize(plain.visual_projection(vision.post_layernorm(v[:, 0])), dim=-1)
    return plain.logit_scale.exp() * image_features @ text_features.T


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_maple_forward_matches_the_formula(clip_path: Path, depth: int) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="maple", labels=LABELS, depth=depth)
    perturb_trainable(model, seed=6, scale=0.5)
    model.eval()
    plain, _ = load_clip(str(clip_path))
    with torch.no_grad():
        assert torch.allclose(model(images()).logits, formula_logits(model, plain.eval(), images(), depth), atol=1e-5)


def test_coop_forward_matches_the_formula(clip_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="coop", labels=LABELS, num_context=4)
    perturb_trainable(model, seed=7, scale=0.5)
    model.eval()
    context = model.task_model.clip.text_model.embeddings.token_embedding.coop_context["default"]
    plain, tokenizer = load_clip(str(clip_path))
    ids = tokenizer([f"X X X X {c}." for c in LABELS], padding=True, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        tokens = plain.text_model.embeddings.token_embedding(ids)
        tokens = torch.cat([tokens[:, :1], context.expand(3, -1, -1), tokens[:, 5:]], dim=1)
        x = tokens + plain.text_model.embeddings.position_embedding(torch.arange(ids.shape[1]))
        for layer in plain.text_model.encoder.layers:
            x = layer(x, causal_mask(ids.shape[1]))
        x = plain.text_model.final_layer_norm(x)
        eot = (ids == tokenizer.eos_token_id).int().argmax(-1)
        text = F.normalize(plain.text_projection(x[torch.arange(3), eot]), dim=-1)
        image = F.normalize(plain.get_image_features(pixel_values=images()).pooler_output, dim=-1)
        expected = plain.logit_scale.exp() * image @ text.T
        assert torch.allclose(model(images()).logits, expected, atol=1e-5)


def test_coop_trains_on_cached_image_features_and_maple_cannot(clip_path: Path, tmp_path: Path) -> None:
    data = builtin_dataset("shapes", "train", num_per_class=2, classes=["circle", "square"])
    coop = AutoAdapter.from_backbone(str(clip_path), method="coop", labels=["circle", "square"], num_context=2)
    train(coop, data, epochs=1, batch_size=2, augment=False, output_dir=tmp_path / "coop", progress=False)
    assert json.loads((tmp_path / "coop" / "log.jsonl").read_text().splitlines()[0])["cached_features"] is True
    maple = AutoAdapter.from_backbone(str(clip_path), method="maple", labels=["circle", "square"], depth=2)
    with pytest.raises(ValueError, match="MaPLe prompts the vision tower too"):
        train(maple, data, cache_features="yes", augment=False, output_dir=tmp_path / "maple", progress=False)


def test_maple_refuses_a_vision_only_backbone_and_a_depth_beyond_the_towers(clip_path: Path, tmp_path: Path) -> None:
    vit = save_tiny_backbone(tmp_path / "vit", "vit")
    with pytest.raises(Exception, match="Method 'maple'.*'vit' model.*needs a vision-language CLIP"):
        AutoAdapter.from_backbone(str(vit), method="maple", labels=LABELS)
    with pytest.raises(ValueError, match="depth 9 exceeds the towers' 3 layers"):
        AutoAdapter.from_backbone(str(clip_path), method="maple", labels=LABELS)
    with pytest.raises(ValueError, match="context_init 'a photo' has 2 tokens; 3"):
        AutoAdapter.from_backbone(str(clip_path), method="maple", labels=LABELS, depth=2, num_context=3,
                                  context_init="a photo")  # fmt: skip


def test_maple_round_trips_through_the_hub_with_its_classes(clip_path: Path, tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        plain, _ = load_clip(str(clip_path))
        plain.push_to_hub("zoo/tiny-clip")
        transformers.CLIPProcessor.from_pretrained(str(clip_path)).push_to_hub("zoo/tiny-clip")
        model = AutoAdapter.from_backbone("zoo/tiny-clip", method="maple", labels=LABELS, depth=2)
        perturb_trainable(model, seed=3)
        model.task_model.set_classes(["star", "circle"])
        model.push_to_hub("me/clip-maple")
        loaded = AutoAdapter.from_pretrained("me/clip-maple")
        assert loaded.labels == ["star", "circle"] and loaded.backbone_name == "zoo/tiny-clip"
        with torch.no_grad():
            assert torch.equal(loaded(images()).logits, model.eval()(images()).logits)
        readme = Path(transformers.utils.cached_file("me/clip-maple", "README.md")).read_text()
        assert "pip install adapterzoo-maple" in readme and "clip-classification" in readme
