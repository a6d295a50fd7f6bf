"""GDA and Tip-Adapter: the closed forms against a numpy write-out, fitting on the built-in toy data, the merged GDA
head, a Tip-Adapter's round trip through the hub, buffer counts at the papers' shapes, and the refusals."""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
import transformers
from adapterzoo_training_free.closed_form import gda_head, grid, tip_logits
from adapterzoo_training_free.model import gda_linear_head
from peft import get_peft_model

from adapterzoo import AdapterModel, AutoAdapter, CLIPClassifier, evaluate, fit, get_method, train
from adapterzoo.backbones import load_clip
from adapterzoo.cli import main
from adapterzoo.data import builtin_dataset
from adapterzoo.data.tokenizer import builtin_clip_tokenizer
from adapterzoo.hub import EmbeddedHub
from adapterzoo.testing import LABELS, CLIPMethodConformance, images, save_tiny_backbone

CLASSES = ["circle", "square", "triangle"]


def toy_split(split: str, per_class: int, seed: int) -> datasets.Dataset:
    """Three toy shapes, named as the kit's LABELS."""
    data = builtin_dataset("shapes", split, num_per_class=per_class, classes=CLASSES, seed=seed)
    return data.cast_column("label", datasets.ClassLabel(names=list(LABELS)))


class _Fitted(CLIPMethodConformance):
    """The kit's checks on a fitted adapter (the kit's own start, all zeros, would classify as zero-shot CLIP)."""

    def build(self, backbone_path: Path, seed: int = 0) -> AdapterModel:
        model = super().build(backbone_path, seed)
        fit(model, toy_split("train", 4, seed), toy_split("validation", 8, seed + 1))
        return model.eval()


class _NothingTrains(_Fitted):
    """A fitted method with no trainable parameter."""

    # The kit's checks of training (what trains, an optimizer step, a falling loss, a backward pass) cannot apply:
    # nothing trains. Each is replaced by what holds for a fitted method instead.
    def test_get_peft_model_attaches_the_method(self, backbone_path: Path) -> None:
        task_model = self.plain_task_model(backbone_path)
        peft_model = get_peft_model(task_model, self.make_config(task_model))
        assert isinstance(peft_model.base_model, get_method(self.method).tuner_cls)
        assert peft_model.get_nb_trainable_parameters()[0] == 0

    def test_only_adapter_and_head_are_trainable(self, backbone_path: Path) -> None:
        model = self.build(backbone_path)
        assert model.trainable_parameters == 0 and not any(p.requires_grad for p in model.parameters())
        prefix = model.peft_model.base_model.prefix
        assert all(prefix in name for name, _ in model.peft_model.named_buffers() if "feature_logits." in name)

    def test_backbone_is_unchanged_by_an_optimizer_step(self, backbone_path: Path) -> None:
        model = AutoAdapter.from_backbone(str(backbone_path), method=self.method, labels=LABELS, **self.options)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        fit(model, toy_split("train", 4, 0), toy_split("validation", 8, 1))
        assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())

    def test_loss_falls_when_training(self, backbone_path: Path) -> None:
        """Its counterpart for a fitted method: fitting lowers the loss on the few-shot set it was fitted on."""
        model = AutoAdapter.from_backbone(str(backbone_path), method=self.method, labels=LABELS, **self.options).eval()
        train_split = toy_split("train", 4, 0)
        pixels = torch.cat([model.image_processor(image, return_tensors="pt")["pixel_values"]
                            for image in train_split["image"]])  # fmt: skip
        labels = torch.tensor(train_split["label"])
        with torch.no_grad():
            before = model(pixels, labels=labels).loss.item()
            fit(model, train_split, toy_split("validation", 8, 1))
            after = model(pixels, labels=labels).loss.item()
        assert after < before, (before, after)

    def test_runs_without_warnings(self, backbone_path: Path, tmp_path: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = self.build(backbone_path)
            model.save_pretrained(tmp_path / "adapter")
            with torch.no_grad():
                AutoAdapter.from_pretrained(tmp_path / "adapter")(images())


class TestGDA(_NothingTrains):
    method = "gda"


class TestTipAdapter(_NothingTrains):
    method = "tip-adapter"
    options = {"search_scale": [50, 50]}


class TestTipAdapterF(_Fitted):
    """Fitted, its keys train: the kit's training checks apply as they are."""

    method = "tip-adapter-f"
    options = {"augment_views": 2}

    def test_get_peft_model_attaches_the_method(self, backbone_path: Path) -> None:
        """Before fitting the cache is empty (nothing to train); a config that records its size trains N·K·D."""
        task_model = self.plain_task_model(backbone_path)
        peft_model = get_peft_model(task_model, self.make_config(task_model))
        assert peft_model.get_nb_trainable_parameters()[0] == 0
        config = get_method(self.method).make_config(task_model, cache_size=12)
        assert get_peft_model(self.plain_task_model(backbone_path), config).get_nb_trainable_parameters()[0] == 12 * 16


@pytest.fixture(scope="module")
def splits() -> dict:
    """Few-shot train (4 per class), validation and test splits of the toy shapes."""
    return {
        "train": builtin_dataset("shapes", "train", num_per_class=4, classes=CLASSES),
        "validation": builtin_dataset("shapes", "validation", num_per_class=8, classes=CLASSES, seed=1),
        "test": builtin_dataset("shapes", "test", num_per_class=8, classes=CLASSES, seed=2),
    }


def test_gda_head_matches_a_numpy_write_out() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 6))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.repeat(np.arange(3), 10)
    mu = np.stack([x[y == k].mean(0) for k in range(3)])
    sigma = np.cov((x - mu[y]).T)
    precision = 6 * np.linalg.pinv(29 * sigma + np.trace(sigma) * np.eye(6))
    weight, bias = gda_head(torch.tensor(x), torch.tensor(y), 3)
    np.testing.assert_allclose(weight.numpy(), precision @ mu.T, rtol=1e-5, atol=1e-5)
    expected_bias = np.log(1 / 3) - 0.5 * np.array([m @ precision @ m for m in mu])
    np.testing.assert_allclose(bias.numpy(), expected_bias, rtol=1e-5, atol=1e-5)


