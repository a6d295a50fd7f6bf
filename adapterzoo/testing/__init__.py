"""Test helpers for adapterzoo and its plugins: tiny backbones made offline, and the method conformance suite.

`MethodConformance` needs pytest; it is imported on first use, so the tiny backbones work without it.
"""

from typing import Any

from adapterzoo.testing.backbones import TINY_SIZES, save_tiny_backbone, tiny_backbone

__all__ = ["TINY_SIZES", "MethodConformance", "save_tiny_backbone", "tiny_backbone"]


def __getattr__(name: str) -> Any:
    if name == "MethodConformance":
        from adapterzoo.testing.conformance import MethodConformance

        return MethodConformance
    raise AttributeError(f"module 'adapterzoo.testing' has no attribute '{name}'")
