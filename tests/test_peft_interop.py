"""Interop with plain PEFT and transformers: adapterzoo's adapters of PEFT's own tuners load with PEFT onto
transformers' classification class of their backbone (the PEFT-native layout), and adapters PEFT saved load in
adapterzoo. Each is loaded exactly as its user would, and the logits are compared."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from huggingface_hub import HfApi
from peft import AutoPeftModel, LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open

from adapterzoo import AutoAdapter, CheckpointError, UnsupportedTaskError
from adapterzoo.architectures import find_architecture
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, VISION_KINDS, images, perturb_trainable, tiny_backbone

TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}
PEFT_TUNERS = {
    "lora": {},
    "dora": {"use_dora": True},
    "loha": {},
    "lokr": {},
    "ia3": {},
    "oft": {},
    "boft": {},
    "vera": {},
    "fourierft": {},
}


@pytest.fixture
def hub(tmp_path: Path):
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        yield hub


def trained(backbone: str | Path, method: str = "lora", **options):
    """An adapter moved off its initialisation (LoRA's starts as the identity), in eval mode."""
    model = AutoAdapter.from_backbone(str(backbone), method=method, labels=LABELS, **options)
    perturb_trainable(model, seed=0)
    return model.eval()


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=images(2)).logits


def classification_class(backbone: str | Path) -> type:
    config = transformers.AutoConfig.from_pretrained(backbone)
    return getattr(transformers, find_architecture(config.model_type).classification_class)


def load_as_a_peft_user(backbone: str | Path, adapter: str | Path) -> PeftModel:
    """README's three lines: the base classification model with the adapter's labels, then PEFT's adapter on it."""
    config = transformers.AutoConfig.from_pretrained(adapter)
    base = transformers.AutoModelForImageClassification.from_pretrained(backbone, config=config)
    return PeftModel.from_pretrained(base, adapter).eval()


def weight_keys(folder: Path) -> list[str]:
    with safe_open(str(folder / "adapter_model.safetensors"), framework="pt") as handle:
        return list(handle.keys())


@pytest.mark.parametrize("tuner", PEFT_TUNERS)
def test_every_peft_tuner_on_vit_loads_with_plain_peft(tuner: str, vit_path: Path, tmp_path: Path) -> None:
    method = "lora" if tuner == "dora" else tuner
    model = trained(vit_path, method, **PEFT_TUNERS[tuner])
    folder = model.save_pretrained(tmp_path / "adapter")

    peft_model = load_as_a_peft_user(vit_path, folder)

    assert isinstance(peft_model.get_base_model(), transformers.ViTForImageClassification)
    torch.testing.assert_close(logits(peft_model), logits(model), **TOLERANCE)
    with peft_model.disable_adapter():
        assert not torch.allclose(logits(peft_model), logits(model), atol=1e-3)  # the adapter is no identity
    torch.testing.assert_close(logits(AutoAdapter.from_pretrained(folder)), logits(model), **TOLERANCE)


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_lora_on_every_architecture_loads_with_plain_peft_onto_transformers_class(
    kind: str, tiny_backbone_path, tmp_path: Path
) -> None:
    backbone = tiny_backbone_path(kind)
    model = trained(backbone)
    folder = model.save_pretrained(tmp_path / "adapter")
    expected_class = classification_class(backbone)
    prefix = find_architecture(transformers.AutoConfig.from_pretrained(backbone).model_type).classification_prefix

    assert all(
        key.startswith((f"base_model.model.{prefix}.", "base_model.model.classifier.")) for key in weight_keys(folder)
    )
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["auto_mapping"] == {"base_model_class": expected_class.__name__, "parent_library": "transformers"}
    assert config["base_model_name_or_path"] == str(backbone) and config["modules_to_save"] == ["classifier"]
    assert config["target_modules"].startswith(prefix)
    labels = transformers.AutoConfig.from_pretrained(folder)
    assert labels.id2label == dict(enumerate(LABELS)) and labels.label2id == {n: i for i, n in enumerate(LABELS)}

    peft_model = load_as_a_peft_user(backbone, folder)

    assert type(peft_model.get_base_model()) is expected_class
    torch.testing.assert_close(logits(peft_model), logits(model), **TOLERANCE)
    torch.testing.assert_close(logits(AutoAdapter.from_pretrained(folder)), logits(model), **TOLERANCE)


def test_auto_peft_model_finds_transformers_class(vit_path: Path, tmp_path: Path) -> None:
    model = trained(vit_path)
    folder = model.save_pretrained(tmp_path / "adapter")
    id2label = transformers.AutoConfig.from_pretrained(folder).id2label

    peft_model = AutoPeftModel.from_pretrained(str(folder), id2label=id2label).eval()

    assert isinstance(peft_model.get_base_model(), transformers.ViTForImageClassification)
    assert peft_model.config.id2label == dict(enumerate(LABELS))
    torch.testing.assert_close(logits(peft_model), logits(model), **TOLERANCE)


