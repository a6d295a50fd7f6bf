"""The kit for testing adapterzoo methods, the core's and each plugin's.

- Tiny backbones made offline: `tiny_backbone`, `save_tiny_backbone`, the kinds (`KINDS`, `VISION_KINDS`) and their
  sizes (`TINY_SIZES`), and the kinds a method serves (`serves`, `served_kinds`).
- What tests feed a model and do to it: `LABELS`, `images`, `separable_images`, `perturb_trainable`.
- The conformance suite: subclass `MethodConformance` (or `CLIPMethodConformance`) naming the method and its options.
- Fixtures, from the pytest plugin `adapterzoo.testing.pytest_plugin` (entry point ``pytest11``, active wherever
  adapterzoo is installed): ``tiny_backbone_path``, ``vit_path``, ``clip_path``, and ``backbone_path`` on every kind
  a conformance class runs on or a test marked ``pytest.mark.adapterzoo_method(name)`` serves.

The conformance classes need pytest; they are imported on first use, so the rest works without it.
"""

from adapterzoo.lazy import lazy_attributes
from adapterzoo.testing.backbones import (
    KINDS,
    TINY_SIZES,
    VISION_KINDS,
    save_tiny_backbone,
    served_kinds,
    serves,
    tiny_backbone,
)
from adapterzoo.testing.helpers import LABELS, adam_losses, images, perturb_trainable, separable_images

__all__ = [
    "KINDS",
    "LABELS",
    "TINY_SIZES",
    "VISION_KINDS",
    "CLIPMethodConformance",
    "MethodConformance",
    "adam_losses",
    "images",
    "perturb_trainable",
    "save_tiny_backbone",
    "separable_images",
    "served_kinds",
    "serves",
    "tiny_backbone",
]

__getattr__, __dir__ = lazy_attributes(
    globals(),
    {"MethodConformance": "adapterzoo.testing.conformance", "CLIPMethodConformance": "adapterzoo.testing.conformance"},
)
