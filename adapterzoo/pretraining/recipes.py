"""How each of the zoo's small backbones is pretrained: its shape, its data and its optimisation, all seeded.

The ViT learns the *source* shapes (circle, square, triangle, cross) with labels; the demo adapts it to the *target*
shapes (star, ring, diamond, hexagon), which it never saw. The CLIP learns from every built-in caption ("a photo of two
red stars"), as a real CLIP learns from web captions, and is then prompted with class names. Pretraining images come
from their own seed, so no downstream split contains them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from adapterzoo.data.builtin import SHAPES

SOURCE_SHAPES = SHAPES[:4]
TARGET_SHAPES = SHAPES[4:]
PRETRAINING_DATA_SEED = 1000
RECIPE_VERSION = 1  # raise when the code changes what a recipe produces: published backbones are then remade


@dataclass(frozen=True)
class PretrainingRecipe:
    """One small backbone: a ViT (``kind="vit"``, supervised) or a CLIP (``kind="clip"``, contrastive)."""

    name: str
    kind: str
    repo_id: str
    steps: int
    batch_size: int
    images_per_class: int
    hidden_size: int = 64
    num_layers: int = 4
    num_heads: int = 4
    patch_size: int = 4
    image_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.1
    seed: int = 0

    def as_dict(self) -> dict:
        """What is published beside the weights, and compared to decide whether a published backbone is current."""
        return {**asdict(self), "version": RECIPE_VERSION}


_SMALL = {"hidden_size": 32, "num_layers": 2, "patch_size": 8}

RECIPES = {
    recipe.name: recipe
    for recipe in (
        # About 45 s and 95 s on 2 CPU cores.
        PretrainingRecipe("vit", "vit", "adapterzoo/vit-shapes", steps=1000, batch_size=64, images_per_class=1000),
        PretrainingRecipe(
            "clip",
            "clip",
            "adapterzoo/clip-captions",
            steps=800,
            batch_size=128,
            images_per_class=300,
            weight_decay=0.1,
        ),
        # Seconds, at half the width and depth: for tests and quick runs of the demo and the examples.
        PretrainingRecipe(
            "vit-quick", "vit", "adapterzoo/vit-shapes-quick", steps=600, batch_size=64, images_per_class=200, **_SMALL
        ),
        PretrainingRecipe(
            "clip-quick",
            "clip",
            "adapterzoo/clip-captions-quick",
            steps=300,
            batch_size=64,
            images_per_class=50,
            **_SMALL,
        ),  # fmt: skip
    )
}


def recipe_for(kind: str, *, quick: bool = False) -> PretrainingRecipe:
    """The recipe of the ``kind`` ("vit" or "clip") backbone; ``quick`` for the seconds-long one."""
    name = f"{kind}-quick" if quick else kind
    if name not in RECIPES:
        raise ValueError(f"No pretrained backbone '{kind}'; the zoo makes: vit, clip.")
    return RECIPES[name]
