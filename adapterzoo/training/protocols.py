"""CLIP's evaluation protocols: base-to-novel (CoCoOp, MaPLe, GDA) and the few-shot curve (Tip-Adapter, GDA).

Base-to-novel: classes are sorted by id and split in two, base (the first ceil(n/2)) and novel (the rest), each
relabelled from 0. The model adapts few-shot on base classes only; it is then tested on the base test set and on the
novel test set separately, each with a classifier over its own half (an open-vocabulary `CLIPClassifier` just changes
its classes), and the two accuracies are summarised by their harmonic mean HM = 2·B·N / (B + N).

Few-shot curve: a fresh model adapts on K examples of every class, for each K (1, 2, 4, 8, 16), and is tested on all.

Both adapt a model as its method asks (`adapt`): a trained method is trained, a fitted one (GDA, Tip-Adapter) is fitted
with its hyper-parameters searched on a validation split (then, if fitting made trainable tensors, as Tip-Adapter-F's
keys, trained and fitted again), and one with nothing to adapt (zero-shot) is only tested.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import datasets

from adapterzoo.auto import AdapterModel
from adapterzoo.clip_classifier import CLIPClassifier
from adapterzoo.data.loading import class_names, class_split, few_shot, find_columns
from adapterzoo.metrics import load_metric
from adapterzoo.training.evaluation import evaluate, predict_dataset
from adapterzoo.training.fit import classifies_new_classes, fit, is_fitted
from adapterzoo.training.trainer import TrainingResult, train


@dataclass
class Adaptation:
    """How a model was adapted: the training run (None if nothing trained), the values fitting chose (None if not
    fitted; after Tip-Adapter-F's training, the second search's), and the seconds it all took."""

    training: TrainingResult | None
    fitted: dict[str, float] | None
    seconds: float


@dataclass
class BaseToNovelResult:
    """Accuracy on the base and novel classes, their harmonic mean, and the training run (None for zero-shot)."""

    base_accuracy: float
    novel_accuracy: float
    harmonic_mean: float
    base_classes: list[str]
    novel_classes: list[str]
    training: TrainingResult | None = None
    fitted: dict[str, float] | None = None
    seconds: float = 0.0


@dataclass
class FewShotPoint:
    """One point of a few-shot curve: test accuracy after adapting on ``shots`` examples per class."""

    shots: int
    accuracy: float
    trainable: int
    adaptation: Adaptation


def _open_vocabulary(model: AdapterModel) -> CLIPClassifier:
    if not isinstance(model.task_model, CLIPClassifier):
        raise ValueError(
            "The base-to-novel protocol tests classes never trained on, which needs an open-vocabulary CLIP "
            f"classifier; '{model.method.name}' here classifies with a fixed head."
        )
    return model.task_model


def _needs_validation(model: AdapterModel, validation_dataset: datasets.Dataset | None) -> None:
    if validation_dataset is None and is_fitted(model):
        raise ValueError(
            f"Method '{model.method.name}' is fitted, and fitting chooses its hyper-parameters on a validation split: "
            "pass validation_dataset."
        )


def adapt(
    model: AdapterModel,
    train_dataset: datasets.Dataset,
    validation_dataset: datasets.Dataset | None = None,
    *,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    **train_options,
) -> Adaptation:
    """Adapt ``model`` on ``train_dataset`` as its method asks: fit it (searching on ``validation_dataset``), train
    the tensors fitting made trainable and fit again (Tip-Adapter-F), or train it with ``train_options``
    (`adapterzoo.train`); a model with nothing trainable and not fitted is left as it is."""
    _needs_validation(model, validation_dataset)
    columns = {"image_column": image_column, "label_column": label_column}
    started = time.perf_counter()
    fitted = fit(model, train_dataset, validation_dataset, **columns) if is_fitted(model) else None
    training = None
    if model.trainable_parameters:
        training = train(model, train_dataset, seed=seed, **columns, **train_options)
        if fitted is not None:
            fitted = fit(model, train_dataset, validation_dataset, **columns)
    return Adaptation(training, fitted, time.perf_counter() - started)


def evaluate_base_to_novel(
    model: AdapterModel,
    test_dataset: datasets.Dataset,
    *,
    batch_size: int = 64,
    image_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Base and novel accuracy, and their harmonic mean, with the classifier switched to each half in turn;
    ``progress`` shows a bar of each half's batches.

    A fitted head holds tensors for the classes it was fitted on only (Tip-Adapter's cache, GDA's class means), so on
    the novel half it adds nothing: the novel half is classified with the adapter off (zero-shot), unless the method
    declares ``classifies_new_classes``."""
    classifier = _open_vocabulary(model)
    columns = find_columns(test_dataset, image_column, label_column)
    trained_classes = list(classifier.class_names)
    predictions, references, splits = [], [], []
    try:
        for half in ("base", "novel"):
            part = class_split(test_dataset, half, label_column=columns.label)
            classifier.set_classes(class_names(part, columns))
            with _fitted_head_off(model, half == "novel"):
                logits, labels = predict_dataset(
                    model, part, batch_size=batch_size, image_column=columns.image, label_column=columns.label,
                    progress=progress,
                )  # fmt: skip
            predictions += logits.argmax(-1).tolist()
            references += labels.tolist()
            splits += [half] * len(labels)
    finally:
        classifier.set_classes(trained_classes)
    return load_metric("base_novel_accuracy").compute(predictions=predictions, references=references, splits=splits)


