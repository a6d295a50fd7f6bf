"""The base-to-novel protocol of CLIP prompt learning (CoCoOp, MaPLe): learn on half the classes, test on both halves.

Classes are sorted by id and split in two: base (the first ceil(n/2)) and novel (the rest), each relabelled from 0.
The model trains few-shot on base classes only; it is then tested on the base test set and on the novel test set
separately, each with a classifier over its own half (an open-vocabulary `CLIPClassifier` just changes its classes),
and the two accuracies are summarised by their harmonic mean HM = 2·B·N / (B + N).
"""

from __future__ import annotations

from dataclasses import dataclass

import datasets

from adapterzoo.auto import AdapterModel
from adapterzoo.clip_classifier import CLIPClassifier
from adapterzoo.data.loading import class_names, class_split, few_shot, find_columns
from adapterzoo.metrics import load_metric
from adapterzoo.training.evaluation import predict_dataset
from adapterzoo.training.trainer import TrainingResult, train


@dataclass
class BaseToNovelResult:
    """Accuracy on the base and novel classes, their harmonic mean, and the training run (None for zero-shot)."""

    base_accuracy: float
    novel_accuracy: float
    harmonic_mean: float
    base_classes: list[str]
    novel_classes: list[str]
    training: TrainingResult | None = None


def _open_vocabulary(model: AdapterModel) -> CLIPClassifier:
    if not isinstance(model.task_model, CLIPClassifier):
        raise ValueError(
            "The base-to-novel protocol tests classes never trained on, which needs an open-vocabulary CLIP "
            f"classifier; '{model.method.name}' here classifies with a fixed head."
        )
    return model.task_model


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
    ``progress`` shows a bar of each half's batches."""
    classifier = _open_vocabulary(model)
    columns = find_columns(test_dataset, image_column, label_column)
    trained_classes = list(classifier.class_names)
    predictions, references, splits = [], [], []
    try:
        for half in ("base", "novel"):
            part = class_split(test_dataset, half, label_column=columns.label)
            classifier.set_classes(class_names(part, columns))
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


def base_to_novel(
    model: AdapterModel,
    train_dataset: datasets.Dataset,
    test_dataset: datasets.Dataset,
    *,
    shots: int | None = 16,
    seed: int = 0,
    image_column: str | None = None,
    label_column: str | None = None,
    **train_options,
) -> BaseToNovelResult:
    """Run the protocol: train ``shots`` examples per base class (all with ``shots=None``), then test both halves.

    ``train_options`` go to `adapterzoo.train`. A method that trains nothing (``zero-shot``) is only tested.
    """
    classifier = _open_vocabulary(model)
    columns = find_columns(train_dataset, image_column, label_column)
    base_train = class_split(train_dataset, "base", label_column=columns.label)
    if shots is not None:
        base_train = few_shot(base_train, shots, seed=seed, label_column=columns.label)
    classifier.set_classes(class_names(base_train, columns))
    training = None
    if model.trainable_parameters:
        training = train(
            model, base_train, image_column=columns.image, label_column=columns.label, seed=seed, **train_options
        )
    scores = evaluate_base_to_novel(model, test_dataset, image_column=columns.image, label_column=columns.label)
    novel = class_names(class_split(test_dataset, "novel", label_column=columns.label), columns)
    return BaseToNovelResult(
        base_accuracy=scores["base_accuracy"],
        novel_accuracy=scores["novel_accuracy"],
        harmonic_mean=scores["harmonic_mean"],
        base_classes=list(classifier.class_names),
        novel_classes=novel,
        training=training,
    )
