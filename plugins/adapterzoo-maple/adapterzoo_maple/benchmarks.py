"""CoOp's, CoCoOp's and MaPLe's benchmark rows (`Method.benchmarks`), with the papers' parameter counts, and CoCoOp's
batched text pass against the reference's loop over images (`cocoop_text_pass_speedup`)."""

from __future__ import annotations

from adapterzoo.benchmarks.shapes import SHAPES, Row, Shape
from adapterzoo_maple import scaled_depth


def coop_rows(shape: Shape) -> list[Row]:
    return [Row("coop (16)", "coop", clip=True, formula=lambda s, c: 16 * s.text_width, formula_text="16·d_text")]


def cocoop_parameters(s: Shape, c: int) -> int:
    """M·d_t context plus the Meta-Net D→D/16→d_t on the image features (D: the projection, d_t wide here)."""
    d, hidden = s.text_width, s.text_width // 16
    return 4 * s.text_width + (d * hidden + hidden) + (hidden * s.text_width + s.text_width)


def cocoop_rows(shape: Shape) -> list[Row]:
    return [Row("cocoop (4)", "cocoop", clip=True, formula=cocoop_parameters,
                formula_text="M·d_t + D·D/16 + D/16 + D/16·d_t + d_t")]  # fmt: skip


def cocoop_text_pass_speedup(size: str = "tiny", *, batch: int = 8, classes: int = 10, repeats: int = 5) -> dict:
    """Seconds of a CoCoOp forward over ``batch`` cached image features and ``classes`` classes, as one batched
    text pass and as the reference's loop (one image at a time), on a random CLIP of ``size``; and their ratio."""
    import torch
    from peft import get_peft_model

    from adapterzoo import CLIPClassifier, get_method
    from adapterzoo.benchmarks.measure import seconds_per_call
    from adapterzoo.benchmarks.run import clip
    from adapterzoo.data.tokenizer import builtin_clip_tokenizer

    torch.manual_seed(0)
    classifier = CLIPClassifier(clip(SHAPES[size]), builtin_clip_tokenizer(), [f"class {i}" for i in range(classes)])
    model = get_peft_model(classifier, get_method("cocoop").make_config(classifier)).eval()
    features = torch.nn.functional.normalize(torch.randn(batch, classifier.clip.config.projection_dim), dim=-1)
    batched = seconds_per_call(lambda: model(features=features), repeats)
    looped = seconds_per_call(lambda: [model(features=row[None]) for row in features], repeats)
    return {"size": size, "batch": batch, "classes": classes, "batched_seconds": batched, "looped_seconds": looped,
            "speedup": looped / batched}  # fmt: skip


def maple_rows(shape: Shape) -> list[Row]:
    """The paper's prompt depth 9, scaled down on towers of fewer layers (the tiny CLIP has 3)."""
    depth = 9 if shape.depth >= 9 else scaled_depth(shape.depth)
    return [
        Row(f"maple (2, depth {depth})", "maple", {"depth": depth}, clip=True,
            formula=lambda s, c: 2 * s.text_width * depth + depth * (s.text_width * s.width + s.width),
            formula_text="n·d_t·J + J·(d_t·d_v + d_v)"),
    ]  # fmt: skip
