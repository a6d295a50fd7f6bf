"""The PEFT shim: out-of-tree methods become PeftType members and registered PEFT tuners."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from peft import PeftConfig
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
from peft.utils import PeftType

from adapterzoo import Method, MethodConflictError, get_method, peft_bridge


def test_peft_type_adds_a_complete_enum_member() -> None:
    member = peft_bridge.peft_type("zoo_bridge_test")
    assert member is PeftType.ZOO_BRIDGE_TEST is PeftType("ZOO_BRIDGE_TEST") is PeftType["ZOO_BRIDGE_TEST"]
    assert member == "ZOO_BRIDGE_TEST" and member.name == member.value == "ZOO_BRIDGE_TEST"
    assert member in list(PeftType) and "ZOO_BRIDGE_TEST" in PeftType.__members__
    assert peft_bridge.peft_type("zoo_bridge_test") is member


def test_peft_type_returns_peft_own_members() -> None:
    assert peft_bridge.peft_type("lora") is PeftType.LORA


def test_a_registered_method_is_known_to_peft(tmp_path: Path) -> None:
    method = get_method("vpt")
    peft_bridge.register(method)  # a second registration changes nothing
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.VPT] is method.config_cls
    assert PEFT_TYPE_TO_TUNER_MAPPING[PeftType.VPT] is method.tuner_cls
    method.config_cls(num_tokens=7).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "adapter_config.json").read_text())["peft_type"] == "VPT"
    loaded = PeftConfig.from_pretrained(tmp_path)
    assert type(loaded) is method.config_cls and loaded.num_tokens == 7


def test_a_method_cannot_take_the_place_of_a_peft_method() -> None:
    impostor = Method(
        name="lora",
        config="adapterzoo_vpt.config:VPTConfig",
        tuner="adapterzoo_vpt.model:VPTModel",
        tasks=("image-classification",),
        summary="",
    )
    with pytest.raises(MethodConflictError, match="PEFT already defines a method 'lora'.*LoraConfig"):
        peft_bridge.register(impostor)
