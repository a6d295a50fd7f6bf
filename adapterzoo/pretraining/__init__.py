"""The zoo's own small pretrained backbones, made here from built-in data so that the demo, the examples and the
benchmarks show transfer from a *pretrained* model with no network: a ViT pretrained supervised on source shapes, and
a CLIP pretrained contrastively on captioned images. They are published to the embedded Hub and reused from there."""

from adapterzoo.pretraining.publish import default_hub_root, local_hub, pretrained_backbone, zoo_backbone
from adapterzoo.pretraining.recipes import RECIPES, SOURCE_SHAPES, TARGET_SHAPES, PretrainingRecipe, recipe_for

__all__ = [
    "RECIPES",
    "SOURCE_SHAPES",
    "TARGET_SHAPES",
    "PretrainingRecipe",
    "default_hub_root",
    "local_hub",
    "pretrained_backbone",
    "recipe_for",
    "zoo_backbone",
]
