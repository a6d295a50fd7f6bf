"""Package attributes imported on first use (PEP 562), so that ``import adapterzoo`` and the command line start
without loading torch."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_attributes(
    namespace: dict[str, Any], sources: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__``: each name of ``sources`` is imported from the module it maps to on
    first use and kept in ``namespace`` (the module's ``globals()``)."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module '{namespace['__name__']}' has no attribute '{name}'")
        value = getattr(import_module(sources[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(sources))

    return __getattr__, __dir__
