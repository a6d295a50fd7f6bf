"""Test helpers for adapterzoo and its plugins: tiny backbones made offline, and the method conformance suite."""

from adapterzoo.testing.backbones import TINY_SIZES, save_tiny_backbone, tiny_backbone
from adapterzoo.testing.conformance import MethodConformance

__all__ = ["TINY_SIZES", "MethodConformance", "save_tiny_backbone", "tiny_backbone"]
