"""CoOp's and MaPLe's benchmark rows (`Method.benchmarks`), with the papers' parameter counts."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import Row, Shape
from adapterzoo_maple import scaled_depth


def coop_rows(shape: Shape) -> list[Row]:
    return [Row("coop (16)", "coop", clip=True, formula=lambda s, c: 16 * s.text_width, formula_text="16·d_text")]


def maple_rows(shape: Shape) -> list[Row]:
    """The paper's prompt depth 9, scaled down on towers of fewer layers (the tiny CLIP has 3)."""
    depth = 9 if shape.depth >= 9 else scaled_depth(shape.depth)
    return [
        Row(f"maple (2, depth {depth})", "maple", {"depth": depth}, clip=True,
            formula=lambda s, c: 2 * s.text_width * depth + depth * (s.text_width * s.width + s.width),
            formula_text="n·d_t·J + J·(d_t·d_v + d_v)"),
    ]  # fmt: skip
