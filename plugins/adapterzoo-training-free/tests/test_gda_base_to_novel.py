"""GDA's base-to-novel variant (main_base2new.py): its two heads against a numpy write-out of the reference's
formulas, fitted on the base half of the tiny CLIP and asked for the novel half, saved and loaded, and the few-shot
variant's refusal of classes it was not fitted on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from adapterzoo_training_free.closed_form import gda_base_head, gda_novel_head

from adapterzoo import AutoAdapter, fit
from adapterzoo.data import builtin_dataset
from adapterzoo.data.loading import class_split

FOUR = ["circle", "square", "triangle", "cross"]  # base: the first two, novel: the others


def discriminant(means: np.ndarray, precision: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    return precision @ means.T, np.log(1 / classes) - 0.5 * np.einsum("nd,dc,nc->n", means, precision, means)


def reference_base(x: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """pinv of the mean per-class covariance (np.cov: divisor n_k − 1), no shrinkage."""
    means = np.stack([x[y == k].mean(0) for k in range(classes)])
    precision = np.linalg.pinv(np.mean([np.cov(x[y == k].T) for k in range(classes)], axis=0))
    return discriminant(means, precision, classes)


def reference_novel(x: np.ndarray, text: np.ndarray, k: int, copies: int) -> tuple[np.ndarray, np.ndarray]:
    """Per new class w: its k nearest features V by w·v, the mean of V and ``copies`` copies of w, the KS precision
    D·pinv((k−1)S + tr(S)I) with S = (V−w)ᵀ(V−w)/(k−1), averaged over the new classes."""
    dim = x.shape[1]
    means, precisions = [], []
    for w in text:
        v = x[np.argsort(-(x @ w))[:k]]
        means.append(np.concatenate([v, np.repeat(w[None], copies, 0)]).mean(0))
        s = (v - w).T @ (v - w) / (k - 1)
        precisions.append(dim * np.linalg.pinv((k - 1) * s + np.trace(s) * np.eye(dim)))
    return discriminant(np.stack(means), np.mean(precisions, axis=0), len(text))


def unit_rows(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    x = rng.normal(size=shape)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_heads_match_a_numpy_write_out_of_the_reference() -> None:
    rng = np.random.default_rng(0)
    x, y, text = unit_rows(rng, (40, 5)), np.repeat(np.arange(4), 10), unit_rows(rng, (3, 5))
    for got, expected in (
        (gda_base_head(torch.tensor(x), torch.tensor(y), 4), reference_base(x, y, 4)),
        (gda_novel_head(torch.tensor(x), torch.tensor(text), 6, 16, 3), reference_novel(x, text, 6, 16)),
    ):
        for tensor, array in zip(got, expected, strict=True):
            np.testing.assert_allclose(tensor.numpy(), array, rtol=1e-5, atol=1e-5)


def halves(split: str, per_class: int, seed: int) -> tuple:
    data = builtin_dataset("shapes", split, num_per_class=per_class, classes=FOUR, seed=seed)
    return class_split(data, "base"), class_split(data, "novel")


def encoded(model, dataset) -> torch.Tensor:
    pixels = torch.cat(
        [model.image_processor(image, return_tensors="pt")["pixel_values"] for image in dataset["image"]]
    )
    with torch.no_grad():
        return model.task_model.encode(pixels).double()


def test_fitted_on_base_classes_it_classifies_novel_ones_as_the_reference(clip_path: Path, tmp_path: Path) -> None:
    base_train, _ = halves("train", 8, 0)
    base_validation, _ = halves("validation", 4, 1)
    _, novel_test = halves("test", 3, 2)
    options = {"variant": "base-to-novel", "augment_views": 0, "neighbours": 6, "text_copies": 3, "alphas": [1.0]}
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=FOUR[:2], **options).eval()
    fit(model, base_train, base_validation)
    classifier, layer = model.task_model, model.task_model.feature_logits
    samples, labels = encoded(model, base_train), np.asarray(base_train["label"])
    features = encoded(model, novel_test)
    alpha = layer.gda_alpha["default"].item()
    with torch.no_grad():
        base_text = classifier.encode_text().double().numpy()
        classifier.set_classes(FOUR[2:])
        novel_text = classifier.encode_text().double().numpy()
        logits = model(features=features.float()).logits
    assert layer.gda_samples["default"].shape == (16, 16)
    torch.testing.assert_close(layer.gda_samples["default"].double(), samples, rtol=0, atol=1e-6)
    f, scale = features.numpy(), classifier.clip.logit_scale.exp().item()
    weight, bias = reference_novel(samples.numpy(), novel_text, 6, 3)
    expected = scale * f @ novel_text.T + alpha * (f @ weight + bias)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-4, atol=1e-4)
    # The base classes, and a mix of both halves, keep the base head's columns (the prior over the current classes).
    base_weight, base_bias = reference_base(samples.numpy(), labels, 2)
    with torch.no_grad():
        classifier.set_classes(FOUR)
        mixed = model(features=features.float()).logits.numpy()
    columns = scale * f @ base_text.T + alpha * (f @ base_weight + base_bias + np.log(2 / 4))
    np.testing.assert_allclose(mixed[:, :2], columns, rtol=1e-4, atol=1e-4)
    # Saved with the novel classes current, it loads and classifies them identically.
    classifier.set_classes(FOUR[2:])
    model.save_pretrained(tmp_path / "saved")
    loaded = AutoAdapter.from_pretrained(tmp_path / "saved").eval()
    assert loaded.labels == FOUR[2:]
    with torch.no_grad():
        assert torch.equal(loaded(features=features.float()).logits, model(features=features.float()).logits)


def test_a_few_shot_gda_refuses_classes_it_was_not_fitted_on(clip_path: Path) -> None:
    base_train, novel_train = halves("train", 3, 0)
    model = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=FOUR[:2], augment_views=0).eval()
    fit(model, base_train, halves("validation", 2, 1)[0])
    features = encoded(model, novel_train).float()
    with torch.no_grad():
        model.task_model.set_classes(list(reversed(FOUR[:2])))  # fitted classes, in another order: their head
        swapped = model(features=features).logits
        model.task_model.set_classes(FOUR[:2])
        assert torch.equal(swapped.flip(-1), model(features=features).logits)
        model.task_model.set_classes(FOUR[1:3])
        with pytest.raises(ValueError, match="fitted on 2 classes, and 1 of the 2 current classes are not among"):
            model(features=features)
    with pytest.raises(ValueError, match="from its 64 nearest training features, and there are 6"):
        gda = AutoAdapter.from_backbone(str(clip_path), method="gda", labels=FOUR[:2], augment_views=0,
                                        variant="base-to-novel")  # fmt: skip
        fit(gda, base_train, halves("validation", 2, 1)[0])
