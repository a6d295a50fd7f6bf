"""How a `Method`'s options become a PEFT config. Kept apart from `adapterzoo.method` because it needs PEFT and the
backbone's modules: it is imported when a method is used, never when the installed methods are listed."""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from peft import PeftConfig
from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND
from torch import nn

from adapterzoo.backbones import is_role_list, resolve_linear_roles
from adapterzoo.method import ROLE_OPTIONS

if TYPE_CHECKING:
    from adapterzoo.method import Method

# PeftConfig fields that the zoo manages itself (PEFT bookkeeping, the head) and that are not user options.
MANAGED_FIELDS = frozenset(f.name for f in dataclasses.fields(PeftConfig)) | {"modules_to_save"}


def option_names(config_cls: type[PeftConfig]) -> list[str]:
    """The fields of ``config_cls`` that a user may pass as options, sorted."""
    return sorted(f.name for f in dataclasses.fields(config_cls) if f.name not in MANAGED_FIELDS)


def make_config(method: Method, task_model: nn.Module, head_module: str | None, options: dict[str, Any]) -> PeftConfig:
    """``method``'s PEFT config for ``task_model``, from its defaults and the (checked) ``options``: see
    `Method.make_config`."""
    values = {**method.defaults, **options}
    for name in ROLE_OPTIONS:
        value = values.get(name)
        if is_role_list(value):
            values[name] = resolve_linear_roles(task_model, value)
        elif isinstance(value, str) and value != INCLUDE_LINEAR_LAYERS_SHORTHAND:
            values[name] = [path for path, _ in task_model.named_modules() if path and re.fullmatch(value, path)]
    config = method.config_cls(**values)
    if head_module is not None and not method.replaces_head:
        config.modules_to_save = [*(config.modules_to_save or []), head_module]
    return config
