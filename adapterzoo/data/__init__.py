"""Data that ships with adapterzoo, so that examples and tests run with no network."""

from adapterzoo.data.shapes import SHAPES, shapes_dataset

__all__ = ["SHAPES", "shapes_dataset"]
