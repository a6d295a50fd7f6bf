"""GDA's and Tip-Adapter's benchmark rows (`Method.benchmarks`): fitted, so the benchmark times their fit.

Their sizes are the fitted ones at 16 shots of the benchmark's CLIP classes (10 augmented views each for GDA's
kept training features); fitting for the accuracy replaces them. Tip-Adapter cannot name classes it was not fitted
on (its cache's values are one-hot over them): its accuracy is few-shot over all classes. On the test suite's tiny
backbones the rows fit with 2 views, 8 neighbours and a 20 × 5 grid, to keep the benchmark's test quick.
"""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import CLIP_CLASSES, Row, Shape

SHOTS, VIEWS = 16, 10


def _tiny(shape: Shape) -> bool:
    return shape.width < 64


def gda_rows(shape: Shape) -> list[Row]:
    options = {"variant": "base-to-novel", "fitted_samples": VIEWS * SHOTS * CLIP_CLASSES}
    if _tiny(shape):
        options |= {"augment_views": 2, "neighbours": 8}
    return [Row("gda (base-to-novel)", "gda", options, clip=True, formula=lambda s, c: 0, formula_text="0")]


def tip_rows(shape: Shape) -> list[Row]:
    return [
        Row("tip-adapter (16 shots)", "tip-adapter", _tip_options(shape), clip=True, formula=lambda s, c: 0,
            formula_text="0", protocol="few-shot"),
    ]  # fmt: skip


def tip_f_rows(shape: Shape) -> list[Row]:
    """The trained keys: N·K·D, D the CLIP's projection width (the benchmark's CLIP projects to its text width)."""
    return [
        Row("tip-adapter-f (16 shots)", "tip-adapter-f", _tip_options(shape), clip=True,
            formula=lambda s, c: c * SHOTS * s.text_width, formula_text="N·K·D", protocol="few-shot"),
    ]  # fmt: skip


def _tip_options(shape: Shape) -> dict:
    options = {"cache_size": SHOTS * CLIP_CLASSES}
    return options | ({"augment_views": 2, "search_steps": [20, 5]} if _tiny(shape) else {})
