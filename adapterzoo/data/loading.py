"""Loading image-classification datasets through `datasets`, and checking them against a model before training.

A source is a `datasets.Dataset`, ``builtin:<task>`` (the generated datasets, offline), a local folder (one written
by ``save_to_disk``, or an ``imagefolder``: one sub-folder per class), or a Hub dataset id.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import datasets
import numpy as np

from adapterzoo.data.builtin import builtin_dataset
from adapterzoo.local_paths import looks_like_local_path, missing_path_message

IMAGE_COLUMNS = ("image", "img", "pixel_values", "picture")
LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "target")


class DatasetError(ValueError):
    """A dataset that cannot be used as given: a missing column, unknown labels, an empty split."""


def load_image_dataset(source: str | datasets.Dataset, split: str = "train", **builtin_options) -> datasets.Dataset:
    """One split of a dataset from a `datasets.Dataset`, ``builtin:<task>``, a local folder or a Hub id.

    A folder written by ``save_to_disk`` is read back with ``load_from_disk``: a DatasetDict's splits, or one Dataset
    (its own split if it names one, else any split asked for); any other folder is an ``imagefolder``.
    """
    if isinstance(source, datasets.Dataset):
        return source
    if isinstance(source, datasets.DatasetDict):
        if split not in source:
            raise DatasetError(f"The dataset has no split '{split}'; it has: {', '.join(source)}.")
        return source[split]
    if source.startswith("builtin:"):
        return builtin_dataset(source.removeprefix("builtin:"), split, **builtin_options)
    if os.path.isdir(source):
        if not _saved_to_disk(source):
            return load_image_dataset(datasets.load_dataset("imagefolder", data_dir=source), split)
        saved = datasets.load_from_disk(source)
        if isinstance(saved, datasets.Dataset) and saved.split is not None and str(saved.split) != split:
            raise DatasetError(f"{source} holds one split, '{saved.split}' (saved by save_to_disk), not '{split}'.")
        return load_image_dataset(saved, split)
    if looks_like_local_path(source):
        raise DatasetError(missing_path_message(source, "dataset folder") + ".")
    return load_image_dataset(datasets.load_dataset(source), split)


def _saved_to_disk(folder: str) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` or ``DatasetDict.save_to_disk``."""
    markers = (datasets.config.DATASETDICT_JSON_FILENAME, datasets.config.DATASET_STATE_JSON_FILENAME)
    return any(os.path.isfile(os.path.join(folder, name)) for name in markers)


def hub_dataset_id(source: str | datasets.Dataset) -> str | None:
    """The Hub id that `load_image_dataset` loads ``source`` from; None for a built-in dataset, a folder or a
    dataset object (what a model card can name as the data an adapter was trained on)."""
    if not isinstance(source, str) or source.startswith("builtin:") or os.path.isdir(source):
        return None
    return source


def split_name(dataset: datasets.Dataset, role: str) -> str:
    """The dataset's split name for messages about its rows (``train``, ``validation``), else ``role``."""
    return str(dataset.split) if dataset.split is not None else role


@dataclass(frozen=True)
class Columns:
    image: str
    label: str


def find_columns(dataset: datasets.Dataset, image: str | None = None, label: str | None = None) -> Columns:
    """The image and label columns: the ones named, else by feature type, else by the usual names."""
    names = dataset.column_names

    def pick(given: str | None, kind: str, feature_type: type, usual: Sequence[str]) -> str:
        if given is not None:
            if given not in names:
                raise DatasetError(f"The dataset has no {kind} column '{given}'; its columns: {', '.join(names)}.")
            return given
        typed = [n for n in names if isinstance(dataset.features[n], feature_type)]
        candidates = typed or [n for n in usual if n in names]
        if not candidates:
            raise DatasetError(
                f"No {kind} column found (looked for a {feature_type.__name__} feature or a column named "
                f"{', '.join(usual)}); its columns: {', '.join(names)}. Name it with {kind}_column=."
            )
        return candidates[0]

    return Columns(
        image=pick(image, "image", datasets.Image, IMAGE_COLUMNS),
        label=pick(label, "label", datasets.ClassLabel, LABEL_COLUMNS),
    )


def class_names(dataset: datasets.Dataset, columns: Columns) -> list[str]:
    """The dataset's class names: its ClassLabel names, else its distinct label values in order."""
    feature = dataset.features[columns.label]
    if isinstance(feature, datasets.ClassLabel):
        return list(feature.names)
    return [str(v) for v in sorted(set(dataset[columns.label]))]


def label_ids(dataset: datasets.Dataset, columns: Columns, labels: Sequence[str]) -> np.ndarray:
    """Each example's class id in the model's ``labels``, matched by name; an error names labels the model lacks."""
    if len(dataset) == 0:
        raise DatasetError("The dataset split is empty.")
    values = np.asarray(dataset[columns.label])
    feature = dataset.features[columns.label]
    names = np.asarray(feature.names)[values] if isinstance(feature, datasets.ClassLabel) else values.astype(str)
    position = {label: i for i, label in enumerate(labels)}
    unknown = sorted(set(names.tolist()) - set(position))
    if unknown:
        raise DatasetError(f"The dataset has labels the model does not know: {unknown}; the model's: {list(labels)}.")
    return np.array([position[name] for name in names.tolist()])


def few_shot(dataset: datasets.Dataset, shots: int, *, seed: int = 0, label_column: str = "label") -> datasets.Dataset:
    """``shots`` examples per class, drawn with ``seed`` (all of a class's examples when it has fewer)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(dataset[label_column])
    chosen = [
        index
        for label in np.unique(labels)
        for index in rng.permutation(np.flatnonzero(labels == label))[:shots].tolist()
    ]
    return dataset.select(sorted(chosen))


def class_split(dataset: datasets.Dataset, half: str, *, label_column: str = "label") -> datasets.Dataset:
    """The base or novel half of a dataset's classes, relabelled from 0, as the base-to-novel protocol splits them.

    Classes are sorted by id; base is the first ceil(n/2), novel the rest.
    """
    if half not in ("base", "novel"):
        raise DatasetError(f"A class split is 'base' or 'novel', not '{half}'.")
    feature = dataset.features[label_column]
    if not isinstance(feature, datasets.ClassLabel):
        raise DatasetError("A class split needs a ClassLabel column, so that each half keeps its class names.")
    cut = math.ceil(feature.num_classes / 2)
    kept = list(range(cut)) if half == "base" else list(range(cut, feature.num_classes))
    labels = np.asarray(dataset[label_column])
    subset = dataset.select(np.flatnonzero(np.isin(labels, kept)).tolist())
    relabelled = [kept.index(label) for label in subset[label_column]]
    classes = datasets.ClassLabel(names=[feature.names[i] for i in kept])
    with _quiet():
        return subset.remove_columns(label_column).add_column(label_column, relabelled, feature=classes)


@contextmanager
def _quiet() -> Iterator[None]:
    """Without `datasets`' progress bars, for quick in-memory steps that would print one each."""
    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()
