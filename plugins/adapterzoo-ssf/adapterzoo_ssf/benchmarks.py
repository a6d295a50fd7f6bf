"""SSF's benchmark row (`Method.benchmarks`): a scale and a shift after every site of every block, the patch
embedding and the final norm."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import Row, Shape, head


def rows(shape: Shape) -> list[Row]:
    """Per block 2·(d + 3d + d + d + m + d): both norms, q, k, v, the attention output, fc1 (m wide) and fc2."""
    return [
        Row("ssf", "ssf", formula=lambda s, c: s.depth * 2 * (7 * s.width + s.mlp) + 4 * s.width + head(s, c),
            formula_text="L·2(7d + m) + 4d + head"),
    ]  # fmt: skip
