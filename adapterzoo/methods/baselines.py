"""The baselines every comparison needs, as methods that go through the same trainer and files: a linear probe, full
fine-tuning, and zero-shot CLIP. None wraps a module; PEFT trains and saves what they name in ``modules_to_save``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.constants import DUMMY_TARGET_MODULES

from adapterzoo.backbones import BackboneParts
from adapterzoo.method import Method
from adapterzoo.tuners import TowerTuner, TowerTunerConfig


@dataclass
class LinearProbeConfig(TowerTunerConfig):
    """Train only the head, on the frozen backbone's features."""

    method_name: ClassVar[str] = "linear-probe"

    def feature_cache_blocker(self) -> str | None:
        return None


@dataclass
class FullFineTuningConfig(TowerTunerConfig):
    """Train every backbone weight and the head. PEFT keeps the pretrained backbone and trains a copy of it."""

    method_name: ClassVar[str] = "full"
    modules_to_save: list[str] | None = field(default_factory=lambda: ["backbone"])

    def feature_cache_blocker(self) -> str | None:
        return "full fine-tuning trains the backbone, so its features change while training"


@dataclass
class ZeroShotConfig(TowerTunerConfig):
    """Nothing to train: CLIP classifies with the class names filled into its prompt template."""

    method_name: ClassVar[str] = "zero-shot"

    def feature_cache_blocker(self) -> str | None:
        return None


class _NoLayersTuner(TowerTuner):
    """A tuner that injects nothing: its training happens in ``modules_to_save``."""

    tuner_layer_cls = BaseTunerLayer

    def target_pattern(self, parts: BackboneParts, config: TowerTunerConfig) -> str:
        return DUMMY_TARGET_MODULES

    def wrap(self, *args, **kwargs) -> None:
        raise AssertionError("This tuner targets no module.")


class LinearProbeModel(_NoLayersTuner):
    prefix = "linear_probe_"


class FullFineTuningModel(_NoLayersTuner):
    prefix = "full_"


class ZeroShotModel(_NoLayersTuner):
    prefix = "zero_shot_"


LINEAR_PROBE = Method(
    name="linear-probe",
    config="adapterzoo.methods.baselines:LinearProbeConfig",
    tuner="adapterzoo.methods.baselines:LinearProbeModel",
    tasks=("image-classification",),
    summary="Linear probe: only the head trains, on frozen backbone features (which can be computed once).",
    recipe={"optimizer": "adamw", "lr": 1e-3, "scheduler": "cosine"},
)
FULL = Method(
    name="full",
    config="adapterzoo.methods.baselines:FullFineTuningConfig",
    tuner="adapterzoo.methods.baselines:FullFineTuningModel",
    tasks=("image-classification",),
    summary="Full fine-tuning: every backbone weight and the head train (a trained copy of the backbone is saved).",
    recipe={"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.05, "scheduler": "cosine", "warmup_ratio": 0.1},
)
ZERO_SHOT = Method(
    name="zero-shot",
    config="adapterzoo.methods.baselines:ZeroShotConfig",
    tuner="adapterzoo.methods.baselines:ZeroShotModel",
    tasks=("clip-classification",),
    summary="Zero-shot CLIP: the class names in a prompt template, nothing trained (prompt learning's baseline).",
    backbones=("clip",),
)
