"""Bad input gets a clear error naming the problem, and leaves nothing half-written behind."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapterzoo import AutoAdapter, CheckpointError, MethodNotFoundError, UnknownOptionError
from adapterzoo.testing import LABELS


@pytest.fixture
def saved(vit_path: Path, tmp_path: Path) -> Path:
    model = AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, num_tokens=3, deep=True)
    return model.save_pretrained(tmp_path / "adapter")


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_an_unknown_method_lists_the_installed_ones(vit_path: Path) -> None:
    with pytest.raises(
        MethodNotFoundError, match="No method named 'vtp'.*Did you mean 'vpt'.*Installed methods: .*lora"
    ):
        AutoAdapter.from_backbone(str(vit_path), method="vtp", labels=LABELS)


def test_a_misspelled_option_is_named_with_a_suggestion(vit_path: Path) -> None:
    with pytest.raises(UnknownOptionError, match="'vpt' has no option 'num_token'. Did you mean 'num_tokens'"):
        AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, num_token=5)


def test_options_the_zoo_manages_are_not_options(vit_path: Path) -> None:
    with pytest.raises(UnknownOptionError, match="no option 'modules_to_save'"):
        AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, modules_to_save=["x"])


def test_missing_weights_are_named(saved: Path) -> None:
    (saved / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="adapter weights are missing"):
        AutoAdapter.from_pretrained(saved)


def test_truncated_weights_are_named(saved: Path) -> None:
    weights = saved / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        AutoAdapter.from_pretrained(saved)


def test_shape_mismatched_weights_are_named(saved: Path) -> None:
    weights = load_file(saved / "adapter_model.safetensors")
    key = next(k for k in weights if k.endswith("vpt_prompts"))
    weights[key] = torch.zeros(1, 4, weights[key].shape[-1])
    save_file(weights, saved / "adapter_model.safetensors")
    with pytest.raises(CheckpointError, match=rf"'{key}' has shape \(1, 4, 32\), the model expects \(1, 3, 32\)"):
        AutoAdapter.from_pretrained(saved)


def test_weights_that_do_not_match_the_config_are_named(saved: Path) -> None:
    edit_json(saved / "adapter_config.json", deep=False)
    with pytest.raises(CheckpointError, match="does not match this adapter.*unexpected.*vpt_deep_prompts"):
        AutoAdapter.from_pretrained(saved)


def test_pickle_weights_are_refused_unopened(saved: Path) -> None:
    (saved / "adapter_model.safetensors").rename(saved / "adapter_model.bin")
    with pytest.raises(CheckpointError, match=r"only pickle weights \(adapter_model.bin\).*never unpickles"):
        AutoAdapter.from_pretrained(saved)


def test_a_newer_format_version_asks_for_an_upgrade(saved: Path) -> None:
    edit_json(saved / "adapterzoo_config.json", format_version=99, adapterzoo_version="9.0.0")
    with pytest.raises(
        CheckpointError, match="adapterzoo 9.0.0 in format version 99.*up to 2.*pip install -U adapterzoo"
    ):
        AutoAdapter.from_pretrained(saved)


def test_a_corrupt_record_is_named(saved: Path) -> None:
    (saved / "adapterzoo_config.json").write_text('{"method": "vpt", ')
    with pytest.raises(CheckpointError, match="not valid JSON"):
        AutoAdapter.from_pretrained(saved)


def test_a_record_missing_fields_is_named(saved: Path) -> None:
    record = json.loads((saved / "adapterzoo_config.json").read_text())
    del record["labels"]
    (saved / "adapterzoo_config.json").write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="lacks required field.*labels"):
        AutoAdapter.from_pretrained(saved)


def test_an_adapter_that_lost_its_record_is_not_taken_for_one_peft_saved(saved: Path) -> None:
    (saved / "adapterzoo_config.json").unlink()
    with pytest.raises(CheckpointError, match="saved in its own layout, but its adapterzoo_config.json is missing"):
        AutoAdapter.from_pretrained(saved)


def test_a_folder_without_either_config_is_named(saved: Path) -> None:
    (saved / "adapterzoo_config.json").unlink()
    (saved / "adapter_config.json").unlink()
    with pytest.raises(CheckpointError, match="adapterzoo_config.json is missing, and so is PEFT's adapter_config"):
        AutoAdapter.from_pretrained(saved)


def test_a_missing_plugin_names_the_distribution_and_version_it_was_saved_with(saved: Path) -> None:
    """At least the recorded version: newer releases of a plugin load its adapters, and an exact pin could pick a
    release written for another plugin API."""
    edit_json(
        saved / "adapterzoo_config.json", method="foo", distribution="adapterzoo-foo", distribution_version="1.2.3"
    )
    with pytest.raises(MethodNotFoundError, match=r'No method named \'foo\'.*`pip install "adapterzoo-foo>=1.2.3"`'):
        AutoAdapter.from_pretrained(saved)


def test_a_peft_config_of_another_method_is_refused(saved: Path, vit_path: Path, tmp_path: Path) -> None:
    lora = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS).save_pretrained(tmp_path / "lora")
    shutil.copy(lora / "adapter_config.json", saved / "adapter_config.json")
    with pytest.raises(CheckpointError, match="holds a LoraConfig, but adapter records method 'vpt'"):
        AutoAdapter.from_pretrained(saved)


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="No saved adapter at"):
        AutoAdapter.from_pretrained(tmp_path / "nowhere")


def test_loading_never_imports_a_module_named_in_a_file(saved: Path, tmp_path: Path, monkeypatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    edit_json(saved / "adapter_config.json", auto_mapping={"base_model_class": "Evil", "parent_library": "evil_module"})
    AutoAdapter.from_pretrained(saved)
    edit_json(saved / "adapterzoo_config.json", method="evil_module:run", distribution="evil_module")
    with pytest.raises(MethodNotFoundError):
        AutoAdapter.from_pretrained(saved)
    assert not marker.exists() and "evil_module" not in sys.modules


def test_failed_loads_write_nothing(saved: Path) -> None:
    before = sorted(p.name for p in saved.parent.rglob("*"))
    (saved / "adapter_model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        AutoAdapter.from_pretrained(saved)
    assert sorted(p.name for p in saved.parent.rglob("*")) == before