def test_tip_adapter_cache_logits_match_a_numpy_write_out() -> None:
    rng = np.random.default_rng(1)
    f, keys = rng.normal(size=(5, 4)), rng.normal(size=(6, 4))
    values = np.eye(3)[[0, 0, 1, 1, 2, 2]]
    expected = np.exp(-2.5 * (1 - f @ keys.T)) @ values
    got = tip_logits(torch.tensor(f), torch.tensor(keys), torch.tensor(values), 2.5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)
    assert grid(7, 200)[:2] == [0.1, 0.1 + 6.9 / 200] and len(grid(3, 20)) == 20


# Tip-Adapter's search scale is per dataset; the toy shapes take the reference's largest (Flowers102's [50, 50]).
@pytest.mark.parametrize(("method", "options"), [("gda", {}), ("tip-adapter", {"search_scale": [50, 50]})])
def test_fitting_beats_zero_shot_on_the_toy_shapes(clip_path: Path, splits: dict, method: str, options: dict) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method=method, labels=CLASSES, **options)
    zero_shot = evaluate(model, splits["test"])["accuracy"]
    chosen = fit(model, splits["train"], splits["validation"])
    assert evaluate(model, splits["test"])["accuracy"] > zero_shot
    assert set(chosen) == ({"alpha", "accuracy"} if method == "gda" else {"alpha", "beta", "accuracy"})


def test_fitted_gda_is_one_linear_head(clip_path: Path, splits: dict) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=CLASSES)
    fit(model, splits["train"], splits["validation"])
    classifier = model.task_model.eval()
    with torch.no_grad():
        features = classifier.encode(images(4))
        assert torch.allclose(gda_linear_head(classifier)(features), classifier(features=features).logits, atol=1e-5)


