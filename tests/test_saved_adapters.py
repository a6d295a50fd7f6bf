"""Adapters saved by an earlier adapterzoo (tests/fixtures/saved_adapters, made by make_saved_adapters.py at the
commit before issue 14) load with today's code and give the very logits they gave when saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapterzoo import AutoAdapter
from adapterzoo.testing import images, save_tiny_backbone

SAVED = Path(__file__).parent / "fixtures" / "saved_adapters"
BACKBONES = {
    "vpt-deep": "vit",
    "maple": "clip",
    "coop": "clip",
    "dvpt": "vit",
    "moment-probing-plus": "vit",
    "lora": "vit",
}


@pytest.mark.parametrize("name, kind", sorted(BACKBONES.items()))
def test_an_adapter_saved_before_loads_with_the_same_logits(tmp_path: Path, name: str, kind: str) -> None:
    backbone = save_tiny_backbone(tmp_path / kind, kind)
    model = AutoAdapter.from_pretrained(SAVED / name, backbone=str(backbone))
    with torch.no_grad():
        logits = model(images()).logits
    # Float32 sums in another order (another thread count) move CLIP's scaled logits by about 1e-6; nothing more.
    expected = load_file(SAVED / name / "logits.safetensors")["logits"]
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert sorted(p.name for p in (SAVED / name).iterdir()) == sorted(  # loading left the fixture as it was
        [
            "README.md",
            "adapter_config.json",
            "adapter_model.safetensors",
            "adapterzoo_config.json",
            "logits.safetensors",
            "preprocessor_config.json",
        ]
    )
