"""Export to a plain transformers model: the adapter merged into ``*ForImageClassification``, loaded by transformers'
own Auto class and pipeline with adapterzoo's logits and scores, the user's model untouched; and every refusal."""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from adapterzoo import AutoAdapter, CheckpointError, ExportError, architectures
from adapterzoo.auto import AdapterModel
from adapterzoo.errors import NonFiniteError
from adapterzoo.export_transformers import export_transformers
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, VISION_KINDS, images, perturb_trainable

ONNX_HINT = r'model\.export\(path, format="onnx"\)'

EXPORTABLE = [
    ("lora", {}),
    ("lora", {"use_dora": True}),
    ("loha", {"r": 4}),
    ("lokr", {"r": 4}),
    ("ia3", {}),
    ("oft", {"oft_block_size": 8}),
    ("boft", {"boft_block_size": 4}),
    ("vera", {"r": 8}),
    ("fourierft", {"n_frequency": 64}),
    ("linear-probe", {}),
    ("full", {}),
    ("ssf", {}),
]


def adapter(backbone: Path, method: str = "lora", **options) -> AdapterModel:
    """A fresh adapter moved off its initialisation, so that an identity adapter cannot pass for a merged one."""
    model = AutoAdapter.from_backbone(str(backbone), method=method, labels=LABELS, **options)
    perturb_trainable(model, seed=0)
    return model.eval()


