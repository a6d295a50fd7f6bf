"""Turning dataset examples into model inputs: the backbone's image processor, plus train-time augmentation.

Rows whose image cannot be read stop the run with an error naming them, or, with ``skip_bad_images``, are dropped
from their batch and recorded in it, so that the run can report them (`SkippedRows`).

Augmentation is a random resized crop and a horizontal flip, written here on PIL (no torchvision). Each example's
randomness comes from a generator seeded by (seed, epoch, index), so a resumed run, or a run with more data-loading
workers (persistent ones too: the epoch is in shared memory), sees exactly the crops an uninterrupted single-worker
run sees.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image

from adapterzoo.data.device_preprocessing import Decoded, decoded_batch
from adapterzoo.data.images import ImageDecodeError, read_image
from adapterzoo.data.loading import Columns
from adapterzoo.data.pixel_values import preprocessed_shape

SKIPPED = "skipped_rows"  # the batch key under which `Collate` records the (split, row) pairs it dropped


def crop_box(
    width: int, height: int, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> tuple[int, int, int, int]:
    """``(left, top, width, height)`` of a crop covering a random ``scale`` of the area with a random aspect
    ``ratio`` (the Inception-style crop); the central square when ten draws do not fit."""
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def random_resized_crop(
    image: Image.Image, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Image.Image:
    """The `crop_box` of ``image``, cut out."""
    left, top, width, height = crop_box(*image.size, rng, scale, ratio)
    return image.crop((left, top, left + width, top + height))


@dataclass(frozen=True)
class Skipped:
    """What `ImageExamples` gives in place of an example whose image cannot be read, when skipping such rows."""

    split: str
    row: int


class ImageExamples(torch.utils.data.Dataset):
    """A dataset's examples as (RGB image, class id) pairs, augmented when ``augment`` is on.

    Call `set_epoch` before each epoch: the augmentation of example i in epoch e is drawn from seed (seed, e, i).
    ``split`` names the dataset in errors about its rows; with ``skip_bad_images`` an unreadable row gives `Skipped`.
    Preprocessed pixel values (`adapterzoo.data.pixel_values`) come as tensors instead of images. With
    ``decode_only`` (device-side preprocessing) an image comes `Decoded`: its uint8 pixels and the augmentation drawn
    for it, which the device applies (the same draws: the crops are those the images would get here).
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        columns: Columns,
        labels: Sequence[int],
        *,
        split: str,
        augment: bool = False,
        seed: int = 0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        skip_bad_images: bool = False,
        decode_only: bool = False,
    ):
        self.dataset = dataset
        self.decode_only = decode_only
        self.split = split
        self.skip_bad_images = skip_bad_images
        self.image_column = columns.image
        self.labels = np.asarray(labels)
        self.augment = augment
        self.seed = seed
        self.crop_scale = crop_scale
        # Shared memory: persistent loader workers, started once, read the epoch the main process sets.
        self._epoch = multiprocessing.RawValue("q", 0)
        self.preprocessed = preprocessed_shape(dataset, columns.image) is not None

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        self._epoch.value = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Image.Image | torch.Tensor | Decoded, int] | Skipped:
        if self.preprocessed:
            return torch.as_tensor(np.asarray(self.dataset[index][self.image_column])), int(self.labels[index])
        image = read_image(self.dataset, self.image_column, index, self.split, skip=self.skip_bad_images)
        if image is None:
            return Skipped(self.split, index)
        if self.decode_only:
            return self._decoded(image, index), int(self.labels[index])
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image = random_resized_crop(image, rng, self.crop_scale)
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image, int(self.labels[index])

    def _decoded(self, image: Image.Image, index: int) -> Decoded:
        """The image's uint8 pixels with the augmentation `__getitem__` would apply, drawn in the same order."""
        pixels = torch.from_numpy(np.array(image))
        if not self.augment:
            return Decoded(pixels)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        box = crop_box(*image.size, rng, self.crop_scale)
        return Decoded(pixels, box, bool(rng.random() < 0.5))


class Collate:
    """Batches (image, label) pairs into ``pixel_values`` and ``labels`` with the backbone's image processor
    (preprocessed pixel values are stacked as they are; `Decoded` images are batched for the device to preprocess,
    `adapterzoo.data.device_preprocessing`).

    `Skipped` rows are left out and listed under `SKIPPED`; a batch of only skipped rows has no examples.
    """

    def __init__(self, image_processor: Any):
        self.image_processor = image_processor

    def __call__(self, batch: list[tuple[Image.Image, int] | Skipped]) -> dict[str, Any]:
        examples = [example for example in batch if not isinstance(example, Skipped)]
        if examples:
            images, labels = zip(*examples, strict=True)
            if isinstance(images[0], Decoded):
                collated = decoded_batch(list(images), list(labels))
            elif isinstance(images[0], torch.Tensor):
                collated = {"pixel_values": torch.stack(images), "labels": torch.tensor(labels)}
            else:
                pixel_values = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
                collated = {"pixel_values": pixel_values, "labels": torch.tensor(labels)}
        else:
            collated = {"pixel_values": torch.empty(0), "labels": torch.empty(0, dtype=torch.long)}
        if len(examples) < len(batch):
            collated[SKIPPED] = [(row.split, row.row) for row in batch if isinstance(row, Skipped)]
        return collated


class SkippedRows:
    """The rows of each split left out of training or evaluation because their image cannot be read."""

    def __init__(self) -> None:
        self.rows: dict[str, set[int]] = {}

    def take(self, batch: dict[str, Any]) -> bool:
        """Move the rows `Collate` dropped from ``batch`` into this record; whether the batch has examples left."""
        for split, row in batch.pop(SKIPPED, ()):
            self.rows.setdefault(split, set()).add(row)
        return len(batch["labels"]) > 0

    def check_some_left(self, examples: ImageExamples) -> None:
        """Refuse a split none of whose images could be read: training or evaluating on it would have no data."""
        if len(self.rows.get(examples.split, ())) == len(examples):
            raise ImageDecodeError(f"No image of split '{examples.split}' can be read: every row was skipped.")

    def report(self) -> dict[str, list[int]]:
        """Each split's skipped rows, in order."""
        return {split: sorted(rows) for split, rows in sorted(self.rows.items())}
