"""Test helpers for adapterzoo and its plugins: tiny backbones made offline, and the method conformance suite.

The conformance classes need pytest; they are imported on first use, so the tiny backbones work without it.
"""

from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in ("MethodConformance", "CLIPMethodConformance"):
        from adapterzoo.testing import conformance

        return getattr(conformance, name)
    raise AttributeError(f"module 'adapterzoo.testing' has no attribute '{name}'")
