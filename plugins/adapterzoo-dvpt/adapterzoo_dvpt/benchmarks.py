"""DVPT's benchmark row (`Method.benchmarks`): its defaults (50 prompts, bottleneck 20), with the paper's count."""

from __future__ import annotations

import math

from adapterzoo.benchmarks.shapes import Row, Shape


def rows(shape: Shape) -> list[Row]:
    return [
        Row("dvpt (50, r 20)", "dvpt",
            formula=lambda s, c: math.ceil(s.depth / 3) * (2 * 20 * s.width + 20 + s.width + 1) + 2 * 50 * s.width
            + s.width * c,
            formula_text="⌈L/3⌉·(2rd + r + d + 1) + 2md + dC"),
    ]  # fmt: skip
