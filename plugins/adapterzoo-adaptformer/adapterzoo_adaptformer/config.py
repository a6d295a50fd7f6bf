"""The AdaptFormer config. Defaults are the reference's image setting (ShoufaChen/AdaptFormer, ``main_image.py``
184-196 and ``models/custom_modules.py``): bottleneck 64, scale 0.1, dropout 0.1, no LayerNorm of its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig


@dataclass
class AdaptFormerConfig(TowerTunerConfig):
    """AdaptFormer: x_out = x' + MLP(LN(x')) + s·up(dropout(ReLU(down(x')))), with x' the block's residual stream
    after attention."""

    method_name: ClassVar[str] = "adaptformer"

    bottleneck: int = field(default=64, metadata={"help": "Width r of the bottleneck (the reference's ffn_num)."})
    scale: float = field(default=0.1, metadata={"help": "The fixed factor s on the branch's output (not learned)."})
    dropout: float = field(default=0.1, metadata={"help": "Dropout after the ReLU while training."})
    layernorm: bool = field(
        default=False,
        metadata={
            "help": "Give the branch its own trained LayerNorm on its input (the reference's option 'in'); off, "
            "as in the reference's runs, the branch reads the residual stream itself."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bottleneck < 1:
            raise ValueError(f"bottleneck must be at least 1, got {self.bottleneck}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
