"""The conformance suite: what every method, the core's and each plugin's, must do.

Subclass `MethodConformance` in a test module and set the method and its options; pytest then runs every check on a
tiny backbone of every architecture the method serves (ViT, CLIP's vision tower, DeiT, DINOv2 with and without
registers, SigLIP's vision tower, BEiT, Swin: those whose attachment the method does not refuse; set ``kinds`` to
choose), and for CLIP classification methods, `CLIPMethodConformance`, on a tiny whole CLIP with its tokenizer. The
kit's pytest plugin (`adapterzoo.testing.pytest_plugin`, active wherever adapterzoo is installed) provides the tiny
backbones, so a plugin's test module can be this alone::

    from adapterzoo.testing import MethodConformance



    class TestVPTDeep(MethodConformance):
        method = "vpt"
        options = {"num_tokens": 3, "deep": True}

Adapters are perturbed away from their initialisation before each comparison, since many start as the identity
(LoRA's B = 0) and would make an "equal outputs" check pass for the wrong reason. Beyond the behaviour, the suite
checks merging (exact for a mergeable method; for any other, a refusal that leaves the model untouched), the
registration (parameter names under the tuner's prefix, declared defaults that exist, a config that round-trips through
JSON) and that building, training, saving and loading raise no warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from peft import PeftConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils import ModulesToSaveWrapper

from adapterzoo.auto import AdapterModel, AutoAdapter
from adapterzoo.backbones import describe_backbone
from adapterzoo.errors import UnknownOptionError
from adapterzoo.registry import get_method
from adapterzoo.task_models import build_task_model
from adapterzoo.testing.backbones import served_kinds
from adapterzoo.testing.helpers import LABELS, adam_losses, fell_below, images, perturb_trainable, separable_images


def _unused_final_norm(model: AdapterModel) -> str | None:
    """The name of the backbone's final norm when the task model's head does not apply it, else None."""
    task_model = model.task_model
    if getattr(task_model, "final_norm", None) != "none":
        return None
    return describe_backbone(task_model).final_norm.rsplit(".", 1)[-1]


def original_head(head: torch.nn.Module) -> torch.nn.Module:
    """The head as it was before the adapter: kept by PEFT's ModulesToSaveWrapper, or wrapped by a tuner layer."""
    if isinstance(head, ModulesToSaveWrapper):
        return head.original_module
    if isinstance(head, BaseTunerLayer):
        return head.get_base_layer()
    return head