def pictures() -> list[Image.Image]:
    """Two RGB images of another size than the backbones', so that the image processors resize them."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)) for _ in range(2)]


def scores_by_label(predictions: list[list[dict]]) -> list[dict[str, float]]:
    return [{p["label"]: p["score"] for p in image} for image in predictions]


def assert_exported_equals(model: AdapterModel, folder: Path) -> None:
    """The export in ``folder`` computes ``model``'s logits (1e-5) and the pipeline gives ``predict``'s scores, while
    ``model`` computes exactly what it did before the export."""
    with torch.no_grad():
        before = model(images()).logits
        with model.peft_model.disable_adapter():
            plain = model(images()).logits
    assert not torch.allclose(plain, before, atol=1e-4)  # the adapter changes the logits: merging it is tested
    expected_scores = scores_by_label(model.predict(pictures(), top_k=len(LABELS)))

    export_transformers(model, folder)

    loaded = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    arch = architectures.find_architecture(model.task_model.backbone.config.model_type)
    assert type(loaded).__name__ == arch.classification_class
    assert loaded.config.id2label == dict(enumerate(LABELS)) and loaded.config.label2id == model.task_model.label2id
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=images()).logits, before, atol=1e-5, rtol=0)
        assert torch.equal(model(images()).logits, before)
    pipeline = transformers.pipeline("image-classification", model=str(folder))
    got_scores = scores_by_label(pipeline(pictures(), top_k=len(LABELS)))
    for got, expected in zip(got_scores, expected_scores, strict=True):
        assert got.keys() == expected.keys()
        np.testing.assert_allclose([got[label] for label in LABELS], [expected[label] for label in LABELS], atol=1e-5)
    assert scores_by_label(model.predict(pictures(), top_k=len(LABELS))) == expected_scores


@pytest.mark.parametrize(
    "method, options", EXPORTABLE, ids=[f"{m}{'-dora' if o.get('use_dora') else ''}" for m, o in EXPORTABLE]
)
def test_every_mergeable_method_exports_a_vit_that_transformers_runs_as_adapterzoo_does(
    vit_path: Path, tmp_path: Path, method: str, options: dict
) -> None:
    assert_exported_equals(adapter(vit_path, method, **options), tmp_path / "export")


@pytest.mark.parametrize("kind", VISION_KINDS)
def test_lora_exports_on_every_architecture(
    tiny_backbone_path: Callable[[str], Path], tmp_path: Path, kind: str
) -> None:
    assert_exported_equals(adapter(tiny_backbone_path(kind)), tmp_path / "export")


def test_the_folder_is_plain_transformers_and_keeps_the_models_dtype(vit_path: Path, tmp_path: Path) -> None:
    """A bfloat16 model exports in bfloat16: the export computes what the merged model computes, bit for bit (the
    unmerged one rounds differently in bfloat16, so 1e-5 holds for float32 only)."""
    model = adapter(vit_path).to(torch.bfloat16)
    folder = export_transformers(model, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["ViTForImageClassification"] and config["dtype"] == "bfloat16"
    assert config["problem_type"] == "single_label_classification"
    loaded = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    assert loaded.dtype == torch.bfloat16
    pixel_values = images().to(torch.bfloat16)
    with torch.no_grad():
        expected = copy.deepcopy(model).merge_and_unload()(pixel_values).logits
        assert torch.equal(loaded(pixel_values=pixel_values).logits, expected)


def test_a_processor_with_a_tokenizer_exports_its_image_processor_alone(clip_path: Path, tmp_path: Path) -> None:
    processor = transformers.AutoProcessor.from_pretrained(clip_path)  # CLIP's: image processor and tokenizer
    model = AutoAdapter.from_backbone(str(clip_path), method="lora", labels=LABELS, image_processor=processor)
    folder = export_transformers(model, tmp_path / "export")
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    ]
    pipeline = transformers.pipeline("image-classification", model=str(folder))
    assert isinstance(pipeline.image_processor, type(processor.image_processor))


@pytest.mark.parametrize(
    "method, options, reason",
    [
        ("vpt", {"num_tokens": 2}, "VPT adds prompt tokens"),
        ("dvpt", {}, "DVPT adds prompt tokens"),
        ("moment-probing", {}, "Moment Probing's head"),
    ],
)
def test_methods_that_do_not_merge_refuse_naming_why_and_the_onnx_export(
    vit_path: Path, tmp_path: Path, method: str, options: dict, reason: str
) -> None:
    model = adapter(vit_path, method, **options)
    with torch.no_grad():
        before = model(images()).logits
    with pytest.raises(ExportError, match=f"Method '{method}' cannot be merged.*{reason}.*{ONNX_HINT}"):
        export_transformers(model, tmp_path / "export")
    assert not (tmp_path / "export").exists()
    with torch.no_grad():
        assert torch.equal(model(images()).logits, before)


@pytest.mark.parametrize("method, options", [("zero-shot", {}), ("coop", {}), ("maple", {"depth": 2})])
def test_clip_classifiers_refuse(clip_path: Path, tmp_path: Path, method: str, options: dict) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method=method, labels=LABELS, **options)
    with pytest.raises(ExportError, match=f"CLIPClassifier scores images against .*text features.*{ONNX_HINT}"):
        export_transformers(model, tmp_path / "export")


def test_a_head_that_pools_otherwise_than_transformers_class_refuses(vit_path: Path, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, pooling="mean")
    expected = r"The head \(pooling='mean'\) is not the one ViTForImageClassification computes \(pooling='cls'\)"
    with pytest.raises(ExportError, match=f"{expected}.*{ONNX_HINT}"):
        export_transformers(model, tmp_path / "export")


def test_a_clip_head_saved_before_format_2_normalises_every_token_and_refuses(clip_path: Path, tmp_path: Path) -> None:
    saved = adapter(clip_path, pooling="cls").save_pretrained(tmp_path / "adapter")
    record_path = saved / "adapterzoo_config.json"
    record = json.loads(record_path.read_text())
    record.update(format_version=1, head={"type": "linear", "pooling": "cls"})
    record_path.write_text(json.dumps(record))
    legacy = AutoAdapter.from_pretrained(saved)
    expected = (
        r"The head \(pooling='cls', final_norm='tokens'\) is not the one CLIPForImageClassification computes "
        r"\(pooling='mean', final_norm='none'\)"
    )
    with pytest.raises(ExportError, match=f"{expected}.*{ONNX_HINT}"):
        export_transformers(legacy, tmp_path / "export")


def test_an_architecture_without_a_transformers_classification_class_refuses(
    vit_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without = tuple(
        dataclasses.replace(arch, classification_class=None) if arch.name == "vit" else arch
        for arch in architectures.ARCHITECTURES
    )
    monkeypatch.setattr(architectures, "ARCHITECTURES", without)
    with pytest.raises(ExportError, match=f"transformers has no image-classification class for ViT.*{ONNX_HINT}"):
        export_transformers(adapter(vit_path), tmp_path / "export")


def test_weights_that_the_class_has_no_place_for_refuse(vit_path: Path, tmp_path: Path) -> None:
    model = adapter(vit_path)
    model.task_model.backbone.register_parameter("extra", torch.nn.Parameter(torch.zeros(2), requires_grad=False))
    with pytest.raises(ExportError, match=r"leaves weights that do not fit .*1 unexpected, 0 missing.*vit\.extra"):
        export_transformers(model, tmp_path / "export")


def test_non_finite_weights_are_never_exported(vit_path: Path, tmp_path: Path) -> None:
    model = adapter(vit_path)
    with torch.no_grad():
        model.task_model.classifier.modules_to_save["default"].weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match="classifier.weight"):
        export_transformers(model, tmp_path / "export")
    assert not (tmp_path / "export").exists()


def test_an_export_replaces_the_previous_one_whole_or_not_at_all(
    vit_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = export_transformers(adapter(vit_path), tmp_path / "export")
    first = (folder / "model.safetensors").read_bytes()
    second = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=["x", "y"])

    def crash(*args, **kwargs) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(type(second.image_processor), "save_pretrained", crash)
    with pytest.raises(OSError, match="disk gone"):
        export_transformers(second, folder)
    assert (folder / "model.safetensors").read_bytes() == first
    monkeypatch.undo()
    export_transformers(second, folder)
    assert transformers.AutoConfig.from_pretrained(folder).id2label == {0: "x", 1: "y"}
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="not empty and holds no adapterzoo save"):
        export_transformers(second, tmp_path / "notes")


def test_the_export_pushed_with_transformers_loads_back_by_repo_id(vit_path: Path, tmp_path: Path) -> None:
    model = adapter(vit_path)
    folder = export_transformers(model, tmp_path / "export")
    expected = scores_by_label(model.predict(pictures(), top_k=len(LABELS)))
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        transformers.AutoModelForImageClassification.from_pretrained(folder).push_to_hub("me/vit-lora-deployed")
        transformers.AutoImageProcessor.from_pretrained(folder).push_to_hub("me/vit-lora-deployed")
        pipeline = transformers.pipeline("image-classification", model="me/vit-lora-deployed")
        got = scores_by_label(pipeline(pictures(), top_k=len(LABELS)))
    for got_image, expected_image in zip(got, expected, strict=True):
        np.testing.assert_allclose([got_image[k] for k in LABELS], [expected_image[k] for k in LABELS], atol=1e-5)


def test_a_merge_that_the_method_refuses_on_this_backbone_refuses_the_export(clip_path: Path, tmp_path: Path) -> None:
    """SSF folds its shifts into biases, and CLIP's patch embedding has none."""
    with pytest.raises(ExportError, match=f"Method 'ssf' cannot be merged.*SSF's shift folds into a bias.*{ONNX_HINT}"):
        export_transformers(adapter(clip_path, "ssf"), tmp_path / "export")
