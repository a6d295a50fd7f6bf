"""Datasets whose images are already preprocessed: a column of (channels, height, width) float arrays, as mapping an
image processor over a dataset leaves them (``pixel_values``). They reach the model as they are, without the image
processor, when their shape is the one the model's image processor makes; augmentation needs the images."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np
from PIL import Image

from adapterzoo.data.loading import Columns, DatasetError


def preprocessed_shape(dataset: datasets.Dataset, column: str) -> tuple[int, ...] | None:
    """The (channels, height, width) of ``column``'s values when they are preprocessed pixel values (floats,
    channels first), else None: images, or arrays `adapterzoo.data.images.to_rgb` reads as images."""
    if isinstance(dataset.features.get(column), datasets.Image) or len(dataset) == 0:
        return None
    value = np.asarray(dataset[0][column])
    channels_first = value.ndim == 3 and value.shape[0] in (1, 3) and value.shape[-1] not in (1, 3, 4)
    return tuple(value.shape) if value.dtype.kind == "f" and channels_first else None


def check_pixel_values(
    dataset: datasets.Dataset, columns: Columns, image_processor: Any, *, augment: bool = False
) -> None:
    """Refuse preprocessed pixel values the model cannot take as they are, saying what it needs instead."""
    shape = preprocessed_shape(dataset, columns.image)
    if shape is None:
        return
    made = image_processor(images=[Image.new("RGB", (64, 64))], return_tensors="np")["pixel_values"]
    expected = tuple(made.shape[1:])
    if shape != expected:
        raise DatasetError(
            f"Column '{columns.image}' holds preprocessed pixel values of shape {shape}, but the model takes "
            f"{expected}: give the images (an Image column), or pixel values made by the model's image processor "
            "(model.image_processor)."
        )
    if augment:
        raise DatasetError(
            f"Column '{columns.image}' holds preprocessed pixel values, and augmentation crops and flips images: "
            "train without augment (--no-augment), or give the images."
        )