def test_a_pushed_adapter_loads_with_peft_and_transformers_by_repo_id(hub: EmbeddedHub) -> None:
    tiny_backbone("vit").push_to_hub("zoo/tiny-vit")
    model = trained("zoo/tiny-vit")
    model.push_to_hub("me/vit-lora")
    assert "config.json" in HfApi().list_repo_files("me/vit-lora")

    by_peft = load_as_a_peft_user("zoo/tiny-vit", "me/vit-lora")
    config = transformers.AutoConfig.from_pretrained("me/vit-lora")
    by_transformers = transformers.AutoModelForImageClassification.from_pretrained("me/vit-lora", config=config)
    by_auto_peft = AutoPeftModel.from_pretrained("me/vit-lora", id2label=config.id2label)

    for loaded in (by_peft, by_transformers.eval(), by_auto_peft.eval()):
        torch.testing.assert_close(logits(loaded), logits(model), **TOLERANCE)
    assert by_transformers.config.id2label == dict(enumerate(LABELS))
    assert (
        json.loads(Path(transformers.utils.cached_file("me/vit-lora", "adapter_config.json")).read_text())["revision"]
        == HfApi().model_info("zoo/tiny-vit").sha
    )


@pytest.mark.parametrize(
    ("kind", "method", "options", "reason"),
    [
        ("vit", "vpt", {"num_tokens": 2}, "method 'vpt' is adapterzoo's"),
        ("vit", "linear-probe", {}, "method 'linear-probe' is adapterzoo's"),
        ("vit", "lora", {"pooling": "mean"}, "is not the one ViTForImageClassification computes"),
        ("clip_vision_model", "lora", {}, "loads 'clip' checkpoints, and .* is a 'clip_vision_model' one"),
    ],
)
def test_what_plain_peft_cannot_load_keeps_the_zoo_layout_and_says_why(
    kind: str, method: str, options: dict, reason: str, tiny_backbone_path, tmp_path: Path
) -> None:
    model = trained(tiny_backbone_path(kind), method, **options)
    assert model.peft_blocker is not None
    folder = model.save_pretrained(tmp_path / "adapter")

    assert json.loads((folder / "adapterzoo_config.json").read_text())["transformers_class"] is None
    assert not (folder / "config.json").exists()
    assert json.loads((folder / "adapter_config.json").read_text())["auto_mapping"] is None
    assert all(key.startswith("base_model.model.") for key in weight_keys(folder))
    assert not any(key.startswith("base_model.model.vit.") for key in weight_keys(folder))
    card = (folder / "README.md").read_text()
    assert "Plain PEFT cannot load this adapter" in card
    assert re.search(reason, " ".join(card.split()))  # the reason, named in the card
    torch.testing.assert_close(logits(AutoAdapter.from_pretrained(folder)), logits(model), **TOLERANCE)


def peft_saved(backbone: Path, folder: Path, *, num_labels: int = 3, **lora: object) -> PeftModel:
    """A LoRA saved by PEFT itself for transformers' classification model, as PEFT's image-classification example
    makes one."""
    base = classification_class(backbone).from_pretrained(backbone, num_labels=num_labels)
    options = {"target_modules": ["q_proj", "v_proj"], "modules_to_save": ["classifier"], **lora}
    peft_model = get_peft_model(base, LoraConfig(**options))
    perturb_trainable(peft_model, seed=3)
    peft_model.save_pretrained(folder)
    return peft_model.eval()


@pytest.mark.parametrize("kind", ["vit", "dinov2", "clip"])
def test_an_adapter_peft_saved_loads_in_adapterzoo_with_the_same_logits(
    kind: str, tiny_backbone_path, tmp_path: Path
) -> None:
    backbone = tiny_backbone_path(kind)
    peft_model = peft_saved(backbone, tmp_path / "peft")
    assert not (tmp_path / "peft" / "adapterzoo_config.json").exists()

    model = AutoAdapter.from_pretrained(tmp_path / "peft")

    torch.testing.assert_close(logits(model.eval()), logits(peft_model), **TOLERANCE)
    assert model.method.name == "lora" and model.backbone_name == str(backbone)
    assert model.labels == ["LABEL_0", "LABEL_1", "LABEL_2"]  # transformers' names: nothing beside names them
    again = AutoAdapter.from_pretrained(model.save_pretrained(tmp_path / "zoo"))
    torch.testing.assert_close(logits(again), logits(peft_model), **TOLERANCE)
    torch.testing.assert_close(logits(load_as_a_peft_user(backbone, tmp_path / "zoo")), logits(peft_model), **TOLERANCE)


