"""Test helpers for adapterzoo and its plugins: tiny backbones made offline, and the method conformance suite.

The conformance classes need pytest; they are imported on first use, so the tiny backbones work without it.
"""

from adapterzoo.lazy import lazy_attributes
from adapterzoo.testing.backbones import KINDS, TINY_SIZES, VISION_KINDS, save_tiny_backbone, tiny_backbone

__all__ = [
    "KINDS",
    "TINY_SIZES",
    "VISION_KINDS",
    "CLIPMethodConformance",
    "MethodConformance",
    "save_tiny_backbone",
    "tiny_backbone",
]

__getattr__, __dir__ = lazy_attributes(
    globals(),
    {"MethodConformance": "adapterzoo.testing.conformance", "CLIPMethodConformance": "adapterzoo.testing.conformance"},
)
