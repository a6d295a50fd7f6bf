"""Backbones: loading, parts found by structure, linear-layer roles resolved per architecture."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers
from peft import LNTuningConfig, LoraConfig, get_peft_model, inject_adapter_in_model
from safetensors.torch import load_file, save_file

from adapterzoo import AutoAdapter, CheckpointError, Method, UnsupportedBackboneError, architectures, get_method
from adapterzoo.architectures import ARCHITECTURES, Architecture, tiny_kinds
from adapterzoo.backbones import (
    describe_backbone,
    load_backbone,
    load_image_processor,
    mlp_block,
    resolve_linear_roles,
    role_of,
    role_patterns,
)
from adapterzoo.image_classifier import ImageClassifier
from adapterzoo.testing import KINDS, VISION_KINDS, save_tiny_backbone, tiny_backbone
from adapterzoo.testing.matrix import Cell, render


def test_vit_parts_are_found() -> None:
    parts = describe_backbone(tiny_backbone("vit"))
    assert (parts.architecture, parts.embeddings, parts.layers, parts.pre_norm, parts.final_norm) == (
        "vit",
        "embeddings",
        "layers",
        None,
        "layernorm",
    )
    assert (parts.hidden_size, parts.num_layers, parts.num_prefix_tokens, parts.patch_size) == (32, 3, 1, 8)


def test_clip_parts_are_found_in_the_tower_and_in_the_full_model() -> None:
    tower = describe_backbone(tiny_backbone("clip_vision_model"))
    assert (tower.embeddings, tower.layers, tower.pre_norm, tower.final_norm) == (
        "embeddings",
        "encoder.layers",
        "pre_layrnorm",
        "post_layernorm",
    )
    full = describe_backbone(tiny_backbone("clip"))
    assert (full.root, full.layers, full.final_norm) == (
        "vision_model",
        "vision_model.encoder.layers",
        "vision_model.post_layernorm",
    )


def test_parts_are_found_inside_a_task_model() -> None:
    parts = describe_backbone(ImageClassifier(tiny_backbone("vit"), ["a", "b"]))
    assert (parts.embeddings, parts.layers) == ("backbone.embeddings", "backbone.layers")


@pytest.mark.parametrize(
    "kind, roles, expected",
    [
        ("vit", ["q", "v"], {"attention.q_proj", "attention.v_proj"}),
        ("vit", ["o", "fc1", "fc2"], {"attention.o_proj", "mlp.fc1", "mlp.fc2"}),
        ("clip_vision_model", ["q", "k", "v", "o"], {f"self_attn.{x}_proj" for x in "qkv"} | {"self_attn.out_proj"}),
    ],
)
def test_roles_resolve_to_the_backbones_own_linear_layers(kind: str, roles: list[str], expected: set[str]) -> None:
    model = tiny_backbone(kind)
    pattern = resolve_linear_roles(model, roles)
    matched = {name for name, _ in model.named_modules() if re.fullmatch(pattern, name)}
    layers = describe_backbone(model).layer_paths
    assert matched == {f"{layer}.{local}" for layer in layers for local in expected}
    assert all(isinstance(model.get_submodule(name), torch.nn.Linear) for name in matched)


def test_roles_cover_the_transformers_4_vit_names() -> None:
    old_names = {
        "attention.attention.query": "q",
        "attention.attention.key": "k",
        "attention.attention.value": "v",
        "attention.output.dense": "o",
        "intermediate.dense": "fc1",
        "output.dense": "fc2",
        "layernorm_before": None,
    }
    assert {name: role_of(name) for name in old_names} == old_names


def test_a_role_the_backbone_lacks_is_named() -> None:
    model = tiny_backbone("vit")
    with pytest.raises(UnsupportedBackboneError, match=r"no linear layer for role\(s\) \[.fc9.\]"):
        resolve_linear_roles(model, ["fc9"])


def test_a_full_clip_checkpoint_loads_its_vision_tower(clip_path: Path) -> None:
    tower = load_backbone(str(clip_path))
    assert isinstance(tower, transformers.CLIPVisionModel)
    full = transformers.CLIPModel.from_pretrained(clip_path)
    for name, tensor in tower.state_dict().items():
        assert torch.equal(tensor, full.vision_model.state_dict()[name])


def test_a_non_vision_backbone_is_refused_with_the_supported_list(tmp_path: Path) -> None:
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    transformers.BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(UnsupportedBackboneError, match="model_type 'bert'.*Supported architectures: vit, clip"):
        AutoAdapter.from_backbone(str(tmp_path), method="lora", labels=["a", "b"])


def test_a_method_that_cannot_serve_an_architecture_names_both() -> None:
    clip_only = Method(name="clip-only", config="a:b", tuner="a:c", tasks=(), summary="", backbones=("clip",))
    with pytest.raises(UnsupportedBackboneError, match="'clip-only' cannot serve the 'vit' architecture"):
        clip_only.check_backbone(describe_backbone(tiny_backbone("vit")))


def test_a_checkpoint_missing_backbone_weights_is_refused(vit_path: Path, tmp_path: Path) -> None:
    for file in vit_path.iterdir():
        (tmp_path / file.name).write_bytes(file.read_bytes())
    weights = load_file(tmp_path / "model.safetensors")
    del weights[next(name for name in weights if name.endswith(("query.weight", "q_proj.weight")))]
    save_file(weights, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match="lacks 1 weight"):
        load_backbone(str(tmp_path))


def test_a_backbone_saved_without_processor_gets_a_default_one_with_a_warning(tmp_path: Path) -> None:
    tiny_backbone("vit").save_pretrained(tmp_path)
    with pytest.warns(UserWarning, match="No image processor found"):
        processor = load_image_processor(load_backbone(str(tmp_path)))
    assert processor.size == {"height": 32, "width": 32}


def test_a_hub_backbone_is_loaded_by_id_and_its_exact_commit_recorded(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "cache" / "models--zoo--tiny-vit"
    save_tiny_backbone(repo / "snapshots" / commit, "vit")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    script = f"""
        import json
        from adapterzoo import AutoAdapter
        model = AutoAdapter.from_backbone("zoo/tiny-vit", method="lora", labels=["a", "b"])
        model.save_pretrained({str(tmp_path / "adapter")!r})
        loaded = AutoAdapter.from_pretrained({str(tmp_path / "adapter")!r})
        print(json.dumps([model.backbone_name, model.backbone_revision, loaded.backbone_revision]))
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == ["zoo/tiny-vit", commit, commit]
    record = json.loads((tmp_path / "adapter" / "adapterzoo_config.json").read_text())
    assert (record["backbone"], record["backbone_revision"]) == ("zoo/tiny-vit", commit)
    assert "base_model: zoo/tiny-vit" in (tmp_path / "adapter" / "README.md").read_text()


