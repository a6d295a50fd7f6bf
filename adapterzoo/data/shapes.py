"""A small generated dataset of coloured shapes on noisy backgrounds: deterministic, offline, a few KB per image."""

from __future__ import annotations

import datasets
import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")


def _draw(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    background = rng.integers(0, 256, 3)
    noise = rng.normal(0, 20, (size, size, 3))
    image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in (background + rng.integers(96, 160, 3)) % 256)
    radius = rng.uniform(0.2, 0.35) * size
    cx, cy = rng.uniform(radius, size - radius, 2)
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx - radius, cy + radius), (cx + radius, cy + radius)], fill=colour)
    else:
        bar = radius / 3
        draw.rectangle((cx - radius, cy - bar, cx + radius, cy + bar), fill=colour)
        draw.rectangle((cx - bar, cy - radius, cx + bar, cy + radius), fill=colour)
    return image


def shapes_dataset(num_per_class: int = 32, *, image_size: int = 32, seed: int = 0) -> datasets.Dataset:
    """``num_per_class`` images of each shape in `SHAPES`, as a `datasets.Dataset` with "image" and "label" columns.

    The same arguments always give the same images.
    """
    rng = np.random.default_rng(seed)
    labels = [label for _ in range(num_per_class) for label in range(len(SHAPES))]
    images = [_draw(SHAPES[label], image_size, rng) for label in labels]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(SHAPES))})
    return datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
