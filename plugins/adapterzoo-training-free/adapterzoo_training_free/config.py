"""The options of GDA and Tip-Adapter. Both are fitted (`adapterzoo.fit`), not trained, on frozen features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from adapterzoo.tuners import TowerTunerConfig

VARIANTS = ("few-shot", "base-to-novel")


@dataclass
class _FittedConfig(TowerTunerConfig):
    """A method fitted in closed form on CLIP's frozen image features."""

    fitted: ClassVar[bool] = True
    augment_views: int = field(
        default=10, metadata={"help": "Augmented passes over the few-shot set (the references' augment_epoch)."}
    )
    crop_scale: list[float] = field(
        default_factory=lambda: [0.5, 1.0],
        metadata={"help": "The random resized crop's area range (the references' (0.5, 1); GDA's ImageNet: 0.08)."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = self.crop_scale
        if self.augment_views < 0 or not 0 < low <= high <= 1:
            raise ValueError(
                f"augment_views must be >= 0 (0: the unaugmented features) and crop_scale 0 < low <= high <= 1; got "
                f"{self.augment_views} and {self.crop_scale}."
            )

    def feature_cache_blocker(self) -> str | None:
        return None


@dataclass
class GDAConfig(_FittedConfig):
    """GDA: logits = zero-shot + α·(f W + b), W and b from class means and a shrunk shared precision."""

    method_name: ClassVar[str] = "gda"
    alphas: list[float] = field(
        default_factory=lambda: [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0],
        metadata={"help": "The values of α searched on the validation split (the reference's main_few_shots.py)."},
    )

    variant: str = field(
        default="few-shot",
        metadata={
            "help": "'few-shot' (main_few_shots.py: a shrunk shared precision; only the fitted classes) or "
            "'base-to-novel' (main_base2new.py: pinv of the mean per-class covariance for the fitted classes, a head "
            "synthesised from the nearest kept training features for any other class)."
        },
    )
    neighbours: int = field(
        default=64, metadata={"help": "base-to-novel: the training features nearest a new class's text (the k)."}
    )
    text_copies: int = field(
        default=16, metadata={"help": "base-to-novel: copies of a new class's text feature in its mean."}
    )
    fitted_classes: int = field(
        default=0, metadata={"help": "Filled in by fitting: the number of classes fitted (the head's width)."}
    )
    fitted_samples: int = field(
        default=0, metadata={"help": "Filled in by fitting (base-to-novel): the number of training features kept."}
    )

    @property
    def classifies_new_classes(self) -> bool:
        """Whether the fitted head also classifies classes it was not fitted on (the base-to-novel protocol reads
        it): the base-to-novel variant synthesises their heads."""
        return self.variant == "base-to-novel"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.alphas or min(self.alphas) < 0:
            raise ValueError(f"GDA's alphas must be non-negative, and at least one; got {self.alphas}.")
        if self.variant not in VARIANTS:
            raise ValueError(f"GDA's variant is one of {list(VARIANTS)}; got '{self.variant}'.")
        if self.neighbours < 2 or self.text_copies < 0 or min(self.fitted_classes, self.fitted_samples) < 0:
            raise ValueError(
                f"GDA needs neighbours >= 2 (a covariance), text_copies >= 0, and fitted_classes, fitted_samples >= 0; "
                f"got {self.neighbours}, {self.text_copies}, {self.fitted_classes}, {self.fitted_samples}."
            )


@dataclass
class TipAdapterConfig(_FittedConfig):
    """Tip-Adapter: logits = zero-shot + α·exp(−β(1 − f Fᵀ))·L over a cache of few-shot keys F and one-hot values L."""

    method_name: ClassVar[str] = "tip-adapter"
    cache_size: int = field(
        default=0, metadata={"help": "Filled in by fitting: the number of cached few-shot examples (N·K)."}
    )
    search_scale: list[float] = field(
        default_factory=lambda: [7.0, 3.0],
        metadata={"help": "[S_β, S_α] of the reference's grid search (its ImageNet config)."},
    )
    search_steps: list[int] = field(
        default_factory=lambda: [200, 20], metadata={"help": "Grid points for β and α (the reference's 200 × 20)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cache_size < 0 or min(self.search_scale) <= 0.1 or min(self.search_steps) < 1:
            raise ValueError(
                "Tip-Adapter needs cache_size >= 0, search_scale values above 0.1 and search_steps of at least 1."
            )


@dataclass
class TipAdapterFConfig(TipAdapterConfig):
    """Tip-Adapter-F: Tip-Adapter whose keys train (a bias-free linear layer started from the cache)."""

    method_name: ClassVar[str] = "tip-adapter-f"
    init_alpha: float = field(default=1.17, metadata={"help": "α while the keys train (the ImageNet config's)."})
    init_beta: float = field(default=1.0, metadata={"help": "β while the keys train (every config's)."})
