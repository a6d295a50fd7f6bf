"""The kit as a pytest plugin (entry point ``pytest11``, so it is active wherever adapterzoo is installed).

Fixtures:

- ``tiny_backbone_path``: a function, tiny backbone kind -> the folder it is saved in (once per session);
  ``vit_path`` and ``clip_path`` are its two most used kinds.
- ``backbone_path``: one tiny backbone per kind in ``backbone_kind``, which is parametrized for a `MethodConformance`
  subclass by the kinds it runs on, and for any other test marked ``adapterzoo_method(name)`` (``pytestmark`` for a
  whole module) by the kinds that method serves.

This module imports nothing heavy: torch and transformers load when a fixture first runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest

MARKER = "adapterzoo_method"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}(name): run the test's `backbone_path` on every tiny backbone kind the method serves"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backbone_kind" not in metafunc.fixturenames:
        return
    backbone_kinds = getattr(metafunc.cls, "backbone_kinds", None)
    marker = metafunc.definition.get_closest_marker(MARKER)
    if backbone_kinds is not None:
        kinds, scope = backbone_kinds(), "class"
    elif marker is not None:
        from adapterzoo.testing.backbones import served_kinds

        kinds, scope = list(served_kinds(*marker.args)), "module"
    else:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} uses `backbone_path`: subclass MethodConformance, or mark it "
            f"`pytest.mark.{MARKER}('<method>')` to run it on every tiny backbone the method serves."
        )
    metafunc.parametrize("backbone_kind", kinds, scope=scope)


@pytest.fixture(scope="session")
def tiny_backbone_path(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_backbone_path(kind)``: the folder of a tiny backbone of ``kind`` (`adapterzoo.testing.KINDS`), saved
    with its image processor on first use and shared by the whole session (copy it before changing it)."""
    from adapterzoo.testing.backbones import save_tiny_backbone

    root = tmp_path_factory.mktemp("tiny-backbones")

    @cache
    def path(kind: str) -> Path:
        return save_tiny_backbone(root / kind, kind)

    return path


@pytest.fixture
def backbone_path(backbone_kind: str, tiny_backbone_path: Callable[[str], Path]) -> Path:
    """The tiny backbone of the parametrized ``backbone_kind``."""
    return tiny_backbone_path(backbone_kind)


@pytest.fixture(scope="session")
def vit_path(tiny_backbone_path: Callable[[str], Path]) -> Path:
    return tiny_backbone_path("vit")


@pytest.fixture(scope="session")
def clip_path(tiny_backbone_path: Callable[[str], Path]) -> Path:
    """A tiny whole CLIP (vision and text towers) with its tokenizer."""
    return tiny_backbone_path("clip")
