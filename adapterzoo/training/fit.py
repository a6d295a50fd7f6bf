"""`fit`: methods computed in closed form on frozen CLIP image features (GDA, Tip-Adapter), not trained.

A fitted method's config declares ``fitted = True``; its tuner's layers define
``fit_features(adapter_name, train, validation)``, which sets their tensors from the few-shot features and chooses
their hyper-parameters by accuracy on the validation features (never the test split's: that is refused).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from adapterzoo.auto import AdapterModel
from adapterzoo.clip_classifier import CLIPClassifier
from adapterzoo.data.loading import find_columns, label_ids, split_name
from adapterzoo.data.transforms import Collate, ImageExamples
from adapterzoo.training.evaluation import evaluation_loader
from adapterzoo.training.feature_cache import encode_features


@dataclass
class FeatureSet:
    """Normalised image features (n, dim), their class ids (n,), and the model's logits without the adapter; for the
    few-shot set, also the unnormalised features of each augmented view (views, n, dim), when the method asks for
    views (its config's ``augment_views`` and ``crop_scale``); ``text`` the normalised class-text features (classes,
    dim) the base logits were made from."""

    features: torch.Tensor
    labels: torch.Tensor
    base_logits: torch.Tensor
    views: torch.Tensor | None = None
    text: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        """The classes of the classifier the features were encoded for (it sizes the fitted head)."""
        return self.base_logits.shape[-1]


def is_fitted(model: AdapterModel) -> bool:
    """Whether ``model``'s method is fitted by `fit` rather than trained."""
    return bool(getattr(model.peft_model.peft_config[model.adapter_name], "fitted", False))


def classifies_new_classes(model: AdapterModel) -> bool:
    """Whether ``model``'s fitted head also classifies classes it was not fitted on (its config's
    ``classifies_new_classes``); otherwise its tensors hold only the fitted classes, and it adds nothing for others."""
    return bool(getattr(model.peft_model.peft_config[model.adapter_name], "classifies_new_classes", False))


def fit(
    model: AdapterModel,
    train_dataset: datasets.Dataset,
    validation_dataset: datasets.Dataset,
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, float]:
    """Fit ``model``'s adapter on ``train_dataset`` (the few-shot set) and choose its hyper-parameters on
    ``validation_dataset``; returns the chosen values and the validation accuracy (``accuracy``). ``progress`` shows
    a bar of each feature pass."""
    _check(model, train_dataset, validation_dataset, image_column, label_column)
    config = model.peft_model.peft_config[model.adapter_name]
    model.eval()  # fitting only reads features
    train = _encode(model, train_dataset, batch_size, image_column, label_column, progress)
    views = getattr(config, "augment_views", 0)
    if views:
        scale = tuple(config.crop_scale)
        train.views = _views(model, train_dataset, views, scale, batch_size, image_column, label_column, progress)
    validation = _encode(model, validation_dataset, batch_size, image_column, label_column, progress)
    chosen: dict[str, float] = {}
    for layer in model.peft_model.modules():
        fit_features = getattr(layer, "fit_features", None)
        if callable(fit_features):
            chosen.update(fit_features(model.adapter_name, train, validation))
    # Fitting may make the trained tensors (Tip-Adapter-F's keys, sized by the few-shot set).
    model.trainable_parameters = model.peft_model.get_nb_trainable_parameters()[0]
    with torch.no_grad():
        logits = model.task_model(features=validation.features).logits
    chosen["accuracy"] = (logits.argmax(-1) == validation.labels).float().mean().item()
    return chosen


def _check(model: AdapterModel, train_dataset, validation_dataset, image_column, label_column) -> None:
    """Every refusal, before any feature is computed."""
    if not is_fitted(model):
        raise ValueError(f"Method '{model.method.name}' is trained, not fitted: use adapterzoo.train.")
    if not isinstance(model.task_model, CLIPClassifier):
        raise ValueError(f"Method '{model.method.name}' needs CLIP's text tower (a CLIPClassifier) for its classifier.")
    split = split_name(validation_dataset, "validation")
    if split.startswith("test"):
        raise ValueError(
            f"The search split is '{split}': hyper-parameters are chosen on a validation split, never the test split."
        )
    labels = label_ids(train_dataset, find_columns(train_dataset, image_column, label_column), model.labels)
    counts = np.bincount(labels, minlength=len(model.labels))
    missing = [model.labels[i] for i in np.flatnonzero(counts == 0)]
    if missing:
        raise ValueError(f"The few-shot set has no example of the classes {missing}; every class needs some.")
    # Each augmented view is a sample of its own (GDA's covariance), so one shot with views is enough.
    views = max(getattr(model.peft_model.peft_config[model.adapter_name], "augment_views", 0), 1)
    few = [model.labels[i] for i in np.flatnonzero(counts * views < 2)]
    if few:
        raise ValueError(
            f"The few-shot set has fewer than two examples of the classes {few} (each augmented view counting as "
            "one); fitting needs two: give more shots or augment_views > 1."
        )


def _encode(model: AdapterModel, dataset, batch_size: int, image_column, label_column, progress) -> FeatureSet:
    """The normalised image features of ``dataset`` (through the feature cache), its labels and the model's logits
    with adapters disabled."""
    task_model = model.task_model
    device = next(task_model.parameters()).device
    loader = evaluation_loader(model, dataset, batch_size, image_column, label_column)
    features, labels = (
        tensor.to(device) for tensor in encode_features(model, loader, device, progress=progress).tensors
    )
    features = features.float()
    with torch.no_grad(), model.peft_model.disable_adapter():
        base_logits = task_model(features=features.to(task_model.clip.logit_scale.dtype)).logits.float()
        text = task_model.encode_text().float()
    return FeatureSet(features, labels, base_logits, text=text)


def _views(model: AdapterModel, dataset, views: int, crop_scale, batch_size: int, image_column, label_column, progress):
    """Unnormalised image features of ``views`` augmented passes (random resized crops of ``crop_scale`` and
    flips, seeded per pass and example) over ``dataset``, (views, n, dim)."""
    columns = find_columns(dataset, image_column, label_column)
    labels = label_ids(dataset, columns, model.labels)
    examples = ImageExamples(dataset, columns, labels, split="train", augment=True, crop_scale=crop_scale)
    loader = DataLoader(examples, batch_size=batch_size, collate_fn=Collate(model.image_processor))
    clip = model.task_model.clip
    passes = []
    with torch.no_grad():
        for view in tqdm(range(views), desc="augmented views", disable=not progress):
            examples.set_epoch(view)
            pixels = [batch["pixel_values"].to(clip.logit_scale.device) for batch in loader]
            passes.append(torch.cat([clip.get_image_features(pixel_values=p).pooler_output.float() for p in pixels]))
    return torch.stack(passes)
