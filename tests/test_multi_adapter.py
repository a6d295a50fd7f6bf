"""Many adapters on one backbone: `AdapterModel.load_adapter`, and batches that mix adapters per example
(`adapter_names=`), equal to each adapter run alone for every method of the support matrix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from adapterzoo import AdapterMismatchError, AutoAdapter, CheckpointError, UnknownAdapterError
from adapterzoo.auto import AdapterModel
from adapterzoo.errors import LoadingOptionError
from adapterzoo.hub import EmbeddedHub
from adapterzoo.registry import get_method
from adapterzoo.saving import WEIGHTS_NAME
from adapterzoo.testing import images, perturb_trainable
from adapterzoo.testing.matrix import row_label, rows
from adapterzoo.training.fit import FeatureSet, is_fitted

LABEL_SETS = (("cat", "dog", "bird"), ("sun", "rain"), ("w", "x", "y", "z"))
"""Three tasks with label sets of different sizes, so that logits of different widths meet in one batch."""
SAME_WIDTH = (("cat", "dog", "bird"), ("sun", "rain", "snow"), ("x", "y", "z"))
"""For methods whose tuner builds every adapter's head as wide as the model's."""
ORDER = (0, 1, 2, 2, 1, 0)
"""Which adapter each example of the mixed batch names: every adapter, not in contiguous groups."""


def _kind(method: str) -> str:
    return "vit" if "image-classification" in get_method(method).tasks else "clip"


CASES = [pytest.param(m, v, _kind(m), id=f"{row_label(m, v)}-{_kind(m)}") for m, v in rows()]
CASES += [
    pytest.param("lora", {}, "clip", id="lora-clip"),
    pytest.param("lora", {"use_dora": True}, "vit", id="dora-vit"),  # PEFT cannot mix DoRA: grouped
]


def _perturb(model: AdapterModel, seed: int) -> None:
    """Move every adapter tensor off its start: fit a fitted method (Tip-Adapter, GDA) on random features of its
    classes, and perturb the trainable parameters."""
    if is_fitted(model):
        generator = torch.Generator().manual_seed(seed)
        count = len(model.labels)
        with torch.no_grad():
            dim = model.task_model.clip.config.projection_dim
            features = F.normalize(torch.randn(4 * count, dim, generator=generator), dim=-1)
            base = model.task_model(features=features).logits
            text = model.task_model.encode_text()
        examples = FeatureSet(features, torch.arange(4 * count) % count, base, text=text)
        for layer in model.peft_model.modules():
            if hasattr(layer, "fit_features"):
                layer.fit_features(model.adapter_name, examples, examples)
    perturb_trainable(model, seed=seed)


def _save_adapters(
    method: str, variant: dict, backbone: Path, folder: Path, label_sets=None, **extra: object
) -> list[Path]:
    """One saved adapter per label set, each trained-looking (perturbed) with its own seed."""
    zoo_method = get_method(method)
    options = {**zoo_method.tiny_options, **variant, **extra}
    label_sets = label_sets or (SAME_WIDTH if zoo_method.replaces_head else LABEL_SETS)
    folders = []
    for seed, labels in enumerate(label_sets):
        torch.manual_seed(seed)
        model = AutoAdapter.from_backbone(str(backbone), method=method, labels=labels, **options)
        _perturb(model, seed)
        folders.append(model.save_pretrained(folder / f"task{seed}"))
    return folders


def _loaded(folders: list[Path]):
    model = AutoAdapter.from_pretrained(folders[0], adapter_name="task0")
    for folder in folders[1:]:
        model.load_adapter(folder)
    return model


@pytest.mark.parametrize(("method", "variant", "kind"), CASES)
def test_a_mixed_batch_equals_each_adapter_alone(
    method: str, variant: dict, kind: str, tiny_backbone_path: Callable[[str], Path], tmp_path: Path
) -> None:
    """Two adapters (of different label counts where the method allows), examples interleaved."""
    label_sets = (SAME_WIDTH if get_method(method).replaces_head else LABEL_SETS)[:2]
    folders = _save_adapters(method, variant, tiny_backbone_path(kind), tmp_path, label_sets)
    model = _loaded(folders)
    names = ["task0", "task1", "task1", "task0"]
    x = images(len(names))
    with torch.no_grad():
        mixed = model(x, adapter_names=names).logits
        assert mixed.shape == (len(names), max(len(labels) for labels in label_sets))
        for i, folder in enumerate(folders):
            alone = AutoAdapter.from_pretrained(folder)(x).logits
            rows_i = [j for j, name in enumerate(names) if name == f"task{i}"]
            torch.testing.assert_close(mixed[rows_i, : alone.shape[-1]], alone[rows_i], atol=1e-5, rtol=0)
            assert torch.isneginf(mixed[rows_i, alone.shape[-1] :]).all()
            if i == 0:  # the model's own adapter still runs alone, unchanged by the other
                torch.testing.assert_close(model(x).logits, alone, atol=1e-5, rtol=0)


def _count_calls(module: nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *_: calls.append(1))
    return calls


def test_lora_runs_the_backbone_once_for_a_mixed_batch_and_a_prompt_method_once_per_adapter(
    vit_path: Path, tmp_path: Path
) -> None:
    """LoRA mixes per example inside every layer (PEFT's mixed batch); VPT's prompts need a pass per adapter."""
    for method, passes in (("lora", 1), ("vpt", 3)):
        model = _loaded(_save_adapters(method, {}, vit_path, tmp_path / method))
        calls = _count_calls(model.task_model.backbone.embeddings)
        with torch.no_grad():
            model(images(len(ORDER)), adapter_names=[f"task{i}" for i in ORDER])
        assert len(calls) == passes, method


def test_predict_answers_with_the_labels_of_each_image_s_adapter(vit_path: Path, tmp_path: Path) -> None:
    model = _loaded(_save_adapters("lora", {}, vit_path, tmp_path))
    pictures = [np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8) for i in range(3)]
    names = ["task2", "task1", "task0"]
    predictions = model.predict(pictures, adapter_names=names, top_k=10)
    for prediction, name in zip(predictions, names, strict=True):
        assert sorted(p["label"] for p in prediction) == sorted(model.adapter_labels(name))
        assert sum(p["score"] for p in prediction) == pytest.approx(1.0, abs=1e-5)
    alone = AutoAdapter.from_pretrained(tmp_path / "task1").predict(pictures[1], top_k=10)
    assert [p["label"] for p in predictions[1]] == [p["label"] for p in alone]
    assert [p["score"] for p in predictions[1]] == pytest.approx([p["score"] for p in alone], abs=1e-6)


def test_set_adapter_switches_labels_and_save_pretrained_saves_the_named_adapter(
    vit_path: Path, tmp_path: Path
) -> None:
    """DVPT keeps per-adapter submodules, whose weight keys carry the adapter's name: they load under any name."""
    folders = _save_adapters("dvpt", {}, vit_path, tmp_path)
    model = _loaded(folders)
    model.set_adapter("task1")
    assert (model.adapter_name, model.labels) == ("task1", list(SAME_WIDTH[1]))
    x = images(2)
    with torch.no_grad():
        expected = AutoAdapter.from_pretrained(folders[1])(x).logits
        torch.testing.assert_close(model(x).logits, expected, atol=1e-6, rtol=0)
        model.set_adapter("task0")
        saved = model.save_pretrained(tmp_path / "again", adapter_name="task1")
        assert model.adapter_name == "task0" and model.labels == list(SAME_WIDTH[0])
        reloaded = AutoAdapter.from_pretrained(saved)
        assert reloaded.labels == list(SAME_WIDTH[1])
        torch.testing.assert_close(reloaded(x).logits, expected, atol=1e-6, rtol=0)


def test_an_adapter_loads_from_a_hub_repo_under_the_repo_s_name(vit_path: Path, tmp_path: Path) -> None:
    folders = _save_adapters("lora", {}, vit_path, tmp_path)
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        AutoAdapter.from_pretrained(folders[1]).push_to_hub("me/weather")
        model = AutoAdapter.from_pretrained(folders[0])
        assert model.load_adapter("me/weather") == "weather"
    assert model.adapter_labels("weather") == list(LABEL_SETS[1])


def test_bad_adapter_names_are_refused(vit_path: Path, tmp_path: Path) -> None:
    model = _loaded(_save_adapters("lora", {}, vit_path, tmp_path))
    x = images(2)
    with pytest.raises(UnknownAdapterError, match=r"No adapter named 'nope' is loaded \(loaded: task0, task1, task2\)"):
        model(x, adapter_names=["task0", "nope"])
    with pytest.raises(ValueError, match="adapter_names has 3 names for a batch of 2 images"):
        model(x, adapter_names=["task0"] * 3)
    with pytest.raises(TypeError, match="one adapter name per image, got the string 'task0'"):
        model(x, adapter_names="task0")
    with pytest.raises(UnknownAdapterError, match="No adapter named 'nope'"):
        model.set_adapter("nope")
    with pytest.raises(ValueError, match=r"mixes adapters at inference: call model.eval\(\) first"):
        model.train()(x, adapter_names=["task0", "task1"])


def test_adapters_that_cannot_join_are_refused_and_leave_the_model_unchanged(
    tiny_backbone_path: Callable[[str], Path], tmp_path: Path
) -> None:
    vit = tiny_backbone_path("vit")
    model = AutoAdapter.from_pretrained(_save_adapters("lora", {}, vit, tmp_path / "lora", LABEL_SETS[:1])[0])
    vpt = _save_adapters("vpt", {}, vit, tmp_path / "vpt", LABEL_SETS[:1])[0]
    with pytest.raises(AdapterMismatchError, match="holds a 'vpt' adapter and the model's are 'lora'"):
        model.load_adapter(vpt)
    other_backbone = tiny_backbone_path("deit")
    other = _save_adapters("lora", {}, other_backbone, tmp_path / "deit", LABEL_SETS[:1])[0]
    with pytest.raises(AdapterMismatchError, match=f"trained on the backbone '{other_backbone}'"):
        model.load_adapter(other)
    pooled = _save_adapters("lora", {}, vit, tmp_path / "mean", LABEL_SETS[:1], pooling="mean")[0]
    with pytest.raises(AdapterMismatchError, match="'pooling': 'mean'"):
        model.load_adapter(pooled)
    same = _save_adapters("lora", {}, vit, tmp_path / "same", LABEL_SETS[1:2])[0]
    with pytest.raises(ValueError, match="'default' is already loaded"):
        model.load_adapter(same, adapter_name="default")
    with pytest.raises(ValueError, match="'classifier' cannot name an adapter"):
        model.load_adapter(same, adapter_name="classifier")
    with pytest.raises(LoadingOptionError, match="drop dtype="):
        model.load_adapter(same, dtype="bfloat16")
    (same / WEIGHTS_NAME).write_bytes((tmp_path / "vpt" / "task0" / WEIGHTS_NAME).read_bytes())
    with pytest.raises(CheckpointError):
        model.load_adapter(same)
    assert model.adapter_names == ["default"] and len(model.peft_model.peft_config) == 1
    head = model.task_model.classifier.modules_to_save
    assert list(head) == ["default"]


def test_a_method_that_builds_its_own_head_refuses_another_number_of_labels(vit_path: Path, tmp_path: Path) -> None:
    folders = _save_adapters("moment-probing", {}, vit_path, tmp_path, LABEL_SETS[:2])
    model = AutoAdapter.from_pretrained(folders[0])
    with pytest.raises(AdapterMismatchError, match="as wide as the model's, for 3 labels, and this adapter has 2"):
        model.load_adapter(folders[1])
