"""Turning dataset examples into model inputs: the backbone's image processor, plus train-time augmentation.

Augmentation is a random resized crop and a horizontal flip, written here on PIL (no torchvision). Each example's
randomness comes from a generator seeded by (seed, epoch, index), so a resumed run, or a run with more data-loading
workers, sees exactly the crops an uninterrupted single-worker run sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image

from adapterzoo.data.loading import Columns


def random_resized_crop(
    image: Image.Image, rng: np.random.Generator, scale: tuple[float, float] = (0.08, 1.0), ratio=(3 / 4, 4 / 3)
) -> Image.Image:
    """A crop covering a random ``scale`` of the area with a random aspect ``ratio`` (the Inception-style crop)."""
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return image.crop((left, top, left + w, top + h))
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return image.crop((left, top, left + side, top + side))


class ImageExamples(torch.utils.data.Dataset):
    """A dataset's examples as (RGB image, class id) pairs, augmented when ``augment`` is on.

    Call `set_epoch` before each epoch: the augmentation of example i in epoch e is drawn from seed (seed, e, i).
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        columns: Columns,
        labels: Sequence[int],
        *,
        augment: bool = False,
        seed: int = 0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
    ):
        self.dataset = dataset
        self.image_column = columns.image
        self.labels = np.asarray(labels)
        self.augment = augment
        self.seed = seed
        self.crop_scale = crop_scale
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Image.Image, int]:
        image = self.dataset[index][self.image_column]
        if not isinstance(image, Image.Image):
            image = Image.fromarray(np.asarray(image))
        image = image.convert("RGB")
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image = random_resized_crop(image, rng, self.crop_scale)
            if rng.random() < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return image, int(self.labels[index])


class Collate:
    """Batches (image, label) pairs into ``pixel_values`` and ``labels`` with the backbone's image processor."""

    def __init__(self, image_processor: Any):
        self.image_processor = image_processor

    def __call__(self, batch: list[tuple[Image.Image, int]]) -> dict[str, torch.Tensor]:
        images, labels = zip(*batch, strict=True)
        pixel_values = self.image_processor(images=list(images), return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixel_values, "labels": torch.tensor(labels)}
