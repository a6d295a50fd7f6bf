"""What the benchmarks run on: backbone shapes per size, the method rows, and the papers' parameter formulas.

Sizes: ``base`` is ViT-B/16 and CLIP ViT-B/16 at 224 px (the papers' shapes), ``small`` ViT-S/16 and a CLIP of that
vision width (CPU-friendly timings), ``tiny`` the test suite's 32-wide backbones (for a test that keeps the
benchmark working). Parameter counts and file sizes are taken at ``base`` unless the whole run is ``tiny``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def _mp_side(group: int) -> int:
    for _ in range(2):
        group = (group - 3) // 2 + 1
    return group


def _head(s: Shape, c: int) -> int:
    return s.width * c + c


def _mp(s: Shape, c: int, hidden: int = 512, heads: int = 4) -> int:
    pairs, group = heads - 1, hidden // heads
    convs = 2 * pairs * pairs * 9
    second = pairs * _mp_side(group) ** 2
    return s.width * hidden + hidden + 2 * group + convs + _head(s, c) + second * c + c


@dataclass(frozen=True)
class Row:
    """One benchmarked configuration: a method with options, on the ViT or on a whole CLIP (CLIP classification)."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    clip: bool = False
    formula: Callable[[Shape, int], int] | None = None
    formula_text: str = ""


ROWS = [
    Row("linear-probe", "linear-probe", formula=_head, formula_text="d·C + C"),
    Row("full", "full", formula_text="the backbone + head"),
    Row(
        "lora (r 8, q v)",
        "lora",
        {"r": 8, "lora_alpha": 8},
        formula=lambda s, c: s.depth * 2 * 8 * 2 * s.width + _head(s, c),
        formula_text="L·2·r·2d + head",
    ),  # fmt: skip
    Row(
        "dora (r 8, q v)",
        "lora",
        {"r": 8, "lora_alpha": 8, "use_dora": True},
        formula=lambda s, c: s.depth * 2 * (8 * 2 * s.width + s.width) + _head(s, c),
        formula_text="L·2·(r·2d + d) + head",
    ),  # fmt: skip
    Row(
        "loha (r 8, q v)",
        "loha",
        {"r": 8},
        formula=lambda s, c: s.depth * 2 * 2 * 8 * 2 * s.width + _head(s, c),
        formula_text="L·2·2r·2d + head",
    ),  # fmt: skip
    Row("lokr (r 8, q v)", "lokr", {"r": 8}),
    Row(
        "ia3 (k v fc2)",
        "ia3",
        formula=lambda s, c: s.depth * (2 * s.width + s.mlp) + _head(s, c),
        formula_text="L·(2d + d_mlp) + head",
    ),  # fmt: skip
    Row("oft (q v)", "oft"),
    Row("boft (q v)", "boft"),
    Row(
        "vera (r 256, q v)",
        "vera",
        formula=lambda s, c: s.depth * 2 * (256 + s.width) + _head(s, c),
        formula_text="L·2·(r + d) + head",
    ),  # fmt: skip
    Row(
        "fourierft (n 1000, q v)",
        "fourierft",
        formula=lambda s, c: s.depth * 2 * 1000 + _head(s, c),
        formula_text="L·2·n + head",
    ),  # fmt: skip
    Row(
        "vpt-shallow (50)",
        "vpt",
        {"num_tokens": 50},
        formula=lambda s, c: 50 * s.width + _head(s, c),
        formula_text="m·d + head",
    ),  # fmt: skip
    Row(
        "vpt-deep (50)",
        "vpt",
        {"num_tokens": 50, "deep": True},
        formula=lambda s, c: s.depth * 50 * s.width + _head(s, c),
        formula_text="L·m·d + head",
    ),  # fmt: skip
    Row("moment-probing", "moment-probing", formula=_mp, formula_text="proj + LN + convs + d·C + 2883·C (+ biases)"),
    Row(
        "moment-probing+ (PSRP)",
        "moment-probing",
        {"plus": True},
        formula=lambda s, c: _mp(s, c) + s.depth * 3 * 16 * s.width,
        formula_text="MP + L·3·16·d",
    ),  # fmt: skip
    Row(
        "dvpt (50, r 20)",
        "dvpt",
        formula=lambda s, c: (
            math.ceil(s.depth / 3) * (2 * 20 * s.width + 20 + s.width + 1) + 2 * 50 * s.width + s.width * c
        ),
        formula_text="⌈L/3⌉·(2rd + r + d + 1) + 2md + dC",
    ),  # fmt: skip
    Row("zero-shot", "zero-shot", clip=True, formula=lambda s, c: 0, formula_text="0"),
    Row("coop (16)", "coop", clip=True, formula=lambda s, c: 16 * s.text_width, formula_text="16·d_text"),
    Row(
        "maple (2, depth 9)",
        "maple",
        clip=True,
        formula=lambda s, c: 2 * s.text_width * 9 + 9 * (s.text_width * s.width + s.width),
        formula_text="n·d_t·J + J·(d_t·d_v + d_v)",
    ),  # fmt: skip
]


def rows_for(shape: Shape, installed: set[str]) -> list[Row]:
    """The rows whose method is installed; MaPLe's depth is capped by the towers' (the tiny CLIP has 3 layers)."""
    rows = []
    for row in ROWS:
        if row.method not in installed:
            continue
        if row.method == "maple" and shape.depth < 9:
            depth = max(1, round(9 / 12 * shape.depth))
            formula = lambda s, c, j=depth: 2 * s.text_width * j + j * (s.text_width * s.width + s.width)  # noqa: E731
            row = Row(f"maple (2, depth {depth})", "maple", {"depth": depth}, True, formula, row.formula_text)
        rows.append(row)
    return rows
