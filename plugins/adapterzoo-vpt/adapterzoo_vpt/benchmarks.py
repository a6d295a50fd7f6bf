"""VPT's benchmark rows (`Method.benchmarks`): shallow and deep, 50 prompts, with the paper's parameter counts."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import Row, Shape, head


def rows(shape: Shape) -> list[Row]:
    return [
        Row("vpt-shallow (50)", "vpt", {"num_tokens": 50}, formula=lambda s, c: 50 * s.width + head(s, c),
            formula_text="m·d + head"),
        Row("vpt-deep (50)", "vpt", {"num_tokens": 50, "deep": True},
            formula=lambda s, c: s.depth * 50 * s.width + head(s, c), formula_text="L·m·d + head"),
    ]  # fmt: skip
