"""Building blocks for method plugins whose tuners wrap parts of a vision tower (prompt methods and the like).

PEFT's own weight tuners (LoRA, ...) find their targets by module name. Prompt methods wrap the patch embeddings
and the encoder layers instead, which `TowerTuner` finds by structure, so a plugin only says which parts it wraps
and how (see the VPT plugin for a worked example).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from peft import PeftConfig
from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from adapterzoo import peft_bridge
from adapterzoo.backbones import BackboneParts, describe_backbone
from adapterzoo.registry import get_method


@dataclass
class TowerTunerConfig(PeftConfig):
    """Base of the configs of tower tuners: the fields PEFT expects, and the `PeftType` filled in for the method.

    Subclasses set ``method_name`` (the zoo's name, e.g. "moment-probing") and add their own options as fields.
    ``target_modules`` is filled in when the adapter is attached (the parts the tuner wrapped, as a regex).
    """

    method_name: ClassVar[str]

    target_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Filled in on attachment: the wrapped parts of the vision tower."}
    )
    modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Modules trained and saved beside the adapter (the task model's head)."}
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = peft_bridge.peft_type(self.method_name.replace("-", "_"))


class TowerTuner(BaseTuner):
    """Base of tuners that wrap vision-tower parts found by `describe_backbone`.

    Subclasses define ``prefix``, ``tuner_layer_cls``, `target_pattern` (which parts to wrap) and
    `_create_and_replace` (how).
    """

    target_module_mapping: ClassVar[dict] = {}

    def target_pattern(self, parts: BackboneParts, config: TowerTunerConfig) -> str:
        """A regex that fully matches the paths of the modules this method wraps."""
        raise NotImplementedError

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        return peft_config

    def _prepare_model(self, peft_config: TowerTunerConfig, model: nn.Module) -> None:
        parts = describe_backbone(model)
        get_method(peft_config.method_name).check_backbone(parts)
        peft_config.target_modules = self.target_pattern(parts, peft_config)
