"""AutoAdapter and AdapterModel: building, the files of a save, the model card, predict, atomic saving."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import adapterzoo
from adapterzoo import AutoAdapter, CheckpointError
from adapterzoo.backbones import load_backbone
from adapterzoo.saving import AdapterRecord
from adapterzoo.testing import LABELS, images, perturb_trainable


def vpt(vit_path: Path, **options):
    model = AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, num_tokens=3, **options)
    perturb_trainable(model, seed=0)
    return model.eval()


def card_metadata(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])


def test_autoadapter_is_not_instantiated() -> None:
    with pytest.raises(TypeError, match="from_backbone"):
        AutoAdapter()


def test_a_save_holds_the_designed_files(vit_path: Path, tmp_path: Path) -> None:
    model = vpt(vit_path, deep=True)
    model.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [
        ".adapterzoo-save.json",
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
        "adapterzoo_config.json",
        "preprocessor_config.json",
    ]
    record = json.loads((tmp_path / "adapter" / "adapterzoo_config.json").read_text())
    assert record["method"] == "vpt" and record["distribution"] == "adapterzoo-vpt"
    assert record["distribution_version"] == "0.1.0" and record["adapterzoo_version"] == adapterzoo.__version__
    assert record["backbone"] == str(vit_path.resolve()) and record["backbone_revision"] is None
    assert record["labels"] == list(LABELS)
    assert record["head"] == {"type": "linear", "pooling": "cls", "final_norm": "tokens"}
    assert record["task"] == "image-classification" and record["format_version"] == 2
    assert record["trainable_parameters"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    peft_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert peft_config["peft_type"] == "VPT" and peft_config["deep"] is True and peft_config["num_tokens"] == 3


def test_the_model_card_describes_the_adapter(vit_path: Path, tmp_path: Path) -> None:
    model = vpt(vit_path)
    model.metrics = {"accuracy": 0.875}
    model.save_pretrained(tmp_path / "adapter")
    metadata = card_metadata(tmp_path / "adapter")
    assert metadata["library_name"] == "adapterzoo"
    assert {"vpt", "image-classification"} <= set(metadata["tags"])
    text = (tmp_path / "adapter" / "README.md").read_text()
    usage = text[text.index("## Usage") :]
    assert usage.split("```bash\n")[1].startswith("pip install adapterzoo-vpt\n")
    assert f"{model.trainable_parameters:,}" in text and "| accuracy | 0.875 |" in text
    assert AutoAdapter.from_pretrained(tmp_path / "adapter").metrics == {"accuracy": 0.875}


def test_the_card_names_a_hub_backbone_as_base_model() -> None:
    from adapterzoo.model_card import render_model_card

    record = AdapterRecord(
        "lora",
        "adapterzoo",
        "0.1.0",
        "image-classification",
        "google/vit-base-patch16-224-in21k",
        "abc123",
        ["a"],
        {"type": "linear", "pooling": "cls"},
        10,
        "0.1.0",
    )
    metadata = yaml.safe_load(render_model_card(record, location="me/vit-lora").split("---")[1])
    assert metadata["base_model"] == "google/vit-base-patch16-224-in21k"
    assert "pip install adapterzoo\n" in render_model_card(record, location="me/vit-lora")


def test_predict_takes_pil_images_arrays_and_batches(vit_path: Path) -> None:
    model = vpt(vit_path)
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    single = model.predict(Image.fromarray(array))
    assert len(single) == 1 and single[0]["label"] in LABELS and 0 < single[0]["score"] <= 1
    assert model.predict(array) == single
    batch = model.predict(np.stack([array, array[::-1]]), top_k=2)
    assert len(batch) == 2 and all(len(ranked) == 2 for ranked in batch)
    alone = model.predict([Image.fromarray(array)], top_k=2)[0]
    assert [p["label"] for p in batch[0]] == [p["label"] for p in alone]
    assert [p["score"] for p in batch[0]] == pytest.approx([p["score"] for p in alone], abs=1e-6)


def test_a_loaded_adapter_is_frozen_unless_asked_to_train(vit_path: Path, tmp_path: Path) -> None:
    vpt(vit_path).save_pretrained(tmp_path / "adapter")
    frozen = AutoAdapter.from_pretrained(tmp_path / "adapter")
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    trainable = AutoAdapter.from_pretrained(tmp_path / "adapter", is_trainable=True)
    assert trainable.training
    assert sum(p.numel() for p in trainable.parameters() if p.requires_grad) == trainable.trainable_parameters


def test_the_recorded_backbone_can_be_overridden(vit_path: Path, tmp_path: Path) -> None:
    model = vpt(vit_path)
    model.save_pretrained(tmp_path / "adapter")
    moved = tmp_path / "moved-backbone"
    vit_path.rename(moved)
    try:
        with pytest.raises(CheckpointError, match="Pass backbone="):
            AutoAdapter.from_pretrained(tmp_path / "adapter")
        loaded = AutoAdapter.from_pretrained(tmp_path / "adapter", backbone=load_backbone(str(moved)))
        with torch.no_grad():
            assert torch.equal(loaded(images()).logits, model(images()).logits)
    finally:
        moved.rename(vit_path)


def test_a_failed_save_leaves_the_previous_one_intact(vit_path: Path, tmp_path: Path, monkeypatch) -> None:
    first = vpt(vit_path)
    first.save_pretrained(tmp_path / "adapter")
    second = AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, num_tokens=3)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(second.image_processor, "save_pretrained", fail)
    with pytest.raises(OSError, match="disk full"):
        second.save_pretrained(tmp_path / "adapter")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    with torch.no_grad():
        reloaded = AutoAdapter.from_pretrained(tmp_path / "adapter")
        assert torch.equal(reloaded(images()).logits, first(images()).logits)


def test_a_save_killed_midway_leaves_the_previous_one_intact(vit_path: Path, tmp_path: Path) -> None:
    first = vpt(vit_path)
    first.save_pretrained(tmp_path / "adapter")
    script = f"""
        import os, signal
        import adapterzoo.auto
        from adapterzoo import AutoAdapter
        real_write = adapterzoo.auto.write_weights
        def write_then_die(path, state_dict):
            real_write(path, state_dict)
            os.kill(os.getpid(), signal.SIGKILL)
        adapterzoo.auto.write_weights = write_then_die
        model = AutoAdapter.from_backbone({str(vit_path)!r}, method="vpt", labels=["x", "y"], num_tokens=5)
        model.save_pretrained({str(tmp_path / "adapter")!r})
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    reloaded = AutoAdapter.from_pretrained(tmp_path / "adapter")
    assert reloaded.labels == list(LABELS)
    with torch.no_grad():
        assert torch.equal(reloaded(images()).logits, first(images()).logits)


def test_a_save_interrupted_between_its_two_renames_is_recovered(vit_path: Path, tmp_path: Path) -> None:
    first = vpt(vit_path)
    first.save_pretrained(tmp_path / "adapter")
    os.rename(tmp_path / "adapter", tmp_path / ".adapter.0123.old")
    reloaded = AutoAdapter.from_pretrained(tmp_path / "adapter")
    assert reloaded.labels == list(LABELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_saving_never_replaces_a_folder_that_holds_something_else(vit_path: Path, tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not empty and holds no adapterzoo save"):
        vpt(vit_path).save_pretrained(tmp_path / "results")
    assert (tmp_path / "results" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]
