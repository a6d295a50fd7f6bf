"""The baselines' configs and tuners (see `adapterzoo.methods.baselines`, which declares them): none wraps a module;
PEFT trains and saves what they name in ``modules_to_save``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.constants import DUMMY_TARGET_MODULES

from adapterzoo.backbones import BackboneParts
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
