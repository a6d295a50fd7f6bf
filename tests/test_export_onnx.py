"""ONNX export: onnxruntime computes what PyTorch computes, for every installed method, for LoRA on every
architecture, at a batch size other than the exported one; the folder holds what a deployment needs."""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
import transformers
from PIL import Image

from adapterzoo import AdapterModel, AutoAdapter, ExportError, get_method
from adapterzoo.export_onnx import ONNX_NAME
from adapterzoo.testing import LABELS, VISION_KINDS, images, perturb_trainable
from adapterzoo.testing.matrix import row_label, rows

TOLERANCE = {"atol": 1e-4, "rtol": 1e-4}


def onnx_logits(folder: Path, pixel_values: torch.Tensor) -> torch.Tensor:
    session = onnxruntime.InferenceSession(str(folder / ONNX_NAME), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"pixel_values": pixel_values.numpy()})[0])


def perturbed(backbone: Path, method: str, **options) -> AdapterModel:
    torch.manual_seed(0)
    model = AutoAdapter.from_backbone(str(backbone), method=method, labels=LABELS, **options)
    perturb_trainable(model, seed=1)
    return model.eval()


def logits(model: AdapterModel, pixel_values: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values).logits


ROWS = rows()
"""Every installed method, with each of its variants."""


@pytest.mark.parametrize("method, variant", ROWS, ids=[row_label(*row) for row in ROWS])
def test_onnxruntime_computes_what_pytorch_computes_for_every_method(
    method: str, variant: dict, vit_path: Path, clip_path: Path, tmp_path: Path
) -> None:
    """On a tiny ViT, or a tiny CLIP for the methods that only classify with CLIP; the export traces a batch of 2."""
    zoo_method = get_method(method)
    backbone = vit_path if "image-classification" in zoo_method.tasks else clip_path
    model = perturbed(backbone, method, **zoo_method.tiny_options, **variant)
    pixel_values = images(5, seed=3)
    before = logits(model, pixel_values)
    folder = model.export(tmp_path / "onnx", format="onnx")
    torch.testing.assert_close(onnx_logits(folder, pixel_values), before, **TOLERANCE)
    torch.testing.assert_close(logits(model, pixel_values), before, atol=0, rtol=0)  # the model was left as it was


@pytest.mark.parametrize("kind", [kind for kind in VISION_KINDS if kind != "vit"])  # ViT: every method's test
def test_lora_exports_on_every_architecture(kind: str, tiny_backbone_path, tmp_path: Path) -> None:
    model = perturbed(tiny_backbone_path(kind), "lora", **get_method("lora").tiny_options)
    folder = model.export(tmp_path / "onnx", format="onnx")
    pixel_values = images(1, seed=4)
    torch.testing.assert_close(onnx_logits(folder, pixel_values), logits(model, pixel_values), **TOLERANCE)


@pytest.fixture(scope="module")
def vpt(vit_path: Path) -> AdapterModel:
    return perturbed(vit_path, "vpt", **get_method("vpt").tiny_options)


@pytest.fixture(scope="module")
def vpt_export(vpt: AdapterModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VPT adapter exported at opset 19 (not the exporter's default); copy the folder before changing it."""
    return vpt.export(tmp_path_factory.mktemp("vpt") / "onnx", format="onnx", opset=19)


def test_the_folder_deploys_with_onnxruntime_and_transformers_alone(vpt: AdapterModel, vpt_export: Path) -> None:
    """Labels from config.json, preprocessing from the saved image processor, scores as `predict` gives them."""
    graph = onnx.load(vpt_export / ONNX_NAME)
    assert {entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")} == {19}
    assert graph.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    config = transformers.AutoConfig.from_pretrained(vpt_export)
    assert config.id2label == dict(enumerate(LABELS)) and config.label2id == {name: i for i, name in enumerate(LABELS)}
    pictures = [Image.fromarray(np.full((40, 48, 3), shade, dtype=np.uint8)) for shade in (0, 90, 200)]
    processor = transformers.AutoImageProcessor.from_pretrained(vpt_export)
    scores = onnx_logits(vpt_export, processor(images=pictures, return_tensors="pt")["pixel_values"]).softmax(-1)
    best = scores.max(dim=-1)
    expected = [top for top, *_ in vpt.predict(pictures, top_k=1)]
    assert [config.id2label[int(index)] for index in best.indices] == [top["label"] for top in expected]
    np.testing.assert_allclose(best.values.numpy(), [top["score"] for top in expected], atol=1e-5)


def test_a_half_precision_model_exports_a_float32_graph(vpt: AdapterModel, tmp_path: Path) -> None:
    model = copy.deepcopy(vpt).to(torch.bfloat16)
    folder = model.export(tmp_path / "onnx", format="onnx")
    graph = onnx.load(folder / ONNX_NAME)
    assert graph.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    pixel_values = images(2, seed=5)
    as_float32 = copy.deepcopy(model).float()
    torch.testing.assert_close(onnx_logits(folder, pixel_values), logits(as_float32, pixel_values), **TOLERANCE)
    assert next(model.parameters()).dtype == torch.bfloat16


def test_a_new_export_replaces_the_previous_one_and_other_folders_are_refused(
    vpt_export: Path, vit_path: Path, tmp_path: Path
) -> None:
    folder = Path(shutil.copytree(vpt_export, tmp_path / "onnx"))
    lora = perturbed(vit_path, "lora", **get_method("lora").tiny_options)
    assert lora.export(folder, format="onnx") == folder
    pixel_values = images(2, seed=6)
    torch.testing.assert_close(onnx_logits(folder, pixel_values), logits(lora, pixel_values), **TOLERANCE)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"not an export")
    with pytest.raises(ValueError, match="Refusing to replace .*photos"):
        lora.export(tmp_path / "photos", format="onnx")
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.png"]


def test_an_exporter_failure_names_the_method_and_writes_nothing(
    vit_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BOFT's Cayley transform is a linear solve, which ONNX cannot express: the export merges it away; unmerged,
    the exporter refuses it."""
    model = perturbed(vit_path, "boft", **get_method("boft").tiny_options)
    monkeypatch.setattr("adapterzoo.export_onnx._inference_copy", lambda model: copy.deepcopy(model.peft_model).eval())
    with pytest.raises(ExportError, match="Cannot export method 'boft' to ONNX: .*"):
        model.export(tmp_path / "onnx", format="onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("package", ["onnx", "onnxruntime", "onnxscript"])
def test_without_the_onnx_packages_the_error_names_the_extra(
    vpt: AdapterModel, package: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # what an absent package looks like to import
    with pytest.raises(ImportError, match=rf'needs {package} \(not installed\): pip install "adapterzoo\[onnx\]"'):
        vpt.export(tmp_path / "onnx", format="onnx")
    assert not (tmp_path / "onnx").exists()


def test_an_unknown_format_names_the_formats(vpt: AdapterModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Unknown export format 'tflite'; choose one of transformers, onnx"):
        vpt.export(tmp_path / "out", format="tflite")