def test_a_whole_clip_model_is_refused_in_favour_of_its_vision_tower() -> None:
    with pytest.raises(UnsupportedBackboneError, match="Pass the vision tower.*'vision_model'"):
        ImageClassifier(tiny_backbone("clip"), ["a", "b"])
    assert ImageClassifier(tiny_backbone("clip").vision_model, ["a", "b"]).labels == ["a", "b"]


@pytest.mark.parametrize(
    "kind, prefix, classes, pooling, normed, final_norm",
    [
        ("deit", 2, 2, "cls", True, "layernorm"),
        ("dinov2", 1, 1, "cls+mean", True, "layernorm"),
        ("dinov2_with_registers", 3, 1, "cls+mean", True, "layernorm"),
        ("siglip", 0, 0, "mean", True, "post_layernorm"),
        ("beit", 1, 1, "mean", False, "pooler.layernorm"),
        ("swin", 0, 0, "mean", True, "layernorm"),
    ],
)
def test_each_architectures_prefix_tokens_norm_and_pooling_are_found(
    kind: str, prefix: int, classes: int, pooling: str, normed: bool, final_norm: str
) -> None:
    backbone = tiny_backbone(kind)
    backbone = backbone.vision_model if kind == "siglip" else backbone  # the tower of the whole SigLIP
    parts = describe_backbone(backbone)
    assert (parts.num_prefix_tokens, parts.num_class_tokens, parts.default_pooling) == (prefix, classes, pooling)
    assert (parts.sequence_is_normed, parts.final_norm) == (normed, final_norm)
    tokens = backbone.eval()(pixel_values=torch.randn(1, 3, 32, 32)).last_hidden_state
    patches = 16 if kind == "swin" else (32 // 8) ** 2  # Swin: 8x8 patches of 4 px, merged into 4x4 by stage 1
    assert tokens.shape[1] == prefix + patches


def test_swin_is_found_as_stages_of_blocks() -> None:
    parts = describe_backbone(tiny_backbone("swin"))
    assert parts.is_hierarchical and parts.layers == "encoder.layers" and parts.num_layers == 2
    assert parts.first_block == "encoder.layers.0.blocks.0"
    assert re.fullmatch(parts.block_pattern, "encoder.layers.1.blocks.1")
    assert parts.hidden_size == 64  # the last stage's width


def test_beit_normalises_the_mean_patch_token_with_its_pooler_norm() -> None:
    """BEiT with use_mean_pooling (the released default) has no per-token final norm: the default head, as
    transformers' BeitForImageClassification, normalises the mean of the patch tokens with the pooler's norm."""
    backbone = tiny_backbone("beit").eval()
    model = ImageClassifier(backbone, ["a", "b"])
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens = model.encode(pixel_values)
        assert torch.equal(tokens, backbone(pixel_values=pixel_values).last_hidden_state)
        head = model.classifier
        pooled = backbone.pooler.layernorm(tokens[:, 1:].mean(1))
        assert torch.allclose(model(pixel_values).logits, pooled @ head.weight.T + head.bias)
    assert model.settings() == {"type": "linear", "pooling": "mean", "final_norm": "pooled"}


def test_siglip_loads_its_vision_tower_without_the_attention_pooling_head(tmp_path: Path) -> None:
    path = save_tiny_backbone(tmp_path, "siglip")
    assert json.loads((path / "config.json").read_text())["model_type"] == "siglip"  # a whole SigLIP checkpoint
    tower = load_backbone(str(path))
    assert isinstance(tower, transformers.SiglipVisionModel) and not hasattr(tower, "head")


@pytest.mark.parametrize("kind", KINDS)
def test_every_tiny_kind_is_a_backbone_of_its_architecture(kind: str) -> None:
    arch = tiny_kinds()[kind]
    backbone = tiny_backbone(kind)
    assert backbone.config.model_type in arch.model_types
    assert describe_backbone(backbone).architecture == arch.name
    assert VISION_KINDS == tuple(arch.name for arch in ARCHITECTURES)


def test_an_unknown_tiny_kind_is_refused_with_the_kinds() -> None:
    with pytest.raises(ValueError, match="Unknown tiny backbone kind 'vit_huge'; choose one of vit, clip, clip_vision"):
        tiny_backbone("vit_huge")


def test_an_architecture_is_one_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """I-JEPA (a ViT without CLS) added as one entry: its tiny checkpoint, loading, parts, adapters, matrix column."""
    ijepa = Architecture("ijepa", "I-JEPA", ("ijepa",), "IJepaModel", num_prefix_tokens=0)
    monkeypatch.setattr(architectures, "ARCHITECTURES", (*ARCHITECTURES, ijepa))
    model = AutoAdapter.from_backbone(str(save_tiny_backbone(tmp_path, "ijepa")), method="lora", labels=["a", "b"])
    parts = describe_backbone(model.task_model)
    assert (parts.architecture, parts.num_prefix_tokens, parts.default_pooling) == ("ijepa", 0, "mean")
    assert model(torch.randn(1, 3, 32, 32)).logits.shape == (1, 2)
    assert "| method | I-JEPA |" in render({("lora", "ijepa"): Cell(True)})


# PEFT warns when a model it modified is modified again, and when LN tuning wraps a norm (it has no in/out features).
@pytest.mark.filterwarnings("ignore::UserWarning:peft.*")
@pytest.mark.parametrize(
    "kind, method, options",
    [
        ("vit", "vpt", {"num_tokens": 2, "deep": True}),  # wraps the embeddings and every layer
        ("dinov2_with_registers", "dvpt", {"num_prompts": 2, "bottleneck": 4}),  # the embeddings, MLPs and their norms
        ("clip", "moment-probing", {"hidden_dim": 32, "plus": True}),  # the head, MLPs and their norms
        ("beit", "lora", {}),  # attention q and v
        ("swin", "lora", {}),
    ],
)
def test_a_second_adapter_finds_parts_inside_the_wrappers_of_the_first(kind: str, method: str, options: dict) -> None:
    """Parts already wrapped by adapters (here LN tuning's around the tower's norms, then the method's own) are found
    where the originals were, so the method attaches again under a second name, and both adapters run."""
    backbone = tiny_backbone(kind)
    task_model = ImageClassifier(getattr(backbone, "vision_model", backbone), ["a", "b"])
    plain, plain_mlp, plain_roles = describe_backbone(task_model), mlp_block(task_model), role_patterns(task_model)
    norms = "|".join(re.escape(path) for path in (plain.pre_norm, plain.final_norm) if path)
    inject_adapter_in_model(LNTuningConfig(target_modules=norms), task_model, adapter_name="norms")
    zoo = get_method(method)
    peft_model = get_peft_model(task_model, zoo.make_config(task_model, head_module="classifier", **options))
    peft_model.add_adapter("second", zoo.make_config(task_model, head_module="classifier", **options))
    assert describe_backbone(task_model) == plain
    assert (mlp_block(task_model), role_patterns(task_model)) == (plain_mlp, plain_roles)
    assert describe_backbone(peft_model).final_norm == f"base_model.model.{plain.final_norm}"
    for adapter in ("default", "second"):
        peft_model.set_adapter(adapter)
        assert torch.isfinite(peft_model(torch.randn(2, 3, 32, 32)).logits).all()


def test_a_final_norm_trained_whole_is_found_through_its_wrapper() -> None:
    """LoRA that also trains the final norm whole (PEFT's ``modules_to_save`` wraps it), then a second LoRA."""
    task_model = ImageClassifier(tiny_backbone("vit"), ["a", "b"])
    plain = describe_backbone(task_model)
    q_and_v = resolve_linear_roles(task_model, ["q", "v"])
    peft_model = get_peft_model(task_model, LoraConfig(target_modules=q_and_v, modules_to_save=[plain.final_norm]))
    peft_model.add_adapter("second", get_method("lora").make_config(task_model, head_module="classifier"))
    assert describe_backbone(task_model) == plain
