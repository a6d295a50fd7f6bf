"""The model card's metadata, as the Hub reads it: parsed back with huggingface_hub's own `ModelCard`."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from adapterzoo import AutoAdapter, CheckpointError
from adapterzoo.model_card import render_model_card
from adapterzoo.saving import AdapterRecord
from adapterzoo.testing import LABELS

RECORD = AdapterRecord(
    method="lora",
    distribution="adapterzoo",
    distribution_version="0.1.0",
    task="image-classification",
    backbone="google/vit-base-patch16-224-in21k",
    backbone_revision="abc123",
    labels=list(LABELS),
    head={"type": "linear", "pooling": "cls", "final_norm": "tokens"},
    trainable_parameters=10,
    adapterzoo_version="0.1.0",
    metrics={"accuracy": 0.9, "f1": 0.8},
    transformers_class="ViTForImageClassification",
    license="apache-2.0",
    datasets=["user/pets"],
)


def card_of(record: AdapterRecord, **options: str) -> ModelCard:
    return ModelCard(render_model_card(record, location="me/vit-lora", **options))


def test_a_peft_loadable_adapters_card_has_every_field_the_hub_reads() -> None:
    card = card_of(RECORD)

    data = card.data
    assert data.base_model == "google/vit-base-patch16-224-in21k"
    assert data.to_dict()["base_model_relation"] == "adapter"
    assert data.library_name == "peft" and {"adapterzoo", "lora", "image-classification"} <= set(data.tags)
    assert data.pipeline_tag == "image-classification"
    assert data.license == "apache-2.0" and data.datasets == ["user/pets"]
    assert data.model_name == "me/vit-lora"
    results = {(r.metric_type, r.metric_value, r.dataset_type, r.task_type) for r in data.eval_results}
    assert results == {
        ("accuracy", 0.9, "user/pets", "image-classification"),
        ("f1", 0.8, "user/pets", "image-classification"),
    }
    assert 'AutoConfig.from_pretrained("me/vit-lora")' in card.text
    assert (
        'AutoModelForImageClassification.from_pretrained("google/vit-base-patch16-224-in21k", revision="abc123", '
        "config=config)" in card.text
    )
    assert 'PeftModel.from_pretrained(base, "me/vit-lora")' in card.text


def test_a_zoo_only_adapters_card_names_adapterzoo_and_why_plain_peft_cannot_load_it() -> None:
    record = replace(RECORD, method="vpt", transformers_class=None, license=None, datasets=[], metrics={})
    card = card_of(record, peft_blocker="method 'vpt' is adapterzoo's, not one of PEFT's own tuners")

    assert card.data.library_name == "adapterzoo" and card.data.to_dict()["base_model_relation"] == "adapter"
    assert card.data.license is None and card.data.datasets is None and card.data.eval_results is None
    assert "PeftModel" not in card.text
    assert "Plain PEFT cannot load this adapter" in card.text and "method 'vpt' is adapterzoo's" in card.text


def test_a_clip_classifier_is_an_image_classification_pipeline_and_a_local_backbone_no_base_model() -> None:
    record = replace(RECORD, task="clip-classification", backbone="/data/clip", transformers_class=None)
    data = card_of(record).data
    assert data.pipeline_tag == "image-classification"
    assert data.base_model is None and "base_model_relation" not in data.to_dict()


def test_license_and_datasets_are_saved_reloaded_and_on_the_card(vit_path: Path, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS)
    model.license, model.datasets = "mit", ["user/shapes"]
    model.metrics = {"accuracy": 0.5}
    folder = model.save_pretrained(tmp_path / "adapter")

    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit" and card.data.datasets == ["user/shapes"]
    assert [(r.metric_type, r.metric_value, r.dataset_type) for r in card.data.eval_results] == [
        ("accuracy", 0.5, "user/shapes")
    ]
    loaded = AutoAdapter.from_pretrained(folder)
    assert (loaded.license, loaded.datasets) == ("mit", ["user/shapes"])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("license", "Apache License 2.0", "not a Hub license id such as 'apache-2.0'"),
        ("datasets", "user/shapes", "not a list of Hub dataset ids"),
        ("datasets", ["not an id!"], "'not an id!' is not a Hub dataset id"),
    ],
)
def test_bad_card_metadata_is_refused_on_save_and_on_read(
    field: str, value: object, message: str, vit_path: Path, tmp_path: Path
) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS)
    setattr(model, field, value)
    with pytest.raises(ValueError, match=message):
        model.save_pretrained(tmp_path / "refused")
    assert not (tmp_path / "refused").exists()

    setattr(model, field, None if field == "license" else [])
    folder = model.save_pretrained(tmp_path / "adapter")
    path = folder / "adapterzoo_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))
    with pytest.raises(CheckpointError, match=message):
        AutoAdapter.from_pretrained(folder)
