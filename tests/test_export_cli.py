"""`adapterzoo export`: a saved adapter (folder or Hub repo) to a deployable folder, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path

import onnxruntime
import pytest
import torch
import transformers

from adapterzoo import AdapterModel, AutoAdapter, get_method
from adapterzoo.cli import main
from adapterzoo.export_onnx import ONNX_NAME
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, images, perturb_trainable


def lora(backbone: Path, seed: int) -> AdapterModel:
    model = AutoAdapter.from_backbone(str(backbone), method="lora", labels=LABELS, **get_method("lora").tiny_options)
    perturb_trainable(model, seed=seed)
    return model.eval()


def assert_exports(folder: Path, model: AdapterModel) -> None:
    """The ONNX graph in ``folder`` computes ``model``'s logits."""
    pixel_values = images(3, seed=7)
    session = onnxruntime.InferenceSession(str(folder / ONNX_NAME), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"pixel_values": pixel_values.numpy()})
    with torch.no_grad():
        expected = model(pixel_values).logits
    torch.testing.assert_close(torch.from_numpy(logits), expected, atol=1e-4, rtol=1e-4)


def failure(*argv: str) -> str:
    """The message of a command that fails as a command line does: exit status 1 and one line on stderr."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    message = exit_info.value.code
    assert isinstance(message, str) and "\n" not in message  # Python prints it and exits with status 1
    return message


def test_export_a_folder_to_onnx(vit_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lora(vit_path, seed=1).save_pretrained(tmp_path / "adapter")
    output = tmp_path / "deploy"
    assert main(["export", str(tmp_path / "adapter"), str(output), "--format", "onnx", "--opset", "19"]) == 0
    assert str(output.resolve()) in capsys.readouterr().out
    assert_exports(output, AutoAdapter.from_pretrained(tmp_path / "adapter"))


def test_export_a_hub_repo_at_a_revision(vit_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        lora(vit_path, seed=1).push_to_hub("me/lora")
        branch = lora(vit_path, seed=2)
        branch.push_to_hub("me/lora", revision="experiment")
        command = ["export", "me/lora", str(tmp_path / "deploy"), "--format", "onnx", "--revision", "experiment"]
        assert main(command) == 0
    assert "me/lora (lora) as onnx" in capsys.readouterr().out
    assert_exports(tmp_path / "deploy", branch)


def test_an_unknown_format_is_refused_with_the_formats(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "adapter"), str(tmp_path / "deploy"), "--format", "tflite"])
    assert exit_info.value.code == 2
    # Python versions differ in whether they quote the choices.
    assert re.search(r"invalid choice: 'tflite' \(choose from '?transformers'?, '?onnx'?\)", capsys.readouterr().err)


def test_a_missing_adapter_is_named(tmp_path: Path) -> None:
    message = failure("export", str(tmp_path / "nowhere"), str(tmp_path / "deploy"), "--format", "onnx")
    assert message.startswith("adapterzoo export: ") and f"No saved adapter at {tmp_path / 'nowhere'}" in message
    assert not (tmp_path / "deploy").exists()


def test_an_opset_is_an_onnx_option(tmp_path: Path) -> None:
    message = failure("export", str(tmp_path / "adapter"), str(tmp_path / "deploy"), "--opset", "19")
    assert message == "adapterzoo export: --opset applies to --format onnx only"


def test_export_a_folder_to_transformers_by_default(vit_path: Path, tmp_path: Path) -> None:
    model = lora(vit_path, seed=3)
    model.save_pretrained(tmp_path / "adapter")
    assert main(["export", str(tmp_path / "adapter"), str(tmp_path / "deploy")]) == 0
    exported = transformers.AutoModelForImageClassification.from_pretrained(tmp_path / "deploy").eval()
    pixel_values = images(2, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(exported(pixel_values).logits, model(pixel_values).logits, atol=1e-5, rtol=1e-5)
    assert exported.config.id2label == dict(enumerate(LABELS))


def test_a_method_that_cannot_merge_is_pointed_to_onnx(vit_path: Path, tmp_path: Path) -> None:
    vpt = AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, **get_method("vpt").tiny_options)
    vpt.save_pretrained(tmp_path / "adapter")
    message = failure("export", str(tmp_path / "adapter"), str(tmp_path / "deploy"), "--format", "transformers")
    assert message.startswith("adapterzoo export: ") and 'format="onnx"' in message
    assert not (tmp_path / "deploy").exists()
