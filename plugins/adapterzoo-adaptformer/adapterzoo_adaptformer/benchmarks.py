"""AdaptFormer's benchmark row (`Method.benchmarks`): the paper's bottleneck 64, with the reference's count."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import Row, Shape, head


def rows(shape: Shape) -> list[Row]:
    return [
        Row("adaptformer (r 64)", "adaptformer", {"bottleneck": 64},
            formula=lambda s, c: s.depth * (2 * s.width * 64 + 64 + s.width) + head(s, c),
            formula_text="L·(2dr + r + d) + head"),
    ]  # fmt: skip
