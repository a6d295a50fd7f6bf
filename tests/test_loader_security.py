"""Loading never runs, imports or prompts for code from a file, and a downloaded config cannot hang or exhaust it.

Loads that would hang or prompt without these checks run in a fresh process, with a timeout as a guard and a stdin
that answers "y" to transformers' "run the custom code?" prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adapterzoo import AutoAdapter
from adapterzoo.errors import CheckpointError
from adapterzoo.saving import AdapterRecord
from adapterzoo.testing import LABELS, images, perturb_trainable

LOAD_EACH = """
import sys
from adapterzoo import AutoAdapter
for call in sys.argv[1:]:
    try:
        model = eval(call)
    except Exception as exc:
        print(type(exc).__name__, " ".join(str(exc).split()))
    else:
        print("loaded", type(model.image_processor).__name__)
"""

CUSTOM_CODE = """
from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import PretrainedConfig, ViTImageProcessorPil

class CustomConfig(PretrainedConfig):
    model_type = "custom-vit"

class CustomProcessor(ViTImageProcessorPil):
    pass
"""


def load_each(calls: list[str], tmp_path: Path) -> list[str]:
    """Evaluate each call in one fresh process whose stdin answers "y"; one line per call: the outcome."""
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", LOAD_EACH, *calls],
        input="y\n" * 10,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.splitlines()


def edit_json(path: Path, **changes: object) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def with_custom_code(folder: Path, marker: Path) -> Path:
    """``folder`` holding a module that writes ``marker`` when imported."""
    (folder / "custom.py").write_text(CUSTOM_CODE.format(marker=str(marker)))
    return folder


def custom_config(folder: Path) -> Path:
    """``folder`` with a config.json whose model type only the custom code knows (transformers would prompt)."""
    edit_json(folder / "config.json", model_type="custom-vit", auto_map={"AutoConfig": "custom.CustomConfig"})
    return folder


def custom_processor(folder: Path) -> Path:
    edit_json(folder / "preprocessor_config.json", auto_map={"AutoImageProcessor": "custom.CustomProcessor"})
    return folder


def test_loaders_refuse_custom_code_without_running_or_prompting(vit_path: Path, clip_path: Path, tmp_path: Path):
    marker = tmp_path / "custom-code-ran"
    backbone = with_custom_code(shutil.copytree(vit_path, tmp_path / "backbone"), marker)
    AutoAdapter.from_backbone(str(backbone), method="lora", labels=LABELS).save_pretrained(tmp_path / "on-backbone")
    custom_config(backbone)  # the backbone the adapter records now ships custom code
    processor_only = custom_processor(with_custom_code(shutil.copytree(vit_path, tmp_path / "processor"), marker))
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS)
    adapter = custom_processor(with_custom_code(model.save_pretrained(tmp_path / "adapter"), marker))
    clip = with_custom_code(shutil.copytree(clip_path, tmp_path / "clip"), marker)
    edit_json(clip / "tokenizer_config.json", auto_map={"AutoTokenizer": ["custom.CustomTokenizer", None]})

    outcomes = load_each(
        [
            f"AutoAdapter.from_backbone({str(backbone)!r}, method='lora', labels=['a', 'b'])",
            f"AutoAdapter.from_backbone({str(processor_only)!r}, method='lora', labels=['a', 'b'])",
            f"AutoAdapter.from_pretrained({str(tmp_path / 'on-backbone')!r})",
            f"AutoAdapter.from_pretrained({str(adapter)!r})",
            f"AutoAdapter.from_backbone({str(clip)!r}, method='zero-shot', labels=['a', 'b'])",
        ],
        tmp_path,
    )

    files = ["config.json", "preprocessor_config.json", "config.json", "preprocessor_config.json"]
    files.append("tokenizer_config.json")
    for outcome, name in zip(outcomes, files, strict=True):
        assert outcome.startswith("RemoteCodeError") and f"its {name} names classes in an auto_map" in outcome
        assert "trust_remote_code=True" in outcome
    assert not marker.exists()


def test_trust_remote_code_opts_in_to_a_processors_custom_code(vit_path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "custom-code-ran"
    backbone = custom_processor(with_custom_code(shutil.copytree(vit_path, tmp_path / "backbone"), marker))
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS)
    adapter = custom_processor(with_custom_code(model.save_pretrained(tmp_path / "adapter"), marker))

    outcomes = load_each(
        [
            f"AutoAdapter.from_backbone({str(backbone)!r}, method='lora', labels=['a'], trust_remote_code=True)",
            f"AutoAdapter.from_pretrained({str(adapter)!r}, trust_remote_code=True)",
        ],
        tmp_path,
    )

    assert outcomes == ["loaded CustomProcessor", "loaded CustomProcessor"]
    assert marker.read_text() == "ran"


@pytest.fixture(scope="module")
def lora_adapter(vit_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, target_modules=["q", "v", "fc1"])
    return model.save_pretrained(tmp_path_factory.mktemp("lora") / "adapter")


def tampered(adapter: Path, folder: Path, file: str, **changes: object) -> Path:
    shutil.copytree(adapter, folder)
    edit_json(folder / file, **changes)
    return folder


CATASTROPHIC = "(.+)+z"


def test_patterns_adapterzoo_does_not_write_are_refused_before_peft_matches_them(
    lora_adapter: Path, tmp_path: Path
) -> None:
    by_layer = {"target_modules": ["q_proj"], "layers_to_transform": [0]}  # what layers_pattern goes with
    changes = {
        "target_modules": {"target_modules": CATASTROPHIC},
        "exclude_modules": {"exclude_modules": CATASTROPHIC},
        "modules_to_save": {"modules_to_save": ["classifier", CATASTROPHIC]},
        "layers_pattern": {**by_layer, "layers_pattern": CATASTROPHIC},
        "rank_pattern": {"rank_pattern": {CATASTROPHIC: 4}},
        "alpha_pattern": {"alpha_pattern": {"q_proj": 8, CATASTROPHIC: 4}},
    }
    folders = {
        field: tampered(lora_adapter, tmp_path / field, "adapter_config.json", **change)
        for field, change in changes.items()
    }

    outcomes = load_each([f"AutoAdapter.from_pretrained({str(folder)!r})" for folder in folders.values()], tmp_path)

    for outcome, (field, folder) in zip(outcomes, folders.items(), strict=True):
        assert outcome.startswith(f"CheckpointError {folder / 'adapter_config.json'}: {field} ")
        assert "adapterzoo loads only the regexes it writes itself" in outcome


def test_the_regexes_adapterzoo_writes_load(lora_adapter: Path, vit_path: Path, tmp_path: Path) -> None:
    ia3 = AutoAdapter.from_backbone(str(vit_path), method="ia3", labels=LABELS).save_pretrained(tmp_path / "ia3")
    vpt = AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS).save_pretrained(tmp_path / "vpt")
    for folder in (lora_adapter, ia3, vpt):
        assert AutoAdapter.from_pretrained(folder).labels == list(LABELS)
    # A role regex of another backbone (here: the old ViT module names) is not one of this backbone's.
    old_names = r"backbone\.encoder\.layer\.\d+\.(?:attention\.attention\.query|attention\.attention\.value)"
    renamed = tampered(lora_adapter, tmp_path / "renamed", "adapter_config.json", target_modules=old_names)
    with pytest.raises(CheckpointError, match="target_modules .* is not the regex of a set of linear-layer roles"):
        AutoAdapter.from_pretrained(renamed)


def test_a_users_own_regex_is_saved_as_module_names_and_round_trips(vit_path: Path, tmp_path: Path) -> None:
    regex = r"backbone\.layers\.[02]\.attention\.(q_proj|k_proj)"
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=LABELS, target_modules=regex)
    expected = [f"backbone.layers.{i}.attention.{name}" for i in (0, 2) for name in ("k_proj", "q_proj")]
    assert sorted(model.peft_model.base_model.targeted_module_names) == expected
    perturb_trainable(model, seed=1)
    folder = model.save_pretrained(tmp_path / "adapter")
    saved = [name.replace("backbone.", "vit.", 1) for name in expected]  # the PEFT-native layout of ViT's class
    assert sorted(json.loads((folder / "adapter_config.json").read_text())["target_modules"]) == saved

    loaded = AutoAdapter.from_pretrained(folder)

    with torch.no_grad():
        assert torch.equal(loaded(images()).logits, model.eval()(images()).logits)


def test_more_labels_than_the_head_has_are_refused_before_the_task_model_is_built(
    lora_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = [f"class {i}" for i in range(100_000)]
    folder = tampered(lora_adapter, tmp_path / "many", "adapterzoo_config.json", labels=labels)
    monkeypatch.setattr("adapterzoo.auto.build_task_model", lambda *args, **kwargs: pytest.fail("head was built"))

    with pytest.raises(CheckpointError) as error:
        AutoAdapter.from_pretrained(folder)

    assert str(error.value).startswith(f"{folder / 'adapter_model.safetensors'}: the head ('classifier') holds no ")
    assert "100000 x 32 weight for the 100000 labels listed in adapterzoo_config.json" in str(error.value)
    assert "[(3, 32)]" in str(error.value)


def test_many_labels_with_a_matching_head_load(vit_path: Path, tmp_path: Path) -> None:
    labels = [f"synset {i}" for i in range(21_843)]
    model = AutoAdapter.from_backbone(str(vit_path), method="lora", labels=labels)
    loaded = AutoAdapter.from_pretrained(model.save_pretrained(tmp_path / "adapter"))
    assert loaded.labels == labels
    with torch.no_grad():
        assert loaded(images(batch=1)).logits.shape == (1, 21_843)


@pytest.mark.parametrize(
    ("labels", "error"),
    [
        (["cat", "dog", "cat", "bird", "dog"], "Labels must be unique; repeated: cat, dog."),
        ([f"class {i % 50_000}" for i in range(100_000)], "repeated: class 0, class 1, class 10, "),
        ([], "An adapter needs at least one label."),
        (["cat", 3, "bird"], "labels must be a list of strings."),
        ("cat", "labels must be a list of strings."),
    ],
)
def test_the_record_refuses_repeated_or_malformed_labels(
    lora_adapter: Path, tmp_path: Path, labels: object, error: str
) -> None:
    folder = tampered(lora_adapter, tmp_path / "labels", "adapterzoo_config.json", labels=labels)
    with pytest.raises(CheckpointError) as raised:
        AdapterRecord.read(folder)
    assert str(raised.value).startswith(f"{folder / 'adapterzoo_config.json'}: ")
    assert error in str(raised.value)
