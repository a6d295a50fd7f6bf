"""Data: the built-in datasets, loading sources, columns, few-shot and class splits, augmentation."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from adapterzoo.data import COLORS, COUNTS, SHAPES, builtin_dataset
from adapterzoo.data.loading import DatasetError, class_split, few_shot, find_columns, label_ids, load_image_dataset
from adapterzoo.data.transforms import ImageExamples


def pixels(dataset: datasets.Dataset) -> list[bytes]:
    return [image.tobytes() for image in dataset["image"]]


@pytest.mark.parametrize("task, names", [("shapes", SHAPES), ("colors", tuple(COLORS)), ("counts", COUNTS)])
def test_builtin_tasks_are_deterministic_and_named(task: str, names: tuple) -> None:
    first = builtin_dataset(task, "train", num_per_class=3, seed=1)
    assert first.features["label"].names == list(names) and len(first) == 3 * len(names)
    assert pixels(first) == pixels(builtin_dataset(task, "train", num_per_class=3, seed=1))
    assert pixels(first) != pixels(builtin_dataset(task, "test", num_per_class=3, seed=1))
    assert pixels(first) != pixels(builtin_dataset(task, "train", num_per_class=3, seed=2))
    assert first[0]["image"].size == (32, 32)


def test_captions_describe_the_image() -> None:
    counts = builtin_dataset("counts", "train", num_per_class=1)
    assert [c.split()[3] for c in counts["caption"]] == ["a", "two", "three", "four", "five"]
    colors = builtin_dataset("colors", "train", num_per_class=1)
    assert [c.split()[4] for c in colors["caption"]] == list(COLORS)


def test_a_subset_of_classes_is_relabelled_in_order() -> None:
    subset = builtin_dataset("shapes", "train", num_per_class=2, classes=["star", "circle"])
    assert subset.features["label"].names == ["star", "circle"]
    assert all("star" in c for c, label in zip(subset["caption"], subset["label"], strict=True) if label == 0)
    with pytest.raises(ValueError, match="Unknown shapes classes \\['blob'\\]"):
        builtin_dataset("shapes", classes=["blob"])


def test_an_image_folder_loads_with_its_class_names(tmp_path: Path) -> None:
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.new("RGB", (8, 8), (i * 100, 0, 0)).save(tmp_path / name / f"{i}.png")
    dataset = load_image_dataset(str(tmp_path))
    columns = find_columns(dataset)
    assert (columns.image, columns.label) == ("image", "label")
    assert dataset.features["label"].names == ["cat", "dog"] and len(dataset) == 4


def test_labels_map_to_the_model_by_name() -> None:
    dataset = builtin_dataset("shapes", "train", num_per_class=1, classes=["square", "circle"])
    assert label_ids(dataset, find_columns(dataset), ["circle", "triangle", "square"]).tolist() == [2, 0]


def test_few_shot_draws_k_per_class_with_its_seed() -> None:
    dataset = builtin_dataset("shapes", "train", num_per_class=10, classes=["circle", "square", "star"])
    chosen = few_shot(dataset, 4, seed=3)
    assert np.bincount(chosen["label"]).tolist() == [4, 4, 4]
    assert pixels(chosen) == pixels(few_shot(dataset, 4, seed=3)) != pixels(few_shot(dataset, 4, seed=4))


def test_class_splits_follow_the_base_to_novel_protocol() -> None:
    dataset = builtin_dataset("shapes", "train", num_per_class=2, classes=["circle", "square", "star", "ring", "cross"])
    base, novel = class_split(dataset, "base"), class_split(dataset, "novel")
    assert base.features["label"].names == ["circle", "square", "star"]
    assert novel.features["label"].names == ["ring", "cross"]
    assert sorted(set(novel["label"])) == [0, 1] and len(base) == 6 and len(novel) == 4
    assert all("ring" in c for c, label in zip(novel["caption"], novel["label"], strict=True) if label == 0)
    with pytest.raises(DatasetError, match="'base' or 'novel'"):
        class_split(dataset, "both")


def test_augmentation_is_drawn_per_epoch_and_example() -> None:
    dataset = builtin_dataset("shapes", "train", num_per_class=2)
    columns = find_columns(dataset)
    examples = ImageExamples(dataset, columns, [0] * len(dataset), split="train", augment=True, seed=5)
    first = examples[3][0].tobytes()
    assert examples[3][0].tobytes() == first
    examples.set_epoch(1)
    assert examples[3][0].tobytes() != first
    plain = ImageExamples(dataset, columns, [0] * len(dataset), split="train")
    assert plain[3][0].tobytes() == dataset[3]["image"].tobytes()
