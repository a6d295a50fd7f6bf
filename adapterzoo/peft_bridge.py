"""The one place where adapterzoo reaches into PEFT: registering out-of-tree methods as PEFT tuner types.

PEFT's ``register_peft_method`` only accepts names that are already members of its ``PeftType`` enum, which is
closed. `peft_type` adds the member at run time; `register` then registers the config and tuner classes. Both are
idempotent, and both refuse a name that PEFT already uses for a different method.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
from peft.utils import PeftType, register_peft_method

from adapterzoo.errors import MethodConflictError

if TYPE_CHECKING:
    from adapterzoo.method import Method


def peft_type(peft_name: str) -> PeftType:
    """The `PeftType` member for ``peft_name`` (e.g. "vpt" -> ``PeftType.VPT``), added to the enum if missing."""
    member_name = peft_name.upper()
    if member_name in PeftType.__members__:
        return PeftType[member_name]
    member = str.__new__(PeftType, member_name)
    member._name_ = member_name
    member._value_ = member_name
    # Enum keeps its members in three places; a member missing from any of them breaks lookups or iteration.
    PeftType._member_map_[member_name] = member
    PeftType._value2member_map_[member_name] = member
    PeftType._member_names_.append(member_name)
    type.__setattr__(PeftType, member_name, member)
    return member


def register(method: Method) -> None:
    """Make ``method`` known to PEFT, so that `peft.get_peft_model` and `PeftModel.from_pretrained` accept it."""
    member = peft_type(method.peft_name)
    config_cls, tuner_cls = method.config_cls, method.tuner_cls
    known_config = PEFT_TYPE_TO_CONFIG_MAPPING.get(member)
    if known_config is None:
        register_peft_method(name=method.peft_name, config_cls=config_cls, model_cls=tuner_cls, prefix=tuner_cls.prefix)
    elif known_config is not config_cls or PEFT_TYPE_TO_TUNER_MAPPING.get(member) is not tuner_cls:
        raise MethodConflictError(
            f"PEFT already defines a method '{method.peft_name}' ({known_config.__module__}.{known_config.__name__}); "
            f"method '{method.name}' ({config_cls.__module__}.{config_cls.__name__}) cannot take its place."
        )
