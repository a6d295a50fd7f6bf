"""The `Method` declaration that every plugin's entry point names.

This module, and so every plugin's declaration module, imports only the standard library: listing the installed
methods (`adapterzoo.list_methods`, ``adapterzoo methods``) must not load torch, transformers or PEFT. What needs them
(the config and tuner classes, making a PEFT config) is imported when a method is first used.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from adapterzoo.errors import PluginLoadError, UnknownOptionError, UnsupportedBackboneError
from adapterzoo.lazy import lazy_attributes

if TYPE_CHECKING:
    from peft import PeftConfig
    from peft.tuners.tuners_utils import BaseTuner
    from torch import nn

    from adapterzoo.backbones import BackboneParts
    from adapterzoo.benchmarks.shapes import Row, Shape

PLUGIN_API_VERSION = 1
"""The plugin API this adapterzoo implements; a `Method` declaring another version is skipped with a warning."""

# Options whose value may be a list of linear-layer roles ("q", "v", "fc1", ...) resolved per backbone.
ROLE_OPTIONS = ("target_modules", "feedforward_modules", "exclude_modules")

# MANAGED_FIELDS (the PeftConfig fields that are not user options) is computed from PEFT, so on first use.
__getattr__, __dir__ = lazy_attributes(globals(), {"MANAGED_FIELDS": "adapterzoo.method_config"})

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _resolve(reference: str) -> Any:
    module_name, _, attribute = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(f"Cannot import '{reference}': {exc}") from exc


def unknown_option_message(lead: str, name: str, valid: Sequence[str], loading_options: Sequence[str] = ()) -> str:
    """``"<lead> 'name'. Did you mean 'x'? Valid options: ..."``, the hint the closest of ``valid`` and
    ``loading_options``."""
    close = difflib.get_close_matches(name, [*valid, *loading_options], n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    listed = f" Valid options: {', '.join(valid)}." if valid else ""
    loading = f" Loading options: {', '.join(loading_options)}." if loading_options else ""
    return f"{lead} '{name}'.{hint}{listed}{loading}"


@dataclass(frozen=True)
class Method:
    """A parameter-efficient method as a plugin declares it.

    ``config`` and ``tuner`` are ``"module:attribute"`` references, imported on first use, so that listing the
    installed methods imports only each plugin's small declaration module. ``backbones`` names the architectures it
    serves (None: all), ``inserts_tokens`` whether it inserts tokens into the sequence (prompts: refused by the
    architectures that cannot take them), ``defaults`` option values that differ from the config's, ``head_init`` a
    function that initialises a new head the paper's way, ``recipe`` the paper's training options (`TrainingConfig`
    fields), and ``replaces_head`` whether its tuner replaces the task model's head (which is then not trained as it
    is). For the core's checks: ``tiny_options`` small option values for the tests' tiny backbones (the support
    matrix), ``variants`` the option sets that change what it serves (each a row of the matrix), and ``benchmarks`` a
    ``"module:attribute"`` reference to a function of a `adapterzoo.benchmarks.shapes.Shape` giving the method's
    benchmark rows, imported only when benchmarking. ``compile_blocker`` says why TorchDynamo cannot trace its
    training (``train(compile=True)`` then refuses it, naming the reason); None when it can.
    """

    name: str
    config: str
    tuner: str
    tasks: tuple[str, ...]
    summary: str
    api_version: int = PLUGIN_API_VERSION
    backbones: tuple[str, ...] | None = None
    inserts_tokens: bool = False
    defaults: Mapping[str, Any] = field(default_factory=dict, hash=False)
    head_init: str | None = None
    recipe: Mapping[str, Any] = field(default_factory=dict, hash=False)
    replaces_head: bool = False
    tiny_options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    variants: tuple[Mapping[str, Any], ...] = field(default=({},), hash=False)
    benchmarks: str | None = None
    compile_blocker: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"Method name '{self.name}' must be lower-case letters and digits, joined by hyphens.")

    @property
    def task_settings(self) -> dict[str, str]:
        """Task-model settings the method needs: a head of its own reads every token normalised, as its paper has
        it, not the tokens transformers' classifier of the architecture would pool (`ImageClassifier`)."""
        return {"final_norm": "tokens"} if self.replaces_head else {}

    @property
    def peft_name(self) -> str:
        """The name PEFT knows this method by (PEFT names are lower-case with underscores)."""
        return self.name.replace("-", "_")

    @cached_property
    def config_cls(self) -> type[PeftConfig]:
        return _resolve(self.config)

    @cached_property
    def tuner_cls(self) -> type[BaseTuner]:
        return _resolve(self.tuner)

    @cached_property
    def head_initializer(self) -> Callable[[nn.Module], None] | None:
        return _resolve(self.head_init) if self.head_init else None

    def options(self) -> list[str]:
        """The option names a user may pass for this method."""
        from adapterzoo.method_config import option_names

        return option_names(self.config_cls)

    def check_options(self, options: Mapping[str, Any], *, loading_options: Sequence[str] = ()) -> None:
        """Refuse an option the method's config lacks; the hint also weighs ``loading_options`` (transformers' options,
        which the caller took out first), so that a misspelt ``tokn`` is pointed to ``token``."""
        valid = self.options()
        for name in options:
            if name not in valid:
                raise UnknownOptionError(
                    unknown_option_message(f"Method '{self.name}' has no option", name, valid, loading_options)
                )

    @cached_property
    def benchmark_rows(self) -> Callable[[Shape], list[Row]] | None:
        """The function of a backbone `Shape` that gives this method's benchmark `Row`s, if it declares one."""
        return _resolve(self.benchmarks) if self.benchmarks else None

    def check_defaults(self) -> None:
        """Refuse a declaration whose ``defaults``, ``tiny_options`` or ``variants`` name options that its config does
        not have: the plugin's mistake, reported when the method is first used rather than as a puzzling error inside
        PEFT."""
        for what, options in (("default", self.defaults), ("tiny option", self.tiny_options)):
            self._check_declared(what, options)
        for variant in self.variants:
            self._check_declared("variant", variant)

    def _check_declared(self, what: str, options: Mapping[str, Any]) -> None:
        try:
            self.check_options(options)
        except UnknownOptionError as exc:
            raise PluginLoadError(f"The declaration of method '{self.name}' has a wrong {what}: {exc}") from exc

    def check_backbone(self, parts: BackboneParts) -> None:
        if self.backbones is not None and parts.architecture not in self.backbones:
            served = f"it serves: {', '.join(self.backbones)}"
            raise UnsupportedBackboneError(
                f"Method '{self.name}' cannot serve the '{parts.architecture}' architecture "
                f"(model_type '{parts.model_type}'); {served}.",
                reason=served,
            )
        if self.inserts_tokens and parts.insertion_blocker:
            raise UnsupportedBackboneError(
                f"Method '{self.name}' inserts tokens into the token sequence, which the '{parts.architecture}' "
                f"architecture cannot take: {parts.insertion_blocker}.",
                reason=parts.insertion_blocker,
            )

    def make_config(self, task_model: nn.Module, head_module: str | None = None, **options: Any) -> PeftConfig:
        """The PEFT config for attaching this method to ``task_model``.

        Options are checked against the config's fields; role lists such as ``target_modules=["q", "v"]`` are
        resolved to the backbone's own module names; ``head_module`` is saved and trained beside the adapter, unless
        the method replaces the head. A regex of the user's own becomes the names of the modules it matches, since
        loading accepts no regex but the roles' (see `adapterzoo.pattern_check`).
        """
        from adapterzoo.method_config import make_config

        self.check_defaults()
        self.check_options(options)
        return make_config(self, task_model, head_module, options)
