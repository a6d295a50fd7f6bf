"""The SSF config. The reference (dongzelian/SSF, ``init_ssf_scale_shift``) draws scales from N(1, 0.02) and shifts
from N(0, 0.02)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig


@dataclass
class SSFConfig(TowerTunerConfig):
    """SSF: y = γ ⊙ x + β over the channels after every linear layer, convolution and norm of the vision tower."""

    method_name: ClassVar[str] = "ssf"

    init_std: float = field(
        default=0.02, metadata={"help": "Standard deviation of the initial scales (around 1) and shifts (around 0)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init_std < 0:
            raise ValueError(f"init_std must be at least 0, got {self.init_std}.")
