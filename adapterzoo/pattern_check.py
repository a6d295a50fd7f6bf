"""Checking the module patterns of a loaded PEFT config before PEFT matches them against the model's module names.

PEFT hands ``target_modules``, ``exclude_modules`` and ``feedforward_modules`` to ``re.fullmatch`` when they are
strings, and splices ``modules_to_save``, ``layers_pattern`` and the keys of ``rank_pattern``, ``alpha_pattern`` (every
``*_pattern`` field) into regexes of its own. A regex from a downloaded file, such as ``(.+)+z``, can backtrack for
hours, so a loaded config may hold only what adapterzoo writes itself: in the first three fields, the regex of a set
of linear-layer roles on this backbone (`adapterzoo.backbones.role_patterns`); everywhere, plain module names.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from peft import PeftConfig
from torch import nn

from adapterzoo.backbones import role_patterns
from adapterzoo.errors import CheckpointError
from adapterzoo.method import ROLE_OPTIONS
from adapterzoo.tuners import TowerTunerConfig

PLAIN_NAME = re.compile(r"[\w.]+")

RULE = (
    "adapterzoo loads only the regexes it writes itself (from linear-layer roles) and plain module names "
    r"([\w.]+): PEFT matches these fields as regular expressions, and one from a file could make loading hang."
)


def check_patterns(config: PeftConfig, task_model: nn.Module, path: Path) -> None:
    """Refuse, naming ``path``, the field and the rule, any pattern of ``config`` that adapterzoo does not write.

    A tower tuner's ``target_modules`` is dropped instead: the tuner finds its targets by structure on attachment
    (unless it takes the user's linear-layer roles, whose regex is checked as any other's).
    """
    if isinstance(config, TowerTunerConfig) and not config.takes_target_modules:
        config.target_modules = None
    allowed: set[str] | None = None
    for name in _pattern_fields(config):
        value = getattr(config, name)
        if name in ROLE_OPTIONS and isinstance(value, str):
            allowed = role_patterns(task_model) if allowed is None else allowed
            if value not in allowed:
                raise CheckpointError(
                    f"{path}: {name} {value[:80]!r} is not the regex of a set of linear-layer roles on this "
                    f"backbone. {RULE}"
                )
            continue
        for item in _items(value):
            if not isinstance(item, str) or not PLAIN_NAME.fullmatch(item):
                raise CheckpointError(f"{path}: {name} holds {str(item)[:80]!r}, not a plain module name. {RULE}")


def _pattern_fields(config: PeftConfig) -> list[str]:
    """The fields of ``config`` that PEFT matches or splices into regexes."""
    return [
        f.name
        for f in dataclasses.fields(config)
        if f.name in ROLE_OPTIONS or f.name == "modules_to_save" or f.name.endswith("_pattern")
    ]


def _items(value: Any) -> Any:
    """The names a field holds: none, one string, the items of a list, or the keys of a dict (``rank_pattern``)."""
    if value is None:
        return ()
    return value if isinstance(value, (list, tuple, set, dict)) else (value,)