def test_an_imported_adapters_labels_come_from_a_config_beside_it_or_from_the_base_model(
    vit_path: Path, tmp_path: Path
) -> None:
    peft_saved(vit_path, tmp_path / "peft")
    named_base = tmp_path / "named-base"
    shutil.copytree(vit_path, named_base)
    config = transformers.AutoConfig.from_pretrained(named_base)
    config.id2label = dict(enumerate(["x", "y", "z"]))
    config.save_pretrained(named_base)

    assert AutoAdapter.from_pretrained(tmp_path / "peft", backbone=str(named_base)).labels == ["x", "y", "z"]
    config.id2label = dict(enumerate(LABELS))
    config.save_pretrained(tmp_path / "peft")  # transformers' config beside the adapter comes first
    assert AutoAdapter.from_pretrained(tmp_path / "peft", backbone=str(named_base)).labels == list(LABELS)


def test_an_adapter_peft_pushed_loads_from_the_hub_by_repo_id(hub: EmbeddedHub, tmp_path: Path) -> None:
    tiny_backbone("vit").push_to_hub("zoo/tiny-vit")
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).push_to_hub("zoo/tiny-vit")
    base = transformers.ViTForImageClassification.from_pretrained("zoo/tiny-vit", id2label=dict(enumerate(LABELS)))
    peft_model = get_peft_model(base, LoraConfig(target_modules=["q_proj", "v_proj"], modules_to_save=["classifier"]))
    perturb_trainable(peft_model, seed=3)
    peft_model.push_to_hub("someone/vit-lora")
    base.config.push_to_hub("someone/vit-lora")  # the labels, as transformers writes them

    model = AutoAdapter.from_pretrained("someone/vit-lora")

    torch.testing.assert_close(logits(model.eval()), logits(peft_model.eval()), **TOLERANCE)
    assert model.labels == list(LABELS) and model.backbone_name == "zoo/tiny-vit"
    assert model.image_processor.size == {"height": 32, "width": 32}  # the backbone's, none being beside


@pytest.fixture
def peft_folder(vit_path: Path, tmp_path: Path) -> Path:
    peft_saved(vit_path, tmp_path / "peft")
    return tmp_path / "peft"


def edit_config(folder: Path, **changes: object) -> None:
    path = folder / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_a_peft_adapter_of_another_task_is_refused(peft_folder: Path) -> None:
    edit_config(peft_folder, task_type="CAUSAL_LM", base_model_name_or_path="gpt2")
    with pytest.raises(UnsupportedTaskError, match="task_type 'CAUSAL_LM' on 'gpt2'.*image classification only.*PEFT"):
        AutoAdapter.from_pretrained(peft_folder)


def test_a_peft_adapter_of_an_unsupported_base_model_is_refused(peft_folder: Path, tmp_path: Path) -> None:
    transformers.GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path / "gpt2")
    edit_config(peft_folder, base_model_name_or_path=str(tmp_path / "gpt2"))
    with pytest.raises(CheckpointError, match="model_type 'gpt2'.*Load it with peft.PeftModel.from_pretrained"):
        AutoAdapter.from_pretrained(peft_folder)


def test_a_peft_tuner_adapterzoo_does_not_serve_is_named(peft_folder: Path) -> None:
    edit_config(peft_folder, peft_type="ADALORA")
    with pytest.raises(CheckpointError, match="PEFT 'ADALORA' adapter; adapterzoo imports PEFT adapters of .*lora"):
        AutoAdapter.from_pretrained(peft_folder)


def test_a_peft_adapter_without_a_trained_head_is_named(vit_path: Path, tmp_path: Path) -> None:
    peft_saved(vit_path, tmp_path / "peft", modules_to_save=None)
    with pytest.raises(CheckpointError, match="holds no trained head.*modules_to_save=\\['classifier'\\]"):
        AutoAdapter.from_pretrained(tmp_path / "peft")


def test_a_peft_adapters_patterns_are_checked_like_any_others(peft_folder: Path) -> None:
    edit_config(peft_folder, target_modules=r"vit\.(.+)+z")
    with pytest.raises(CheckpointError, match="target_modules.*not the regex of a set of linear-layer roles"):
        AutoAdapter.from_pretrained(peft_folder)


def test_a_record_naming_another_transformers_class_is_refused(vit_path: Path, tmp_path: Path) -> None:
    folder = trained(vit_path).save_pretrained(tmp_path / "adapter")
    record = json.loads((folder / "adapterzoo_config.json").read_text())
    record["transformers_class"] = "DeiTForImageClassification"
    (folder / "adapterzoo_config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="roots its PEFT files at transformers' DeiTForImageClassification"):
        AutoAdapter.from_pretrained(folder)


def test_a_saved_pattern_is_checked_after_renaming_back(vit_path: Path, tmp_path: Path) -> None:
    folder = trained(vit_path).save_pretrained(tmp_path / "adapter")
    edit_config(folder, target_modules=r"vit\.layers\.\d+\.(a|aa)+\.q_proj")
    with pytest.raises(CheckpointError, match=r"target_modules 'backbone\\\\.layers.*not the regex of a set of"):
        AutoAdapter.from_pretrained(folder)
