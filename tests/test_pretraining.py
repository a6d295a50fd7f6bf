"""The zoo's small pretrained backbones: made deterministically, published to the local Hub once, remade when their
recipe changes, and really pretrained (they transfer to shapes the ViT never saw; the CLIP names colours zero-shot)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import HfApi
from safetensors.torch import load_file

from adapterzoo import AutoAdapter, evaluate, train
from adapterzoo.data import COLORS, builtin_dataset
from adapterzoo.pretraining import TARGET_SHAPES, local_hub, pretrained_backbone, recipe_for, recipes
from adapterzoo.pretraining.pretrain import pretrain


def small(kind: str) -> recipes.PretrainingRecipe:
    return dataclasses.replace(recipe_for(kind, quick=True), steps=5, images_per_class=4)


@pytest.mark.parametrize("kind", ["vit", "clip"])
def test_pretraining_is_deterministic_and_saves_a_hub_checkpoint(kind: str, tmp_path: Path) -> None:
    first = pretrain(small(kind), tmp_path / "a", progress=False)
    second = pretrain(small(kind), tmp_path / "b", progress=False)
    weights = load_file(first / "model.safetensors")
    again = load_file(second / "model.safetensors")
    assert weights.keys() == again.keys() and all(torch.equal(weights[k], again[k]) for k in weights)
    assert json.loads((first / "pretraining.json").read_text())["recipe"] == small(kind).as_dict()
    assert "library_name: transformers" in (first / "README.md").read_text()
    model = transformers.AutoModel.from_pretrained(first)
    assert model.config.model_type == kind and transformers.AutoImageProcessor.from_pretrained(first) is not None
    if kind == "clip":
        assert transformers.AutoProcessor.from_pretrained(first).tokenizer("a red star")["input_ids"][1:-1] != []


def test_the_pretrained_backbones_are_published_once_and_reused(zoo_hub_root: Path) -> None:
    with local_hub(zoo_hub_root):
        for kind, repo_id in (("vit", "adapterzoo/vit-shapes-quick"), ("clip", "adapterzoo/clip-captions-quick")):
            assert pretrained_backbone(kind, quick=True, progress=False) == repo_id
            assert pretraining_commits(repo_id) == 1
            assert {"config.json", "model.safetensors", "pretraining.json", "README.md"} <= set(
                HfApi().list_repo_files(repo_id)
            )


def test_a_changed_recipe_is_pretrained_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(recipes.RECIPES, "vit-quick", small("vit"))
    with local_hub(tmp_path / "hub"):
        pretrained_backbone("vit", quick=True, progress=False)
        pretrained_backbone("vit", quick=True, progress=False)
        assert pretraining_commits("adapterzoo/vit-shapes-quick") == 1
        monkeypatch.setitem(recipes.RECIPES, "vit-quick", dataclasses.replace(small("vit"), steps=6))
        pretrained_backbone("vit", quick=True, progress=False)
        assert pretraining_commits("adapterzoo/vit-shapes-quick") == 2


def pretraining_commits(repo_id: str) -> int:
    return sum(commit.title.startswith("Pretrain ") for commit in HfApi().list_repo_commits(repo_id))


def linear_probe_accuracy(backbone, processor, output_dir: Path) -> float:
    train_data = builtin_dataset("shapes", "train", num_per_class=32, classes=TARGET_SHAPES)
    test_data = builtin_dataset("shapes", "test", num_per_class=25, classes=TARGET_SHAPES)
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(backbone, method="linear-probe", labels=TARGET_SHAPES, image_processor=processor)
    train(model, train_data, epochs=30, batch_size=32, lr=1e-2, output_dir=output_dir, progress=False)
    return evaluate(model, test_data)["accuracy"]


def test_the_pretrained_vit_transfers_to_shapes_it_never_saw(zoo_hub_root: Path, tmp_path: Path) -> None:
    with local_hub(zoo_hub_root):
        vit = pretrained_backbone("vit", quick=True, progress=False)
        processor = transformers.AutoImageProcessor.from_pretrained(vit)
        random_vit = transformers.ViTModel(transformers.AutoConfig.from_pretrained(vit), add_pooling_layer=False)
        pretrained = linear_probe_accuracy(vit, processor, tmp_path / "pretrained")
        random = linear_probe_accuracy(random_vit, processor, tmp_path / "random")
    assert pretrained >= random + 0.1, (pretrained, random)


def test_the_pretrained_clip_names_colours_zero_shot(zoo_hub_root: Path) -> None:
    with local_hub(zoo_hub_root):
        clip = pretrained_backbone("clip", quick=True, progress=False)
        model = AutoAdapter.from_backbone(clip, method="zero-shot", labels=list(COLORS))
        accuracy = evaluate(model, builtin_dataset("colors", "test", num_per_class=10))["accuracy"]
    assert accuracy >= 0.5  # chance: 1/8
