"""Built-in datasets, generated: coloured shapes on noisy backgrounds, deterministic, offline, with class names.

Every image shows ``count`` copies of one shape in one colour. Three tasks label the same kind of image differently:

- ``shapes``: which shape (8 classes: circle, square, triangle, cross, star, ring, diamond, hexagon);
- ``colors``: which colour (8 classes);
- ``counts``: how many objects, one to five, an ordinal grading task.

Each example also has a ``caption`` ("a photo of two red stars"), for contrastive vision-language training.
The same arguments always give the same images; splits draw from disjoint seeds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import datasets
import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross", "star", "ring", "diamond", "hexagon")
COLORS = {
    "red": (215, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 215),
    "yellow": (230, 205, 40),
    "purple": (135, 55, 185),
    "orange": (240, 135, 30),
    "pink": (240, 125, 185),
    "cyan": (40, 195, 205),
}
COUNTS = ("one", "two", "three", "four", "five")
TASKS = ("shapes", "colors", "counts")
SPLITS = ("train", "validation", "test")
_PLURAL = {"cross": "crosses"}


def _polygon(cx: float, cy: float, radius: float, sides: int, rotation: float = -math.pi / 2) -> list[tuple]:
    return [
        (
            cx + radius * math.cos(rotation + 2 * math.pi * i / sides),
            cy + radius * math.sin(rotation + 2 * math.pi * i / sides),
        )
        for i in range(sides)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill: tuple, background: tuple):
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle((cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r, 3), fill=fill)
    elif shape == "cross":
        bar = r / 3
        draw.rectangle((cx - r, cy - bar, cx + r, cy + bar), fill=fill)
        draw.rectangle((cx - bar, cy - r, cx + bar, cy + r), fill=fill)
    elif shape == "star":
        points = [
            (cx + (r if i % 2 == 0 else r / 2.5) * math.cos(-math.pi / 2 + math.pi * i / 5),
             cy + (r if i % 2 == 0 else r / 2.5) * math.sin(-math.pi / 2 + math.pi * i / 5))
            for i in range(10)
        ]  # fmt: skip
        draw.polygon(points, fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        inner = r * 0.5
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=background)
    elif shape == "diamond":
        draw.polygon(_polygon(cx, cy, r, 4), fill=fill)
    else:
        draw.polygon(_polygon(cx, cy, r, 6, rotation=0), fill=fill)


def render(shape: str, color: str, count: int, image_size: int, rng: np.random.Generator) -> Image.Image:
    """One image of ``count`` ``color`` ``shape``s on a noisy pale background, each in its own cell of a grid."""
    background = tuple(int(v) for v in rng.integers(150, 240, 3))
    noise = rng.normal(0, 12, (image_size, image_size, 3))
    image = Image.fromarray(np.clip(np.array(background) + noise, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    shade = tuple(int(v) for v in np.clip(np.array(COLORS[color]) + rng.integers(-20, 21, 3), 0, 255))
    grid = math.ceil(math.sqrt(count))
    cell = image_size / grid
    for index in rng.choice(grid * grid, size=count, replace=False):
        r = cell * rng.uniform(0.3, 0.4) if count > 1 else image_size * rng.uniform(0.25, 0.35)
        row, column = divmod(int(index), grid)
        cx = column * cell + rng.uniform(r, cell - r) if count > 1 else rng.uniform(r, image_size - r)
        cy = row * cell + rng.uniform(r, cell - r) if count > 1 else rng.uniform(r, image_size - r)
        _draw_shape(draw, shape, cx, cy, r, shade, background)
    return image


def caption(shape: str, color: str, count: int) -> str:
    noun = shape if count == 1 else _PLURAL.get(shape, shape + "s")
    return f"a photo of {'a' if count == 1 else COUNTS[count - 1]} {color} {noun}"


def builtin_dataset(
    task: str = "shapes",
    split: str = "train",
    *,
    num_per_class: int = 32,
    image_size: int = 32,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> datasets.Dataset:
    """A generated dataset for ``task`` (see the module doc) with "image", "label" and "caption" columns.

    ``classes`` keeps a subset of the task's classes (in the given order, labelled from 0).
    """
    if task not in TASKS:
        raise ValueError(f"Unknown built-in task '{task}'; choose one of {', '.join(TASKS)}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split '{split}'; choose one of {', '.join(SPLITS)}.")
    all_classes = {"shapes": SHAPES, "colors": tuple(COLORS), "counts": COUNTS}[task]
    names = list(classes) if classes is not None else list(all_classes)
    unknown = [name for name in names if name not in all_classes]
    if unknown:
        raise ValueError(f"Unknown {task} classes {unknown}; the task has: {', '.join(all_classes)}.")
    rng = np.random.default_rng([seed, SPLITS.index(split), TASKS.index(task)])
    rows: dict[str, list] = {"image": [], "label": [], "caption": []}
    for _ in range(num_per_class):
        for label, name in enumerate(names):
            shape = name if task == "shapes" else SHAPES[rng.integers(len(SHAPES))]
            color = name if task == "colors" else list(COLORS)[rng.integers(len(COLORS))]
            count = COUNTS.index(name) + 1 if task == "counts" else int(rng.integers(1, 3))
            rows["image"].append(render(shape, color, count, image_size, rng))
            rows["label"].append(label)
            rows["caption"].append(caption(shape, color, count))
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=names), "caption": datasets.Value("string")}
    )
    return datasets.Dataset.from_dict(rows, features=features, split=split)