def _fitted_head_off(model: AdapterModel, novel: bool) -> AbstractContextManager:
    if novel and is_fitted(model) and not classifies_new_classes(model):
        return model.peft_model.disable_adapter()
    return nullcontext()


def base_to_novel(
    model: AdapterModel,
    train_dataset: datasets.Dataset,
    test_dataset: datasets.Dataset,
    *,
    validation_dataset: datasets.Dataset | None = None,
    shots: int | None = 16,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    **train_options,
) -> BaseToNovelResult:
    """Run the protocol: adapt on ``shots`` examples per base class (all with ``shots=None``), then test both halves.

    A fitted method (GDA, Tip-Adapter) searches its hyper-parameters on the base classes of ``validation_dataset``,
    which it needs (refused before any work without it); ``train_options`` go to `adapterzoo.train`. A method with
    nothing to adapt (``zero-shot``) is only tested.
    """
    classifier = _open_vocabulary(model)
    _needs_validation(model, validation_dataset)
    columns = find_columns(train_dataset, image_column, label_column)
    base_train = class_split(train_dataset, "base", label_column=columns.label)
    if shots is not None:
        base_train = few_shot(base_train, shots, seed=seed, label_column=columns.label)
    base_validation = None
    if validation_dataset is not None:
        base_validation = class_split(validation_dataset, "base", label_column=columns.label)
    classifier.set_classes(class_names(base_train, columns))
    adaptation = adapt(
        model, base_train, base_validation, seed=seed, image_column=columns.image, label_column=columns.label,
        **train_options,
    )  # fmt: skip
    scores = evaluate_base_to_novel(model, test_dataset, image_column=columns.image, label_column=columns.label)
    novel = class_names(class_split(test_dataset, "novel", label_column=columns.label), columns)
    return BaseToNovelResult(
        base_accuracy=scores["base_accuracy"],
        novel_accuracy=scores["novel_accuracy"],
        harmonic_mean=scores["harmonic_mean"],
        base_classes=list(classifier.class_names),
        novel_classes=novel,
        training=adaptation.training,
        fitted=adaptation.fitted,
        seconds=adaptation.seconds,
    )


def few_shot_curve(
    build: Callable[[], AdapterModel],
    train_dataset: datasets.Dataset,
    test_dataset: datasets.Dataset,
    *,
    validation_dataset: datasets.Dataset | None = None,
    shots: Sequence[int] = (1, 2, 4, 8, 16),
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    **train_options,
) -> list[FewShotPoint]:
    """For each K in ``shots``, adapt a fresh model from ``build()`` on K examples of every class of
    ``train_dataset`` (drawn with ``seed``) and test it on ``test_dataset``; a fitted method searches on
    ``validation_dataset`` (refused before any work without it). ``train_options`` go to `adapterzoo.train`.

    Fitting needs two samples per class: at one shot, a fitted method needs augmented views (``augment_views`` > 1:
    each view is a sample, as in GDA's reference), or `fit` refuses it.
    """
    if not shots or min(shots) < 1:
        raise ValueError(f"A few-shot curve needs shot counts of at least 1; got {list(shots)}.")
    columns = find_columns(train_dataset, image_column, label_column)
    points = []
    for count in shots:
        model = build()
        _needs_validation(model, validation_dataset)
        subset = few_shot(train_dataset, count, seed=seed, label_column=columns.label)
        adaptation = adapt(
            model, subset, validation_dataset, seed=seed, image_column=columns.image, label_column=columns.label,
            **train_options,
        )  # fmt: skip
        accuracy = evaluate(model, test_dataset, image_column=columns.image, label_column=columns.label)["accuracy"]
        points.append(FewShotPoint(count, accuracy, model.trainable_parameters, adaptation))
    return points