def test_fitted_tip_adapter_round_trips_through_the_hub(clip_path: Path, splits: dict, tmp_path: Path) -> None:
    with EmbeddedHub(tmp_path / "hub") as hub, hub.activate():
        plain, _ = load_clip(str(clip_path))
        plain.push_to_hub("zoo/tiny-clip")
        transformers.CLIPProcessor.from_pretrained(str(clip_path)).push_to_hub("zoo/tiny-clip")
        model = AutoAdapter.from_backbone("zoo/tiny-clip", method="tip-adapter", labels=CLASSES)
        fit(model, splits["train"], splits["validation"])
        model.save_pretrained(tmp_path / "saved")
        model.push_to_hub("me/clip-tip")
        for loaded in (
            AutoAdapter.from_pretrained(str(tmp_path / "saved")),
            AutoAdapter.from_pretrained("me/clip-tip"),
        ):
            with torch.no_grad():
                assert torch.equal(loaded.eval()(images()).logits, model.eval()(images()).logits)


def test_counts_at_the_papers_shapes() -> None:
    """CLIP ViT-B/16 (D = 512), ImageNet's 1000 classes, 16 shots: GDA keeps D·N + N (+ α) and the fitted classes'
    text features N·D (base-to-novel: also the 10·N·K training features it synthesises new classes from);
    Tip-Adapter's cache N·K·D keys (Tip-Adapter-F's 8.19 M trainable) and N·K·N values (+ α, β)."""
    config = transformers.CLIPConfig(vision_config={"patch_size": 16}, projection_dim=512)
    classifier = CLIPClassifier(
        transformers.CLIPModel(config), builtin_clip_tokenizer(), [f"c{i}" for i in range(1000)]
    )
    for method, options, expected in (
        ("gda", {}, 2 * 512 * 1000 + 1000 + 1),
        ("gda", {"variant": "base-to-novel", "fitted_samples": 160_000}, 2 * 512 * 1000 + 1000 + 1 + 160_000 * 512),
        ("tip-adapter", {"cache_size": 16_000}, 16_000 * 512 + 16_000 * 1000 + 2),
        ("tip-adapter-f", {"cache_size": 16_000}, 16_000 * 1000 + 2),
    ):
        peft_model = get_peft_model(classifier, get_method(method).make_config(classifier, **options))
        trains = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert trains == (8_192_000 if method == "tip-adapter-f" else 0)
        buffers = sum(b.numel() for n, b in peft_model.named_buffers() if "feature_logits" in n)
        assert buffers == expected
        peft_model.unload()


def test_bad_input_is_refused_before_any_work(clip_path: Path, splits: dict, tmp_path: Path) -> None:
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=CLASSES, augment_views=0)
    one_each = builtin_dataset("shapes", "train", num_per_class=1, classes=CLASSES)
    with pytest.raises(ValueError, match=r"fewer than two examples of the classes \['circle', 'square', 'triangle'\]"):
        fit(model, one_each, splits["validation"])
    two = builtin_dataset("shapes", "train", num_per_class=2, classes=CLASSES[:2])
    with pytest.raises(ValueError, match=r"no example of the classes \['triangle'\]"):
        fit(model, two, splits["validation"])
    with pytest.raises(ValueError, match="search split is 'test'.*never the test split"):
        fit(model, splits["train"], splits["test"])
    vit = save_tiny_backbone(tmp_path / "vit", "vit")
    with pytest.raises(Exception, match="Method 'gda'.*'vit' model"):
        AutoAdapter.from_backbone(str(vit), method="gda", labels=CLASSES)


