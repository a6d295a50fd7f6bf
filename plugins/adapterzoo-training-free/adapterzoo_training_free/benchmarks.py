"""GDA's and Tip-Adapter's benchmark rows (`Method.benchmarks`): fitted, so the benchmark times their fit.

Their sizes are the fitted ones at 16 shots of the benchmark's CLIP classes (10 augmented views each for GDA's
kept training features); fitting for the accuracy replaces them. Tip-Adapter cannot name classes it was not fitted
on (its cache's values are one-hot over them): its accuracy is few-shot over all classes.
"""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import CLIP_CLASSES, Row, Shape

SHOTS, VIEWS = 16, 10


def gda_rows(shape: Shape) -> list[Row]:
    return [
        Row("gda (base-to-novel)", "gda", {"variant": "base-to-novel", "fitted_samples": VIEWS * SHOTS * CLIP_CLASSES},
            clip=True, formula=lambda s, c: 0, formula_text="0"),
    ]  # fmt: skip


def tip_rows(shape: Shape) -> list[Row]:
    return [
        Row("tip-adapter (16 shots)", "tip-adapter", {"cache_size": SHOTS * CLIP_CLASSES}, clip=True,
            formula=lambda s, c: 0, formula_text="0", protocol="few-shot"),
    ]  # fmt: skip


def tip_f_rows(shape: Shape) -> list[Row]:
    """The trained keys: N·K·D, D the CLIP's projection width (the benchmark's CLIP projects to its text width)."""
    return [
        Row("tip-adapter-f (16 shots)", "tip-adapter-f", {"cache_size": SHOTS * CLIP_CLASSES}, clip=True,
            formula=lambda s, c: c * SHOTS * s.text_width, formula_text="N·K·D", protocol="few-shot"),
    ]  # fmt: skip
