"""Building blocks for method plugins whose tuners wrap whole parts of a vision tower (prompt methods and the like).

PEFT's own weight tuners (LoRA, ...) find their targets by module name. Prompt methods wrap the patch embeddings
and the encoder layers instead, which `TowerTuner` finds by structure, so a plugin only says which parts it wraps
(`TowerTuner.target_pattern`) and with what (`TowerTuner.wrap`, returning a `WrappingLayer`); see the VPT plugin.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, ClassVar

from peft import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from torch import nn

from adapterzoo import peft_bridge
from adapterzoo.backbones import BackboneParts, describe_backbone, mlp_block, mlp_norm
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


class WrappingLayer(nn.Module, BaseTunerLayer):
    """A tuner layer around a whole module (an embedding, an encoder layer, a head, an MLP).

    It forwards attribute reads to the wrapped module (backbones read attributes of their parts), runs one adapter at
    a time, and refuses merging, saying why in ``merge_refusal``. Subclasses name the adapters they serve in
    `adapters_here`.
    """

    merge_refusal: ClassVar[str] = "its adapters are not weight updates, so there is nothing to fold"

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        self.base_layer = base_layer

    def adapters_here(self) -> Container[str]:
        """The adapters this layer has state for."""
        raise NotImplementedError

    def active_adapter_here(self) -> str | None:
        """The active adapter when this layer serves it; None when adapters are disabled or it serves another."""
        if self.disable_adapters or not self.active_adapters:
            return None
        if len(self.active_adapters) > 1:
            raise ValueError(f"{type(self).__name__} runs one adapter at a time; active: {self.active_adapters}.")
        name = self.active_adapters[0]
        return name if name in self.adapters_here() else None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        raise NotImplementedError(self.merge_refusal)

    def unmerge(self) -> None:
        raise NotImplementedError(self.merge_refusal)


class MLPInput(WrappingLayer):
    """Wraps the norm before a block's MLP and keeps its input x (the post-attention residual stream).

    Methods that act beside the MLP on x itself (MP+'s PSRP, DVPT) wrap the MLP with an `MLPBranchLayer`, which takes
    x from here: HF layers never hand both x and MLP(norm(x)) to one submodule.
    """

    adapter_layer_names = ()
    other_param_names = ("served",)

    def __init__(self, base_layer: nn.Module, adapter_name: str):
        super().__init__(base_layer)
        self.served: dict[str, bool] = {}
        self.captured: Any = None
        self.update_layer(adapter_name)

    def adapters_here(self) -> dict[str, bool]:
        return self.served

    def update_layer(self, adapter_name: str, config: Any = None) -> None:
        self.served[adapter_name] = True
        self.set_adapter(self.active_adapters)

    def forward(self, x: Any) -> Any:
        self.captured = x if self.active_adapter_here() is not None else None
        return self.base_layer(x)


class MLPBranchLayer(WrappingLayer):
    """Base of wrappers of a block's MLP that need the MLP's residual input x, which `residual_input` returns."""

    def __init__(self, base_layer: nn.Module, *, block: nn.Module):
        super().__init__(base_layer)
        self.norm_name = mlp_norm(block)
        # A plain reference to the encoder layer, to reach the norm's wrapper whichever of the two was wrapped first.
        object.__setattr__(self, "block", block)

    def residual_input(self) -> Any:
        source = getattr(self.block, self.norm_name)
        x, source.captured = source.captured, None
        return x


class TowerTuner(BaseTuner):
    """Base of tuners that wrap vision-tower parts found by `describe_backbone`.

    Subclasses define ``prefix`` (of their attribute names), ``tuner_layer_cls``, `target_pattern` (which parts to
    wrap) and `wrap` (with what).
    """

    target_module_mapping: ClassVar[dict] = {}

    def target_pattern(self, parts: BackboneParts, config: TowerTunerConfig) -> str:
        """A regex that fully matches the paths of the modules this method wraps."""
        raise NotImplementedError

    def wrap(
        self, target: nn.Module, adapter_name: str, config: TowerTunerConfig, *, name: str, parent: nn.Module, key: str
    ) -> WrappingLayer:
        """The layer that wraps ``target`` (found at path ``key``, attribute ``name`` of ``parent``)."""
        raise NotImplementedError

    def mlp_pattern(self, parts: BackboneParts) -> str:
        """A regex of every encoder layer's MLP and the norm before it (targets of `MLPInput` / `MLPBranchLayer`)."""
        norm, mlp = mlp_block(self.model)
        return rf"{parts.block_pattern}\.(?:{norm}|{mlp})"

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        return peft_config

    def _prepare_model(self, peft_config: TowerTunerConfig, model: nn.Module) -> None:
        parts = describe_backbone(model)
        get_method(peft_config.method_name).check_backbone(parts)
        peft_config.target_modules = self.target_pattern(parts, peft_config)

    def _create_and_replace(
        self,
        peft_config: TowerTunerConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **kwargs: Any,
    ) -> None:
        if isinstance(target, self.tuner_layer_cls):
            target.update_layer(adapter_name, peft_config)
            return
        new_module = self.wrap(target, adapter_name, peft_config, name=target_name, parent=parent, key=current_key)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)
