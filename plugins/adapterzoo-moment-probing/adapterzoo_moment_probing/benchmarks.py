"""Moment Probing's benchmark rows (`Method.benchmarks`): MP and MP+ (PSRP), with the paper's parameter counts."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import Row, Shape, head
from adapterzoo_moment_probing.layer import strided_side


def moment_probing(s: Shape, c: int, hidden: int = 512, heads: int = 4) -> int:
    """MP's parameters: the projection, its norm, the group convolutions, the CLS head and the moment head."""
    pairs, group = heads - 1, hidden // heads
    convs = 2 * pairs * pairs * 9
    second = pairs * strided_side(group) ** 2
    return s.width * hidden + hidden + 2 * group + convs + head(s, c) + second * c + c


def rows(shape: Shape) -> list[Row]:
    return [
        Row("moment-probing", "moment-probing", formula=moment_probing,
            formula_text="proj + LN + convs + d·C + 2883·C (+ biases)"),
        Row("moment-probing+ (PSRP)", "moment-probing", {"plus": True},
            formula=lambda s, c: moment_probing(s, c) + s.depth * 3 * 16 * s.width, formula_text="MP + L·3·16·d"),
    ]  # fmt: skip
