"""What the benchmarks run on: backbone shapes per size, the method rows, and the papers' parameter formulas.

This module imports only the standard library: a plugin's benchmark rows (`Method.benchmarks`) build on `Row`,
`Shape` and `head`.

Sizes: ``base`` is ViT-B/16 and CLIP ViT-B/16 at 224 px (the papers' shapes), ``small`` ViT-S/16 and a CLIP of that
vision width (CPU-friendly timings), ``tiny`` the test suite's 32-wide backbones (for a test that keeps the
benchmark working). Parameter counts and file sizes are taken at ``base`` unless the whole run is ``tiny``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from adapterzoo.method import Method

NUM_CLASSES = 1000  # the vision rows' head, as the papers count it (ImageNet)
CLIP_CLASSES = 100


@dataclass(frozen=True)
class Shape:
    """One backbone size: the vision transformer's width, depth, heads, MLP width, image and patch size."""

    width: int
    depth: int
    heads: int
    mlp: int
    image: int
    patch: int
    text_width: int
    text_heads: int


SHAPES = {
    "base": Shape(768, 12, 12, 3072, 224, 16, 512, 8),
    "small": Shape(384, 12, 6, 1536, 224, 16, 256, 4),
    "tiny": Shape(32, 3, 4, 64, 32, 8, 32, 4),
}


def head(s: Shape, c: int) -> int:
    """A linear head's parameters on ``s``'s width for ``c`` classes (the term most formulas end with)."""
    return s.width * c + c


@dataclass(frozen=True)
class Row:
    """One benchmarked configuration: a method with options, on the ViT or on a whole CLIP (CLIP classification).
    A CLIP row's accuracy is base-to-novel's harmonic mean, or with ``protocol="few-shot"`` (a method that cannot
    name classes it was not fitted on) the accuracy over all classes after learning a few shots of each."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    clip: bool = False
    formula: Callable[[Shape, int], int] | None = None
    formula_text: str = ""
    protocol: str = "base-to-novel"


ROWS = [  # the core's own methods; a plugin declares its rows with `Method.benchmarks`
    Row("linear-probe", "linear-probe", formula=head, formula_text="d·C + C"),
    Row("full", "full", formula_text="the backbone + head"),
    Row(
        "lora (r 8, q v)",
        "lora",
        {"r": 8, "lora_alpha": 8},
        formula=lambda s, c: s.depth * 2 * 8 * 2 * s.width + head(s, c),
        formula_text="L·2·r·2d + head",
    ),  # fmt: skip
    Row(
        "dora (r 8, q v)",
        "lora",
        {"r": 8, "lora_alpha": 8, "use_dora": True},
        formula=lambda s, c: s.depth * 2 * (8 * 2 * s.width + s.width) + head(s, c),
        formula_text="L·2·(r·2d + d) + head",
    ),  # fmt: skip
    Row(
        "loha (r 8, q v)",
        "loha",
        {"r": 8},
        formula=lambda s, c: s.depth * 2 * 2 * 8 * 2 * s.width + head(s, c),
        formula_text="L·2·2r·2d + head",
    ),  # fmt: skip
    Row("lokr (r 8, q v)", "lokr", {"r": 8}),
    Row(
        "ia3 (k v fc2)",
        "ia3",
        formula=lambda s, c: s.depth * (2 * s.width + s.mlp) + head(s, c),
        formula_text="L·(2d + d_mlp) + head",
    ),  # fmt: skip
    Row("oft (q v)", "oft"),
    Row("boft (q v)", "boft"),
    Row(
        "vera (r 256, q v)",
        "vera",
        formula=lambda s, c: s.depth * 2 * (256 + s.width) + head(s, c),
        formula_text="L·2·(r + d) + head",
    ),  # fmt: skip
    Row(
        "fourierft (n 1000, q v)",
        "fourierft",
        formula=lambda s, c: s.depth * 2 * 1000 + head(s, c),
        formula_text="L·2·n + head",
    ),  # fmt: skip
    Row("zero-shot", "zero-shot", clip=True, formula=lambda s, c: 0, formula_text="0"),
]


def rows_for(shape: Shape, methods: list[Method]) -> list[Row]:
    """The core's rows of the installed ``methods``, then the rows each plugin method declares for ``shape``."""
    names = {method.name for method in methods}
    rows = [row for row in ROWS if row.method in names]
    for method in methods:
        if method.benchmark_rows is not None:
            rows += method.benchmark_rows(shape)
    return rows
