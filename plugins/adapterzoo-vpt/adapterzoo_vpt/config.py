"""The VPT config. Defaults are those of the reference code's config (github.com/KMnP/vpt, src/configs/config.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig


@dataclass
class VPTConfig(TowerTunerConfig):
    """Visual Prompt Tuning: ``num_tokens`` prompts inserted after CLS, at the input only or before every layer.

    The paper's strongest setting is VPT-deep (``deep=True``) with 10-100 tokens and prompt dropout 0.1.
    """

    method_name: ClassVar[str] = "vpt"

    num_tokens: int = field(default=5, metadata={"help": "Prompt tokens per layer (m)."})
    deep: bool = field(
        default=False,
        metadata={"help": "VPT-deep: fresh prompts before every layer, replacing the previous layer's prompt outputs."},
    )
    dropout: float = field(default=0.0, metadata={"help": "Dropout on the prompts while training."})
    projection_dim: int | None = field(
        default=None,
        metadata={"help": "Keep prompts in this width and map them to the hidden size with a trained Linear (off)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_tokens < 1:
            raise ValueError(f"num_tokens must be at least 1, got {self.num_tokens}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if self.projection_dim is not None and self.projection_dim < 1:
            raise ValueError(f"projection_dim must be a positive width or None, got {self.projection_dim}.")