class MethodConformance:
    """The checks every method passes. Set ``method`` and ``options`` in a subclass."""

    method: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    task: ClassVar[str] = "image-classification"
    has_adapter_layers: ClassVar[bool] = True
    """False for methods that only train whole modules (the linear probe's head, full fine-tuning's backbone)."""
    allowed_warnings: ClassVar[tuple[str, ...]] = ()
    """Regexes of warnings that the method's own dependencies give where the tests run (PEFT's BOFT without CUDA)."""
    kinds: ClassVar[tuple[str, ...] | None] = None
    """The tiny backbones to run on (`adapterzoo.testing.KINDS`); default: every vision kind the method serves."""

    @classmethod
    def backbone_kinds(cls) -> list[str]:
        """The kinds the suite runs on; the kit's pytest plugin parametrizes ``backbone_path`` with them."""
        return list(cls.kinds) if cls.kinds is not None else list(served_kinds(cls.method))

    def build(self, backbone_path: Path, seed: int = 0) -> AdapterModel:
        torch.manual_seed(seed)
        model = AutoAdapter.from_backbone(
            str(backbone_path), method=self.method, labels=LABELS, task=self.task, **self.options
        )
        perturb_trainable(model, seed)
        return model.eval()

    def plain_task_model(self, backbone_path: Path) -> torch.nn.Module:
        """The task model with no adapter, as the method would find it."""
        return build_task_model(self.task, str(backbone_path), LABELS, settings=get_method(self.method).task_settings)

    def make_config(self, task_model: torch.nn.Module):
        method = get_method(self.method)
        return method.make_config(task_model, head_module=task_model.head_module, **self.options)

    def test_adapter_changes_the_output(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        with torch.no_grad():
            adapted = model(images()).logits
            with model.peft_model.disable_adapter():
                plain = model(images()).logits
        assert not torch.allclose(adapted, plain)

    def test_disable_adapter_gives_the_plain_backbone(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        reference = self.plain_task_model(backbone_path).eval()
        if reference.head_module is not None:
            head = getattr(model.task_model, reference.head_module)
            getattr(reference, reference.head_module).load_state_dict(original_head(head).state_dict())
        with torch.no_grad(), model.peft_model.disable_adapter():
            assert torch.equal(model.task_model.encode(images()), reference.encode(images()))
            assert torch.equal(model(images()).logits, reference(images()).logits)

    def test_save_and_load_round_trip_is_exact(self, backbone_path: Path, tmp_path: Path) -> None:
        model = self.build(backbone_path)
        model.save_pretrained(tmp_path / "adapter")
        loaded = AutoAdapter.from_pretrained(tmp_path / "adapter")
        trainable = AutoAdapter.from_pretrained(tmp_path / "adapter", is_trainable=True).eval()
        with torch.no_grad():
            assert torch.equal(trainable(images()).logits, model(images()).logits)
            model.requires_grad_(False)  # as the frozen copy: CPU kernels may differ in the last bit for frozen weights
            assert torch.equal(loaded(images()).logits, model(images()).logits)
        assert loaded.labels == list(LABELS)
        assert loaded.trainable_parameters == model.trainable_parameters

    def test_peft_save_and_load_round_trip_is_exact(self, backbone_path: Path, tmp_path: Path) -> None:
        model = self.build(backbone_path)
        model.peft_model.save_pretrained(tmp_path / "peft")
        loaded = PeftModel.from_pretrained(self.plain_task_model(backbone_path), tmp_path / "peft").eval()
        model.requires_grad_(False)  # as the frozen copy (see above)
        with torch.no_grad():
            assert torch.equal(loaded(pixel_values=images()).logits, model(images()).logits)

    def test_get_peft_model_attaches_the_method(self, backbone_path: Path) -> None:
        task_model = self.plain_task_model(backbone_path)
        peft_model = get_peft_model(task_model, self.make_config(task_model))
        assert isinstance(peft_model.base_model, get_method(self.method).tuner_cls)
        assert peft_model.get_nb_trainable_parameters()[0] > 0

    def test_only_adapter_and_head_are_trainable(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        prefix = model.peft_model.base_model.prefix
        trainable = [name for name, p in model.named_parameters() if p.requires_grad]
        wrappers = [name for name, m in model.named_modules() if isinstance(m, ModulesToSaveWrapper)]
        saved_whole = [n for n in trainable if any(n.startswith(f"{w}.modules_to_save.") for w in wrappers)]
        adapter = [n for n in trainable if n not in saved_whole]
        if model.task_model.head_module is not None:
            assert any(f".{model.task_model.head_module}." in name for name in trainable)
        assert all(prefix in name for name in adapter)
        assert bool(adapter) == self.has_adapter_layers
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == model.trainable_parameters

    def test_backbone_is_unchanged_by_an_optimizer_step(self, backbone_path: Path) -> None:
        model = self.build(backbone_path).train()
        frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
        trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
        model(images(), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
        optimizer.step()
        after = dict(model.named_parameters())
        assert all(torch.equal(after[n], value) for n, value in frozen.items())
        # Every trainable parameter moves, but a backbone's mask token, which only masked-image pretraining uses
        # (full fine-tuning trains it; nothing here reaches it), and a final norm the head does not apply (CLIP's
        # post_layernorm under transformers' CLIP head).
        unused = _unused_final_norm(model)
        moved = [n for n in trained if not n.endswith("mask_token") and not (unused and f".{unused}." in n)]
        assert moved and all(not torch.equal(after[n], trained[n]) for n in moved)

    def test_loss_falls_when_training(self, backbone_path: Path) -> None:
        model = self.build(backbone_path).train()
        labels = torch.tensor([0, 1, 2, 0, 1, 2])
        losses = adam_losses(model, separable_images(labels), labels, steps=40, until=fell_below(0.8))
        assert losses[-1] < 0.8 * losses[0]

    def test_two_named_adapters_coexist(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        with torch.no_grad():
            first = model(images()).logits
            model.peft_model.add_adapter("second", self.make_config(model.task_model))
            model.peft_model.set_adapter("second")
            perturb_trainable(model, seed=7)
            model.eval()
            second = model(images()).logits
            model.peft_model.set_adapter("default")
            model.eval()
            again = model(images()).logits
        assert not torch.allclose(first, second)
        assert torch.equal(first, again)

    def test_an_unknown_option_lists_the_valid_ones(self, backbone_path: Path) -> None:
        method = get_method(self.method)
        with pytest.raises(UnknownOptionError, match="Valid options: ") as error:
            AutoAdapter.from_backbone(str(backbone_path), method=self.method, labels=LABELS, not_an_option=1)
        assert all(option in str(error.value) for option in method.options())

    def test_merge_keeps_the_logits_or_is_refused_untouched(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        state = {name: value.clone() for name, value in model.state_dict().items()}
        with torch.no_grad():
            before = model(images()).logits
            try:
                model.merge()
            except NotImplementedError as refusal:
                assert "cannot be merged" in str(refusal)
                with pytest.raises(NotImplementedError, match="cannot be merged"):
                    model.merge_and_unload()
                assert not any(m.merged for m in model.modules() if isinstance(m, BaseTunerLayer))
                assert all(torch.equal(value, state[name]) for name, value in model.state_dict().items())
                assert torch.equal(model(images()).logits, before)
                return
            assert torch.allclose(model(images()).logits, before, atol=1e-5)
            model.unmerge()
            assert torch.allclose(model(images()).logits, before, atol=1e-5)
            plain = model.merge_and_unload()
            assert not any(isinstance(m, BaseTunerLayer) for m in plain.modules())
            assert torch.allclose(plain(pixel_values=images()).logits, before, atol=1e-5)

    def test_registration_is_consistent(self, backbone_path: Path, tmp_path: Path) -> None:
        method = get_method(self.method)
        assert set(method.defaults) <= set(method.options())
        model = self.build(backbone_path)
        prefix = model.peft_model.base_model.prefix
        for path, layer in model.named_modules():
            if isinstance(layer, BaseTunerLayer):
                own = [name for name, _ in layer.named_parameters() if not name.startswith("base_layer.")]
                assert all(name.startswith(prefix) for name in own), (path, own, prefix)
        config = model.peft_model.peft_config[model.adapter_name]
        config.save_pretrained(tmp_path)
        loaded = PeftConfig.from_pretrained(tmp_path)
        assert type(loaded) is type(config) and loaded.to_dict() == config.to_dict()

    def test_runs_without_warnings(self, backbone_path: Path, tmp_path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for message in self.allowed_warnings:
                warnings.filterwarnings("ignore", message=message)
            model = self.build(backbone_path).train()
            model(images(), labels=torch.tensor([0, 1, 2, 0])).loss.backward()
            model.save_pretrained(tmp_path / "adapter")
            loaded = AutoAdapter.from_pretrained(tmp_path / "adapter")
            with torch.no_grad():
                loaded(images())

    def test_predict_returns_labels_with_scores(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        batch = (torch.rand(2, 40, 48, 3) * 255).to(torch.uint8).numpy()
        predictions = model.predict(list(batch), top_k=3)
        assert len(predictions) == 2
        for ranked in predictions:
            assert sorted(p["label"] for p in ranked) == sorted(LABELS)
            scores = [p["score"] for p in ranked]
            assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5


class CLIPMethodConformance(MethodConformance):
    """The same checks for methods of CLIP classification, on a tiny whole CLIP with its tokenizer."""

    task: ClassVar[str] = "clip-classification"
    kinds: ClassVar[tuple[str, ...] | None] = ("clip",)
