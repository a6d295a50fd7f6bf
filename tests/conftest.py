"""Shared fixtures of the core's tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapterzoo.testing import save_tiny_backbone


@pytest.fixture(scope="session")
def vit_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("vit"), "vit")


@pytest.fixture(scope="session")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_backbone(tmp_path_factory.mktemp("clip"), "clip")