def test_the_command_line_fits_a_fitted_method(clip_path: Path, splits: dict, tmp_path: Path, capsys) -> None:
    datasets.DatasetDict({"train": splits["train"], "validation": splits["validation"]}).save_to_disk(tmp_path / "d")
    assert main(["train", "--backbone", str(clip_path), "--method", "gda", "--dataset", str(tmp_path / "d"),
                 "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0  # fmt: skip
    assert '"fitted"' in capsys.readouterr().out
    loaded = AutoAdapter.from_pretrained(tmp_path / "run" / "final")
    assert loaded.peft_model.base_model.model.feature_logits.gda_alpha["default"] > 0


def test_tip_adapter_keys_are_the_few_shot_features(clip_path: Path, splits: dict) -> None:
    """Without augmentation the keys are the few-shot images' normalised features, the values their one-hot labels;
    with views, the keys stay normalised and differ from them."""
    for views in (0, 2):
        model = AutoAdapter.from_backbone(str(clip_path), method="tip-adapter", labels=CLASSES, augment_views=views)
        fit(model, splits["train"], splits["validation"])
        cache = model.task_model.feature_logits
        pixels = torch.cat([model.image_processor(image, return_tensors="pt")["pixel_values"]
                            for image in splits["train"]["image"]])  # fmt: skip
        with torch.no_grad():
            features = model.task_model.encode(pixels)
        keys = cache.tip_keys["default"]
        assert torch.allclose(keys.norm(dim=-1), torch.ones(len(keys)), atol=1e-5)
        assert torch.allclose(keys, features, atol=1e-5) == (views == 0)
        assert torch.equal(cache.tip_values["default"].argmax(-1), torch.tensor(splits["train"]["label"]))
    model.task_model.set_classes(["circle", "cross"])
    with pytest.raises(ValueError, match="over the 3 classes it was fitted on; it cannot classify 2 other classes"):
        model(pixels)


def test_tip_adapter_f_trains_its_keys_then_searches_again(clip_path: Path, splits: dict, tmp_path: Path) -> None:
    options = {"augment_views": 0, "search_scale": [50, 50]}
    model = AutoAdapter.from_backbone(str(clip_path), method="tip-adapter-f", labels=CLASSES, **options)
    chosen = fit(model, splits["train"], splits["validation"])
    assert (chosen["alpha"], chosen["beta"]) == (1.17, 1.0)  # training runs at the initial α, β
    keys = model.task_model.feature_logits.tip_keys["default"]
    assert keys.requires_grad and keys.shape == (12, 16)
    start = keys.detach().clone()
    train(model, splits["train"], epochs=2, batch_size=4, augment=False, output_dir=tmp_path / "run", progress=False)
    trained = model.task_model.feature_logits.tip_keys["default"].detach().clone()
    assert not torch.equal(trained, start)
    fit(model, splits["train"], splits["validation"])
    assert torch.equal(model.task_model.feature_logits.tip_keys["default"], trained)  # the search keeps the keys
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoAdapter.from_pretrained(str(tmp_path / "saved"))
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(images()).logits, model.eval()(images()).logits, atol=1e-6)


def test_fitting_reads_features_through_the_feature_cache(clip_path: Path, splits: dict, capsys) -> None:
    """`fit` encodes through the trainer's feature cache (its bar) and its augmented views pass (theirs), and
    leaves the model in eval mode: the features it fitted on are the cache's."""
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=CLASSES, augment_views=1).train()
    fit(model, splits["train"], splits["validation"], progress=True)
    bars = capsys.readouterr().err
    assert "caching features" in bars and "augmented views" in bars and not model.training


def test_the_command_line_runs_gda_under_base_to_novel(clip_path: Path, splits: dict, tmp_path: Path, capsys) -> None:
    """`--protocol base-to-novel` fits a fitted method on the base half, searching on --search-split's base half."""
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "d")
    assert main(["train", "--backbone", str(clip_path), "--method", "gda", "--option", "variant=base-to-novel",
                 "--option", "augment_views=0", "--option", "neighbours=4", "--dataset", str(tmp_path / "d"),
                 "--protocol", "base-to-novel", "--eval-split", "test", "--shots", "4",
                 "--output-dir", str(tmp_path / "run"), "--no-progress"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert '"harmonic_mean"' in out and '"novel_classes"' in out
