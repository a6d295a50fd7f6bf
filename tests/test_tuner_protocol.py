"""The protocol the tower base classes carry for a plugin, shown on a toy mergeable plugin installed as pip would
(tests/fixtures/toy_plugin): per-layer merge state, all-or-nothing merging, placement of new parameters, the
``target_modules`` rule and the prefix rule; and that the conformance suite's merge check catches a broken merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import get_peft_model

from adapterzoo import AdapterModel, AutoAdapter, PluginLoadError, get_method
from adapterzoo.errors import UnknownOptionError
from adapterzoo.task_models import build_task_model
from adapterzoo.testing import LABELS, MethodConformance, images, perturb_trainable
from adapterzoo.tuners import WrappingLayer

TOY_PLUGIN = Path(__file__).parent / "fixtures" / "toy_plugin"
ENTRY_POINTS = {"toy-scale": "TOY_SCALE", "toy-shared-state": "SHARED_STATE", "toy-bad-prefix": "BAD_PREFIX"}


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy plugin installed: its .dist-info with entry points, and its module, on sys.path."""
    info = tmp_path / "az_toy_scale-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: az-toy-scale\nVersion: 1.0\n")
    lines = "".join(f"{name} = az_toy_scale:{value}\n" for name, value in ENTRY_POINTS.items())
    (info / "entry_points.txt").write_text(f"[adapterzoo.methods]\n{lines}")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(TOY_PLUGIN))


class ToyScaleChecks(MethodConformance):
    method = "toy-scale"


class SharedStateChecks(MethodConformance):
    method = "toy-shared-state"


def build(vit_path: Path, method: str = "toy-scale", **options) -> AdapterModel:
    model = AutoAdapter.from_backbone(str(vit_path), method=method, labels=LABELS, **options)
    perturb_trainable(model, seed=0, scale=0.5)
    return model.eval()


def layers(model: torch.nn.Module) -> dict[str, WrappingLayer]:
    return {path: m for path, m in model.named_modules() if isinstance(m, WrappingLayer)}


def test_a_correct_mergeable_plugin_passes_the_merge_and_registration_checks(toy, vit_path: Path, tmp_path) -> None:
    checks = ToyScaleChecks()
    checks.test_merge_keeps_the_logits_or_is_refused_untouched(vit_path)
    checks.test_registration_is_consistent(vit_path, tmp_path / "registration")
    checks.test_runs_without_warnings(vit_path, tmp_path / "warnings")


def test_every_layer_keeps_its_own_merge_state(toy, vit_path: Path) -> None:
    model = build(vit_path)
    model.merge()
    merged = [layer.merged_adapters for layer in layers(model).values()]
    assert len(merged) == 3 and all(state == ["default"] for state in merged)
    assert len({id(state) for state in merged}) == len(merged)


def test_the_merge_check_catches_merge_state_shared_by_all_layers(toy, vit_path: Path) -> None:
    with pytest.raises(AssertionError):
        SharedStateChecks().test_merge_keeps_the_logits_or_is_refused_untouched(vit_path)


@pytest.mark.parametrize("merge", ["merge", "merge_and_unload"])
def test_one_refusing_layer_leaves_the_whole_model_untouched(toy, vit_path: Path, merge: str) -> None:
    model = build(vit_path)
    refusing = "backbone.layers.1.mlp.fc2"
    with torch.no_grad():
        model.task_model.get_submodule(refusing).toy_scale["default"][0] = 0
        before = model(images()).logits
    state = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(NotImplementedError, match=rf"{refusing}: a zero scale cannot be unfolded.*nothing was merged"):
        getattr(model, merge)()
    assert not any(layer.merged for layer in layers(model).values())
    assert len(layers(model)) == 3
    assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())
    with torch.no_grad():
        assert torch.equal(model(images()).logits, before)


def test_disabling_adapters_unfolds_a_merged_one(toy, vit_path: Path) -> None:
    model = build(vit_path)
    with torch.no_grad():
        with model.peft_model.disable_adapter():
            plain = model(images()).logits
        model.merge()
        with model.peft_model.disable_adapter():
            assert torch.allclose(model(images()).logits, plain, atol=1e-6)


@pytest.mark.parametrize("method, options", [("vpt", {"num_tokens": 2, "deep": True}), ("dvpt", {"num_prompts": 2})])
def test_unload_gives_back_the_plain_backbone(vit_path: Path, method: str, options: dict) -> None:
    model = build(vit_path, method, **options)
    with torch.no_grad(), model.peft_model.disable_adapter():
        plain = model.task_model.encode(images())
    task_model = model.peft_model.unload()
    assert not layers(task_model)
    with torch.no_grad():
        assert torch.equal(task_model.encode(images()), plain)


@pytest.mark.parametrize("method, options", [("toy-scale", {}), ("vpt", {"num_tokens": 2, "deep": True})])
def test_new_parameters_take_the_dtype_of_the_wrapped_module(toy, vit_path: Path, method: str, options: dict) -> None:
    task_model = build_task_model("image-classification", str(vit_path), LABELS).double()
    peft_model = get_peft_model(task_model, get_method(method).make_config(task_model, **options))
    prefix = peft_model.base_model.prefix
    adapter = [p for n, p in peft_model.named_parameters() if f".{prefix}" in n]
    assert adapter and all(p.dtype == torch.float64 for p in adapter)
    with torch.no_grad():
        assert peft_model(pixel_values=images().double()).logits.dtype == torch.float64


def test_a_tower_method_refuses_target_modules_it_has_no_use_for(vit_path: Path) -> None:
    with pytest.raises(UnknownOptionError, match="Method 'vpt' finds the parts it wraps .* no target_modules"):
        AutoAdapter.from_backbone(str(vit_path), method="vpt", labels=LABELS, target_modules=["nothing.here"])


def test_a_method_that_takes_target_modules_wraps_the_roles_asked_for(toy, vit_path: Path, tmp_path: Path) -> None:
    assert {path.rsplit(".", 1)[-1] for path in layers(build(vit_path))} == {"fc2"}
    build(vit_path, target_modules=["fc1"]).save_pretrained(tmp_path / "fc1")
    loaded = AutoAdapter.from_pretrained(tmp_path / "fc1")
    assert {path.rsplit(".", 1)[-1] for path in layers(loaded)} == {"fc1"}


def test_layer_parameters_outside_the_tuners_prefix_are_refused(toy, vit_path: Path) -> None:
    with pytest.raises(PluginLoadError, match=r"\['toy_scale.default'\] whose names do not start with .* 'bad_'"):
        AutoAdapter.from_backbone(str(vit_path), method="toy-bad-prefix", labels=LABELS)
