"""Data: the built-in generated datasets, and loading and preparing image-classification datasets."""

from adapterzoo.data.builtin import COLORS, COUNTS, SHAPES, TASKS, builtin_dataset

__all__ = ["COLORS", "COUNTS", "SHAPES", "TASKS", "builtin_dataset"]
