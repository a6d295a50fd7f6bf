"""Building blocks for method plugins whose tuners wrap whole parts of a vision tower (prompt methods and the like).

PEFT's own weight tuners (LoRA, ...) find their targets by module name. Prompt methods wrap the patch embeddings
and the encoder layers instead, which `TowerTuner` finds by structure, so a plugin only says which parts it wraps
(`TowerTuner.target_pattern`) and with what (`TowerTuner.wrap`, returning a `WrappingLayer`); see the VPT plugin.

The base classes carry PEFT's layer protocol, so a plugin writes only its method: `WrappingLayer` keeps each layer's
own state (the adapters it serves, those merged), places new parameters where the wrapped module computes, ends every
`update_layer` with the right `set_adapter`, and merges through a plugin's `fold` / `unfold`; `TowerTuner` merges all
or nothing, refuses a ``target_modules`` the method has no use for, and describes the backbone once for `wrap`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from peft import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer, check_adapters_to_merge
from torch import nn

from adapterzoo import peft_bridge
from adapterzoo.backbones import BackboneParts, describe_backbone, mlp_block, mlp_norm
from adapterzoo.errors import PluginLoadError, UnknownOptionError
from adapterzoo.placement import placement_of
from adapterzoo.registry import get_method


@dataclass
class TowerTunerConfig(PeftConfig):
    """Base of the configs of tower tuners: the fields PEFT expects, and the `PeftType` filled in for the method.

    Subclasses set ``method_name`` (the zoo's name, e.g. "moment-probing") and add their own options as fields.
    ``target_modules`` is filled in when the adapter is attached (the parts the tuner wrapped, as a regex); a user's
    own is refused, unless the config sets ``takes_target_modules`` (a method that targets linear layers by role).
    """

    method_name: ClassVar[str]
    takes_target_modules: ClassVar[bool] = False
    """True: a user's ``target_modules`` (roles such as ["q", "v"], resolved per backbone) reach `target_pattern`."""

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

    It forwards attribute reads to the wrapped module (backbones read attributes of their parts) and runs one adapter
    at a time. A subclass makes its containers (named in ``adapter_layer_names``, per-adapter values in
    ``other_param_names``) in ``__init__``, which ends with ``self.update_layer(adapter_name, config)``, and fills
    them in `create_adapter`. A layer that can fold its adapter into the wrapped module's weights implements `fold`
    and `unfold`; any other refuses merging with ``merge_refusal``.
    """

    merge_refusal: ClassVar[str] = "its adapters are not weight updates, so there is nothing to fold"
    """Why a layer without `fold` cannot be merged."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # ``served`` is per-adapter state like a plugin's own: PEFT deletes an adapter from every such attribute.
        if "served" not in cls.other_param_names:
            cls.other_param_names = (*cls.other_param_names, "served")

    def __init__(self, base_layer: nn.Module):
        super().__init__()
        self.base_layer = base_layer
        # Per instance: BaseTunerLayer's class-level `merged_adapters` list would be shared by every layer.
        self.served: dict[str, bool] = {}
        self.merged_adapters: list[str] = []

    def create_adapter(self, adapter_name: str, config: PeftConfig | None) -> None:
        """Make this layer's parameters and values for ``adapter_name`` (none by default: a layer that only routes).

        Parameters may be made anywhere: `update_layer` moves them to the wrapped module's device and dtype.
        """

    def update_layer(self, adapter_name: str, config: PeftConfig | None = None) -> None:
        """Add ``adapter_name``: `create_adapter`, place its parameters, and set the active adapters again (which
        also decides what trains)."""
        self.create_adapter(adapter_name, config)
        self.served[adapter_name] = True
        self._place(adapter_name)
        self.set_adapter(self.active_adapters)

    def base_placement(self) -> dict[str, Any]:
        """``{"device", "dtype"}`` of the wrapped module's first floating-point tensor ({} when it has none)."""
        return placement_of(self.get_base_layer())

    def _place(self, adapter_name: str) -> None:
        placement = self.base_placement()
        for name in self.adapter_layer_names if placement else ():
            container = getattr(self, name)
            if adapter_name in container:
                container[adapter_name] = container[adapter_name].to(**placement)

    def active_adapter_here(self) -> str | None:
        """The active adapter when this layer serves it and it is not merged; None when adapters are disabled or it
        serves another. Disabling adapters unfolds a merged one, so that the wrapped module is the backbone's own."""
        if self.disable_adapters and self.merged:
            self.unmerge()
        if self.disable_adapters or self.merged or not self.active_adapters:
            return None
        if len(self.active_adapters) > 1:
            raise ValueError(f"{type(self).__name__} runs one adapter at a time; active: {self.active_adapters}.")
        name = self.active_adapters[0]
        return name if name in self.served else None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def fold(self, adapter_name: str) -> None:
        """Fold ``adapter_name`` into the wrapped module's weights, so that the wrapped module alone computes what
        this layer computed with the adapter (mergeable layers implement this and `unfold`)."""
        raise NotImplementedError(self.merge_refusal)

    def unfold(self, adapter_name: str) -> None:
        """Undo `fold`, restoring the wrapped module's own weights."""
        raise NotImplementedError(self.merge_refusal)

    def merge_blocker(self, adapter_name: str) -> str | None:
        """Why ``adapter_name`` cannot be folded in here; None when it can, or when this layer does not serve it.

        A layer without `fold` answers ``merge_refusal``; a mergeable one may override this to refuse case by case.
        """
        if adapter_name not in self.served or type(self).fold is not WrappingLayer.fold:
            return None
        return self.merge_refusal

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """PEFT's merge on top of `fold`. ``safe_merge`` unfolds again, and raises, when the weights become
        non-finite."""
        for name in check_adapters_to_merge(self, adapter_names):
            if name not in self.served:
                continue
            blocker = self.merge_blocker(name)
            if blocker is not None:
                raise NotImplementedError(blocker)
            self.fold(name)
            if safe_merge and not all(torch.isfinite(p).all() for p in self.get_base_layer().parameters()):
                self.unfold(name)
                raise ValueError(f"Merging adapter '{name}' into {type(self).__name__} gives non-finite weights.")
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """Unfold every merged adapter, last merged first."""
        while self.merged_adapters:
            self.unfold(self.merged_adapters.pop())


class MLPInput(WrappingLayer):
    """Wraps the norm before a block's MLP and keeps its input x (the post-attention residual stream).

    Methods that act beside the MLP on x itself (MP+'s PSRP, DVPT) wrap the MLP with an `MLPBranchLayer`, which takes
    x from here: HF layers never hand both x and MLP(norm(x)) to one submodule.
    """

    def __init__(self, base_layer: nn.Module, adapter_name: str):
        super().__init__(base_layer)
        self.captured: Any = None
        self.update_layer(adapter_name)

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
    wrap) and `wrap` (with what). Merging is all or nothing: every layer is asked first (`WrappingLayer.merge_blocker`),
    and one refusal leaves the whole model untouched.
    """

    target_module_mapping: ClassVar[dict] = {}

    def target_pattern(self, parts: BackboneParts, config: TowerTunerConfig) -> str:
        """A regex that fully matches the paths of the modules this method wraps."""
        raise NotImplementedError

    def wrap(
        self,
        target: nn.Module,
        adapter_name: str,
        config: TowerTunerConfig,
        *,
        parts: BackboneParts,
        name: str,
        parent: nn.Module,
        key: str,
    ) -> WrappingLayer:
        """The layer that wraps ``target`` (found at path ``key``, attribute ``name`` of ``parent``) on the backbone
        that ``parts`` describes."""
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
        self.parts = parts
        pattern = self.target_pattern(parts, peft_config)
        # A loaded config holds the pattern this method wrote, which is no choice of the user's.
        if peft_config.target_modules not in (None, pattern) and not peft_config.takes_target_modules:
            raise UnknownOptionError(
                f"Method '{peft_config.method_name}' finds the parts it wraps by the backbone's structure and takes "
                f"no target_modules (got {peft_config.target_modules!r})."
            )
        peft_config.target_modules = pattern

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
        new_module = self.wrap(
            target, adapter_name, peft_config, parts=self.parts, name=target_name, parent=parent, key=current_key
        )
        self._check_prefix(new_module)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _replace_module(self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module) -> None:
        # Unloading puts back a module as it is (the wrapped one, or a head's trained copy); PEFT's own would copy a
        # ``weight`` onto it, which embeddings, encoder layers and whole backbones lack.
        if isinstance(new_module, BaseTunerLayer):
            super()._replace_module(parent, child_name, new_module, child)
        else:
            setattr(parent, child_name, new_module)

    def _check_prefix(self, layer: WrappingLayer) -> None:
        """Refuse a layer whose own parameters are not named with ``prefix``: PEFT tells adapter weights by it."""
        strays = [n for n, _ in layer.named_parameters() if not n.startswith(("base_layer.", self.prefix))]
        if strays:
            raise PluginLoadError(
                f"{type(layer).__name__} of {type(self).__name__} has parameters {strays[:3]} whose names do not "
                f"start with the tuner's prefix '{self.prefix}'; name its adapter containers '{self.prefix}...'."
            )

    def check_merge(self, adapter_names: list[str] | None = None) -> None:
        """Raise NotImplementedError, naming the layers and their reasons, when any layer refuses to merge."""
        refusals: dict[str, list[str]] = {}
        for path, layer in self.model.named_modules():
            if isinstance(layer, WrappingLayer):
                for name in adapter_names or self.active_adapters:
                    reason = layer.merge_blocker(name)
                    if reason is not None:
                        refusals.setdefault(reason, []).append(path)
        if refusals:
            named = "; ".join(f"{_some(paths)}: {reason}" for reason, paths in refusals.items())
            raise NotImplementedError(f"{named} (nothing was merged)")

    def merge_adapter(self, adapter_names: list[str] | None = None, safe_merge: bool = False) -> None:
        """PEFT's merge, all or nothing: refused before any layer merges, undone if one fails midway."""
        self.check_merge(adapter_names)
        try:
            super().merge_adapter(adapter_names, safe_merge)
        except Exception:
            self.unmerge_adapter()
            raise

    def merge_and_unload(
        self, progressbar: bool = False, safe_merge: bool = False, adapter_names: list[str] | None = None
    ) -> nn.Module:
        """PEFT's merge_and_unload, refused before any layer merges when one cannot."""
        self.check_merge(adapter_names)
        return super().merge_and_unload(progressbar, safe_merge, adapter_names)


def _some(paths: list[str], shown: int = 3) -> str:
    """Up to ``shown`` of ``paths``, and how many more."""
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more
