"""The Moment Probing config. Defaults are the reference's: github.com/mingzeG/Moment-Probing, models/representation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig

CROSS_TYPES = ("near", "n/2", "cn2")
MEAN_REMOVALS = ("sample", "channel")


@dataclass
class MomentProbingConfig(TowerTunerConfig):
    """MP: logits averaged from a linear head on CLS and one on cross-covariances of patch-token groups.

    ``plus=True`` is MP+: PSRP in every block recalibrates the MLP branch, so the backbone's features change.
    """

    method_name: ClassVar[str] = "moment-probing"

    hidden_dim: int = field(default=512, metadata={"help": "Width the patch tokens are projected to."})
    num_heads: int = field(default=4, metadata={"help": "Channel groups the projection is split into."})
    cross_type: str = field(
        default="near",
        metadata={"help": "Which group pairs are crossed: near (i, i+1), n/2 (i, i+n/2) or cn2 (all, unnormalised)."},
    )
    mean_removal: str = field(
        default="sample",
        metadata={"help": "Mean removed before the covariance: one per sample (the reference) or per channel."},
    )
    plus: bool = field(default=False, metadata={"help": "MP+: partially shared recalibration (PSRP) in every block."})
    psrp_reduction: int = field(default=16, metadata={"help": "PSRP bottleneck width r (d -> r)."})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cross_type not in CROSS_TYPES:
            raise ValueError(f"cross_type must be one of {', '.join(CROSS_TYPES)}, not '{self.cross_type}'.")
        if self.mean_removal not in MEAN_REMOVALS:
            raise ValueError(f"mean_removal must be one of {', '.join(MEAN_REMOVALS)}, not '{self.mean_removal}'.")
        if self.num_heads < 2 or self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim ({self.hidden_dim}) must split into num_heads ({self.num_heads}) >= 2 parts.")
        if self.hidden_dim // self.num_heads < 7:
            raise ValueError("Each group needs at least 7 channels for the two stride-2 3x3 convolutions.")
        if self.psrp_reduction < 1:
            raise ValueError(f"psrp_reduction must be positive, not {self.psrp_reduction}.")

    def feature_cache_blocker(self) -> str | None:
        if self.plus:
            return "MP+ (plus=True) recalibrates every block with PSRP, so the backbone's features change in training"
        return None
